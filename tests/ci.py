"""Skip locally, fail on CI: a missing tool must never hide a broken install under ``CI=true``."""

from __future__ import annotations

import importlib
import os
from types import ModuleType
from typing import NoReturn

import pytest


def on_ci() -> bool:
    """True when the environment says this is a CI run (``CI=true``)."""
    return os.environ.get("CI", "").lower() == "true"


def missing(message: str) -> NoReturn:
    """A needed tool is absent: skip the test locally, fail it under ``CI=true``."""
    if on_ci():
        pytest.fail(f"CI=true but {message}", pytrace=False)
    pytest.skip(message)


def require_module(name: str, install_hint: str) -> ModuleType:
    """``pytest.importorskip`` that fails under ``CI=true``."""
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        missing(f"{name} is not importable ({exc}); {install_hint}")
