"""The bundled synthetic model: a tiny random-weight package built on first use and cached.

It lets every command run on a fresh machine with no real weights. It makes
noise-like audio, not music, and everything that uses it says so.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

log = logging.getLogger(__name__)

SYNTHETIC_SIZE = "tiny"
SYNTHETIC_SEED = 20260521
# Bump when what the bundle contains changes, so stale caches are rebuilt.
BUNDLE_VERSION = 3
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
    from onnx_export.mrt2.export import export_package
    from onnx_export.mrt2.synth import write_checkpoint, write_codec_encoder

    from .style.synthetic import add_synthetic_musiccoca

    log.info("building the bundled synthetic model in %s (first use only)", root)
    # Build beside the cache entry and move it in complete (graphs + MusicCoCa), so an
    # interrupted first run never leaves a package that loads but lacks its style encoders.
    work = root.with_name(root.name + ".building")
    shutil.rmtree(work, ignore_errors=True)
    ckpt = write_checkpoint(SYNTHETIC_SIZE, SYNTHETIC_SEED, work / "checkpoint.safetensors")
    enc = write_codec_encoder(SYNTHETIC_SIZE, SYNTHETIC_SEED, work / "encoder.safetensors")
    package = export_package(ckpt, SYNTHETIC_SIZE, work / "package", codec_encoder=enc, synthetic=True,
                             progress=False)
    add_synthetic_musiccoca(package, SYNTHETIC_SEED)
    shutil.rmtree(root, ignore_errors=True)
    package.replace(root)
    shutil.rmtree(work)
    return root
