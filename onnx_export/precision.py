"""Precision variants of exported graphs, applied as a pass after building in float32.

- ``int8``: every 2-D MatMul weight in 8 bits; embedding tables (Gather), norms, the soft cap
  and sampling stay float32. This is the CPU variant: batch-1 frame steps are bound by reading
  weights, and int8 weights are a quarter of the bytes. Two schemes (``INT8_SCHEMES``), chosen
  at export time for the CPU that prepares the package (``choose_int8_scheme``) and recorded in
  the manifest:

  - ``rows`` (CPUs with int8 dot products, VNNI or AMX): ``to_int8_rows`` in the encoder and
    temporal graphs (``graph_int8_scheme``: the depth decoder stays in ``blocks``), each
    activation row quantized at run time to uint8 over its own range, weights per column, ONNX
    ``MatMulInteger`` (u8 x s8 on VNNI/AMX). Measured on mrt2_small, 2-core Xeon with AMX,
    overlapped frame step p50 with 3 guidance rows 38-39 ms vs 42 ms in ``blocks`` (1 row: no
    difference, ~33 ms); batched streams 8-12% faster. Agreement below.
  - ``blocks`` (elsewhere, e.g. AVX2 without VNNI, where u8 x s8 pair sums saturate int16):
    ``to_int8``, ORT ``MatMulNBits`` with 8-bit weights in blocks of 32 along the input,
    symmetric, accuracy level 4 (activations quantized per block to int8 at run time).
    Measured on mrt2_small: 95.8-96.8% agreement; ORT's dynamic per-tensor int8 89.3%, 4-bit
    blocks 62.8%; keeping the per-level logit projections in fp32 gained 0.6 points for
    ~2.5 ms, so they are quantized too.
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

import contextlib
import tempfile

import onnx

# Depthformer, teacher-forced, against fp32: (least argmax agreement over frames x levels,
# largest soft-capped logit difference), per (precision, num_cfgs); tests/test_precision.py,
# tiny config, 40 frames, default guidance scales. Guidance mixes the rows' logits with weights
# up to 1 + 3 + 1, so it scales the error ~5x. The thresholds hold for both int8 schemes.
# Measured: int8 blocks 0.963 / 0.14 unguided and 0.940 / 0.56 guided, rows 0.960 / 0.15 and
# 0.915 / 0.61 (mrt2_small, 100 frames: blocks 96.2% / 92.2%, rows 95.0% / 90.2%);
# fp16 1.000 / 0.0048 unguided and 0.994 / 0.019 guided.
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


INT8_SCHEMES = ("rows", "blocks")


def has_int8_dot(isa: list[str]) -> bool:
    """True where the CPU has int8 dot-product instructions (VNNI or AMX)."""
    return any(f in isa for f in ("avx512_vnni", "avx_vnni", "amx_int8"))


def choose_int8_scheme(isa: list[str]) -> str:
    """The int8 scheme for a CPU with instruction sets ``isa`` (module docstring)."""
    return "rows" if has_int8_dot(isa) else "blocks"


def graph_int8_scheme(graph: str, scheme: str) -> str:
    """The scheme graph ``graph`` of a package takes: ``rows`` leaves the depth decoder in
    ``blocks``. Its matmuls are small (768 wide, 12 levels a frame), so the per-row quantization
    ops cost more than the integer GEMM saves (mrt2_small, 2 threads: depth 14.5 ms in blocks,
    16.6 ms in rows; temporal 21.5 -> 19.9 ms with 3 guidance rows)."""
    return "blocks" if graph == "depth" else scheme


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
    # It saves a debug model into the working directory when it fails: keep that out of the user's.
    with tempfile.TemporaryDirectory() as tmp, contextlib.chdir(tmp):
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


def convert(model: onnx.ModelProto, precision: str, int8_scheme: str = "blocks") -> onnx.ModelProto:
    """The graph at ``precision`` (fp32 returns it unchanged); int8 in ``int8_scheme``."""
    if precision == "int8":
        if int8_scheme not in INT8_SCHEMES:
            raise ValueError(f"unknown int8 scheme {int8_scheme!r}; expected one of {', '.join(INT8_SCHEMES)}")
        return to_int8_rows(model) if int8_scheme == "rows" else to_int8(model)
    if precision == "fp16":
        return to_fp16(model)
    if precision == "fp32":
        return model
    raise ValueError(f"unknown precision {precision!r}")


def to_int8_rows(model: onnx.ModelProto) -> onnx.ModelProto:
    """8-bit MatMuls on ONNX's integer GEMM: each activation row quantized on its own at run
    time (asymmetric uint8: its own min..max range and zero point), each weight column with
    its own symmetric int8 scale.

    ::

        x ──ReduceMin/ReduceMax(last axis)──► lo ≤ 0 ≤ hi ──► s = (hi-lo)/255, z = round(-lo/s)
        x ──÷s─+z─Round─Clip─Cast(u8)──► xq ──MatMulInteger(wq int8)──► int32 acc
        y = (acc − z·Σ_k wq[k, col]) · s · w_scale[col]

    Rows never share a scale, so a stream's tokens do not depend on the other rows of the
    batch (its guidance rows or other streams). MatMulInteger runs u8×s8 on VNNI/AMX.
    One quantized copy of x serves every MatMul that reads x.
    """
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    graph = model.graph
    inits = {i.name: i for i in graph.initializer}
    consts = {
        "int8_rows/zero": np.array(0.0, np.float32),
        "int8_rows/eps": np.array(1e-20, np.float32),
        "int8_rows/inv255": np.array(1.0 / 255.0, np.float32),
        "int8_rows/max_u8": np.array(255.0, np.float32),
    }
    quantized: dict[str, tuple[str, str, str]] = {}
    new_inits: list[onnx.TensorProto] = []
    nodes: list[onnx.NodeProto] = []
    replaced: set[str] = set()

    def op(kind: str, inputs: list[str], output: str, name: str, **attrs) -> str:
        nodes.append(helper.make_node(kind, inputs, [output], name=name, **attrs))
        return output

    for node in graph.node:
        w = inits.get(node.input[1]) if node.op_type == "MatMul" else None
        if w is None or len(w.dims) != 2:
            nodes.append(node)
            continue
        x, name = node.input[0], node.name or node.output[0]
        if x not in quantized:
            q = f"{name}/quant"
            lo = op("ReduceMin", [x], f"{q}/min", f"{q}/ReduceMin", axes=[-1], keepdims=1)
            hi = op("ReduceMax", [x], f"{q}/max", f"{q}/ReduceMax", axes=[-1], keepdims=1)
            lo = op("Min", [lo, "int8_rows/zero"], f"{q}/lo", f"{q}/Lo")
            hi = op("Max", [hi, "int8_rows/zero"], f"{q}/hi", f"{q}/Hi")
            span = op("Max", [op("Sub", [hi, lo], f"{q}/span0", f"{q}/Span"), "int8_rows/eps"], f"{q}/span", f"{q}/SpanPos")
            scale = op("Mul", [span, "int8_rows/inv255"], f"{q}/scale", f"{q}/Scale")
            zp = op("Round", [op("Neg", [op("Div", [lo, scale], f"{q}/lo_s", f"{q}/LoDiv")], f"{q}/nlo", f"{q}/Neg")],
                    f"{q}/zp", f"{q}/ZeroPoint")
            xs = op("Add", [op("Div", [x, scale], f"{q}/scaled", f"{q}/Div"), zp], f"{q}/shifted", f"{q}/Shift")
            xr = op("Clip", [op("Round", [xs], f"{q}/rounded", f"{q}/Round"), "int8_rows/zero", "int8_rows/max_u8"],
                    f"{q}/clipped", f"{q}/Clip")
            xq = op("Cast", [xr], f"{q}/u8", f"{q}/Cast", to=TensorProto.UINT8)
            quantized[x] = (xq, scale, zp)
        xq, scale, zp = quantized[x]
        wf = numpy_helper.to_array(w)
        ws = np.maximum(np.abs(wf).max(axis=0), 1e-20) / 127.0
        wq = np.clip(np.round(wf / ws), -127, 127).astype(np.int8)
        colsum = wq.astype(np.int64).sum(axis=0).astype(np.float32)
        new_inits += [numpy_helper.from_array(wq, f"{w.name}/int8"),
                      numpy_helper.from_array(ws.astype(np.float32), f"{w.name}/scale"),
                      numpy_helper.from_array(colsum, f"{w.name}/colsum")]
        replaced.add(w.name)
        acc = op("Cast", [op("MatMulInteger", [xq, f"{w.name}/int8"], f"{name}/acc", f"{name}/MatMulInteger")],
                 f"{name}/accf", f"{name}/CastAcc", to=TensorProto.FLOAT)
        corr = op("Mul", [zp, f"{w.name}/colsum"], f"{name}/zp_corr", f"{name}/ZeroPointSum")
        centered = op("Sub", [acc, corr], f"{name}/centered", f"{name}/Center")
        op("Mul", [op("Mul", [centered, scale], f"{name}/row_scaled", f"{name}/RowScale"), f"{w.name}/scale"],
           node.output[0], f"{name}/ColScale")
    still_used = {i for n in nodes for i in n.input}
    keep = [i for i in graph.initializer if i.name not in replaced or i.name in still_used]
    del graph.initializer[:]
    graph.initializer.extend(keep + new_inits + [numpy_helper.from_array(v, k) for k, v in consts.items()])
    del graph.node[:]
    graph.node.extend(nodes)
    return model
