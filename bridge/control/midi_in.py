"""MIDI input → ControlState notes, drums and CC-mapped parameters.

Message handling (:class:`MidiHandler`, one entry point taking raw MIDI bytes)
is separate from the two transports that feed it:

- :class:`MidiInput`: python-rtmidi (JACK or ALSA API). Opens a virtual input
  port (``mrt-bridge:midi_in`` by default) and/or connects to an existing
  output port whose name contains a given string; messages are handled in
  rtmidi's callback thread. Used when the audio does not go through JACK.
- :class:`JackClientMidiInput`: a MIDI port registered on a JACK client that
  already exists (the JACK audio sink's ``mrt-bridge``), so audio and MIDI
  share one client and the port is exactly ``mrt-bridge:midi_in``. The JACK
  process callback only copies event bytes into a preallocated
  single-producer/single-consumer :class:`MidiEventRing` (no locks, no
  waiting; overflow is counted and dropped); a normal thread drains the ring
  into the handler.

What the handler does with a message:

- note on/off on any channel but the drum channel → pitch states (velocity-0
  note-on is note-off); each channel is its own voice, so a pitch held on two
  channels is released by the second note-off;
- note on/off on the drum channel (1-based, default 10) → drum notes (drum
  state PLAY for at least the next frame and while held);
- CC 120 (all sound off) and CC 123 (all notes off) → that channel's notes
  off (on the drum channel: the drum notes); MIDI reset (0xFF) → all notes
  off; CC 121 (reset controllers) is ignored;
- any other CC listed in the CC map → a parameter, scaled from 0..127 to the
  target's range.

Bad or unsupported MIDI is logged once per kind and ignored.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol, Self

import mido
import rtmidi

from bridge.control import state as st
from bridge.control.mapping import GameMapper
from bridge.control.state import ControlState

log = logging.getLogger(__name__)

APIS = {"jack": rtmidi.API_UNIX_JACK, "alsa": rtmidi.API_LINUX_ALSA}
CC_ALL_SOUND_OFF, CC_RESET_CONTROLLERS, CC_ALL_NOTES_OFF = 120, 121, 123
# Status bytes dropped before handling, as rtmidi's ignore_types(sysex, timing, active_sense) does.
FILTERED_STATUS = frozenset({0xF0, 0xF1, 0xF8, 0xFE})


@dataclass(frozen=True)
class CcTarget:
    """A CC number's target parameter and the range 0..127 maps onto.

    ``param``: ``guidance.style|notes|drums``, ``temperature``, ``top_k``,
    ``volume``, ``slot.N.weight`` (N 0..5) or ``game.NAME`` (an RTPC).
    """

    param: str
    lo: float
    hi: float


DEFAULT_CC_MAP: dict[int, CcTarget] = {7: CcTarget("volume", 0.0, 1.0)}


def parse_cc_map(table: Mapping[str, object]) -> dict[int, CcTarget]:
    """Parse a TOML ``[midi.cc]`` table: ``"1" = { param = "guidance.style", min = 0, max = 7 }``."""
    out: dict[int, CcTarget] = {}
    for key, spec in table.items():
        where = f"midi.cc.{key}"
        if not str(key).isdigit() or not 0 <= int(key) <= 119:
            raise ValueError(f"{where}: CC number must be 0..119 (120-127 are channel mode messages)")
        if not isinstance(spec, Mapping) or not isinstance(spec.get("param"), str):
            raise ValueError(f"{where}: expected a table with param, min, max")  # noqa: TRY004
        extra = set(spec) - {"param", "min", "max"}
        if extra:
            raise ValueError(f"{where}: unknown key(s) {sorted(extra)}")
        lo, hi = spec.get("min", 0.0), spec.get("max", 1.0)
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
                   for v in (lo, hi)):
            raise ValueError(f"{where}: min and max must be numbers")
        param = str(spec["param"])
        _check_param(param, where)
        out[int(key)] = CcTarget(param, float(lo), float(hi))
    return out


def _check_param(param: str, where: str) -> None:
    simple = {"guidance.style", "guidance.notes", "guidance.drums", "temperature", "top_k", "volume"}
    if param in simple or param.startswith("game."):
        return
    parts = param.split(".")
    if len(parts) == 3 and parts[0] == "slot" and parts[2] == "weight" and parts[1].isdigit() \
            and 0 <= int(parts[1]) < st.NUM_SLOTS:
        return
    raise ValueError(f"{where}: unknown param {param!r}; expected one of {sorted(simple)}, "
                     "slot.N.weight or game.NAME")


class MidiHandler:
    """Applies MIDI messages to ControlState (and mapper RTPCs for ``game.*`` CCs); no transport.

    ``drum_channel`` is 1-based (None: no drum channel). Thread-safe as far as
    ControlState and GameMapper are; the counters are informational.
    """

    def __init__(
        self,
        state: ControlState,
        drum_channel: int | None = 10,
        cc_map: Mapping[int, CcTarget] | None = None,
        mapper: GameMapper | None = None,
    ) -> None:
        if drum_channel is not None and not 1 <= drum_channel <= 16:
            raise ValueError(f"drum channel {drum_channel}: expected 1..16 (or none)")
        self._state = state
        self._mapper = mapper
        self._drum = None if drum_channel is None else drum_channel - 1  # mido channels are 0-based
        self._cc = dict(DEFAULT_CC_MAP if cc_map is None else cc_map)
        self._logged: set[str] = set()
        self.received = 0
        self.ignored = 0
        self._taps: list[Callable[[list[int]], bool]] = []
        self.timing = False  # let MIDI clock (0xF8) through the transports' filters

    def add_tap(self, tap: Callable[[list[int]], bool], timing: bool = False) -> None:
        """Offer every raw message to ``tap`` first (MIDI clock, MIDI learn); True consumes it.

        ``timing``: the tap wants MIDI clock, so transports stop filtering it. Add taps before ``open``.
        """
        self._taps.append(tap)
        self.timing = self.timing or timing

    def bind_cc(self, cc: int, target: CcTarget) -> None:
        """Map ``cc`` to ``target`` from now on (MIDI learn)."""
        self._cc[int(cc)] = target

    def is_drum_channel(self, channel: int) -> bool:
        """Whether a (0-based) channel is the drum channel."""
        return channel == self._drum

    def cc_map(self) -> dict[int, CcTarget]:
        """The current CC map (a copy)."""
        return dict(self._cc)

    def once(self, key: str, text: str) -> None:
        """Count an ignored message; log the first of each kind."""
        self.ignored += 1
        if key not in self._logged and len(self._logged) < 256:
            self._logged.add(key)
            log.warning("MIDI ignored: %s (further ones of this kind are not logged)", text)

    def handle_bytes(self, raw: list[int]) -> None:
        """Apply one raw MIDI message (also usable without a port)."""
        self.received += 1
        for tap in self._taps:
            if tap(raw):
                return
        try:
            msg = mido.Message.from_bytes(list(raw))
        except (ValueError, TypeError, IndexError) as exc:
            self.once("parse", f"bad bytes {list(raw)[:8]!r}: {exc}")
            return
        self.handle(msg)

    def handle(self, msg: mido.Message) -> None:
        """Apply one mido message."""
        s = self._state
        try:
            if msg.type in ("note_on", "note_off"):
                vel = msg.velocity if msg.type == "note_on" else 0
                if msg.channel == self._drum:
                    s.drum_on(msg.note, vel) if vel else s.drum_off(msg.note)
                else:
                    s.note_on(msg.note, vel, msg.channel) if vel else s.note_off(msg.note, msg.channel)
            elif msg.type == "control_change":
                if msg.control in (CC_ALL_SOUND_OFF, CC_ALL_NOTES_OFF):
                    s.all_notes_off(msg.channel, drums=msg.channel == self._drum)
                elif msg.control in self._cc:
                    self._apply_cc(self._cc[msg.control], msg.value)
                elif msg.control != CC_RESET_CONTROLLERS:
                    self.once(f"cc{msg.control}", f"CC {msg.control} is not mapped")
            elif msg.type == "reset":
                s.all_notes_off()
            else:
                self.once(msg.type, f"{msg.type} messages are not used")
        except ValueError as exc:
            self.once(f"value-{msg.type}", f"{msg}: {exc}")

    def _apply_cc(self, target: CcTarget, value: int) -> None:
        v = target.lo + (target.hi - target.lo) * value / 127.0
        s, p = self._state, target.param
        if p.startswith("guidance."):
            s.set_guidance(p.split(".", 1)[1], v)
        elif p == "temperature":
            s.set_temperature(v)
        elif p == "top_k":
            s.set_top_k(round(v))
        elif p == "volume":
            s.set_volume(v)
        elif p.startswith("slot."):
            s.set_slot_weight(int(p.split(".")[1]), v)
        elif p.startswith("game."):
            if self._mapper is None:
                raise ValueError("no game mapping loaded")
            self._mapper.set_rtpc(p.split(".", 1)[1], v)


class _HandlerFacade:
    """The handler's counters and entry points, on a transport."""

    handler: MidiHandler

    @property
    def received(self) -> int:
        return self.handler.received

    @property
    def ignored(self) -> int:
        return self.handler.ignored

    def handle_bytes(self, raw: list[int]) -> None:
        """Apply one raw MIDI message (also usable without a port)."""
        self.handler.handle_bytes(raw)

    def handle(self, msg: mido.Message) -> None:
        """Apply one mido message."""
        self.handler.handle(msg)

    def __enter__(self) -> Self:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> list[str]:
        """Alias of ``open`` (the daemon's start/stop vocabulary)."""
        return self.open()

    def stop(self) -> None:
        """Alias of ``close``."""
        self.close()


