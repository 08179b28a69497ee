"""The bundled synthetic model: a tiny random-weight package built on first use and cached.

It lets every command run on a fresh machine with no real weights. It makes
noise-like audio, not music, and everything that uses it says so.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

log = logging.getLogger(__name__)

SYNTHETIC_SIZE = "tiny"
SYNTHETIC_SEED = 20260521
# Bump when what the bundle contains changes, so stale caches are rebuilt.
BUNDLE_VERSION = 2
NOTICE = (
    "Using the bundled SYNTHETIC model (tiny, random weights): it makes noise, not music. "
    "For real music: `mrt-bridge models prepare mrt2_small` (downloads google/magenta-realtime-2 "
    "from Hugging Face), then pass --model with the package it prints."
)


def cache_dir() -> Path:
    """$MRT_BRIDGE_CACHE, else $XDG_CACHE_HOME/magenta-rt-bridge, else ~/.cache/magenta-rt-bridge."""
    if os.environ.get("MRT_BRIDGE_CACHE"):
        return Path(os.environ["MRT_BRIDGE_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "magenta-rt-bridge"


def bundled_package() -> Path:
    """Path of the synthetic package, exporting it (a few seconds) the first time."""
    from .package import PackageError, load_package

    root = cache_dir() / "packages" / f"synthetic-{SYNTHETIC_SIZE}-{SYNTHETIC_SEED}-v{BUNDLE_VERSION}"
    try:
        load_package(root)
        return root
    except PackageError:
        pass
    from onnx_export.export import export_package
    from onnx_export.synth import write_checkpoint, write_codec_encoder

    log.info("building the bundled synthetic model in %s (first use only)", root)
    root.parent.mkdir(parents=True, exist_ok=True)
    ckpt = write_checkpoint(SYNTHETIC_SIZE, SYNTHETIC_SEED, root.parent / f"{root.name}.safetensors")
    enc = write_codec_encoder(SYNTHETIC_SIZE, SYNTHETIC_SEED, root.parent / f"{root.name}.encoder.safetensors")
    export_package(ckpt, SYNTHETIC_SIZE, root, codec_encoder=enc, synthetic=True, progress=False)
    _add_style_encoders(root)
    ckpt.unlink()
    enc.unlink()
    return root


def _add_style_encoders(root: Path) -> None:
    """Add the synthetic MusicCoCa so text prompts work end to end (if that module is present)."""
    try:
        from .style.synthetic import add_synthetic_musiccoca
    except ImportError:
        return
    add_synthetic_musiccoca(root, SYNTHETIC_SEED)
