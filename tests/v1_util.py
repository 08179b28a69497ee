"""A tiny synthetic v1 package (checkpoint seed 0, 16-level tiny codec) for the v1 tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from onnx_export.v1.codec import synth_codec_tensors
from onnx_export.v1.export import export_v1_package
from onnx_export.v1.synth import write_checkpoint


def codec_tensors(seed: int = 1) -> dict[str, np.ndarray]:
    """A tiny 16-codebook SpectroStream decoder (v1 decodes 16 RVQ levels)."""
    return synth_codec_tensors("tiny", seed)


def make_v1_package(root: Path, precision: str = "fp32") -> Path:
    """``root/ckpt`` (tiny, seed 0) exported with the tiny codec to ``root/pkg``."""
    ckpt = write_checkpoint("tiny", 0, root / "ckpt")
    return export_v1_package(ckpt, root / "pkg", precision, codec=codec_tensors(), synthetic=True, progress=False)
