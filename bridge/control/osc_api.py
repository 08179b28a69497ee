"""The OSC address table: one place for addresses, argument types/ranges, handlers and docs.

Transport lives in bridge/control/osc_server.py; docs/osc-api.md is generated
from :data:`ROUTES` by bridge/control/osc_doc.py. Handlers only parse and
validate, then call ``ControlState`` / ``GameMapper`` setters; any problem is
a ``ValueError`` whose message is the reason logged by the server.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from bridge import conditioning as cond
from bridge.control import state as st
from bridge.control.mapping import GameMapper
from bridge.control.state import ControlState

MAX_TEXT = 1000


class ServerHooks(Protocol):
    """What handlers need from the transport (reply, subscriptions)."""

    def reply_status(self, sender: tuple[str, int], port: int | None) -> None: ...
    def subscribe(self, sender: tuple[str, int], port: int | None) -> None: ...
    def unsubscribe(self, sender: tuple[str, int], port: int | None) -> None: ...


@dataclass
class Context:
    """Objects a handler may act on."""

    state: ControlState
    mapper: GameMapper | None
    server: ServerHooks
    daw: Any = None  # bridge.control.daw.DawControls in the live daemon


@dataclass(frozen=True)
class Arg:
    """One OSC argument: kind is 'int', 'float', 'string' or 'bool'; count > 1 for fixed-length lists."""

    name: str
    kind: str
    lo: float | None = None
    hi: float | None = None
    optional: bool = False
    default: Any = None
    count: int = 1
    doc: str = ""

    def type_tag(self) -> str:
        tag = {"int": "i", "float": "f", "string": "s", "bool": "i"}[self.kind]
        return f"{tag}×{self.count}" if self.count > 1 else tag

    def range_text(self) -> str:
        if self.kind == "bool":
            return "0 or 1"
        if self.lo is None:
            return ""
        lo = int(self.lo) if self.kind == "int" else self.lo
        hi = int(self.hi) if self.kind == "int" else self.hi
        return f"{lo}..{hi}"


@dataclass(frozen=True)
class Route:
    """An address (its last segment may be a ``<param>``), its arguments, handler and doc."""

    address: str
    args: tuple[Arg, ...]
    # handler(ctx, param, args): param is the path parameter, or the sender for query routes
    handler: Callable[[Context, Any, list], None]
    doc: str
    section: str
    param_doc: str = ""

    @property
    def prefix(self) -> str | None:
        """``/game/`` for ``/game/<rtpc>``, None for fixed addresses."""
        if self.address.endswith(">"):
            return self.address[: self.address.rindex("/") + 1]
        return None


def _convert(arg: Arg, value: Any) -> Any:
    """Coerce one OSC value to ``arg``'s kind, or raise ValueError with the reason."""
    if arg.kind == "string":
        if not isinstance(value, str):
            raise ValueError(f"{arg.name}: expected a string, got {type(value).__name__}")
        if len(value) > MAX_TEXT:
            raise ValueError(f"{arg.name}: longer than {MAX_TEXT} characters")
        return value
    if isinstance(value, (str, bytes, bytearray)) or value is None:
        raise ValueError(f"{arg.name}: expected a number, got {type(value).__name__}")
    if arg.kind == "bool":
        if value in (0, 1):  # also True/False and 0.0/1.0
            return bool(value)
        raise ValueError(f"{arg.name}: expected 0 or 1")
    if not isinstance(value, (int, float)):
        raise ValueError(f"{arg.name}: expected a number, got {type(value).__name__}")  # noqa: TRY004
    if not math.isfinite(value):
        raise ValueError(f"{arg.name}: must be finite")
    if arg.kind == "int":
        if isinstance(value, float) and not value.is_integer():
            raise ValueError(f"{arg.name}: expected an integer")
        value = int(value)
    else:
        value = float(value)
    if arg.lo is not None and not arg.lo <= value <= arg.hi:
        raise ValueError(f"{arg.name}: out of range {arg.range_text()}")
    return value


