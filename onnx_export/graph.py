"""A small ONNX graph builder: named values, deduplicated constants, one op per call.

Each ``op`` call returns the name of its (first) output, so model code reads
as a chain of expressions. Initializers are named after their checkpoint key
so a graph can be traced back to the weights it came from.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from bridge import io_names

OPSET = 17
IR_VERSION = 9  # ORT >= 1.16 reads it; newer onnx writes a newer default
# build() runs onnx.checker (it serializes the whole model: ~0.3 s per 100 MB) only up to this
# weight size: the codec graphs (<= 200 MB) are checked, the full-size temporal stacks are not.
CHECK_MAX_BYTES = 256 << 20

_NP_TO_ONNX = {
    np.dtype(np.float32): TensorProto.FLOAT,
    np.dtype(np.float16): TensorProto.FLOAT16,
    np.dtype(np.int64): TensorProto.INT64,
    np.dtype(np.int32): TensorProto.INT32,
    np.dtype(np.bool_): TensorProto.BOOL,
    np.dtype(np.int8): TensorProto.INT8,
    np.dtype(np.uint8): TensorProto.UINT8,
}


def onnx_dtype(dtype: np.dtype | type) -> int:
    return _NP_TO_ONNX[np.dtype(dtype)]


def _register_ort_onnx_domain_ops() -> None:
    """Teach onnx.checker the ONNX Runtime operators that live in the default domain.

    ORT registers ``SimplifiedLayerNormalization`` (fused RMSNorm) under the ONNX
    domain; the checker knows only standard ops there. (``com.microsoft`` ops are in a
    custom domain, which the checker does not inspect.)
    """
    from onnx.defs import OpSchema, has, register_schema

    if has("SimplifiedLayerNormalization"):
        return
    schema = OpSchema(
        "SimplifiedLayerNormalization", "", 1,
        doc="x / sqrt(mean(x^2, axis) + epsilon) * scale (ONNX Runtime contrib op)",
        inputs=[OpSchema.FormalParameter("X", "T"), OpSchema.FormalParameter("scale", "T")],
        outputs=[OpSchema.FormalParameter("Y", "T")],
        type_constraints=[("T", ["tensor(float)", "tensor(float16)"], "float tensors")],
        attributes=[OpSchema.Attribute("axis", OpSchema.AttrType.INT, "normalized axis"),
                    OpSchema.Attribute("epsilon", OpSchema.AttrType.FLOAT, "added to the mean square")],
    )
    register_schema(schema)


_register_ort_onnx_domain_ops()


class GraphBuilder:
    """Accumulates nodes, inputs, outputs and initializers of one ONNX graph."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.nodes: list[onnx.NodeProto] = []
        self.inputs: list[onnx.ValueInfoProto] = []
        self.outputs: list[onnx.ValueInfoProto] = []
        self.initializers: dict[str, onnx.TensorProto] = {}
        self._const_cache: dict[tuple, str] = {}
        self._counter = 0
        self._states: dict[str, tuple[type, list[int]]] = {}
        self._scopes: list[str] = []

    # -- naming -------------------------------------------------------------
    def fresh(self, hint: str) -> str:
        self._counter += 1
        return f"{hint}_{self._counter}"

    @contextlib.contextmanager
    def scope(self, name: str) -> Iterator[None]:
        """Name the nodes made inside ``with g.scope("block3"):`` ``block3/<op>_<n>`` (nested scopes
        join with ``/``), so an ORT profile or Netron view maps back to the model's layers.
        Only node names change; value and initializer names stay as they are."""
        self._scopes.append(name)
        try:
            yield
        finally:
            self._scopes.pop()

    def _node_name(self, op_type: str, first_output: str) -> str:
        if not self._scopes:
            return f"n_{first_output}"
        hint = op_type.lower() + "_"
        tail = first_output[len(hint):] if first_output.startswith(hint) else first_output
        return "/".join(self._scopes) + f"/{op_type}_{tail}"

    # -- graph I/O ----------------------------------------------------------
    def input(self, name: str, dtype: type, shape: Sequence[int | str]) -> str:
        self.inputs.append(helper.make_tensor_value_info(name, onnx_dtype(dtype), list(shape)))
        return name

    def output(self, value: str, name: str, dtype: type, shape: Sequence[int | str]) -> str:
        if value != name:
            self.op("Identity", [value], name=name)
        self.outputs.append(helper.make_tensor_value_info(name, onnx_dtype(dtype), list(shape)))
        return name

    # -- streaming state ----------------------------------------------------
    def state(self, name: str, dtype: type, shape: Sequence[int]) -> str:
        """Declare streaming state ``name``; returns its ``past.<name>`` input."""
        if name in self._states:
            raise ValueError(f"duplicate state name {name!r}")
        self._states[name] = (dtype, list(shape))
        return self.input(io_names.past(name), dtype, shape)

    def set_present(self, name: str, value: str) -> None:
        """Emit ``value`` as ``present.<name>`` (same dtype and shape as the past input)."""
        dtype, shape = self._states[name]
        self.output(value, io_names.present(name), dtype, shape)

    # -- constants and weights ----------------------------------------------
    def weight(self, name: str, array: np.ndarray) -> str:
        """Add an initializer under ``name`` (a checkpoint key, or derived from one)."""
        if name in self.initializers:
            return name
        self.initializers[name] = numpy_helper.from_array(np.ascontiguousarray(array), name)
        return name

    def const(self, value, dtype: type = np.float32) -> str:
        arr = np.asarray(value, dtype=dtype)
        key = (arr.dtype.str, arr.shape, arr.tobytes())
        if key not in self._const_cache:
            name = self.fresh("const")
            self.initializers[name] = numpy_helper.from_array(arr, name)
            self._const_cache[key] = name
        return self._const_cache[key]

    def ints(self, values: Sequence[int]) -> str:
        return self.const(list(values), np.int64)

    # -- ops ----------------------------------------------------------------
    def op(self, op_type: str, inputs: Sequence[str], *, name: str | None = None,
           outputs: int = 1, domain: str = "", **attrs) -> str:
        out = [name or self.fresh(op_type.lower())]
        out += [self.fresh(op_type.lower()) for _ in range(outputs - 1)]
        self.nodes.append(
            helper.make_node(op_type, list(inputs), out, name=self._node_name(op_type, out[0]),
                             domain=domain or None, **attrs)
        )
        return out[0] if outputs == 1 else out  # type: ignore[return-value]

    def multi(self, op_type: str, inputs: Sequence[str], outputs: int, **attrs) -> list[str]:
        names = [self.fresh(op_type.lower()) for _ in range(outputs)]
        self.nodes.append(helper.make_node(op_type, list(inputs), names,
                                           name=self._node_name(op_type, names[0]), **attrs))
        return names

    def matmul(self, x: str, w: str) -> str:
        return self.op("MatMul", [x, w])

    def add(self, a: str, b: str) -> str:
        return self.op("Add", [a, b])

    def mul(self, a: str, b: str) -> str:
        return self.op("Mul", [a, b])

    def reshape(self, x: str, shape: Sequence[int]) -> str:
        return self.op("Reshape", [x, self.ints(shape)])

    def concat(self, xs: Sequence[str], axis: int) -> str:
        return self.op("Concat", list(xs), axis=axis)

    def slice(self, x: str, starts: Sequence[int], ends: Sequence[int], axes: Sequence[int]) -> str:
        return self.op("Slice", [x, self.ints(starts), self.ints(ends), self.ints(axes)])

    def build(self, doc: str = "", metadata: dict[str, str] | None = None) -> onnx.ModelProto:
        """The finished model; checked by ``onnx.checker`` unless its weights exceed ``CHECK_MAX_BYTES``.

        ``metadata`` becomes the model's ``metadata_props`` (read by the runtime).
        """
        initializers = list(self.initializers.values())
        graph = helper.make_graph(self.nodes, self.name, self.inputs, self.outputs, initializers)
        model = helper.make_model(
            graph,
            opset_imports=[helper.make_opsetid("", OPSET), helper.make_opsetid("com.microsoft", 1)],
            producer_name="magenta-rt-bridge",
            doc_string=doc,
        )
        model.ir_version = IR_VERSION
        for key, value in (metadata or {}).items():
            model.metadata_props.add(key=key, value=value)
        if sum(len(t.raw_data) for t in initializers) <= CHECK_MAX_BYTES:
            onnx.checker.check_model(model)
        return model
