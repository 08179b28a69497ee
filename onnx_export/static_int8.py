"""Calibrated static int8 for conv stacks: QDQ around every Conv with a constant weight.

Per conv ``y = Conv(x, w, b)`` this writes::

    x -> QuantizeLinear(uint8, calibrated) -> DequantizeLinear --\
    w -> int8 per output channel (symmetric) -> DequantizeLinear -+-> Conv -> y
    b -> int32 at scale s_x * s_w -> DequantizeLinear -----------/
    y -> QuantizeLinear(uint8, calibrated) -> DequantizeLinear -> the conv's consumers

ORT fuses ``DQ -> Conv -> Q`` into ``QLinearConv`` (u8 x s8, VNNI/AMX where the CPU has
them) and moves the Q/DQ pairs across Reshape/Transpose/Slice/Concat/Resize, so the layout
ops between convs run on bytes; float ops (ELU, Add) see the dequantized values.
Activation ranges are min/max over a calibration set of real graph inputs (state included).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper


def fold_constant_splits(model: onnx.ModelProto) -> onnx.ModelProto:
    """Replace each Split of an initializer (by constant sizes) with one initializer per part,
    named after the Split's outputs, so the convs reading them have constant weights."""
    g = model.graph
    inits = {t.name: t for t in g.initializer}
    keep = []
    for node in g.node:
        if node.op_type == "Split" and len(node.input) == 2 and all(i in inits for i in node.input):
            arr = numpy_helper.to_array(inits[node.input[0]])
            sizes = numpy_helper.to_array(inits[node.input[1]])
            axis = next((a.i for a in node.attribute if a.name == "axis"), 0)
            for out, part in zip(node.output, np.split(arr, np.cumsum(sizes)[:-1], axis=axis)):
                g.initializer.append(numpy_helper.from_array(np.ascontiguousarray(part), out))
        else:
            keep.append(node)
    del g.node[:]
    g.node.extend(keep)
    _drop_unused_initializers(g)
    return model


def _drop_unused_initializers(g: onnx.GraphProto) -> None:
    used = {i for n in g.node for i in n.input} | {o.name for o in g.output}
    live = [t for t in g.initializer if t.name in used]
    del g.initializer[:]
    g.initializer.extend(live)


def conv_targets(model: onnx.ModelProto) -> list[onnx.NodeProto]:
    """The Conv nodes with a constant weight (the ones this pass quantizes; names must be
    unique)."""
    inits = {t.name for t in model.graph.initializer}
    return [n for n in model.graph.node if n.op_type == "Conv" and n.input[1] in inits]


