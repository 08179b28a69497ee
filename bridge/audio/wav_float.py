"""32-bit float WAV (WAVE_FORMAT_IEEE_FLOAT) written as a stream and read back, sample-exact.

The standard library's ``wave`` writes integer PCM only; traces that must be
re-encoded bit for bit (live audio in) need the float samples themselves.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

_FLOAT = 3


class FloatWavWriter:
    """Append float32 frames ``[n, channels]``; ``close()`` patches the sizes into the header."""

    def __init__(self, path: Path, rate: int = 48_000, channels: int = 2) -> None:
        self.channels = channels
        self.frames = 0
        self._f = open(path, "wb")  # noqa: SIM115 - closed in close()
        block = 4 * channels
        self._f.write(b"RIFF\0\0\0\0WAVE")
        self._f.write(b"fmt " + struct.pack("<IHHIIHHH", 18, _FLOAT, channels, rate, rate * block, block, 32, 0))
        self._f.write(b"fact\x04\0\0\0\0\0\0\0")
        self._f.write(b"data\0\0\0\0")
        self._header = self._f.tell()

    def write(self, frames: np.ndarray) -> None:
        data = np.ascontiguousarray(frames, "<f4")
        self._f.write(data.tobytes())
        self.frames += data.shape[0]

    def close(self) -> None:
        if self._f.closed:
            return
        size = self.frames * 4 * self.channels
        self._f.seek(4)
        self._f.write(struct.pack("<I", self._header - 8 + size))
        self._f.seek(self._header - 12)
        self._f.write(struct.pack("<I", self.frames))
        self._f.seek(self._header - 4)
        self._f.write(struct.pack("<I", size))
        self._f.close()


def read_float_wav(path: Path) -> tuple[np.ndarray, int]:
    """(float32 [n, channels], rate) of a WAV written by :class:`FloatWavWriter` (or any float32 WAV)."""
    raw = Path(path).read_bytes()
    if raw[:4] != b"RIFF" or raw[8:12] != b"WAVE":
        raise ValueError(f"{path}: not a WAV file")
    pos, fmt = 12, None
    while pos + 8 <= len(raw):
        cid, size = raw[pos:pos + 4], struct.unpack("<I", raw[pos + 4:pos + 8])[0]
        body = raw[pos + 8:pos + 8 + size]
        if cid == b"fmt ":
            fmt = struct.unpack("<HHIIHH", body[:16])
        elif cid == b"data":
            if fmt is None or fmt[0] != _FLOAT or fmt[5] != 32:
                raise ValueError(f"{path}: not 32-bit float samples")
            return np.frombuffer(body, "<f4").reshape(-1, fmt[1]).astype(np.float32), fmt[2]
        pos += 8 + size + (size & 1)
    raise ValueError(f"{path}: no data chunk")
