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
- The codec decoder of an int8 package: calibrated static int8 convolutions
  (``codec_int8``), used where the preparing CPU has VNNI/AMX and its audio stays within
  ``CODEC_INT8_MIN_SNR_DB`` of the fp32 decoder, else fp32; the check is in the manifest.

Agreement thresholds against the fp32 graphs (tests/test_precision.py checks them on the tiny
configs; ``mrt-bridge export`` checks the codec's at export time):

- depthformer, teacher-forced (every level sees the same forced tokens, so each frame's
  logits are compared on equal inputs): the fraction of (frame, level) argmaxes equal to
  fp32's, and the largest absolute difference of the soft-capped logits (cap 30).
- codec decoder: SNR in dB of the audio, 10 log10(sum ref^2 / sum (ref - x)^2), over
  random and held codes streamed from a fresh state.
"""

from __future__ import annotations

import onnx

# Depthformer, teacher-forced, against fp32: (least argmax agreement over frames x levels,
# largest soft-capped logit difference), per (precision, num_cfgs); tests/test_precision.py,
# tiny config, 40 frames, default guidance scales. Guidance mixes the rows' logits with weights
# up to 1 + 3 + 1, so it scales the error ~5x. Measured: int8 0.969 / 0.12 unguided and
# 0.902 / 0.55 guided (mrt2_small int8 unguided: 95.8-96.8%, above); fp16 0.996 / 0.0064
# unguided (before the fused depthformer graphs).
LOGIT_AGREEMENT = {
    ("int8", 0): (0.93, 0.5),
    ("int8", 2): (0.85, 1.5),
    ("fp16", 0): (0.98, 0.05),
    ("fp16", 2): (0.95, 0.25),
}
# Codec decoder audio against fp32, dB. int8: each int8 conv alone costs 42-48 dB; the ~20 in
# series measured 29.1 dB on the full-size synthetic decoder and 28.7 dB on the tiny one.
# 25 dB keeps the int8 error well under the codec's own reconstruction error (a 12-level RVQ
# codec does not reproduce waveforms closely) and rejects a graph whose calibration went wrong
# (one clipped or saturated layer costs 10 dB or more).
CODEC_INT8_MIN_SNR_DB = 25.0
# fp16 (GPU variant): measured 55.5 dB on the tiny decoder.
CODEC_FP16_MIN_SNR_DB = 50.0

FP16_KEEP_FP32 = ["Softmax", "LayerNormalization", "SimplifiedLayerNormalization", "ReduceMean", "ReduceSum", "Sqrt", "Reciprocal",
                  "TopK", "ArgMax", "Where", "GreaterOrEqual", "Tanh"]


def to_int8(model: onnx.ModelProto, nodes_to_exclude: list[str] | None = None) -> onnx.ModelProto:
    """Weight-only 8-bit block quantization of every MatMul with a constant weight (but the
    nodes named in ``nodes_to_exclude``)."""
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
        quantizer = MatMulNBitsQuantizer(model, algo_config=cfg, nodes_to_exclude=nodes_to_exclude)
        quantizer.process()
    finally:
        root.setLevel(level)
    return quantizer.model.model


def to_fp16(model: onnx.ModelProto) -> onnx.ModelProto:
    from onnxruntime.tools.symbolic_shape_infer import SymbolicShapeInference
    from onnxruntime.transformers.float16 import convert_float_to_float16

    # The converter places its Casts from value types; ORT's symbolic shape inference knows the
    # fused contrib ops (FusedMatMul, FastGelu, SimplifiedLayerNormalization) that onnx's does not.
    model = SymbolicShapeInference.infer_shapes(model, auto_merge=True, guess_output_rank=True)
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
