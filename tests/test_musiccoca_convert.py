"""TFLite -> ONNX: ONNX Runtime against the TFLite interpreter (ai-edge-litert).

The TFLite models are built here with upstream's MusicCoCa I/O signatures
(onnx_export.tflite_synthetic) plus one op-coverage model. Tolerance: float
outputs within 1e-5 absolute (+1e-4 relative); integer outputs (tokens) equal.
"""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest

from onnx_export import tflite_synthetic as S
from onnx_export.musiccoca import build_synthetic_musiccoca, convert_musiccoca
from onnx_export.tflite_reader import read_tflite
from onnx_export.tflite_to_onnx import UnsupportedOpError, convert_tflite
from onnx_export.tflite_writer import TfliteBuilder
from tests.ci import require_module

Interpreter = require_module("ai_edge_litert.interpreter", "pip install ai-edge-litert (scripts/setup.sh --test)").Interpreter

F32 = np.float32
NONE = {"FusedActivationFunction": 0}


def run_both(data: bytes, feeds: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    it = Interpreter(model_content=data)
    it.allocate_tensors()
    for d, v in zip(it.get_input_details(), feeds):
        it.set_tensor(d["index"], v)
    it.invoke()
    ref = it.get_tensor(it.get_output_details()[0]["index"])
    sess = ort.InferenceSession(convert_tflite(data).SerializeToString())
    out = sess.run(None, {i.name: v for i, v in zip(sess.get_inputs(), feeds)})[0]
    return ref, out


def assert_close(ref, out):
    assert out.shape == ref.shape and out.dtype == ref.dtype
    if np.issubdtype(ref.dtype, np.integer):
        np.testing.assert_array_equal(out, ref)
    else:
        np.testing.assert_allclose(out, ref, atol=1e-5, rtol=1e-4)


RNG = np.random.default_rng(0)


def _text_feeds(vocab=300, n=9):
    ids = np.zeros((1, 128), np.int32)
    ids[0, 0] = 1
    ids[0, 1:n] = RNG.integers(4, vocab, n - 1)
    pad = np.ones((1, 128), F32)
    pad[0, :n] = 0
    return [ids, pad]


@pytest.mark.parametrize("name", ["text", "prep", "music", "vq", "mapper"])
def test_musiccoca_signatures_match_interpreter(name):
    data, feeds = {
        "text": (S.text_encoder(300, 1), _text_feeds()),
        "prep": (S.audio_preprocessor(2), [RNG.normal(0, .3, (1, 160000)).astype(F32)]),
        "music": (S.music_encoder(3), [RNG.normal(0, 1, (1, 1000, 64)).astype(F32)]),
        "vq": (S.vector_quantizer(4), [(RNG.normal(0, 1, (1, 768)) / np.sqrt(768)).astype(F32)]),
        "mapper": (S.mapper(5), [(RNG.normal(0, 1, (1, 768)) / np.sqrt(768)).astype(F32),
                                 RNG.normal(0, 1, (1, 768)).astype(F32)]),
    }[name]
    ref, out = run_both(data, feeds)
    assert_close(ref, out)
    expected_shape = {"text": (1, 768), "prep": (1, 1000, 64), "music": (1, 768), "vq": (1, 12),
                      "mapper": (1, 768)}
    assert out.shape == expected_shape[name]


def test_quantizer_graph_is_rvq_of_its_codebooks():
    from bridge.style.rvq import rvq_tokenize

    data = S.vector_quantizer(4)
    codebooks = S.synthetic_codebooks(4)
    embs = (RNG.normal(0, 1, (4, 768)) / np.sqrt(768)).astype(F32)
    sess = ort.InferenceSession(convert_tflite(data).SerializeToString())
    for e in embs:
        onnx_tokens = sess.run(None, {sess.get_inputs()[0].name: e[None]})[0][0]
        assert onnx_tokens.tolist() == rvq_tokenize(e, codebooks).tolist()


def _coverage_model() -> tuple[bytes, list[np.ndarray]]:
    """Ops beyond the synthetic MusicCoCa: conv, gelu, softmax, batch_matmul(adj), slices..."""
    b = TfliteBuilder()
    x = b.input("x", [1, 8, 6, 3], F32)
    w = b.const("conv/w", RNG.normal(0, .3, (4, 3, 3, 3)).astype(F32))
    bias = b.const("conv/b", RNG.normal(0, .1, 4).astype(F32))
    c = b.op("CONV_2D", [x, w, bias], [1, 4, 3, 4], F32, ("Conv2DOptions", {
        "Padding": 0, "StrideW": 2, "StrideH": 2, "FusedActivationFunction": 1}))
    g = b.op("GELU", [c], [1, 4, 3, 4], F32, ("GeluOptions", {"Approximate": False}))
    r = b.op("RESHAPE", [g, b.const("s", np.array([1, 12, 4], np.int32))], [1, 12, 4], F32)
    t = b.op("TRANSPOSE", [r, b.const("p", np.array([0, 2, 1], np.int32))], [1, 4, 12], F32)
    mm = b.op("BATCH_MATMUL", [r, t], [1, 12, 12], F32,
              ("BatchMatMulOptions", {"AdjX": False, "AdjY": False}))
    mm2 = b.op("BATCH_MATMUL", [t, t], [1, 4, 4], F32,
               ("BatchMatMulOptions", {"AdjX": False, "AdjY": True}))
    sm = b.op("SOFTMAX", [mm], [1, 12, 12], F32, ("SoftmaxOptions", {"Beta": 0.5}))
    sl = b.op("STRIDED_SLICE", [sm, b.const("b0", np.array([0, 1, 0], np.int32)),
                                b.const("e0", np.array([1, 12, 12], np.int32)),
                                b.const("st", np.array([1, 2, 3], np.int32))],
              [6, 4], F32, ("StridedSliceOptions", {"ShrinkAxisMask": 1}))
    sq = b.op("SQUARED_DIFFERENCE", [sl, b.const("h", np.array(0.1, F32))], [6, 4], F32)
    mx = b.op("REDUCE_MAX", [mm2, b.const("ax", np.array([2], np.int32))], [1, 4], F32,
              ("ReducerOptions", {"KeepDims": False}))
    mx = b.op("RESHAPE", [mx, b.const("s2", np.array([1, 4], np.int32))], [1, 4], F32)
    cat = b.op("CONCATENATION", [sq, mx], [7, 4], F32,
               ("ConcatenationOptions", {"Axis": 0, "FusedActivationFunction": 0}))
    h16 = b.const("w16", RNG.normal(0, 1, (4, 4)).astype(np.float16))
    w32 = b.op("DEQUANTIZE", [h16], [4, 4], F32)
    fc = b.op("FULLY_CONNECTED", [cat, w32, -1], [7, 4], F32, ("FullyConnectedOptions", NONE))
    lg = b.op("LOGISTIC", [fc], [7, 4], F32)
    pd = b.op("PAD", [lg, b.const("pads", np.array([[1, 0], [0, 2]], np.int32))], [8, 6], F32)
    out = b.op("MEAN", [pd, b.const("ax0", np.array([0], np.int32))], [6], F32,
               ("ReducerOptions", {"KeepDims": False}), out_name="y")
    return b.finish([out]), [RNG.normal(0, 1, (1, 8, 6, 3)).astype(F32)]


def test_op_coverage_model_matches_interpreter():
    data, feeds = _coverage_model()
    ref, out = run_both(data, feeds)
    assert_close(ref, out)


def test_unsupported_ops_are_named():
    b = TfliteBuilder()
    x = b.input("x", [1, 4], F32)
    y = b.op("HARD_SWISH", [x], [1, 4], F32)
    z = b.op("ELU", [y], [1, 4], F32)
    with pytest.raises(UnsupportedOpError, match="ELU, HARD_SWISH"):
        convert_tflite(b.finish([z]))


def test_convert_upstream_layout_dir(tmp_path):
    """convert_musiccoca on a folder shaped like upstream's resources/musiccoca."""
    src = tmp_path / "resources" / "musiccoca"
    src.mkdir(parents=True)
    (src / "text_encoder.tflite").write_bytes(S.text_encoder(300, 1))
    (src / "audio_preprocessor.tflite").write_bytes(S.audio_preprocessor(2))
    (src / "music_encoder.tflite").write_bytes(S.music_encoder(3))
    (src / "pretrained_vector_quantizer.tflite").write_bytes(S.vector_quantizer(4))
    with pytest.raises(FileNotFoundError, match="spm.model"):
        convert_musiccoca(src, tmp_path / "out")
    build_synthetic_musiccoca(tmp_path / "synth", 0)  # borrow a trained spm.model
    (src / "spm.model").write_bytes((tmp_path / "synth" / "spm.model").read_bytes())
    entry = convert_musiccoca(src, tmp_path / "pkg" / "musiccoca")
    assert entry["synthetic"] is False and entry["embedding_dim"] == 768
    sess = ort.InferenceSession(str(tmp_path / "pkg/musiccoca" / entry["files"]["text_encoder"]))
    assert sorted(i.name for i in sess.get_inputs()) == ["ids", "paddings"]
    assert [o.name for o in sess.get_outputs()] == ["embedding"]
    graph = read_tflite(src / "pretrained_vector_quantizer.tflite")
    assert graph.tensors[graph.outputs[0]].shape == (1, 12)
    assert "mapper" not in entry["files"]  # optional: older bundles ship no mapper.tflite


def test_convert_optional_mapper(tmp_path, caplog):
    """mapper.tflite is converted when present; one the converter cannot handle is skipped with a warning."""
    src = tmp_path / "musiccoca"
    src.mkdir()
    build_synthetic_musiccoca(tmp_path / "synth", 0)
    for name, data in (("text_encoder", S.text_encoder(300, 1)), ("audio_preprocessor", S.audio_preprocessor(2)),
                       ("music_encoder", S.music_encoder(3)), ("pretrained_vector_quantizer", S.vector_quantizer(4)),
                       ("mapper", S.mapper(5))):
        (src / f"{name}.tflite").write_bytes(data)
    (src / "spm.model").write_bytes((tmp_path / "synth" / "spm.model").read_bytes())
    entry = convert_musiccoca(src, tmp_path / "a")
    assert entry["files"]["mapper"] == "mapper.onnx"
    sess = ort.InferenceSession(str(tmp_path / "a" / "mapper.onnx"))
    assert [i.name for i in sess.get_inputs()] == ["embedding", "noise"]
    assert [o.name for o in sess.get_outputs()] == ["mapped"]
    b = TfliteBuilder()
    x = b.input("embedding", [1, 768], F32)
    n = b.input("noise", [1, 768], F32)
    y = b.op("ADD", [x, n], [1, 768], F32, ("AddOptions", NONE))
    (src / "mapper.tflite").write_bytes(b.finish([b.op("ELU", [y], [1, 768], F32)]))
    with caplog.at_level("WARNING"):
        entry = convert_musiccoca(src, tmp_path / "b")
    assert "mapper" not in entry["files"] and not (tmp_path / "b" / "mapper.onnx").exists()
    assert "mapper.tflite not converted" in caplog.text and "ELU" in caplog.text
