"""serve --record DIR: a live take (OSC over UDP + rtmidi JACK MIDI) re-rendered offline gives the same codes."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import numpy as np
import pytest
import rtmidi

from tests.daw_util import ROOT, serve
from tests.jack_util import jack_server

pytestmark = [pytest.mark.jack]


CONFIG = """
[tempo]
bpm = 150
[prompts]
[rtpc.danger]
range = [0.0, 1.0]
slew = 0.5
targets = [{ param = "top_k", from = 40, to = 3 }]
[states.calm]
params = { "guidance.style" = 1.0 }
[states.tense]
params = { "guidance.style" = 6.0 }
quantize = "beat"
"""


def test_recorded_live_session_rerenders_to_the_same_codes(bundled_package, tmp_path) -> None:
    rec = tmp_path / "take"
    cfg = tmp_path / "map.toml"
    cfg.write_text(CONFIG)
    with jack_server():
        src = rtmidi.MidiOut(rtapi=rtmidi.API_UNIX_JACK, name="kbd")
        src.open_virtual_port("out")
        try:
            with serve(bundled_package, tmp_path / "daemon.log", "--audio", "null", "--midi", "jack",
                       "--midi-connect", "kbd:out", "--record", str(rec), "--config", str(cfg),
                       "--trace", str(tmp_path / "trace.jsonl")) as (_, osc):
                steps = [
                    lambda: osc.send("/style/tokens", *range(100, 112)),
                    lambda: src.send_message([0x90, 60, 100]),       # MIDI note on
                    lambda: osc.send("/guidance/style", 5.0),
                    lambda: src.send_message([0xB0, 7, 90]),         # CC 7 -> volume
                    lambda: osc.send("/note/on", 67, 80),
                    lambda: src.send_message([0x80, 60, 0]),
                    lambda: osc.send("/temperature", 0.9),
                    lambda: osc.send("/seed", 5),
                    lambda: osc.send("/status", osc.port),           # a query: not recorded
                    lambda: osc.send("/top_k", 2000),                # refused: not recorded
                    lambda: osc.send("/notes/panic"),
                    lambda: osc.send("/game/danger", 1.0),          # slews over 0.5 s
                    lambda: osc.send("/state", "tense"),             # waits for the next beat
                ]
                for step in steps:
                    step()
                    time.sleep(0.13)
                time.sleep(0.5)
        finally:
            src.close_port()
            src.delete()
    events = [json.loads(line) for line in (rec / "events.jsonl").read_text().splitlines()]
    addresses = [e["address"] for e in events]
    assert addresses == ["/style/tokens", "/note/on", "/guidance/style", "/volume", "/note/on", "/note/off",
                         "/temperature", "/seed", "/notes/panic", "/game/danger", "/state"], addresses
    assert events[1]["args"] == [60, 100] and events[3]["args"] == [pytest.approx(90 / 127)]
    frames = [e["frame"] for e in events]
    assert frames == sorted(frames) and frames[-1] - frames[0] >= 20, frames
    codes = [json.loads(line) for line in (rec / "codes.jsonl").read_text().splitlines()]
    live = np.array([c["codes"] for c in codes])
    assert [c["frame"] for c in codes] == list(range(len(codes))) and len(codes) > frames[-1] + 5
    out = tmp_path / "re.npy"
    r = subprocess.run([sys.executable, "-m", "bridge.cli", "render", "--model", str(bundled_package),
                        "--frames", str(len(codes)), "--events", str(rec / "events.jsonl"), "--config", str(cfg),
                        "--out", str(tmp_path / "re.wav"), "--tokens-out", str(out), "--provider", "cpu"],
                       cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    offline = np.load(out)
    first_diff = next((i for i in range(len(live)) if not np.array_equal(live[i], offline[i])), None)
    assert first_diff is None, f"frame {first_diff} differs (events at frames {frames})"
    # the control changes mattered: a render without them differs
    r = subprocess.run([sys.executable, "-m", "bridge.cli", "render", "--model", str(bundled_package),
                        "--frames", str(len(codes)), "--out", str(tmp_path / "plain.wav"),
                        "--tokens-out", str(tmp_path / "plain.npy"), "--provider", "cpu"],
                       cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert not np.array_equal(np.load(tmp_path / "plain.npy")[frames[0]:], live[frames[0]:])
    import wave

    with wave.open(str(rec / "out.wav")) as w:
        # every frame played; the one still in the overlapped codec at shutdown is not
        assert w.getframerate() == 48000 and w.getnframes() in (1920 * len(codes), 1920 * (len(codes) - 1))
