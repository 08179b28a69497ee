"""Audio sinks and the ``--audio`` spec parser.

``jack`` | ``device`` | ``device:NAME`` | ``wav:PATH`` | ``null``
"""

from __future__ import annotations

from ..ring import AudioRing
from .base import ALTERNATIVES, Sink, SinkUnavailable

__all__ = ["ALTERNATIVES", "Sink", "SinkUnavailable", "make_sink", "parse_audio_spec"]


def parse_audio_spec(spec: str) -> tuple[str, str | None]:
    """Split an ``--audio`` value into (kind, argument); raise ValueError if unknown."""
    kind, _, arg = spec.partition(":")
    kind = kind.strip().lower()
    if kind in ("jack", "null") and not arg:
        return kind, None
    if kind == "device":
        return kind, arg or None
    if kind == "wav":
        if not arg:
            raise ValueError("--audio wav:PATH needs a file path, e.g. wav:session.wav")
        return kind, arg
    raise ValueError(f"unknown --audio {spec!r}; expected jack, device[:NAME], wav:PATH or null")


def make_sink(spec: str, ring: AudioRing, *, jack_autoconnect: bool = True) -> Sink:
    """Construct (not open) the sink an ``--audio`` value names."""
    kind, arg = parse_audio_spec(spec)
    if kind == "jack":
        from .jack_sink import JackSink
        return JackSink(ring, autoconnect=jack_autoconnect)
    if kind == "device":
        from .device import DeviceSink
        return DeviceSink(ring, device_name=arg)
    if kind == "wav":
        from .wav import WavSink
        return WavSink(ring, arg)
    from .null import NullSink
    return NullSink(ring)
