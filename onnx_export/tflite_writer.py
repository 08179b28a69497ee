"""Write small TFLite flatbuffers directly (no TensorFlow needed).

Used to build the synthetic MusicCoCa models and the converter's test
models. Only what those need: one subgraph, builtin ops, float/int tensors,
scalar and int-vector option fields.

    b = TfliteBuilder()
    x = b.input("x", [1, 4], np.float32)
    w = b.const("w", np.ones((3, 4), np.float32))
    y = b.op("FULLY_CONNECTED", [x, w, -1], [1, 3], np.float32,
             ("FullyConnectedOptions", {"FusedActivationFunction": 0}))
    data = b.finish(outputs=[y])
"""

from __future__ import annotations

from collections.abc import Sequence

import flatbuffers
import numpy as np

_NP_TO_TFLITE = {
    np.dtype(np.float32): 0, np.dtype(np.float16): 1, np.dtype(np.int32): 2,
    np.dtype(np.uint8): 3, np.dtype(np.int64): 4, np.dtype(np.bool_): 6, np.dtype(np.int8): 9,
}


class TfliteBuilder:
    """Accumulates tensors and ops; :meth:`finish` serialises the model."""

    def __init__(self) -> None:
        self._tensors: list[tuple[str, tuple[int, ...], np.dtype, np.ndarray | None]] = []
        self._ops: list[tuple[str, list[int], list[int], tuple[str, dict] | None]] = []
        self._inputs: list[int] = []

    def _tensor(self, name: str, shape: Sequence[int], dtype, data: np.ndarray | None) -> int:
        self._tensors.append((name, tuple(int(s) for s in shape), np.dtype(dtype), data))
        return len(self._tensors) - 1

    def input(self, name: str, shape: Sequence[int], dtype) -> int:
        idx = self._tensor(name, shape, dtype, None)
        self._inputs.append(idx)
        return idx

    def const(self, name: str, value: np.ndarray) -> int:
        value = np.ascontiguousarray(value)
        return self._tensor(name, value.shape, value.dtype, value)

    def op(self, name: str, inputs: Sequence[int], out_shape: Sequence[int], out_dtype,
           options: tuple[str, dict] | None = None, out_name: str | None = None) -> int:
        out = self._tensor(out_name or f"{name.lower()}_{len(self._ops)}", out_shape, out_dtype, None)
        self._ops.append((name, list(inputs), [out], options))
        return out

    def finish(self, outputs: Sequence[int]) -> bytes:
        import tflite

        b = flatbuffers.Builder(1 << 20)

        def int_vector(values: Sequence[int]) -> int:
            b.StartVector(4, len(values), 4)
            for v in reversed(values):
                b.PrependInt32(int(v))
            return b.EndVector()

        # buffers: 0 is the empty sentinel, then one per constant
        buffer_offsets = []
        tensor_buffer = []
        b.StartVector(1, 0, 1)
        empty = b.EndVector()
        tflite.BufferStart(b)
        tflite.BufferAddData(b, empty)
        buffer_offsets.append(tflite.BufferEnd(b))
        for _, _, _, data in self._tensors:
            if data is None:
                tensor_buffer.append(0)
                continue
            raw = np.frombuffer(data.tobytes(), np.uint8)
            b.StartVector(1, raw.size, 16)
            b.head -= raw.size
            b.Bytes[b.head: b.head + raw.size] = raw.tobytes()
            vec = b.EndVector(raw.size) if _end_vector_takes_len() else b.EndVector()
            tflite.BufferStart(b)
            tflite.BufferAddData(b, vec)
            buffer_offsets.append(tflite.BufferEnd(b))
            tensor_buffer.append(len(buffer_offsets) - 1)

        tensor_offsets = []
        for (name, shape, dtype, _), buf in zip(self._tensors, tensor_buffer):
            name_off = b.CreateString(name)
            shape_off = int_vector(shape)
            tflite.TensorStart(b)
            tflite.TensorAddShape(b, shape_off)
            tflite.TensorAddType(b, _NP_TO_TFLITE[dtype])
            tflite.TensorAddBuffer(b, buf)
            tflite.TensorAddName(b, name_off)
            tensor_offsets.append(tflite.TensorEnd(b))

        op_names = sorted({name for name, *_ in self._ops})
        code_index = {n: i for i, n in enumerate(op_names)}
        code_offsets = []
        for n in op_names:
            code = getattr(tflite.BuiltinOperator, n)
            tflite.OperatorCodeStart(b)
            tflite.OperatorCodeAddDeprecatedBuiltinCode(b, min(code, 127))
            tflite.OperatorCodeAddBuiltinCode(b, code)
            tflite.OperatorCodeAddVersion(b, 1)
            code_offsets.append(tflite.OperatorCodeEnd(b))

        op_offsets = []
        for name, ins, outs, options in self._ops:
            opt_off, opt_type = None, 0
            if options is not None:
                opt_name, fields = options
                vectors = {k: int_vector(v) for k, v in fields.items() if isinstance(v, (list, tuple))}
                getattr(tflite, f"{opt_name}Start")(b)
                for k, v in fields.items():
                    getattr(tflite, f"{opt_name}Add{k}")(b, vectors.get(k, v))
                opt_off = getattr(tflite, f"{opt_name}End")(b)
                opt_type = getattr(tflite.BuiltinOptions, opt_name)
            in_off, out_off = int_vector(ins), int_vector(outs)
            tflite.OperatorStart(b)
            tflite.OperatorAddOpcodeIndex(b, code_index[name])
            tflite.OperatorAddInputs(b, in_off)
            tflite.OperatorAddOutputs(b, out_off)
            if opt_off is not None:
                tflite.OperatorAddBuiltinOptionsType(b, opt_type)
                tflite.OperatorAddBuiltinOptions(b, opt_off)
            op_offsets.append(tflite.OperatorEnd(b))

        def offset_vector(offsets: list[int]) -> int:
            b.StartVector(4, len(offsets), 4)
            for o in reversed(offsets):
                b.PrependUOffsetTRelative(o)
            return b.EndVector()

        tensors_vec = offset_vector(tensor_offsets)
        ops_vec = offset_vector(op_offsets)
        ins_vec, outs_vec = int_vector(self._inputs), int_vector(list(outputs))
        sg_name = b.CreateString("main")
        tflite.SubGraphStart(b)
        tflite.SubGraphAddTensors(b, tensors_vec)
        tflite.SubGraphAddOperators(b, ops_vec)
        tflite.SubGraphAddInputs(b, ins_vec)
        tflite.SubGraphAddOutputs(b, outs_vec)
        tflite.SubGraphAddName(b, sg_name)
        sg = tflite.SubGraphEnd(b)

        subgraphs_vec = offset_vector([sg])
        codes_vec = offset_vector(code_offsets)
        buffers_vec = offset_vector(buffer_offsets)
        desc = b.CreateString("magenta-rt-bridge tflite_writer")
        tflite.ModelStart(b)
        tflite.ModelAddVersion(b, 3)
        tflite.ModelAddOperatorCodes(b, codes_vec)
        tflite.ModelAddSubgraphs(b, subgraphs_vec)
        tflite.ModelAddDescription(b, desc)
        tflite.ModelAddBuffers(b, buffers_vec)
        model = tflite.ModelEnd(b)
        b.Finish(model, file_identifier=b"TFL3")
        return bytes(b.Output())


def _end_vector_takes_len() -> bool:
    import inspect

    params = inspect.signature(flatbuffers.Builder.EndVector).parameters
    return "vectorNumElems" in params and params["vectorNumElems"].default is inspect._empty
