"""`--audio wav:PATH`: record the live output to a 16-bit 48 kHz stereo WAV file.

Real-time, not as-fast-as-produced: the file is exactly what a listener on a
sound card would have heard, including when each control change landed and
any underrun (as silence). For offline rendering as fast as the model runs,
use ``mrt-bridge render``.
"""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np

from ..ring import AudioRing
from .base import SinkUnavailable
from .clocked import DEFAULT_BLOCK, ClockedSink


class WavSink(ClockedSink):
    """Clocked consumer that appends each block to a WAV file (int16, clipped)."""

    name = "wav"

    def __init__(self, ring: AudioRing, path: str | Path, block: int = DEFAULT_BLOCK) -> None:
        super().__init__(ring, block=block)
        self.path = Path(path)
        self._wav: wave.Wave_write | None = None
        self._scaled = np.zeros((self.block, 2), np.float32)
        self._pcm = np.zeros((self.block, 2), np.int16)
        self.frames_written = 0

    def open(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._wav = wave.open(str(self.path), "wb")  # noqa: SIM115 - closed in stop()
        except OSError as exc:
            raise SinkUnavailable(f"cannot write WAV file {self.path}: {exc.strerror or exc}") from exc
        self._wav.setnchannels(2)
        self._wav.setsampwidth(2)
        self._wav.setframerate(self.samplerate)

    def consume(self, block: np.ndarray) -> None:
        np.multiply(block, 32767.0, out=self._scaled)
        np.clip(self._scaled, -32768.0, 32767.0, out=self._scaled)
        np.copyto(self._pcm, self._scaled, casting="unsafe")
        self._wav.writeframesraw(self._pcm.data)
        self.frames_written += block.shape[0]

    def stop(self) -> None:
        super().stop()
        if self._wav is not None:
            self._wav.close()  # patches the header sizes
            self._wav = None

    def status(self) -> dict:
        return {**super().status(), "path": str(self.path), "frames_written": self.frames_written}
