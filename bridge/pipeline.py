"""Overlap the codec with the model: decode frame k on a second thread while frame k+1 is generated.

::

    caller thread:  generate(k) | generate(k+1) | generate(k+2) ...
    codec thread:               | decode(k)     | decode(k+1)   ...

ONNX Runtime releases the GIL while it runs, so on two cores the frame time
becomes about max(model, codec) instead of their sum, for one frame (40 ms) of
added latency. :meth:`CodecOverlap.push` hands over frame k+1's codes and returns
frame k with its audio; :meth:`CodecOverlap.flush` returns the last one. In line
(``overlap=False``, or no codec) it decodes in place and adds no latency.

``overlap=None`` ("auto") decodes in line for the first :data:`AUTO_FRAMES`
frames and turns the overlap on only if those took more than
:data:`AUTO_THRESHOLD_MS` (half a frame): a small model keeps the lower
latency, a large one gets the throughput.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np

from .engine import Engine, Frame

log = logging.getLogger(__name__)

AUTO_FRAMES = 10
AUTO_THRESHOLD_MS = 20.0


class CodecOverlap:
    """Runs an engine's codec one frame behind its model step, on its own thread (see module doc)."""

    def __init__(self, engine: Engine, overlap: bool | None = True) -> None:
        self.engine = engine
        self._auto = overlap is None and engine.codec is not None
        self._frame_ms: list[float] = []
        self._pool: ThreadPoolExecutor | None = None
        self._pending: tuple[Frame, Future] | None = None
        if overlap and engine.codec is not None:
            self._start()

    def _start(self) -> None:
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="codec")

    @property
    def overlap(self) -> bool:
        return self._pool is not None

    @property
    def latency_frames(self) -> int:
        """Frames between a frame's generation and its audio (what overlap adds)."""
        return 1 if self.overlap else 0

    def _decode(self, frame: Frame) -> Frame:
        t0 = time.perf_counter()
        frame.audio = self.engine.decode(frame.codes)
        frame.timings_ms["codec"] = (time.perf_counter() - t0) * 1e3
        return frame

    def push(self, frame: Frame) -> Frame | None:
        """Queue ``frame`` for decoding; return the previous frame, decoded (None at the start)."""
        if self._pool is None:
            done = self._decode(frame)
            if self._auto:
                self._decide(done)
            return done
        done = self.flush()
        self._pending = (frame, self._pool.submit(self._decode, frame))
        return done

    def _decide(self, frame: Frame) -> None:
        self._frame_ms.append(sum(frame.timings_ms.get(k, 0.0) for k in ("encoder", "temporal", "depth", "codec")))
        if len(self._frame_ms) < AUTO_FRAMES:
            return
        self._auto = False
        typical = float(np.percentile(self._frame_ms[1:], 75))
        if typical > AUTO_THRESHOLD_MS:
            self._start()
        log.info("codec overlap %s: model + codec take %.1f ms per frame in line (threshold %.0f ms)",
                 "on (+1 frame of latency)" if self.overlap else "off", typical, AUTO_THRESHOLD_MS)

    def flush(self) -> Frame | None:
        """Wait for the frame in flight (if any) and return it decoded."""
        if self._pending is None:
            return None
        frame, future = self._pending
        self._pending = None
        return future.result()

    def close(self) -> None:
        self.flush()
        if self._pool is not None:
            self._pool.shutdown(wait=True)
