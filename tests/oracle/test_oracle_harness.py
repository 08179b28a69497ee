"""Tests of the upstream-oracle harness itself (tests/oracle_util.py, depthformer_oracle.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from tests import oracle_util
from tests.oracle_util import OracleError, require_oracle, run_oracle

NUM_RESERVED, CODEBOOK, LEVELS = 6, 1024, 12


def test_oracle_python_reads_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(oracle_util.ORACLE_ENV, raising=False)
    assert oracle_util.oracle_python() is None
    monkeypatch.setenv(oracle_util.ORACLE_ENV, "/some/python")
    assert oracle_util.oracle_python() == "/some/python"


def test_require_oracle_skips_without_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(oracle_util.ORACLE_ENV, raising=False)
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception):
        require_oracle()


def test_require_oracle_fails_on_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(oracle_util.ORACLE_ENV, raising=False)
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI=true"):
        require_oracle()


def test_run_oracle_surfaces_failures(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # Our own venv has no JAX: --help works (no module-level JAX import), a real
    # command fails, and the error must carry the child's stderr tail.
    monkeypatch.setenv(oracle_util.ORACLE_ENV, sys.executable)
    run_oracle("depthformer_oracle.py", "--help", timeout=60)
    np.save(tmp_path / "c.npy", np.full(144, -1, np.int32))
    with pytest.raises(OracleError, match="(?s)exited 1.*ModuleNotFoundError"):
        run_oracle("depthformer_oracle.py", "make-checkpoint", "--size", "tiny",
                   "--out", tmp_path / "x.safetensors", timeout=60)
    with pytest.raises(FileNotFoundError):
        run_oracle("no_such_script.py")


def _conditioning(frames: int, seed: int) -> np.ndarray:
    rng = np.random.RandomState(seed)
    cond = np.empty((frames, 144), np.int32)
    cond[:, :12] = rng.randint(0, 1024, (frames, 12))
    cond[:, 12:140] = rng.randint(-1, 4, (frames, 128))
    cond[:, 140] = rng.randint(-1, 2, frames)
    cond[:, 141:144] = [20, 10, 2]
    return cond


def _assert_valid_tokens(tokens: np.ndarray) -> None:
    lo = NUM_RESERVED + np.arange(LEVELS) * CODEBOOK
    assert np.all((tokens >= lo) & (tokens < lo + CODEBOOK))


@pytest.mark.oracle
@pytest.mark.slow
def test_depthformer_oracle_greedy_and_teacher_agree(tmp_path: Path) -> None:
    """Greedy (upstream sampler.step) vs our teacher driver fed the greedy tokens."""
    require_oracle()
    frames = 12  # > horizon 5, so the sliding windows wrap
    ckpt, cond = tmp_path / "tiny.safetensors", tmp_path / "cond.npy"
    np.save(cond, _conditioning(frames, seed=1))
    run_oracle("depthformer_oracle.py", "make-checkpoint", "--size", "tiny", "--seed", "0",
               "--out", ckpt)

    from safetensors.numpy import load_file

    weights = load_file(str(ckpt))
    assert all(k.startswith("params/depthformer/") for k in weights)
    assert not [k for k, v in weights.items() if np.all(v == 0) or np.all(v == 1)]

    greedy = tmp_path / "greedy.npz"
    run_oracle("depthformer_oracle.py", "run", "--size", "tiny", "--checkpoint", ckpt,
               "--conditioning", cond, "--frames", str(frames), "--mode", "greedy",
               "--out", greedy)
    g = dict(np.load(greedy))
    assert g["tokens"].shape == (frames, LEVELS)
    assert g["logits"].shape == (frames, LEVELS, CODEBOOK)
    assert g["temporal_out"].shape == (frames, 128) and g["encoded"].shape == (frames, 64)
    for key in ("logits", "temporal_out", "encoded"):
        assert np.isfinite(g[key]).all(), key
    _assert_valid_tokens(g["tokens"])
    np.testing.assert_array_equal(
        g["tokens"], NUM_RESERVED + np.arange(LEVELS) * CODEBOOK + g["logits"].argmax(-1))
    assert np.abs(g["logits"]).max() <= 30.0
    assert np.abs(np.diff(g["logits"], axis=0)).mean() > 0.1  # varies frame to frame
    assert len(np.unique(g["tokens"][:, 0])) > 1

    teacher_in = tmp_path / "teacher.npy"
    np.save(teacher_in, g["tokens"])
    teacher = tmp_path / "teacher.npz"
    run_oracle("depthformer_oracle.py", "run", "--size", "tiny", "--checkpoint", ckpt,
               "--conditioning", cond, "--frames", str(frames), "--mode", "teacher",
               "--teacher-tokens", teacher_in, "--out", teacher)
    t = dict(np.load(teacher))
    for key in ("tokens", "logits", "temporal_out", "encoded"):
        np.testing.assert_allclose(t[key], g[key], rtol=0, atol=1e-5, err_msg=key)
    np.testing.assert_array_equal(t["teacher_tokens"], g["tokens"])
