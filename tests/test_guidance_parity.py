"""Logit-level guidance and prefill vs the upstream JAX oracle (magenta-rt 2.0.3, float32, CPU).

Upstream's live engine (``magenta_rt/mlx/export.py`` streaming_step) runs a batch of
rows [positive, style-negative, notes-negative] and samples once per level from
``full + s_style (full - neg_style) + s_notes (full - neg_notes)``. The JAX
depthformer sampler takes the same ``classifier_free_guidance_scale_<key>`` /
``classifier_free_guidance_negative_<key>`` constants with the same code, so it is
the oracle here. For both tiny shapes and num_cfgs 1 and 2, with conditioning and
guidance scales that change every frame, we require:

- greedy (top-k 1) tokens identical for 105 frames (KV eviction ~100 times);
- the guided logits every level was sampled from within 1e-3 absolute.

Prefill: after upstream's prefill (context tokens forced as previous frames, style and
notes masked; ``core/src/mlx_engine.cpp`` prefill_with_token_array) from silence (550
frames of the codec's silence tokens) and from an audio clip (encoded by our
SpectroStream encoder, trimmed 25 frames per end), guided greedy tokens are identical.
"""

from __future__ import annotations

import numpy as np
import pytest

from bridge.engine import Engine
from bridge.prefill import PrefillSpec, audio_codes, prefill_conditioning, prefill_tokens
from onnx_export.mrt2.export import export_package
from onnx_export.mrt2.synth import write_checkpoint, write_codec_encoder
from tests.oracle_util import require_oracle, run_oracle
from tests.test_depthformer_parity import varied_conditioning

pytestmark = [pytest.mark.oracle, pytest.mark.slow]

FRAMES = 105
AFTER_PREFILL = 30
LOGIT_TOL = 1e-3
CASES = [("tiny", 11, 1), ("tiny", 11, 2), ("tiny_base", 12, 1), ("tiny_base", 12, 2)]