def calibrate(model: onnx.ModelProto, feeds: Iterable[dict[str, np.ndarray]],
              tensors: list[str], samples: int = 1 << 13, seed: int = 0
              ) -> dict[str, tuple[float, float]]:
    """A uint8 range for each of ``tensors``: the clip of its values (over the runs of ``model``
    on ``feeds``) that minimises the squared quantization error (``mse_range``)."""
    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    have = {o.name for o in probe.graph.output}
    for name in tensors:
        if name not in have:
            probe.graph.output.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, None))
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    sess = ort.InferenceSession(probe.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(seed)
    seen: dict[str, list[np.ndarray]] = {t: [] for t in tensors}
    for feed in feeds:
        for name, value in zip(tensors, sess.run(tensors, feed)):
            v = value.ravel()
            if v.size > samples:   # extremes always kept: they bound the search
                v = np.concatenate([rng.choice(v, samples), [v.min(), v.max()]])
            seen[name].append(v)
    if not any(seen.values()):
        raise ValueError("calibration needs at least one feed")
    return {t: mse_range(np.concatenate(v)) for t, v in seen.items()}


def mse_range(values: np.ndarray, steps: int = 24) -> tuple[float, float]:
    """The clip [lo, hi] (a shrink of [min, max] towards 0) with the least uint8 error."""
    lo, hi = min(float(values.min()), 0.0), max(float(values.max()), 0.0)
    if hi == lo:
        return lo, hi
    best, best_err = (lo, hi), np.inf
    for frac in np.linspace(1.0, 0.2, steps):
        scale, zp = _uint8_params(lo * frac, hi * frac)
        q = np.clip(np.round(values / scale) + zp, 0, 255)
        err = float(np.mean(((q - zp) * scale - values) ** 2))
        if err < best_err:
            best, best_err = (lo * frac, hi * frac), err
    return best


def _uint8_params(lo: float, hi: float) -> tuple[float, int]:
    lo, hi = min(lo, 0.0), max(hi, 0.0)  # zero must be exact (padding)
    scale = (hi - lo) / 255.0 or 1.0
    return scale, int(np.clip(round(-lo / scale), 0, 255))


def quantize_convs(model: onnx.ModelProto, ranges: dict[str, tuple[float, float]],
                   exclude: set[str] = frozenset()) -> onnx.ModelProto:
    """Insert the QDQ pattern above around every ``conv_targets`` node (ranges from ``calibrate``
    for each conv's input and output)."""
    g = model.graph
    inits = {t.name: t for t in g.initializer}
    convs = [n.name for n in conv_targets(model)]
    if len(set(convs)) != len(convs):
        raise ValueError("quantize_convs needs unique Conv node names")
    targets = set(convs) - set(exclude)
    new_inits: list[onnx.TensorProto] = []
    qdq_of: dict[str, str] = {}   # float tensor -> its dequantized copy
    out_nodes: list[onnx.NodeProto] = []

    def const(name: str, arr: np.ndarray) -> str:
        new_inits.append(numpy_helper.from_array(arr, name))
        return name

    def qdq(tensor: str, nodes: list[onnx.NodeProto]) -> str:
        if tensor in qdq_of:
            return qdq_of[tensor]
        scale, zp = _uint8_params(*ranges[tensor])
        s = const(tensor + "/q_scale", np.array(scale, np.float32))
        z = const(tensor + "/q_zero", np.array(zp, np.uint8))
        q, dq = tensor + "/q", tensor + "/dq"
        nodes.append(helper.make_node("QuantizeLinear", [tensor, s, z], [q], name=q))
        nodes.append(helper.make_node("DequantizeLinear", [q, s, z], [dq], name=dq))
        qdq_of[tensor] = dq
        return dq

    renamed: dict[str, str] = {}  # conv output -> its dequantized copy, for the consumers
    source: dict[str, str] = {}   # and back
    for node in g.node:
        for i, name in enumerate(node.input):
            if name in renamed:
                node.input[i] = renamed[name]
        if node.name not in targets:
            out_nodes.append(node)
            continue
        x, wname = node.input[0], node.input[1]
        pre: list[onnx.NodeProto] = []
        x = source.get(x, x)
        xdq = qdq(x, pre)
        w = numpy_helper.to_array(inits[wname]).astype(np.float32)
        sw = np.abs(w.reshape(w.shape[0], -1)).max(axis=1) / 127.0
        sw = np.where(sw == 0, 1.0, sw).astype(np.float32)
        wq = np.clip(np.round(w / sw.reshape(-1, *[1] * (w.ndim - 1))), -127, 127).astype(np.int8)
        ws = const(wname + "/w_scale", sw)
        wz = const(wname + "/w_zero", np.zeros_like(sw, np.int8))
        wi = const(wname + "/int8", wq)
        wdq = wname + "/w_dq"
        pre.append(helper.make_node("DequantizeLinear", [wi, ws, wz], [wdq], name=wdq, axis=0))
        inputs = [xdq, wdq]
        if len(node.input) > 2 and node.input[2]:
            bname = node.input[2]
            sx = _uint8_params(*ranges[x])[0]
            sb = (sx * sw).astype(np.float32)
            bq = np.round(numpy_helper.to_array(inits[bname]) / sb).astype(np.int32)
            bdq = bname + "/b_dq"
            pre.append(helper.make_node(
                "DequantizeLinear", [const(bname + "/int32", bq), const(bname + "/b_scale", sb),
                                     const(bname + "/b_zero", np.zeros_like(bq))],
                [bdq], name=bdq, axis=0))
            inputs.append(bdq)
        y = node.output[0]
        del node.input[:]
        node.input.extend(inputs)
        out_nodes += pre + [node]
        renamed[y] = qdq(y, out_nodes)
        source[renamed[y]] = y
    for o in g.output:
        if o.name in renamed:
            raise NotImplementedError(f"conv output {o.name} is a graph output")
    del g.node[:]
    g.node.extend(out_nodes)
    g.initializer.extend(new_inits)
    _drop_unused_initializers(g)
    return model
