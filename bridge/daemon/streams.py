"""`serve --streams N`: N independent streams from one batched engine, each on its own PCM port.

Data flow per stream: its own control state (OSC ``/stream/<id>/...``) ->
one batched model step for every open, unpaused stream
(:class:`bridge.multistream.MultiStreamEngine`) -> that stream's codec state
-> its audio ring -> its PCM stream (tcp://host:base+id). One clock thread
drains every playing ring at 48 kHz in real time, as a sound card would, so
underruns are counted per stream exactly as in the single-stream daemon.

Threads: the OSC thread only marks a stream wanted open/closed (the reply goes
out at once); the frame-loop thread owns the engine and applies those wishes
at the next frame. With the overlap on, a codec thread decodes each batch
while the next is generated and writes its audio into the rings itself; the
loop waits for it (flush) before a stream joins, leaves or resets. A stream
that joins starts with ``buffer_frames`` frames of silence in its ring, so it
plays in step with the others (same latency) and never underruns while
catching up. A stream that closes stops being read; the others' state and
rings are untouched.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from bridge import FRAME_MS, FRAME_SAMPLES, SAMPLE_RATE
from bridge.audio.pcm_stream import PcmStreamServer
from bridge.audio.ring import AudioRing
from bridge.audio.sinks.clocked import DEFAULT_BLOCK, ClockedSink
from bridge.control.state import ControlState
from bridge.multistream import MultiStreamEngine, StreamInput
from bridge.pipeline import AUTO_THRESHOLD_MS
from bridge.threads import AUDIO_NICE, set_thread_nice

from .frame_loop import POLL_S, ring_capacity
from .stats import RollingTimes

log = logging.getLogger(__name__)

CLOCK_BLOCK = DEFAULT_BLOCK


@dataclass
class StreamSlot:
    """One stream id's parts: its controls, PCM server, current ring and counters."""

    sid: int
    control: ControlState
    pcm: PcmStreamServer | None
    ws: object | None = None  # its bridge.web.server.AudioTap when PCM also goes out over WebSocket
    wanted_open: bool = False  # what OSC asked for; the loop makes it so
    seed: int = 0
    ring: AudioRing | None = None  # the ring being produced into while open
    playing: AudioRing | None = None  # the ring the clock reads (None: closed)
    open: bool = False  # in the engine (frame-loop thread's view)
    frames_out: int = 0
    frames_generated: int = 0
    engine_resets: int = 0
    opened: int = 0
    past_underruns: int = 0  # of rings of earlier openings
    past_underrun_frames: int = 0
    opened_at: float | None = None

    def underruns(self) -> tuple[int, int]:
        ring = self.ring
        n, frames = self.past_underruns, self.past_underrun_frames
        if ring is not None:
            n += ring.underruns
            frames += ring.underrun_frames
        return n, frames

    def status(self) -> dict:
        ring = self.ring
        underruns, underrun_frames = self.underruns()
        return {
            "id": self.sid,
            "open": self.wanted_open,
            "seed": self.seed,
            "frames": self.frames_out,
            "frames_generated": self.frames_generated,
            "underruns": underruns,
            "underrun_ms": round(1000 * underrun_frames / SAMPLE_RATE, 1),
            "ring_fill_ms": round(1000 * ring.fill / SAMPLE_RATE, 1) if ring is not None and self.open else 0.0,
            "ring_low_water_ms": round(1000 * ring.low_water / SAMPLE_RATE, 1) if ring is not None and self.open else None,
            "engine_resets": self.engine_resets,
            "opened": self.opened,
            "uptime_s": round(time.monotonic() - self.opened_at, 1) if self.opened_at and self.open else 0.0,
            "pcm": self.pcm.status() if self.pcm is not None else None,
        }


class _PlayingRings:
    """Looks like one ring to a clocked sink: a read reads every playing stream's ring."""

    def __init__(self, slots: list[StreamSlot]) -> None:
        self.slots = slots

    def read_into(self, out: np.ndarray) -> int:
        for slot in self.slots:
            ring = slot.playing  # one read: the loop swaps it on open/close
            if ring is not None:
                ring.read_into(out)
        return out.shape[0]


