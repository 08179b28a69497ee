"""Where the beat grid comes from: the config, OSC, MIDI clock or JACK transport.

``--tempo-source`` (or ``[tempo] source`` in the mapping file) picks one:

- ``config``: the file's ``[tempo] bpm`` / ``beats_per_bar``, fixed; ``/tempo``
  and ``/tempo/sync`` are refused.
- ``osc`` (default; today's behaviour): starts at the file's tempo, ``/tempo``
  and ``/tempo/sync`` move it. The grid runs on the 25 Hz frame clock.
- ``midi-clock``: a DAW's MIDI clock on ``mrt-bridge:midi_in`` (24 clocks per
  quarter note, Start / Continue / Stop, Song Position Pointer).
- ``jack-transport``: the JACK transport's bar/beat/tick from its timebase
  master (Ardour, Carla, ...), rolling or stopped.

The two external sources implement :class:`TempoSource`: ``read(at)``
returns the grid position expected at monotonic time ``at`` (the game mapper
asks for the time the frame it is making will be heard, so quantised changes
land on the DAW's beat in the audio). While the transport is stopped there
are no ticks and quantised changes wait for it to roll.
"""

from __future__ import annotations

import collections
import logging
import math
import threading
import time
from dataclasses import dataclass
from typing import Protocol

log = logging.getLogger(__name__)

SOURCES = ("config", "osc", "midi-clock", "jack-transport")
DEFAULT_SOURCE = "osc"
EXTERNAL = ("midi-clock", "jack-transport")

PPQN = 24  # MIDI clocks per quarter note
CLOCK, START, CONTINUE, STOP, SONG_POSITION = 0xF8, 0xFA, 0xFB, 0xFC, 0xF2
CLOCK_STATUS = frozenset({CLOCK, START, CONTINUE, STOP, SONG_POSITION})
CLOCK_LOST_S = 0.5  # no clock for this long while "rolling": treat the transport as stopped


@dataclass(frozen=True)
class TempoReading:
    """The grid at one instant: tempo, position in beats from the song start, rolling or not."""

    bpm: float
    beat: float
    rolling: bool
    beats_per_bar: int | None = None


class TempoSource(Protocol):
    """An external beat grid (MIDI clock, JACK transport)."""

    name: str

    def read(self, at: float) -> TempoReading | None:
        """The grid at monotonic time ``at`` (may be in the near future); None until known."""
        ...

    def close(self) -> None: ...


def check_source(name: str) -> str:
    """Validate a tempo source name (ValueError listing the choices)."""
    if name not in SOURCES:
        raise ValueError(f"unknown tempo source {name!r}; expected one of {', '.join(SOURCES)}")
    return name