def guidance_sweep(n: int, seed: int) -> np.ndarray:
    """Per-frame (style, notes, drums) scales over upstream's whole range, binned as the vectors are."""
    scales = np.random.default_rng(seed).uniform(-1.0, 7.0, (n, 3)).astype(np.float32)
    scales[n // 3] = 0.0  # a frame with guidance off
    return scales


def run_upstream(d, ckpt, size, cond, guidance, num_cfgs, name, prefill=None, frames=None):
    np.save(d / f"{name}_cond.npy", cond)
    np.save(d / f"{name}_guidance.npy", guidance)
    args = ["--size", size, "--checkpoint", str(ckpt), "--conditioning", str(d / f"{name}_cond.npy"),
            "--frames", str(frames or len(cond)), "--mode", "greedy", "--num-cfgs", str(num_cfgs),
            "--guidance", str(d / f"{name}_guidance.npy"), "--out", str(d / f"{name}.npz")]
    if prefill is not None:
        tokens, pre_cond = prefill
        np.save(d / f"{name}_prefill.npy", tokens)
        np.save(d / f"{name}_prefill_cond.npy", pre_cond)
        args += ["--prefill-tokens", str(d / f"{name}_prefill.npy"),
                 "--prefill-conditioning", str(d / f"{name}_prefill_cond.npy")]
    run_oracle("depthformer_oracle.py", "run", *args)
    return dict(np.load(d / f"{name}.npz"))


def with_bins(cond: np.ndarray, guidance: np.ndarray) -> np.ndarray:
    """The vectors with their guidance bins set from the float scales (as the daemon builds them)."""
    from bridge.conditioning import (
        CFG_DRUMS_INDEX,
        CFG_NOTES_INDEX,
        CFG_STYLE_INDEX,
        cfg_drums_bin,
        cfg_style_notes_bin,
    )

    out = cond.copy()
    for row, (s, n, d) in zip(out, guidance):
        row[CFG_STYLE_INDEX], row[CFG_NOTES_INDEX], row[CFG_DRUMS_INDEX] = (
            cfg_style_notes_bin(s), cfg_style_notes_bin(n), cfg_drums_bin(d))
    return out


def generate(engine: Engine, cond: np.ndarray, guidance: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    frames = [engine.generate(c, temperature=1.0, top_k=1, guidance=tuple(map(float, g)))
              for c, g in zip(cond, guidance)]
    return np.stack([f.tokens for f in frames]), np.stack([f.logits for f in frames])


@pytest.fixture(scope="module", params=CASES, ids=[f"{s}-seed{k}-cfgs{n}" for s, k, n in CASES])
def case(request, tmp_path_factory):
    require_oracle()
    size, seed, num_cfgs = request.param
    d = tmp_path_factory.mktemp(f"{size}{seed}cfg{num_cfgs}")
    ckpt = d / "ckpt.safetensors"
    run_oracle("depthformer_oracle.py", "make-checkpoint", "--size", size, "--seed", str(seed), "--out", str(ckpt))
    guidance = guidance_sweep(FRAMES, seed)
    cond = with_bins(varied_conditioning(FRAMES, seed), guidance)
    ref = run_upstream(d, ckpt, size, cond, guidance, num_cfgs, "guided")
    pkg = export_package(ckpt, size, d / "pkg", progress=False)
    return dict(size=size, num_cfgs=num_cfgs, pkg=pkg, cond=cond, guidance=guidance, ref=ref)


def test_guided_greedy_tokens_identical(case):
    engine = Engine(case["pkg"], provider="cpu", decode_audio=False, num_cfgs=case["num_cfgs"])
    tokens, _ = generate(engine, case["cond"], case["guidance"])
    mismatched = np.nonzero((tokens != case["ref"]["tokens"]).any(axis=1))[0]
    assert mismatched.size == 0, f"tokens differ from frame {mismatched[0]} on"


def test_guided_logits_within_tolerance(case):
    engine = Engine(case["pkg"], provider="cpu", decode_audio=False, num_cfgs=case["num_cfgs"])
    _, logits = generate(engine, case["cond"], case["guidance"])
    err = np.abs(logits - case["ref"]["logits"]).max(axis=2)
    assert err.max() <= LOGIT_TOL, f"max |guided logit error| {err.max():.2e} at (frame, level) " \
                                   f"{np.unravel_index(err.argmax(), err.shape)}"
    # Not vacuous: guidance changes the logits (the guided mix differs from the positive row's).
    plain = Engine(case["pkg"], provider="cpu", decode_audio=False, num_cfgs=0)
    _, positive = generate(plain, case["cond"], case["guidance"])
    assert np.abs(positive - logits).max() > 0.1


# ----------------------------------------------------------------------------- prefill
@pytest.fixture(scope="module")
def prefill_case(tmp_path_factory):
    """A synthetic tiny checkpoint with its codec encoder (prefill encodes audio)."""
    require_oracle()
    d = tmp_path_factory.mktemp("prefill")
    ckpt = write_checkpoint("tiny", 21, d / "tiny21.safetensors")
    enc = write_codec_encoder("tiny", 21, d / "encoder.safetensors")
    pkg = export_package(ckpt, "tiny", d / "pkg", codec_encoder=enc, progress=False)
    return d, ckpt, pkg


def _clip(seconds: float = 3.2) -> np.ndarray:
    t = np.arange(int(seconds * 48000)) / 48000
    rng = np.random.default_rng(4)
    left = 0.4 * np.sin(2 * np.pi * (220 + 200 * t) * t) + 0.05 * rng.standard_normal(t.size)
    return np.stack([left, np.roll(left, 77)], axis=1).astype(np.float32)


@pytest.mark.parametrize("kind", ["silence", "audio"])
def test_prefill_matches_upstream(prefill_case, kind):
    d, ckpt, pkg = prefill_case
    guidance = np.tile(np.float32([2.4, 1.6, 1.0]), (AFTER_PREFILL, 1))
    cond = with_bins(varied_conditioning(AFTER_PREFILL, 5), guidance)
    engine = Engine(pkg, provider="cpu", decode_audio=False, num_cfgs=2)
    if kind == "silence":
        tokens = prefill_tokens(engine, PrefillSpec("silence"))
        assert len(tokens) == 550 and (tokens == tokens[0]).all()
        engine.prefill(tokens, prefill_conditioning(tuple(guidance[0])))
    else:
        from bridge.engine import codes_to_tokens

        tokens = codes_to_tokens(audio_codes(engine, _clip()))
        assert len(tokens) == 80 - 50 and len(np.unique(tokens, axis=0)) > 10  # real, varied context
        engine.prefill(tokens, prefill_conditioning(tuple(guidance[0])))
    ref = run_upstream(d, ckpt, "tiny", cond, guidance, 2, f"prefill_{kind}",
                       prefill=(tokens, prefill_conditioning(tuple(guidance[0]))))
    ours, _ = generate(engine, cond, guidance)
    mismatched = np.nonzero((ours != ref["tokens"]).any(axis=1))[0]
    assert mismatched.size == 0, f"tokens differ from frame {mismatched[0]} on"
    # The prefill matters: a stream without it continues differently.
    engine.clear_prefill()
    engine.reset()
    fresh, _ = generate(engine, cond, guidance)
    assert (fresh != ours).any()
