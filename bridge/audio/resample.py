"""Streaming sample-rate conversion, used only when a sink cannot run at 48 kHz.

Runs in the frame-loop thread (the producer), never in an audio callback:
the ring is filled at the sink's rate, so callbacks stay plain copies.
Linear interpolation across frame boundaries (state carried between calls).
It is a fallback for devices that refuse 48 kHz, not a mastering resampler:
linear interpolation attenuates the top octave slightly and aliases a little
when downsampling.
"""

from __future__ import annotations

import numpy as np


class LinearResampler:
    """Convert a stream of ``(n, channels)`` float32 blocks from ``in_rate`` to ``out_rate``."""

    def __init__(self, in_rate: int, out_rate: int, channels: int = 2) -> None:
        if in_rate <= 0 or out_rate <= 0:
            raise ValueError(f"sample rates must be positive, got {in_rate} -> {out_rate}")
        self.in_rate = int(in_rate)
        self.out_rate = int(out_rate)
        self.step = in_rate / out_rate  # input samples per output sample
        self._prev = np.zeros((1, channels), np.float32)  # last input sample of the previous block
        self._pos = 0.0  # position of the next output sample, relative to _prev (index 0)

    @property
    def identity(self) -> bool:
        return self.in_rate == self.out_rate

    def process(self, block: np.ndarray) -> np.ndarray:
        """Return the output samples that ``block`` completes (length varies by ±1)."""
        if self.identity:
            return block
        x = np.concatenate([self._prev, block.astype(np.float32, copy=False)])
        last = x.shape[0] - 1  # need idx+1 <= last
        count = int(np.floor((last - self._pos) / self.step)) + 1 if self._pos < last else 0
        t = self._pos + self.step * np.arange(count)
        t = t[t < last]
        i = t.astype(np.int64)
        frac = (t - i)[:, None].astype(np.float32)
        y = x[i] * (1.0 - frac) + x[i + 1] * frac
        next_pos = (t[-1] + self.step) if t.size else self._pos
        self._pos = next_pos - last  # re-base on the new _prev (x[last])
        self._prev = x[last:last + 1].copy()
        return y.astype(np.float32, copy=False)
