"""Click-free gain: the largest sample step at any control change is bounded (issue 10, item 5)."""

from __future__ import annotations

import numpy as np
import pytest

from bridge import FRAME_SAMPLES, SAMPLE_RATE
from bridge.audio.gain import MUTE_SETTLE_FRAMES, OutputGain
from bridge.control.state import ControlState

# A full-scale DC input makes any gain jump show as a sample step of the same size; the
# envelopes' first step is alpha = 1 - exp(-1/480) ~ 0.0021 (10 ms smoother), 0.0024
# (40 ms gate attack), so 0.005 of full scale bounds every change below.
MAX_STEP = 0.005
DC = np.ones((FRAME_SAMPLES, 2), np.float32)


def run(gain: OutputGain, frames: int, **kw) -> np.ndarray:
    return np.concatenate([gain.process(DC, **kw).copy() for _ in range(frames)])


def max_step(x: np.ndarray, before: float) -> float:
    return float(np.abs(np.diff(np.concatenate([[before], x[:, 0]]))).max())


@pytest.mark.parametrize("change", ["mute", "unmute", "volume", "pause", "resume", "gate_close",
                                    "gate_open", "reset"])
def test_largest_sample_step_at_a_change_is_bounded(change: str) -> None:
    g = OutputGain()
    start = {"mute": {}, "unmute": {"muted": True}, "volume": {}, "pause": {},
             "resume": {"paused": True}, "gate_close": {}, "gate_open": {"gated": True},
             "reset": {}}[change]
    after = {"mute": {"muted": True}, "unmute": {}, "volume": {"volume": 3.98}, "pause": {"paused": True},
             "resume": {}, "gate_close": {"gated": True}, "gate_open": {}, "reset": {}}[change]
    before = run(g, 60, volume=1.0, **start)  # settled (60 frames > the 1 s gate release)
    if change == "reset":
        g.reset()
    out = run(g, 30, **({"volume": 1.0} | after))
    # A reset starts a new stream: it fades in from silence (the old one ends where it was, as upstream).
    step = max_step(out, 0.0 if change == "reset" else float(before[-1, 0]))
    assert step <= MAX_STEP * max(1.0, out.max()), (change, step)
    # ... and the change really happens: the envelope reaches its target.
    want = {"mute": 0.0, "unmute": 1.0, "volume": 3.98, "pause": 0.0, "resume": 1.0,
            "gate_close": 0.0, "gate_open": 1.0, "reset": 1.0}[change]
    assert abs(out[-1, 0] - want) < 0.02 * max(want, 1.0), (change, out[-1, 0])


def test_gate_times_are_upstreams() -> None:
    """Gate: 99 % open after 40 ms (attack), 99 % closed after 1 s (release)."""
    g = OutputGain()
    closing = run(g, 26, volume=1.0, gated=True)[:, 0]
    assert closing[SAMPLE_RATE - 1] == pytest.approx(0.01, rel=0.02)
    assert closing[SAMPLE_RATE // 2] > 0.05  # a slow release, not a cut
    opening = run(g, 1, volume=1.0)[:, 0]
    assert opening[1919] == pytest.approx(0.99, abs=0.002)


def test_mute_ends_in_exact_silence_and_unity_is_untouched() -> None:
    g = OutputGain()
    noise = np.random.default_rng(0).uniform(-1, 1, (FRAME_SAMPLES, 2)).astype(np.float32)
    assert g.process(noise, 1.0) is noise  # unity, nothing moving: the frame passes as is
    outs = [g.process(noise, 1.0, muted=True).copy() for _ in range(MUTE_SETTLE_FRAMES + 1)]
    assert outs[0].any() and not outs[-1].any()
    assert g.is_silent() and not g.needs_audio(paused=True) and g.needs_audio(paused=False)


def test_volume_db_maps_to_linear_gain() -> None:
    s = ControlState()
    s.set_volume_db(-6.0)
    assert s.snapshot(0).volume == pytest.approx(0.5012, abs=1e-4)
    s.set_volume_db(12.0)
    assert s.snapshot(1).volume == pytest.approx(3.981, abs=1e-3)
    for bad in (-61.0, 12.5, float("nan")):
        with pytest.raises(ValueError, match="volume dB"):
            s.set_volume_db(bad)
    assert s.snapshot(2).volume == pytest.approx(3.981, abs=1e-3)