def parse_args(route: Route, raw: list) -> list:
    """Check arity and convert every argument of ``route``."""
    specs: list[Arg] = []
    for a in route.args:
        specs.extend([a] * a.count)
    required = sum(a.count for a in route.args if not a.optional)
    if not required <= len(raw) <= len(specs):
        want = str(required) if required == len(specs) else f"{required}..{len(specs)}"
        raise ValueError(f"expected {want} argument(s), got {len(raw)}")
    out = [_convert(a, v) for a, v in zip(specs, raw)]
    out.extend(a.default for a in specs[len(raw):])
    return out


def _slot(param: str | None) -> int:
    if param is None or not param.isdigit() or not 0 <= int(param) < st.NUM_SLOTS:
        raise ValueError(f"slot must be 0..{st.NUM_SLOTS - 1}, got {param!r}")
    return int(param)


def _mapper(ctx: Context) -> GameMapper:
    if ctx.mapper is None:
        raise ValueError("no game mapping loaded (start the daemon with --config FILE.toml)")
    return ctx.mapper


_WEIGHT = Arg("weight", "float", st.WEIGHT_MIN, st.WEIGHT_MAX, optional=True, default=1.0,
              doc="relative weight in the blend; default 1")
_PITCH = Arg("pitch", "int", 0, 127, doc="MIDI pitch")
_FLAG = Arg("on", "bool", optional=True, default=True, doc="1 on, 0 off; omitted means 1")
_PORT = Arg("port", "int", 1, 65535, optional=True, default=None, doc="UDP port; default the sender's")
_GUIDANCE = Arg("scale", "float", cond.CFG_MIN, cond.CFG_MAX)


def _guidance(which: str, default: float) -> Route:
    return Route(
        f"/guidance/{which}", (_GUIDANCE,),
        lambda c, p, a: c.state.set_guidance(which, a[0]),
        f"Classifier-free guidance for {which} (default {default:g}). Quantised to the model's "
        f"bins: step {0.2 if which != 'drums' else 1.0:g}.",
        "Sampling",
    )


STYLE, NOTES, SAMPLING, TRANSPORT, QUERY, GAME = (
    "Style", "Notes and drums", "Sampling", "Output and transport", "Status and subscriptions",
    "Game mapping",
)
DAW = "DAW: MIDI learn and live input"


def _daw(ctx: Context):
    if ctx.daw is None:
        raise ValueError("only the live daemon (mrt-bridge serve) has MIDI learn and live input")
    return ctx.daw

