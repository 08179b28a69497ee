"""Run float convolutions with few output channels on ``NarrowConv`` (narrow_conv.c).

ORT's float Conv on x86 works in blocks of 16 output channels and reorders its input into
channel blocks first. The codec decoder's output conv has 8 output channels (2 audio channels x
4 interleaved phases) over 256 input channels and 7x3 taps::

    x [2, 256, 10, 120] ─ ReorderInput ─ Conv (blocks of 16, half zeros) ─ ReorderOutput ─► y
        becomes  x ─ NarrowConv(W, B, pads) ─► y [2, 8, 4, 120]

``NarrowConv`` reads x as it is and keeps 8 channels in one AVX2 register. The sums are the
same products in another order (float rounding differs in the last bits). Measured on a
2-core AMD EPYC Zen 4, one thread: 1.30-1.38 ms against ORT's 1.63-1.75 ms (its reorders
included); in the mrt2_small int8 codec, 0.4-0.7 ms a frame less (README).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .rows_matmul import DOMAIN, import_domain

if TYPE_CHECKING:
    import onnx

OP = "NarrowConv"
# The output channels it takes: one register (narrow_conv.h NARROW_CONV_GROUP). The kernel does
# any multiple of 8, but at 16 ORT's blocked kernel is faster (measured 1.65 against 2.32 ms).
OUTPUTS = 8
MAX_KERNEL_WIDTH = 64  # narrow_conv.h NARROW_CONV_MAX_KW


def move_narrow_convs(model: onnx.ModelProto) -> int:
    """Point every float Conv that ``NarrowConv`` computes faster than ORT at it: a constant 4-D
    float weight with 8 output channels and at most 64 taps across, a constant bias, group 1,
    unit strides and dilations, explicit (or no) pads. Anything else is left alone. Returns how many moved."""
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    graph = model.graph
    inits = {i.name: i for i in graph.initializer}
    moved = 0
    for node in graph.node:
        if node.op_type != "Conv" or node.domain not in ("", "ai.onnx") or len(node.input) != 3:
            continue
        w, b = inits.get(node.input[1]), inits.get(node.input[2])
        if w is None or b is None or w.data_type != TensorProto.FLOAT or b.data_type != TensorProto.FLOAT:
            continue
        if len(w.dims) != 4 or w.dims[0] != OUTPUTS or w.dims[3] > MAX_KERNEL_WIDTH or list(b.dims) != [OUTPUTS]:
            continue
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        pads = list(attrs.pop("pads", [0, 0, 0, 0]))
        kernel = list(attrs.pop("kernel_shape", w.dims[2:]))
        ones = all(list(attrs.pop(k, [1, 1])) == [1, 1] for k in ("strides", "dilations"))
        if (not ones or attrs.pop("group", 1) != 1 or attrs.pop("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET")
                or attrs or kernel != list(w.dims[2:]) or len(pads) != 4 or min(pads) < 0):
            continue
        pads_name = f"{node.name or node.output[0]}/narrow_conv_pads"
        graph.initializer.append(numpy_helper.from_array(np.array(pads, np.int64), pads_name))
        node.op_type, node.domain = OP, DOMAIN
        node.input.append(pads_name)
        del node.attribute[:]
        moved += 1
    if moved:
        import_domain(model)
    return moved
