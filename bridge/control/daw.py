"""The DAW features the OSC table reaches: MIDI learn and the live-input mix (None when absent)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass
class DawControls:
    """``learn``: a bridge.control.midi_learn.MidiLearn; ``audio_in``: a bridge.daemon.audio_in.InputMix."""

    learn: Any = None
    audio_in: Any = None
    recorder: Any = None  # bridge.daemon.session_record.SessionRecorder with serve --record

    def require_learn(self):
        if self.learn is None:
            raise ValueError("MIDI learn needs MIDI input (serve without --midi none)")
        return self.learn

    def require_audio_in(self):
        if self.audio_in is None:
            raise ValueError("no live audio input (it needs --audio jack, or --audio device and an input device)")
        return self.audio_in

    def status(self) -> dict:
        out: dict = {}
        if self.learn is not None:
            out["midi_learn"] = self.learn.status()
        if self.audio_in is not None:
            out["audio_in"] = self.audio_in.status()
        return out
