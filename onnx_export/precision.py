"""Precision variants of exported graphs, applied as a pass after building in float32.

- ``int8``: every 2-D MatMul weight in 8 bits; embedding tables (Gather), norms, the soft cap
  and sampling stay float32. This is the CPU variant: batch-1 frame steps are bound by reading
  weights, and int8 weights are a quarter of the bytes. Three schemes (``INT8_SCHEMES``), chosen
  at export time for the CPU that prepares the package (``choose_int8_scheme``) and recorded in
  the manifest:

  - ``rows`` (CPUs with int8 dot products, VNNI or AMX): ``to_int8_rows``, each activation
    row quantized at run time to uint8 over its own absolute maximum, weights per column, ORT
    ``MatMulIntegerToFloat`` (u8 x s8 on VNNI/AMX), in every graph. Measured on mrt2_small,
    2-core Xeon with AMX, model step with 3 guidance rows on one thread: 31.1 ms, vs 35.5 ms
    with the depth decoder in ``blocks`` and 45.2 ms all ``blocks``. The price is agreement
    with fp32, in an A/B of the two depth variants on the same frames: 92.3% / 87.4% (one
    row / 3 guided rows) vs 95.7% / 90.1% with the depth decoder in ``blocks``; no one kind
    of depth matmul accounts for it (keeping any one in fp32 regains 0.7-2 points).
  - ``rows_u8`` (AVX2 without VNNI): the same pass with the weights stored as uint8 around
    128. ORT's u8 x s8 kernel on AVX2 (``vpmaddubsw``) sums adjacent products in int16 with
    saturation, so ``rows`` is not exact there; its u8 x u8 kernel widens to int16 and
    multiplies with ``vpmaddwd``, exact, at about the same speed for these batch sizes. So
    ``rows_u8`` computes what ``rows`` computes on VNNI. Measured on a 2-core AVX2 EPYC
    (mrt2_small, 100 frames, one row / 3 guided rows): agreement 94.0% / 86.0% (``rows``
    there: 90.3% / 79.8%; on the VNNI Xeon: 94.2% / 86.4%), model step in line about 42 / 50
    ms against ``blocks``' 45 / 73 ms. On VNNI/AMX u8 x u8 has no int8 dot product, so
    ``rows`` stays the choice there.
  - ``blocks`` (CPUs without AVX2): ``to_int8``, ORT ``MatMulNBits`` with 8-bit weights in
    blocks of 32 along the input, symmetric, accuracy level 4 (activations quantized per block
    to int8 at run time). Measured on mrt2_small: 95.8-96.8% agreement (95.3% / 91.3% on the
    AVX2 EPYC); ORT's dynamic per-tensor int8 89.3%, 4-bit blocks 62.8%; keeping the
    per-level logit projections in fp32 gained 0.6 points for ~2.5 ms, so they are quantized
    too. 7-bit ``rows`` weights (which cannot saturate on AVX2) gave 90.6% / 84.5%.
- ``fp16``: float16 weights and activations with float32 graph I/O (KV caches
  included), Softmax/LayerNorm/reductions kept in float32. This is the GPU variant.
- The codec decoder of an int8 package: calibrated static int8 convolutions
  (``codec_int8``), used where the preparing CPU has VNNI/AMX or AVX2 and its audio stays within
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
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # onnx takes seconds to import; the CLI reads INT8_SCHEMES, the engine the warning
    import onnx

# Depthformer, teacher-forced, against fp32: (least argmax agreement over frames x levels,
# largest soft-capped logit difference), per (precision, num_cfgs); tests/test_precision.py,
# tiny config, 40 frames, default guidance scales. Guidance mixes the rows' logits with weights
# up to 1 + 3 + 1, so it scales the error ~5x. The thresholds hold for every int8 scheme.
# Measured: int8 blocks 0.969 / 0.12 unguided and 0.902 / 0.55 guided, rows 0.950 / 0.17 and
# 0.906 / 0.75 (mrt2_small, 100 frames: blocks 96.2% / 92.2%, rows 94.2% / 86.4%; rows_u8 on
# AVX2 computes what rows computes on VNNI: 94.0% / 86.0%);
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


ROWS_SCHEMES = ("rows", "rows_u8")  # MatMulIntegerToFloat per activation row (to_int8_rows)
INT8_SCHEMES = (*ROWS_SCHEMES, "blocks")
# to_int8_rows' activation scale, max(max|x|, ROWS_EPS) * ROWS_INV127 per row; bridge/kernels
# matches these constants to fuse that quantization (rows_matmul.fuse_quantization).
ROWS_EPS = 1e-30
ROWS_INV127 = 1.0 / 127.0


def has_int8_dot(isa: list[str]) -> bool:
    """True where the CPU has int8 dot-product instructions (VNNI or AMX)."""
    return any(f in isa for f in ("avx512_vnni", "avx_vnni", "amx_int8"))


def choose_int8_scheme(isa: list[str]) -> str:
    """The int8 scheme for a CPU with instruction sets ``isa`` (module docstring)."""
    if has_int8_dot(isa):
        return "rows"
    return "rows_u8" if "avx2" in isa else "blocks"


def int8_scheme_warning(scheme: str | None, isa: list[str]) -> str | None:
    """One line for a package whose int8 scheme does not compute exactly on this CPU, else None."""
    if scheme == "rows" and not has_int8_dot(isa):
        return ("this int8 package (scheme rows, made for CPUs with VNNI/AMX) runs on a CPU without "
                "int8 dot products, where ORT's u8 x s8 sums saturate and cost quality; export it "
                "again on this machine (--int8-scheme auto picks rows_u8 or blocks)")
    return None


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
        if int8_scheme == "blocks":
            return to_int8(model)
        return to_int8_rows(model, unsigned_weights=int8_scheme == "rows_u8")
    if precision == "fp16":
        return to_fp16(model)
    if precision == "fp32":
        return model
    raise ValueError(f"unknown precision {precision!r}")


def to_int8_rows(model: onnx.ModelProto, unsigned_weights: bool = False) -> onnx.ModelProto:
    """8-bit MatMuls on integer GEMM: each activation row quantized on its own at run time
    (symmetric, its own absolute maximum, uint8 around 128), each weight column with its own
    symmetric int8 scale.

    ::

        x ──Abs─ReduceMax(last axis)──► a ──max(a, eps)/127──► s          (one per row)
        x ──QuantizeLinear(s, zero point 128, per row)──► xq (uint8)
        xq ──MatMulIntegerToFloat(wq int8, a_scale s[row], b_scale w_scale[col], a_zero_point 128)
           ──► y = Σ(xq−128)·wq · s · w_scale

    Rows never share a scale, so a stream's tokens do not depend on the other rows of the
    batch (its guidance rows or other streams). u8 x s8 runs on VNNI/AMX; ``unsigned_weights``
    stores wq + 128 as uint8 with zero point 128 instead (u8 x u8: exact on AVX2, scheme
    ``rows_u8``). One quantized copy of x serves every MatMul that reads x; the zero-point
    vector is shared by every 2-D input
    with the same leading dimension. Inputs of another (or unknown) rank are flattened to rows
    around the quantization. Six small ops per input and one per MatMul: an asymmetric range
    (own min..max, own zero point) needs fourteen and five, for the same agreement (mrt2_small
    temporal graph: 95.3% / 90.6% vs 95.7% / 90.1%), and cost 2-6 ms a frame.
    """
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    graph = model.graph
    inits = {i.name: i for i in graph.initializer}
    shapes = _value_shapes(model)
    consts = {
        "int8_rows/eps": np.array(ROWS_EPS, np.float32),
        "int8_rows/inv127": np.array(ROWS_INV127, np.float32),
        "int8_rows/c128": np.array(128.0, np.float32),
        "int8_rows/zp128": np.array(128, np.uint8),
        "int8_rows/last_axis": np.array([-1], np.int64),
        "int8_rows/first": np.array([0], np.int64),
    }
    quantized: dict[str, tuple[str, str, str | None]] = {}
    zero_points: dict[str, str] = {}
    new_inits: list[onnx.TensorProto] = []
    nodes: list[onnx.NodeProto] = []
    replaced: set[str] = set()

    def op(kind: str, inputs: list[str], output: str, name: str, **attrs) -> str:
        nodes.append(helper.make_node(kind, inputs, [output], name=name, **attrs))
        return output

    def quantize(x: str, q: str, k: int) -> tuple[str, str, str | None]:
        shape = shapes.get(x)
        flat = shape is None or len(shape) != 2
        rows = op("Reshape", [x, f"{q}/flat_shape"], f"{q}/flat", f"{q}/Flatten") if flat else x
        if flat:
            new_inits.append(numpy_helper.from_array(np.array([-1, k], np.int64), f"{q}/flat_shape"))
        a = op("ReduceMax", [op("Abs", [rows], f"{q}/abs", f"{q}/Abs")], f"{q}/amax", f"{q}/ReduceMax", axes=[-1], keepdims=0)
        s = op("Mul", [op("Max", [a, "int8_rows/eps"], f"{q}/amax_pos", f"{q}/Positive"), "int8_rows/inv127"],
               f"{q}/scale", f"{q}/Scale")
        key = f"flat:{x}" if flat else str(shape[0])
        if key not in zero_points:  # a uint8 128 per row, the shape QuantizeLinear wants per row
            zero_points[key] = op("Cast", [op("Clip", [s, "int8_rows/c128", "int8_rows/c128"], f"{q}/zp128", f"{q}/ZeroPoint")],
                                  f"{q}/zp", f"{q}/ZeroPointU8", to=TensorProto.UINT8)
        xq = op("QuantizeLinear", [rows, s, zero_points[key]], f"{q}/u8", f"{q}/QuantizeLinear", axis=0)
        col = op("Unsqueeze", [s, "int8_rows/last_axis"], f"{q}/scale_col", f"{q}/ScaleColumn")
        out_prefix = None
        if flat:
            out_prefix = op("Slice", [op("Shape", [x], f"{q}/shape", f"{q}/Shape"), "int8_rows/first", "int8_rows/last_axis"],
                            f"{q}/lead", f"{q}/LeadingDims")
        return xq, col, out_prefix

    for node in graph.node:
        w = inits.get(node.input[1]) if node.op_type == "MatMul" else None
        if w is None or len(w.dims) != 2:
            nodes.append(node)
            continue
        x, name = node.input[0], node.name or node.output[0]
        if x not in quantized:
            quantized[x] = quantize(x, f"{name}/quant", int(w.dims[0]))
        xq, col, out_prefix = quantized[x]
        if w.name not in replaced:  # a weight shared by MatMuls (the depth levels) is stored once
            wf = numpy_helper.to_array(w)
            ws = np.maximum(np.abs(wf).max(axis=0), 1e-20) / 127.0
            wq = np.clip(np.round(wf / ws), -127, 127).astype(np.int8)
            if unsigned_weights:
                wq = (wq.astype(np.int16) + 128).astype(np.uint8)
            new_inits += [numpy_helper.from_array(wq, f"{w.name}/int8"),
                          numpy_helper.from_array(ws.astype(np.float32), f"{w.name}/scale")]
            replaced.add(w.name)
        zps = ["int8_rows/zp128", "int8_rows/zp128"] if unsigned_weights else ["int8_rows/zp128"]
        y = op("MatMulIntegerToFloat", [xq, f"{w.name}/int8", col, f"{w.name}/scale", *zps],
               f"{name}/y" if out_prefix else node.output[0], f"{name}/MatMulIntegerToFloat", domain="com.microsoft")
        if out_prefix:
            new_inits.append(numpy_helper.from_array(np.array([w.dims[1]], np.int64), f"{name}/columns"))
            shape = op("Concat", [out_prefix, f"{name}/columns"], f"{name}/out_shape", f"{name}/OutShape", axis=0)
            op("Reshape", [y, shape], node.output[0], f"{name}/Unflatten")
    still_used = {i for n in nodes for i in n.input}
    keep = [i for i in graph.initializer if i.name not in replaced or i.name in still_used]
    del graph.initializer[:]
    graph.initializer.extend(keep + new_inits + [numpy_helper.from_array(v, k) for k, v in consts.items()])
    del graph.node[:]
    graph.node.extend(nodes)
    if not any(o.domain == "com.microsoft" for o in model.opset_import):
        model.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    return model


def _value_shapes(model: onnx.ModelProto) -> dict[str, list]:
    """Shapes (ints or symbolic names) of the values of ``model``'s graph, by ORT's symbolic
    shape inference on a copy without the MatMul weights' data (large models exceed protobuf's
    2 GB; other constants stay, the inference may read them)."""
    import onnx
    from onnxruntime.tools.symbolic_shape_infer import SymbolicShapeInference

    light = onnx.ModelProto()
    light.CopyFrom(model)
    weights = {n.input[1] for n in light.graph.node if n.op_type == "MatMul"}
    for init in light.graph.initializer:
        if init.name in weights:
            init.raw_data = b""
            init.data_location = onnx.TensorProto.DEFAULT
    with tempfile.TemporaryDirectory() as tmp, contextlib.chdir(tmp):
        inferred = SymbolicShapeInference.infer_shapes(light, auto_merge=True, guess_output_rank=True)
    out = {}
    for v in [*inferred.graph.value_info, *inferred.graph.input]:
        if v.type.tensor_type.HasField("shape"):
            out[v.name] = [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]
    return out