class StreamClock(ClockedSink):
    """Reads every playing ring in real time (48 kHz, ``CLOCK_BLOCK`` frames at a time), as
    ``--audio null`` does for one stream; underruns are counted in each stream's ring."""

    name = "streams-clock"

    def __init__(self, slots: list[StreamSlot]) -> None:
        super().__init__(_PlayingRings(slots), CLOCK_BLOCK, SAMPLE_RATE)


@dataclass
class _Pending:
    """The frame-loop's per-stream work of one batched frame."""

    slot: StreamSlot
    snap: object
    index: int  # the stream's frame index
    silent: bool = False
    codes: np.ndarray | None = None
    audio: np.ndarray | None = None


class MultiFrameLoop:
    """The frame-loop thread of ``--streams``: one batched step for all open streams per frame."""

    def __init__(self, engine: MultiStreamEngine, slots: list[StreamSlot], *, buffer_frames: int,
                 overlap: bool | None = None) -> None:
        if buffer_frames < 1:
            raise ValueError(f"--buffer-frames must be at least 1, got {buffer_frames}")
        self.engine = engine
        self.slots = slots
        self.buffer_frames = int(buffer_frames)
        self.target = self.buffer_frames * FRAME_SAMPLES
        self.capacity = ring_capacity(self.buffer_frames + 2, SAMPLE_RATE)
        self.step_times = RollingTimes()
        self.batch_sizes = RollingTimes()
        self.steps = 0
        self.failed: str | None = None
        self._silence = np.zeros((FRAME_SAMPLES, 2), np.float32)
        self._scaled = np.zeros((FRAME_SAMPLES, 2), np.float32)
        self.preroll = False  # joining streams start with buffer_frames of silence (once the clock runs)
        # Codec on a second thread one frame behind the model step, pushing each batch's audio into
        # the rings the moment it is decoded (as bridge.pipeline's submit does for one stream);
        # None: decided by wait_filled from the first frames' step time.
        self.overlap = overlap
        self._pool: ThreadPoolExecutor | None = None
        self._in_flight: Future | None = None
        self._lock = threading.Lock()  # guards wanted_open / seed between OSC and the loop
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="streams-frame-loop", daemon=True)

    # -- requests from other threads --------------------------------------------
    def request_open(self, sid: int | None, seed: int | None) -> int:
        """Mark a stream (``sid``, else the lowest closed one) open; returns its id. Raises when refused."""
        with self._lock:
            if sid is None:
                free = [s.sid for s in self.slots if not s.wanted_open]
                if not free:
                    raise RuntimeError(f"full: all {len(self.slots)} streams are open")
                sid = free[0]
            slot = self.slots[sid]
            if slot.wanted_open:
                raise RuntimeError(f"stream {sid} is already open")
            slot.seed = sid if seed is None else int(seed)
            slot.wanted_open = True
        return sid

    def request_close(self, sid: int) -> None:
        with self._lock:
            slot = self.slots[sid]
            if not slot.wanted_open:
                raise RuntimeError(f"stream {sid} is not open")
            slot.wanted_open = False

    # -- life cycle -----------------------------------------------------------------
    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    @property
    def overlap_samples(self) -> int:
        """The frame the overlap adds ahead of playback (0 when decoding in line or undecided)."""
        return FRAME_SAMPLES if self.overlap else 0

    def wait_filled(self, n_open: int, timeout: float) -> bool:
        """Block until ``n_open`` streams are open with full rings (before the clock starts),
        with the overlap's frame too when it is on."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not self.failed:
            rings = [s.ring for s in self.slots if s.open]
            full = self.target + self.overlap_samples
            if len(rings) == n_open and all(r.fill + FRAME_SAMPLES > full for r in rings):
                for r in rings:
                    r.reset_low_water()
                if self.overlap is None:
                    p75 = self.step_times.percentiles((75,))["p75"]
                    self.overlap = p75 is not None and p75 > AUTO_THRESHOLD_MS
                    log.info("codec overlap %s: a batched step takes %s ms in line (threshold %.0f ms)",
                             "on (+1 frame of latency)" if self.overlap else "off", p75, AUTO_THRESHOLD_MS)
                return True
            time.sleep(POLL_S)
        return False

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def _run(self) -> None:
        set_thread_nice(AUDIO_NICE)  # as the single-stream loop: audio ahead of control and of a game
        try:
            while not self._stop.is_set():
                self._apply_requests()
                ahead = self._ahead()
                if ahead is None or ahead + FRAME_SAMPLES > self.target:
                    self._stop.wait(POLL_S)
                    continue
                self._produce_one()
        except Exception as exc:
            log.exception("streams frame loop failed at step %d", self.steps)
            self.failed = f"streams frame loop failed at step {self.steps}: {exc}"
        finally:
            if self._pool is not None:
                self._pool.shutdown(wait=True)

    def _ahead(self) -> int | None:
        """Samples ahead of the clock that count against the buffer (None: no stream open): the
        emptiest ring and a batch still in the codec, less the frame the overlap adds."""
        rings = [s.ring for s in self.slots if s.open]
        if not rings:
            return None
        in_codec = FRAME_SAMPLES if self._in_flight is not None and not self._in_flight.done() else 0
        return min(r.fill for r in rings) + in_codec - self.overlap_samples

    def _apply_requests(self) -> None:
        with self._lock:
            changes = [(s, s.wanted_open, s.seed) for s in self.slots if s.wanted_open != s.open]
        if changes:
            self._flush()  # the codec thread must not be decoding a stream that leaves
        for slot, want, seed in changes:
            if want:
                self._join(slot, seed)
            else:
                self._leave(slot)

    def _join(self, slot: StreamSlot, seed: int) -> None:
        self.engine.open(seed=seed, sid=slot.sid)
        ring = AudioRing(self.capacity)
        for _ in range(self.buffer_frames if self.preroll else 0):  # in step with the others at once
            ring.write(self._silence)
        ring.reset_low_water()
        slot.ring, slot.open, slot.playing = ring, True, ring
        slot.opened += 1
        slot.opened_at = time.monotonic()
        slot.frames_out = slot.frames_generated = 0
        log.info("stream %d open (seed %d): %d of %d streams playing", slot.sid, seed,
                 sum(s.open for s in self.slots), len(self.slots))

    def _leave(self, slot: StreamSlot) -> None:
        slot.playing = None
        self.engine.close(slot.sid)
        slot.open = False
        if slot.ring is not None:
            slot.ring.close()
            slot.past_underruns += slot.ring.underruns
            slot.past_underrun_frames += slot.ring.underrun_frames
            slot.ring = None
        log.info("stream %d closed after %d frames", slot.sid, slot.frames_out)

    def _produce_one(self) -> None:
        work: list[_Pending] = []
        inputs: dict[int, StreamInput] = {}
        for slot in self.slots:
            if not slot.open:
                continue
            index = slot.frames_generated
            snap = slot.control.snapshot(index)
            slot.frames_generated += 1
            if snap.reset or snap.seed is not None:
                self._flush()  # its frame in the codec belongs to the stream before the reset
                self.engine.reset(slot.sid, seed=snap.seed)
                slot.engine_resets += 1
                log.info("stream %d reset%s", slot.sid, "" if snap.seed is None else f" (seed {snap.seed})")
            pending = _Pending(slot, snap, index, silent=snap.paused)
            work.append(pending)
            if not snap.paused:
                inputs[slot.sid] = StreamInput(snap.conditioning, snap.temperature, snap.top_k,
                                               guidance=snap.guidance)
        t0 = time.perf_counter()
        frames = self.engine.generate(inputs)
        for p in work:
            p.codes = frames[p.slot.sid].codes if p.slot.sid in frames else None
        if self.overlap:
            self._flush()  # one batch in the codec at a time
        else:
            self._decode(work)
        step_ms = (time.perf_counter() - t0) * 1e3
        if inputs:
            self.step_times.add(step_ms)
            self.batch_sizes.add(float(len(inputs)))
        self.steps += 1
        if self.overlap:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(1, thread_name_prefix="streams-codec",
                                                initializer=set_thread_nice, initargs=(AUDIO_NICE,))
            self._in_flight = self._pool.submit(self._decode_and_output, work)
        else:
            self._output_all(work)

    def _decode(self, work: list[_Pending]) -> None:
        """Each stream's codec on its frame's codes (on the codec thread with overlap)."""
        for p in work:
            if p.codes is not None:
                p.audio = self.engine.decode(p.slot.sid, p.codes)

    def _output_all(self, work: list[_Pending]) -> None:
        for p in work:
            self._output(p)

    def _decode_and_output(self, work: list[_Pending]) -> None:
        """The codec thread's job: a batch's audio goes into the rings the moment it exists."""
        self._decode(work)
        self._output_all(work)

    def _flush(self) -> None:
        """Wait until the batch in the codec is in the rings; raise its error, if any (before
        a stream joins, leaves or resets, and before the next batch goes to the codec)."""
        future, self._in_flight = self._in_flight, None
        if future is not None:
            future.result()

    def _output(self, p: _Pending) -> None:
        slot, snap = p.slot, p.snap
        audio = p.audio
        if p.silent or audio is None or snap.muted:
            audio = self._silence
        elif snap.volume != 1.0:
            np.multiply(audio, np.float32(snap.volume), out=self._scaled)
            audio = self._scaled
        while not slot.ring.write(audio):  # only if the clock stalled
            if self._stop.wait(POLL_S):
                return
        slot.frames_out += 1
        if slot.pcm is not None:
            slot.pcm.publish(audio, p.index)
        if slot.ws is not None:
            slot.ws.publish(audio, p.index)

    # -- reporting ---------------------------------------------------------------
    def status(self) -> dict:
        """Totals of the batched loop (plain JSON types)."""
        per = [s.status() for s in self.slots]
        open_ = [s for s in per if s["open"]]
        return {
            "streams_max": len(self.slots),
            "streams_open": len(open_),
            "steps": self.steps,
            "step_ms": {**self.step_times.percentiles(), "max": round(self.step_times.maximum, 3)},
            "batch_p50": self.batch_sizes.percentiles((50,))["p50"],
            "buffer_frames": self.buffer_frames,
            "buffer_ms": round(self.buffer_frames * FRAME_MS),
            "codec_overlap_frames": int(bool(self.overlap)),
            "num_cfgs": self.engine.num_cfgs,
            "underruns": sum(s["underruns"] for s in per),
            "frames": sum(s["frames"] for s in per),
            "ring_fill_ms": min((s["ring_fill_ms"] for s in open_), default=0.0),
            "ring_low_water_ms": min((s["ring_low_water_ms"] for s in open_ if s["ring_low_water_ms"] is not None),
                                     default=None),
            "pcm_clients": sum((s["pcm"] or {}).get("clients", 0) for s in per),
        }


def pcm_port(base: int, sid: int) -> int:
    """The PCM port of stream ``sid``: base + sid."""
    return base + sid


def check_ports(base: int, streams: int) -> None:
    if not 1 <= base or base + streams - 1 > 65535:
        raise ValueError(f"--pcm-port {base} with --streams {streams}: ports {base}..{base + streams - 1} "
                         "must lie within 1..65535")


def describe_latency(buffer_frames: int, overlap_frames: int = 0) -> str:
    """Control-to-output latency of ``--streams``: the buffer, the overlap's frame and one clock block."""
    frames = buffer_frames + overlap_frames
    extra = f" (buffer {buffer_frames} frames + {overlap_frames} in the codec)" if overlap_frames else ""
    return f"about {math.ceil(frames * FRAME_MS + 1000 * CLOCK_BLOCK / SAMPLE_RATE)} ms{extra}"
