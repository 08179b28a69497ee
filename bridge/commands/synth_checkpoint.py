"""`mrt-bridge synth-checkpoint`: a random checkpoint in the exact upstream layout."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "synth-checkpoint",
        help="write a random MRT2 checkpoint in the upstream safetensors layout",
        description=(
            "Write a checkpoint of random weights with exactly the tensor names and shapes "
            "of upstream's published files (params/depthformer/... and params/soundstream/...). "
            "Useful for tests and benchmarks: it produces noise, not music. 'tiny' is the same "
            "architecture at toy widths; mrt2_small / mrt2_base are the published sizes "
            "(about 1.1 GB and 10 GB in float32)."
        ),
    )
    p.add_argument(
        "--family",
        choices=["mrt2", "v1"],
        default="mrt2",
        help="model family (default mrt2). v1 writes Magenta RT v1's t5x checkpoint directory "
        "(msgpack 'checkpoint' file + zarr arrays, as the hub tar extracts to); sizes tiny, base, large",
    )
    p.add_argument("--size", required=True, choices=["tiny", "tiny_base", "mrt2_small", "mrt2_base", "base", "large"])
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--out", required=True, type=Path, help="output .safetensors file (mrt2) or directory (v1)")
    p.set_defaults(func=run)


_V1_SIZES = ("tiny", "base", "large")
_MRT2_SIZES = ("tiny", "tiny_base", "mrt2_small", "mrt2_base")


def run(args: argparse.Namespace) -> int:
    family = getattr(args, "family", "mrt2")
    allowed = _V1_SIZES if family == "v1" else _MRT2_SIZES
    if args.size not in allowed:
        raise ValueError(f"--size {args.size} is not a {family} size; choose one of {', '.join(allowed)}")
    if family == "v1":
        from onnx_export.v1.synth import write_checkpoint as write_v1

        path = write_v1(args.size, args.seed, args.out)
        mb = sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 1e6
        print(f"wrote {path}/ ({mb:.1f} MB, v1 t5x checkpoint, size={args.size}, seed={args.seed}, random weights)")
        return 0
    from onnx_export.mrt2.synth import write_checkpoint

    path = write_checkpoint(args.size, args.seed, args.out)
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB, size={args.size}, seed={args.seed}, random weights)")
    return 0