class MidiInput(_HandlerFacade):
    """Receives MIDI through rtmidi and hands it to a :class:`MidiHandler`."""

    def __init__(
        self,
        state: ControlState,
        api: str = "jack",
        virtual: bool = True,
        connect: str | None = None,
        client_name: str = "mrt-bridge",
        port_name: str = "midi_in",
        drum_channel: int | None = 10,
        cc_map: Mapping[int, CcTarget] | None = None,
        mapper: GameMapper | None = None,
    ) -> None:
        if api not in APIS:
            raise ValueError(f"MIDI API {api!r}: expected one of {sorted(APIS)} (or run with --midi none)")
        self.handler = MidiHandler(state, drum_channel=drum_channel, cc_map=cc_map, mapper=mapper)
        self._api = api
        self._client_name = client_name
        self._port_name = port_name
        self._virtual = virtual
        self._connect = connect
        self._ins: list[rtmidi.MidiIn] = []

    def open(self) -> list[str]:
        """Open the virtual port and/or connect; returns what was opened. RuntimeError if impossible."""
        opened = []
        try:
            if self._virtual:
                m = self._new_in()
                m.open_virtual_port(self._port_name)
                opened.append(f"{self._client_name}:{self._port_name} (virtual, {self._api})")
            if self._connect:
                m = self._new_in()
                ports = m.get_ports()
                matches = [i for i, p in enumerate(ports) if self._connect in p]
                if not matches:
                    m.delete()
                    self._ins.remove(m)
                    raise RuntimeError(
                        f"no MIDI port matching {self._connect!r} ({self._api}); available: {ports or 'none'}"
                    )
                m.open_port(matches[0], self._port_name + "_connect")
                opened.append(ports[matches[0]])
        except rtmidi.SystemError as exc:
            self.close()
            others = " or ".join(f"--midi {m}" for m in ("jack", "alsa", "none") if m != self._api)
            hint = "is the JACK server running? " if self._api == "jack" else ""
            raise RuntimeError(f"cannot open MIDI via {self._api} ({exc}); {hint}try {others}") from None
        except Exception:
            self.close()
            raise
        for name in opened:
            log.info("MIDI in: %s", name)
        return opened

    def _new_in(self) -> rtmidi.MidiIn:
        m = rtmidi.MidiIn(rtapi=APIS[self._api], name=self._client_name)
        m.ignore_types(sysex=True, timing=not self.handler.timing, active_sense=True)
        m.set_callback(self._callback)
        m.set_error_callback(self._error_callback)
        self._ins.append(m)
        return m

    def close(self) -> None:
        """Close all ports."""
        for m in self._ins:
            try:
                m.close_port()
                m.delete()
            except Exception:
                log.debug("closing MIDI port", exc_info=True)
        self._ins.clear()

    def _error_callback(self, etype: int, text: str, data: object = None) -> None:
        self.handler.once(f"rtmidi-{etype}", f"rtmidi error {etype}: {text}")

    def _callback(self, event: tuple[list[int], float], data: object = None) -> None:
        try:
            self.handler.handle_bytes(event[0])
        except Exception:
            log.exception("MIDI handler failed")


