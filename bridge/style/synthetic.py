"""The bundled synthetic package's MusicCoCa (random weights, real I/O; clearly SYNTHETIC)."""

from __future__ import annotations

from pathlib import Path


def add_synthetic_musiccoca(package_dir: Path, seed: int) -> dict:
    """Write ``<package_dir>/musiccoca`` (synthetic) and record it in ``manifest.json``."""
    from onnx_export.musiccoca import build_synthetic_musiccoca, record_in_package_manifest

    entry = build_synthetic_musiccoca(Path(package_dir) / "musiccoca", seed)
    record_in_package_manifest(package_dir, entry)
    return entry
