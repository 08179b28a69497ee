"""benchmarks/soak.py and osc_flood.py start the daemon from the repository root: a package
path the user gave relative to their own directory must reach it as an absolute path."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from soak import model_args  # noqa: E402


def test_relative_package_path_becomes_absolute(tmp_path, monkeypatch) -> None:
    (tmp_path / "small_int8").mkdir()
    monkeypatch.chdir(tmp_path)
    assert model_args("small_int8") == ["--model", str(tmp_path / "small_int8")]


def test_cached_package_name_and_default_pass_unchanged(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert model_args("mrt2_small_int8") == ["--model", "mrt2_small_int8"]
    assert model_args(None) == []
