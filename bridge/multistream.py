"""Many independent streams stepped together: one ORT call per graph per frame for all of them.

The depthformer graphs take a batch of ``rows = streams x rows_per_stream``
(:mod:`bridge.io_names`); each stream owns ``R = 1 + num_cfgs`` consecutive
rows with their own temporal KV windows and step counter, and the depth graph
samples once per stream with that stream's guidance, temperature, top-k and
Gumbel noise. :class:`MultiStreamEngine` keeps the streams it steps packed in
the leading rows of preallocated state buffers, so a frame binds views of them
(no copies, no allocation of state)::

    rows [0, R)      stream a     (order = the order streams were stepped in)
    rows [R, 2R)     stream b
    ...              free rows up to max_streams x R

A stream that joins gets zeroed rows (step 0: an empty stream). A stream that
leaves, or is not stepped in a frame (paused), is *parked*: its rows are
copied out and the last stream's rows move into the hole; it comes back (at
the end) with exactly the state it left with. Other streams' state is only
moved, never changed, so their tokens do not depend on who else is in the
batch. Each stream draws its Gumbel noise from its own generator exactly as a
single-stream :class:`bridge.engine.Engine` with the same seed does, so stream
k of a batch makes the same tokens as an Engine run alone.

Audio: the codec decoder graph is per stream ([1, ...] with its own
convolution state), so every stream has its own codec state over one shared
ORT session.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import onnxruntime as ort

from . import CODEBOOK_SIZE, TOKENS_PER_FRAME
from . import io_names as io
from .conditioning import (
    DEFAULT_TEMPERATURE,
    DEFAULT_TOP_K,
    Conditioning,
    check_num_cfgs,
    guidance_from_vector,
    guidance_rows,
    validate_vector,
)
from .engine import DEFAULT_NUM_CFGS, OUTPUT_GAIN, Frame, tokens_to_codes
from .package import Package, load_package
from .runtime import _ORT_TO_NUMPY, StatefulSession, make_session, resolve_providers, resolve_threads, warn_int8_scheme


@dataclass
class StreamInput:
    """One stream's controls for one frame (what :meth:`bridge.engine.Engine.generate` takes)."""

    conditioning: np.ndarray | Conditioning
    temperature: float = DEFAULT_TEMPERATURE
    top_k: int = DEFAULT_TOP_K
    guidance: tuple[float, float, float] | None = None
    forced_tokens: np.ndarray | None = None
    prev_tokens: np.ndarray | None = None


class _Stream:
    """Per-stream state that is not in the batched buffers."""

    def __init__(self, sid: int, seed: int, codec: StatefulSession | None, rows: int) -> None:
        self.sid = sid
        self.seed = int(seed)
        self.rng = np.random.default_rng(self.seed)
        self.codec = codec
        self.frame_index = 0
        self.prev = np.zeros(TOKENS_PER_FRAME, np.int64)  # SOS = token 0
        self.parked: dict[str, np.ndarray] | None = None  # its rows while out of the batch
        self.rows = rows

    def zero_parked(self, specs: dict[str, tuple[tuple[int, ...], np.dtype]]) -> None:
        self.parked = {k: np.zeros((self.rows, *shape[1:]), dtype) for k, (shape, dtype) in specs.items()}


