"""ONNX Runtime sessions that carry their streaming state between calls."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import NamedTuple

import numpy as np
import onnxruntime as ort

from . import io_names
from .package import Package

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


def warn_int8_scheme(package: Package, providers: list[str]) -> str | None:
    """Log and return one line when ``package``'s int8 scheme does not compute exactly on this
    CPU (``onnx_export.precision.int8_scheme_warning``); None otherwise or off the CPU."""
    if providers[0] != "CPUExecutionProvider":
        return None
    from onnx_export.precision import int8_scheme_warning

    from .bench import machine

    if native_int8_kernel(providers):  # exact whatever the scheme's weight type
        return None
    message = int8_scheme_warning(package.int8_scheme, machine()["isa"])
    if message:
        log.warning("%s: %s", package.root, message)
    return message


def native_int8_kernel(providers: list[str]) -> str | None:
    """Where the rows schemes' int8 MatMuls run on mrt-bridge's own kernel
    (``bridge.kernels.rows_matmul``): its name, else None (ORT's kernels)."""
    if providers[0] != "CPUExecutionProvider":
        return None
    from .bench import machine
    from .kernels import rows_matmul

    if not rows_matmul.usable(machine()["isa"]) or (lib := rows_matmul.library()) is None:
        return None
    return rows_matmul.kernel_name(lib)


def int8_matmul_kernel(package: Package, providers: list[str]) -> str | None:
    """What runs ``package``'s int8 MatMuls here: the native kernel's name, ``onnxruntime``, or
    None for a package without int8 MatMuls."""
    from onnx_export.precision import ROWS_SCHEMES

    scheme = package.int8_scheme
    if scheme is None:
        return None
    native = native_int8_kernel(providers) if scheme in ROWS_SCHEMES else None
    return native or "onnxruntime"


MAX_THREADS = 4  # more intra-op threads than this slow a frame's small ops down


def resolve_threads(threads: int | None = None) -> int:
    """Intra-op threads of a session: ``threads``, else ``$MRT_THREADS``, else min(cores, 4)."""
    return threads or int(os.environ.get("MRT_THREADS", "0")) or min(os.cpu_count() or 1, MAX_THREADS)


class FrameThreads(NamedTuple):
    """Intra-op threads of a frame engine's sessions (see :func:`frame_threads`)."""

    model: int  # encoder, temporal step, and the depth decoder while the codec decodes beside it
    codec: int  # the overlapped codec decoder
    depth_wide: int  # the depth decoder when no decode is in flight, spinning; 0: no such session


def frame_threads(threads: int | None = None, codec_threads: int | None = None) -> FrameThreads:
    """Threads of a frame engine whose codec decodes beside the model step (bridge.pipeline).

    The model gets ``threads`` / ``$MRT_THREADS``, else min(cores - 1, 4); the codec
    ``codec_threads``, else the cores the model leaves, at least 1. The codec keeps a core of its
    own: mrt2_small int8 with 3 guidance rows on 2 cores, 1 + 1 threads measured p50 / p95 / p99
    32.4 / 34.0-35.5 / 36.7-48 ms, 2 + 1 threads (waking a parked second thread for each
    parallel op) 31.8-32.8 / 38.2-40.2 / 40.5-44.7.

    The temporal step outlasts the codec decode it overlaps (19 vs 15 ms there), so the depth
    decoder that follows can have the codec's threads too: ``depth_wide`` = model + codec threads
    (at most the cores, at most 4), spinning while it runs and parked when it returns. Measured
    there: depth 12.3 -> 9.3-10.0 ms, frame p50 / p99 29.3-31.2 / 30.7-34.3 ms. On 2 threads
    without spinning it gained nothing (12.7 ms), and beside a decode still running it loses
    (a codec slowed to 30 ms: p50 36.7 vs 33.3 on one thread), hence the choice per frame.
    """
    cores = os.cpu_count() or 1
    model = threads or int(os.environ.get("MRT_THREADS", "0")) or max(1, min(cores - 1, MAX_THREADS))
    codec = codec_threads or max(1, cores - model)
    wide = min(model + codec, cores, MAX_THREADS)
    return FrameThreads(model, codec, wide if wide > model else 0)


def session_options(threads: int | None = None, spin: bool = False) -> ort.SessionOptions:
    """Sequential CPU session options. ``spin``: worker threads spin between the ops of a run
    (no wake-up per parallel op) and park as soon as it returns, for a session that has the
    cores to itself while it runs."""
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.intra_op_num_threads = resolve_threads(threads)
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    if spin:
        opts.add_session_config_entry("session.force_spinning_stop", "1")
    elif os.environ.get("MRT_ORT_SPIN", "0") != "1":
        # Workers spinning between runs steal the cores the codec, audio and control threads
        # need (measured: tiny depth graph 14 ms with spinning vs 2.4 ms without, 2 threads,
        # loaded box).
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    opts.log_severity_level = 3
    return opts


def make_session(path: Path, providers: list[str], threads: int | None = None,
                 spin: bool = False) -> ort.InferenceSession:
    """An ORT session for the graph at ``path``; its rows-scheme int8 MatMuls, int8 codec
    ELUs and narrow float convs on the native kernels where ``native_int8_kernel`` says so
    (from a relabelled copy of the graph), else, or if that copy cannot be made or loaded
    (logged), on ORT's kernels."""
    if kernel := native_int8_kernel(providers):
        from .kernels import rows_matmul

        relabelled = None
        try:
            relabelled = rows_matmul.relabelled_graph(Path(path))
            if relabelled is not None:
                source, count = relabelled
                opts = session_options(threads, spin)
                opts.register_custom_ops_library(str(rows_matmul.library()))
                session = ort.InferenceSession(str(source), sess_options=opts, providers=providers)
                log.info("%s: %d operators on the %s kernels", source.name, count, kernel)
                return session
        except Exception as exc:  # ORT raises several private exception types
            if relabelled is not None:  # made again on the next start, in case it was damaged
                relabelled[0].unlink(missing_ok=True)
            log.warning("%s: the %s kernel is not used (%s); ONNX Runtime's kernels run it",
                        Path(path).name, kernel, str(exc).strip().splitlines()[-1])
    try:
        return ort.InferenceSession(str(path), sess_options=session_options(threads, spin), providers=providers)
    except Exception as exc:  # ORT raises several private exception types
        raise RuntimeError(f"cannot load ONNX graph {path}: {exc}") from exc


class StatefulSession:
    """An ORT session whose ``past.*`` inputs are fed from its last ``present.*`` outputs.

    State lives in two sets of preallocated ORT buffers bound with I/O binding
    (on the GPU when the session runs on CUDA): each call reads one set and
    writes the other, then they swap; states the graph declares in place
    (``io_names.INPLACE_STATE_KEY``) use one buffer for both. No state crosses
    to the host inside a frame, and nothing is allocated for it per call.
    """

    def __init__(self, session: ort.InferenceSession, name: str = "", rows: int = 1) -> None:
        """``rows`` sizes the batch dimension (``io_names.ROWS``) of every state tensor."""
        self.session = session
        self.name = name or "graph"
        self.rows = int(rows)
        self.device = "cuda" if session.get_providers()[0] == "CUDAExecutionProvider" else "cpu"
        self._state_specs: dict[str, tuple[tuple[int, ...], np.dtype]] = {}
        self.input_names: list[str] = []
        for inp in session.get_inputs():
            key = io_names.state_name(inp.name)
            if key is not None and inp.name.startswith(io_names.PAST):
                shape = tuple(self.rows if d == io_names.ROWS else int(d) for d in inp.shape)
                self._state_specs[key] = (shape, np.dtype(_ORT_TO_NUMPY[inp.type]))
            else:
                self.input_names.append(inp.name)
        outs = {o.name for o in session.get_outputs()}
        missing = [k for k in self._state_specs if io_names.present(k) not in outs]
        if missing:
            raise RuntimeError(f"graph {self.name}: state without present.* output: {missing}")
        self.output_names = [o.name for o in session.get_outputs() if io_names.state_name(o.name) is None]
        meta = session.get_modelmeta().custom_metadata_map.get(io_names.INPLACE_STATE_KEY, "")
        self._inplace = {k for k in meta.split(",") if k in self._state_specs}
        self._binding = session.io_binding()
        self._past: dict[str, ort.OrtValue] = {}
        self._present: dict[str, ort.OrtValue] = {}
        self.reset()

    @property
    def state(self) -> dict[str, np.ndarray]:
        """A host copy of the current state (for inspection and tests)."""
        return {k: v.numpy().copy() for k, v in self._past.items()}

    def reset(self) -> None:
        def zeros(shape, dtype):
            return ort.OrtValue.ortvalue_from_numpy(np.zeros(shape, dtype), self.device, 0)

        self._past = {k: zeros(s, d) for k, (s, d) in self._state_specs.items()}
        # Ring states are updated in place: one buffer is both their past.* and present.*.
        self._present = {k: self._past[k] if k in self._inplace else zeros(s, d)
                         for k, (s, d) in self._state_specs.items()}

    def snapshot(self) -> dict[str, np.ndarray]:
        """A host copy of the state, for :meth:`restore`."""
        return self.state

    def restore(self, snapshot: dict[str, np.ndarray]) -> None:
        """Put a :meth:`snapshot` back into the preallocated buffers (no reallocation)."""
        for key, value in snapshot.items():
            self._past[key].update_inplace(value)

    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        b = self._binding
        b.clear_binding_inputs()
        b.clear_binding_outputs()
        for name, value in inputs.items():
            b.bind_cpu_input(name, value)
        for name in self.output_names:  # first: get_outputs() follows binding order
            b.bind_output(name, "cpu")
        for key in self._state_specs:
            b.bind_ortvalue_input(io_names.past(key), self._past[key])
            b.bind_ortvalue_output(io_names.present(key), self._present[key])
        self.session.run_with_iobinding(b)
        self._past, self._present = self._present, self._past
        return dict(zip(self.output_names, (v.numpy() for v in b.get_outputs()[: len(self.output_names)])))
