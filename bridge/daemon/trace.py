"""Per-frame engine trace: when each frame was conditioned, with what, and when it plays.

Records are kept in memory (the last ``keep``) for the status reply and,
with ``--trace FILE``, appended as JSON lines (line-buffered, so a test or a
tail -f sees each frame as it is produced).
"""

from __future__ import annotations

import collections
import json
import logging
from pathlib import Path
from typing import IO

from bridge.control.state import summarize

log = logging.getLogger(__name__)


class FrameTrace:
    """Collects one record per produced frame."""

    def __init__(self, path: str | Path | None = None, keep: int = 250) -> None:
        self.records: collections.deque[dict] = collections.deque(maxlen=keep)
        self.path = Path(path) if path else None
        self._file: IO[str] | None = None
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = open(self.path, "w", buffering=1, encoding="utf-8")  # noqa: SIM115
            log.info("writing engine trace to %s", self.path)

    def record(self, frame: int, wall_time: float, play_at: float, step_ms: float | None,
               snap, fill_frames: int) -> dict:
        """Add the record of one frame; ``snap`` is its ControlSnapshot."""
        rec = {
            "frame": frame,
            "t": round(wall_time, 6),
            "play_at": round(play_at, 6),
            "step_ms": None if step_ms is None else round(step_ms, 3),
            "ring_fill": fill_frames,
            "version": snap.version,
            "paused": snap.paused,
            "muted": snap.muted,
            "gated": snap.gated,
            "volume": snap.volume,
            "temperature": snap.temperature,
            "top_k": snap.top_k,
            **summarize(snap.conditioning),
        }
        self.records.append(rec)
        if self._file is not None:
            self._file.write(json.dumps(rec, separators=(",", ":")) + "\n")
        return rec

    @property
    def last(self) -> dict | None:
        return self.records[-1] if self.records else None

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
