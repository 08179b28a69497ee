"""benchmarks/soak.py and osc_flood.py start the daemon in the caller's directory, so a package
path the user gave relative to it (``--model small_int8``) reaches the daemon as they meant."""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from soak import start_daemon  # noqa: E402


def test_daemon_runs_in_the_callers_directory_with_its_log(tmp_path, monkeypatch) -> None:
    (tmp_path / "small_int8").mkdir()
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    probe = "import os, sys; print(os.getcwd(), os.path.isdir(sys.argv[1]))"
    proc, log = start_daemon([sys.executable, "-c", probe, "small_int8"], "probe")
    assert proc.wait(30) == 0
    assert log == tmp_path / f"mrt-probe-{os.getpid()}.log"
    assert log.read_text().split() == [str(tmp_path), "True"]
