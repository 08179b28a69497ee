"""The frame-loop thread: owns the Engine and keeps the audio ring topped up.

Each frame: ``snap = control.snapshot(i)``; a reset or seed request resets
the engine (reseeded when a seed came with it); the model step
(``engine.generate`` with the snapshot's guidance) unless paused (paused frames
are silence, so the sink does not underrun; a pause first fades out). The
codec decodes each frame on its own thread while the next frame is generated
(:mod:`bridge.pipeline`, one frame of added latency) with ``overlap=True``;
``False`` decodes in line (the daemon decides with
:func:`bridge.pipeline.choose_overlap`). A decoded frame gets its own
snapshot's volume, mute, pause and MIDI gate through click-free envelopes
(bridge/audio/gain.py), is resampled to the sink's rate if needed, pushed to
the ring, published to taps (the PCM stream) at 48 kHz, and traced.

Pacing: a new frame is produced only while less than ``buffer_frames``
frames are ahead of the sink (+ one with the overlap: the ring and a frame still
in the codec), so control changes reach the ear after about ``buffer_frames`` x
40 ms (+ one sink block + one step; + one frame with the overlap). The loop
polls the ring's fill every couple of milliseconds; the consumer never signals
it (signalling would take a lock in the audio callback).

Overlapped, the codec thread itself processes and pushes each frame the moment
it is decoded (:meth:`CodecOverlap.submit`), not after the next model step: a
slow step then eats into a ring that already holds the audio made before it,
at the same latency. One thread at a time writes the ring (the frame loop only
after :meth:`CodecOverlap.flush`).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from functools import partial
from typing import Protocol

import numpy as np

from bridge import FRAME_MS, FRAME_SAMPLES, SAMPLE_RATE
from bridge.audio.gain import OutputGain
from bridge.audio.resample import LinearResampler
from bridge.audio.ring import AudioRing
from bridge.pipeline import CodecOverlap
from bridge.threads import AUDIO_NICE, set_thread_nice

from .stats import RollingTimes
from .trace import FrameTrace

log = logging.getLogger(__name__)

POLL_S = 0.002
DEFAULT_BUFFER_FRAMES = 3  # 120 ms of audio ahead of the sink


class FrameTap(Protocol):
    """Something that wants every produced 48 kHz frame (e.g. the PCM stream)."""

    def publish(self, frames: np.ndarray, frame_index: int) -> None: ...


def ring_capacity(max_buffer_frames: int, out_rate: int) -> int:
    """Ring size (sample frames) able to hold ``max_buffer_frames`` frames plus slack."""
    per_frame = math.ceil(FRAME_SAMPLES * out_rate / SAMPLE_RATE) + 1
    return (max_buffer_frames + 2) * per_frame


class FrameLoop:
    """Produces frames ahead of playback on its own thread."""

    def __init__(self, engine, control, ring: AudioRing, *, buffer_frames: int = DEFAULT_BUFFER_FRAMES,
                 out_rate: int = SAMPLE_RATE, taps: tuple[FrameTap, ...] = (),
                 trace: FrameTrace | None = None, overlap: bool = False) -> None:
        if buffer_frames < 1:
            raise ValueError(f"--buffer-frames must be at least 1, got {buffer_frames}")
        self.engine = engine
        self.codec = CodecOverlap(engine, overlap, nice=AUDIO_NICE)
        self.control = control
        self.ring = ring
        self.out_rate = int(out_rate)
        self.out_frame_len = math.ceil(FRAME_SAMPLES * self.out_rate / SAMPLE_RATE) + 1
        self.max_buffer_frames = max(1, ring.capacity // self.out_frame_len - 1)
        self.buffer_frames = min(int(buffer_frames), self.max_buffer_frames)
        self.resampler = LinearResampler(SAMPLE_RATE, self.out_rate)
        self.taps = tuple(taps)
        self.trace = trace if trace is not None else FrameTrace()
        self.step_times = RollingTimes()
        self.frame_index = 0  # frames generated (one of them may still be in the codec)
        self.frames_out = 0  # frames pushed to the ring
        self.engine_resets = 0
        self.failed: str | None = None
        self._silence = np.zeros((FRAME_SAMPLES, 2), np.float32)
        self.gain = OutputGain()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="frame-loop", daemon=True)
        self._warned_no_audio = False
        self.started_at: float | None = None

    # -- control ---------------------------------------------------------------
    @property
    def target_samples(self) -> int:
        return self.buffer_frames * FRAME_SAMPLES * self.out_rate // SAMPLE_RATE

    @property
    def overlap_samples(self) -> int:
        """The frame the overlap adds ahead of playback (0 when decoding in line)."""
        return self.out_frame_len * self.codec.latency_frames

    def start(self) -> None:
        self.started_at = time.monotonic()
        self._thread.start()

    def wait_filled(self, timeout: float) -> bool:
        """Block until the ring holds the target depth (before the sink starts), with the
        frame the overlap adds: a slow first step then starts from a full buffer."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.failed or self.ring.fill + self.out_frame_len > self.target_samples + self.overlap_samples:
                return not self.failed
            time.sleep(POLL_S)
        return False

    def stop(self, timeout: float = 5.0) -> None:
        """Stop producing (the current step, if any, completes first)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    # -- the loop ---------------------------------------------------------------
    def _run(self) -> None:
        set_thread_nice(AUDIO_NICE)  # audio first: ahead of control threads and of a game beside us
        try:
            while not self._stop.is_set():
                if self._ahead() + self.out_frame_len > self.target_samples:
                    self._stop.wait(POLL_S)
                    continue
                self._produce_one()
        except Exception as exc:
            log.exception("frame loop failed at frame %d", self.frame_index)
            self.failed = f"frame loop failed at frame {self.frame_index}: {exc}"
        finally:
            self.codec.close()
            self.trace.close()

    def _ahead(self) -> int:
        """Samples ahead of the sink that count against the buffer: the ring and a frame
        still in the codec, less the frame the overlap adds."""
        in_codec = self.out_frame_len if self.codec.busy() else 0
        return self.ring.fill + in_codec - self.overlap_samples

    def _produce_one(self) -> None:
        i = self.frame_index
        wall = time.time()
        snap = self.control.snapshot(i)
        if snap.buffer_samples is not None:
            self._set_buffer(snap.buffer_samples)
        if snap.reset or snap.seed is not None:
            self.codec.flush()  # the frame in the codec belongs to the stream before the reset
            self.engine.reset(seed=snap.seed)
            self.gain.reset()
            self.engine_resets += 1
            log.info("engine reset at frame %d%s", i, "" if snap.seed is None else f" (seed {snap.seed})")
        self.frame_index = i + 1
        if snap.paused:
            self.codec.flush()  # whether the fade-out is done depends on the frame in the codec
        if not self.gain.needs_audio(snap.paused):  # paused, and the fade-out is done
            self._output(self._silence, i, snap, wall, None)
            return
        t0 = time.perf_counter()
        frame = self.engine.generate(snap.conditioning, snap.temperature, snap.top_k, guidance=snap.guidance)
        self.codec.flush()  # one frame in the codec at a time
        step_ms = (time.perf_counter() - t0) * 1e3
        self.step_times.add(step_ms)
        self.codec.submit(frame, partial(self._deliver, (i, snap, wall, step_ms)))

    def _deliver(self, meta: tuple, frame) -> None:
        """A decoded frame (on the codec thread when overlapped): envelopes, ring, taps, trace."""
        self._output_frame(frame.audio, meta)

    def _output_frame(self, audio: np.ndarray | None, meta: tuple) -> None:
        i, snap, wall, step_ms = meta
        if audio is None:
            if not self._warned_no_audio:
                log.warning("model package has no codec decoder: output is silence")
                self._warned_no_audio = True
            audio = self._silence
        else:
            audio = self.gain.process(audio, snap.volume, muted=snap.muted, paused=snap.paused,
                                      gated=snap.gated)
        self._output(audio, i, snap, wall, step_ms)

    def _output(self, audio: np.ndarray, i: int, snap, wall: float, step_ms: float | None) -> None:
        """Resample, push to the ring (waiting while it is full), publish to taps, trace."""
        out = self.resampler.process(audio)
        fill_before = self.ring.fill
        while not self.ring.write(out):  # only if the consumer stalled; never drop produced audio
            if self._stop.wait(POLL_S):
                return
        self.frames_out += 1
        for tap in self.taps:
            tap.publish(audio, i)
        play_at = time.time() + fill_before / self.out_rate
        self.trace.record(i, wall, play_at, step_ms, snap, fill_before)

    def _set_buffer(self, samples: int) -> None:
        frames = max(1, min(self.max_buffer_frames, math.ceil(samples / FRAME_SAMPLES)))
        if frames != self.buffer_frames:
            log.info("buffer: %d -> %d frames (%d ms)", self.buffer_frames, frames, round(frames * FRAME_MS))
            self.buffer_frames = frames

    # -- reporting ----------------------------------------------------------------
    def status(self) -> dict:
        """Frame loop figures for the status reply (plain JSON types)."""
        ring = self.ring.stats()
        return {
            "frames": self.frames_out,
            "frames_generated": self.frame_index,
            "step_ms": {**self.step_times.percentiles(), "max": round(self.step_times.maximum, 3)},
            "buffer_frames": self.buffer_frames,
            "buffer_ms": round(self.buffer_frames * FRAME_MS),
            "codec_overlap_frames": self.codec.latency_frames,
            "num_cfgs": getattr(self.engine, "num_cfgs", None),
            "prefill_frames": getattr(self.engine, "prefilled_frames", 0),
            "ring_fill_ms": round(1000 * ring["fill"] / self.out_rate, 1),
            "ring_low_water_ms": round(1000 * ring["low_water"] / self.out_rate, 1),
            "underruns": ring["underruns"],
            "underrun_ms": round(1000 * ring["underrun_frames"] / self.out_rate, 1),
            "engine_resets": self.engine_resets,
            "trace_last": self.trace.last,
        }
