"""benchmarks/vector_units.py builds its probe and reports each CPU's int8 multiply and memory read rates."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bridge.bench import machine
from bridge.kernels.build import compiler
from tests.ci import missing

ROOT = Path(__file__).resolve().parents[1]


def test_vector_units_reports_each_cpu_alone_and_together():
    if "avx2" not in machine()["isa"]:
        pytest.skip("the probe needs AVX2")
    if compiler() is None:
        missing("no C compiler (cc/gcc) for benchmarks/vector_units.c")
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "vector_units.py"), "--repeat", "1",
                          "--iterations", "1000000", "--read-mb", "8"], capture_output=True, text=True, check=True, cwd=ROOT)
    report = json.loads(out.stdout.strip().splitlines()[-1])
    cpus = sorted(os.sched_getaffinity(0))
    assert report["cpus"] == cpus and len(report["together_gmac_s"]) == len(cpus)
    assert all(v > 0 for v in report["alone_gmac_s"].values()) and all(v > 0 for v in report["together_gmac_s"])
    assert 0 < report["together_over_alone"] < 3
    assert f"cpu {cpus[0]}: alone" in out.stdout
    assert report["read_mb"] == 8 and set(report["alone_read_gb_s"]) == {str(c) for c in cpus}
    assert all(v > 0 for v in report["alone_read_gb_s"].values()) and all(v > 0 for v in report["together_read_gb_s"])
    assert len(report["together_read_gb_s"]) == len(cpus) and report["read_together_over_alone"] > 0


def test_vector_units_refuses_an_empty_read_in_one_line():
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "vector_units.py"), "--read-mb", "0"],
                         capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 2 and "--read-mb must be >= 1" in out.stderr and "Traceback" not in out.stderr
