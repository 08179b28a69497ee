"""Game-state mapper: RTPCs, states, triggers and a beat clock, on the 25 Hz frame clock.

Wiring: ``state.add_frame_hook(mapper.advance)``, so the mapper advances once
per frame inside ``ControlState.snapshot`` (the frame loop calls nothing else).
OSC/other threads call :meth:`set_rtpc`, :meth:`set_state`, :meth:`trigger`,
:meth:`set_tempo`, :meth:`sync`; those only record the request under a small
lock, and :meth:`advance` applies them at the next frame (or the next beat /
bar when the state or trigger is quantised).

Each frame the mapper computes every parameter it owns (prompt weights and
any parameter named in the config) as:

    base   = crossfade(previous state values -> current state values)
    value  = RTPC targets applied in file order (set / add / mul)
    value += active trigger boosts (weights only)

then clamps it to the parameter's range and writes it to ``ControlState`` only
when it changed. Parameters not named in the config stay under OSC/MIDI control.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable

from bridge import presets
from bridge.control.mapping_config import DEFAULTS, FRAME_RATE, MappingConfig, Rtpc, Trigger
from bridge.control.state import ControlState
from bridge.control.tempo import DEFAULT_SOURCE, EXTERNAL, TempoSource, check_source, phase

log = logging.getLogger(__name__)

TickCallback = Callable[[str, int, int, int], None]
"""on_tick(kind, beat, bar, beat_in_bar); kind is "beat" or "bar" (a bar tick also gets a beat tick)."""

_EPS = 1e-9
# Triggers waiting for their beat/bar, and stingers sounding at once: bounded (the excess is
# rejected and counted), so a trigger flood cannot grow memory or the /status reply.
MAX_QUEUED_TRIGGERS = 16
MAX_ACTIVE_TRIGGERS = 16


def apply_curve(curve: str, x: float) -> float:
    """Response curve on a normalised value x in 0..1."""
    x = min(1.0, max(0.0, x))
    if curve == "exp":
        return (math.exp(4.0 * x) - 1.0) / (math.exp(4.0) - 1.0)
    if curve == "log":
        return math.log1p((math.exp(4.0) - 1.0) * x) / 4.0
    if curve == "s-curve":
        return x * x * (3.0 - 2.0 * x)
    return x


class _TriggerVoice:
    def __init__(self, trig: Trigger, start: int) -> None:
        self.trig = trig
        self.start = start
        self.notes_on = False

    def boost(self, clock: int) -> float:
        t = (clock - self.start) / FRAME_RATE
        tr = self.trig
        if t < tr.attack_s:
            return tr.amount * (t / tr.attack_s)
        t -= tr.attack_s
        if t < tr.hold_s:
            return tr.amount
        t -= tr.hold_s
        if t < tr.release_s:
            return tr.amount * (1.0 - t / tr.release_s)
        return 0.0

    def done(self, clock: int) -> bool:
        tr = self.trig
        length = tr.attack_s + tr.hold_s + tr.release_s if tr.kind == "boost" else tr.length_s
        return clock - self.start >= round(length * FRAME_RATE)


class GameMapper:
    """Turns game parameters, states and triggers into ControlState writes each frame."""

    def __init__(self, config: MappingConfig, state: ControlState,
                 on_tick: TickCallback | None = None, preset: str | None = None) -> None:
        """``preset``: the bridge.presets name whose values unmapped defaults take (default: the config's)."""
        self.config = config
        self._preset_defaults = presets.get(preset or config.preset).param_defaults()
        self._state = state
        self._on_tick = on_tick
        self._lock = threading.Lock()
        # inputs (guarded by _lock)
        self._rtpc_target = {n: r.default for n, r in config.rtpcs.items()}
        self._pending_state: str | None = None
        self._pending_triggers: list[Trigger] = []
        self._pending_tempo: tuple[float, int] | None = None
        self._pending_sync = False
        # frame-thread state
        self._rtpc_value = dict(self._rtpc_target)
        self._clock = 0
        self._last_frame: int | None = None
        self._bpm = config.bpm
        self._bpb = config.beats_per_bar
        self._beat_origin = 0.0
        self._clock_origin = 0
        self._next_beat = 0
        self._owned = self._owned_params()
        self._state_name = config.initial_state
        self._from: dict[str, float] = {}
        self._to = self._state_values(config.initial_state)
        self._fade_start = 0
        self._fade_frames = 0
        self._waiting: list[tuple[str, object]] = []  # quantised: ("state", name) / ("trigger", Trigger)
        self._voices: list[_TriggerVoice] = []
        self._queued_triggers = 0  # triggers in _waiting (read by trigger() for the bound)
        self.triggers_dropped = 0
        self._written: dict[str, float] = {}
        self._started = False
        # where the beat grid comes from (bridge/control/tempo.py)
        self._tempo_source = DEFAULT_SOURCE
        self._external: TempoSource | None = None
        self._lookahead_s = 0.0
        self._rolling = True
        self._ext_pos = 0.0

    def set_tempo_source(self, name: str, source: TempoSource | None = None, lookahead_s: float = 0.0) -> None:
        """Choose the grid: "config"/"osc" run on the frame clock; "midi-clock"/"jack-transport" need
        ``source``, read for the time ``lookahead_s`` ahead (when the frame being made is heard)."""
        check_source(name)
        if (name in EXTERNAL) != (source is not None):
            raise ValueError(f"tempo source {name}: an external source object is needed exactly for {EXTERNAL}")
        self._tempo_source, self._external, self._lookahead_s = name, source, float(lookahead_s)
        self._rolling = source is None

    # ------------------------------------------------------------ thread-safe inputs
    def set_rtpc(self, name: str, value: float) -> None:
        """Set an RTPC's target value (it slews there); ValueError if unknown/out of range."""
        r = self.config.rtpcs.get(name)
        if r is None:
            raise ValueError(f"unknown RTPC {name!r}; configured: {sorted(self.config.rtpcs)}")
        v = float(value)
        if not math.isfinite(v) or not r.lo <= v <= r.hi:
            raise ValueError(f"RTPC {name}: {value!r} outside {r.lo:g}..{r.hi:g}")
        with self._lock:
            self._rtpc_target[name] = v

    def set_state(self, name: str) -> None:
        """Go to a named state (crossfade, quantised per the state's config)."""
        if name not in self.config.states:
            raise ValueError(f"unknown state {name!r}; configured: {sorted(self.config.states)}")
        with self._lock:
            self._pending_state = name

    def trigger(self, name: str) -> None:
        """Fire a named trigger (stinger)."""
        trig = self.config.triggers.get(name)
        if trig is None:
            raise ValueError(f"unknown trigger {name!r}; configured: {sorted(self.config.triggers)}")
        with self._lock:
            if len(self._pending_triggers) + self._queued_triggers >= MAX_QUEUED_TRIGGERS:
                self.triggers_dropped += 1
                raise ValueError(f"trigger queue full ({MAX_QUEUED_TRIGGERS} waiting for their beat/bar); "
                                 f"{name!r} dropped")
            self._pending_triggers.append(trig)

    def set_tempo(self, bpm: float, beats_per_bar: int | None = None) -> None:
        """Change tempo (20..400 bpm) keeping the beat phase; optionally beats per bar (1..16)."""
        self._check_tempo_owner("/tempo")
        bpm = float(bpm)
        if not math.isfinite(bpm) or not 20.0 <= bpm <= 400.0:
            raise ValueError(f"tempo: {bpm!r} bpm outside 20..400")
        if beats_per_bar is not None and not 1 <= int(beats_per_bar) <= 16:
            raise ValueError(f"tempo: beats_per_bar {beats_per_bar!r} outside 1..16")
        with self._lock:
            self._pending_tempo = (bpm, int(beats_per_bar) if beats_per_bar is not None else 0)

    def sync(self) -> None:
        """Make the next frame a downbeat (beat 0 of a new bar)."""
        self._check_tempo_owner("/tempo/sync")
        with self._lock:
            self._pending_sync = True

    def _check_tempo_owner(self, what: str) -> None:
        if self._tempo_source != "osc":
            raise ValueError(f"{what} refused: the tempo comes from {self._tempo_source} (--tempo-source)")

    # ------------------------------------------------------------------ frame thread
    def advance(self, frame_index: int) -> None:
        """Advance by one frame boundary (called from ControlState.snapshot)."""
        if self._last_frame is None:
            n = 0
            # the grid counts from the stream's first frame even if the mapper joined later (the daemon
            # fills its buffer before its inputs start), so a recorded take re-renders on the same beats
            self._clock = frame_index
        elif frame_index > self._last_frame:
            n = frame_index - self._last_frame
        else:
            n = 1  # the engine was reset (frame counter restarted): keep our own clock going
        self._last_frame = frame_index
        self._clock += n
        with self._lock:
            rtpc_target = dict(self._rtpc_target)
            new_state, self._pending_state = self._pending_state, None
            new_triggers, self._pending_triggers = self._pending_triggers, []
            tempo, self._pending_tempo = self._pending_tempo, None
            sync, self._pending_sync = self._pending_sync, False

        if self._external is not None:
            self._follow_external()
        if tempo is not None:
            self._beat_origin = self._beat_pos()
            self._clock_origin = self._clock
            self._bpm = tempo[0]
            if tempo[1]:
                self._bpb = tempo[1]
        if sync:
            self._beat_origin = float(math.ceil(self._next_beat / self._bpb) * self._bpb)
            self._next_beat = int(self._beat_origin)
            self._clock_origin = self._clock
        if new_state is not None:
            self._waiting = [w for w in self._waiting if w[0] != "state"]
            if new_state != self._state_name:
                self._waiting.append(("state", new_state))
        self._waiting.extend(("trigger", t) for t in new_triggers)

        beat, downbeat = self._ticks()
        still = []
        for kind, item in self._waiting:
            q = self.config.states[item].quantize if kind == "state" else item.quantize
            if q == "none" or (q == "beat" and beat) or (q == "bar" and downbeat):
                self._start(kind, item)
            else:
                still.append((kind, item))
        self._waiting = still
        self._queued_triggers = sum(1 for w in still if w[0] == "trigger")

        for name, r in self.config.rtpcs.items():
            self._rtpc_value[name] = self._slew(r, self._rtpc_value[name], rtpc_target[name], n)
        self._write(self._compute())

    def _start(self, kind: str, item: object) -> None:
        if kind == "state":
            current = self._base_values()
            preset = self.config.states[item]
            self._from = current
            self._to = self._state_values(item)
            self._state_name = item
            self._fade_start = self._clock
            self._fade_frames = round(preset.crossfade_s * FRAME_RATE)
            log.info("state -> %s (crossfade %d frames)", item, self._fade_frames)
        else:
            if len(self._voices) >= MAX_ACTIVE_TRIGGERS:
                self._voices.pop(0)  # the oldest stinger gives way
            self._voices.append(_TriggerVoice(item, self._clock))

    def _follow_external(self) -> None:
        """Take tempo and position from the external source; a jump (relocate) moves the next tick."""
        try:
            reading = self._external.read(time.monotonic() + self._lookahead_s)
        except Exception:
            log.exception("tempo source %s failed", self._tempo_source)
            reading = None
        if reading is None:
            self._rolling = False
            return
        if reading.bpm > 0:
            self._bpm = reading.bpm
        if reading.beats_per_bar:
            self._bpb = reading.beats_per_bar
        pos = reading.beat
        if reading.rolling and (pos + _EPS < self._next_beat - 1 or pos > self._next_beat + 1 or not self._rolling):
            self._next_beat = math.ceil(pos - _EPS)  # relocated (or started): the next whole beat ticks
        self._ext_pos = pos
        self._rolling = reading.rolling

    def _beat_pos(self) -> float:
        if self._external is not None:
            return self._ext_pos
        return self._beat_origin + (self._clock - self._clock_origin) * self._bpm / (60.0 * FRAME_RATE)

    def _ticks(self) -> tuple[bool, bool]:
        """Fire beat/bar ticks for beats reached by this frame; return (beat, downbeat)."""
        pos = self._beat_pos()
        beat = downbeat = False
        if not self._rolling:
            return False, False
        while pos + _EPS >= self._next_beat:
            b = self._next_beat
            self._next_beat += 1
            bar, in_bar = divmod(b, self._bpb)
            beat = True
            if in_bar == 0:
                downbeat = True
                self._tick("bar", b, bar, 0)
            self._tick("beat", b, bar, in_bar)
        return beat, downbeat

    def _tick(self, kind: str, beat: int, bar: int, in_bar: int) -> None:
        if self._on_tick is None:
            return
        try:
            self._on_tick(kind, beat, bar, in_bar)
        except Exception:
            log.exception("tick callback failed")

    @staticmethod
    def _slew(r: Rtpc, current: float, target: float, n: int) -> float:
        if r.slew_s <= 0 or n <= 0:
            return target if n > 0 or r.slew_s <= 0 else current
        step = (r.hi - r.lo) / (r.slew_s * FRAME_RATE) * n
        if abs(target - current) <= step:
            return target
        return current + math.copysign(step, target - current)

    def _owned_params(self) -> list[str]:
        cfg = self.config
        owned = [f"weight.{name}" for name, _ in cfg.prompts]
        extra = set(cfg.defaults)
        for s in cfg.states.values():
            extra |= set(s.params)
        for r in cfg.rtpcs.values():
            extra |= {t.param for t in r.targets}
        owned += sorted(p for p in extra if not p.startswith("weight."))
        return owned

    def _default(self, param: str) -> float:
        if param in self.config.defaults:
            return self.config.defaults[param]
        if param.startswith("weight."):
            return 1.0 if self.config.initial_state is None else 0.0
        return self._preset_defaults.get(param, DEFAULTS[param])

    def _state_values(self, name: str | None) -> dict[str, float]:
        values = {p: self._default(p) for p in self._owned}
        if name is not None:
            preset = self.config.states[name]
            if preset.weights:
                for pname, _ in self.config.prompts:
                    values[f"weight.{pname}"] = preset.weights.get(pname, 0.0)
            values.update(preset.params)
        return values

    def _base_values(self) -> dict[str, float]:
        if self._fade_frames <= 0 or not self._from:
            return dict(self._to)
        t = min(1.0, (self._clock - self._fade_start) / self._fade_frames)
        return {p: self._from[p] + (self._to[p] - self._from[p]) * t for p in self._owned}

    def _compute(self) -> dict[str, float]:
        values = self._base_values()
        for name, r in self.config.rtpcs.items():
            y = apply_curve(r.curve, (self._rtpc_value[name] - r.lo) / (r.hi - r.lo))
            for tgt in r.targets:
                v = tgt.lo + (tgt.hi - tgt.lo) * y
                if tgt.op == "set":
                    values[tgt.param] = v
                elif tgt.op == "add":
                    values[tgt.param] += v
                else:
                    values[tgt.param] *= v
        alive = []
        for voice in self._voices:
            tr = voice.trig
            if tr.kind == "boost":
                values[f"weight.{tr.prompt}"] += voice.boost(self._clock)
            elif not voice.notes_on:
                for p in tr.notes:
                    self._state.note_on(p, tr.velocity)
                voice.notes_on = True
            if voice.done(self._clock):
                if tr.kind == "notes":
                    for p in tr.notes:
                        self._state.note_off(p)
            else:
                alive.append(voice)
        self._voices = alive
        for p, v in values.items():
            lo, hi, is_int = self.config.param_range(p)
            v = min(hi, max(lo, v))
            values[p] = float(round(v)) if is_int else v
        return values

    def _write(self, values: dict[str, float]) -> None:
        s = self._state
        slots = {f"weight.{name}": (i, text) for i, (name, text) in enumerate(self.config.prompts)}
        for p, v in values.items():
            old = self._written.get(p)
            if old is not None and abs(old - v) < 1e-6:
                continue
            try:
                if p in slots:
                    i, text = slots[p]
                    if self._started:
                        s.set_slot_weight(i, v)
                    else:
                        s.set_slot(i, text, v)
                elif p.startswith("guidance."):
                    s.set_guidance(p[len("guidance."):], v)
                elif p == "temperature":
                    s.set_temperature(v)
                elif p == "top_k":
                    s.set_top_k(int(v))
                elif p == "volume":
                    s.set_volume(v)
                elif p == "drums":
                    s.set_drums(int(v))
            except ValueError as exc:  # clamped above, so this is a bug worth one log line
                log.error("mapper could not set %s=%r: %s", p, v, exc)
                continue
            self._written[p] = v
        self._started = True

    def status(self) -> dict:
        """Current mapper values (for /status)."""
        with self._lock:
            targets = dict(self._rtpc_target)
        return {
            "state": self._state_name,
            "rtpc": {n: {"target": targets[n], "value": self._rtpc_value[n]} for n in targets},
            "bpm": self._bpm,
            "beats_per_bar": self._bpb,
            "beat": self._beat_pos(),
            "tempo": {"source": self._tempo_source, "bpm": round(self._bpm, 3), "rolling": self._rolling,
                      **phase(self._beat_pos(), self._bpb)},
            "waiting": [str(w[1] if w[0] == "state" else w[1].name) for w in self._waiting],
            "active_triggers": [v.trig.name for v in self._voices],
            "triggers_dropped": self.triggers_dropped,
        }

    def values(self) -> dict[str, float]:
        """The parameter values written by the last advance (for tests and status)."""
        return dict(self._written)
