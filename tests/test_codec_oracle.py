"""SpectroStream decoder graph vs upstream magenta-rt (JAX) on test-made weights.

Runs tests/oracle/spectrostream_oracle.py under $MRT_ORACLE_PYTHON. Tolerances: streaming
decode SNR >= 60 dB against upstream's own streaming step (observed ~114-121 dB); against
upstream's whole-sequence decode (no boundary artifacts) SNR >= 60 dB and max abs error
<= 1e-5 on every sample, frame boundaries included (observed ~1e-7 at |x| ~ 0.5).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from bridge import io_names
from bridge.runtime import StatefulSession
from onnx_export.spectrostream import (
    build_codec_decoder,
    codec_config,
    decoder_tensor_shapes,
    synth_spectrostream_tensors,
)
from tests.oracle_util import require_oracle, run_oracle

pytestmark = pytest.mark.oracle
FRAME = 1920


def snr_db(ref: np.ndarray, x: np.ndarray) -> float:
    err = float(np.sum((ref.astype(np.float64) - x) ** 2))
    return 10 * np.log10(float(np.sum(ref.astype(np.float64) ** 2)) / max(err, 1e-30))


def our_stream(weights: dict, cfg, codes: np.ndarray) -> np.ndarray:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 2
    sess = StatefulSession(ort.InferenceSession(
        build_codec_decoder(weights, cfg).SerializeToString(), opts,
        providers=["CPUExecutionProvider"]), name="codec_decoder")
    return np.concatenate([sess.run({io_names.CODES: codes[i:i + 1]})[io_names.AUDIO][0]
                           for i in range(len(codes))])


def oracle_decode(tmp_path: Path, cfg, weights: dict, codes: np.ndarray) -> dict:
    np.savez(tmp_path / "w.npz", **weights)
    np.save(tmp_path / "codes.npy", codes)
    run_oracle("spectrostream_oracle.py", "decode",
               "--overrides", json.dumps(cfg.upstream_overrides()),
               "--tensors", str(tmp_path / "w.npz"), "--codes", str(tmp_path / "codes.npy"),
               "--out", str(tmp_path / "oracle.npz"))
    with np.load(tmp_path / "oracle.npz") as z:
        return {k: z[k] for k in z.files}


@pytest.mark.parametrize("size", ["tiny", "full"])
def test_layout_matches_upstream_init(size, tmp_path):
    require_oracle()
    cfg = codec_config(size)
    run_oracle("spectrostream_oracle.py", "shapes", "--overrides",
               json.dumps(cfg.upstream_overrides()), "--out", str(tmp_path / "s.json"))
    upstream = json.loads((tmp_path / "s.json").read_text())
    upstream = {k: tuple(v) for k, v in upstream.items()
                if k.startswith(("params/soundstream/decoder/", "params/soundstream/quantizer/"))}
    assert upstream == decoder_tensor_shapes(cfg)


@pytest.mark.parametrize("size,frames", [("tiny", 120), ("full", 24)])
def test_stream_matches_upstream(size, frames, tmp_path):
    require_oracle()
    cfg = codec_config(size)
    weights = synth_spectrostream_tensors(cfg, np.random.default_rng(11))
    codes = np.random.default_rng(12).integers(0, cfg.num_embeddings, (frames, 12))
    ref = oracle_decode(tmp_path, cfg, weights, codes)
    ours = our_stream(weights, cfg, codes)

    stream = ref["stream"]
    assert stream.shape == ours.shape == (frames * FRAME, 2)
    # Upstream's first frame is masked (decoder lookahead): silence, same delay as ours.
    assert not ref["stream_mask"][:FRAME].any() and ref["stream_mask"][FRAME:].all()
    assert not stream[:FRAME].any() and not ours[:FRAME].any()
    assert np.abs(stream[FRAME:]).max() > 1e-2, "reference is (near) silent: test proves nothing"
    assert snr_db(stream, ours) >= 60.0

    # Frame-by-frame == whole sequence at once (shifted by the one-frame latency).
    layer = ref["layer"]
    assert layer.shape == ((frames - 1) * FRAME, 2)
    ours_aligned = ours[FRAME:]
    assert snr_db(layer, ours_aligned) >= 60.0
    err = np.abs(layer - ours_aligned)
    assert err.max() <= 1e-5, f"max abs error {err.max():.3g} at sample {err.argmax() // 2}"
    boundaries = np.concatenate([np.arange(k * FRAME - 4, k * FRAME + 4)
                                 for k in range(1, frames - 1)])
    assert err[boundaries].max() <= 1e-5
