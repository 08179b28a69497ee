"""`mrt-bridge serve` with a v1 package: the daemon's frame loop fed by 2 s chunks made ahead.

The daemon (bridge/daemon/app.py) is unchanged: its frame loop asks for one 40 ms frame at a
time and pushes audio into the ring. :class:`V1StreamEngine` answers those calls from chunks
that a worker thread generates ahead of playback (one chunk beyond the one playing), each with
the control settings current when it starts, so a change is heard within 2-4 s (v1's chunk
granularity; upstream's apps behave the same).

Control set on v1: style (prompts through the package's style model, ``/style/tokens``: the
first 6 of the 12 MusicCoCa codes), ``/guidance/style`` (v1's guidance weight), temperature,
top-k, seed/reset, and the output controls. Notes and drums have no meaning for v1: they are
refused with one line (OSC error reply / one MIDI log line), never applied.
"""

from __future__ import annotations

import logging
import queue
import threading
import time

import numpy as np

from bridge import conditioning as cond
from bridge.control.state import ControlState
from bridge.engine import Frame
from bridge.stop_flag import StopFlag
from onnx_export.v1 import config as v1

from .engine import V1Engine

log = logging.getLogger(__name__)

NOT_ON_V1 = "Magenta RT v1 has no {what} (it takes style, /guidance/style, temperature and top-k); refused"
WAIT_POLL_S = 0.05


class V1ControlState(ControlState):
    """The daemon's control state for a v1 package: notes and drums refused once :meth:`lock` ran.

    (Presets apply their defaults before ``lock``, so a preset's note settings do not fail.)
    """

    _v1_locked = False

    def lock(self) -> None:
        self._v1_locked = True

    def _refuse(self, what: str) -> None:
        if self._v1_locked:
            raise ValueError(NOT_ON_V1.format(what=what))

    def note_on(self, pitch: int, velocity: int = 100, channel: int | None = None) -> None:
        self._refuse("note conditioning")
        super().note_on(pitch, velocity, channel)

    def note_off(self, pitch: int, channel: int | None = None) -> None:
        self._refuse("note conditioning")
        super().note_off(pitch, channel)

    def set_notes(self, states: object) -> None:
        self._refuse("note conditioning")
        super().set_notes(states)

    def set_unmask_width(self, width: int | None) -> None:
        self._refuse("note conditioning")
        super().set_unmask_width(width)

    def set_onset_mode(self, on: bool) -> None:
        self._refuse("note conditioning")
        super().set_onset_mode(on)

    def set_drums(self, value: int) -> None:
        self._refuse("drum conditioning")
        super().set_drums(value)

    def drum_on(self, pitch: int, velocity: int = 100) -> None:
        self._refuse("drum conditioning")
        super().drum_on(pitch, velocity)

    def drum_off(self, pitch: int) -> None:
        self._refuse("drum conditioning")
        super().drum_off(pitch)

    def drum_hit(self) -> None:
        self._refuse("drum conditioning")
        super().drum_hit()

    def set_drumless(self, drumless: bool) -> None:
        self._refuse("drum conditioning")
        super().set_drumless(drumless)

    def set_guidance(self, which: str, scale: float) -> None:
        if which != "style":
            self._refuse(f"{which} guidance")
        super().set_guidance(which, scale)


def style_from_conditioning(vec: np.ndarray) -> np.ndarray | None:
    """The style codes of a conditioning vector, or None when they are masked (no style: MASK tokens)."""
    style = np.asarray(vec[cond.STYLE_SLICE], np.int64)[: v1.STYLE_LEVELS]
    return None if (style < 0).any() else style


