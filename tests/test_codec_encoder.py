"""SpectroStream streaming encoder graph: structure, weight validation, behaviour, and parity
with upstream magenta-rt (JAX) via tests/oracle/spectrostream_encoder_oracle.py.

Oracle tolerances: streaming codes identical to upstream's step-wise ``waveform_to_codes_layer``
on >= 99% of codes, any mismatch only on an RVQ near tie (observed: 100% on tiny and full);
pre-quantization embeddings within 1e-5 x their scale (observed ~1e-6); our encoder -> our
decoder vs upstream's streaming encode -> decode: SNR >= 60 dB.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from bridge import io_names
from bridge.runtime import StatefulSession
from onnx_export.spectrostream import build_codec_decoder, synth_spectrostream_tensors
from onnx_export.spectrostream_config import QUANTIZER_KEY, codec_config
from onnx_export.spectrostream_encoder import (
    EMBEDDINGS,
    build_codec_encoder,
    codec_encoder_manifest_entry,
    encoder_tensor_shapes,
    synth_spectrostream_encoder_tensors,
)
from tests.oracle_util import require_oracle, run_oracle

logger = logging.getLogger(__name__)

FRAME = 1920
P = "params/encoder/"


def mixed_signal(frames: int, seed: int = 0) -> np.ndarray:
    """Mixed sines (with a chirp and an onset) plus noise, 48 kHz stereo, [frames*1920, 2]."""
    rng = np.random.default_rng(seed)
    t = np.arange(frames * FRAME) / 48000.0
    left = (0.3 * np.sin(2 * np.pi * 440 * t) + 0.1 * np.sin(2 * np.pi * (200 + 400 * t) * t)
            + 0.05 * rng.standard_normal(t.size))
    right = (0.2 * np.sin(2 * np.pi * 1234 * t) + 0.1 * np.sin(2 * np.pi * 97 * t)
             + 0.3 * (t > t[-1] / 2) * np.sin(2 * np.pi * 3000 * t)
             + 0.05 * rng.standard_normal(t.size))
    return np.stack([left, right], axis=1).astype(np.float32)


def session(model) -> StatefulSession:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 2
    return StatefulSession(ort.InferenceSession(model.SerializeToString(), opts,
                                                providers=["CPUExecutionProvider"]),
                           name="codec_encoder")


def encode(sess: StatefulSession, audio: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    codes, embs = [], []
    for i in range(len(audio) // FRAME):
        out = sess.run({io_names.AUDIO: audio[None, i * FRAME:(i + 1) * FRAME]})
        codes.append(out[io_names.CODES][0])
        if EMBEDDINGS in out:
            embs.append(out[EMBEDDINGS][0])
    return np.array(codes), (np.array(embs) if embs else None)


@pytest.fixture(scope="module")
def tiny():
    cfg = codec_config("tiny")
    weights = synth_spectrostream_encoder_tensors(cfg, np.random.default_rng(0))
    return cfg, weights, build_codec_encoder(weights, cfg)


def test_synth_tensors_match_layout_and_are_not_degenerate():
    cfg = codec_config("tiny")
    w = synth_spectrostream_encoder_tensors(cfg, np.random.default_rng(3))
    shapes = encoder_tensor_shapes(cfg)
    assert set(w) == set(shapes)
    for key, arr in w.items():
        assert arr.shape == shapes[key] and arr.dtype == np.float32, key
        assert key.startswith(P) or key == QUANTIZER_KEY
        assert np.std(arr) > 0, f"{key} is constant"
    assert QUANTIZER_KEY not in synth_spectrostream_encoder_tensors(
        cfg, np.random.default_rng(3), include_quantizer=False)


def test_full_layout_matches_upstream_encoder():
    # Shapes read from upstream's initialised full-size SpectroStream (see the oracle test).
    shapes = encoder_tensor_shapes(codec_config("full"), include_quantizer=False)
    assert len(shapes) == 48
    assert shapes[P + "base_conv_first/conv/kernel"] == (7, 7, 2, 32)
    assert shapes[P + "encoder_2/conv2d_3x6_a/conv/kernel"] == (3, 6, 64, 128)
    assert shapes[P + "encoder_5/conv2d_4x4_a/conv/kernel"] == (4, 4, 128, 256)
    assert shapes[P + "encoder_6/conv2d_3x3/conv/kernel"] == (3, 3, 512, 512)
    assert shapes[P + "encoder_6/shortcut_layer/conv1x1/conv/kernel"] == (1, 1, 512, 256)
    assert shapes[P + "output_convs/shortcut_layer/conv1x1_b1/conv/kernel"] == (1, 1, 1280, 1280)
    assert P + "encoder_1/shortcut_layer/conv1x1/conv/kernel" not in shapes


def test_missing_tensor_is_named(tiny):
    cfg, weights, _ = tiny
    key = P + "encoder_5/conv2d_4x4_a/conv/bias"
    with pytest.raises(ValueError, match=key):
        build_codec_encoder({k: v for k, v in weights.items() if k != key}, cfg)
    with pytest.raises(ValueError, match=QUANTIZER_KEY):
        build_codec_encoder({k: v for k, v in weights.items() if k != QUANTIZER_KEY}, cfg)


def test_wrong_shape_is_named(tiny):
    cfg, weights, _ = tiny
    key = P + "bottleneck/conv2d_3x3_a/conv/kernel"
    bad = dict(weights)
    bad[key] = np.zeros((3, 3, 5, 5), np.float32)
    with pytest.raises(ValueError, match=r"bottleneck/conv2d_3x3_a/conv/kernel.*\(3, 3, 5, 5\)"):
        build_codec_encoder(bad, cfg)
    with pytest.raises(ValueError, match=r"codec encoder: checkpoint tensor"):
        build_codec_encoder(weights, codec_config("full"))


def test_graph_io_and_initializer_names(tiny):
    cfg, weights, model = tiny
    inputs = {i.name: i for i in model.graph.input}
    outputs = {o.name: o for o in model.graph.output}
    assert [d.dim_value for d in inputs[io_names.AUDIO].type.tensor_type.shape.dim] == [1, FRAME, 2]
    assert [d.dim_value for d in outputs[io_names.CODES].type.tensor_type.shape.dim] == [1, 12]
    assert EMBEDDINGS not in outputs
    pasts = {n for n in inputs if n.startswith(io_names.PAST)}
    assert {io_names.present(io_names.state_name(p)) for p in pasts} == set(outputs) - {
        io_names.CODES}
    for inp in model.graph.input:
        assert all(d.dim_value > 0 for d in inp.type.tensor_type.shape.dim), inp.name
    inits = {t.name for t in model.graph.initializer}
    for key in weights:
        if key.endswith(("/kernel", "/bias")):
            assert key in inits, key
    entry = codec_encoder_manifest_entry(cfg)
    assert entry["latency_frames"] == 1 and entry["latency_samples"] == FRAME
    assert entry["encoder"] == io_names.CODEC_ENCODER + ".onnx"


def test_conv_nodes_are_named_by_block_and_layer(tiny):
    _cfg, _weights, model = tiny
    convs = [n.name.rsplit("/", 1)[0] for n in model.graph.node if n.op_type == "Conv"]
    assert len(set(n.name for n in model.graph.node)) == len(model.graph.node)
    assert convs[0] == "codec_encoder/base_conv_first"
    assert {"codec_encoder/encoder_0/conv2d_3x3", "codec_encoder/encoder_5/conv1x1",
            "codec_encoder/bottleneck/conv2d_3x3_a"} <= set(convs)


def test_stream_latency_state_and_reset(tiny):
    _cfg, _, model = tiny
    sess = session(model)
    audio = mixed_signal(10)
    a, _ = encode(sess, audio)
    assert a.shape == (10, 12) and a.dtype == np.int64
    assert not a[0].any(), "first call's codes are masked to 0 (upstream latency)"
    assert (a[1:] >= 0).all() and (a[1:] < 1024).all()
    assert len(np.unique(a[1:, 0])) >= 5, "codes do not follow the audio: test proves nothing"
    # Latency: call k returns the codes of audio frame k-1, whose STFT looks 480 samples
    # (one hop) into frame k. So audio after that hop in frame 4 first shows in call 5 ...
    other = audio.copy()
    other[4 * FRAME + 480:5 * FRAME] *= -1.0
    sess.reset()
    b, _ = encode(sess, other)
    np.testing.assert_array_equal(a[:5], b[:5])
    assert not np.array_equal(a[5], b[5])
    # ... while frame 4's first hop already shows in call 4.
    other = audio.copy()
    other[4 * FRAME:4 * FRAME + 480] *= -1.0
    sess.reset()
    b, _ = encode(sess, other)
    np.testing.assert_array_equal(a[:4], b[:4])
    assert not np.array_equal(a[4], b[4])
    sess.reset()
    np.testing.assert_array_equal(encode(sess, audio)[0], a)


# -- upstream parity --------------------------------------------------------------------------

def oracle_encode(tmp_path: Path, cfg, weights: dict, audio: np.ndarray, decode: bool) -> dict:
    np.savez(tmp_path / "w.npz", **weights)
    np.save(tmp_path / "audio.npy", audio)
    run_oracle("spectrostream_encoder_oracle.py", "encode",
               "--overrides", json.dumps(cfg.upstream_overrides()),
               "--tensors", str(tmp_path / "w.npz"), "--audio", str(tmp_path / "audio.npy"),
               "--out", str(tmp_path / "oracle.npz"), *(["--decode"] if decode else []))
    with np.load(tmp_path / "oracle.npz") as z:
        return {k: z[k] for k in z.files}


def rvq_gaps(emb: np.ndarray, codebooks: np.ndarray, levels: int) -> np.ndarray:
    """[frames, levels] distance gap between the best and second-best code (float64 RVQ)."""
    r = emb.astype(np.float64).copy()
    gaps = np.zeros((len(emb), levels))
    for i in range(levels):
        c = codebooks[i].astype(np.float64)
        d = ((r[:, None, :] - c[None]) ** 2).sum(-1)
        two = np.sort(d, axis=1)[:, :2]
        gaps[:, i] = two[:, 1] - two[:, 0]
        r -= c[np.argmin(d, axis=1)]
    return gaps


def snr_db(ref: np.ndarray, x: np.ndarray) -> float:
    err = float(np.sum((ref.astype(np.float64) - x) ** 2))
    return 10 * np.log10(float(np.sum(ref.astype(np.float64) ** 2)) / max(err, 1e-30))


@pytest.mark.oracle
@pytest.mark.parametrize("size", ["tiny", "full"])
def test_layout_matches_upstream_init(size, tmp_path):
    require_oracle()
    cfg = codec_config(size)
    run_oracle("spectrostream_encoder_oracle.py", "shapes", "--overrides",
               json.dumps(cfg.upstream_overrides()), "--out", str(tmp_path / "s.json"))
    upstream = {k: tuple(v) for k, v in json.loads((tmp_path / "s.json").read_text()).items()}
    assert upstream == encoder_tensor_shapes(cfg, include_quantizer=False)


@pytest.mark.oracle
@pytest.mark.parametrize("size,frames", [("tiny", 100), ("full", 40)])
def test_stream_and_roundtrip_match_upstream(size, frames, tmp_path):
    require_oracle()
    cfg = codec_config(size)
    weights = synth_spectrostream_tensors(cfg, np.random.default_rng(21))  # decoder + RVQ
    weights.update(synth_spectrostream_encoder_tensors(cfg, np.random.default_rng(22),
                                                       include_quantizer=False))
    audio = mixed_signal(frames, seed=23)
    ref = oracle_encode(tmp_path, cfg, weights, audio, decode=True)
    codes, embs = encode(session(build_codec_encoder(weights, cfg, include_embeddings=True)),
                         audio)

    # Upstream's own streaming contract: first frame masked; step k == whole-signal frame k-1.
    assert not ref["stream_mask"][0] and ref["stream_mask"][1:].all()
    np.testing.assert_array_equal(ref["stream_codes"][1:], ref["layer_codes"][:-1])

    rc = ref["stream_codes"]
    assert rc.shape == codes.shape == (frames, 12)
    assert len(np.unique(rc[1:], axis=0)) == frames - 1, "degenerate reference codes"
    scale = float(np.abs(ref["stream_emb"][1:]).max())
    assert scale > 0.1
    emb_err = float(np.abs(embs[1:] - ref["stream_emb"][1:]).max())
    assert emb_err <= 1e-5 * scale, f"embedding error {emb_err:.3g} (scale {scale:.3g})"
    match = float((codes == rc).mean())
    assert match >= 0.99, f"code match rate {match:.4f}"
    gaps = rvq_gaps(ref["stream_emb"], weights[QUANTIZER_KEY], 12)
    for f in np.unique(np.nonzero(codes != rc)[0]):
        first = int(np.argmax(codes[f] != rc[f]))   # later levels follow from this one
        assert gaps[f, first] < 1e-3 * scale, f"frame {f} level {first}: not an RVQ near tie"

    # Round trip: our encoder -> our decoder vs upstream's streaming encode -> decode.
    dec = session(build_codec_decoder(weights, cfg))
    ours = np.concatenate([dec.run({io_names.CODES: codes[i:i + 1]})[io_names.AUDIO][0]
                           for i in range(frames)])
    rt = ref["roundtrip"]
    assert rt.shape == ours.shape == (frames * FRAME, 2)
    assert np.abs(rt).max() > 1e-2, "reference round trip is (near) silent"
    snr = snr_db(rt, ours)
    logger.info("%s: codes match %.4f, embedding max err %.3g (scale %.3g), round-trip SNR "
                "%.1f dB", size, match, emb_err, scale, snr)
    assert snr >= 60.0
