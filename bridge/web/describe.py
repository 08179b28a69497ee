"""JSON description of the OSC address table and the mapping config, for the studio page.

The page builds every control from this: it has no list of addresses of its own.
"""

from __future__ import annotations

from bridge import FRAME_RATE, SAMPLE_RATE
from bridge import conditioning as cond
from bridge.control import osc_api
from bridge.control import state as st
from bridge.control.mapping_config import MappingConfig

# Where the page reads the live value of a one-argument route in the pushed status
# (a dotted path into the /status payload), so its widget follows changes from any source.
STATUS_PATHS = {
    "/guidance/style": "control.guidance.style",
    "/guidance/notes": "control.guidance.notes",
    "/guidance/drums": "control.guidance.drums",
    "/temperature": "control.temperature",
    "/top_k": "control.top_k",
    "/volume": "control.volume",
    "/mute": "control.muted",
    "/drums": "control.drums",
    "/drumless": "control.drumless",
    "/onset_mode": "control.onset_mode",
    "/midi_gate": "control.midi_gate",
}


def _arg(a: osc_api.Arg) -> dict:
    return {"name": a.name, "kind": a.kind, "lo": a.lo, "hi": a.hi, "optional": a.optional,
            "default": a.default, "count": a.count, "doc": a.doc}


def describe_routes() -> list[dict]:
    """Every route of the address table as plain JSON types (handlers left out)."""
    return [{
        "address": r.address,
        "prefix": r.prefix,
        "section": r.section,
        "doc": r.doc,
        "param_doc": r.param_doc,
        # Query routes reply over UDP to the sender: the studio refuses them (it pushes status itself).
        "query": r.section == osc_api.QUERY,
        "status": STATUS_PATHS.get(r.address),
        "args": [_arg(a) for a in r.args],
    } for r in osc_api.ROUTES]


def describe_config(config: MappingConfig | None) -> dict | None:
    """The loaded game mapping (what the page needs to draw its sliders and buttons)."""
    if config is None:
        return None
    return {
        "prompts": [{"name": n, "text": t} for n, t in config.prompts],
        "bpm": config.bpm,
        "beats_per_bar": config.beats_per_bar,
        "initial_state": config.initial_state,
        "rtpcs": [{"name": r.name, "lo": r.lo, "hi": r.hi, "default": r.default, "slew_s": r.slew_s,
                   "curve": r.curve} for r in config.rtpcs.values()],
        "states": [{"name": s.name, "crossfade_s": s.crossfade_s, "quantize": s.quantize}
                   for s in config.states.values()],
        "triggers": [{"name": t.name, "kind": t.kind, "quantize": t.quantize} for t in config.triggers.values()],
    }


def describe(config: MappingConfig | None) -> dict:
    """Everything the page loads once at start (``GET /api/studio.json``)."""
    return {
        "routes": describe_routes(),
        "slots": st.NUM_SLOTS,
        "frame_rate": FRAME_RATE,
        "sample_rate": SAMPLE_RATE,
        # Number of guidance bins (style, notes, drums) in the conditioning, for the piano roll.
        "cfg_bins": [cond.CFG_BINS_STYLE_NOTES, cond.CFG_BINS_STYLE_NOTES, cond.CFG_BINS_DRUMS],
        "config": describe_config(config),
    }