ROUTES: tuple[Route, ...] = (
    # ---------------------------------------------------------------- style
    Route("/style/prompt/<slot>", (Arg("text", "string", doc="text prompt; empty clears the slot"), _WEIGHT),
          lambda c, p, a: c.state.set_slot(_slot(p), a[0], a[1]),
          "Set prompt slot to a text prompt with a weight. The style changes when the style "
          "service has encoded the blend; the previous style holds until then.",
          STYLE, "slot 0..5"),
    Route("/style/palette/<slot>", (Arg("name", "string", doc="palette name"), _WEIGHT),
          lambda c, p, a: c.state.set_slot(_slot(p), f"palette:{a[0]}" if a[0] else "", a[1]),
          "Set prompt slot to a named palette (a stored style) with a weight.", STYLE, "slot 0..5"),
    Route("/style/weight/<slot>", (Arg("weight", "float", st.WEIGHT_MIN, st.WEIGHT_MAX),),
          lambda c, p, a: c.state.set_slot_weight(_slot(p), a[0]),
          "Change only the weight of a prompt slot (0 takes it out of the blend).", STYLE, "slot 0..5"),
    Route("/style/tokens", (Arg("token", "int", 0, cond.STYLE_CODEBOOK_SIZE - 1, count=cond.NUM_STYLE_TOKENS),),
          lambda c, p, a: c.state.set_style_tokens(a),
          "Use 12 raw MusicCoCa style tokens now (bypasses prompts until the next prompt change).",
          STYLE),
    Route("/style/clear", (), lambda c, p, a: c.state.clear_style(),
          "Empty all six slots; the style becomes masked (unconditioned).", STYLE),
    Route("/style/tail_mask", (_FLAG,), lambda c, p, a: c.state.set_style_tail_mask(a[0]),
          "1: styles from prompts keep only their 6 coarsest levels, levels 6-11 are sent masked "
          "(upstream's live engine; on with --preset upstream-app). 0 (default): all 12 levels. "
          "/style/tokens are always used as given.", STYLE),
    # ---------------------------------------------------------------- notes
    Route("/note/on", (_PITCH, Arg("velocity", "int", 0, 127, optional=True, default=100,
                                   doc="0 means note-off; default 100")),
          lambda c, p, a: c.state.note_on(a[0], a[1]),
          "Note on: the pitch is ONSET (2) in the next frame, then SUSTAIN (1) while held.", NOTES),
    Route("/note/off", (_PITCH,), lambda c, p, a: c.state.note_off(a[0]),
          "Note off: the pitch is OFF (0) from the next frame (after its onset frame, if still pending).",
          NOTES),
    Route("/notes/unmask_width", (Arg("width", "int", -1, 127),),
          lambda c, p, a: c.state.set_unmask_width(None if a[0] < 0 else a[0]),
          "What pitches that are not sounding are sent as. -1 (default): masked (-1) until first "
          "played, then off (0) until /notes/clear. 0..127 (upstream's unmask width; 0 with --preset "
          "upstream-app): off (0) within +-width of a sounding pitch, masked elsewhere; 127: every "
          "pitch not sounding is off.", NOTES),
    Route("/notes", (Arg("state", "int", cond.MASKED, cond.NOTE_ANY, count=cond.NUM_PITCHES),),
          lambda c, p, a: c.state.set_notes(a),
          "All 128 pitch states at once: -1 masked, 0 off, 1 sustain, 2 onset (one frame, then 1), "
          "3 sustain-or-onset (model decides). With an unmask width (/notes/unmask_width >= 0) the "
          "pitches sent as -1 or 0 follow the width instead.", NOTES),
    Route("/notes/panic", (), lambda c, p, a: c.state.all_notes_off(),
          "All notes off: every held pitch and drum note is released (OFF).", NOTES),
    Route("/notes/clear", (), lambda c, p, a: c.state.clear_notes(),
          "Forget all pitches: every pitch back to masked (-1), the model plays freely.", NOTES),
    Route("/drums", (Arg("state", "int", cond.MASKED, cond.DRUMS_PLAY),),
          lambda c, p, a: c.state.set_drums(a[0]),
          "Latched drum state: -1 masked (model decides, default), 0 no drums, 1 drums.", NOTES),
    Route("/drums/hit", (), lambda c, p, a: c.state.drum_hit(),
          "Drum state PLAY (1) for one frame, then back to the latched /drums value.", NOTES),
    Route("/drumless", (_FLAG,), lambda c, p, a: c.state.set_drumless(a[0]),
          "Force the drum state to 0 (no drums) whatever /drums or drum notes say.", NOTES),
    Route("/onset_mode", (_FLAG,), lambda c, p, a: c.state.set_onset_mode(a[0]),
          "1 (default; upstream's \"Unmask\"): a held note is ONSET then SUSTAIN. 0 (upstream's "
          "\"Mask\", its app's default): held notes are sent as 3 (sustain-or-onset), letting the "
          "model choose where to articulate.", NOTES),
    Route("/midi_gate", (_FLAG,), lambda c, p, a: c.state.set_midi_gate(a[0]),
          "1: the output is gated: it fades out (1 s release) while no note or drum note is held "
          "or just struck, and back in (40 ms attack) on the next note, as upstream's app. "
          "0 (default): off.", NOTES),
    # ------------------------------------------------------------- sampling
    _guidance("style", cond.DEFAULT_CFG_STYLE),
    _guidance("notes", cond.DEFAULT_CFG_NOTES),
    _guidance("drums", cond.DEFAULT_CFG_DRUMS),
    Route("/temperature", (Arg("value", "float", st.TEMPERATURE_MIN, st.TEMPERATURE_MAX),),
          lambda c, p, a: c.state.set_temperature(a[0]),
          "Sampling temperature (default 1.3); 0 is exact greedy (argmax).", SAMPLING),
    Route("/top_k", (Arg("k", "int", st.TOP_K_MIN, st.TOP_K_MAX),),
          lambda c, p, a: c.state.set_top_k(a[0]), "Top-k sampling (default 40).", SAMPLING),
    Route("/seed", (Arg("seed", "int", st.SEED_MIN, st.SEED_MAX),),
          lambda c, p, a: c.state.request_seed(a[0]),
          "Reset and reseed the sampler at the next frame (also the base of /seed_rotation).", SAMPLING),
    Route("/seed_rotation", (Arg("rotation", "int", -1, st.SEED_ROTATION_MAX),),
          lambda c, p, a: c.state.set_seed_rotation(None if a[0] < 0 else a[0]),
          "-1 (default): /reset keeps the sampler's random stream (a new variation each time). "
          "0..1000 (upstream's seed rotation; 0 with --preset upstream-app): every /reset reseeds "
          "with the last /seed (else the start seed: 0, or render's --seed) + rotation, so a reset "
          "replays the same variation.",
          SAMPLING),
    Route("/reset", (), lambda c, p, a: c.state.request_reset(),
          "Reset the model's streaming state (fresh start) at the next frame.", SAMPLING),
    # ------------------------------------------------------------ transport
    Route("/pause", (), lambda c, p, a: c.state.set_paused(True),
          "Pause generation (the output fades out over ~2 frames first).", TRANSPORT),
    Route("/resume", (), lambda c, p, a: c.state.set_paused(False),
          "Resume generation (fades in).", TRANSPORT),
    Route("/mute", (_FLAG,), lambda c, p, a: c.state.set_muted(a[0]),
          "Mute (1, default) or unmute (0) the output; generation continues. Fades (10 ms), "
          "no click.", TRANSPORT),
    Route("/volume", (Arg("gain", "float", st.VOLUME_MIN, st.VOLUME_MAX),),
          lambda c, p, a: c.state.set_volume(a[0]),
          "Output gain, linear (default 1). Changes glide (10 ms smoothing), never click.", TRANSPORT),
    Route("/volume/db", (Arg("db", "float", st.VOLUME_DB_MIN, st.VOLUME_DB_MAX),),
          lambda c, p, a: c.state.set_volume_db(a[0]),
          "Output gain in dB (0 = unity, default); same as /volume with 10^(dB/20).", TRANSPORT),
    Route("/buffer", (Arg("samples", "int", st.BUFFER_SAMPLES_MIN, st.BUFFER_SAMPLES_MAX),),
          lambda c, p, a: c.state.request_buffer(a[0]),
          "Request an output buffer size in samples at 48 kHz (upstream offers 2048/4096/8192); "
          "the daemon rounds up to whole 1920-sample frames.", TRANSPORT),
    # ---------------------------------------------------------------- query
    Route("/status", (_PORT,), lambda c, p, a: c.server.reply_status(p, a[0]),
          "Reply /status/reply to the sender's address, at the sender's port or at `port` (`port` "
          "only from this machine). Reply arguments: i frame, f step p50 ms, f step p99 ms, "
          "i underruns, f ring fill in ms of audio buffered, s JSON with everything (at most "
          "8 kB; `{}` to a sender on another machine that is not subscribed). At most 20 "
          "replies per second.", QUERY),
    Route("/subscribe", (_PORT,), lambda c, p, a: c.server.subscribe(p, a[0]),
          "Receive /tick/beat, /tick/bar and a /status/reply per second at the sender's address "
          "(at most 16 subscribers). A subscription lapses 30 s after the last /subscribe "
          "(send it every few seconds to stay subscribed) and at once if the port is closed.",
          QUERY),
    Route("/unsubscribe", (_PORT,), lambda c, p, a: c.server.unsubscribe(p, a[0]),
          "Stop sending to that subscriber.", QUERY),
    # ----------------------------------------------------------------- game
    Route("/game/<rtpc>", (Arg("value", "float", doc="within the RTPC's configured range"),),
          lambda c, p, a: _mapper(c).set_rtpc(p or "", a[0]),
          "Set a game parameter (RTPC) declared in the mapping config; it slews to the value.",
          GAME, "an RTPC name from [rtpc.NAME]"),
    Route("/state", (Arg("name", "string", doc="a state from [states.NAME]"),),
          lambda c, p, a: _mapper(c).set_state(a[0]),
          "Go to a game state: crossfade to its preset, starting at the next beat/bar if quantised.",
          GAME),
    Route("/trigger", (Arg("name", "string", doc="a trigger from [triggers.NAME]"),),
          lambda c, p, a: _mapper(c).trigger(a[0]),
          "Fire a stinger (weight boost or note burst), quantised as configured.", GAME),
    Route("/tempo", (Arg("bpm", "float", 20.0, 400.0),
                     Arg("beats_per_bar", "int", 1, 16, optional=True, default=None)),
          lambda c, p, a: _mapper(c).set_tempo(a[0], a[1]),
          "Declare the game's tempo (beat phase is kept).", GAME),
    Route("/tempo/sync", (), lambda c, p, a: _mapper(c).sync(),
          "Make the next frame a downbeat (beat 1 of a new bar).", GAME),
    # ------------------------------------------------------------------ daw
    Route("/midi/learn", (Arg("target", "string", doc="an OSC address such as /guidance/notes, "
                                                      "/style/weight/2 or /game/danger"),),
          lambda c, p, a: _daw(c).require_learn().arm(a[0]),
          "Arm MIDI learn: the next control change (CC 0..119) moved on the MIDI input controls "
          "this parameter over its full range.", DAW),
    Route("/midi/learn/cancel", (), lambda c, p, a: _daw(c).require_learn().cancel(),
          "Disarm MIDI learn.", DAW),
    Route("/midi/learn/save", (), lambda c, p, a: _daw(c).require_learn().save(),
          "Write the learned bindings into the [midi.cc] table of the --config file (the rest of "
          "the file is kept; the file is replaced atomically).", DAW),
    Route("/input/amount", (Arg("amount", "float", 0.0, 1.0),),
          lambda c, p, a: _daw(c).require_audio_in().set_amount(a[0]),
          "Live audio in: how much of the input (mrt-bridge:in_L/in_R or the input device) is mixed "
          "with the model's own output before it is encoded as the model's previous frame. "
          "0 (default) = off: the model continues its own tokens.", DAW),
)

