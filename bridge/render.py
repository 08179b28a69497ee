"""Offline rendering: frames from an Engine driven by a timeline of control events.

Event files are JSON Lines in the live daemon's OSC vocabulary, so a recorded
live session can be re-rendered::

    {"frame": 0,   "address": "/style/tokens", "args": [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]}
    {"time": 2.5,  "address": "/note/on", "args": [60, 100]}
    {"frame": 100, "address": "/guidance/style", "args": [5.0]}

Each event applies before the frame it names (``time`` is seconds, 25 frames/s,
rounded down). Events are applied in file order within a frame.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
import wave
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from . import FRAME_RATE, FRAME_SAMPLES, SAMPLE_RATE
from .audio.gain import OutputGain
from .control import osc_api
from .control.state import ControlState
from .engine import Engine

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Event:
    frame: int
    address: str
    args: tuple
    line: int


def load_events(path: Path) -> list[Event]:
    """Parse and validate an events file; errors name the line."""
    events = []
    for n, raw in enumerate(Path(path).read_text().splitlines(), 1):
        if not raw.strip() or raw.lstrip().startswith("#"):
            continue
        try:
            obj = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}:{n}: not JSON ({exc.msg})") from None
        if not isinstance(obj, dict) or not isinstance(obj.get("address"), str):
            raise ValueError(f"{path}:{n}: expected an object with an 'address' string")
        if ("frame" in obj) == ("time" in obj):
            raise ValueError(f"{path}:{n}: give exactly one of 'frame' or 'time'")
        when = obj.get("frame", obj.get("time"))
        if isinstance(when, bool) or not isinstance(when, (int, float)) or not np.isfinite(when) or when < 0:
            raise ValueError(f"{path}:{n}: frame/time must be a number >= 0")
        frame = int(when) if "frame" in obj else int(when * FRAME_RATE)
        args = obj.get("args", [])
        if not isinstance(args, list):
            args = [args]
        if osc_api.match(obj["address"]) is None:
            raise ValueError(f"{path}:{n}: unknown address {obj['address']}")
        events.append(Event(frame, obj["address"], tuple(args), n))
    return sorted(events, key=lambda e: (e.frame, e.line))


class _CheckOnly:
    """A style resolver that only validates prompts (for the dry run of an events file)."""

    def __init__(self, styles) -> None:
        self.check_prompt = getattr(styles, "check_prompt", lambda prompt: None)

    def request(self, slots, on_ready) -> None:
        pass


def validate_events(events: list[Event], config=None, styles=None) -> None:
    """Dry-run every event on scratch state, so a bad one fails before frame 0, naming its line.

    Catches bad arguments, game events (/state, /trigger, /game/...) without a
    ``config``, unknown state/trigger/RTPC names and unknown palette styles.
    """
    from .control.mapping import GameMapper

    scratch = ControlState(style_resolver=_CheckOnly(styles))
    mapper = GameMapper(config, scratch) if config is not None else None
    ctx = osc_api.Context(state=scratch, mapper=mapper, server=_OfflineHooks())
    for ev in events:
        try:
            osc_api.dispatch(ctx, ev.address, list(ev.args), ("offline", 0))
        except (LookupError, ValueError) as exc:
            hint = " (game events need --config FILE.toml)" if "no game mapping" in str(exc) else ""
            raise ValueError(f"events line {ev.line} ({ev.address}): {exc}{hint}") from None


def check_writable(path: Path) -> Path:
    """Fail now, not after rendering, if ``path`` cannot be written (creates missing folders)."""
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"--out {path} is a folder; give a file name")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise ValueError(f"cannot write --out {path}: {exc.strerror or exc}") from None
    return path


class _OfflineHooks:
    """Render has no network peers: status queries and subscriptions are ignored."""

    def reply_status(self, sender, port) -> None:
        pass

    def subscribe(self, sender, port) -> None:
        pass

    def unsubscribe(self, sender, port) -> None:
        pass


@dataclass
class RenderResult:
    audio: np.ndarray  # float32 [frames * 1920, 2]
    codes: np.ndarray  # int64 [frames, 12]
    conditioning: np.ndarray  # int32 [frames, 144]: what each frame was conditioned on
    timings_ms: list[float] = field(default_factory=list)


def render(
    engine: Engine,
    frames: int,
    control: ControlState | None = None,
    events: list[Event] | None = None,
    *,
    mapper=None,
    styles=None,
    progress: bool = True,
) -> RenderResult:
    """Generate ``frames`` frames, applying ``events`` at their frame boundaries.

    ``styles`` (a StyleService) resolves text/palette prompts; render waits for it
    at every frame boundary, so a prompt takes effect on the frame of its event
    and the output does not depend on how fast embedding ran.
    """
    control = control or ControlState()
    ctx = osc_api.Context(state=control, mapper=mapper, server=_OfflineHooks())
    pending = list(events or [])
    audio = np.zeros((frames * FRAME_SAMPLES, 2), np.float32)
    codes = np.zeros((frames, 12), np.int64)
    conds = np.zeros((frames, 144), np.int32)
    timings = []
    gain = OutputGain()  # the daemon's click-free volume/mute/pause/gate envelopes
    i_event = 0
    for i in tqdm(range(frames), desc="render", unit="frame", disable=not progress):
        while i_event < len(pending) and pending[i_event].frame <= i:
            ev = pending[i_event]
            try:
                osc_api.dispatch(ctx, ev.address, list(ev.args), ("offline", 0))
            except (LookupError, ValueError) as exc:
                raise ValueError(f"event on line {ev.line} ({ev.address}): {exc}") from None
            i_event += 1
        if styles is not None:
            styles.wait_idle()
        snap = control.snapshot(i)
        if snap.reset:
            engine.reset()
        if snap.seed is not None:
            engine.reset(seed=snap.seed)
        if snap.reset or snap.seed is not None:
            gain.reset()
        conds[i] = snap.conditioning
        if not gain.needs_audio(snap.paused):
            continue
        frame = engine.step(snap.conditioning, snap.temperature, snap.top_k, guidance=snap.guidance)
        codes[i] = frame.codes
        timings.append(frame.timings_ms["total"])
        if frame.audio is not None:
            audio[i * FRAME_SAMPLES:(i + 1) * FRAME_SAMPLES] = gain.process(
                frame.audio, snap.volume, muted=snap.muted, paused=snap.paused, gated=snap.gated)
    if i_event < len(pending):
        log.warning("%d events after the last frame (%d) were not applied", len(pending) - i_event, frames - 1)
    return RenderResult(audio, codes, conds, timings)


def to_int16(audio: np.ndarray) -> np.ndarray:
    """Float [-1, 1] -> int16 the way upstream rounds it."""
    return np.round(32767.5 * np.clip(audio, -1.0, 1.0) - 0.5).astype(np.int16)


def write_wav(path: Path, audio: np.ndarray) -> None:
    """Write 16-bit PCM atomically: a temporary file beside ``path``, renamed when complete."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as f, wave.open(f, "wb") as w:
            w.setnchannels(audio.shape[1])
            w.setsampwidth(2)
            w.setframerate(SAMPLE_RATE)
            w.writeframes(to_int16(audio).tobytes())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
