"""Live v1 oracle (opt-in): a fresh upstream v1 run still equals the golden files in tests/data/v1/.

Deselected by default (marker ``oracle_v1``). Run it with the v1 oracle env built by
scripts/setup_v1_oracle.sh and the MRT2 oracle (.venv-oracle, for the codec):

    MRT_V1_ORACLE_PYTHON=$PWD/.venv-v1-oracle/bin/python MRT_ORACLE_PYTHON=$PWD/.venv-oracle/bin/python \\
        .venv/bin/python -m pytest -m oracle_v1 tests/test_v1_oracle.py
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.ci import missing

pytestmark = [pytest.mark.oracle_v1, pytest.mark.slow]
ORACLE_V1_DIR = Path(__file__).parent / "oracle_v1"
DATA = Path(__file__).parent / "data" / "v1"


def _require(var: str) -> str:
    value = os.environ.get(var, "").strip()
    if not value:
        missing(f"{var} is not set (see tests/data/v1/README.md)")
    if not Path(value).exists():
        pytest.fail(f"{var}={value!r} does not exist", pytrace=False)
    return value


def test_param_trees_equal_upstream_init():
    python = _require("MRT_V1_ORACLE_PYTHON")
    for size in ("tiny", "base", "large"):
        out = subprocess.run(
            [python, str(ORACLE_V1_DIR / "param_tree.py"), size],
            cwd=ORACLE_V1_DIR,
            capture_output=True,
            text=True,
            check=True,
            timeout=600,
        ).stdout
        assert out == (DATA / f"param_tree_{size}.tsv").read_text(), size


def test_golden_files_equal_a_fresh_oracle_run():
    _require("MRT_V1_ORACLE_PYTHON")
    _require("MRT_ORACLE_PYTHON")
    proc = subprocess.run(
        [sys.executable, str(ORACLE_V1_DIR / "record.py"), "--check"],
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert proc.stdout.count(": same") == len(list(DATA.glob("tokens_*.npz")))
