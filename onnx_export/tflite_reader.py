"""Read a TFLite flatbuffer into plain Python objects (first subgraph only).

Uses the ``tflite`` package (generated flatbuffer accessors, pure Python).
Operator options are returned as a dict of the option table's scalar and
vector fields, e.g. ``{"fused_activation_function": 0, "keep_num_dims": False}``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

# TFLite TensorType -> numpy dtype
TFLITE_DTYPES = {
    0: np.float32, 1: np.float16, 2: np.int32, 3: np.uint8, 4: np.int64,
    6: np.bool_, 7: np.int16, 9: np.int8, 10: np.float64,
}


@dataclass
class TfliteTensor:
    index: int
    name: str
    shape: tuple[int, ...]
    dtype: np.dtype
    data: np.ndarray | None  # constant value, already reshaped
    scale: np.ndarray | None = None
    zero_point: np.ndarray | None = None
    quantized_dimension: int = 0


@dataclass
class TfliteOp:
    name: str  # builtin operator name, e.g. "FULLY_CONNECTED"
    inputs: list[int]  # -1 = optional input omitted
    outputs: list[int]
    options: dict = field(default_factory=dict)


@dataclass
class TfliteGraph:
    tensors: list[TfliteTensor]
    ops: list[TfliteOp]
    inputs: list[int]
    outputs: list[int]


def _enum_names(enum_cls: type) -> dict[int, str]:
    return {v: k for k, v in vars(enum_cls).items() if not k.startswith("_") and isinstance(v, int)}


def _camel_to_snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def _read_options(op, tflite) -> dict:
    type_id = op.BuiltinOptionsType()
    if type_id == 0:
        return {}
    type_name = _enum_names(tflite.BuiltinOptions)[type_id]
    cls = getattr(tflite, type_name)
    table = op.BuiltinOptions()
    opts = cls()
    opts.Init(table.Bytes, table.Pos)
    out = {}
    for attr in dir(cls):
        if attr.startswith(("_", "GetRootAs")) or attr in ("Init",):
            continue
        if attr.endswith(("AsNumpy", "Length", "IsNone")) or "BufferHasIdentifier" in attr:
            continue
        getter = getattr(opts, attr)
        if hasattr(opts, attr + "AsNumpy"):
            arr = getattr(opts, attr + "AsNumpy")()
            out[_camel_to_snake(attr)] = [] if isinstance(arr, int) else arr.tolist()
        else:
            try:
                out[_camel_to_snake(attr)] = getter()
            except TypeError:
                continue
    return out


def read_tflite(path: Path | bytes) -> TfliteGraph:
    """Parse a ``.tflite`` file (path or bytes) into a :class:`TfliteGraph`."""
    import tflite

    buf = Path(path).read_bytes() if isinstance(path, (str, Path)) else bytes(path)
    model = tflite.Model.GetRootAsModel(buf, 0)
    if model.SubgraphsLength() != 1:
        raise ValueError(f"expected one subgraph, found {model.SubgraphsLength()} (control flow "
                         "is not supported by this converter)")
    op_names = _enum_names(tflite.BuiltinOperator)
    codes = []
    for i in range(model.OperatorCodesLength()):
        oc = model.OperatorCodes(i)
        code = max(oc.BuiltinCode(), oc.DeprecatedBuiltinCode())
        codes.append(op_names.get(code, f"CUSTOM:{oc.CustomCode()}" if code == 32 else str(code)))
    sg = model.Subgraphs(0)
    tensors = []
    for i in range(sg.TensorsLength()):
        t = sg.Tensors(i)
        shape = t.ShapeAsNumpy()
        shape = () if isinstance(shape, int) else tuple(int(s) for s in shape)
        if t.Type() not in TFLITE_DTYPES:
            raise ValueError(f"tensor {t.Name().decode()}: unsupported TFLite type {t.Type()}")
        dtype = np.dtype(TFLITE_DTYPES[t.Type()])
        data = None
        b = model.Buffers(t.Buffer())
        if b is not None and b.DataLength() > 0:
            data = np.frombuffer(b.DataAsNumpy().tobytes(), dtype=dtype).reshape(shape)
        elif b is not None and b.Offset() > 1:
            raw = buf[b.Offset(): b.Offset() + b.Size()]
            data = np.frombuffer(raw, dtype=dtype).reshape(shape)
        tensor = TfliteTensor(i, t.Name().decode(), shape, dtype, data)
        q = t.Quantization()
        if q is not None and q.ScaleLength() > 0:
            tensor.scale = q.ScaleAsNumpy().astype(np.float32)
            tensor.zero_point = q.ZeroPointAsNumpy().astype(np.int64)
            tensor.quantized_dimension = q.QuantizedDimension()
        tensors.append(tensor)
    ops = []
    for i in range(sg.OperatorsLength()):
        op = sg.Operators(i)
        ins = op.InputsAsNumpy()
        outs = op.OutputsAsNumpy()
        ops.append(TfliteOp(
            codes[op.OpcodeIndex()],
            [] if isinstance(ins, int) else [int(x) for x in ins],
            [] if isinstance(outs, int) else [int(x) for x in outs],
            _read_options(op, tflite),
        ))
    return TfliteGraph(tensors, ops, [int(x) for x in sg.InputsAsNumpy()],
                       [int(x) for x in sg.OutputsAsNumpy()])
