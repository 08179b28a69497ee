"""MIDI input: rtmidi (JACK or ALSA API) → ControlState notes, drums and CC-mapped parameters.

Opens a virtual input port (``mrt-bridge:midi_in`` by default) and/or
connects to existing output ports whose name contains a given string. Messages
are parsed with mido in rtmidi's callback thread:

- note on/off on any channel but the drum channel → pitch states (velocity-0
  note-on is note-off);
- note on/off on the drum channel (1-based, default 10) → drum notes (drum
  state PLAY for at least the next frame and while held);
- CC 120 (all sound off), CC 123 (all notes off), and MIDI reset (0xFF) →
  all notes off; CC 121 (reset controllers) is ignored;
- any other CC listed in the CC map → a parameter, scaled from 0..127 to the
  target's range.

Bad or unsupported MIDI is logged once per kind and ignored.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Self

import mido
import rtmidi

from bridge.control import state as st
from bridge.control.mapping import GameMapper
from bridge.control.state import ControlState

log = logging.getLogger(__name__)

APIS = {"jack": rtmidi.API_UNIX_JACK, "alsa": rtmidi.API_LINUX_ALSA}
CC_ALL_SOUND_OFF, CC_RESET_CONTROLLERS, CC_ALL_NOTES_OFF = 120, 121, 123


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


class MidiInput:
    """Receives MIDI through rtmidi and writes ControlState (and mapper RTPCs for game.* CCs)."""

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
        if drum_channel is not None and not 1 <= drum_channel <= 16:
            raise ValueError(f"drum channel {drum_channel}: expected 1..16 (or none)")
        self._state = state
        self._mapper = mapper
        self._drum = None if drum_channel is None else drum_channel - 1  # mido channels are 0-based
        self._cc = dict(DEFAULT_CC_MAP if cc_map is None else cc_map)
        self._logged: set[str] = set()
        self._api = api
        self._client_name = client_name
        self._port_name = port_name
        self._virtual = virtual
        self._connect = connect
        self._ins: list[rtmidi.MidiIn] = []
        self.received = 0
        self.ignored = 0

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
            raise RuntimeError(
                f"cannot open MIDI via {self._api} ({exc}); is the JACK server running? "
                "try --midi alsa, --midi jack or --midi none"
            ) from None
        except Exception:
            self.close()
            raise
        for name in opened:
            log.info("MIDI in: %s", name)
        return opened

    def start(self) -> list[str]:
        """Alias of :meth:`open` (the daemon's start/stop vocabulary)."""
        return self.open()

    def stop(self) -> None:
        """Alias of :meth:`close`."""
        self.close()

    def _new_in(self) -> rtmidi.MidiIn:
        m = rtmidi.MidiIn(rtapi=APIS[self._api], name=self._client_name)
        m.ignore_types(sysex=True, timing=True, active_sense=True)
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

    def __enter__(self) -> Self:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ----------------------------------------------------------------- handling
    def _once(self, key: str, text: str) -> None:
        self.ignored += 1
        if key not in self._logged and len(self._logged) < 256:
            self._logged.add(key)
            log.warning("MIDI ignored: %s (further ones of this kind are not logged)", text)

    def _error_callback(self, etype: int, text: str, data: object = None) -> None:
        self._once(f"rtmidi-{etype}", f"rtmidi error {etype}: {text}")

    def _callback(self, event: tuple[list[int], float], data: object = None) -> None:
        try:
            self.handle_bytes(event[0])
        except Exception:
            log.exception("MIDI handler failed")

    def handle_bytes(self, raw: list[int]) -> None:
        """Apply one raw MIDI message (also usable without a port)."""
        self.received += 1
        try:
            msg = mido.Message.from_bytes(list(raw))
        except (ValueError, TypeError, IndexError) as exc:
            self._once("parse", f"bad bytes {list(raw)[:8]!r}: {exc}")
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
                    s.note_on(msg.note, vel) if vel else s.note_off(msg.note)
            elif msg.type == "control_change":
                if msg.control in (CC_ALL_SOUND_OFF, CC_ALL_NOTES_OFF):
                    s.all_notes_off()
                elif msg.control in self._cc:
                    self._apply_cc(self._cc[msg.control], msg.value)
                elif msg.control != CC_RESET_CONTROLLERS:
                    self._once(f"cc{msg.control}", f"CC {msg.control} is not mapped")
            elif msg.type == "reset":
                s.all_notes_off()
            else:
                self._once(msg.type, f"{msg.type} messages are not used")
        except ValueError as exc:
            self._once(f"value-{msg.type}", f"{msg}: {exc}")

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
