"""Click-free output gain: volume, mute, pause, the MIDI gate and engine resets, per sample.

The envelopes follow upstream's real-time runner (core/src/realtime_runner.cpp
and include/magentart/realtime_runner.h):

- volume x mute (and pause): a one-pole smoother with a 10 ms time constant;
- the MIDI gate: a one-pole reaching 99 % of its target in 40 ms when opening
  (attack, 1920 samples) and in 1 s when closing (release, 48000 samples);
- after an engine reset the output fades in over 40 ms (99 % in 1920 samples).

Within one frame every target is constant, so each one-pole is evaluated in
closed form ``g[n] = t + (g0 - t) * a**(n + 1)`` from powers computed once:
processing a frame allocates nothing. An envelope within ``SNAP`` of its
target at the end of a frame jumps to it, so a mute ends in exact silence
after at most ``MUTE_SETTLE_FRAMES`` frames.
"""

from __future__ import annotations

import math

import numpy as np

from bridge import FRAME_SAMPLES, SAMPLE_RATE

SMOOTH_TAU_S = 0.010
GATE_ATTACK_SAMPLES = 1920.0
GATE_RELEASE_SAMPLES = 48000.0
RESET_ATTACK_SAMPLES = 1920.0
# ln(100): upstream's attack/release lengths are the time to reach 99 % of the target.
_LN_100 = 4.60517
SNAP = 1e-4
# Loudest gain the controls allow (+12 dB), for the settle bound below.
MAX_GAIN = 10 ** (12 / 20)
MUTE_SETTLE_FRAMES = math.ceil(SMOOTH_TAU_S * SAMPLE_RATE * math.log(MAX_GAIN / SNAP) / FRAME_SAMPLES) + 1


class OnePole:
    """One-pole envelope with separate rising and falling coefficients (``a`` = 1 - alpha)."""

    def __init__(self, n: int, a_up: float, a_down: float, value: float) -> None:
        exps = np.arange(1, n + 1, dtype=np.float64)
        self._up = (a_up ** exps).astype(np.float32)
        self._down = (a_down ** exps).astype(np.float32)
        self.value = float(value)

    def render(self, target: float, out: np.ndarray) -> None:
        """Fill ``out`` (float32, length n) with the envelope moving toward ``target``."""
        g0 = self.value
        if g0 == target:
            out.fill(target)
            return
        np.multiply(self._up if target > g0 else self._down, np.float32(g0 - target), out=out)
        out += np.float32(target)
        end = float(out[-1])
        self.value = target if abs(end - target) < SNAP else end


def _coef_tau(samples: float) -> float:
    return math.exp(-1.0 / samples)


def _coef_99(samples: float) -> float:
    return math.exp(-_LN_100 / samples)


class OutputGain:
    """Applies volume/mute/pause smoothing, the MIDI gate and the reset fade-in to stereo frames."""

    def __init__(self, frame_samples: int = FRAME_SAMPLES, rate: int = SAMPLE_RATE) -> None:
        scale = rate / SAMPLE_RATE
        smooth = _coef_tau(SMOOTH_TAU_S * rate)
        self._smooth = OnePole(frame_samples, smooth, smooth, 1.0)
        self._gate = OnePole(frame_samples, _coef_99(GATE_ATTACK_SAMPLES * scale),
                             _coef_99(GATE_RELEASE_SAMPLES * scale), 1.0)
        reset = _coef_99(RESET_ATTACK_SAMPLES * scale)
        self._reset = OnePole(frame_samples, reset, reset, 1.0)
        self._g = np.zeros(frame_samples, np.float32)
        self._tmp = np.zeros(frame_samples, np.float32)
        self._g_col = self._g[:, None]  # a view made once: broadcasting over both channels
        self._out = np.zeros((frame_samples, 2), np.float32)

    def reset(self) -> None:
        """The engine restarted: fade the new stream in (40 ms) instead of jumping into it."""
        self._reset.value = 0.0

    def is_silent(self) -> bool:
        """True when the volume/mute/pause envelope has reached exactly 0."""
        return self._smooth.value == 0.0

    def needs_audio(self, paused: bool) -> bool:
        """Whether this frame needs the model's audio: not paused, or still fading out."""
        return not paused or not self.is_silent()

    def process(self, audio: np.ndarray, volume: float, *, muted: bool = False, paused: bool = False,
                gated: bool = False) -> np.ndarray:
        """Return ``audio`` (shape (n, 2)) times the envelopes; the result is an internal buffer."""
        target = 0.0 if (muted or paused) else float(volume)
        smooth, gate, reset = self._smooth, self._gate, self._reset
        if smooth.value == target == 1.0 and gate.value == 1.0 and not gated and reset.value == 1.0:
            return audio  # the common case: unity gain, nothing moving
        g, tmp = self._g, self._tmp
        smooth.render(target, g)
        gate.render(0.0 if gated else 1.0, tmp)
        g *= tmp
        reset.render(1.0, tmp)
        g *= tmp
        np.multiply(audio, self._g_col, out=self._out)
        return self._out
