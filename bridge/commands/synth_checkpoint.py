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
    p.add_argument("--size", required=True, choices=["tiny", "tiny_base", "mrt2_small", "mrt2_base"])
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--out", required=True, type=Path, help="output .safetensors file")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from onnx_export.synth import write_checkpoint

    path = write_checkpoint(args.size, args.seed, args.out)
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB, size={args.size}, seed={args.seed}, random weights)")
    return 0
