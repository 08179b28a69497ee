"""The daemon's control-to-ear latency: what it states in /status and tells JACK.

A change waits for the next frame to be produced (0..1 frame: frames are made
when the ring drops below ``buffer_frames``), is stepped by the model, then
plays after the ``frames_ahead - 1`` to ``frames_ahead`` frames queued ahead
of it (``frames_ahead`` = ``buffer_frames`` + the frame the codec thread is
decoding when it overlaps the model) and at most one audio block; the sound card's playback latency (JACK
reports it for the physical port we feed) comes on top. `mrt-bridge latency`
measures the same path end to end (README, "Latency").
"""

from __future__ import annotations

from bridge import FRAME_MS, FRAME_SAMPLES, SAMPLE_RATE


def internal_frames(frames_ahead: int, block: int, rate: int) -> tuple[int, int]:
    """(min, max) sample frames at ``rate`` from a control change to our output ports (JACK's view)."""
    per_frame = FRAME_SAMPLES * rate // SAMPLE_RATE
    return (frames_ahead - 1) * per_frame, frames_ahead * per_frame + block


def control_latency(frames_ahead: int, step_ms: float, block: int, rate: int, playback_ms: float = 0.0) -> dict:
    """Expected control-to-ear latency (ms) and its range, for /status."""
    lo, hi = internal_frames(frames_ahead, block, rate)
    lo_ms = 1000.0 * lo / rate + step_ms + playback_ms
    hi_ms = 1000.0 * hi / rate + step_ms + playback_ms
    return {"control_to_ear_ms": round((lo_ms + hi_ms) / 2, 1), "range_ms": [round(lo_ms, 1), round(hi_ms, 1)],
            "frames_ahead_ms": round(frames_ahead * FRAME_MS, 1), "block_ms": round(1000.0 * block / rate, 2),
            "playback_ms": round(playback_ms, 2)}
