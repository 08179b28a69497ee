"""What every audio sink provides, and the error raised when one cannot open."""

from __future__ import annotations

import abc

from ..ring import AudioRing

_OPTIONS = {
    "jack": "--audio jack (a running JACK server)",
    "device": "--audio device[:NAME] (a PortAudio output device)",
    "wav": "--audio wav:PATH (record to a file)",
    "null": "--audio null (no sound, real-time pacing)",
}
ALTERNATIVES = "alternatives: " + ", ".join(_OPTIONS.values())


def alternatives(failed: str | None = None) -> str:
    """The other ``--audio`` choices, leaving out the one that just failed."""
    return "alternatives: " + ", ".join(v for k, v in _OPTIONS.items() if k != failed)


class SinkUnavailable(RuntimeError):
    """The requested audio output cannot be opened (no server, no such device...)."""

    def __init__(self, reason: str, failed: str | None = None) -> None:
        super().__init__(f"{reason}; {alternatives(failed)}")


class Sink(abc.ABC):
    """An audio output that consumes the ring at its own (real-time) pace.

    Life cycle: ``open()`` (may raise :class:`SinkUnavailable`; fixes
    ``samplerate``), the producer fills the ring, ``start()``, ... ``stop()``.
    """

    name: str = "sink"
    #: Rate the ring must be filled at; known after ``open()``.
    samplerate: int = 48_000

    def __init__(self, ring: AudioRing) -> None:
        self.ring = ring
        #: Set (never cleared) when the output died underneath us, with the reason.
        self.failed: str | None = None

    @abc.abstractmethod
    def open(self) -> None:
        """Acquire the output; raise SinkUnavailable with a clear reason if impossible."""

    @abc.abstractmethod
    def start(self) -> None:
        """Start consuming the ring (call once the producer has filled it)."""

    @abc.abstractmethod
    def stop(self) -> None:
        """Stop consuming and release the output. Idempotent."""

    def poll(self) -> None:  # noqa: B027 - optional hook, most sinks need nothing
        """Called by the daemon every 0.2 s from its main thread (e.g. to reconnect); default: nothing."""

    def latency_frames(self) -> int:
        """Extra output latency beyond the ring, in sample frames (one block, typically)."""
        return 0

    def status(self) -> dict:
        """Sink-specific figures for the status reply."""
        return {"sink": self.name, "samplerate": self.samplerate}
