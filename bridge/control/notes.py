"""Note tracking: note on/off events -> the 128 pitch states of one frame.

The per-pitch state machine is upstream's live engine's
(``core/src/midi_note_tracker.{h,cpp}``): IDLE, ONSET (struck, not yet seen
by a frame), SUSTAIN (seen, still held) and ONSET_RELEASED (struck and
released before any frame saw it: the frame still sees the onset once). A
frame reads every pitch exactly once (:meth:`NoteTracker.frame`), which moves
ONSET to SUSTAIN and ONSET_RELEASED to IDLE.

What a frame sends for those states (``frame``):

- onset mode on (upstream's "Unmask", ``onset_mode == 1``): ONSET and
  ONSET_RELEASED -> 2, SUSTAIN -> 1; off (upstream's "Mask", its default):
  every non-IDLE pitch -> 3 (the model decides where to articulate);
- pitches not sounding follow the masking policy. ``unmask_width=None`` is
  ours (sticky): a pitch played since start or :meth:`clear` is 0 (off),
  never-played pitches are -1 (masked). ``unmask_width=W`` (0..127) is
  upstream's (``MLXEngine::Impl::populate_condition_tokens``): W >= 127 makes
  every non-sounding pitch 0; below that, 0 only within +-W of a sounding
  pitch and -1 elsewhere (W = 0: everything not sounding is -1).

Unlike upstream, the tracker counts voices: a pitch is held while any source
(MIDI channel 0..15, or :data:`API_SOURCE` for OSC / the game mapper) holds
it, so of two voices in unison the first note-off does not release the pitch.
A note-on from any voice is a fresh onset (as upstream's ``noteOn``). Not
thread-safe: ``ControlState`` calls it under its lock.
"""

from __future__ import annotations

import numpy as np

from bridge import conditioning as cond

IDLE, ONSET, SUSTAIN, ONSET_RELEASED = 0, 1, 2, 3  # upstream's NoteState values
NUM_MIDI_CHANNELS = 16
API_SOURCE = NUM_MIDI_CHANNELS  # OSC, the game mapper, scripts: one more "channel"
UNMASK_WIDTH_MAX = 127  # upstream: W >= 127 means "every non-held pitch is off"


class NoteTracker:
    """Pitch states from note events; see the module docstring for the semantics."""

    def __init__(self) -> None:
        self.state = np.full(cond.NUM_PITCHES, IDLE, np.int8)
        self.voices = np.zeros((NUM_MIDI_CHANNELS + 1, cond.NUM_PITCHES), bool)
        self.touched = np.zeros(cond.NUM_PITCHES, bool)  # played since clear (sticky policy)
        self.free = np.zeros(cond.NUM_PITCHES, bool)  # held as 3 whatever the onset mode (/notes)

    def note_on(self, pitch: int, source: int = API_SOURCE) -> None:
        """A voice strikes ``pitch``: ONSET (midi_note_tracker.cpp ``noteOn``)."""
        self.voices[source, pitch] = True
        self.state[pitch] = ONSET
        self.touched[pitch] = True
        self.free[pitch] = False

    def note_off(self, pitch: int, source: int = API_SOURCE) -> None:
        """A voice releases ``pitch``; the pitch is released when no voice holds it."""
        self.voices[source, pitch] = False
        self.touched[pitch] = True
        if self.voices[:, pitch].any():
            return
        self._release(np.array([pitch]))

    def _release(self, pitches: np.ndarray) -> None:
        # midi_note_tracker.cpp noteOff: ONSET -> ONSET_RELEASED, SUSTAIN -> IDLE, else unchanged
        st = self.state[pitches]
        self.state[pitches] = np.where(st == ONSET, ONSET_RELEASED, np.where(st == SUSTAIN, IDLE, st))
        self.free[pitches] = False

    def release_source(self, source: int | None = None) -> None:
        """All notes off for one source (a MIDI channel's CC 120/123), or for all (``None``: panic)."""
        if source is None:
            self.voices[:] = False
        else:
            self.voices[source] = False
        released = np.nonzero((self.state != IDLE) & ~self.voices.any(axis=0))[0]
        self.touched[released] = True
        self._release(released)

    def set_states(self, states: np.ndarray) -> None:
        """Set every pitch from explicit states -1..3 (``/notes``): 2 onset, 1 sustain, 3 free."""
        self.voices[:] = False
        held = states >= cond.NOTE_SUSTAIN
        self.voices[API_SOURCE] = held
        self.state[:] = np.where(states == cond.NOTE_ONSET, ONSET, np.where(held, SUSTAIN, IDLE))
        self.free[:] = states == cond.NOTE_ANY
        self.touched[:] = states != cond.MASKED

    def clear(self) -> None:
        """Forget everything: no voices, every pitch IDLE and untouched."""
        self.state[:] = IDLE
        self.voices[:] = False
        self.touched[:] = False
        self.free[:] = False

    def sounding(self) -> np.ndarray:
        """Pitches a frame read now would send as sounding (non-IDLE); does not advance."""
        return self.state != IDLE

    def frame(self, onset_mode: bool, unmask_width: int | None) -> np.ndarray:
        """This frame's 128 pitch states (-1..3); advances the state machine once per pitch."""
        # midi_note_tracker.cpp evaluateAndUpdate: observe, then ONSET -> SUSTAIN, ONSET_RELEASED -> IDLE
        observed = self.state.copy()
        self.state[observed == ONSET] = SUSTAIN
        self.state[observed == ONSET_RELEASED] = IDLE
        active = observed != IDLE
        if unmask_width is None:
            notes = np.where(self.touched, cond.NOTE_OFF, cond.MASKED).astype(np.int32)
        elif unmask_width >= UNMASK_WIDTH_MAX:
            notes = np.full(cond.NUM_PITCHES, cond.NOTE_OFF, np.int32)
        else:
            notes = np.full(cond.NUM_PITCHES, cond.MASKED, np.int32)
            for p in np.nonzero(active)[0]:
                notes[max(0, p - unmask_width):min(cond.NUM_PITCHES, p + unmask_width + 1)] = cond.NOTE_OFF
        # mlx_engine.cpp calculate_token: Unmask (onset mode on) 2 / 1, Mask 3
        onset = (observed == ONSET) | (observed == ONSET_RELEASED)
        if onset_mode:
            notes[observed == SUSTAIN] = cond.NOTE_SUSTAIN
            notes[onset] = cond.NOTE_ONSET
            notes[active & self.free] = cond.NOTE_ANY
        else:
            notes[active] = cond.NOTE_ANY
        return notes