class RowState:
    """Streaming state of one graph for up to ``max_rows`` rows, bound as views of the leading rows.

    Like :class:`bridge.runtime.StatefulSession`, but the batch size can change
    from frame to frame: host buffers [max_rows, ...] (two sets that swap; one
    for states the graph updates in place) and OrtValues over their first
    ``rows`` rows. CPU only: on another device the state is fed from the host.
    """

    def __init__(self, session: ort.InferenceSession, max_rows: int) -> None:
        self.session = session
        self.specs: dict[str, tuple[tuple[int, ...], np.dtype]] = {}
        for inp in session.get_inputs():
            key = io.state_name(inp.name)
            if key is not None and inp.name.startswith(io.PAST):
                shape = tuple(max_rows if d == io.ROWS else int(d) for d in inp.shape)
                self.specs[key] = (shape, np.dtype(_ORT_TO_NUMPY[inp.type]))
        self.output_names = [o.name for o in session.get_outputs() if io.state_name(o.name) is None]
        meta = session.get_modelmeta().custom_metadata_map.get(io.INPLACE_STATE_KEY, "")
        self.inplace = {k for k in meta.split(",") if k in self.specs}
        self.past = {k: np.zeros(s, d) for k, (s, d) in self.specs.items()}
        self.present = {k: self.past[k] if k in self.inplace else np.zeros(s, d)
                        for k, (s, d) in self.specs.items()}
        self._binding = session.io_binding()

    def get(self, rows: slice) -> dict[str, np.ndarray]:
        return {k: v[rows].copy() for k, v in self.past.items()}

    def put(self, rows: slice, values: dict[str, np.ndarray]) -> None:
        for k, v in values.items():
            self.past[k][rows] = v

    def move(self, src: slice, dst: slice) -> None:
        for v in self.past.values():
            v[dst] = v[src]

    def run(self, inputs: dict[str, np.ndarray], rows: int) -> dict[str, np.ndarray]:
        b = self._binding
        b.clear_binding_inputs()
        b.clear_binding_outputs()
        for name, value in inputs.items():
            b.bind_cpu_input(name, value)
        for name in self.output_names:
            b.bind_output(name, "cpu")
        keep = []  # the OrtValues must outlive the run
        for key in self.specs:
            past = ort.OrtValue.ortvalue_from_numpy(self.past[key][:rows])
            present = past if key in self.inplace else ort.OrtValue.ortvalue_from_numpy(self.present[key][:rows])
            keep += (past, present)
            b.bind_ortvalue_input(io.past(key), past)
            b.bind_ortvalue_output(io.present(key), present)
        self.session.run_with_iobinding(b)
        self.past, self.present = self.present, self.past
        return dict(zip(self.output_names, (v.numpy() for v in b.get_outputs()[: len(self.output_names)])))


