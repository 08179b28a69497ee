"""`mrt-bridge models`: list, download and prepare the real MRT2 weights."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from bridge import download as dl
from bridge import hub_layout

log = logging.getLogger(__name__)

SIZES = ("mrt2_small", "mrt2_base")
V1_SIZES = ("v1_base", "v1_large")
V1_CODEC_SOURCE = "mrt2_small"  # v1 decodes with MRT2's SpectroStream (16 levels), exported from this checkpoint


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "models",
        help="list, download (from Hugging Face) and prepare the real MRT2 weights",
        description=(
            "Manage upstream Magenta RT 2 files in $MAGENTA_HOME/magenta-rt-v2 "
            "(MAGENTA_HOME defaults to ~/Documents/Magenta; upstream's layout, so an "
            "existing upstream folder is reused). HF_TOKEN and HF_ENDPOINT are honoured."
        ),
    )
    msub = p.add_subparsers(dest="models_command", metavar="ACTION")
    msub.required = True

    ls = msub.add_parser("list", help="show which files are present, missing or unverified")
    ls.add_argument("--hashes", action="store_true",
                    help="also hash present files and print their sha256 (slow on big files)")
    ls.set_defaults(func=run_list)

    d = msub.add_parser("download", help="download a model and what it needs, verified by sha256")
    d.add_argument("name", nargs="?", default="mrt2_small",
                   help="mrt2_small (default), mrt2_base, resources, v1_base, v1_large, v1_resources or all")
    d.add_argument("--force", action="store_true", help="download again even if present")
    d.set_defaults(func=run_download)

    pr = msub.add_parser(
        "prepare",
        help="download if needed, then export a model package (ONNX + MusicCoCa)",
        description=(
            "Download NAME if needed, export the depthformer and codec to ONNX, and convert "
            "the MusicCoCa TFLite files into <package>/musiccoca/."
        ),
    )
    pr.add_argument("name", choices=SIZES + V1_SIZES,
                    help="MRT2 size, or Magenta RT v1 (v1_base / v1_large: t5x checkpoint from "
                         "google/magenta-realtime, codec from mrt2_small)")
    pr.add_argument("--out", type=Path, default=None,
                    help="package directory (default: $MAGENTA_HOME/magenta-rt-v2/onnx/NAME-PRECISION)")
    pr.add_argument("--precision", default="auto", choices=["auto", "fp32", "fp16", "int8"],
                    help="weight precision: int8 for CPUs, fp16 for GPUs, fp32 as reference; "
                         "auto = fp16 when the CUDA provider is available, else int8 (default)")
    pr.add_argument("--no-download", action="store_true",
                    help="use only files already present; fail if any is missing")
    pr.add_argument("--skip-musiccoca", action="store_true", help="do not convert MusicCoCa")
    pr.set_defaults(func=run_prepare)


def _fmt_size(n: int | None) -> str:
    if n is None:
        return "?"
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return str(n)


def run_list(args: argparse.Namespace) -> int:
    manifests = dl.load_manifests()
    home = hub_layout.magenta_home()
    print(f"MAGENTA home: {home}")
    if any(m.home == "v1" for m in manifests.values()):
        print(f"Magenta RT v1 assets: {hub_layout.v1_home()}")
    for manifest in manifests.values():
        needs = f"  (needs: {', '.join(manifest.needs)})" if manifest.needs else ""
        print(f"\n{manifest.name}: {manifest.description}{needs}")
        for st in dl.file_status(manifest, dl.manifest_home(manifest)):
            if not st.present:
                state = "missing"
                size = _fmt_size(st.file.size)
            else:
                state = "present, verified" if st.verified else "present, unverified"
                size = _fmt_size(st.size)
                if st.file.size is not None and st.size != st.file.size:
                    state = f"present, wrong size (expected {_fmt_size(st.file.size)})"
            line = f"  {st.file.path:<52} {size:>9}  {state}"
            if args.hashes and st.present:
                line += f"  sha256={dl.sha256_file(st.local_path)}"
            print(line)
    print("\nDownload with: mrt-bridge models download NAME  (then: mrt-bridge models prepare NAME)")
    return 0


def run_download(args: argparse.Namespace) -> int:
    report = dl.download(args.name, force=args.force)
    print(f"downloaded {len(report.downloaded)} file(s), {len(report.skipped)} already present "
          f"in {hub_layout.magenta_home()}")
    return 0


def _check_present(name: str) -> None:
    manifests = dl.load_manifests()
    missing = [
        str(st.local_path)
        for m in dl.resolve_targets(name, manifests)
        for st in dl.file_status(m)
        if not st.present
    ]
    if missing:
        raise FileNotFoundError("missing (run without --no-download): " + ", ".join(missing))


def run_prepare(args: argparse.Namespace) -> int:
    from onnx_export.musiccoca import add_musiccoca_to_package, record_in_package_manifest

    if args.no_download:
        _check_present(args.name)
    else:
        dl.download(args.name)
    if args.precision == "auto":
        from bridge.runtime import available_providers

        args.precision = "fp16" if "CUDAExecutionProvider" in available_providers() else "int8"
    out = args.out or hub_layout.magenta_home() / "onnx" / f"{args.name}-{args.precision}"
    if args.name in V1_SIZES:
        size = args.name.removeprefix("v1_")
        package = prepare_v1_package(hub_layout.v1_checkpoint_dir(size), size, out, args.precision,
                                     musiccoca=not args.skip_musiccoca)
        print(f"model package ready: {package}")
        return 0
    try:
        from onnx_export.mrt2.export import export_package
    except ImportError as exc:
        raise RuntimeError(f"depthformer export is not available: {exc}") from exc
    encoder = hub_layout.resources_dir() / "spectrostream" / "encoder.safetensors"
    package = Path(export_package(hub_layout.checkpoint_path(args.name), args.name, out,
                                  precision=args.precision,
                                  codec_encoder=encoder if encoder.is_file() else None))
    if not args.skip_musiccoca:
        entry = add_musiccoca_to_package(package, hub_layout.resources_dir())
        record_in_package_manifest(package, entry)
    print(f"model package ready: {package}")
    return 0


def prepare_v1_package(checkpoint_dir: Path, size: str, out: Path, precision: str, *,
                       musiccoca: bool = True) -> Path:
    """Export a v1 package: the extracted t5x checkpoint + MRT2's codec (16 levels) + MusicCoCa."""
    from onnx_export.musiccoca import add_musiccoca_to_package, record_in_package_manifest

    try:
        from onnx_export.v1.export import export_v1_package
    except ImportError as exc:
        raise RuntimeError(f"v1 export is not available: {exc}") from exc
    codec = hub_layout.checkpoint_path(V1_CODEC_SOURCE)
    if not codec.is_file():
        raise FileNotFoundError(f"{codec} is missing: v1 decodes with its codec (mrt-bridge models download "
                                f"{V1_CODEC_SOURCE})")
    package = Path(export_v1_package(checkpoint_dir, out, precision, size=size, codec=codec))
    if musiccoca:
        entry = add_musiccoca_to_package(package, hub_layout.resources_dir())
        record_in_package_manifest(package, entry)
    return package
