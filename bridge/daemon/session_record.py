"""`serve --record DIR`: write a live take so that `render --events` reproduces it offline.

DIR gets:

- ``events.jsonl``: every control change in render's format, ``{"frame": n,
  "address": ..., "args": [...]}``, where n is the frame the change took effect
  in. OSC messages are recorded as received; MIDI notes and mapped CCs as
  their OSC equivalents (``/note/on``, ``/note/off``, ``/guidance/notes``, ...;
  a drum-channel note as ``/drums/hit``). Status queries and the DAW
  addresses (MIDI learn, input amount) are not recorded.
- ``out.wav``: the audio as produced (48 kHz, 16-bit stereo, one 1920-sample
  frame per frame, after volume and mute).
- ``codes.jsonl``: the 12 codec codes of every generated frame (``render
  --tokens-out`` writes the same codes as .npy), so a re-render can be checked.

Frame-exact: a change and the snapshot of a frame never interleave. The
recorder's lock is held while an OSC/MIDI change is applied (and noted) and
while the frame loop takes its snapshot, so a change lands in frame n if and
only if it is recorded with frame n.
"""

from __future__ import annotations

import json
import logging
import threading
import wave
from pathlib import Path

import mido
import numpy as np

from bridge.render import to_int16

log = logging.getLogger(__name__)


class SessionRecorder:
    """Records events, audio and codes of a live session into a directory."""

    def __init__(self, directory: Path) -> None:
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.lock = threading.Lock()
        self._pending: list[tuple[str, list]] = []
        self._frame = -1
        self._events = open(self.dir / "events.jsonl", "w", buffering=1, encoding="utf-8")  # noqa: SIM115
        self._codes = open(self.dir / "codes.jsonl", "w", buffering=1, encoding="utf-8")  # noqa: SIM115
        self._wav = wave.open(str(self.dir / "out.wav"), "wb")  # noqa: SIM115 - closed in close()
        self._wav.setnchannels(2)
        self._wav.setsampwidth(2)
        self._wav.setframerate(48_000)
        self.events = 0
        log.info("recording the session to %s (events.jsonl, out.wav, codes.jsonl)", self.dir)

    # -- control side (OSC and MIDI threads) ---------------------------------------
    def apply(self, change, address: str, args: list) -> None:
        """Run ``change()`` (applies one control change) and note it, atomically w.r.t. snapshots."""
        with self.lock:
            change()
            self._pending.append((address, [_plain(a) for a in args]))

    def midi_tap(self, handler):
        """A MidiHandler tap that applies each message itself, under the lock, and notes its OSC form."""

        def tap(raw: list[int]) -> bool:
            try:
                msg = mido.Message.from_bytes(list(raw))
            except (ValueError, TypeError, IndexError):
                return False  # the handler reports it
            with self.lock:
                handler.handle(msg)
                for address, args in midi_as_osc(msg, handler):
                    self._pending.append((address, args))
            return True

        return tap

    # -- frame side (the frame-loop thread) ------------------------------------------
    def wrap_control(self, control):
        """The control state as the frame loop should see it: snapshots stamp pending events."""
        return _RecordingControl(control, self)

    def wrap_engine(self, engine):
        """The engine as the frame loop should see it: every generated frame's codes are written."""
        return _RecordingEngine(engine, self)

    def _stamp(self, frame_index: int) -> None:
        self._frame = frame_index
        for address, args in self._pending:
            self._events.write(json.dumps({"frame": frame_index, "address": address, "args": args}) + "\n")
            self.events += 1
        self._pending.clear()

    def _record_codes(self, codes: np.ndarray) -> None:
        self._codes.write(json.dumps({"frame": self._frame, "codes": [int(c) for c in codes]}) + "\n")

    def publish(self, frames: np.ndarray, frame_index: int) -> None:
        """Frame-loop tap: the frame's 48 kHz audio as played (called on the codec thread when
        overlapped, one frame at a time, before close)."""
        self._wav.writeframesraw(to_int16(frames).tobytes())

    def close(self) -> None:
        with self.lock:
            for f in (self._events, self._codes):
                if not f.closed:
                    f.close()
            if self._wav is not None:
                self._wav.close()
                self._wav = None
        log.info("session recorded to %s: %d events, %d frames", self.dir, self.events, self._frame + 1)


class _RecordingControl:
    def __init__(self, control, recorder: SessionRecorder) -> None:
        self._control = control
        self._recorder = recorder

    def snapshot(self, frame_index: int):
        with self._recorder.lock:
            snap = self._control.snapshot(frame_index)
            self._recorder._stamp(frame_index)
        return snap

    def __getattr__(self, name: str):
        return getattr(self._control, name)


class _RecordingEngine:
    def __init__(self, engine, recorder: SessionRecorder) -> None:
        self._engine = engine
        self._recorder = recorder

    def generate(self, *args, **kwargs):
        frame = self._engine.generate(*args, **kwargs)
        self._recorder._record_codes(frame.codes)
        return frame

    def __getattr__(self, name: str):
        return getattr(self._engine, name)


def _plain(value):
    """OSC arguments as JSON values (python-osc may hand over numpy-free but odd types)."""
    if isinstance(value, (bool, int, float, str)) or value is None:
        return value
    return str(value)


_CC_ADDRESS = {"guidance.style": "/guidance/style", "guidance.notes": "/guidance/notes",
               "guidance.drums": "/guidance/drums", "temperature": "/temperature", "top_k": "/top_k",
               "volume": "/volume"}


def midi_as_osc(msg: mido.Message, handler) -> list[tuple[str, list]]:
    """The OSC messages equivalent to a MIDI message as ``handler`` applies it (possibly none)."""
    if msg.type in ("note_on", "note_off"):
        on = msg.type == "note_on" and msg.velocity > 0
        if handler.is_drum_channel(msg.channel):
            return [("/drums/hit", [])] if on else []
        return [("/note/on", [msg.note, msg.velocity])] if on else [("/note/off", [msg.note])]
    if msg.type == "control_change":
        if msg.control in (120, 123):
            return [("/notes/panic", [])]
        target = handler.cc_map().get(msg.control)
        if target is None:
            return []
        v = target.lo + (target.hi - target.lo) * msg.value / 127.0
        p = target.param
        if p in _CC_ADDRESS:
            return [(_CC_ADDRESS[p], [round(v) if p == "top_k" else v])]
        if p.startswith("slot."):
            return [(f"/style/weight/{p.split('.')[1]}", [v])]
        if p.startswith("game."):
            return [(f"/game/{p[5:]}", [v])]
    if msg.type == "reset":
        return [("/notes/panic", [])]
    return []
