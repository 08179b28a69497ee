"""Run the rows schemes' int8 MatMuls on mrt-bridge's AVX2 GEMV kernel instead of ORT's.

A graph exported with the ``rows`` or ``rows_u8`` scheme (onnx_export/precision.py) computes
every weight MatMul as ORT ``MatMulIntegerToFloat``: uint8 activations around 128 per row,
int8 (or uint8 around 128) weights, exact int32 sums scaled by row x column scales. On AVX2
without int8 dot products ORT runs these 1-3 row GEMVs far below the core's read bandwidth
(its u8 x u8 path widens every weight to int16; its u8 x s8 path saturates). The custom
operators ``RowsMatMulS8`` / ``RowsMatMulU8`` (ort_rows_matmul.c) take the same inputs and
compute the same sums exactly, from weights packed once per session. ``relabelled_graph``
points a graph's matching nodes at them, in a copy kept in the cache; packages stay plain ONNX.

Measured on a 2-core AMD EPYC (AVX2), mrt2_small, model step in line: 3 guided rows 47.7 ->
31.9 ms (temporal 24.6 -> 18.1, depth decoder 23.2 -> 13.8), one row 40.7 -> 21.5.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING

from . import build

if TYPE_CHECKING:  # onnx takes seconds to import: only a graph to relabel needs it
    import onnx

log = logging.getLogger(__name__)

DOMAIN = "mrt_bridge"  # the operators of ort_rows_matmul.c, by weight type
OPS = {"int8": "RowsMatMulS8", "uint8": "RowsMatMulU8"}
KERNEL = "mrt-bridge/avx2"  # how bench and the logs name it
# auto: CPUs with AVX2 but no int8 dot products; on: every AVX2 CPU (to measure it on VNNI/AMX
# machines, where ORT's own kernel is exact and was not compared); off: ORT's kernels.
ENV_SWITCH = "MRT_BRIDGE_NATIVE_KERNELS"
SWITCH_VALUES = ("auto", "on", "off")
FORMAT = 1  # of the relabelled graphs in the cache: bump when relabel changes
_warned: set[str] = set()  # switch values already reported


def usable(isa: list[str]) -> bool:
    """Whether this CPU gets the kernel, by $MRT_BRIDGE_NATIVE_KERNELS (``SWITCH_VALUES``,
    default auto; another value is logged and read as auto)."""
    from onnx_export.precision import has_int8_dot

    switch = os.environ.get(ENV_SWITCH, "auto").strip().lower() or "auto"
    if switch not in SWITCH_VALUES:
        if switch not in _warned:
            _warned.add(switch)
            log.warning("%s=%r is not one of %s; using auto", ENV_SWITCH, switch, "|".join(SWITCH_VALUES))
        switch = "auto"
    if switch == "off" or "avx2" not in isa:
        return False
    return switch == "on" or not has_int8_dot(isa)


def relabel(model: onnx.ModelProto) -> int:
    """Point every MatMulIntegerToFloat of ``model`` that the kernel computes exactly at it:
    a constant 2-D int8 weight (or uint8 with zero point 128) and activation zero point 128,
    no bias input. Returns how many nodes were relabelled."""
    from onnx import TensorProto, helper, numpy_helper

    inits = {i.name: i for i in model.graph.initializer}

    def scalar_128(name: str) -> bool:
        t = inits.get(name)
        values = numpy_helper.to_array(t).reshape(-1) if t is not None else ()
        return len(values) == 1 and int(values[0]) == 128

    count = 0
    for node in model.graph.node:
        if node.op_type != "MatMulIntegerToFloat" or node.domain != "com.microsoft":
            continue
        ins = list(node.input)
        w = inits.get(ins[1]) if len(ins) > 1 else None
        if w is None or len(w.dims) != 2 or len(ins) not in (5, 6) or not scalar_128(ins[4]):
            continue
        if len(ins) == 6 and w.data_type == TensorProto.UINT8 and scalar_128(ins[5]):
            node.op_type = OPS["uint8"]
        elif len(ins) == 5 and w.data_type == TensorProto.INT8:
            node.op_type = OPS["int8"]
        else:
            continue
        node.domain = DOMAIN
        count += 1
    if count and not any(o.domain == DOMAIN for o in model.opset_import):
        model.opset_import.append(helper.make_opsetid(DOMAIN, 1))
    return count


def relabelled_graph(path: Path) -> tuple[Path, int] | None:
    """The graph at ``path`` with its int8 MatMuls on the kernel, as a file in the project's
    cache, and how many it moved; None when none qualifies. Made once per source file (keyed by
    its path, size and mtime) and written atomically. A session loads it by path: from bytes ORT
    keeps a second copy of the initializers (measured: +220 MB for mrt2_small's temporal graph)."""
    import hashlib
    import json

    from ..synthetic import cache_dir

    stat = path.stat()
    key = hashlib.sha256(f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}|{FORMAT}".encode()).hexdigest()[:20]
    folder = cache_dir() / "graphs" / key
    target, record = folder / path.name, folder / "relabelled.json"
    try:
        count = int(json.loads(record.read_text())["count"])
        if count == 0 or target.exists():
            return (target, count) if count else None
    except (OSError, ValueError, KeyError, TypeError):
        pass  # not made yet, or damaged: make it
    import onnx

    model = onnx.load(str(path))
    count = relabel(model)
    folder.mkdir(parents=True, exist_ok=True)
    if count:
        with build.replacing(target) as tmp:
            tmp.write_bytes(model.SerializeToString())
    with build.replacing(record) as tmp:
        tmp.write_text(json.dumps({"source": str(path.resolve()), "count": count}))
    return (target, count) if count else None


def library() -> Path | None:
    """The custom-op library to register, or None when it cannot be built here."""
    return build.library()
