"""Shared fixtures: tiny checkpoints and packages built once per test session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


@pytest.fixture(scope="session", autouse=True)
def _isolated_cache(tmp_path_factory):
    """Keep the bundled synthetic model of the test run out of the user's cache."""
    if "MRT_BRIDGE_CACHE" not in os.environ:
        os.environ["MRT_BRIDGE_CACHE"] = str(tmp_path_factory.mktemp("mrt-cache"))
    yield


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Path:
    from onnx_export.mrt2.synth import write_checkpoint

    return write_checkpoint("tiny", 7, tmp_path_factory.mktemp("ckpt") / "tiny7.safetensors")


@pytest.fixture(scope="session")
def tiny_package(tiny_checkpoint, tmp_path_factory) -> Path:
    from onnx_export.mrt2.export import export_package

    return export_package(tiny_checkpoint, "tiny", tmp_path_factory.mktemp("pkg") / "tiny7", progress=False)


@pytest.fixture(scope="session")
def bundled_package() -> Path:
    from bridge.synthetic import bundled_package

    return bundled_package()
