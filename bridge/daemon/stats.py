"""Rolling step-time percentiles, written by the frame loop, read by status queries."""

from __future__ import annotations

import time

import numpy as np

from bridge import FRAME_MS


class RollingTimes:
    """Last ``size`` durations (ms) in a preallocated array; percentiles on demand.

    One writer (the frame loop). Readers copy the array, so a concurrent
    write at worst mixes one old and one new value into a reading.
    """

    def __init__(self, size: int = 1500) -> None:
        self._values = np.zeros(size, np.float64)
        self._count = 0
        self.maximum = 0.0

    def add(self, value_ms: float) -> None:
        self._values[self._count % self._values.shape[0]] = value_ms
        self._count += 1
        self.maximum = max(self.maximum, value_ms)

    @property
    def count(self) -> int:
        return self._count

    def percentiles(self, qs: tuple[float, ...] = (50, 95, 99)) -> dict[str, float | None]:
        """``{"p50": ..., "p95": ..., "p99": ...}`` over the window (None before any value)."""
        n = min(self._count, self._values.shape[0])
        if n == 0:
            return {f"p{q:g}": None for q in qs}
        window = self._values[:n].copy()
        return {f"p{q:g}": round(float(v), 3) for q, v in zip(qs, np.percentile(window, qs))}


class GrowthWarning:
    """Says when a growing counter (underruns) deserves a log line: it changed since the last
    line, and at most once per ``every_s`` seconds, so a struggling model does not flood the log."""

    def __init__(self, every_s: float = 10.0) -> None:
        self.every_s = every_s
        self._last = 0
        self._next = 0.0

    def due(self, count: int) -> bool:
        if count == self._last or time.monotonic() < self._next:
            return False
        self._last, self._next = count, time.monotonic() + self.every_s
        return True


def underrun_advice(step_ms: dict, buffer_frames: int, slower_fix: str,
                    burst_fix: str = "try a larger --buffer-frames") -> str:
    """Why audio underruns, from the frame step times, and what helps: a larger buffer rides
    out slow bursts, but not a step slower than the frame it makes (``slower_fix`` then)."""
    p50 = step_ms.get("p50")
    if p50 is not None and p50 > FRAME_MS:
        return (f"the model is slower than real time here (step p50 {p50:.1f} ms per {FRAME_MS:.0f} ms "
                f"frame), so a larger --buffer-frames only delays the gaps; {slower_fix}")
    return (f"the model is not keeping up (step p99 {step_ms.get('p99')} ms, buffer "
            f"{buffer_frames * FRAME_MS:.0f} ms); {burst_fix}")


def daemon_status(started_at: float, model, engine, loop: dict | None, frames_key: str = "frames") -> dict:
    """The status head every daemon reports: uptime, model, provider, its loop's figures, and
    the flat keys the OSC ``/status/reply`` puts in its leading arguments."""
    out: dict = {
        "uptime_s": round(time.monotonic() - started_at, 1),
        "model": str(model),
        "synthetic": bool(getattr(engine, "is_synthetic", False)),
        "provider": getattr(engine, "provider", None),
    }
    if loop is not None:
        out.update(loop)
        out.update(frame=loop[frames_key], step_ms_p50=loop["step_ms"]["p50"],
                   step_ms_p99=loop["step_ms"]["p99"], ring_fill=loop["ring_fill_ms"])
    return out
