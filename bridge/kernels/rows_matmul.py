"""Run the rows schemes' int8 MatMuls on mrt-bridge's GEMV kernel (AVX2 or AVX-512 VNNI)
instead of ORT's.

A graph exported with the ``rows`` or ``rows_u8`` scheme (onnx_export/precision.py) computes
every weight MatMul as ORT ``MatMulIntegerToFloat``: uint8 activations around 128 per row,
int8 (or uint8 around 128) weights, exact int32 sums scaled by row x column scales. On AVX2
without int8 dot products ORT runs these 1-3 row GEMVs far below the core's read bandwidth
(its u8 x u8 path widens every weight to int16; its u8 x s8 path saturates). The custom
operators ``RowsMatMulS8`` / ``RowsMatMulU8`` (ort_ops.c) take the same inputs and
compute the same sums exactly, from weights packed once per session; ``RowsQuantMatMulS8`` /
``RowsQuantMatMulU8`` also quantize the float activation as the graph's ops did, bit for bit,
so those ops go (``fuse_quantization``). ``relabelled_graph`` points a graph's matching nodes
at them, in a copy kept in the cache; packages stay plain ONNX.

Measured on a 2-core AMD EPYC (AVX2), mrt2_small, model step in line: 3 guided rows 47.7 ->
31.9 ms (temporal 24.6 -> 18.1, depth decoder 23.2 -> 13.8), one row 40.7 -> 21.5. On CPUs with
AVX-512 VNNI the kernel's variant there (rows_gemv_vnni.c) runs; there ORT's own kernel is exact
but reads 1-3 rows' weights more slowly (README, the Zen 4 EPYC). Fusing the
quantization drops 440 of the temporal graph's 1,157 nodes and 722 of the depth decoder's
1,739: 0.5-0.9 ms and 1.6-1.9 ms a frame with 3 rows (sessions alternated run by run).
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

DOMAIN = "mrt_bridge"  # the operators of ort_ops.c
OPS = {"int8": "RowsMatMulS8", "uint8": "RowsMatMulU8"}  # by weight type
QUANT_OPS = {"int8": "RowsQuantMatMulS8", "uint8": "RowsQuantMatMulU8"}  # float activations in
KERNEL_PREFIX = "mrt-bridge/"  # + the variant: how bench and the logs name the kernel
# auto: AVX2 CPUs without AMX (measured faster than ORT's kernels on an AVX2-only and an
# AVX-512 VNNI EPYC; an AMX Xeon was not compared); on: every AVX2 CPU; avx2: on, and the AVX2
# variant even where the CPU has VNNI (to compare the two; rows_gemv.c reads it too); off: ORT's.
ENV_SWITCH = "MRT_BRIDGE_NATIVE_KERNELS"
SWITCH_VALUES = ("auto", "on", "avx2", "off")
FORMAT = 4  # of the relabelled graphs in the cache: bump when relabel changes
_warned: set[str] = set()  # switch values already reported


def usable(isa: list[str]) -> bool:
    """Whether this CPU gets the kernel, by $MRT_BRIDGE_NATIVE_KERNELS (``SWITCH_VALUES``,
    default auto; another value is logged and read as auto)."""
    switch = os.environ.get(ENV_SWITCH, "auto").strip().lower() or "auto"
    if switch not in SWITCH_VALUES:
        if switch not in _warned:
            _warned.add(switch)
            log.warning("%s=%r is not one of %s; using auto", ENV_SWITCH, switch, "|".join(SWITCH_VALUES))
        switch = "auto"
    if switch == "off" or "avx2" not in isa:
        return False
    return switch != "auto" or "amx_int8" not in isa


def relabel(model: onnx.ModelProto, fuse: bool = True) -> int:
    """Point every MatMulIntegerToFloat of ``model`` that the kernel computes exactly at it:
    a constant 2-D int8 weight (or uint8 with zero point 128) and activation zero point 128,
    no bias input; with ``fuse``, where its activation comes from the rows schemes'
    quantization ops, the operator that quantizes it takes the float activation instead
    (``fuse_quantization``). Returns how many nodes were relabelled."""
    from onnx import TensorProto, numpy_helper

    inits = {i.name: i for i in model.graph.initializer}

    def scalar_128(name: str) -> bool:
        t = inits.get(name)
        values = numpy_helper.to_array(t).reshape(-1) if t is not None else ()
        return len(values) == 1 and int(values[0]) == 128

    relabelled = []
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
        relabelled.append(node)
    if relabelled:
        import_domain(model)
    if fuse:
        fuse_quantization(model, relabelled)
    return len(relabelled)


def fuse_quantization(model: onnx.ModelProto, nodes: list[onnx.NodeProto]) -> int:
    """Turn each RowsMatMul of ``nodes`` whose activation is quantized by ``to_int8_rows``'s ops
    into the RowsQuantMatMul that quantizes it itself, and drop the ops no longer used::

        x ─(Reshape [-1, K])─ Abs ─ ReduceMax ─ Max(eps) ─ Mul(1/127) ─► s ─ Unsqueeze ─► a_scale
        x ─(Reshape)─ QuantizeLinear(s, Cast(Clip(s, 128, 128)))─► xq
        RowsMatMul(xq, w, a_scale, b_scale, 128[, 128]) ─(Reshape to x's leading dims + [N])─► y
            becomes  RowsQuantMatMul(x, w, b_scale[, 128]) ─► y

    Anything else (other constants, another zero point, a graph with subgraphs) keeps the
    unfused operator. Returns how many were fused."""
    import numpy as np
    from onnx import TensorProto
    from onnx.helper import get_attribute_value

    from onnx_export.precision import ROWS_EPS, ROWS_INV127  # what quantize_rows in rows_gemv.c applies

    graph = model.graph
    if has_subgraphs(graph):
        return 0
    ix = GraphIndex(graph)
    inits, consumers, graph_outputs, const, made_by = ix.inits, ix.consumers, ix.outputs, ix.const, ix.made_by

    def ints(name: str) -> list | None:
        v = const(name)
        return None if v is None else [int(i) for i in v]

    def is_const(name: str, value: float, dtype) -> bool:
        v = const(name)
        return v is not None and v.size == 1 and v.dtype == dtype and v[0] == dtype(value)

    def attr(node, name: str, default=None):
        return next((get_attribute_value(a) for a in node.attribute if a.name == name), default)

    def activation(node):
        """(rows, the quantization's ops) when node's inputs 0 and 2 quantize ``rows``."""
        q = made_by(node.input[0], "QuantizeLinear")
        unsq = made_by(node.input[2], "Unsqueeze")
        if q is None or unsq is None or attr(q, "axis", 1) != 0 or len(q.input) != 3 or unsq.input[0] != q.input[1]:
            return None
        mul = made_by(q.input[1], "Mul")
        mx = made_by(mul.input[0], "Max") if mul is not None and is_const(mul.input[1], ROWS_INV127, np.float32) else None
        rm = made_by(mx.input[0], "ReduceMax") if mx is not None and is_const(mx.input[1], ROWS_EPS, np.float32) else None
        if rm is None or attr(rm, "keepdims", 1) != 0:
            return None
        axes = list(attr(rm, "axes", [])) if len(rm.input) < 2 else ints(rm.input[1])
        ab = made_by(rm.input[0], "Abs")
        if axes != [-1] or ab is None or ab.input[0] != q.input[0]:
            return None
        cast = made_by(q.input[2], "Cast")
        clip = made_by(cast.input[0], "Clip") if cast is not None and attr(cast, "to") == TensorProto.UINT8 else None
        if clip is None or len(clip.input) != 3 or not all(is_const(c, 128.0, np.float32) for c in clip.input[1:]):
            return None
        return q.input[0], [q, unsq, mul, mx, rm, ab, cast, clip]

    def unflattened(node, rows: str, k: int, n: int):
        """(x, y, the ops around the op) where ``rows`` is x flattened to [-1, K] only for the
        op and its output is reshaped back to x's leading dimensions + [N] to give y."""
        flat, users = made_by(rows, "Reshape"), consumers.get(node.output[0], [])
        if flat is None or ints(flat.input[1]) != [-1, k] or len(users) != 1 or node.output[0] in graph_outputs:
            return None
        unflat, x = users[0], flat.input[0]
        concat = made_by(unflat.input[1], "Concat") if unflat.op_type == "Reshape" else None
        if concat is None or len(concat.input) != 2:
            return None
        lead = made_by(concat.input[0], "Slice")
        shape = made_by(lead.input[0], "Shape") if lead is not None and len(lead.input) == 3 else None
        if (shape is None or shape.input[0] != x or ints(concat.input[1]) != [n]
                or [ints(lead.input[1]), ints(lead.input[2])] != [[0], [-1]]):
            return None
        return x, unflat.output[0], [flat, unflat, concat, lead, shape]

    fused, candidates = 0, []
    for node in nodes:
        w = inits[node.input[1]]
        found = activation(node)
        if found is None:
            continue
        rows, chain = found
        x, y = rows, node.output[0]  # the op takes the rows as they are, in any shape
        flat = unflattened(node, rows, int(w.dims[0]), int(w.dims[1]))
        if flat is not None:  # or x itself, writing y in x's shape: the Reshapes around it go
            x, y, around = flat
            around[1].output[0] = f"{node.output[0]}/unflattened"  # left without readers
            chain += around
        unsigned = node.op_type == OPS["uint8"]
        node.op_type = QUANT_OPS["uint8" if unsigned else "int8"]
        node.input[:] = [x, node.input[1], node.input[3], *node.input[5:6]]
        node.output[:] = [y]
        candidates += chain
        fused += 1
    drop_unused(graph, {n.output[0] for n in candidates})
    return fused


def import_domain(model: onnx.ModelProto) -> None:
    """Add the operators' domain (``DOMAIN``, version 1) to ``model``'s opset imports, once."""
    from onnx import helper

    if not any(o.domain == DOMAIN for o in model.opset_import):
        model.opset_import.append(helper.make_opsetid(DOMAIN, 1))


def has_subgraphs(graph) -> bool:
    """Whether a node of ``graph`` holds a subgraph (whose readers the fusions here do not track)."""
    return any(a.type in (a.GRAPH, a.GRAPHS) for n in graph.node for a in n.attribute)


class GraphIndex:
    """A graph's initializers, each value's producer and readers, and its outputs: what the
    fusions here look up to match op chains by value name."""

    def __init__(self, graph) -> None:
        self.inits = {i.name: i for i in graph.initializer}
        self.producer = {o: n for n in graph.node for o in n.output}
        self.consumers: dict[str, list] = {}
        for n in graph.node:
            for i in n.input:
                self.consumers.setdefault(i, []).append(n)
        self.outputs = {o.name for o in graph.output}

    def const(self, name: str):
        """The initializer ``name`` as a flat array, or None."""
        from onnx import numpy_helper

        t = self.inits.get(name)
        return None if t is None else numpy_helper.to_array(t).reshape(-1)

    def made_by(self, name: str, op_type: str):
        """The standard-domain ``op_type`` node that writes ``name``, or None."""
        n = self.producer.get(name)
        return n if n is not None and n.op_type == op_type and n.domain in ("", "ai.onnx") else None


def drop_unused(graph, removable: set[str]) -> None:
    """Remove the nodes (named by their first output) of ``removable`` whose outputs nothing
    reads any more, repeatedly, as removing one can free its inputs' producers."""
    outputs = {o.name for o in graph.output}
    while True:
        used = {i for n in graph.node for i in n.input} | outputs
        keep = [n for n in graph.node if n.output[0] not in removable or any(o in used for o in n.output)]
        if len(keep) == len(graph.node):
            return
        del graph.node[:]
        graph.node.extend(keep)


def relabelled_graph(path: Path) -> tuple[Path, int] | None:
    """The graph at ``path`` with its int8 MatMuls (``relabel``), int8 codec ELUs
    (``elu_quantize``) and, where the CPU has FMA, narrow float convs (``narrow_conv``) on the
    kernels, as a file in the project's cache, and how many nodes it moved; None when none
    qualifies. Made once per source file (keyed by its path, size and mtime, and whether the CPU
    has FMA) and written atomically. A session loads it by path: from bytes ORT
    keeps a second copy of the initializers (measured: +220 MB for mrt2_small's temporal graph)."""
    import hashlib
    import json

    from ..bench import machine
    from ..synthetic import cache_dir

    fma = "fma" in machine()["isa"]
    stat, source = path.stat(), str(path.resolve())
    key = hashlib.sha256(f"{source}|{stat.st_size}|{stat.st_mtime_ns}|{FORMAT}|{fma}".encode()).hexdigest()[:20]
    folder = cache_dir() / "graphs" / key
    target, record = folder / path.name, folder / "relabelled.json"
    try:
        count = int(json.loads(record.read_text())["count"])
        if count == 0 or target.exists():
            return (target, count) if count else None
    except (OSError, ValueError, KeyError, TypeError):
        pass  # not made yet, or damaged: make it
    import onnx

    from .elu_quantize import fuse_elu_quantize
    from .narrow_conv import move_narrow_convs

    model = onnx.load(str(path))
    count = relabel(model) + fuse_elu_quantize(model) + (move_narrow_convs(model) if fma else 0)
    folder.mkdir(parents=True, exist_ok=True)
    if count:
        with build.replacing(target) as tmp:
            tmp.write_bytes(model.SerializeToString())
    with build.replacing(record) as tmp:
        tmp.write_text(json.dumps({"source": source, "count": count}))
    _prune(folder.parent, source, folder)
    return (target, count) if count else None


def _prune(graphs: Path, source: str, keep: Path) -> None:
    """Remove the cached copies that no session can load any more: those of ``source`` made
    from an earlier version of it (or by an earlier relabel FORMAT), and those whose source file
    is gone. Each is some hundred MB; a process still running on one has it open already."""
    import json
    import shutil

    for folder in graphs.iterdir():
        if folder == keep or not folder.is_dir():
            continue
        try:
            made_from = json.loads((folder / "relabelled.json").read_text())["source"]
        except (OSError, ValueError, KeyError, TypeError):
            continue  # being written by another process, or not ours: leave it
        if made_from == source or not Path(made_from).exists():
            shutil.rmtree(folder, ignore_errors=True)
            log.info("dropped a stale relabelled graph of %s from the cache", made_from)


def library() -> Path | None:
    """The custom-op library to register, or None when it cannot be built here."""
    return build.library()


def kernel_name(lib: Path) -> str:
    """What the library's operators run on this CPU now, e.g. ``mrt-bridge/avx512-vnni``, as
    the library itself decides (its ``mrt_gemv_variant``, reading the same switch)."""
    import ctypes

    variant = ctypes.CDLL(str(lib)).mrt_gemv_variant
    variant.restype = ctypes.c_char_p
    return KERNEL_PREFIX + variant().decode()
