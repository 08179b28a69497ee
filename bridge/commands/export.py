"""`mrt-bridge export`: upstream checkpoint -> model package (ONNX graphs + manifest)."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export",
        help="export an upstream MRT2 checkpoint to a model package",
        description=(
            "Read an upstream MRT2 checkpoint (safetensors, params/... keys) and write a model "
            "package: ONNX graphs for the streaming encoder, the temporal decoder step, the depth "
            "decoder (12 RVQ levels with sampling) and the SpectroStream decoder, with all streaming "
            "state as explicit inputs/outputs, plus manifest.json. Exporting the same checkpoint "
            "twice gives byte-identical packages."
        ),
    )
    p.add_argument("--checkpoint", required=True, type=Path, help="upstream .safetensors checkpoint")
    p.add_argument("--size", required=True, choices=["tiny", "tiny_base", "mrt2_small", "mrt2_base"],
                   help="architecture of the checkpoint")
    p.add_argument("--out", required=True, type=Path, help="package directory to write (replaced if present)")
    p.add_argument("--precision", default="fp32", choices=["fp32", "fp16", "int8"],
                   help="fp32 (reference), fp16 (GPU), int8 (CPU: dynamic int8 matmuls). Default fp32")
    p.add_argument("--int8-scheme", default="auto", choices=["auto", "rows", "blocks"],
                   help="int8 matmuls: rows = per-row int8 activations x per-column int8 weights on "
                        "ONNX MatMulInteger (fastest where the CPU has VNNI/AMX), blocks = ORT "
                        "MatMulNBits, 8-bit blocks of 32 (slightly closer to fp32; the choice without "
                        "VNNI). auto (default): the one for this CPU; the manifest records it")
    p.add_argument("--codec-encoder", type=Path, metavar="ENCODER.safetensors",
                   help="upstream resources/spectrostream/encoder.safetensors: also export the codec encoder")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from onnx_export.export import export_package

    out = export_package(args.checkpoint, args.size, args.out, args.precision, codec_encoder=args.codec_encoder,
                         int8_scheme=args.int8_scheme)
    print(f"wrote model package {out}")
    return 0
