"""Overlap the codec with the model: decode frame k on a second thread while frame k+1 is generated.

::

    caller thread:  generate(k) | generate(k+1) | generate(k+2) ...
    codec thread:               | decode(k)     | decode(k+1)   ...

ONNX Runtime releases the GIL while it runs, so on two cores the frame time
becomes about max(model, codec) instead of their sum, for one frame (40 ms) of
added latency. :meth:`CodecOverlap.push` hands over frame k+1's codes and returns
frame k with its audio; :meth:`CodecOverlap.flush` returns the last one. In line
(``overlap=False``, or no codec) it decodes in place and adds no latency.
:meth:`CodecOverlap.submit` is push for a caller that plays the audio: the codec
thread hands each frame on the moment it is decoded, not when the caller next
pushes (the daemon's ring gets it a model step sooner).

A decode usually ends within the temporal step; the idle codec thread then lends
its core to the depth decoder (:meth:`Engine.share_codec_core`, ``runtime.frame_threads``)::

    caller thread:  temporal(k+1) ........ | depth(k+1) on both cores |
    codec thread:   decode(k) .....| idle  |  (its core: depth)      |

:func:`choose_overlap` ("auto") times a few frames in line before anything
starts and picks the overlap only if they take more than
:data:`AUTO_THRESHOLD_MS` (half a frame): a small model keeps the lower
latency, a large one gets the throughput.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np

from . import FRAME_MS
from .engine import Engine, Frame
from .threads import set_thread_nice

log = logging.getLogger(__name__)

AUTO_FRAMES = 8
AUTO_THRESHOLD_MS = 20.0


def choose_overlap(engine: Engine, frames: int = AUTO_FRAMES) -> bool:
    """Whether the codec should overlap the model: time ``frames`` whole frames in line.

    The engine is then reset to its start with its seed, so the stream is as if
    nothing had run. Warns when even the overlapped frame would take longer than it
    plays (no buffer size can help then).
    """
    from .bench import bench_conditioning

    timings = [engine.step(bench_conditioning(i)).timings_ms for i in range(frames)]
    engine.reset(seed=engine.seed)
    total = float(np.percentile([t["total"] for t in timings[1:]], 75))
    codec = float(np.percentile([t.get("codec", 0.0) for t in timings[1:]], 75))
    overlap = engine.codec is not None and total > AUTO_THRESHOLD_MS
    log.info("codec overlap %s: a frame takes %.1f ms in line (threshold %.0f ms)",
             "on (+1 frame of latency)" if overlap else "off", total, AUTO_THRESHOLD_MS)
    # Overlapped, a frame takes at least the longer of the model step and the decode.
    period = max(total - codec, codec) if overlap else total
    if period > FRAME_MS:
        log.warning("this machine is slower than real time for this model: a frame takes about %.0f ms to "
                    "play %.0f ms (in line: model %.0f + codec %.0f ms%s), so the audio will have gaps "
                    "whatever --buffer-frames is; %s", period, FRAME_MS, total - codec, codec,
                    "; overlapped: the longer of the two" if overlap else "", real_time_fixes(engine))
    return overlap


def real_time_fixes(engine, first: str = "") -> str:
    """What to try when ``engine`` is slower than real time on this machine (``first``: a fix
    of the caller's own to name before the others, e.g. fewer streams)."""
    num_cfgs = getattr(engine, "num_cfgs", 0)
    fewer_rows = f"--num-cfgs 0 (one row instead of {1 + num_cfgs}), " if num_cfgs else ""
    return f"try {first}{fewer_rows}a smaller model or --provider cuda"


class CodecOverlap:
    """Runs an engine's codec one frame behind its model step, on its own thread (see module doc)."""

    def __init__(self, engine: Engine, overlap: bool = True, nice: int | None = None) -> None:
        """``nice``: CPU priority of the codec thread (bridge.threads), e.g. the daemon's audio priority."""
        self.engine = engine
        self.overlap = bool(overlap and engine.codec is not None)
        init = (lambda: set_thread_nice(nice)) if nice is not None else None
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="codec", initializer=init) if self.overlap else None
        self._pending: tuple[Frame, Future] | None = None
        self._share = getattr(engine, "share_codec_core", None) if self.overlap else None
        if self._share is not None:  # the engine's depth decoder takes every core only while no decode runs
            self._share(self.busy)

    @property
    def latency_frames(self) -> int:
        """Frames between a frame's generation and its audio (what overlap adds)."""
        return 1 if self.overlap else 0

    def busy(self) -> bool:
        """Whether a decode is in flight on the codec thread now."""
        return self._pending is not None and not self._pending[1].done()

    def _decode(self, frame: Frame) -> Frame:
        t0 = time.perf_counter()
        frame.audio = self.engine.decode(frame.codes)
        frame.timings_ms["codec"] = (time.perf_counter() - t0) * 1e3
        return frame

    def push(self, frame: Frame) -> Frame | None:
        """Queue ``frame`` for decoding; return the previous frame, decoded (None at the start)."""
        if self._pool is None:
            return self._decode(frame)
        done = self.flush()
        self._pending = (frame, self._pool.submit(self._decode, frame))
        return done

    def submit(self, frame: Frame, deliver: Callable[[Frame], None]) -> None:
        """Decode ``frame`` and call ``deliver(frame)`` as soon as its audio exists: on the codec
        thread when overlapped (after the frame before it), else here. An error in either
        is raised by the next :meth:`flush`, :meth:`push` or :meth:`submit`."""
        if self._pool is None:
            deliver(self._decode(frame))
            return
        self.flush()
        self._pending = (frame, self._pool.submit(self._decode_and_deliver, frame, deliver))

    def _decode_and_deliver(self, frame: Frame, deliver: Callable[[Frame], None]) -> Frame:
        deliver(self._decode(frame))
        return frame

    def flush(self) -> Frame | None:
        """Wait for the frame in flight (if any, delivered too if it was submitted) and return it decoded."""
        if self._pending is None:
            return None
        frame, future = self._pending
        self._pending = None
        return future.result()

    def close(self) -> None:
        self.flush()
        if self._pool is not None:
            self._pool.shutdown(wait=True)
        if self._share is not None and self.engine.codec_busy == self.busy:  # not a later pipeline's
            self._share(None)