class MidiEventRing:
    """Preallocated single-producer/single-consumer ring of short MIDI messages.

    Each slot holds a length byte and up to 3 message bytes (everything but
    system exclusive fits). The producer (a JACK process callback) only
    copies bytes and bumps its own index: no locks, no waiting, no
    allocation beyond the interpreter's small temporaries. A full ring or a
    longer message is counted and dropped. Each index is stored by one side
    only (the same discipline as ``bridge.audio.ring.AudioRing``).
    """

    SLOT = 4
    MAX_BYTES = SLOT - 1

    def __init__(self, capacity: int = 1024) -> None:
        if capacity <= 0:
            raise ValueError(f"MIDI ring capacity must be positive, got {capacity}")
        self.capacity = int(capacity)
        self._buf = bytearray(self.capacity * self.SLOT)
        self._written = 0  # stored by the producer only
        self._read = 0  # stored by the consumer only
        self.dropped = 0  # producer: ring full
        self.too_long = 0  # producer: longer than MAX_BYTES (sysex)

    def push(self, data) -> bool:
        """Producer: copy one message (any bytes-like object); False if dropped."""
        n = len(data)
        if n == 0 or n > self.MAX_BYTES:
            self.too_long += 1
            return False
        w = self._written
        if w - self._read >= self.capacity:
            self.dropped += 1
            return False
        off = (w % self.capacity) * self.SLOT
        buf = self._buf
        buf[off] = n
        buf[off + 1:off + 1 + n] = data  # same length: copied in place
        self._written = w + 1  # publish after the bytes are in
        return True

    def pop(self) -> list[int] | None:
        """Consumer: the oldest message's bytes, or None when empty."""
        r = self._read
        if r >= self._written:
            return None
        off = (r % self.capacity) * self.SLOT
        n = self._buf[off]
        out = list(self._buf[off + 1:off + 1 + n])
        self._read = r + 1
        return out

    def __len__(self) -> int:
        return self._written - self._read


