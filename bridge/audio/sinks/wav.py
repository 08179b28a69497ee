"""`--audio wav:PATH`: record the live output to a 16-bit 48 kHz stereo WAV file.

Real-time, not as-fast-as-produced: the file is exactly what a listener on a
sound card would have heard, including when each control change landed and
any underrun (as silence). For offline rendering as fast as the model runs,
use ``mrt-bridge render``.

Crash-safe: the RIFF header's sizes are rewritten every ``HEADER_EVERY_S``
seconds, so a process killed with ``kill -9`` (or a power-cut page cache
flush) leaves a readable file holding all but the last second at most. The
file is locked (``flock``) while recorded: a second daemon pointed at the
same path refuses to start instead of truncating the first one's recording.
The folder must exist (a typo is an error, not a new folder tree).
"""

from __future__ import annotations

import fcntl
import os
import struct
from pathlib import Path

import numpy as np

from ..ring import AudioRing
from .base import SinkUnavailable
from .clocked import DEFAULT_BLOCK, ClockedSink

HEADER_EVERY_S = 1.0
_HEADER = struct.Struct("<4sI4s4sIHHIIHH4sI")  # RIFF, fmt (PCM), data: 44 bytes


def wav_header(data_bytes: int, samplerate: int, channels: int = 2, sampwidth: int = 2) -> bytes:
    """A canonical 44-byte PCM WAV header for ``data_bytes`` of samples."""
    block = channels * sampwidth
    return _HEADER.pack(b"RIFF", 36 + data_bytes, b"WAVE", b"fmt ", 16, 1, channels, samplerate,
                        samplerate * block, block, 8 * sampwidth, b"data", data_bytes)


def check_wav_path(path: str | Path) -> Path:
    """The WAV output path, or ValueError naming what is wrong with it (before anything starts)."""
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"--audio wav:{path}: is a folder; give a file name, e.g. wav:{path / 'take.wav'}")
    parent = path.parent
    if not parent.is_dir():
        raise ValueError(f"--audio wav:{path}: folder {parent} does not exist")
    return path


class WavSink(ClockedSink):
    """Clocked consumer that appends each block to a WAV file (int16, clipped)."""

    name = "wav"

    def __init__(self, ring: AudioRing, path: str | Path, block: int = DEFAULT_BLOCK) -> None:
        super().__init__(ring, block=block)
        self.path = Path(path)
        self._fd: int | None = None
        self._scaled = np.zeros((self.block, 2), np.float32)
        self._pcm = np.zeros((self.block, 2), np.int16)
        self.frames_written = 0
        self._header_at = 0  # frames_written when the header was last rewritten

    def open(self) -> None:
        try:
            check_wav_path(self.path)
        except ValueError as exc:
            raise SinkUnavailable(str(exc), "wav") from None
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise SinkUnavailable(f"cannot write WAV file {self.path}: {exc.strerror or exc}", "wav") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise SinkUnavailable(f"{self.path} is being recorded by another process (another "
                                  "`mrt-bridge serve`?); choose another file", "wav") from None
        os.ftruncate(fd, 0)
        os.write(fd, wav_header(0, self.samplerate))
        self._fd = fd

    def consume(self, block: np.ndarray) -> None:
        np.multiply(block, 32767.0, out=self._scaled)
        np.clip(self._scaled, -32768.0, 32767.0, out=self._scaled)
        np.copyto(self._pcm, self._scaled, casting="unsafe")
        os.write(self._fd, self._pcm.data)
        self.frames_written += block.shape[0]
        if self.frames_written - self._header_at >= HEADER_EVERY_S * self.samplerate:
            self._write_header()

    def _write_header(self) -> None:
        os.pwrite(self._fd, wav_header(self.frames_written * 4, self.samplerate), 0)
        self._header_at = self.frames_written

    def stop(self) -> None:
        super().stop()
        if self._fd is not None:
            self._write_header()
            os.close(self._fd)  # also releases the lock
            self._fd = None

    def status(self) -> dict:
        return {**super().status(), "path": str(self.path), "frames_written": self.frames_written}
