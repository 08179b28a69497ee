"""Audio to the form MusicCoCa wants: mono float32 at 16 kHz."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np


def to_mono(samples: np.ndarray) -> np.ndarray:
    """Average channels: accepts ``[n]`` or ``[n, channels]``."""
    x = np.asarray(samples, np.float32)
    if x.ndim == 1:
        return x
    if x.ndim != 2:
        raise ValueError(f"audio: expected [samples] or [samples, channels], got shape {x.shape}")
    if x.shape[1] > 16 and x.shape[0] <= 16:
        raise ValueError(f"audio: shape {x.shape} looks like [channels, samples]; transpose it")
    return x.mean(axis=1)


def resample(x: np.ndarray, rate_in: int, rate_out: int) -> np.ndarray:
    """Band-limited resampling by spectrum truncation/zero-padding (FFT)."""
    if rate_in <= 0 or rate_out <= 0:
        raise ValueError(f"sample rates must be positive, got {rate_in} -> {rate_out}")
    if rate_in == rate_out or x.size == 0:
        return x.astype(np.float32, copy=False)
    n_out = round(x.size * rate_out / rate_in)
    spec = np.fft.rfft(x.astype(np.float64))
    keep = min(spec.size, n_out // 2 + 1)
    out_spec = np.zeros(n_out // 2 + 1, np.complex128)
    out_spec[:keep] = spec[:keep]
    return (np.fft.irfft(out_spec, n_out) * (n_out / x.size)).astype(np.float32)


def to_mono_16k(samples: np.ndarray, sample_rate: int, target_rate: int = 16000) -> np.ndarray:
    """Any channels/sample rate in; mono float32 at ``target_rate`` out."""
    x = to_mono(samples)
    if not np.isfinite(x).all():
        raise ValueError("audio contains NaN or infinite samples")
    return resample(x, int(sample_rate), target_rate)


def read_wav(path: Path) -> tuple[np.ndarray, int]:
    """Read a PCM WAV (8/16/24/32-bit) as float32 ``[n, channels]`` and its rate."""
    with wave.open(str(path), "rb") as w:
        width, channels, rate = w.getsampwidth(), w.getnchannels(), w.getframerate()
        raw = w.readframes(w.getnframes())
    if width == 1:
        data = (np.frombuffer(raw, np.uint8).astype(np.float32) - 128) / 128
    elif width == 2:
        data = np.frombuffer(raw, "<i2").astype(np.float32) / 32768
    elif width == 3:
        b = np.frombuffer(raw, np.uint8).reshape(-1, 3).astype(np.int32)
        v = b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)
        data = np.where(v >= 1 << 23, v - (1 << 24), v).astype(np.float32) / (1 << 23)
    elif width == 4:
        data = np.frombuffer(raw, "<i4").astype(np.float32) / (1 << 31)
    else:
        raise ValueError(f"{path}: unsupported WAV sample width {width}")
    return data.reshape(-1, channels), rate
