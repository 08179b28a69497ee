"""Precision variants of exported graphs, applied as a pass after building in float32.

- ``int8``: dynamic quantization of every MatMul weight (per output channel, int8),
  activations quantized on the fly. Embedding tables (Gather) and the soft cap,
  sampling and norms stay float32. This is the CPU variant: batch-1 frame steps
  are bound by reading weights, and int8 weights are a quarter of the bytes.
- ``fp16``: float16 weights and activations with float32 graph I/O (KV caches
  included), Softmax/LayerNorm/reductions kept in float32. This is the GPU variant.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import onnx

FP16_KEEP_FP32 = ["Softmax", "LayerNormalization", "ReduceMean", "ReduceSum", "Sqrt", "Reciprocal",
                  "TopK", "ArgMax", "Where", "GreaterOrEqual", "Tanh"]


def to_int8(model: onnx.ModelProto) -> onnx.ModelProto:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with tempfile.TemporaryDirectory() as d:
        src, dst = Path(d) / "in.onnx", Path(d) / "out.onnx"
        large = model.ByteSize() > (1 << 31) - (64 << 20)
        if large:
            onnx.save_model(model, str(src), save_as_external_data=True, location="in.data")
        else:
            src.write_bytes(model.SerializeToString())
        quantize_dynamic(
            str(src), str(dst),
            op_types_to_quantize=["MatMul"],
            per_channel=True,
            weight_type=QuantType.QInt8,
            use_external_data_format=large,
            extra_options={"MatMulConstBOnly": True},
        )
        return onnx.load_model(str(dst))


def to_fp16(model: onnx.ModelProto) -> onnx.ModelProto:
    from onnxruntime.transformers.float16 import convert_float_to_float16

    converted = convert_float_to_float16(model, keep_io_types=True, op_block_list=FP16_KEEP_FP32)
    _dedupe_casts(converted.graph)
    return converted


def _dedupe_casts(graph: onnx.GraphProto) -> None:
    """The converter inserts one Cast per (value, blocked consumer), all with the same name
    and output; keep the first and point the other consumers at it."""
    seen: dict[str, str] = {}
    keep = []
    for node in graph.node:
        if node.op_type == "Cast" and node.name in seen:
            continue
        if node.op_type == "Cast":
            seen[node.name] = node.output[0]
        keep.append(node)
    del graph.node[:]
    graph.node.extend(keep)


def convert(model: onnx.ModelProto, precision: str, path: Path | None = None) -> onnx.ModelProto:
    if precision == "int8":
        return to_int8(model)
    if precision == "fp16":
        return to_fp16(model)
    if precision == "fp32":
        return model
    raise ValueError(f"unknown precision {precision!r}")
