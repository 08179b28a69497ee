"""Precision variants of exported graphs, applied as a pass after building in float32.

- ``int8``: every MatMul weight quantized to 8 bits in blocks of 32 along the input
  (ORT ``MatMulNBits``, symmetric, accuracy level 4: activations quantized per block
  to int8 at run time). Embedding tables (Gather), norms, the soft cap and sampling
  stay float32. This is the CPU variant: batch-1 frame steps are bound by reading
  weights, and int8 weights are a quarter of the bytes. Measured on mrt2_small
  (random weights, teacher-forced argmax agreement vs fp32): this scheme 95.8-96.8%,
  ORT dynamic per-channel int8 89.3%, 4-bit blocks 62.8%, at similar speed; keeping
  the per-level logit projections in fp32 gained 0.6 points for ~2.5 ms, so they
  are quantized too.
- ``fp16``: float16 weights and activations with float32 graph I/O (KV caches
  included), Softmax/LayerNorm/reductions kept in float32. This is the GPU variant.
"""

from __future__ import annotations

import onnx

FP16_KEEP_FP32 = ["Softmax", "LayerNormalization", "SimplifiedLayerNormalization", "ReduceMean", "ReduceSum", "Sqrt", "Reciprocal",
                  "TopK", "ArgMax", "Where", "GreaterOrEqual", "Tanh"]


def to_int8(model: onnx.ModelProto) -> onnx.ModelProto:
    """Weight-only 8-bit block quantization of every MatMul with a constant weight."""
    import logging

    from onnxruntime.quantization.matmul_nbits_quantizer import (
        DefaultWeightOnlyQuantConfig,
        MatMulNBitsQuantizer,
    )

    cfg = DefaultWeightOnlyQuantConfig(block_size=32, is_symmetric=True, accuracy_level=4, bits=8)
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.WARNING)  # the quantizer logs every tensor at INFO on the root logger
    try:
        quantizer = MatMulNBitsQuantizer(model, algo_config=cfg)
        quantizer.process()
    finally:
        root.setLevel(level)
    return quantizer.model.model


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


def convert(model: onnx.ModelProto, precision: str) -> onnx.ModelProto:
    """The graph at ``precision`` (fp32 returns it unchanged)."""
    if precision == "int8":
        return to_int8(model)
    if precision == "fp16":
        return to_fp16(model)
    if precision == "fp32":
        return model
    raise ValueError(f"unknown precision {precision!r}")
