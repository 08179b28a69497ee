"""Checkpoint files as numpy: safetensors loading and layout checks shared by the model families."""

from __future__ import annotations

from pathlib import Path

import numpy as np


class CheckpointError(ValueError):
    """A checkpoint is unreadable or does not match the expected layout."""


def load_tensors(path: Path) -> dict[str, np.ndarray]:
    """Load every tensor of a safetensors file as numpy (float32 kept as is)."""
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{path}: not a readable safetensors file ({exc})") from exc


def check_tensors(tensors: dict[str, np.ndarray], expected: dict[str, tuple[int, ...]], what: str) -> None:
    """Raise CheckpointError naming the first missing, mis-shaped or non-finite tensor."""
    missing = [k for k in expected if k not in tensors]
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise CheckpointError(f"{what}: missing tensor {missing[0]}{more}")
    for key, shape in expected.items():
        got = tuple(tensors[key].shape)
        if got != tuple(shape):
            raise CheckpointError(f"{what}: tensor {key} has shape {got}, expected {tuple(shape)}")
        if not np.issubdtype(tensors[key].dtype, np.floating):
            raise CheckpointError(f"{what}: tensor {key} has dtype {tensors[key].dtype}, expected float")
        if not np.isfinite(tensors[key]).all():
            raise CheckpointError(f"{what}: tensor {key} contains NaN or Inf")