class V1StreamEngine:
    """A :class:`V1Engine` behind the frame engine interface the daemon's frame loop uses.

    ``generate`` hands out the next frame of the chunk playing (and records the latest
    settings); ``decode`` returns that frame's audio (decoded with its chunk). A worker thread
    keeps ``ahead`` chunks ready.
    """

    rows = 2  # guidance rows of a chunk (1 when the guidance weight is 0)
    num_cfgs = 1

    def __init__(self, engine: V1Engine, seed: int = 0, ahead: int = 1) -> None:
        self.engine = engine
        self.package = engine.package
        self.providers = engine.providers
        self.provider = engine.provider
        self.codec = engine.codec
        self.seed = int(seed)
        self._ahead = max(1, int(ahead))
        self._lock = threading.Lock()  # settings, generation counter
        self._model_lock = threading.Lock()  # V1Engine: one chunk at a time, reset in between
        self._settings = (None, v1.DEFAULT_GUIDANCE_WEIGHT, v1.DEFAULT_TEMPERATURE, v1.DEFAULT_TOPK)
        self._generation = 0
        self._chunks: queue.Queue = queue.Queue()
        self._frames: list[tuple[np.ndarray, np.ndarray | None]] = []
        self._audio: np.ndarray | None = None
        self._index = 0
        self.chunk_times_ms: list[float] = []
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._worker: threading.Thread | None = None
        self.failed: str | None = None

    @property
    def is_synthetic(self) -> bool:
        return self.engine.is_synthetic

    # -- the worker ---------------------------------------------------------------
    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                if self._chunks.qsize() >= self._ahead:
                    self._wake.wait(WAIT_POLL_S)
                    self._wake.clear()
                    continue
                with self._lock:
                    generation, settings, seed = self._generation, self._settings, self.seed
                style, guidance, temperature, top_k = settings
                t0 = time.perf_counter()
                with self._model_lock:
                    chunk = self.engine.generate_chunk(style, seed=seed, guidance_weight=guidance,
                                                       temperature=temperature, topk=top_k)
                ms = (time.perf_counter() - t0) * 1e3
                self.chunk_times_ms.append(ms)
                if ms > v1.CHUNK_SECONDS * 1000:
                    log.warning("v1 chunk took %.0f ms for 2000 ms of audio: playback will stall", ms)
                with self._lock:
                    if generation == self._generation:
                        self._chunks.put(chunk)
        except Exception as exc:  # surfaced to the frame loop by the next generate()
            log.exception("v1 chunk worker failed")
            self.failed = f"v1 chunk generation failed: {exc}"

    def _start(self) -> None:
        if self._worker is None:
            self._worker = threading.Thread(target=self._run, name="v1-chunks", daemon=True)
            self._worker.start()

    def close(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._worker is not None:
            self._worker.join(10.0)

    # -- the frame engine interface ---------------------------------------------------
    def generate(self, conditioning: np.ndarray, temperature: float, top_k: int,
                 guidance: tuple[float, float, float] = (v1.DEFAULT_GUIDANCE_WEIGHT, 0.0, 0.0)) -> Frame:
        with self._lock:
            self._settings = (style_from_conditioning(conditioning), float(guidance[0]), float(temperature),
                              int(top_k))
        self._start()
        t0 = time.perf_counter()
        while not self._frames:
            if self.failed:
                raise RuntimeError(self.failed)
            try:
                chunk = self._chunks.get(timeout=WAIT_POLL_S)
            except queue.Empty:
                continue
            self._wake.set()
            audio = chunk.audio
            self._frames = [(chunk.tokens[f].astype(np.int64),
                             None if audio is None else audio[f * v1.FRAME_SAMPLES:(f + 1) * v1.FRAME_SAMPLES])
                            for f in range(v1.CHUNK_FRAMES)]
        codes, self._audio = self._frames.pop(0)
        index, self._index = self._index, self._index + 1
        wait_ms = (time.perf_counter() - t0) * 1e3
        return Frame(index, codes, codes, None, np.zeros((v1.DECODER_LEVELS, 0), np.float32),
                     {"total": wait_ms, "wait": wait_ms})

    def decode(self, codes: np.ndarray) -> np.ndarray:
        """The audio of the frame ``generate`` last returned (decoded with its chunk)."""
        return self._audio

    def reset(self, seed: int | None = None) -> None:
        """Upstream's fresh state (empty context); chunks made for the old stream are dropped."""
        with self._lock:
            self._generation += 1
            if seed is not None:
                self.seed = int(seed)
            while not self._chunks.empty():
                self._chunks.get_nowait()
        with self._model_lock:
            self.engine.reset()
        with self._lock:  # a chunk finished while we waited belongs to the old stream
            while not self._chunks.empty():
                self._chunks.get_nowait()
        self._frames = []
        self._wake.set()


def make_control(opts, engine: V1StreamEngine) -> V1ControlState:
    """:func:`bridge.daemon.inputs.build_control` for v1: the same preset and style service, v1 refusals."""
    from bridge import presets
    from bridge.style.service import service_for_package

    control = V1ControlState()
    preset = presets.get(opts.preset)
    preset.apply(control)
    control.set_guidance("style", v1.DEFAULT_GUIDANCE_WEIGHT)
    control.set_temperature(v1.DEFAULT_TEMPERATURE)
    control.set_top_k(v1.DEFAULT_TOPK)
    resolver = service_for_package(engine.package.root, opts.palette, use_mapper=preset.use_mapper)
    if resolver is not None:
        control.set_style_resolver(resolver)
    control.lock()
    return control


def serve_v1(args, opts, stop: StopFlag) -> int:
    """Run the daemon on a v1 package (``serve.run`` has built ``opts`` and checked the common flags)."""
    from bridge.daemon.app import Daemon
    from bridge.daemon.inputs import ControlInputs

    refused = {"--streams": getattr(args, "streams", None), "--prefill": getattr(args, "prefill", None),
               "--num-cfgs": getattr(args, "num_cfgs", None), "--record": opts.record,
               "--input-device": opts.input_device}
    given = [flag for flag, value in refused.items() if value is not None]
    if given:
        raise ValueError(f"{', '.join(given)}: not available for Magenta RT v1 packages")
    opts.overlap = False  # a chunk's audio is decoded with it, ahead of playback
    holder: dict[str, V1StreamEngine] = {}

    def make_engine() -> V1StreamEngine:
        engine = V1StreamEngine(V1Engine(opts.model, provider=opts.provider, threads=opts.threads))
        if engine.codec is None:
            raise RuntimeError(f"{opts.model}: the v1 package has no codec decoder, so it cannot play audio")
        log.info("Magenta RT v1 %s on %s%s: 2 s chunks generated ahead of playback; control changes "
                 "apply from the next chunk generated (2-4 s)", engine.engine.size, engine.provider,
                 " (SYNTHETIC)" if engine.is_synthetic else "")
        holder["engine"] = engine
        return engine

    try:
        return Daemon(opts, make_engine, lambda engine: make_control(opts, engine), ControlInputs()).run(stop)
    finally:
        if "engine" in holder:
            holder["engine"].close()
