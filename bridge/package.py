"""Model packages: the directory of ONNX graphs plus ``manifest.json`` that the engine loads."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

FORMAT = "mrt-bridge-package"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
REQUIRED_GRAPHS = ("encoder", "temporal", "depth")
SKIP_VERIFY_ENV = "MRT_BRIDGE_SKIP_VERIFY"

log = logging.getLogger(__name__)


class PackageError(ValueError):
    """A model package is missing, incomplete, corrupt or of another format."""


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 22):
            h.update(block)
    return h.hexdigest()


@dataclass(frozen=True)
class Package:
    root: Path
    manifest: dict

    @property
    def size(self) -> str:
        return self.manifest["model"]["size"]

    @property
    def synthetic(self) -> bool:
        return bool(self.manifest.get("synthetic", False))

    @property
    def precision(self) -> str:
        return self.manifest.get("precision", "fp32")

    @property
    def int8_scheme(self) -> str | None:
        """The int8 scheme its matmuls took (``onnx_export.precision``); None unless int8."""
        return self.manifest.get("int8", {}).get("scheme")

    def codec_variant(self) -> str | None:
        """The codec decoder's precision, with the int8 kernels it was checked on
        (e.g. ``int8/avx2``); None without a codec decoder."""
        entry = self.manifest.get("graphs", {}).get("codec_decoder")
        if entry is None:
            return None
        kernels = entry.get("precision_check", {}).get("int8_kernels")
        precision = entry.get("precision", self.precision)
        return f"{precision}/{kernels}" if precision == "int8" and kernels else precision

    def graph_path(self, name: str) -> Path:
        return self.root / self.manifest["graphs"][name]["file"]

    def has_graph(self, name: str) -> bool:
        return name in self.manifest.get("graphs", {})

    def verify(self) -> None:
        """Check every graph file (and weights side file) against the sha256 recorded at export."""
        for name, entry in self.manifest["graphs"].items():
            for file, digest in _files(entry):
                if file_sha256(self.root / file) != digest:
                    raise PackageError(
                        f"{self.root}: graph {name!r} ({file}) does not match its manifest checksum; "
                        "the package is corrupt or was modified — export it again"
                    )


def _files(entry: dict) -> list[tuple[str, str]]:
    """(file, sha256) of a graph entry: the graph, and its weights side file when it has one."""
    files = [(entry["file"], entry["sha256"])]
    if "data_file" in entry:
        files.append((entry["data_file"], entry["data_sha256"]))
    return files


def verify_by_default() -> bool:
    """Checksums are verified at load unless ``MRT_BRIDGE_SKIP_VERIFY=1`` (about 1.5 s for mrt2_small int8)."""
    return os.environ.get(SKIP_VERIFY_ENV, "").strip().lower() not in ("1", "true", "yes")


def load_package(root: Path | str, verify: bool | None = None) -> Package:
    """Read and validate a package's manifest and (by default) every graph's sha256.

    ``verify=None`` follows :func:`verify_by_default`: a corrupted or modified
    graph is refused at load with one clear line instead of playing garbage.
    """
    root = Path(root)
    if not root.is_dir():
        raise PackageError(f"model package not found: {root} (export one with `mrt-bridge export`)")
    path = root / MANIFEST
    if not path.is_file():
        raise PackageError(f"{root} is not a model package: no {MANIFEST}")
    try:
        manifest = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise PackageError(f"{path}: unreadable manifest ({exc})") from exc
    if manifest.get("format") != FORMAT:
        raise PackageError(f"{path}: not an mrt-bridge package manifest")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise PackageError(
            f"{path}: package format version {manifest.get('format_version')} is not supported "
            f"(this build reads version {FORMAT_VERSION}); export it again"
        )
    graphs = manifest.get("graphs", {})
    for name in REQUIRED_GRAPHS:
        if name not in graphs:
            raise PackageError(f"{path}: package lacks the {name!r} graph")
    for name, entry in graphs.items():
        for file, _ in _files(entry):
            if not (root / file).is_file():
                raise PackageError(f"{root}: graph file {file} listed for {name!r} is missing")
    pkg = Package(root, manifest)
    if verify if verify is not None else verify_by_default():
        t0 = time.perf_counter()
        pkg.verify()
        log.debug("%s: checksums verified in %.2f s", root, time.perf_counter() - t0)
    return pkg
