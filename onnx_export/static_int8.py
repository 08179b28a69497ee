"""Calibrated static int8 for conv stacks: QDQ around every Conv with a constant weight.

Per conv ``y = Conv(x, w, b)`` this writes::

    x -> QuantizeLinear(uint8, calibrated) -> DequantizeLinear --\
    w -> int8 per output channel -----------> DequantizeLinear -+-> Conv -> y
    b -> int32 at scale s_x * s_w -> DequantizeLinear -----------/
    y -> QuantizeLinear(uint8, calibrated) -> DequantizeLinear -> the conv's consumers

ORT fuses ``DQ -> Conv -> Q`` into ``QLinearConv`` (u8 x s8: im2col + its int8 GEMM, on
AMX-INT8 or VNNI where the CPU has them; see ``AMX_WEIGHT_ZERO_POINT``) and moves the Q/DQ pairs
across Reshape/Transpose/Slice/Concat/Resize, so the layout ops between convs run on bytes;
float ops (ELU, Add) see the dequantized values. Activation ranges are clipped min/max over a
calibration set of real graph inputs, state included (``calibrate``).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

# Weight zero point for CPUs with AMX-INT8. With 0 (symmetric weights) ORT runs QLinearConv on
# its direct "symmetric conv" kernels (AVX2/VNNI); with any other zero point it takes im2col +
# its int8 GEMM, which uses AMX tiles: measured 1.3-2.3x faster per conv on a Xeon with
# AMX-INT8 (e.g. 256->256 3x3 on 2x40x4: 278 -> 647 GMAC/s), for 3 of 127 levels.
AMX_WEIGHT_ZERO_POINT = 3


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
                   exclude: set[str] = frozenset(), weight_zero_point: int = 0) -> onnx.ModelProto:
    """Insert the QDQ pattern above around every ``conv_targets`` node but ``exclude`` (ranges
    from ``calibrate`` for each conv's input and output; int8 weights per output channel at
    ``weight_zero_point``, see ``AMX_WEIGHT_ZERO_POINT``).

    Every consumer of a quantized tensor reads its dequantized copy. A conv input made by a
    Concat (streaming state ++ new rows) is quantized on the Concat's inputs as well, with the
    same parameters, so the Concat and the Slice that keeps the state run on bytes.
    """
    g = model.graph
    inits = {t.name: t for t in g.initializer}
    convs = [n for n in conv_targets(model)]
    if len({n.name for n in convs}) != len(convs):
        raise ValueError("quantize_convs needs unique Conv node names")
    targets = [n for n in convs if n.name not in exclude]
    producer = {o: n for n in g.node for o in n.output}
    params: dict[str, tuple[float, int]] = {}
    for node in targets:
        x, y = node.input[0], node.output[0]
        params[x] = _uint8_params(*ranges[x])
        params[y] = _uint8_params(*ranges[y])
        src = producer.get(x)
        if src is not None and src.op_type == "Concat":
            for a in src.input:
                params.setdefault(a, params[x])
    if any(o.name in params for o in g.output):
        raise NotImplementedError("a quantized tensor is a graph output")

    new_inits: list[onnx.TensorProto] = []
    nodes: list[onnx.NodeProto] = []
    deq: dict[str, str] = {}   # quantized tensor -> its dequantized copy

    def const(name: str, arr: np.ndarray) -> str:
        new_inits.append(numpy_helper.from_array(arr, name))
        return name

    def qdq(tensor: str) -> None:
        scale, zp = params[tensor]
        sc = const(tensor + "/q_scale", np.array(scale, np.float32))
        z = const(tensor + "/q_zero", np.array(zp, np.uint8))
        q, dq = tensor + "/q", tensor + "/dq"
        nodes.append(helper.make_node("QuantizeLinear", [tensor, sc, z], [q], name=q))
        nodes.append(helper.make_node("DequantizeLinear", [q, sc, z], [dq], name=dq))
        deq[tensor] = dq

    for inp in g.input:
        if inp.name in params:
            qdq(inp.name)
    target_names = {n.name for n in targets}
    for node in g.node:
        x = node.input[0] if node.input else ""
        if node.op_type == "Slice" and x in deq and node.output[0] not in params:
            # Slice the bytes, then dequantize the (smaller) slice.
            out = node.output[0]
            sc, z = x + "/q_scale", x + "/q_zero"
            node.input[0], node.output[0] = x + "/q", out + "/q"
            nodes += [node, helper.make_node("DequantizeLinear", [out + "/q", sc, z], [out],
                                             name=out + "/dq")]
            continue
        for i, name in enumerate(node.input):
            if name in deq:
                node.input[i] = deq[name]
        if node.name in target_names:
            _int8_weights(node, x, params[x][0], weight_zero_point, inits, const, nodes)
        nodes.append(node)
        for out in node.output:
            if out in params:
                qdq(out)
    del g.node[:]
    g.node.extend(nodes)
    g.initializer.extend(new_inits)
    _drop_unused_initializers(g)
    return model


def _int8_weights(node: onnx.NodeProto, x: str, x_scale: float, zero_point: int, inits: dict,
                  const, nodes: list) -> None:
    """Point ``node``'s weight (and bias) at int8 (int32) copies through DequantizeLinear."""
    wname = node.input[1]
    w = numpy_helper.to_array(inits[wname]).astype(np.float32)
    sw = np.abs(w.reshape(w.shape[0], -1)).max(axis=1) / (127.0 - zero_point)
    sw = np.where(sw == 0, 1.0, sw).astype(np.float32)
    wq = np.round(w / sw.reshape(-1, *[1] * (w.ndim - 1))) + zero_point
    wq = np.clip(wq, -128, 127).astype(np.int8)
    wdq = wname + "/w_dq"
    nodes.append(helper.make_node(
        "DequantizeLinear", [const(wname + "/int8", wq), const(wname + "/w_scale", sw),
                             const(wname + "/w_zero", np.full(sw.shape, zero_point, np.int8))],
        [wdq], name=wdq, axis=0))
    node.input[1] = wdq
    if len(node.input) > 2 and node.input[2]:
        bname = node.input[2]
        sb = (x_scale * sw).astype(np.float32)
        bq = np.round(numpy_helper.to_array(inits[bname]) / sb).astype(np.int32)
        bdq = bname + "/b_dq"
        nodes.append(helper.make_node(
            "DequantizeLinear", [const(bname + "/int32", bq), const(bname + "/b_scale", sb),
                                 const(bname + "/b_zero", np.zeros_like(bq))],
            [bdq], name=bdq, axis=0))
        node.input[2] = bdq
