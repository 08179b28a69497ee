"""Live v1 oracle (opt-in, marker ``oracle_v1``): our engine == a fresh upstream v1 run on a new checkpoint.

The golden-file tests (tests/test_v1_parity.py) pin one checkpoint; this one draws another
(seed 5) and settings not in the golden files, runs upstream's ``generate_chunk`` on it
(tests/oracle_v1/generate.py, float32 activations) and our package on the same checkpoint:

    MRT_V1_ORACLE_PYTHON=$PWD/.venv-v1-oracle/bin/python .venv/bin/python -m pytest -m oracle_v1 \\
        tests/test_v1_engine_oracle.py
"""

from __future__ import annotations

import subprocess

import numpy as np
import pytest

from bridge.v1.engine import V1Engine
from onnx_export.v1.export import export_v1_package
from onnx_export.v1.synth import write_checkpoint

from .test_v1_oracle import ORACLE_V1_DIR, _require

pytestmark = [pytest.mark.oracle_v1, pytest.mark.slow]
CASE = dict(chunks=6, seed=9, guidance=3.0, temperature=0.0, topk=40, style="7,77,777,1000,0,512")


def test_engine_equals_a_fresh_upstream_run(tmp_path):
    python = _require("MRT_V1_ORACLE_PYTHON")
    ckpt = write_checkpoint("tiny", 5, tmp_path / "ckpt")
    args = [python, str(ORACLE_V1_DIR / "generate.py"), "--checkpoint", str(ckpt), "--out", str(tmp_path / "up.npz")]
    for key, value in CASE.items():
        args += [f"--{key}", str(value)]
    subprocess.run(args, check=True, cwd=ORACLE_V1_DIR, timeout=1800)
    with np.load(tmp_path / "up.npz") as z:
        upstream, llm = z["tokens"], z["llm_tokens"]
    engine = V1Engine(export_v1_package(ckpt, tmp_path / "pkg", progress=False), provider="cpu")
    style = np.array([int(x) for x in CASE["style"].split(",")])
    for c in range(CASE["chunks"]):
        chunk = engine.generate_chunk(style, seed=CASE["seed"], guidance_weight=CASE["guidance"],
                                      temperature=CASE["temperature"], topk=CASE["topk"])
        np.testing.assert_array_equal(chunk.lm_tokens.reshape(-1), llm[c, 0], err_msg=f"chunk {c}")
        np.testing.assert_array_equal(chunk.tokens, upstream[c], err_msg=f"chunk {c}")
