"""`--audio null`: discards audio, but at real-time pace like a sound card would."""

from __future__ import annotations

from .clocked import ClockedSink


class NullSink(ClockedSink):
    """Reads the ring in 1024-frame blocks at 48 kHz and throws the audio away."""

    name = "null"
