"""Preallocated single-producer / single-consumer ring of stereo float32 frames.

Producer: the frame-loop thread (``write``). Consumer: an audio callback or
a clocked sink thread (``read_into``). The consumer side never allocates an
audio buffer, takes a lock or waits: when the ring runs dry it writes
silence for the missing part and counts one underrun.

Memory-ordering argument
------------------------
``_write_pos`` and ``_read_pos`` are monotonically increasing Python ints
(never wrapped; the buffer index is ``pos % capacity``). Each is stored by
exactly one thread: ``_write_pos`` only by the producer, ``_read_pos`` only by
the consumer. The producer copies the samples into the buffer *before* it
stores the new ``_write_pos``; the consumer copies samples out *before* it
stores the new ``_read_pos``. Under CPython's GIL a single attribute store is
atomic and program order within a thread is preserved at the bytecode level,
so a reader that observes ``_write_pos == w`` also observes every sample
below ``w`` (numpy may drop the GIL during a copy, but the copy finishes
before the next bytecode of the same thread, the position store, runs).
Each side reads the other's position once per call, so it only ever
under-estimates the data (consumer) or free space (producer) available:
never a torn or premature read. On a free-threaded (no-GIL) build this
relies on the interpreter's sequentially consistent attribute stores.
"""

from __future__ import annotations

import numpy as np

CHANNELS = 2


class AudioRing:
    """SPSC ring of ``capacity`` stereo sample frames (float32, shape ``(n, 2)``)."""

    def __init__(self, capacity: int) -> None:
        if capacity <= 0:
            raise ValueError(f"ring capacity must be positive, got {capacity}")
        self.capacity = int(capacity)
        self._buf = np.zeros((self.capacity, CHANNELS), np.float32)
        self._write_pos = 0  # stored by the producer only
        self._read_pos = 0  # stored by the consumer only
        # Consumer-side counters (stored by the consumer only).
        self.underruns = 0  # reads that found fewer frames than asked for
        self.underrun_frames = 0  # silent frames written because of those
        self.low_water = self.capacity  # least fill seen after a read since reset_low_water
        self.closed = False  # set by the producer when it will write no more (shutdown drain)

    # -- shared, read-only views -------------------------------------------------
    @property
    def frames_written(self) -> int:
        return self._write_pos

    @property
    def frames_read(self) -> int:
        return self._read_pos

    @property
    def fill(self) -> int:
        """Frames written and not yet read (a snapshot; exact on either side)."""
        return self._write_pos - self._read_pos

    @property
    def free(self) -> int:
        return self.capacity - self.fill

    # -- producer ----------------------------------------------------------------
    def write(self, frames: np.ndarray) -> bool:
        """Append ``frames`` (shape ``(n, 2)``) if they fit; return False otherwise.

        All-or-nothing, so a frame is never split by a full ring.
        """
        n = frames.shape[0]
        w = self._write_pos
        if n > self.capacity - (w - self._read_pos):
            return False
        start = w % self.capacity
        first = min(n, self.capacity - start)
        self._buf[start:start + first] = frames[:first]
        if first < n:
            self._buf[:n - first] = frames[first:]
        self._write_pos = w + n  # publish after the data is in place
        return True

    def close(self) -> None:
        """Producer is done: running dry from now on is the end of the stream, not an underrun."""
        self.closed = True

    # -- consumer ----------------------------------------------------------------
    def read_into(self, out: np.ndarray) -> int:
        """Fill ``out`` (shape ``(n, 2)``, float32) from the ring; return frames read.

        Any shortfall is filled with silence and counted as one underrun.
        No allocation of audio buffers, no locks, no waiting.
        """
        n = out.shape[0]
        r = self._read_pos
        k = self._write_pos - r
        k = min(k, n)
        if k > 0:
            start = r % self.capacity
            first = self.capacity - start
            first = min(first, k)
            out[:first] = self._buf[start:start + first]
            if first < k:
                out[first:k] = self._buf[:k - first]
            self._read_pos = r + k  # release the space after the copy
        if k < n:
            out[k:] = 0.0
            if not self.closed:
                self.underruns += 1
                self.underrun_frames += n - k
        fill = self._write_pos - self._read_pos
        self.low_water = min(self.low_water, fill)
        return k

    def discard(self) -> int:
        """Consumer side: drop everything buffered (used on reset); return frames dropped."""
        r = self._read_pos
        w = self._write_pos
        self._read_pos = w
        return w - r

    def reset_low_water(self) -> None:
        """Start a new low-water measurement (call from the consumer or before start)."""
        self.low_water = self.fill

    def stats(self) -> dict:
        """Counters for status replies and benchmarks."""
        return {
            "capacity": self.capacity,
            "fill": self.fill,
            "low_water": self.low_water,
            "frames_written": self._write_pos,
            "frames_read": self._read_pos,
            "underruns": self.underruns,
            "underrun_frames": self.underrun_frames,
        }
