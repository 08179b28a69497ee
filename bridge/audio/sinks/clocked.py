"""A consumer thread that reads the ring in fixed blocks on a real-time clock.

Stands in for a sound card's callback where there is none (null and WAV
sinks), so that underrun and latency figures mean the same thing as on a
device. Deadlines are absolute (``start + k * period``), so timing error does
not accumulate; if the thread falls behind by more than a few blocks it
re-anchors instead of bursting.
"""

from __future__ import annotations

import threading
import time

import numpy as np

from ..ring import AudioRing
from .base import Sink

DEFAULT_BLOCK = 1024


class ClockedSink(Sink):
    """Base for sinks driven by a thread at ``samplerate / block`` Hz."""

    def __init__(self, ring: AudioRing, block: int = DEFAULT_BLOCK, samplerate: int = 48_000) -> None:
        super().__init__(ring)
        self.block = int(block)
        self.samplerate = int(samplerate)
        self._out = np.zeros((self.block, 2), np.float32)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.blocks = 0
        self.late_blocks = 0  # blocks delivered more than one period late (host too slow)

    def open(self) -> None:  # nothing to acquire by default
        pass

    def consume(self, block: np.ndarray) -> None:
        """Called from the clock thread with each block read from the ring."""

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"{self.name}-clock", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        period = self.block / self.samplerate
        t0 = time.monotonic()
        k = 0
        while not self._stop.is_set():
            deadline = t0 + k * period
            now = time.monotonic()
            if deadline > now:
                if self._stop.wait(deadline - now):
                    break
            elif now - deadline > 4 * period:
                self.late_blocks += 1
                t0, k = now, 0  # re-anchor rather than burst to catch up
            self.ring.read_into(self._out)
            self.consume(self._out)
            self.blocks += 1
            k += 1

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
            self._thread = None

    def latency_frames(self) -> int:
        return self.block

    def status(self) -> dict:
        return {**super().status(), "block": self.block, "late_blocks": self.late_blocks}
