"""Parse and validate a game-state mapping TOML file (see docs/osc-api.md, "Game mapping").

Only parsing lives here; the per-frame behaviour is in bridge/control/mapping.py.
Every error is a ``ValueError`` naming the offending key.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from bridge import conditioning as cond
from bridge import presets
from bridge.control import state as st
from bridge.prefill import PrefillSpec, parse_prefill

FRAME_RATE = 25.0  # frames per second of the frame clock (40 ms frames)
CURVES = ("linear", "exp", "log", "s-curve")
OPS = ("set", "add", "mul")
QUANTIZE = ("none", "beat", "bar")

# Mappable parameters other than "weight.<prompt>": name -> (min, max, is_int).
PARAMS: dict[str, tuple[float, float, bool]] = {
    "guidance.style": (cond.CFG_MIN, cond.CFG_MAX, False),
    "guidance.notes": (cond.CFG_MIN, cond.CFG_MAX, False),
    "guidance.drums": (cond.CFG_MIN, cond.CFG_MAX, False),
    "temperature": (st.TEMPERATURE_MIN, st.TEMPERATURE_MAX, False),
    "top_k": (st.TOP_K_MIN, st.TOP_K_MAX, True),
    "volume": (st.VOLUME_MIN, st.VOLUME_MAX, False),
    "drums": (cond.MASKED, cond.DRUMS_PLAY, True),
}
DEFAULTS: dict[str, float] = {
    "guidance.style": cond.DEFAULT_CFG_STYLE,
    "guidance.notes": cond.DEFAULT_CFG_NOTES,
    "guidance.drums": cond.DEFAULT_CFG_DRUMS,
    "temperature": cond.DEFAULT_TEMPERATURE,
    "top_k": cond.DEFAULT_TOP_K,
    "volume": 1.0,
    "drums": cond.MASKED,
}


@dataclass(frozen=True)
class Target:
    """One RTPC target: maps the curved RTPC value onto ``lo..hi`` and combines with ``op``."""

    param: str
    lo: float
    hi: float
    op: str = "set"


@dataclass(frozen=True)
class Rtpc:
    """A continuous game parameter with a range, slew time and response curve."""

    name: str
    lo: float
    hi: float
    default: float
    slew_s: float
    curve: str
    targets: tuple[Target, ...]


@dataclass(frozen=True)
class StatePreset:
    """A named blend of prompt weights and parameter values, reached by crossfade."""

    name: str
    weights: dict[str, float]
    params: dict[str, float]
    crossfade_s: float
    quantize: str


@dataclass(frozen=True)
class Trigger:
    """A stinger: a prompt-weight boost envelope or a short note burst."""

    name: str
    kind: str  # "boost" | "notes"
    quantize: str
    prompt: str = ""
    amount: float = 0.0
    attack_s: float = 0.0
    hold_s: float = 0.0
    release_s: float = 0.0
    notes: tuple[int, ...] = ()
    velocity: int = 100
    length_s: float = 0.0


@dataclass(frozen=True)
class MappingConfig:
    """A whole adaptive-soundtrack mapping."""

    prompts: tuple[tuple[str, str], ...]  # (name, text or palette:NAME), slot order
    bpm: float = 120.0
    beats_per_bar: int = 4
    defaults: dict[str, float] = field(default_factory=dict)
    rtpcs: dict[str, Rtpc] = field(default_factory=dict)
    states: dict[str, StatePreset] = field(default_factory=dict)
    triggers: dict[str, Trigger] = field(default_factory=dict)
    initial_state: str | None = None
    midi: dict = field(default_factory=dict)  # raw [midi] table: drum_channel, cc (see midi_in.parse_cc_map)
    preset: str | None = None  # bridge.presets name (`preset = "upstream-app"`)
    prefill: PrefillSpec | None = None  # bridge.prefill.parse_prefill, paths relative to the TOML
    num_cfgs: int | None = None  # 0, 1 or 2
    tempo_source: str | None = None  # [tempo] source (bridge/control/tempo.py); None: not set in the file
    input_amount: float | None = None  # [audio_in] amount (bridge/daemon/audio_in.py)

    def param_range(self, param: str) -> tuple[float, float, bool]:
        """Range of a mappable parameter name; ValueError if unknown."""
        if param.startswith("weight."):
            if param[len("weight."):] not in dict(self.prompts):
                raise ValueError(f"{param!r}: no prompt named {param[len('weight.'):]!r} in [prompts]")
            return st.WEIGHT_MIN, st.WEIGHT_MAX, False
        if param not in PARAMS:
            raise ValueError(f"unknown parameter {param!r}; expected weight.<prompt> or one of {sorted(PARAMS)}")
        return PARAMS[param]

    @classmethod
    def from_toml(cls, path: str | Path) -> MappingConfig:
        """Load a mapping file; ValueError with the key path on any problem."""
        try:
            with open(path, "rb") as f:
                data = tomllib.load(f)
        except tomllib.TOMLDecodeError as exc:
            raise ValueError(f"{path}: not valid TOML: {exc}") from None
        try:
            return cls.from_dict(data, base_dir=Path(path).parent)
        except ValueError as exc:
            raise ValueError(f"{path}: {exc}") from None

    @classmethod
    def from_dict(cls, data: dict, base_dir: Path | None = None) -> MappingConfig:
        """Build from parsed TOML (a dict); file paths in it are relative to ``base_dir`` (default: cwd)."""
        _only(data, "", {"tempo", "prompts", "defaults", "rtpc", "states", "triggers", "initial_state", "midi",
                         "preset", "prefill", "num_cfgs", "audio_in"})
        audio_in = _table(data, "audio_in")
        _only(audio_in, "audio_in", {"amount"})
        input_amount = _num(audio_in, "audio_in.amount", 0.0, 0.0, 1.0) if "amount" in audio_in else None
        preset = data.get("preset")
        if preset is not None and preset not in presets.PRESETS:
            raise ValueError(f"preset: {preset!r} is not one of {list(presets.NAMES)}")
        prefill = data.get("prefill")
        if prefill is not None:
            prefill = parse_prefill(prefill, base_dir)
        num_cfgs = data.get("num_cfgs")
        if num_cfgs is not None and (isinstance(num_cfgs, bool) or num_cfgs not in cond.NUM_CFGS_CHOICES):
            raise ValueError(f"num_cfgs: expected 0, 1 or 2, got {num_cfgs!r}")
        tempo = _table(data, "tempo")
        _only(tempo, "tempo", {"bpm", "beats_per_bar", "source"})
        tempo_source = tempo.get("source")
        if tempo_source is not None:
            from bridge.control.tempo import check_source

            if not isinstance(tempo_source, str):
                raise ValueError("tempo.source: expected a string")
            try:
                check_source(tempo_source)
            except ValueError as exc:
                raise ValueError(f"tempo.source: {exc}") from None
        bpm = _num(tempo, "tempo.bpm", 120.0, 20.0, 400.0)
        bpb = int(_num(tempo, "tempo.beats_per_bar", 4, 1, 16, integer=True))

        prompts_t = _table(data, "prompts")
        if len(prompts_t) > st.NUM_SLOTS:
            raise ValueError(f"prompts: at most {st.NUM_SLOTS} (one per style slot), got {len(prompts_t)}")
        prompts = []
        for name, text in prompts_t.items():
            if not isinstance(text, str) or not text.strip():
                raise ValueError(f"prompts.{name}: expected a non-empty string (text or 'palette:NAME')")
            prompts.append((name, text.strip()))
        cfg = cls(prompts=tuple(prompts), bpm=bpm, beats_per_bar=bpb)

        defaults = {}
        for key, value in _table(data, "defaults").items():
            defaults[key] = _param_value(cfg, f"defaults.{key}", key, value)

        rtpcs = {}
        for name, t in _table(data, "rtpc").items():
            where = f"rtpc.{name}"
            if not isinstance(t, dict):
                raise ValueError(f"{where}: expected a table")  # noqa: TRY004
            _only(t, where, {"range", "default", "slew", "curve", "targets"})
            lo, hi = _range(t, where)
            default = _num(t, f"{where}.default", lo, lo, hi)
            slew = _num(t, f"{where}.slew", 0.0, 0.0, 600.0)
            curve = t.get("curve", "linear")
            if curve not in CURVES:
                raise ValueError(f"{where}.curve: {curve!r} is not one of {CURVES}")
            targets = []
            raw_targets = t.get("targets", [])
            if not isinstance(raw_targets, list) or not raw_targets:
                raise ValueError(f"{where}.targets: expected a non-empty array of tables")
            for i, tt in enumerate(raw_targets):
                tw = f"{where}.targets[{i}]"
                if not isinstance(tt, dict):
                    raise ValueError(f"{tw}: expected a table")  # noqa: TRY004
                _only(tt, tw, {"param", "from", "to", "op"})
                param = tt.get("param")
                if not isinstance(param, str):
                    raise ValueError(f"{tw}.param: expected a string")  # noqa: TRY004
                cfg.param_range(param)
                op = tt.get("op", "set")
                if op not in OPS:
                    raise ValueError(f"{tw}.op: {op!r} is not one of {OPS}")
                targets.append(Target(param, _num(tt, f"{tw}.from", 0.0), _num(tt, f"{tw}.to", 1.0), op))
            rtpcs[name] = Rtpc(name, lo, hi, default, slew, curve, tuple(targets))

        states = {}
        for name, t in _table(data, "states").items():
            where = f"states.{name}"
            if not isinstance(t, dict):
                raise ValueError(f"{where}: expected a table")  # noqa: TRY004
            _only(t, where, {"weights", "params", "crossfade", "quantize"})
            weights = {}
            for pname, w in _table(t, "weights", where).items():
                weights[pname] = _param_value(cfg, f"{where}.weights.{pname}", f"weight.{pname}", w)
            params = {}
            for key, value in _table(t, "params", where).items():
                if key.startswith("weight."):
                    raise ValueError(f"{where}.params.{key}: put prompt weights in {where}.weights")
                params[key] = _param_value(cfg, f"{where}.params.{key}", key, value)
            states[name] = StatePreset(
                name, weights, params,
                _num(t, f"{where}.crossfade", 0.0, 0.0, 600.0), _quantize(t, where),
            )

        triggers = {}
        for name, t in _table(data, "triggers").items():
            where = f"triggers.{name}"
            if not isinstance(t, dict):
                raise ValueError(f"{where}: expected a table")  # noqa: TRY004
            kind = t.get("kind")
            if kind == "boost":
                _only(t, where, {"kind", "prompt", "amount", "attack", "hold", "release", "quantize"})
                prompt = t.get("prompt")
                if prompt not in dict(cfg.prompts):
                    raise ValueError(f"{where}.prompt: {prompt!r} is not a name in [prompts]")
                triggers[name] = Trigger(
                    name, kind, _quantize(t, where), prompt=prompt,
                    amount=_num(t, f"{where}.amount", 1.0, -st.WEIGHT_MAX, st.WEIGHT_MAX),
                    attack_s=_num(t, f"{where}.attack", 0.0, 0.0, 60.0),
                    hold_s=_num(t, f"{where}.hold", 0.0, 0.0, 60.0),
                    release_s=_num(t, f"{where}.release", 0.5, 0.0, 60.0),
                )
            elif kind == "notes":
                _only(t, where, {"kind", "notes", "velocity", "length", "quantize"})
                notes = t.get("notes")
                if (not isinstance(notes, list) or not notes
                        or not all(isinstance(n, int) and 0 <= n <= 127 for n in notes)):
                    raise ValueError(f"{where}.notes: expected a non-empty array of pitches 0..127")
                triggers[name] = Trigger(
                    name, kind, _quantize(t, where), notes=tuple(notes),
                    velocity=int(_num(t, f"{where}.velocity", 100, 1, 127, integer=True)),
                    length_s=_num(t, f"{where}.length", 0.25, 0.04, 60.0),
                )
            else:
                raise ValueError(f"{where}.kind: expected 'boost' or 'notes', got {kind!r}")

        initial = data.get("initial_state")
        if initial is not None and initial not in states:
            raise ValueError(f"initial_state: {initial!r} is not a name in [states]")
        midi = _table(data, "midi")
        _only(midi, "midi", {"drum_channel", "cc"})
        if "drum_channel" in midi:
            _num(midi, "midi.drum_channel", 10, 1, 16, integer=True)
        from bridge.control.midi_in import parse_cc_map  # lazy: midi_in imports the mapper

        for key in parse_cc_map(_table(midi, "cc", "midi")).values():
            if key.param.startswith("game.") and key.param[5:] not in rtpcs:
                raise ValueError(f"midi.cc: {key.param!r} names no [rtpc] in this file")
        return cls(
            prompts=cfg.prompts, bpm=bpm, beats_per_bar=bpb, defaults=defaults,
            rtpcs=rtpcs, states=states, triggers=triggers, initial_state=initial, midi=midi,
            preset=preset, prefill=prefill, num_cfgs=num_cfgs,
            tempo_source=tempo_source, input_amount=input_amount,
        )

    def midi_drum_channel(self, default: int | None = 10) -> int | None:
        """Drum channel (1-based) from [midi], else ``default`` (the preset's; None: no drum channel)."""
        return int(self.midi["drum_channel"]) if "drum_channel" in self.midi else default


def _only(t: dict, where: str, allowed: set[str]) -> None:
    extra = sorted(set(t) - allowed)
    if extra:
        prefix = f"{where}: " if where else ""
        raise ValueError(f"{prefix}unknown key(s) {extra}; allowed: {sorted(allowed)}")


def _table(t: dict, key: str, where: str = "") -> dict:
    value = t.get(key, {})
    if not isinstance(value, dict):
        raise ValueError(f"{where + '.' if where else ''}{key}: expected a table")  # noqa: TRY004
    return value


def _num(t: dict, where: str, default: float, lo: float = -math.inf, hi: float = math.inf,
         integer: bool = False) -> float:
    key = where.rsplit(".", 1)[-1]
    value = t.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{where}: expected a number, got {value!r}")  # noqa: TRY004
    if integer and not float(value).is_integer():
        raise ValueError(f"{where}: expected an integer, got {value!r}")
    if not math.isfinite(value) or not lo <= value <= hi:
        raise ValueError(f"{where}: {value!r} outside {lo:g}..{hi:g}")
    return float(value)


def _range(t: dict, where: str) -> tuple[float, float]:
    r = t.get("range", [0.0, 1.0])
    if (not isinstance(r, list) or len(r) != 2
            or not all(isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) for x in r)
            or not r[0] < r[1]):
        raise ValueError(f"{where}.range: expected [min, max] with min < max, got {r!r}")
    return float(r[0]), float(r[1])


def _quantize(t: dict, where: str) -> str:
    q = t.get("quantize", "none")
    if q not in QUANTIZE:
        raise ValueError(f"{where}.quantize: {q!r} is not one of {QUANTIZE}")
    return q


def _param_value(cfg: MappingConfig, where: str, param: str, value: object) -> float:
    try:
        lo, hi, _ = cfg.param_range(param)
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{where}: expected a finite number, got {value!r}")
    if not lo <= value <= hi:
        raise ValueError(f"{where}: {value!r} outside {lo:g}..{hi:g}")
    return float(value)


def check_palette_prompts(config: MappingConfig, palette_names: set[str] | None, where: object) -> None:
    """ValueError if a ``palette:NAME`` prompt names a style the palette lacks (or there is none)."""
    for name, text in config.prompts:
        if not text.startswith("palette:"):
            continue
        style = text[len("palette:"):].strip()
        if palette_names is None:
            raise ValueError(f"{where}: prompts.{name} uses {text!r} but no --palette FILE.npz was given")
        if style not in palette_names:
            known = ", ".join(sorted(palette_names)[:20]) or "none"
            raise ValueError(f"{where}: prompts.{name}: unknown palette style {style!r} (palette has: {known})")
