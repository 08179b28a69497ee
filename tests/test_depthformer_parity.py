"""Parity of our ONNX depthformer with the upstream JAX oracle (magenta-rt 2.0.3, float32, CPU).

For each tiny configuration (mrt2_small-shaped with a depth adapter, and
mrt2_base-shaped with equal widths) and two checkpoint seeds, the oracle makes
a checkpoint in the upstream layout and streams frames through upstream's own
modules. We export that checkpoint, stream the same conditioning through
ONNX Runtime and require:

- greedy decoding (top-k 1): identical tokens for 110 frames (the attention
  window is 4-5 frames, so KV eviction happens ~100 times);
- teacher forcing: soft-capped logits of every depth level within 1e-3
  absolute of the oracle's, for every frame.
"""

from __future__ import annotations

import numpy as np
import pytest

from bridge.conditioning import build_vector
from bridge.engine import Engine
from onnx_export.mrt2.export import export_package
from tests.oracle_util import require_oracle, run_oracle

pytestmark = [pytest.mark.oracle, pytest.mark.slow]

FRAMES = 110
LOGIT_TOL = 1e-3
CASES = [("tiny", 1), ("tiny", 2), ("tiny_base", 3), ("tiny_base", 4)]


def varied_conditioning(n: int, seed: int) -> np.ndarray:
    """Style tokens that change mid-stream, held and re-struck notes, drums on/off, CFG sweeps."""
    rng = np.random.default_rng(seed)
    style = rng.integers(0, 1024, 12)
    rows = []
    for i in range(n):
        if i == n // 2:
            style = rng.integers(0, 1024, 12)
        notes = np.full(128, -1)
        notes[48 + (i // 20) % 12] = 2 if i % 20 == 0 else 1
        notes[rng.integers(0, 128)] = rng.integers(0, 4)
        rows.append(build_vector(
            None if i % 37 == 36 else style, notes, int(rng.integers(-1, 2)),
            float(rng.uniform(-1, 7)), float(rng.uniform(-1, 7)), float(rng.uniform(-1, 7)),
        ))
    return np.stack(rows)


@pytest.fixture(scope="module", params=CASES, ids=[f"{s}-seed{k}" for s, k in CASES])
def case(request, tmp_path_factory):
    require_oracle()
    size, seed = request.param
    d = tmp_path_factory.mktemp(f"{size}{seed}")
    ckpt = d / "ckpt.safetensors"
    run_oracle("depthformer_oracle.py", "make-checkpoint", "--size", size, "--seed", str(seed), "--out", str(ckpt))
    cond = varied_conditioning(FRAMES, seed)
    np.save(d / "cond.npy", cond)
    teacher = np.random.default_rng(seed + 100).integers(0, 1024, (FRAMES, 12)) + 6 + 1024 * np.arange(12)
    np.save(d / "teacher.npy", teacher)
    common = ["--size", size, "--checkpoint", str(ckpt), "--conditioning", str(d / "cond.npy"), "--frames", str(FRAMES)]
    run_oracle("depthformer_oracle.py", "run", *common, "--mode", "greedy", "--out", str(d / "greedy.npz"))
    run_oracle("depthformer_oracle.py", "run", *common, "--mode", "teacher",
               "--teacher-tokens", str(d / "teacher.npy"), "--out", str(d / "teacher.npz"))
    pkg = export_package(ckpt, size, d / "pkg", progress=False)
    return dict(size=size, pkg=pkg, cond=cond, teacher=teacher,
                greedy=dict(np.load(d / "greedy.npz")), forced=dict(np.load(d / "teacher.npz")))


def test_greedy_tokens_identical_past_the_window(case):
    engine = Engine(case["pkg"], provider="cpu", decode_audio=False, num_cfgs=0)
    ref = case["greedy"]["tokens"]
    ours = np.stack([engine.step(c, temperature=1.0, top_k=1).tokens for c in case["cond"]])
    mismatched = np.nonzero((ours != ref).any(axis=1))[0]
    assert mismatched.size == 0, f"{case['size']}: tokens differ from frame {mismatched[0]} on"


def test_teacher_forced_logits_within_tolerance(case):
    engine = Engine(case["pkg"], provider="cpu", decode_audio=False, num_cfgs=0)
    ref = case["forced"]["logits"]
    errs = []
    for f, c in enumerate(case["cond"]):
        frame = engine.step(c, temperature=1.0, top_k=1, forced_tokens=case["teacher"][f])
        errs.append(np.abs(frame.logits - ref[f]).max(axis=1))  # per level
    errs = np.stack(errs)
    worst = np.unravel_index(errs.argmax(), errs.shape)
    assert errs.max() <= LOGIT_TOL, f"max |logit error| {errs.max():.2e} at frame {worst[0]} level {worst[1]}"
    # The comparison is not vacuous: logits vary across frames and levels.
    assert ref.std(axis=0).mean() > 0.05
