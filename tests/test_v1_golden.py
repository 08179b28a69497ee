"""The v1 golden files (tests/data/v1/, recorded from upstream v1) are consistent, and our codec export
decodes v1's 16 levels to upstream's crossfaded audio.

The tokens are upstream's ``MagentaRTT5X.generate_chunk`` output on the seeded tiny synthetic
checkpoint; the audio is the same chunks decoded by the MRT2 oracle's JAX SpectroStream (16
levels, tiny synthetic codec) and crossfaded by upstream's own ``generate_chunk``. See
tests/data/v1/README.md for how they were recorded.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from bridge import io_names
from bridge.runtime import StatefulSession
from onnx_export.spectrostream import build_codec_decoder
from onnx_export.v1 import config as v1
from onnx_export.v1.codec import codec_config, decode_plan, synth_codec_tensors

DATA = Path(__file__).parent / "data" / "v1"
TOKEN_FILES = sorted(DATA.glob("tokens_*.npz"))


def _load(path: Path) -> tuple[dict, dict]:
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files if k != "settings"}
        return arrays, json.loads(str(z["settings"]))


def fold_llm_tokens(llm: np.ndarray) -> np.ndarray:
    """Upstream's ``utils.llm_to_rvq(..., safe=False)``: any LM id -> an RVQ code of its level's codebook."""
    return (np.maximum(llm.astype(np.int64) - v1.CODEC_OFFSET, 0) % v1.CODEBOOK_SIZE).astype(np.int32)


def test_golden_files_exist_and_evict_context():
    names = {p.stem for p in TOKEN_FILES}
    assert {"tokens_nostyle_greedy", "tokens_style_cfg5_greedy", "tokens_style_cfg2_topk1"} <= names
    for p in TOKEN_FILES:
        arrays, settings = _load(p)
        n = settings["chunks"]
        assert arrays["tokens"].shape == (n, v1.CHUNK_FRAMES, v1.DECODER_LEVELS)
        assert arrays["llm_tokens"].shape == (n, 2, v1.DECODER_LENGTH)
        if "greedy" in p.stem:
            assert n > v1.CONTEXT_CHUNKS + 1, "the first chunk must have left the 10 s context"


@pytest.mark.parametrize("path", TOKEN_FILES, ids=lambda p: p.stem)
def test_golden_tokens_are_folded_llm_outputs(path):
    arrays, _ = _load(path)
    llm = arrays["llm_tokens"]
    # CFG: upstream copies the conditioned row's sample into the unconditioned row.
    np.testing.assert_array_equal(llm[:, 0], llm[:, 1])
    folded = fold_llm_tokens(llm[:, 0]).reshape(arrays["tokens"].shape)
    np.testing.assert_array_equal(folded, arrays["tokens"])
    # Random weights pick ids from the whole 29824-id vocabulary: the folding is exercised.
    assert (llm[:, 0] >= v1.CODEC_OFFSET + v1.CODEC_VOCAB).mean() > 0.2


def _upstream_crossfade(decoded: list[np.ndarray]) -> np.ndarray:
    """system.py generate_chunk: eqpower fade-in of each chunk over the previous chunk's extra frame."""
    n = v1.CROSSFADE_SAMPLES
    ramp = np.sin(np.linspace(0, np.pi / 2, n, endpoint=False, dtype=np.float32))[:, None]
    tail = np.zeros((n, v1.NUM_CHANNELS), np.float32)
    out = []
    for dec in decoded:
        chunk = dec[:-n].copy()
        chunk[:n] *= ramp
        chunk[:n] += tail * np.flip(ramp, axis=0)
        tail = dec[-n:]
        out.append(chunk)
    return np.stack(out)


def test_v1_codec_export_reproduces_upstream_audio():
    """Our MRT2 codec export at 16 levels + upstream's framing and crossfade == the recorded oracle audio."""
    golden, settings = _load(DATA / f"audio_{'style_cfg5_greedy'}.npz")
    tokens, _ = _load(DATA / f"tokens_{settings['case']}.npz")
    cfg = codec_config(settings["codec"])
    model = build_codec_decoder(synth_codec_tensors(settings["codec"], settings["codec_seed"]), cfg)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 2
    sess = StatefulSession(ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"]))
    decoded = []
    prev = np.zeros((v1.CROSSFADE_FRAMES, v1.DECODER_LEVELS), np.int32)  # chunk 0: upstream decodes zeros
    for c in range(settings["chunks"]):
        frames = np.concatenate([prev, tokens["tokens"][c].astype(np.int32)])
        sess.reset()  # upstream decodes every chunk from scratch
        plan = decode_plan(frames).astype(np.int64)
        audio = np.concatenate(
            [sess.run({io_names.CODES: plan[i : i + 1]})[io_names.AUDIO][0] for i in range(len(plan))]
        )
        decoded.append(audio[v1.FRAME_SAMPLES : (len(frames) + 1) * v1.FRAME_SAMPLES])
        prev = frames[-v1.CROSSFADE_FRAMES :]
    ours = _upstream_crossfade(decoded)[:, : settings["excerpt_samples"]]
    ours16 = np.round(np.clip(ours, -1, 1) * 32767).astype(np.int32)
    want = golden["audio_int16"].astype(np.int32)
    assert np.abs(want).max() > 1000, "golden audio is too quiet to prove anything"
    assert np.abs(ours16 - want).max() <= 1


def test_codec_comparison_tool_finds_identity_and_shifts():
    """tests/oracle_v1/compare_codec.py (run where the hub files exist) detects same / shifted / different codecs."""
    import sys

    sys.path.insert(0, str(Path(__file__).parent / "oracle_v1"))
    from compare_codec import compare, decode_ours

    tensors = synth_codec_tensors("tiny", 0)
    codes = np.random.default_rng(1).integers(0, v1.CODEBOOK_SIZE, (12, v1.DECODER_LEVELS), dtype=np.int32)
    table = tensors["params/soundstream/quantizer/embedding"]
    audio = decode_ours(tensors, codes)
    same = compare(table, audio, tensors, codes)
    assert same["codebooks_identical"] and same["best_shift_frames"] == 0 and same["snr_db"] > 100
    late = np.concatenate([np.zeros((v1.FRAME_SAMPLES, 2), np.float32), audio[: -v1.FRAME_SAMPLES]])
    assert compare(table, late, tensors, codes)["best_shift_frames"] == 1
    other = synth_codec_tensors("tiny", 7)["params/soundstream/quantizer/embedding"]
    diff = compare(other, audio + 0.1 * np.random.default_rng(2).standard_normal(audio.shape), tensors, codes)
    assert not diff["codebooks_identical"] and diff["snr_db"] < 30