# Messages that each count (never coalesced into the latest value when the server sheds a flood).
EVENT_ADDRESSES = frozenset({
    "/note/on", "/note/off", "/notes/panic", "/notes/clear", "/drums/hit", "/style/clear", "/reset",
    "/seed", "/trigger", "/tempo/sync", "/status", "/subscribe", "/unsubscribe",
})

_EXACT = {r.address: r for r in ROUTES if r.prefix is None}
_PREFIXED = [r for r in ROUTES if r.prefix is not None]


def match(address: str) -> tuple[Route, str | None] | None:
    """Find the route for an address; returns (route, path parameter) or None."""
    route = _EXACT.get(address)
    if route is not None:
        return route, None
    for r in _PREFIXED:
        prefix = r.prefix or ""
        if address.startswith(prefix):
            rest = address[len(prefix):]
            if rest and "/" not in rest:
                return r, rest
    return None


def dispatch(ctx: Context, address: str, raw_args: list, sender: tuple[str, int]) -> None:
    """Route one message. Raises LookupError for unknown addresses, ValueError for bad input."""
    found = match(address)
    if found is None:
        raise LookupError("unknown address")
    route, param = found
    args = parse_args(route, list(raw_args))
    recorder = getattr(ctx.daw, "recorder", None)
    if recorder is not None and route.section not in (QUERY, DAW):  # serve --record: note it frame-exactly
        recorder.apply(lambda: route.handler(ctx, param, args), address, list(raw_args))
        return
    # path parameter for query routes is the sender (they reply to it)
    route.handler(ctx, sender if route.section == QUERY else param, args)


