"""Shared helpers of the v1 oracle scripts (run with the v1 oracle interpreter, not our .venv)."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))  # onnx_export.v1 (numpy-only) for sizes and the checkpoint writer


def quiet_logs() -> None:
    """Keep TF / absl / JAX chatter off stderr so failures stay readable."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    logging.getLogger("absl").setLevel(logging.ERROR)
    try:
        from absl import logging as absl_logging

        absl_logging.set_verbosity(absl_logging.ERROR)
    except ImportError:
        pass


def gin_overrides(size, activation_dtype: str | None = None) -> str:
    """Gin bindings for ``size`` on top of upstream's merged gin (tiny widths; optional activation dtype)."""
    lines = [] if size.name in ("base", "large") else [size.gin_overrides()]
    if activation_dtype:
        lines.append(f"ACTIVATION_DTYPE = '{activation_dtype}'")
    return "\n".join(lines)


def parse_gin(size, activation_dtype: str | None = None):
    """Upstream's own ``_parse_global_gin_config`` for ``size``: (model, task_feature_lengths)."""
    from magenta_rt.depthformer import model as mrt_model

    gin_size = "large" if size.name == "large" else "base"
    return mrt_model._parse_global_gin_config(gin_size, gin_overrides(size, activation_dtype))
