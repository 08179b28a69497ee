"""Precision passes (int8, fp16) against fp32 on the tiny configs, at the thresholds that
onnx_export/precision.py states.

Depthformer: teacher-forced (every frame's depth loop sees the same forced tokens and the
temporal stack the same previous tokens), so each frame's logits compare on equal inputs.
Codec decoder: SNR of the streamed audio against the fp32 graph.
"""

from __future__ import annotations

import json
import logging

import numpy as np
import onnxruntime as ort
import pytest

from bridge.bench import machine
from bridge.conditioning import build_vector
from bridge.engine import Engine
from bridge.package import load_package
from bridge.runtime import native_int8_kernel
from onnx_export import precision as P
from onnx_export.codec_int8 import (
    FP32_CONV_SCOPES,
    audio_snr_db,
    build_int8_codec_decoder,
    codec_snr_db,
    codes_sequence,
    int8_codec_kernels,
    stream,
)
from onnx_export.mrt2.export import export_package
from onnx_export.precision import has_int8_dot
from onnx_export.spectrostream import build_codec_decoder, codec_config, synth_spectrostream_tensors

FRAMES = 40


# int8 schemes under test: blocks everywhere, and the one export chooses for this CPU.
INT8_UNDER_TEST = sorted({"int8-blocks", f"int8-{P.choose_int8_scheme(machine()['isa'])}"})


@pytest.fixture(scope="module")
def packages(tiny_checkpoint, tiny_package, tmp_path_factory) -> dict:
    out = {"fp32": tiny_package}
    for variant in (*INT8_UNDER_TEST, "fp16"):
        precision, _, scheme = variant.partition("-")
        out[variant] = export_package(tiny_checkpoint, "tiny", tmp_path_factory.mktemp(variant) / "pkg",
                                      precision=precision, progress=False, int8_scheme=scheme or "auto")
    return out


