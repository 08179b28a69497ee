"""MIDI learn: arm a parameter over OSC, move a knob, and that CC controls it from then on.

``/midi/learn <target>`` arms a target, named by its OSC address
(``/guidance/notes``, ``/temperature``, ``/top_k``, ``/volume``,
``/style/weight/N``, ``/game/NAME``) or by its ``[midi.cc]`` parameter name
(``guidance.notes``, ``slot.N.weight``, ``game.NAME``). The next control
change (CC 0..119, any channel) binds to it over the parameter's full range,
and that same message already moves it. ``/midi/learn/save`` writes every
binding into the ``[midi.cc]`` table of the ``--config`` file: the rest of the
file is kept as written, the result is checked by parsing it back, and it
replaces the file atomically (a failed save leaves the file untouched).
"""

from __future__ import annotations

import logging
import os
import re
import tempfile
import threading
import tomllib
from pathlib import Path

from bridge.control.midi_in import CcTarget, MidiHandler

log = logging.getLogger(__name__)

_SIMPLE = {"/guidance/style": "guidance.style", "/guidance/notes": "guidance.notes",
           "/guidance/drums": "guidance.drums", "/temperature": "temperature", "/top_k": "top_k",
           "/volume": "volume"}


class MidiLearn:
    """Learns CC bindings into a :class:`MidiHandler`; ``attach`` it to the handler first."""

    def __init__(self, mapper=None, config_path: Path | None = None) -> None:
        self._mapper = mapper
        self.config_path = Path(config_path) if config_path is not None else None
        self._lock = threading.Lock()
        self._armed: CcTarget | None = None
        self._handler: MidiHandler | None = None
        self.learned: dict[int, CcTarget] = {}

    def attach(self, handler: MidiHandler) -> None:
        """Watch ``handler``'s messages for the CC to bind."""
        self._handler = handler
        handler.add_tap(self.tap)

    def target(self, name: str) -> CcTarget:
        """The CC target (parameter and full range) an OSC address or parameter name stands for."""
        from bridge.control import osc_api
        from bridge.control.midi_in import parse_cc_map

        param = _SIMPLE.get(name)
        if param is None:
            if m := re.fullmatch(r"/style/weight/(\d+)", name):
                param = f"slot.{m[1]}.weight"
            elif name.startswith("/game/"):
                param = "game." + name[len("/game/"):]
            else:
                param = name
        try:  # the [midi.cc] parser knows which parameters a CC may drive
            parse_cc_map({"0": {"param": param}})
        except ValueError:
            raise ValueError(f"MIDI learn: {name!r} is not learnable; expected one of {sorted(_SIMPLE)}, "
                             "/style/weight/N, /game/NAME (or their [midi.cc] names)") from None
        if param.startswith("game."):
            rtpc = None if self._mapper is None else self._mapper.config.rtpcs.get(param[5:])
            if rtpc is None:
                raise ValueError(f"MIDI learn: no RTPC named {param[5:]!r} in the mapping config")
            return CcTarget(param, rtpc.lo, rtpc.hi)
        address = next((a for a, p in _SIMPLE.items() if p == param), None) or "/style/weight/0"
        arg = osc_api.match(address)[0].args[0]
        return CcTarget(param, float(arg.lo), float(arg.hi))

    def arm(self, name: str) -> None:
        """Bind the next CC moved to ``name``; ValueError if it names no learnable parameter."""
        if self._handler is None:
            raise ValueError("MIDI learn needs MIDI input (serve without --midi none)")
        target = self.target(name)
        with self._lock:
            self._armed = target
        log.info("MIDI learn: move a control to bind it to %s", target.param)

    def cancel(self) -> None:
        with self._lock:
            self._armed = None

    def tap(self, raw: list[int]) -> bool:
        """MidiHandler tap: bind an armed target to this CC. Never consumes (the CC then applies)."""
        if len(raw) < 3 or raw[0] & 0xF0 != 0xB0 or raw[1] >= 120:
            return False
        with self._lock:
            target, self._armed = self._armed, None
            if target is None:
                return False
            self.learned[raw[1]] = target
        self._handler.bind_cc(raw[1], target)
        log.info("MIDI learn: CC %d -> %s (%g..%g)", raw[1], target.param, target.lo, target.hi)
        return False

    def status(self) -> dict:
        with self._lock:
            return {"armed": None if self._armed is None else self._armed.param,
                    "learned": {str(cc): t.param for cc, t in sorted(self.learned.items())}}

    def save(self) -> Path:
        """Write the bindings into the config file's [midi.cc]; ValueError with the reason if impossible."""
        if self.config_path is None:
            raise ValueError("no config file to save MIDI bindings to (start the daemon with --config FILE.toml)")
        with self._lock:
            learned = dict(self.learned)
        write_cc_table(self.config_path, learned)
        log.info("MIDI learn: %d binding(s) saved to %s", len(learned), self.config_path)
        return self.config_path


def _cc_lines(table: dict[str, dict]) -> list[str]:
    lines = ["[midi.cc]"]
    for key in sorted(table, key=int):
        spec = table[key]
        lines.append(f'{int(key)} = {{ param = "{spec["param"]}", min = {float(spec.get("min", 0.0))!r}, '
                     f'max = {float(spec.get("max", 1.0))!r} }}')
    return lines


def write_cc_table(path: Path, learned: dict[int, CcTarget]) -> None:
    """Merge ``learned`` into ``path``'s [midi.cc] (other keys and tables kept) and replace it atomically."""
    from bridge.control.mapping_config import MappingConfig

    path = Path(path)
    text = path.read_text()
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{path}: not valid TOML ({exc}); not saved") from None
    old = data.get("midi", {}).get("cc", {})
    table = {str(k): {"param": v["param"], "min": float(v.get("min", 0.0)), "max": float(v.get("max", 1.0))}
             for k, v in old.items()}
    table.update({str(cc): {"param": t.param, "min": t.lo, "max": t.hi} for cc, t in learned.items()})
    # drop the old definitions: a [midi.cc] / [midi.cc.N] table, or a `cc = {...}` line in [midi]
    kept, section, skipping = [], "", False
    for line in text.splitlines():
        header = re.match(r"\s*\[\s*([^\]]+?)\s*\]\s*(#.*)?$", line)
        if header:
            section = header[1].replace(" ", "")
            skipping = section == "midi.cc" or section.startswith("midi.cc.")
            if skipping:
                continue
        if skipping or (section == "midi" and re.match(r"\s*cc\s*=", line)):
            continue
        kept.append(line)
    new_text = "\n".join([*kept, "", *_cc_lines(table)]) + "\n"
    try:
        new = tomllib.loads(new_text)
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{path}: could not rewrite [midi.cc] ({exc}); not saved, edit it by hand") from None
    rest_old = {k: v for k, v in data.items() if k != "midi"}
    rest_new = {k: v for k, v in new.items() if k != "midi"}
    midi_old = {k: v for k, v in data.get("midi", {}).items() if k != "cc"}
    midi_new = {k: v for k, v in new.get("midi", {}).items() if k != "cc"}
    if rest_old != rest_new or midi_old != midi_new or new["midi"]["cc"] != table:
        raise ValueError(f"{path}: could not rewrite [midi.cc] safely; not saved, edit it by hand")
    MappingConfig.from_dict(new)  # still a valid mapping
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(new_text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, path.stat().st_mode & 0o7777)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