# --------------------------------------------------------------- streams
# `serve --streams N`: one daemon, N independent streams (ids 0..N-1), each with its own
# control state and PCM port. A stream's controls are the addresses above behind
# /stream/<id>; the transport (bridge/control/stream_osc.py) implements StreamHooks.
STREAMS = "Streams (serve --streams N)"
STREAM_PREFIX = "/stream/"
# Sections of ROUTES a stream accepts behind /stream/<id>; the others are daemon-wide.
PER_STREAM_SECTIONS = (STYLE, NOTES, SAMPLING, TRANSPORT)
NOT_PER_STREAM = ("/buffer",)


class StreamHooks(Protocol):
    """What the stream routes need from the multi-stream transport."""

    def open_stream(self, sender: tuple[str, int], sid: int | None, seed: int | None) -> None: ...
    def close_stream(self, sender: tuple[str, int], sid: int) -> None: ...
    def reply_stream_status(self, sender: tuple[str, int], sid: int, port: int | None) -> None: ...
    def forward(self, sender: tuple[str, int], sid: int, address: str, raw_args: list) -> None: ...


_SEED = Arg("seed", "int", st.SEED_MIN, st.SEED_MAX, optional=True, default=None,
            doc="sampler seed; default the stream id")

STREAM_ROUTES: tuple[Route, ...] = (
    Route("/stream/open", (_SEED,), lambda c, p, a: c.server.open_stream(p[0], None, a[0]),
          "Open the lowest-numbered closed stream: it joins the batch at the next frame with an empty "
          "state. Replies `/stream/opened i id, i pcm_port` to the sender, or `/stream/refused s reason` "
          "when all N streams are open.", STREAMS),
    Route("/stream/<id>/open", (_SEED,), lambda c, p, a: c.server.open_stream(p[0], p[1], a[0]),
          "Open stream `id` (same replies; refused if it is already open).", STREAMS, "stream 0..N-1"),
    Route("/stream/<id>/close", (), lambda c, p, a: c.server.close_stream(p[0], p[1]),
          "Close stream `id`: it leaves the batch (the others play on untouched), its PCM clients get "
          "no more packets; replies `/stream/closed i id`. Its controls are kept for a later open.",
          STREAMS, "stream 0..N-1"),
    Route("/stream/<id>/status", (_PORT,), lambda c, p, a: c.server.reply_stream_status(p[0], p[1], a[0]),
          "Reply `/stream/<id>/status/reply` with the `/status/reply` layout for that stream alone "
          "(its frames, underruns, ring fill, PCM clients, controls). `/status` replies the totals "
          "and a summary of every stream.", STREAMS, "stream 0..N-1"),
    Route("/stream/<id>/<address>", (), lambda c, p, a: c.server.forward(p[0], p[1], p[2], a),
          "Any address of the Style, Notes and drums, Sampling and Output and transport tables "
          "(except `/buffer`) for stream `id` only, with the same arguments, e.g. "
          "`/stream/2/style/prompt/0 s \"warm synth pads\"`, `/stream/0/temperature f 0.9`, "
          "`/stream/1/seed i 7`. Without --streams these addresses are unknown; with it the bare "
          "addresses are refused (name a stream).", STREAMS, "stream 0..N-1, then the address"),
)
_STREAM_OWN = {r.address[len("/stream/<id>"):]: r for r in STREAM_ROUTES[1:4]}


