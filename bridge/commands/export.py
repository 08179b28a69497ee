"""`mrt-bridge export`: upstream checkpoint -> model package (ONNX graphs + manifest)."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    from onnx_export.precision import INT8_SCHEMES

    p = sub.add_parser(
        "export",
        help="export an upstream MRT2 (or Magenta RT v1) checkpoint to a model package",
        description=(
            "Read an upstream MRT2 checkpoint (safetensors, params/... keys) and write a model "
            "package: ONNX graphs for the streaming encoder, the temporal decoder step, the depth "
            "decoder (12 RVQ levels with sampling) and the SpectroStream decoder, with all streaming "
            "state as explicit inputs/outputs, plus manifest.json. Exporting the same checkpoint "
            "twice gives byte-identical packages. A Magenta RT v1 t5x checkpoint directory gives a "
            "v1 package instead (encoder, temporal step, 16-level depth decoder, optional codec)."
        ),
    )
    p.add_argument("--checkpoint", required=True, type=Path,
                   help="upstream .safetensors checkpoint (MRT2) or t5x checkpoint directory (Magenta RT v1)")
    p.add_argument("--size", choices=["tiny", "tiny_base", "mrt2_small", "mrt2_base", "base", "large"],
                   help="architecture of the checkpoint (required for MRT2; v1: checked, detected when absent)")
    p.add_argument("--family", choices=["mrt2", "v1"],
                   help="model family (default: v1 for a t5x checkpoint directory, else mrt2)")
    p.add_argument("--codec", type=Path, metavar="FILE.safetensors",
                   help="v1: SpectroStream weights (params/soundstream/..., e.g. an MRT2 checkpoint) for a "
                        "16-level codec decoder; without it the v1 package makes tokens but no audio")
    p.add_argument("--out", required=True, type=Path, help="package directory to write (replaced if present)")
    p.add_argument("--precision", default="fp32", choices=["fp32", "fp16", "int8"],
                   help="fp32 (reference), fp16 (GPU), int8 (CPU: dynamic int8 matmuls). Default fp32")
    p.add_argument("--int8-scheme", default="auto", choices=["auto", *INT8_SCHEMES],
                   help="int8 matmuls: rows = per-row int8 activations x per-column int8 weights on "
                        "ORT MatMulIntegerToFloat (for CPUs with VNNI/AMX), rows_u8 = the same with "
                        "uint8 weights (exact on AVX2, where rows' sums saturate), blocks = ORT "
                        "MatMulNBits, 8-bit blocks of 32 (slightly closer to fp32, slower; the choice "
                        "without AVX2). auto (default): the one for this CPU; the manifest records it")
    p.add_argument("--codec-encoder", type=Path, metavar="ENCODER.safetensors",
                   help="upstream resources/spectrostream/encoder.safetensors: also export the codec encoder")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from onnx_export.v1.export import is_v1_checkpoint

    family = args.family or ("v1" if is_v1_checkpoint(args.checkpoint) else "mrt2")
    if family == "v1":
        from bridge.v1.commands import export_v1

        return export_v1(args)
    if args.size is None or args.size in ("base", "large"):
        raise ValueError("--size must name an MRT2 architecture (tiny, tiny_base, mrt2_small, mrt2_base)")
    if args.codec is not None:
        raise ValueError("--codec is for v1 checkpoints (MRT2 checkpoints carry their codec)")
    from onnx_export.mrt2.export import export_package

    out = export_package(args.checkpoint, args.size, args.out, args.precision, codec_encoder=args.codec_encoder,
                         int8_scheme=args.int8_scheme)
    print(f"wrote model package {out}")
    return 0