class MidiClock:
    """Tempo and position from MIDI real-time messages (feed it raw bytes with :meth:`feed`).

    Position counts clocks from the song start (Song Position Pointer sets it
    in sixteenths, 6 clocks each; Start sets 0). As the MIDI spec says, the
    first clock after Start/Continue is the position itself; each later clock
    advances it by 1/24 beat. Tempo comes from a least-squares line through the
    arrival times of the last ``window`` clocks (two beats by default), which
    smooths arrival jitter (a JACK period quantises arrival times, a loaded
    machine delays the thread that drains them) while following a tempo change
    within two beats. Between clocks the position is extrapolated at that tempo.
    """

    name = "midi-clock"

    def __init__(self, window: int = 2 * PPQN, clock=time.monotonic) -> None:
        self._now = clock
        self._lock = threading.Lock()
        self._times: collections.deque[float] = collections.deque(maxlen=window + 1)
        self._count = 0  # position in clocks of the last clock received
        self._last_t: float | None = None
        self._rolling = False
        self._armed = False  # Start/Continue seen: the next clock sits at _count
        self.clocks = 0
        self.starts = 0
        self.stops = 0

    def feed(self, raw: list[int] | bytes, t: float | None = None) -> bool:
        """Apply one MIDI message; True if it was a clock/transport message (consumed)."""
        if not raw or raw[0] not in CLOCK_STATUS:
            return False
        t = self._now() if t is None else t
        status = raw[0]
        with self._lock:
            if status == CLOCK:
                self.clocks += 1
                if not self._rolling:
                    return True
                if self._armed:
                    self._armed = False
                    self._times.clear()
                else:
                    self._count += 1
                self._times.append(t)
                self._last_t = t
            elif status == START:
                self.starts += 1
                self._count, self._rolling, self._armed = 0, True, True
            elif status == CONTINUE:
                self._rolling, self._armed = True, True
            elif status == STOP:
                self.stops += 1
                self._rolling = False
            elif len(raw) >= 3:  # song position pointer: 14-bit count of sixteenths
                self._count = ((raw[2] & 0x7F) << 7 | (raw[1] & 0x7F)) * (PPQN // 4)
                self._armed = True
        return True

    def bpm(self) -> float | None:
        """Smoothed tempo, or None before two clocks."""
        with self._lock:
            return self._bpm_locked()

    def _bpm_locked(self) -> float | None:
        n = len(self._times)
        if n < 2:
            return None
        t0 = self._times[0]
        mean_x, mean_y = (n - 1) / 2, sum(t - t0 for t in self._times) / n
        cov = sum((i - mean_x) * (t - t0 - mean_y) for i, t in enumerate(self._times))
        interval = cov / sum((i - mean_x) ** 2 for i in range(n))
        return 60.0 / (PPQN * interval) if interval > 0 else None

    def read(self, at: float) -> TempoReading | None:
        with self._lock:
            bpm = self._bpm_locked()
            pos = self._count / PPQN
            if bpm is None or self._last_t is None:
                return TempoReading(bpm or 0.0, pos, False) if self.clocks else None
            rolling = self._rolling and not self._armed and self._now() - self._last_t < CLOCK_LOST_S
            if rolling:
                pos += max(0.0, at - self._last_t) * bpm / 60.0
            return TempoReading(bpm, pos, rolling)

    def close(self) -> None:
        pass


class JackTransport:
    """Tempo and position from the JACK transport (BBT from the timebase master).

    ``client``: an open ``jack.Client`` (the audio sink's, so no extra client);
    None opens a private one named ``mrt-bridge-transport``. Without a
    timebase master there is no BBT: the reading is None (no grid).
    """

    name = "jack-transport"

    def __init__(self, client=None, clock=time.monotonic) -> None:
        import jack

        self._jack = jack
        self._own = client is None
        if client is None:
            try:
                client = jack.Client("mrt-bridge-transport", no_start_server=True)
            except jack.JackOpenError as exc:
                raise RuntimeError(f"--tempo-source jack-transport needs a running JACK server ({exc})") from None
        self.client = client
        self._now = clock
        self._warned = False

    def read(self, at: float) -> TempoReading | None:
        jack = self._jack
        state, pos = self.client.transport_query()
        if "bar" not in pos:
            if not self._warned:
                log.warning("JACK transport has no bar/beat information (no timebase master): no beat grid")
                self._warned = True
            return None
        rolling = state == jack.ROLLING
        bpb = max(1, int(round(pos["beats_per_bar"])))
        beat = (pos["bar"] - 1) * bpb + (pos["beat"] - 1) + pos["tick"] / max(pos["ticks_per_beat"], 1e-9)
        bpm = float(pos["beats_per_minute"])
        if rolling:
            # the position is the current cycle's start; add the time since then and the look-ahead
            since = self.client.frames_since_cycle_start / self.client.samplerate
            beat += (since + max(0.0, at - self._now())) * bpm / 60.0
        return TempoReading(bpm, beat, rolling, bpb)

    def close(self) -> None:
        if self._own:
            try:
                self.client.close()
            except Exception:  # noqa: BLE001 - server may be gone
                log.debug("closing transport client", exc_info=True)


def phase(reading_beat: float, beats_per_bar: int) -> dict:
    """Bar, beat-in-bar and phase (0..1 within the beat) of a beat position, for /status."""
    b = math.floor(reading_beat + 1e-9)
    bar, in_bar = divmod(b, beats_per_bar)
    return {"bar": int(bar), "beat_in_bar": int(in_bar), "phase": round(reading_beat - b, 4)}
