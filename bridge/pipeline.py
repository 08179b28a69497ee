"""Overlap the codec with the model: decode frame k on a second thread while frame k+1 is generated.

::

    caller thread:  generate(k) | generate(k+1) | generate(k+2) ...
    codec thread:               | decode(k)     | decode(k+1)   ...

ONNX Runtime releases the GIL while it runs, so on two cores the frame time
becomes about max(model, codec) instead of their sum, for one frame (40 ms) of
added latency. :meth:`CodecOverlap.push` hands over frame k+1's codes and returns
frame k with its audio; :meth:`CodecOverlap.flush` returns the last one. With
``overlap=False`` (or no codec) it decodes in place and adds no latency.
"""

from __future__ import annotations

import time
from concurrent.futures import Future, ThreadPoolExecutor

from .engine import Engine, Frame


class CodecOverlap:
    """Runs an engine's codec one frame behind its model step, on its own thread."""

    def __init__(self, engine: Engine, overlap: bool = True) -> None:
        self.engine = engine
        self.overlap = bool(overlap and engine.codec is not None)
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="codec") if self.overlap else None
        self._pending: tuple[Frame, Future] | None = None

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
            return self._decode(frame)
        done = self.flush()
        self._pending = (frame, self._pool.submit(self._decode, frame))
        return done

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