def match_stream(address: str) -> tuple[Route, int | None, str | None] | None:
    """(route, stream id, forwarded address) for a /stream/... address, else None."""
    if address == STREAM_ROUTES[0].address:
        return STREAM_ROUTES[0], None, None
    if not address.startswith(STREAM_PREFIX):
        return None
    head, sep, rest = address[len(STREAM_PREFIX):].partition("/")
    if not head.isdigit() or not sep or len(head) > 6:
        return None
    rest = "/" + rest
    own = _STREAM_OWN.get(rest)
    if own is not None:
        return own, int(head), None
    return STREAM_ROUTES[-1], int(head), rest


def check_per_stream(address: str) -> None:
    """Raise ValueError unless ``address`` is one a stream accepts behind /stream/<id>."""
    found = match(address)
    if found is None:
        raise LookupError("unknown address")
    if found[0].section not in PER_STREAM_SECTIONS or found[0].address in NOT_PER_STREAM:
        raise ValueError(f"{found[0].address} is not per stream")


def dispatch_stream(ctx: Context, address: str, raw_args: list, sender: tuple[str, int]) -> None:
    """Route one /stream/... message (``ctx.server`` implements StreamHooks). Raises like :func:`dispatch`."""
    found = match_stream(address)
    if found is None:
        raise LookupError("unknown address")
    route, sid, rest = found
    if rest is not None:
        route.handler(ctx, (sender, sid, rest), list(raw_args))
        return
    route.handler(ctx, (sender, sid), parse_args(route, list(raw_args)))
