"""Thread-safe latest-value store of every live control, read once per frame.

Writers (OSC server, MIDI input, game-state mapper) call the setters from
their own threads; each setter validates, raises ``ValueError`` with a clear
message on bad input, and changes nothing in that case. The frame-loop thread
calls :meth:`ControlState.snapshot` once per frame boundary and gets an
immutable :class:`ControlSnapshot`. Never call anything here from an audio
callback: it takes a lock.

Note semantics (see docs/osc-api.md, "Notes and drums"; the state machine is
upstream's live engine's, in bridge/control/notes.py):

- a note-on makes its pitch ONSET (2) in the first snapshot after it, SUSTAIN
  (1) in later snapshots while held, OFF (0) after note-off; a velocity-0
  note-on is a note-off; a note on+off inside one frame still yields one onset
  frame (then OFF); a pitch held by two voices (MIDI channels, or OSC) is
  released by the last note-off;
- masking policy (unmask width, default ``None``, ours): pitches never touched
  since start or ``clear_notes()`` are MASKED (-1), the model is free to play
  them; a released pitch stays OFF (0) until ``clear_notes()``. With an
  unmask width W (0..127, upstream's): W >= 127 sends OFF for every pitch not
  sounding, smaller W sends OFF only within +-W of a sounding pitch and MASKED
  elsewhere;
- onset mode (default on, upstream's "Unmask"): when off (upstream's "Mask"),
  held pitches are sent as 3 ("sustain or onset", the model decides the
  articulation) instead of 2 then 1;
- MIDI gate (default off): when on, ``snapshot.gated`` is set in every frame
  in which no pitch or drum note is held or just struck; the output then fades
  out (1 s release) and back in (40 ms attack) when a note comes.

Style: prompt results can have their finer levels masked (style tail masking,
upstream's levels 6..11); raw ``set_style_tokens`` are always used as given.
A default style (upstream's "piano" tokens) may stand in until the first
prompt. Seed rotation (``None`` by default: a reset keeps the sampler's random
stream): when set, every reset reseeds the sampler with the last ``/seed``
(else the engine's start seed, ``set_seed_base``) plus the rotation, so a
reset replays the same variation.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from bridge import conditioning as cond
from bridge.control.notes import API_SOURCE, NUM_MIDI_CHANNELS, UNMASK_WIDTH_MAX, NoteTracker
from bridge.control.style_protocol import StyleResolver

log = logging.getLogger(__name__)

NUM_SLOTS = 6
WEIGHT_MIN, WEIGHT_MAX = 0.0, 10.0
TEMPERATURE_MIN, TEMPERATURE_MAX = 0.0, 3.0  # 0 is exact greedy (the engine adds T * gumbel)
TOP_K_MIN, TOP_K_MAX = 1, 1024
SEED_MIN, SEED_MAX = 0, 2**31 - 1
VOLUME_MIN, VOLUME_MAX = 0.0, 2.0
VOLUME_DB_MIN, VOLUME_DB_MAX = -60.0, 12.0
BUFFER_SAMPLES_MIN, BUFFER_SAMPLES_MAX = 1920, 96000
GUIDANCE_NAMES = ("style", "notes", "drums")
SEED_ROTATION_MIN, SEED_ROTATION_MAX = 0, 1000  # upstream's AUv3 parameter range
# Upstream keeps only the coarsest style levels (mlx_engine.h kMusicCoCaMaskedTailLevels = 6).
STYLE_TAIL_MASKED_LEVELS = 6
# A style request with no answer after this long no longer blocks new ones.
STYLE_REQUEST_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class ControlSnapshot:
    """Everything the frame loop needs for one frame (immutable).

    ``seed``, ``reset`` and ``buffer_samples`` are one-shot requests: they
    appear in exactly one snapshot. ``conditioning`` is read-only.
    """

    frame_index: int
    conditioning: np.ndarray  # int32[144], raw values (see bridge.conditioning)
    temperature: float
    top_k: int
    seed: int | None
    reset: bool
    paused: bool
    muted: bool
    volume: float
    version: int
    buffer_samples: int | None = None
    # Raw guidance scales (style, notes, drums): the engine mixes logits with them;
    # the conditioning vector carries only their bins.
    guidance: tuple[float, float, float] = (cond.DEFAULT_CFG_STYLE, cond.DEFAULT_CFG_NOTES, cond.DEFAULT_CFG_DRUMS)
    # MIDI gate closed: gate on and no note or drum note held or just struck (output fades out).
    gated: bool = False


def _check_finite(name: str, value: float) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name}: expected a number, got {value!r}") from None
    if not math.isfinite(v):
        raise ValueError(f"{name}: must be finite, got {v!r}")
    return v


def _check_range(name: str, value: float, lo: float, hi: float) -> float:
    v = _check_finite(name, value)
    if not lo <= v <= hi:
        raise ValueError(f"{name}: {v:g} outside {lo:g}..{hi:g}")
    return v


def _check_int(name: str, value: int, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name}: expected an integer, got {value!r}")  # noqa: TRY004
    v = int(value)
    if not lo <= v <= hi:
        raise ValueError(f"{name}: {v} outside {lo}..{hi}")
    return v


def _check_pitch(pitch: int) -> int:
    return _check_int("pitch", pitch, 0, cond.NUM_PITCHES - 1)


def _source(channel: int | None) -> int:
    """The note tracker's voice source for a MIDI channel 0..15 (None: OSC/API)."""
    if channel is None:
        return API_SOURCE
    return _check_int("MIDI channel", channel, 0, NUM_MIDI_CHANNELS - 1)