def conditioning(frames: int, seed: int = 0) -> np.ndarray:
    """Style tokens, a moving note and drums along the stream, at the default guidance scales."""
    rng = np.random.default_rng(seed)
    style = rng.integers(0, 1024, 12)
    rows = []
    for i in range(frames):
        notes = np.full(128, -1)
        notes[48 + (i // 8) % 12] = 2 if i % 8 == 0 else 1
        rows.append(build_vector(style, notes, i % 2))
    return np.stack(rows)


def teacher_forced_logits(package, cond: np.ndarray, teacher: np.ndarray, num_cfgs: int = 0) -> np.ndarray:
    """[frames, 12, 1024] soft-capped logits of ``package`` forced through ``teacher`` tokens.
    ``num_cfgs`` > 0 runs the guided engine (classifier-free guidance rows)."""
    engine = Engine(package, provider="cpu", threads=2, decode_audio=False, num_cfgs=num_cfgs)
    return np.stack([engine.generate(c, forced_tokens=t).logits for c, t in zip(cond, teacher)])


def agreement(ref: np.ndarray, got: np.ndarray) -> tuple[float, float]:
    """(fraction of frame x level argmaxes equal to the reference's, largest |logit error|)."""
    return float(np.mean(ref.argmax(-1) == got.argmax(-1))), float(np.abs(ref - got).max())




@pytest.mark.parametrize("num_cfgs", [0, 2], ids=["unguided", "guided"])
@pytest.mark.parametrize("precision", [*INT8_UNDER_TEST, "fp16"])
def test_depthformer_teacher_forced_agreement(packages, precision, num_cfgs):
    min_agree, max_err = P.LOGIT_AGREEMENT[(precision.partition("-")[0], num_cfgs)]
    cond = conditioning(FRAMES)
    teacher = np.random.default_rng(1).integers(0, 1024, (FRAMES, 12)) + 6 + 1024 * np.arange(12)
    ref = teacher_forced_logits(packages["fp32"], cond, teacher, num_cfgs)
    got = teacher_forced_logits(packages[precision], cond, teacher, num_cfgs)
    agree, err = agreement(ref, got)
    print(f"{precision} num_cfgs={num_cfgs}: argmax agreement {agree:.4f}, max logit error {err:.4f}")
    assert agree >= min_agree and err <= max_err, (agree, err)
    assert err > 0, f"{precision} package computes exactly fp32's logits: the pass did nothing"


def test_int8_package_records_its_choices(packages):
    isa = machine()["isa"]
    scheme = P.choose_int8_scheme(isa)
    package = packages[f"int8-{scheme}"]
    manifest = json.loads((package / "manifest.json").read_text())
    assert manifest["int8"] == {"scheme": scheme, "prepared_on_isa": isa}
    kernel = {"rows": "MatMulIntegerToFloat", "rows_u8": "MatMulIntegerToFloat", "blocks": "MatMulNBits"}
    for name in ("encoder", "temporal", "depth"):
        entry = manifest["graphs"][name]
        assert entry["precision"] == "int8" and entry["int8_scheme"] == scheme
        assert kernel[scheme] in {n.op_type for n in _load(package / entry["file"]).graph.node}, name
    entry = manifest["graphs"]["codec_decoder"]
    check = entry["precision_check"]
    assert check["min_snr_db"] == P.CODEC_INT8_MIN_SNR_DB and check["cpu_isa"] == machine()["isa"]
    kernels = int8_codec_kernels(isa)
    loaded = load_package(package)
    assert loaded.int8_scheme == scheme  # what bench reports
    assert loaded.codec_variant() == (f"int8/{kernels}" if entry["precision"] == "int8" else "fp32")
    if kernels is None:
        assert entry["precision"] == "fp32" and "AVX2" in check["reason"]
        return
    assert check["int8_snr_db"] >= P.CODEC_INT8_MIN_SNR_DB
    assert check["int8_kernels"] == kernels
    assert entry["precision"] == check["precision"] == "int8"
    ops = {n.op_type for n in _load(package / entry["file"]).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear", "MatMulNBits"} <= ops
    # The engine runs it: audio comes out of an int8 package.
    engine = Engine(package, provider="cpu", threads=2)
    frames = [engine.step(conditioning(1)[0]) for _ in range(3)]
    assert np.abs(frames[-1].audio).max() > 0


def test_int8_codec_kernels_per_cpu():
    assert int8_codec_kernels(["avx2", "fma", "avx512f", "avx512_vnni", "amx_int8"]) == "amx"
    assert int8_codec_kernels(["avx2", "fma", "avx_vnni"]) == "vnni"
    assert int8_codec_kernels(["avx2", "fma"]) == "avx2"
    assert int8_codec_kernels([]) is None


def test_int8_scheme_per_cpu_and_the_warning_for_a_rows_package_without_int8_dot():
    assert P.choose_int8_scheme(["avx2", "fma", "avx512f", "avx512_vnni"]) == "rows"
    assert P.choose_int8_scheme(["avx2", "fma", "avx_vnni"]) == "rows"
    assert P.choose_int8_scheme(["avx2", "fma"]) == "rows_u8"
    assert P.choose_int8_scheme([]) == "blocks"
    assert "saturate" in P.int8_scheme_warning("rows", ["avx2", "fma"])
    for scheme, isa in (("rows", ["avx2", "amx_int8"]), ("rows_u8", ["avx2"]), ("blocks", []), (None, [])):
        assert P.int8_scheme_warning(scheme, isa) is None, (scheme, isa)


@pytest.mark.parametrize("native", ["auto", "off"])
def test_engine_warns_when_a_rows_package_runs_without_int8_dot(tiny_checkpoint, tmp_path, caplog, monkeypatch, native):
    """Only where ORT's saturating kernel would run it: mrt-bridge's kernel (bridge/kernels,
    on by default on AVX2 CPUs without AMX) computes a rows package exactly."""
    monkeypatch.setenv("MRT_BRIDGE_NATIVE_KERNELS", native)
    package = export_package(tiny_checkpoint, "tiny", tmp_path / "rows", precision="int8", int8_scheme="rows",
                             progress=False)
    with caplog.at_level(logging.WARNING, logger="bridge.runtime"):
        Engine(package, provider="cpu", decode_audio=False)
    warned = [r.getMessage() for r in caplog.records if "--int8-scheme auto" in r.getMessage()]
    exact = has_int8_dot(machine()["isa"]) or native_int8_kernel(["CPUExecutionProvider"]) is not None
    assert len(warned) == (0 if exact else 1), warned


def _load(path):
    import onnx

    return onnx.load(str(path))


@pytest.fixture(scope="module")
def tiny_codec():
    cfg = codec_config("tiny")
    weights = synth_spectrostream_tensors(cfg, np.random.default_rng(0))
    return cfg, weights, build_codec_decoder(weights, cfg)


@pytest.mark.parametrize("amx", [False, True], ids=["symmetric", "amx-zero-point"])
def test_codec_int8_snr(tiny_codec, amx):
    """Both weight layouts run anywhere; the export picks by CPU (AMX or not)."""
    cfg, weights, fp32 = tiny_codec
    int8 = build_int8_codec_decoder(weights, cfg, amx=amx)
    convs = [n.name for n in fp32.graph.node if n.op_type == "Conv"]
    kept = [n for n in convs if any(f"/{scope}/" in n for scope in FP32_CONV_SCOPES)]
    assert 0 < len(kept) < len(convs) / 4
    int8_weights = sum(t.name.endswith("/int8") and t.data_type == 3   # TensorProto.INT8
                       for t in int8.graph.initializer)
    assert int8_weights == len(convs) - len(kept), "every conv but the kept ones has int8 weights"
    names = [n.name for n in int8.graph.node]
    assert len(set(names)) == len(names)
    assert all(n.startswith("codec_decoder/") for n in names if "Quantize" in n), "Q/DQ in scope"
    snr = codec_snr_db(fp32, int8, cfg.rvq_truncation_level)
    print(f"codec int8 SNR {snr:.2f} dB")
    assert P.CODEC_INT8_MIN_SNR_DB <= snr < 60


def test_codec_fp16_snr(tiny_codec):
    cfg, _, fp32 = tiny_codec
    snr = codec_snr_db(fp32, P.to_fp16(fp32), cfg.rvq_truncation_level)
    print(f"codec fp16 SNR {snr:.2f} dB")
    assert P.CODEC_FP16_MIN_SNR_DB <= snr < 140


def test_snr_measure_and_stream_state():
    ref = np.sin(np.arange(4800) / 7.0)
    assert audio_snr_db(ref, ref) == float("inf")
    assert audio_snr_db(ref, ref * 1.1) == pytest.approx(20.0, abs=1e-6)
    rng = np.random.default_rng(0)
    held = codes_sequence(rng, 30, 12, held=True)
    assert (np.diff(held[:, :4], axis=0) == 0).mean() > 0.5       # coarse levels held
    assert (np.diff(held[:, 4:], axis=0) != 0).mean() > 0.9       # fine levels move


def test_stream_matches_the_runtime_session(tiny_codec):
    """codec_int8.stream (the calibration feeds) carries state like bridge.runtime does."""
    from bridge import io_names
    from bridge.runtime import StatefulSession

    _cfg, _, fp32 = tiny_codec
    codes = np.random.default_rng(3).integers(0, 1024, (5, 12))
    feeds, audio = stream(fp32, [codes])
    sess = StatefulSession(ort.InferenceSession(fp32.SerializeToString(), providers=["CPUExecutionProvider"]))
    ref = np.concatenate([sess.run({io_names.CODES: c[None]})[io_names.AUDIO][0] for c in codes])
    np.testing.assert_allclose(audio[0], ref, rtol=1e-5, atol=1e-6)
    assert len(feeds) == 5 and any(np.abs(v).max() > 0 for k, v in feeds[-1].items() if k != io_names.CODES)


def test_fold_constant_splits_and_mse_range():
    from onnx import TensorProto, helper, numpy_helper

    from onnx_export.static_int8 import fold_constant_splits, mse_range

    w = np.arange(24, dtype=np.float32).reshape(6, 4)
    g = helper.make_graph(
        [helper.make_node("Split", ["w", "sizes"], ["a", "b"], axis=0),
         helper.make_node("MatMul", ["x", "a"], ["ya"]), helper.make_node("MatMul", ["x", "b"], ["yb"])],
        "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 6])],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in ("ya", "yb")],
        [numpy_helper.from_array(w.T.copy(), "w"), numpy_helper.from_array(np.array([3, 1]), "sizes")])
    m = fold_constant_splits(helper.make_model(g))
    inits = {t.name: numpy_helper.to_array(t) for t in m.graph.initializer}
    assert [n.op_type for n in m.graph.node] == ["MatMul", "MatMul"] and set(inits) == {"a", "b"}
    np.testing.assert_array_equal(inits["b"], w.T[3:])
    # One far outlier: the best clip gives it up for finer steps everywhere else.
    values = np.concatenate([np.random.default_rng(0).standard_normal(100_000), [40.0]])
    lo, hi = mse_range(values)
    assert lo < 0 < hi < 40.0 and lo >= values.min()


def rows_reference(x: np.ndarray, w: np.ndarray, saturate: bool = False) -> np.ndarray:
    """to_int8_rows' arithmetic in numpy: each row of x symmetric to uint8 around 128, each
    column of w symmetric to int8, integer products, both scales after.

    ``saturate``: as ORT's u8 x s8 kernel on CPUs without int8 dot products (AVX2's
    ``vpmaddubsw``): the products of adjacent inputs (2i, 2i+1) are summed in int16 with
    saturation before the int32 sum; 128 x the column sum is taken off after, exactly.
    """
    s = np.maximum(np.abs(x).max(-1, keepdims=True), 1e-30) / 127.0
    xu = np.clip(np.rint(x / s) + 128, 0, 255).astype(np.int64)
    ws = np.maximum(np.abs(w).max(0), 1e-20) / 127.0
    wq = np.clip(np.rint(w / ws), -127, 127).astype(np.int64)
    if not saturate:
        return ((xu - 128) @ wq) * ws * s
    products = xu[..., :, None] * wq  # [..., k, columns]
    pairs = np.clip(products[..., 0::2, :] + products[..., 1::2, :], -32768, 32767)
    return (pairs.sum(-2) - 128 * wq.sum(0)) * ws * s


@pytest.mark.parametrize("unsigned_weights", [False, True], ids=["rows", "rows_u8"])
def test_int8_rows_pass_on_rank_2_and_3_inputs(unsigned_weights):
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    w1, w2 = rng.normal(size=(64, 48)).astype(np.float32), rng.normal(size=(64, 40)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w1"], ["y1"], name="a"),
         helper.make_node("MatMul", ["x", "w2"], ["y2"], name="b"),  # shares x's quantization
         helper.make_node("MatMul", ["seq", "w1"], ["y3"], name="c")],  # rank 3: flattened to rows
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["rows", 64]),
         helper.make_tensor_value_info("seq", TensorProto.FLOAT, ["rows", "t", 64])],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in ("y1", "y2", "y3")],
        [numpy_helper.from_array(w1, "w1"), numpy_helper.from_array(w2, "w2")])
    model = P.to_int8_rows(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]),
                           unsigned_weights=unsigned_weights)
    ops = [n.op_type for n in model.graph.node]
    assert ops.count("MatMulIntegerToFloat") == 3 and ops.count("QuantizeLinear") == 2 and "MatMul" not in ops
    names = [i.name for i in model.graph.initializer]
    assert len(names) == len(set(names)) and names.count("w1/int8") == 1  # w1 stored once for a and c
    w1q = next(i for i in model.graph.initializer if i.name == "w1/int8")
    assert w1q.data_type == (TensorProto.UINT8 if unsigned_weights else TensorProto.INT8)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    x = rng.normal(size=(3, 64)).astype(np.float32) * np.array([[1.0], [50.0], [0.0]], np.float32)
    seq = rng.normal(size=(2, 5, 64)).astype(np.float32)
    y1, y2, y3 = session.run(None, {"x": x, "seq": seq})
    assert y3.shape == (2, 5, 48)
    # Without VNNI/AMX the u8 x s8 kernel's pair sums saturate (why `auto` picks rows_u8 there):
    # the arithmetic is still exactly the saturating one, but no longer close to the float
    # product. u8 x u8 (rows_u8) widens to int16 first: exact on every CPU.
    exact = unsigned_weights or P.has_int8_dot(machine()["isa"])
    for got, (xin, w) in zip((y1, y2, y3), ((x, w1), (x, w2), (seq, w1))):
        np.testing.assert_allclose(got, rows_reference(xin.astype(np.float64), w, saturate=not exact),
                                   rtol=1e-5, atol=1e-4)
        ref = xin @ w
        if exact:
            assert np.abs(got - ref).max() <= 0.02 * np.abs(ref).max() + 1e-6
    if not exact:  # the saturation is real: the non-saturating arithmetic is not what ran
        assert not np.allclose(y1, rows_reference(x.astype(np.float64), w1), rtol=1e-5, atol=1e-4)
    assert not y1[2].any()  # an all-zero row stays zero (no division by a zero range)
    # Each row alone gives the same result as in its batch, bit for bit.
    for i in range(3):
        alone = session.run(["y1"], {"x": x[i:i + 1], "seq": seq})[0]
        assert np.array_equal(alone[0], y1[i])
