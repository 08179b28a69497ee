"""Convert a TFLite model (one subgraph, float activations) to ONNX.

A small converter for the op set that inference graphs like MusicCoCa's use:
elementwise arithmetic and activations, FULLY_CONNECTED/BATCH_MATMUL,
shape ops, reductions, GATHER, ARG_MIN/ARG_MAX, CONV_2D (NHWC, transposed
around an NCHW Conv), and DEQUANTIZE/int8 weights (folded to float32 at
conversion). Layout stays NHWC as in TFLite: shapes and axes carry over
unchanged. An unsupported op raises :class:`UnsupportedOpError` naming every
missing op of the file, so the gap is visible in one run.

Tensor names are kept (sanitised) so the ONNX graph traces back to the TFLite
file; graph inputs/outputs can be renamed with ``input_names``/``output_names``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from onnx_export.tflite_reader import TfliteGraph, TfliteOp, read_tflite

log = logging.getLogger(__name__)

OPSET = 17
_NP_TO_ONNX = {
    np.dtype(np.float32): TensorProto.FLOAT, np.dtype(np.float16): TensorProto.FLOAT16,
    np.dtype(np.int32): TensorProto.INT32, np.dtype(np.int64): TensorProto.INT64,
    np.dtype(np.uint8): TensorProto.UINT8, np.dtype(np.int8): TensorProto.INT8,
    np.dtype(np.int16): TensorProto.INT16, np.dtype(np.bool_): TensorProto.BOOL,
    np.dtype(np.float64): TensorProto.DOUBLE,
}
# TFLite ActivationFunctionType
_ACT_NONE, _ACT_RELU, _ACT_RELU_N1_TO_1, _ACT_RELU6, _ACT_TANH = 0, 1, 2, 3, 4
_INT_MAX = np.iinfo(np.int64).max


class UnsupportedOpError(ValueError):
    """The TFLite file uses ops this converter does not handle."""


class _Ctx:
    """Conversion state: value names, nodes, initializers."""

    def __init__(self, graph: TfliteGraph):
        self.g = graph
        self.nodes: list[onnx.NodeProto] = []
        self.inits: dict[str, onnx.TensorProto] = {}
        self.names: dict[int, str] = {}
        self.consts: dict[int, np.ndarray] = {}
        used: set[str] = set()
        for t in graph.tensors:
            base = "".join(c if c.isalnum() or c in "._/" else "_" for c in t.name) or "t"
            name = base
            k = 1
            while name in used:
                k += 1
                name = f"{base}_{k}"
            used.add(name)
            self.names[t.index] = name
            if t.data is not None:
                self.consts[t.index] = _dequantize(t)
        self._n = 0

    def fresh(self, hint: str) -> str:
        self._n += 1
        return f"_{hint}_{self._n}"

    def const(self, value: np.ndarray, hint: str = "c") -> str:
        name = self.fresh(hint)
        self.inits[name] = numpy_helper.from_array(np.asarray(value), name)
        return name

    def value(self, idx: int) -> str:
        """Name of a tensor; constants become initializers on first use."""
        name = self.names[idx]
        if idx in self.consts and name not in self.inits:
            self.inits[name] = numpy_helper.from_array(self.consts[idx], name)
        return name

    def node(self, op: str, inputs: Sequence[str], outputs: Sequence[str] | None = None,
             **attrs) -> str:
        outputs = list(outputs) if outputs else [self.fresh(op.lower())]
        self.nodes.append(helper.make_node(op, list(inputs), outputs, **attrs))
        return outputs[0]

    def const_of(self, idx: int) -> np.ndarray:
        if idx not in self.consts:
            raise UnsupportedOpError(f"tensor {self.g.tensors[idx].name} must be a constant here")
        return self.consts[idx]

    def shape(self, idx: int) -> tuple[int, ...]:
        return self.g.tensors[idx].shape


def _dequantize(t) -> np.ndarray:
    data = t.data
    if t.scale is not None and data.dtype in (np.int8, np.uint8, np.int16, np.int32):
        if data.dtype == np.int32 and t.scale.size == 0:
            return data
        shape = [1] * data.ndim
        if t.scale.size > 1:
            shape[t.quantized_dimension] = -1
        scale = t.scale.reshape(shape)
        zp = (t.zero_point if t.zero_point is not None and t.zero_point.size else np.zeros(1))
        zp = zp.reshape(shape) if zp.size > 1 else zp.reshape(())
        return ((data.astype(np.float32) - zp) * scale).astype(np.float32)
    if data.dtype == np.float16:
        return data  # DEQUANTIZE folds it to float32
    return data


def _activation(ctx: _Ctx, x: str, act: int, out: str) -> None:
    if act == _ACT_NONE:
        ctx.node("Identity", [x], [out])
    elif act == _ACT_RELU:
        ctx.node("Relu", [x], [out])
    elif act == _ACT_RELU6:
        ctx.node("Clip", [x, ctx.const(np.float32(0)), ctx.const(np.float32(6))], [out])
    elif act == _ACT_RELU_N1_TO_1:
        ctx.node("Clip", [x, ctx.const(np.float32(-1)), ctx.const(np.float32(1))], [out])
    elif act == _ACT_TANH:
        ctx.node("Tanh", [x], [out])
    else:
        raise UnsupportedOpError(f"fused activation {act}")


def _emit(ctx: _Ctx, op: TfliteOp, onnx_op: str, inputs: list[str], **attrs) -> None:
    act = op.options.get("fused_activation_function", _ACT_NONE)
    out = ctx.names[op.outputs[0]]
    if act == _ACT_NONE:
        ctx.node(onnx_op, inputs, [out], **attrs)
    else:
        _activation(ctx, ctx.node(onnx_op, inputs, **attrs), act, out)


def _binary(onnx_op: str) -> Callable[[_Ctx, TfliteOp], None]:
    def convert(ctx: _Ctx, op: TfliteOp) -> None:
        _emit(ctx, op, onnx_op, [ctx.value(i) for i in op.inputs[:2]])
    return convert


def _unary(onnx_op: str) -> Callable[[_Ctx, TfliteOp], None]:
    def convert(ctx: _Ctx, op: TfliteOp) -> None:
        ctx.node(onnx_op, [ctx.value(op.inputs[0])], [ctx.names[op.outputs[0]]])
    return convert


def _out(ctx: _Ctx, op: TfliteOp) -> str:
    return ctx.names[op.outputs[0]]


def _fully_connected(ctx: _Ctx, op: TfliteOp) -> None:
    x_idx, w_idx = op.inputs[0], op.inputs[1]
    in_dim = ctx.shape(w_idx)[1] if w_idx in ctx.consts else ctx.shape(x_idx)[-1]
    x = ctx.value(x_idx)
    if not op.options.get("keep_num_dims", False) and len(ctx.shape(x_idx)) != 2:
        x = ctx.node("Reshape", [x, ctx.const(np.array([-1, in_dim], np.int64))])
    if w_idx in ctx.consts:
        w = ctx.const(np.ascontiguousarray(ctx.consts[w_idx].astype(np.float32).T), "fc_wT")
    else:
        w = ctx.node("Transpose", [ctx.value(w_idx)], perm=[1, 0])
    y = ctx.node("MatMul", [x, w])
    if len(op.inputs) > 2 and op.inputs[2] >= 0:
        y = ctx.node("Add", [y, ctx.value(op.inputs[2])])
    _activation(ctx, y, op.options.get("fused_activation_function", 0), _out(ctx, op))


def _batch_matmul(ctx: _Ctx, op: TfliteOp) -> None:
    ins = []
    for idx, adj in zip(op.inputs[:2], (op.options.get("adj_x"), op.options.get("adj_y"))):
        v = ctx.value(idx)
        if adj:
            rank = len(ctx.shape(idx))
            perm = list(range(rank - 2)) + [rank - 1, rank - 2]
            v = ctx.node("Transpose", [v], perm=perm)
        ins.append(v)
    ctx.node("MatMul", ins, [_out(ctx, op)])


def _reshape(ctx: _Ctx, op: TfliteOp) -> None:
    if len(op.inputs) > 1 and op.inputs[1] >= 0 and op.inputs[1] in ctx.consts:
        shape = ctx.consts[op.inputs[1]].astype(np.int64)
    elif len(op.inputs) > 1 and op.inputs[1] >= 0:
        shape = None
    elif op.options.get("new_shape"):
        shape = np.array(op.options["new_shape"], np.int64)
    else:
        shape = np.array(ctx.shape(op.outputs[0]), np.int64)
    s = ctx.const(shape) if shape is not None else ctx.node(
        "Cast", [ctx.value(op.inputs[1])], to=TensorProto.INT64)
    ctx.node("Reshape", [ctx.value(op.inputs[0]), s], [_out(ctx, op)])


def _axes(ctx: _Ctx, idx: int, rank: int) -> list[int]:
    axes = np.atleast_1d(ctx.const_of(idx)).astype(np.int64)
    return [int(a) % rank for a in axes]


def _reduce(onnx_op: str) -> Callable[[_Ctx, TfliteOp], None]:
    def convert(ctx: _Ctx, op: TfliteOp) -> None:
        rank = len(ctx.shape(op.inputs[0]))
        axes = _axes(ctx, op.inputs[1], rank)
        keep = int(bool(op.options.get("keep_dims", False)))
        x = ctx.value(op.inputs[0])
        if onnx_op == "ReduceSum":  # axes is an input from opset 13
            ctx.node(onnx_op, [x, ctx.const(np.array(axes, np.int64))], [_out(ctx, op)],
                     keepdims=keep)
        else:
            ctx.node(onnx_op, [x], [_out(ctx, op)], axes=axes, keepdims=keep)
    return convert


def _arg(onnx_op: str) -> Callable[[_Ctx, TfliteOp], None]:
    def convert(ctx: _Ctx, op: TfliteOp) -> None:
        rank = len(ctx.shape(op.inputs[0]))
        axis = _axes(ctx, op.inputs[1], rank)[0]
        y = ctx.node(onnx_op, [ctx.value(op.inputs[0])], axis=axis, keepdims=0,
                     select_last_index=0)
        out_dtype = ctx.g.tensors[op.outputs[0]].dtype
        ctx.node("Cast", [y], [_out(ctx, op)], to=_NP_TO_ONNX[out_dtype])
    return convert


def _gather(ctx: _Ctx, op: TfliteOp) -> None:
    if op.options.get("batch_dims", 0):
        raise UnsupportedOpError("GATHER with batch_dims")
    axis = op.options.get("axis", 0)
    ctx.node("Gather", [ctx.value(op.inputs[0]), ctx.value(op.inputs[1])], [_out(ctx, op)],
             axis=axis)


def _concat(ctx: _Ctx, op: TfliteOp) -> None:
    _emit(ctx, op, "Concat", [ctx.value(i) for i in op.inputs], axis=op.options.get("axis", 0))


def _softmax(ctx: _Ctx, op: TfliteOp) -> None:
    x = ctx.value(op.inputs[0])
    beta = op.options.get("beta", 1.0)
    if beta != 1.0:
        x = ctx.node("Mul", [x, ctx.const(np.float32(beta))])
    ctx.node("Softmax", [x], [_out(ctx, op)], axis=-1)


def _gelu(ctx: _Ctx, op: TfliteOp) -> None:
    x = ctx.value(op.inputs[0])
    if op.options.get("approximate", False):
        # 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
        x3 = ctx.node("Mul", [ctx.node("Mul", [x, x]), x])
        inner = ctx.node("Add", [x, ctx.node("Mul", [x3, ctx.const(np.float32(0.044715))])])
        t = ctx.node("Tanh", [ctx.node("Mul", [inner, ctx.const(np.float32(np.sqrt(2 / np.pi)))])])
    else:
        t = ctx.node("Erf", [ctx.node("Mul", [x, ctx.const(np.float32(1 / np.sqrt(2)))])])
    half = ctx.node("Mul", [x, ctx.const(np.float32(0.5))])
    ctx.node("Mul", [half, ctx.node("Add", [t, ctx.const(np.float32(1))])], [_out(ctx, op)])


def _rsqrt(ctx: _Ctx, op: TfliteOp) -> None:
    ctx.node("Reciprocal", [ctx.node("Sqrt", [ctx.value(op.inputs[0])])], [_out(ctx, op)])


def _square(ctx: _Ctx, op: TfliteOp) -> None:
    x = ctx.value(op.inputs[0])
    ctx.node("Mul", [x, x], [_out(ctx, op)])


def _squared_difference(ctx: _Ctx, op: TfliteOp) -> None:
    d = ctx.node("Sub", [ctx.value(op.inputs[0]), ctx.value(op.inputs[1])])
    ctx.node("Mul", [d, d], [_out(ctx, op)])


def _transpose(ctx: _Ctx, op: TfliteOp) -> None:
    perm = [int(p) for p in ctx.const_of(op.inputs[1])]
    ctx.node("Transpose", [ctx.value(op.inputs[0])], [_out(ctx, op)], perm=perm)


def _expand_dims(ctx: _Ctx, op: TfliteOp) -> None:
    rank = len(ctx.shape(op.outputs[0]))
    axes = _axes(ctx, op.inputs[1], rank)
    ctx.node("Unsqueeze", [ctx.value(op.inputs[0]), ctx.const(np.array(axes, np.int64))],
             [_out(ctx, op)])


def _squeeze(ctx: _Ctx, op: TfliteOp) -> None:
    dims = op.options.get("squeeze_dims") or [
        i for i, s in enumerate(ctx.shape(op.inputs[0])) if s == 1]
    rank = len(ctx.shape(op.inputs[0]))
    axes = np.array([d % rank for d in dims], np.int64)
    ctx.node("Squeeze", [ctx.value(op.inputs[0]), ctx.const(axes)], [_out(ctx, op)])


def _pack(ctx: _Ctx, op: TfliteOp) -> None:
    axis = op.options.get("axis", 0)
    rank = len(ctx.shape(op.outputs[0]))
    ax = ctx.const(np.array([axis % rank], np.int64))
    parts = [ctx.node("Unsqueeze", [ctx.value(i), ax]) for i in op.inputs]
    ctx.node("Concat", parts, [_out(ctx, op)], axis=axis)


def _cast(ctx: _Ctx, op: TfliteOp) -> None:
    to = _NP_TO_ONNX[ctx.g.tensors[op.outputs[0]].dtype]
    ctx.node("Cast", [ctx.value(op.inputs[0])], [_out(ctx, op)], to=to)


def _slice(ctx: _Ctx, op: TfliteOp) -> None:
    begin = ctx.const_of(op.inputs[1]).astype(np.int64)
    size = ctx.const_of(op.inputs[2]).astype(np.int64)
    end = np.where(size < 0, _INT_MAX, begin + size)
    ctx.node("Slice", [ctx.value(op.inputs[0]), ctx.const(begin), ctx.const(end)],
             [_out(ctx, op)])


def _strided_slice(ctx: _Ctx, op: TfliteOp) -> None:
    o = op.options
    if o.get("ellipsis_mask") or o.get("new_axis_mask") or o.get("offset"):
        raise UnsupportedOpError("STRIDED_SLICE with ellipsis/new_axis/offset")
    begin = ctx.const_of(op.inputs[1]).astype(np.int64).copy()
    end = ctx.const_of(op.inputs[2]).astype(np.int64).copy()
    strides = ctx.const_of(op.inputs[3]).astype(np.int64)
    shrink = o.get("shrink_axis_mask", 0)
    for i in range(begin.size):
        if o.get("begin_mask", 0) >> i & 1:
            begin[i] = 0 if strides[i] > 0 else _INT_MAX
        if o.get("end_mask", 0) >> i & 1:
            end[i] = _INT_MAX if strides[i] > 0 else -_INT_MAX
        if shrink >> i & 1:
            end[i] = begin[i] + 1 if begin[i] != -1 else _INT_MAX
    axes = np.arange(begin.size, dtype=np.int64)
    y = ctx.node("Slice", [ctx.value(op.inputs[0]), ctx.const(begin), ctx.const(end),
                           ctx.const(axes), ctx.const(strides)])
    squeeze = [i for i in range(begin.size) if shrink >> i & 1]
    if squeeze:
        ctx.node("Squeeze", [y, ctx.const(np.array(squeeze, np.int64))], [_out(ctx, op)])
    else:
        ctx.node("Identity", [y], [_out(ctx, op)])


def _pad(ctx: _Ctx, op: TfliteOp) -> None:
    pads = ctx.const_of(op.inputs[1]).astype(np.int64)
    onnx_pads = np.concatenate([pads[:, 0], pads[:, 1]])
    ins = [ctx.value(op.inputs[0]), ctx.const(onnx_pads)]
    if len(op.inputs) > 2 and op.inputs[2] >= 0:
        ins.append(ctx.value(op.inputs[2]))
    ctx.node("Pad", ins, [_out(ctx, op)], mode="constant")


def _dequantize_op(ctx: _Ctx, op: TfliteOp) -> None:
    src = op.inputs[0]
    if src in ctx.consts:
        value = ctx.consts[src].astype(np.float32)
        ctx.consts[op.outputs[0]] = value
        ctx.inits[_out(ctx, op)] = numpy_helper.from_array(value, _out(ctx, op))
        return
    t = ctx.g.tensors[src]
    if t.dtype == np.float16:
        ctx.node("Cast", [ctx.value(src)], [_out(ctx, op)], to=TensorProto.FLOAT)
        return
    raise UnsupportedOpError("DEQUANTIZE of a non-constant integer tensor")


def _conv2d(ctx: _Ctx, op: TfliteOp) -> None:
    o = op.options
    w = ctx.const_of(op.inputs[1]).astype(np.float32)  # OHWI
    kh, kw = w.shape[1:3]
    sh, sw = o.get("stride_h", 1), o.get("stride_w", 1)
    dh, dw = o.get("dilation_h_factor", 1), o.get("dilation_w_factor", 1)
    _, ih, iw, _ = ctx.shape(op.inputs[0])
    pads = [0, 0, 0, 0]
    if o.get("padding", 0) == 0:  # SAME
        def same(size: int, k: int, s: int, d: int) -> tuple[int, int]:
            out = -(-size // s)
            total = max((out - 1) * s + (k - 1) * d + 1 - size, 0)
            return total // 2, total - total // 2
        (pt, pb), (pl, pr) = same(ih, kh, sh, dh), same(iw, kw, sw, dw)
        pads = [pt, pl, pb, pr]
    x = ctx.node("Transpose", [ctx.value(op.inputs[0])], perm=[0, 3, 1, 2])
    ins = [x, ctx.const(np.ascontiguousarray(w.transpose(0, 3, 1, 2)), "conv_w")]
    if len(op.inputs) > 2 and op.inputs[2] >= 0:
        ins.append(ctx.value(op.inputs[2]))
    y = ctx.node("Conv", ins, kernel_shape=[kh, kw], strides=[sh, sw], dilations=[dh, dw],
                 pads=pads)
    y = ctx.node("Transpose", [y], perm=[0, 2, 3, 1])
    _activation(ctx, y, o.get("fused_activation_function", 0), _out(ctx, op))


def _l2_norm(ctx: _Ctx, op: TfliteOp) -> None:
    x = ctx.value(op.inputs[0])
    ss = ctx.node("ReduceSum", [ctx.node("Mul", [x, x]), ctx.const(np.array([-1], np.int64))],
                  keepdims=1)
    inv = ctx.node("Reciprocal", [ctx.node("Sqrt", [ctx.node(
        "Max", [ss, ctx.const(np.float32(1e-12))])])])
    ctx.node("Mul", [x, inv], [_out(ctx, op)])


def _select(ctx: _Ctx, op: TfliteOp) -> None:
    ctx.node("Where", [ctx.value(i) for i in op.inputs[:3]], [_out(ctx, op)])


def _leaky_relu(ctx: _Ctx, op: TfliteOp) -> None:
    ctx.node("LeakyRelu", [ctx.value(op.inputs[0])], [_out(ctx, op)],
             alpha=float(op.options.get("alpha", 0.2)))


def _relu6(ctx: _Ctx, op: TfliteOp) -> None:
    _activation(ctx, ctx.value(op.inputs[0]), _ACT_RELU6, _out(ctx, op))


CONVERTERS: dict[str, Callable[[_Ctx, TfliteOp], None]] = {
    "ADD": _binary("Add"), "SUB": _binary("Sub"), "MUL": _binary("Mul"), "DIV": _binary("Div"),
    "MAXIMUM": _binary("Max"), "MINIMUM": _binary("Min"), "POW": _binary("Pow"),
    "LESS": _binary("Less"), "GREATER": _binary("Greater"), "EQUAL": _binary("Equal"),
    "LESS_EQUAL": _binary("LessOrEqual"), "GREATER_EQUAL": _binary("GreaterOrEqual"),
    "LOGICAL_AND": _binary("And"), "LOGICAL_OR": _binary("Or"),
    "SQUARED_DIFFERENCE": _squared_difference,
    "TANH": _unary("Tanh"), "LOGISTIC": _unary("Sigmoid"), "RELU": _unary("Relu"),
    "RELU6": _relu6, "EXP": _unary("Exp"), "LOG": _unary("Log"), "ABS": _unary("Abs"),
    "NEG": _unary("Neg"), "SQRT": _unary("Sqrt"), "SIN": _unary("Sin"), "COS": _unary("Cos"),
    "FLOOR": _unary("Floor"), "LOGICAL_NOT": _unary("Not"), "ZEROS_LIKE": None,
    "RSQRT": _rsqrt, "SQUARE": _square, "GELU": _gelu, "LEAKY_RELU": _leaky_relu,
    "SOFTMAX": _softmax, "L2_NORMALIZATION": _l2_norm,
    "FULLY_CONNECTED": _fully_connected, "BATCH_MATMUL": _batch_matmul,
    "RESHAPE": _reshape, "TRANSPOSE": _transpose, "EXPAND_DIMS": _expand_dims,
    "SQUEEZE": _squeeze, "PACK": _pack, "CONCATENATION": _concat, "CAST": _cast,
    "SLICE": _slice, "STRIDED_SLICE": _strided_slice, "PAD": _pad, "PADV2": _pad,
    "MEAN": _reduce("ReduceMean"), "SUM": _reduce("ReduceSum"), "REDUCE_MAX": _reduce("ReduceMax"),
    "REDUCE_MIN": _reduce("ReduceMin"),
    "ARG_MIN": _arg("ArgMin"), "ARG_MAX": _arg("ArgMax"), "GATHER": _gather,
    "SELECT": _select, "SELECT_V2": _select, "DEQUANTIZE": _dequantize_op, "CONV_2D": _conv2d,
}
CONVERTERS = {k: v for k, v in CONVERTERS.items() if v is not None}


def convert_graph(graph: TfliteGraph, *, input_names: Sequence[str] | None = None,
                  output_names: Sequence[str] | None = None, doc: str = "") -> onnx.ModelProto:
    """Convert a parsed TFLite graph; optionally rename graph inputs/outputs."""
    missing = sorted({op.name for op in graph.ops if op.name not in CONVERTERS})
    if missing:
        raise UnsupportedOpError(
            f"TFLite ops not supported by the converter: {', '.join(missing)} "
            f"(add them to onnx_export/tflite_to_onnx.py CONVERTERS)")
    for t in graph.tensors:
        if t.data is None and t.scale is not None and t.dtype in (np.int8, np.uint8):
            raise UnsupportedOpError(f"fully quantized activations ({t.name}) are not supported")
    ctx = _Ctx(graph)
    for names, idxs in ((input_names, graph.inputs), (output_names, graph.outputs)):
        if names is not None:
            if len(names) != len(idxs):
                raise ValueError(f"expected {len(idxs)} names, got {len(names)}")
            for n, i in zip(names, idxs):
                ctx.names[i] = n
    for op in graph.ops:
        CONVERTERS[op.name](ctx, op)
    # an output that is directly a graph input or constant needs an Identity node
    def info(idx: int) -> onnx.ValueInfoProto:
        t = graph.tensors[idx]
        return helper.make_tensor_value_info(ctx.names[idx], _NP_TO_ONNX[t.dtype], list(t.shape))

    g = helper.make_graph(ctx.nodes, "tflite", [info(i) for i in graph.inputs],
                          [info(i) for i in graph.outputs], list(ctx.inits.values()))
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="magenta-rt-bridge.tflite_to_onnx", doc_string=doc)
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def convert_tflite(src: Path | bytes, dst: Path | None = None, **kwargs) -> onnx.ModelProto:
    """Convert ``src`` (a .tflite path or bytes); write to ``dst`` if given."""
    model = convert_graph(read_tflite(src), **kwargs)
    if dst is not None:
        Path(dst).parent.mkdir(parents=True, exist_ok=True)
        onnx.save(model, str(dst))
        log.info("wrote %s (%d nodes)", dst, len(model.graph.node))
    return model