class MidiPortHost(Protocol):
    """A JACK client that can carry the MIDI input port (``bridge.audio.sinks.jack_sink.JackSink``)."""

    def open_midi_input(self, ring: MidiEventRing, port_name: str) -> str: ...
    def close_midi_input(self) -> None: ...
    def connect_midi_input(self, match: str) -> str: ...


class JackClientMidiInput(_HandlerFacade):
    """MIDI in through a port on an existing JACK client, drained by a thread into a MidiHandler.

    ``host.open_midi_input(ring, port_name)`` registers the port and makes the
    host's process callback push every incoming event into ``ring``; this
    object drains it every ``poll_s`` seconds (far below one 40 ms frame).
    ``connect``: also connect the first JACK MIDI output port whose name
    contains this string (the host's client must be active).
    """

    def __init__(
        self,
        state: ControlState,
        host: MidiPortHost,
        connect: str | None = None,
        port_name: str = "midi_in",
        drum_channel: int | None = 10,
        cc_map: Mapping[int, CcTarget] | None = None,
        mapper: GameMapper | None = None,
        capacity: int = 1024,
        poll_s: float = 0.002,
    ) -> None:
        self.handler = MidiHandler(state, drum_channel=drum_channel, cc_map=cc_map, mapper=mapper)
        self.ring = MidiEventRing(capacity)
        self._host = host
        self._connect = connect
        self._port_name = port_name
        self._poll_s = poll_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._reported = (0, 0)

    def open(self) -> list[str]:
        """Register the port, connect if asked, start draining; RuntimeError if impossible."""
        opened = [self._host.open_midi_input(self.ring, self._port_name) + " (JACK, on the audio client)"]
        try:
            if self._connect:
                opened.append(self._host.connect_midi_input(self._connect))
        except Exception:
            self._host.close_midi_input()
            raise
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="midi-in-drain", daemon=True)
        self._thread.start()
        for name in opened:
            log.info("MIDI in: %s", name)
        return opened

    def close(self) -> None:
        """Stop feeding the ring and draining it (the port goes away with the host's client)."""
        if self._thread is None:
            return
        self._host.close_midi_input()
        self._stop.set()
        self._thread.join(timeout=2.0)
        self._thread = None
        self.drain()

    def drain(self) -> int:
        """Handle everything in the ring now; returns how many messages were handled."""
        ring, handler = self.ring, self.handler
        count = 0
        while (raw := ring.pop()) is not None:
            count += 1
            if raw[0] in FILTERED_STATUS and not (handler.timing and raw[0] == 0xF8):
                continue
            try:
                handler.handle_bytes(raw)
            except Exception:
                log.exception("MIDI handler failed")
        lost = (ring.dropped, ring.too_long)
        if lost != self._reported:
            if lost[0] != self._reported[0]:
                handler.once("overflow", f"{ring.dropped} MIDI events dropped so far: the input ring was full")
            if lost[1] != self._reported[1]:
                handler.once("too-long", "system exclusive (longer than 3 bytes) messages are not used")
            self._reported = lost
        return count

    def _run(self) -> None:
        while not self._stop.wait(self._poll_s):
            self.drain()