def _check_tokens(tokens: object) -> np.ndarray:
    try:
        arr = np.asarray(tokens)
    except Exception:  # noqa: BLE001 - anything unconvertible is bad input
        raise ValueError("style tokens: expected 12 integers") from None
    if arr.shape != (cond.NUM_STYLE_TOKENS,) or not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"style tokens: expected 12 integers, got shape {arr.shape} {arr.dtype}")
    if ((arr < 0) | (arr >= cond.STYLE_CODEBOOK_SIZE)).any():
        raise ValueError(f"style tokens: each must be in 0..{cond.STYLE_CODEBOOK_SIZE - 1}")
    return arr.astype(np.int32)


class ControlState:
    """Latest value of every control; see the module docstring for semantics."""

    def __init__(self, style_resolver: StyleResolver | None = None) -> None:
        self._lock = threading.Lock()
        self._resolver = style_resolver
        self._version = 0
        # style
        self._style_tokens: np.ndarray | None = None
        self._slots: list[tuple[str, float]] = [("", 0.0)] * NUM_SLOTS
        self._style_gen = 0           # bumped on every slot change
        self._style_applied_gen = 0   # generation of the tokens in use
        self._style_in_flight_since: float | None = None
        self._style_dirty = False
        self._style_raw = False       # tokens came from set_style_tokens (never tail-masked)
        self._style_tail_mask = False
        self._default_style: np.ndarray | None = None
        # notes
        self._notes = NoteTracker()
        self._unmask_width: int | None = None
        self._drum_held = np.zeros(cond.NUM_PITCHES, bool)
        self._drum_hit = False
        self._drums = cond.MASKED
        # params
        self._guidance = {
            "style": cond.DEFAULT_CFG_STYLE,
            "notes": cond.DEFAULT_CFG_NOTES,
            "drums": cond.DEFAULT_CFG_DRUMS,
        }
        self._temperature = cond.DEFAULT_TEMPERATURE
        self._top_k = cond.DEFAULT_TOP_K
        self._seed: int | None = None
        self._seed_base = 0
        self._seed_rotation: int | None = None
        self._reset = False
        self._buffer_samples: int | None = None
        self._paused = False
        self._muted = False
        self._volume = 1.0
        self._drumless = False
        self._onset_mode = True
        self._midi_gate = False
        # frame hooks and last snapshot
        self._hooks: list[Callable[[int], None]] = []
        self._hook_failures: dict[int, int] = {}
        self._last: ControlSnapshot | None = None

    # ------------------------------------------------------------------ wiring
    def set_style_resolver(self, resolver: StyleResolver | None) -> None:
        """Attach (or detach) the style service after construction."""
        with self._lock:
            self._resolver = resolver
        self._request_style()

    def add_frame_hook(self, hook: Callable[[int], None]) -> None:
        """Run ``hook(frame_index)`` at the start of every snapshot (the mapper's advance)."""
        with self._lock:
            self._hooks.append(hook)

    def _bump(self) -> None:
        self._version += 1

    # ------------------------------------------------------------------- style
    def set_slot(self, slot: int, prompt: str, weight: float) -> None:
        """Set prompt slot ``slot`` (0..5) to text or ``palette:NAME`` with a weight."""
        slot = _check_int("slot", slot, 0, NUM_SLOTS - 1)
        if not isinstance(prompt, str):
            raise ValueError(f"prompt: expected a string, got {prompt!r}")  # noqa: TRY004
        prompt = prompt.strip()
        if len(prompt) > 1000:
            raise ValueError("prompt: longer than 1000 characters")
        if prompt.startswith("palette:") and not prompt[len("palette:"):].strip():
            raise ValueError("prompt: palette name is empty")
        check = getattr(self._resolver, "check_prompt", None)
        if check is not None and prompt:
            check(prompt)  # e.g. an unknown palette name: rejected here, never queued
        weight = _check_range("weight", weight, WEIGHT_MIN, WEIGHT_MAX)
        with self._lock:
            if self._slots[slot] == (prompt, weight):
                return
            self._slots[slot] = (prompt, weight)
            self._style_changed_locked()
        self._request_style()

    def set_slot_weight(self, slot: int, weight: float) -> None:
        """Change only the weight of prompt slot ``slot``."""
        slot = _check_int("slot", slot, 0, NUM_SLOTS - 1)
        weight = _check_range("weight", weight, WEIGHT_MIN, WEIGHT_MAX)
        with self._lock:
            prompt, old = self._slots[slot]
            if old == weight:
                return
            self._slots[slot] = (prompt, weight)
            self._style_changed_locked()
        self._request_style()

    def clear_style(self) -> None:
        """Empty all prompt slots and mask the style (unconditioned)."""
        with self._lock:
            self._slots = [("", 0.0)] * NUM_SLOTS
            self._style_gen += 1
            self._style_applied_gen = self._style_gen
            self._style_tokens = None
            self._style_raw = False
            self._style_dirty = False
            self._bump()

    def set_style_tokens(self, tokens: object) -> None:
        """Use 12 raw style tokens (0..1023) now; overrides pending prompt results."""
        arr = _check_tokens(tokens)
        with self._lock:
            self._style_gen += 1
            self._style_applied_gen = self._style_gen
            self._style_tokens = arr
            self._style_raw = True
            self._style_dirty = False
            self._bump()

    def set_style_tail_mask(self, on: bool) -> None:
        """On: prompt-derived style levels 6..11 are sent masked (upstream's live engine)."""
        self._set_flag("_style_tail_mask", on)

    def set_default_style(self, tokens: object | None) -> None:
        """Style tokens used until the first prompt or token change (None: masked, ours)."""
        arr = None if tokens is None else _check_tokens(tokens)
        with self._lock:
            self._default_style = arr
            if self._style_gen == 0:  # nothing chosen yet: the default stands in now
                self._style_tokens = arr
                self._style_raw = False
            self._bump()

    def _style_changed_locked(self) -> None:
        self._style_gen += 1
        self._style_dirty = True
        self._bump()
        if not any(p and w > 0 for p, w in self._slots):
            # Nothing active: the style is masked right away.
            self._style_applied_gen = self._style_gen
            self._style_tokens = None
            self._style_raw = False
            self._style_dirty = False

    def _request_style(self) -> None:
        """Send the latest slots to the resolver; at most one request in flight."""
        with self._lock:
            resolver = self._resolver
            if resolver is None or not self._style_dirty:
                return
            now = time.monotonic()
            since = self._style_in_flight_since
            if since is not None and now - since < STYLE_REQUEST_TIMEOUT_S:
                return  # the answer to the current request triggers the next one
            gen = self._style_gen
            slots = [(p, w) for p, w in self._slots if p and w > 0]
            self._style_dirty = False
            self._style_in_flight_since = now

        def on_ready(tokens: np.ndarray, _gen: int = gen) -> None:
            self._style_ready(_gen, tokens)

        try:
            resolver.request(slots, on_ready)
        except Exception:
            log.exception("style resolver failed on %r; previous style holds", slots)
            with self._lock:
                self._style_in_flight_since = None

    def _style_ready(self, gen: int, tokens: np.ndarray) -> None:
        try:
            arr = _check_tokens(tokens)
        except ValueError as exc:
            log.error("style resolver returned bad tokens (%s); previous style holds", exc)
            arr = None
        with self._lock:
            self._style_in_flight_since = None
            if arr is not None and gen > self._style_applied_gen:
                self._style_applied_gen = gen
                self._style_tokens = arr
                self._style_raw = False
                self._bump()
        self._request_style()

    # ------------------------------------------------------------------- notes
    def note_on(self, pitch: int, velocity: int = 100, channel: int | None = None) -> None:
        """Pitch on (onset in the next frame); velocity 0 means note-off.

        ``channel``: the MIDI channel 0..15 holding the note, or None for OSC/API.
        """
        pitch = _check_pitch(pitch)
        velocity = _check_int("velocity", velocity, 0, 127)
        source = _source(channel)
        if velocity == 0:
            self.note_off(pitch, channel)
            return
        with self._lock:
            self._notes.note_on(pitch, source)
            self._bump()

    def note_off(self, pitch: int, channel: int | None = None) -> None:
        """Release ``channel``'s voice on a pitch (OFF from the next frame once no voice holds it)."""
        pitch = _check_pitch(pitch)
        source = _source(channel)
        with self._lock:
            self._notes.note_off(pitch, source)
            self._bump()

    def set_notes(self, states: object) -> None:
        """Set all 128 pitch states at once (-1..3); 2 yields one onset frame then 1."""
        try:
            arr = np.asarray(states)
        except Exception:  # noqa: BLE001
            raise ValueError("notes: expected 128 integers") from None
        if arr.shape != (cond.NUM_PITCHES,) or not np.issubdtype(arr.dtype, np.integer):
            raise ValueError(f"notes: expected 128 integers, got shape {arr.shape} {arr.dtype}")
        if ((arr < cond.MASKED) | (arr > cond.NOTE_ANY)).any():
            raise ValueError("notes: each pitch state must be in -1..3")
        with self._lock:
            self._notes.set_states(arr)
            self._bump()

    def all_notes_off(self, channel: int | None = None, drums: bool | None = None) -> None:
        """Release held pitches: all (panic, ``channel=None``) or one MIDI channel's (CC 120/123).

        ``drums``: also release drum notes; default: only for a panic.
        """
        source = None if channel is None else _source(channel)
        with self._lock:
            self._notes.release_source(source)
            release_drums = channel is None if drums is None else drums
            if release_drums:
                self._drum_held[:] = False
            self._bump()

    def clear_notes(self) -> None:
        """Forget all pitches: every pitch back to MASKED (-1), drum notes released."""
        with self._lock:
            self._notes.clear()
            self._drum_held[:] = False
            self._drum_hit = False
            self._bump()

    def set_unmask_width(self, width: int | None) -> None:
        """Masking of pitches not sounding: None = ours (sticky), 0..127 = upstream's unmask width."""
        if width is not None:
            width = _check_int("unmask width", width, 0, UNMASK_WIDTH_MAX)
        with self._lock:
            self._unmask_width = width
            self._bump()

    # ------------------------------------------------------------------- drums
    def set_drums(self, value: int) -> None:
        """Latched drum state: -1 masked (model decides), 0 none, 1 play."""
        value = _check_int("drums", value, cond.MASKED, cond.DRUMS_PLAY)
        with self._lock:
            self._drums = value
            self._bump()

    def drum_on(self, pitch: int, velocity: int = 100) -> None:
        """Drum note (drum channel): PLAY for at least the next frame and while held."""
        pitch = _check_pitch(pitch)
        velocity = _check_int("velocity", velocity, 0, 127)
        if velocity == 0:
            self.drum_off(pitch)
            return
        with self._lock:
            self._drum_held[pitch] = True
            self._drum_hit = True
            self._bump()

    def drum_off(self, pitch: int) -> None:
        """Release a drum note; with none held the latched /drums value applies."""
        pitch = _check_pitch(pitch)
        with self._lock:
            self._drum_held[pitch] = False
            self._bump()

    def drum_hit(self) -> None:
        """One frame of PLAY in the next snapshot."""
        with self._lock:
            self._drum_hit = True
            self._bump()

    # ------------------------------------------------------------------ params
    def set_guidance(self, which: str, scale: float) -> None:
        """Guidance (CFG) scale for 'style', 'notes' or 'drums', -1..7."""
        if which not in GUIDANCE_NAMES:
            raise ValueError(f"guidance: unknown {which!r}, expected one of {GUIDANCE_NAMES}")
        scale = _check_range(f"guidance {which}", scale, cond.CFG_MIN, cond.CFG_MAX)
        with self._lock:
            self._guidance[which] = scale
            self._bump()

    def set_temperature(self, value: float) -> None:
        """Sampling temperature 0..3 (0 = exact greedy)."""
        value = _check_range("temperature", value, TEMPERATURE_MIN, TEMPERATURE_MAX)
        with self._lock:
            self._temperature = value
            self._bump()

    def set_top_k(self, value: int) -> None:
        """Top-k sampling, 1..1024."""
        value = _check_int("top_k", value, TOP_K_MIN, TOP_K_MAX)
        with self._lock:
            self._top_k = value
            self._bump()

    def request_seed(self, seed: int) -> None:
        """Reseed the sampler at the next frame boundary."""
        seed = _check_int("seed", seed, SEED_MIN, SEED_MAX)
        with self._lock:
            self._seed = seed
            self._seed_base = seed
            self._bump()

    def set_seed_base(self, seed: int) -> None:
        """The seed the engine started with: what seed rotation adds to until a /seed arrives."""
        seed = _check_int("seed", seed, SEED_MIN, SEED_MAX)
        with self._lock:
            self._seed_base = seed

    def set_seed_rotation(self, rotation: int | None) -> None:
        """None: a reset keeps the random stream (ours). 0..1000: every reset reseeds with
        the seed base (last /seed, else the start seed) + rotation: the same variation (upstream's)."""
        if rotation is not None:
            rotation = _check_int("seed rotation", rotation, SEED_ROTATION_MIN, SEED_ROTATION_MAX)
        with self._lock:
            self._seed_rotation = rotation
            self._bump()

    def request_reset(self) -> None:
        """Reset the model's streaming state at the next frame boundary."""
        with self._lock:
            self._reset = True
            self._bump()

    def request_buffer(self, samples: int) -> None:
        """Ask the frame loop for a new audio buffer size (samples at 48 kHz)."""
        samples = _check_int("buffer samples", samples, BUFFER_SAMPLES_MIN, BUFFER_SAMPLES_MAX)
        with self._lock:
            self._buffer_samples = samples
            self._bump()

    def _set_flag(self, attr: str, value: bool) -> None:
        if not isinstance(value, (bool, np.bool_)):
            raise ValueError(f"{attr.strip('_')}: expected true/false, got {value!r}")  # noqa: TRY004
        with self._lock:
            setattr(self, attr, bool(value))
            self._bump()

    def set_paused(self, paused: bool) -> None:
        """Pause or resume generation."""
        self._set_flag("_paused", paused)

    def set_muted(self, muted: bool) -> None:
        """Mute or unmute the output (generation continues)."""
        self._set_flag("_muted", muted)

    def set_drumless(self, drumless: bool) -> None:
        """Force the drum state to NONE (0), whatever /drums or drum notes say."""
        self._set_flag("_drumless", drumless)

    def set_onset_mode(self, on: bool) -> None:
        """On: note-on is ONSET then SUSTAIN; off: held pitches are 3 (model decides)."""
        self._set_flag("_onset_mode", on)

    def set_midi_gate(self, on: bool) -> None:
        """On: output muted in frames where no pitch or drum note is held or struck."""
        self._set_flag("_midi_gate", on)

    def set_volume(self, volume: float) -> None:
        """Output gain 0..2 (linear)."""
        volume = _check_range("volume", volume, VOLUME_MIN, VOLUME_MAX)
        with self._lock:
            self._volume = volume
            self._bump()

    def set_volume_db(self, db: float) -> None:
        """Output gain in decibels, -60..+12 (0 dB = unity; the only way above linear 2.0)."""
        db = _check_range("volume dB", db, VOLUME_DB_MIN, VOLUME_DB_MAX)
        with self._lock:
            self._volume = 10.0 ** (db / 20.0)
            self._bump()

    # ---------------------------------------------------------------- readers
    def _run_hooks(self, frame_index: int) -> None:
        with self._lock:
            hooks = list(self._hooks)
        for hook in hooks:
            try:
                hook(frame_index)
            except Exception:
                n = self._hook_failures.get(id(hook), 0)
                self._hook_failures[id(hook)] = n + 1
                if n == 0:
                    log.exception("frame hook %r failed (further failures counted, not logged)", hook)

    def snapshot(self, frame_index: int) -> ControlSnapshot:
        """Run frame hooks, then return this frame's controls; consumes one-shot requests."""
        self._run_hooks(frame_index)
        with self._lock:
            sounding = self._notes.sounding()
            notes = self._notes.frame(self._onset_mode, self._unmask_width)
            drum_active = self._drum_hit or bool(self._drum_held.any())
            if self._drumless:
                drums = cond.DRUMS_NONE
            elif drum_active:
                drums = cond.DRUMS_PLAY
            else:
                drums = self._drums
            style = self._style_tokens
            if style is not None and self._style_tail_mask and not self._style_raw:
                style = style.copy()
                style[cond.NUM_STYLE_TOKENS - STYLE_TAIL_MASKED_LEVELS:] = cond.MASKED
            seed = self._seed
            if self._reset and seed is None and self._seed_rotation is not None:
                seed = (self._seed_base + self._seed_rotation) % (SEED_MAX + 1)
            vec = cond.build_vector(
                style, notes, drums,
                self._guidance["style"], self._guidance["notes"], self._guidance["drums"],
            )
            vec.setflags(write=False)
            gated = self._midi_gate and not (bool(sounding.any()) or drum_active)
            snap = ControlSnapshot(
                frame_index=int(frame_index),
                conditioning=vec,
                temperature=self._temperature,
                top_k=self._top_k,
                seed=seed,
                reset=self._reset,
                paused=self._paused,
                muted=self._muted,
                gated=gated,
                volume=self._volume,
                version=self._version,
                buffer_samples=self._buffer_samples,
                guidance=(self._guidance["style"], self._guidance["notes"], self._guidance["drums"]),
            )
            self._drum_hit = False
            self._seed = None
            self._reset = False
            self._buffer_samples = None
            self._last = snap
        return snap

    def status(self) -> dict:
        """Current control values (plain Python types, JSON-serialisable)."""
        with self._lock:
            last = self._last
            out: dict = {
                "version": self._version,
                "slots": [{"prompt": p, "weight": w} for p, w in self._slots],
                "style_tokens": None if self._style_tokens is None else self._style_tokens.tolist(),
                "style_pending": self._style_dirty or self._style_in_flight_since is not None,
                "guidance": dict(self._guidance),
                "temperature": self._temperature,
                "top_k": self._top_k,
                "paused": self._paused,
                "muted": self._muted,
                "volume": self._volume,
                "drumless": self._drumless,
                "onset_mode": self._onset_mode,
                "unmask_width": self._unmask_width,
                "style_tail_mask": self._style_tail_mask,
                "default_style": None if self._default_style is None else self._default_style.tolist(),
                "seed_rotation": self._seed_rotation,
                "midi_gate": self._midi_gate,
                "drums": self._drums,
                "notes_held": np.nonzero(self._notes.voices.any(axis=0))[0].tolist(),
                "drum_notes_held": np.nonzero(self._drum_held)[0].tolist(),
            }
        out["conditioning"] = None if last is None else summarize(last.conditioning)
        out["last_frame"] = None if last is None else last.frame_index
        return out


def summarize(vec: np.ndarray) -> dict:
    """A compact, readable summary of a raw 144-int conditioning vector."""
    notes = vec[cond.NOTES_SLICE]
    style = vec[cond.STYLE_SLICE]
    return {
        "style_tokens": None if (style == cond.MASKED).all() else style.tolist(),
        "onsets": np.nonzero(notes == cond.NOTE_ONSET)[0].tolist(),
        "sustained": np.nonzero(notes == cond.NOTE_SUSTAIN)[0].tolist(),
        "free": np.nonzero(notes == cond.NOTE_ANY)[0].tolist(),
        "off": int((notes == cond.NOTE_OFF).sum()),
        "masked": int((notes == cond.MASKED).sum()),
        "drums": int(vec[cond.DRUMS_INDEX]),
        "cfg_bins": [int(vec[cond.CFG_STYLE_INDEX]), int(vec[cond.CFG_NOTES_INDEX]),
                     int(vec[cond.CFG_DRUMS_INDEX])],
    }
