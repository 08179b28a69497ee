"""Behaviour presets: our defaults, or upstream's app (`--preset upstream-app`).

The one table of what each preset selects, used by ``serve``, ``render`` and
the mapping config's ``preset`` key. Upstream's values come from its app UI
(``examples/common/react_ui/defaultParams.ts``: temperature 1.1, top-k 50,
guidance 1.6 / 2.4 / 4.0, unmask width 0) and its C++ live engine
(``core/src/mlx_engine.cpp``, ``core/include/magentart/mlx_engine.h``: onset
mode 0 = "Mask", style levels 6..11 masked, the "piano" style until the first
prompt, the MusicCoCa text->audio mapper when ``mapper.tflite`` is present,
reset restoring the sampler keys ``key(42 + row + seed_rotation)``, MIDI notes
on every channel taken as pitches, the drum slot only ever -1 or 0).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from bridge import conditioning as cond

log = logging.getLogger(__name__)

DEFAULT = "default"
UPSTREAM_APP = "upstream-app"

# mlx_engine.h kDefaultMusicCoCaTokensPiano: MusicCoCa's tokens for the word "piano".
PIANO_STYLE_TOKENS = (325, 98, 979, 657, 802, 453, 475, 622, 729, 934, 567, 782)


@dataclass(frozen=True)
class Preset:
    """Defaults and control semantics selected as one."""

    name: str
    summary: str
    temperature: float
    top_k: int
    guidance: tuple[float, float, float]  # style, notes, drums
    onset_mode: bool  # True: onset then sustain (upstream's "Unmask"); False: 3 (upstream's "Mask")
    unmask_width: int | None  # None: ours (released pitches stay off); 0..127 upstream's
    style_tail_mask: bool  # prompt styles keep only levels 0..5
    default_style: tuple[int, ...] | None  # style before the first prompt (None: masked)
    use_mapper: bool  # MusicCoCa text->audio mapper for text prompts, when the package has it
    seed_rotation: int | None  # None: reset keeps the random stream; N: reset reseeds with seed + N
    drum_channel: int | None  # MIDI channel (1-based) taken as drum notes; None: every channel is pitches

    def param_defaults(self) -> dict[str, float]:
        """Mappable parameter values (mapping_config.PARAMS names) this preset starts from."""
        style, notes, drums = self.guidance
        return {"guidance.style": style, "guidance.notes": notes, "guidance.drums": drums,
                "temperature": self.temperature, "top_k": self.top_k}

    def apply(self, control) -> None:
        """Set a ``ControlState``'s parameters and semantics to this preset's."""
        control.set_temperature(self.temperature)
        control.set_top_k(self.top_k)
        for which, scale in zip(("style", "notes", "drums"), self.guidance):
            control.set_guidance(which, scale)
        control.set_onset_mode(self.onset_mode)
        control.set_unmask_width(self.unmask_width)
        control.set_style_tail_mask(self.style_tail_mask)
        control.set_default_style(None if self.default_style is None else list(self.default_style))
        control.set_seed_rotation(self.seed_rotation)


PRESETS: dict[str, Preset] = {
    DEFAULT: Preset(
        DEFAULT, "this project's defaults (knob values and note semantics of upstream's Python library)",
        temperature=cond.DEFAULT_TEMPERATURE, top_k=cond.DEFAULT_TOP_K,
        guidance=(cond.DEFAULT_CFG_STYLE, cond.DEFAULT_CFG_NOTES, cond.DEFAULT_CFG_DRUMS),
        onset_mode=True, unmask_width=None, style_tail_mask=False, default_style=None,
        use_mapper=False, seed_rotation=None, drum_channel=10,
    ),
    UPSTREAM_APP: Preset(
        UPSTREAM_APP, "upstream's apps (AUv3 plugin, standalone and Jam apps: the C++ live engine)",
        temperature=1.1, top_k=50, guidance=(1.6, 2.4, 4.0),
        onset_mode=False, unmask_width=0, style_tail_mask=True, default_style=PIANO_STYLE_TOKENS,
        use_mapper=True, seed_rotation=0, drum_channel=None,
    ),
}
NAMES = tuple(PRESETS)


def get(name: str | None) -> Preset:
    """The preset called ``name`` (None: the default); ValueError naming the choices."""
    if name is None:
        return PRESETS[DEFAULT]
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; expected one of {', '.join(NAMES)}")
    return PRESETS[name]


def resolve(cli: str | None, config: Path | None = None) -> Preset:
    """The preset from ``--preset``, else the mapping config's ``preset`` key, else the default."""
    from_config = None
    if config is not None:
        from bridge.control.mapping_config import MappingConfig

        from_config = MappingConfig.from_toml(config).preset
    if cli is not None and from_config is not None and cli != from_config:
        log.info("--preset %s overrides preset = %r in %s", cli, from_config, config)
    return get(cli if cli is not None else from_config)


def table_markdown() -> str:
    """The presets side by side, as a Markdown table (README and docs)."""
    rows = [
        ("temperature", lambda p: f"{p.temperature:g}"),
        ("top-k", lambda p: str(p.top_k)),
        ("guidance style / notes / drums", lambda p: " / ".join(f"{g:g}" for g in p.guidance)),
        ("onset mode (`/onset_mode`)", lambda p: "1 (onset, then sustain)" if p.onset_mode
         else "0 (held notes as 3: upstream's Mask)"),
        ("unmask width (`/notes/unmask_width`)", lambda p: "-1 (released notes stay off)"
         if p.unmask_width is None else str(p.unmask_width)),
        ("style tail masking (`/style/tail_mask`)", lambda p: "on (levels 6-11 masked)"
         if p.style_tail_mask else "off"),
        ("style before the first prompt", lambda p: "piano tokens" if p.default_style else "masked"),
        ("text->audio mapper (`mapper.onnx`)", lambda p: "used when present" if p.use_mapper else "not used"),
        ("seed rotation (`/seed_rotation`)", lambda p: "-1 (reset keeps the random stream)"
         if p.seed_rotation is None else f"{p.seed_rotation} (reset reseeds: seed + rotation)"),
        ("MIDI drum channel", lambda p: "none (every channel is pitches)" if p.drum_channel is None
         else str(p.drum_channel)),
    ]
    presets = list(PRESETS.values())
    out = ["| | " + " | ".join(f"`{p.name}`" for p in presets) + " |",
           "|---|" + "---|" * len(presets)]
    out += [f"| {label} | " + " | ".join(fn(p) for p in presets) + " |" for label, fn in rows]
    return "\n".join(out) + "\n"
