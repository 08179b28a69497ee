"""ONNX Runtime sessions that carry their streaming state between calls."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import onnxruntime as ort

from . import io_names

log = logging.getLogger(__name__)

_ORT_TO_NUMPY = {
    "tensor(float)": np.float32,
    "tensor(float16)": np.float16,
    "tensor(double)": np.float64,
    "tensor(int64)": np.int64,
    "tensor(int32)": np.int32,
    "tensor(bool)": np.bool_,
}


def available_providers() -> list[str]:
    return ort.get_available_providers()


def resolve_providers(provider: str = "auto") -> list[str]:
    """Map ``auto|cpu|cuda`` to an ORT provider list; CUDA when present for auto."""
    have = available_providers()
    if provider == "cpu":
        return ["CPUExecutionProvider"]
    if provider == "cuda":
        if "CUDAExecutionProvider" not in have:
            raise RuntimeError(
                "CUDA execution provider not available in this onnxruntime build "
                f"(have: {', '.join(have)}); install 'magenta-rt-bridge[gpu]' on a CUDA machine "
                "or use --provider cpu"
            )
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    if provider == "auto":
        if "CUDAExecutionProvider" in have:
            return ["CUDAExecutionProvider", "CPUExecutionProvider"]
        return ["CPUExecutionProvider"]
    raise ValueError(f"unknown provider {provider!r}: expected auto, cpu or cuda")


def session_options(threads: int | None = None) -> ort.SessionOptions:
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # One frame is a short chain of small ops: spinning threads cost more than
    # they give, and the daemon's other threads need the cores.
    n = threads or int(os.environ.get("MRT_THREADS", "0")) or min(os.cpu_count() or 1, 4)
    opts.intra_op_num_threads = n
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    # Spinning worker threads steal the cores the audio and control threads need
    # (measured: tiny depth graph 14 ms with spinning vs 2.4 ms without, 2 threads, loaded box).
    if os.environ.get("MRT_ORT_SPIN", "0") != "1":
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    opts.log_severity_level = 3
    return opts


def make_session(path: Path, providers: list[str], threads: int | None = None) -> ort.InferenceSession:
    try:
        return ort.InferenceSession(str(path), sess_options=session_options(threads), providers=providers)
    except Exception as exc:  # ORT raises several private exception types
        raise RuntimeError(f"cannot load ONNX graph {path}: {exc}") from exc


class StatefulSession:
    """An ORT session whose ``past.*`` inputs are fed from its last ``present.*`` outputs."""

    def __init__(self, session: ort.InferenceSession, name: str = "") -> None:
        self.session = session
        self.name = name or "graph"
        self._state_specs: dict[str, tuple[tuple[int, ...], np.dtype]] = {}
        self.input_names: list[str] = []
        for inp in session.get_inputs():
            key = io_names.state_name(inp.name)
            if key is not None and inp.name.startswith(io_names.PAST):
                shape = tuple(int(d) for d in inp.shape)
                self._state_specs[key] = (shape, np.dtype(_ORT_TO_NUMPY[inp.type]))
            else:
                self.input_names.append(inp.name)
        outs = {o.name for o in session.get_outputs()}
        missing = [k for k in self._state_specs if io_names.present(k) not in outs]
        if missing:
            raise RuntimeError(f"graph {self.name}: state without present.* output: {missing}")
        self.output_names = [o.name for o in session.get_outputs()]
        self.state: dict[str, np.ndarray] = {}
        self.reset()

    @property
    def state_names(self) -> list[str]:
        return list(self._state_specs)

    def reset(self) -> None:
        self.state = {k: np.zeros(s, d) for k, (s, d) in self._state_specs.items()}

    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        feed = dict(inputs)
        for k, v in self.state.items():
            feed[io_names.past(k)] = v
        values = self.session.run(self.output_names, feed)
        out = dict(zip(self.output_names, values))
        for k in self.state:
            self.state[k] = out.pop(io_names.present(k))
        return out