class MultiStreamEngine:
    """Up to ``max_streams`` independent streams; :meth:`generate` steps any subset in one batch.

    Not thread-safe: one thread owns the model step (:meth:`decode` of
    different streams may run elsewhere, one thread per stream at a time).
    """

    def __init__(
        self,
        package: str | Package,
        max_streams: int,
        provider: str = "cpu",
        *,
        threads: int | None = None,
        num_cfgs: int = DEFAULT_NUM_CFGS,
        decode_audio: bool = True,
        codec_threads: int | None = None,
    ) -> None:
        if int(max_streams) < 1:
            raise ValueError(f"max_streams must be at least 1, got {max_streams!r}")
        self.package = package if isinstance(package, Package) else load_package(package)
        self.providers = resolve_providers(provider)
        warn_int8_scheme(self.package, self.providers)
        self.max_streams = int(max_streams)
        self.num_cfgs = check_num_cfgs(num_cfgs)
        self.rows = 1 + self.num_cfgs  # rows per stream
        max_rows = self.max_streams * self.rows
        root = self.package

        def graph(name: str, n: int | None = threads) -> ort.InferenceSession:
            return make_session(root.graph_path(name), self.providers, n)

        self.encoder = graph(io.ENCODER)
        self.temporal = RowState(graph(io.TEMPORAL), max_rows)
        self.depth = graph(io.DEPTH)
        if any(io.state_name(i.name) for i in self.encoder.get_inputs() + self.depth.get_inputs()):
            raise RuntimeError("encoder/depth graphs with streaming state are not supported by the batched engine")
        self._codec = graph(io.CODEC_DECODER, codec_threads or threads) \
            if decode_audio and root.has_graph(io.CODEC_DECODER) else None
        self.threads = {"model": resolve_threads(threads), "codec": resolve_threads(codec_threads or threads)}
        # Per-frame inputs, allocated once at full size; a frame uses their leading rows.
        s = self.max_streams
        self._cond = np.empty((max_rows, 144), np.int64)
        self._prev = np.zeros((max_rows, TOKENS_PER_FRAME), np.int64)
        self._guidance = np.zeros((s, self.rows), np.float32)
        self._temperature = np.zeros(s, np.float32)
        self._top_k = np.zeros(s, np.int64)
        self._gumbel = np.zeros((s, TOKENS_PER_FRAME, CODEBOOK_SIZE), np.float32)
        self._forced = np.zeros((s, TOKENS_PER_FRAME), np.int64)
        self._mask = np.zeros((s, TOKENS_PER_FRAME), np.bool_)
        self._streams: dict[int, _Stream] = {}
        self._order: list[int] = []  # stream ids in row order (the batch)
        self._next_id = 0

    # ------------------------------------------------------------------ streams
    @property
    def provider(self) -> str:
        return self.encoder.get_providers()[0]

    @property
    def is_synthetic(self) -> bool:
        return self.package.synthetic

    @property
    def stream_ids(self) -> list[int]:
        return sorted(self._streams)

    def __len__(self) -> int:
        return len(self._streams)

    def open(self, seed: int = 0, sid: int | None = None) -> int:
        """A new stream (empty state, SOS input, its own generator); returns its id. Raises when full."""
        if len(self._streams) >= self.max_streams:
            raise RuntimeError(f"full: {len(self._streams)} of {self.max_streams} streams open")
        if sid is None:
            sid = self._next_id
        if sid in self._streams:
            raise ValueError(f"stream {sid} is already open")
        self._next_id = max(self._next_id, sid + 1)
        codec = StatefulSession(self._codec, io.CODEC_DECODER) if self._codec is not None else None
        stream = _Stream(sid, seed, codec, self.rows)
        stream.zero_parked(self.temporal.specs)
        self._streams[sid] = stream
        return sid

    def close(self, sid: int) -> None:
        """Remove a stream; the others keep their state (only moved)."""
        self._park(self._get(sid))
        del self._streams[sid]

    def reset(self, sid: int, seed: int | None = None) -> None:
        """Back to the start of one stream (empty state, silent codec), optionally reseeded."""
        stream = self._get(sid)
        self._park(stream)
        stream.zero_parked(self.temporal.specs)
        if seed is not None:
            stream.seed = int(seed)
            stream.rng = np.random.default_rng(stream.seed)
        stream.prev[:] = 0
        stream.frame_index = 0
        if stream.codec is not None:
            stream.codec.reset()

    def frame_index(self, sid: int) -> int:
        return self._get(sid).frame_index

    def _get(self, sid: int) -> _Stream:
        try:
            return self._streams[sid]
        except KeyError:
            raise KeyError(f"no open stream {sid}") from None

    def _rows(self, pos: int) -> slice:
        return slice(pos * self.rows, (pos + 1) * self.rows)

    def _park(self, stream: _Stream) -> None:
        """Take a stream's rows out of the batch (the last stream's rows fill the hole)."""
        if stream.parked is not None:
            return
        pos = self._order.index(stream.sid)
        stream.parked = self.temporal.get(self._rows(pos))
        last = len(self._order) - 1
        if pos != last:
            self.temporal.move(self._rows(last), self._rows(pos))
            self._order[pos] = self._order[last]
        self._order.pop()

    def _unpark(self, stream: _Stream) -> None:
        pos = len(self._order)
        self.temporal.put(self._rows(pos), stream.parked)
        stream.parked = None
        self._order.append(stream.sid)

    def _arrange(self, sids: list[int]) -> None:
        """Make the batch exactly ``sids`` (in any order): park the others, bring these in."""
        wanted = set(sids)
        for sid in [s for s in self._order if s not in wanted]:
            self._park(self._streams[sid])
        for sid in sids:
            if self._streams[sid].parked is not None:
                self._unpark(self._streams[sid])

    # ------------------------------------------------------------------ frames
    def generate(self, inputs: dict[int, StreamInput]) -> dict[int, Frame]:
        """The model step of one frame for every stream in ``inputs`` (others are parked, unchanged)."""
        checked = {sid: self._check(sid, inp) for sid, inp in inputs.items()}  # before any state changes
        self._arrange(list(inputs))
        n = len(self._order)
        if n == 0:
            return {}
        r = self.rows
        t0 = time.perf_counter()
        for k, sid in enumerate(self._order):
            stream, inp = self._streams[sid], inputs[sid]
            vec, scales = checked[sid]
            guidance_rows(vec, self.num_cfgs, self._cond[k * r:(k + 1) * r])
            if inp.prev_tokens is not None:
                stream.prev[:] = np.asarray(inp.prev_tokens, np.int64).reshape(TOKENS_PER_FRAME)
            self._prev[k * r:(k + 1) * r] = stream.prev
            self._guidance[k, 0] = 0.0
            self._guidance[k, 1:] = scales[: self.num_cfgs]
            self._temperature[k] = inp.temperature
            self._top_k[k] = inp.top_k
            if inp.forced_tokens is None:
                self._mask[k] = False
            else:
                self._forced[k] = np.asarray(inp.forced_tokens, np.int64).reshape(TOKENS_PER_FRAME)
                self._mask[k] = True
            # Drawn exactly as Engine.generate draws it, from this stream's own generator.
            self._gumbel[k] = stream.rng.gumbel(size=(1, TOKENS_PER_FRAME, CODEBOOK_SIZE)).astype(np.float32)[0]
        rows = n * r
        t1 = time.perf_counter()
        encoded = self.encoder.run([io.ENCODED], {io.CONDITIONING: self._cond[:rows]})[0]
        t2 = time.perf_counter()
        temporal_out = self.temporal.run({io.PREV_TOKENS: self._prev[:rows], io.ENCODED: encoded},
                                         rows)[io.TEMPORAL_OUT]
        t3 = time.perf_counter()
        tokens, logits = self.depth.run([io.TOKENS, io.LOGITS], {
            io.TEMPORAL_OUT: temporal_out,
            io.GUIDANCE: self._guidance[:n],
            io.TEMPERATURE: self._temperature[:n],
            io.TOP_K: self._top_k[:n],
            io.GUMBEL: self._gumbel[:n],
            io.FORCED_TOKENS: self._forced[:n],
            io.FORCE_MASK: self._mask[:n],
        })
        t4 = time.perf_counter()
        timings = {"inputs": (t1 - t0) * 1e3, "encoder": (t2 - t1) * 1e3, "temporal": (t3 - t2) * 1e3,
                   "depth": (t4 - t3) * 1e3, "streams": n}
        out: dict[int, Frame] = {}
        for k, sid in enumerate(self._order):
            stream = self._streams[sid]
            stream.prev[:] = tokens[k]
            out[sid] = Frame(index=stream.frame_index, tokens=tokens[k].copy(), codes=tokens_to_codes(tokens[k]),
                             audio=None, logits=logits[k], timings_ms=timings)
            stream.frame_index += 1
        return out

    def _check(self, sid: int, inp: StreamInput) -> tuple[np.ndarray, tuple[float, ...]]:
        """(conditioning vector, guidance scales) of one stream's input; raises on bad input."""
        self._get(sid)
        if isinstance(inp.conditioning, Conditioning):
            c = inp.conditioning
            vec, scales = c.to_vector(), inp.guidance or (c.cfg_style, c.cfg_notes, c.cfg_drums)
        else:
            vec = validate_vector(inp.conditioning)
            scales = inp.guidance or guidance_from_vector(vec)
        if not np.isfinite(inp.temperature) or inp.temperature < 0:
            raise ValueError(f"stream {sid}: temperature must be a finite value >= 0, got {inp.temperature!r}")
        if int(inp.top_k) < 1:
            raise ValueError(f"stream {sid}: top_k must be >= 1, got {inp.top_k!r}")
        return vec, scales

    def decode(self, sid: int, codes: np.ndarray) -> np.ndarray | None:
        """Codec-decode one frame of one stream to float32 [1920, 2] (None without a codec)."""
        codec = self._get(sid).codec
        if codec is None:
            return None
        raw = codec.run({io.CODES: np.asarray(codes, np.int64).reshape(1, TOKENS_PER_FRAME)})[io.AUDIO][0]
        return np.clip(raw * OUTPUT_GAIN, -1.0, 1.0).astype(np.float32, copy=False)

    def step(self, inputs: dict[int, StreamInput]) -> dict[int, Frame]:
        """:meth:`generate` then :meth:`decode` of every stream stepped."""
        frames = self.generate(inputs)
        for sid, frame in frames.items():
            frame.audio = self.decode(sid, frame.codes)
        return frames
