"""What the studio offers for download: the session's control events and its recent audio.

Events are every control message the daemon applied (OSC and studio alike),
in render's JSON Lines format (bridge/render.py ``load_events``), stamped with
the frame they apply to, so ``mrt-bridge render --events`` replays the session.
Audio is the last ``max_audio_s`` seconds of 48 kHz output, kept as 16-bit.
Both are bounded; what no longer fits is dropped and counted.
"""

from __future__ import annotations

import collections
import io
import json
import wave

import numpy as np

from bridge import FRAME_RATE, FRAME_SAMPLES, SAMPLE_RATE
from bridge.audio.pcm_stream import decode_header
from bridge.control import osc_api
from bridge.render import to_int16

MAX_EVENTS = 200_000
MAX_AUDIO_S = 300


class SessionRecorder:
    """Records applied control messages and output frames. Appends come from several threads."""

    def __init__(self, max_events: int = MAX_EVENTS, max_audio_s: float = MAX_AUDIO_S) -> None:
        self.max_events = max_events
        self._events: list[tuple[int, str, list]] = []
        self.events_dropped = 0
        self._audio: collections.deque[tuple[int, bytes]] = collections.deque(
            maxlen=max(1, int(max_audio_s * FRAME_RATE)))
        # The frame the next snapshot is taken for: control changes made now apply to it.
        self.next_frame = 0

    # -------------------------------------------------------------------- inputs
    def on_frame(self, frame_index: int) -> None:
        """ControlState frame hook: frame ``frame_index`` is being conditioned now."""
        self.next_frame = frame_index + 1

    def on_message(self, address: str, args: list) -> None:
        """OscServer listener: one applied control message (query routes are not events)."""
        found = osc_api.match(address)
        if found is None or found[0].section == osc_api.QUERY:
            return
        if len(self._events) >= self.max_events:
            self.events_dropped += 1
            return
        self._events.append((self.next_frame, address, list(args)))

    def add_packet(self, packet: bytes) -> None:
        """One PCM stream packet (bridge/audio/pcm_stream.py) of output audio."""
        head = decode_header(packet)
        samples = np.frombuffer(packet, "<f4", offset=head["header_size"], count=head["frame_count"] * head["channels"])
        self._audio.append((head["frame_index"], to_int16(samples).tobytes()))  # interleaved L R stays interleaved

    # ------------------------------------------------------------------- outputs
    @property
    def event_count(self) -> int:
        return len(self._events)

    @property
    def audio_seconds(self) -> float:
        return len(self._audio) * FRAME_SAMPLES / SAMPLE_RATE

    def events_jsonl(self) -> bytes:
        """The events as JSON Lines: ``{"frame": n, "address": ..., "args": [...]}`` per line."""
        lines = [json.dumps({"frame": f, "address": a, "args": args}, separators=(",", ":"), default=str)
                 for f, a, args in self._events[:]]
        return ("\n".join(lines) + "\n").encode() if lines else b""

    def wav(self) -> tuple[bytes, int, int]:
        """(16-bit stereo 48 kHz WAV file, first frame index, last frame index); -1s when empty."""
        frames = list(self._audio)
        buf = io.BytesIO()
        with wave.open(buf, "wb") as w:
            w.setnchannels(2)
            w.setsampwidth(2)
            w.setframerate(SAMPLE_RATE)
            w.writeframes(b"".join(pcm for _, pcm in frames))
        first, last = (frames[0][0], frames[-1][0]) if frames else (-1, -1)
        return buf.getvalue(), first, last
