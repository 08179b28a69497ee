"""The studio's HTTP + WebSocket server with real sockets and a real websockets client.

A real ControlState, GameMapper (examples/adaptive_soundtrack.toml) and OscServer
on UDP loopback; the page's transport is exercised without a browser here
(tests/test_web_studio.py drives the page in headless Chromium).
"""

from __future__ import annotations

import io
import json
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import wave
from pathlib import Path

import numpy as np
import pytest
from pythonosc.udp_client import SimpleUDPClient
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from bridge import FRAME_SAMPLES
from bridge.audio.pcm_stream import decode_header
from bridge.control import osc_api
from bridge.control.mapping import GameMapper
from bridge.control.mapping_config import MappingConfig
from bridge.control.osc_server import OscServer
from bridge.control.state import ControlState
from bridge.daemon.trace import FrameTrace
from bridge.render import load_events
from bridge.web.server import MAX_MESSAGE_BYTES, WebStudio

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "examples" / "adaptive_soundtrack.toml"


class Rig:
    def __init__(self) -> None:
        self.control = ControlState()
        self.mapper = GameMapper(MappingConfig.from_toml(CONFIG), self.control)
        self.control.add_frame_hook(self.mapper.advance)
        self.trace = FrameTrace()
        self.osc = OscServer(self.control, self.mapper, lambda: {"frame": 0}, port=0, status_interval=0)
        self.osc.start()
        self.studio = WebStudio("127.0.0.1", 0, self.trace)
        self.studio.attach(self.osc, self.control, self.mapper)
        self.studio.start()
        self.base = f"http://127.0.0.1:{self.studio.port}"
        self.ws_url = f"ws://127.0.0.1:{self.studio.port}/ws"

    def frames(self, n: int) -> None:
        """Run ``n`` frame boundaries the way the frame loop does (snapshot + trace)."""
        for _ in range(n):
            i = self.control.status()["last_frame"]
            i = 0 if i is None else i + 1
            snap = self.control.snapshot(i)
            self.trace.record(i, time.time(), time.time(), 1.0, snap, 0)

    def close(self) -> None:
        self.studio.close()
        self.osc.stop()


@pytest.fixture()
def rig():
    r = Rig()
    yield r
    r.close()


def get(url: str, headers: dict | None = None) -> tuple[int, dict, bytes]:
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def recv_until(ws, predicate, timeout: float = 5.0) -> dict:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        msg = json.loads(ws.recv(timeout=max(0.01, end - time.monotonic())))
        if predicate(msg):
            return msg
    raise AssertionError("no matching message")


def test_page_and_description(rig) -> None:
    status, headers, body = get(rig.base + "/")
    assert status == 200 and b"studio.js" in body
    assert "connect-src 'self'" in headers["Content-Security-Policy"]
    for name in ("studio.js", "studio.css", "pcm-worklet.js"):
        assert get(f"{rig.base}/static/{name}")[0] == 200
    assert get(rig.base + "/static/../server.py")[0] == 404
    assert get(rig.base + "/nope")[0] == 404
    status, _, body = get(rig.base + "/api/studio.json")
    desc = json.loads(body)
    # One address table: the page is described exactly the routes the daemon dispatches.
    assert [r["address"] for r in desc["routes"]] == [r.address for r in osc_api.ROUTES]
    assert {r["address"] for r in desc["routes"] if r["query"]} == {"/status", "/subscribe", "/unsubscribe"}
    assert desc["slots"] == 6
    assert [r["name"] for r in desc["config"]["rtpcs"]] == ["danger"]
    assert [s["name"] for s in desc["config"]["states"]] == ["explore", "combat"]
    assert [t["name"] for t in desc["config"]["triggers"]] == ["stinger", "hit"]


def test_foreign_host_and_origin_are_refused(rig) -> None:
    assert get(rig.base + "/", {"Host": "attacker.example:80"})[0] == 403
    with pytest.raises(InvalidStatus) as info:
        connect(rig.ws_url, origin="http://attacker.example")
    assert info.value.response.status_code == 403
    with connect(rig.ws_url, origin=f"http://127.0.0.1:{rig.studio.port}") as ws:
        assert json.loads(ws.recv(timeout=5))["type"] == "status"


def test_control_goes_through_the_osc_dispatch(rig) -> None:
    with connect(rig.ws_url) as ws:
        first = json.loads(ws.recv(timeout=5))
        assert first["type"] == "status" and first["status"]["game"]["state"] == "explore"
        ws.send(json.dumps({"address": "/temperature", "args": [0.5]}))
        ws.send(json.dumps({"address": "/game/danger", "args": [0.75]}))
        ws.send(json.dumps({"address": "/note/on", "args": [64, 90]}))
        # The same validation and reason as over OSC, reported back to the page.
        ws.send(json.dumps({"address": "/temperature", "args": [99]}))
        err = recv_until(ws, lambda m: m["type"] == "error")
        assert err == {"type": "error", "address": "/temperature", "reason": "value: out of range 0.0..3.0"}
        ws.send(json.dumps({"address": "/status", "args": []}))
        err = recv_until(ws, lambda m: m["type"] == "error")
        assert "OSC-only" in err["reason"]
        ws.send("{not json")
        assert recv_until(ws, lambda m: m["type"] == "error")["address"] == ""
        status = recv_until(ws, lambda m: m["type"] == "status" and m["status"]["control"]["temperature"] == 0.5)
    control = status["status"]["control"]
    assert control["notes_held"] == [64]
    assert status["status"]["game"]["rtpc"]["danger"]["target"] == 0.75
    # Counted where OSC counts: 4 dispatched (one rejected); the query and the garbage never reached it.
    osc = status["status"]["osc"]
    assert (osc["received"], osc["rejected"], osc["shed"]) == (4, 1, 0)
    assert rig.studio.invalid == 2


def test_session_events_replay_with_render(rig, tmp_path) -> None:
    rig.frames(5)
    with connect(rig.ws_url) as ws:
        ws.recv(timeout=5)
        ws.send(json.dumps({"address": "/state", "args": ["combat"]}))
        ws.send(json.dumps({"address": "/note/on", "args": [60]}))
        recv_until(ws, lambda m: m["type"] == "status" and m["status"]["control"]["notes_held"] == [60])
    rig.frames(3)
    SimpleUDPClient("127.0.0.1", rig.osc.address[1]).send_message("/note/off", [60])  # OSC is recorded too
    deadline = time.monotonic() + 5
    while rig.studio.recorder.event_count < 3 and time.monotonic() < deadline:
        time.sleep(0.02)
    status, headers, body = get(rig.base + "/download/events.jsonl")
    assert status == 200 and "attachment" in headers["Content-Disposition"]
    path = tmp_path / "events.jsonl"
    path.write_bytes(body)
    events = load_events(path)
    assert [(e.frame, e.address, e.args) for e in events] == [
        (5, "/state", ("combat",)), (5, "/note/on", (60,)), (8, "/note/off", (60,))]


def test_audio_stream_and_wav_download(rig) -> None:
    rng = np.random.default_rng(0)
    frames = [rng.uniform(-0.5, 0.5, (FRAME_SAMPLES, 2)).astype(np.float32) for _ in range(3)]
    with connect(rig.ws_url.replace("/ws", "/ws/audio")) as ws:
        deadline = time.monotonic() + 5
        while not rig.studio.status()["listeners"] and time.monotonic() < deadline:
            time.sleep(0.01)
        for i, f in enumerate(frames):
            rig.studio.tap.publish(f, 100 + i)
        packets = [ws.recv(timeout=5) for _ in frames]
    for i, (packet, f) in enumerate(zip(packets, frames)):
        head = decode_header(packet)  # the PCM stream's packet, byte for byte
        assert (head["frame_index"], head["sequence"], head["frame_count"]) == (100 + i, i, FRAME_SAMPLES)
        got = np.frombuffer(packet, "<f4", offset=head["header_size"]).reshape(-1, 2)
        np.testing.assert_array_equal(got, f)
    status, headers, body = get(rig.base + "/download/audio.wav")
    assert status == 200 and "session-frames-100-102.wav" in headers["Content-Disposition"]
    with wave.open(io.BytesIO(body)) as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth(), w.getnframes()) == (48000, 2, 2, 3 * FRAME_SAMPLES)
        pcm = np.frombuffer(w.readframes(w.getnframes()), "<i2").reshape(-1, 2)
    np.testing.assert_allclose(pcm[:FRAME_SAMPLES] / 32767.0, frames[0], atol=1e-4)


def test_oversized_message_closes_and_flood_is_shed(rig) -> None:
    with connect(rig.ws_url, max_size=None) as ws:
        ws.recv(timeout=5)
        ws.send(json.dumps({"address": "/style/prompt/0", "args": ["x" * MAX_MESSAGE_BYTES, 1.0]}))
        with pytest.raises(ConnectionClosed) as info:
            for _ in range(50):
                ws.recv(timeout=5)
        assert info.value.rcvd.code == 1009  # message too big
    with connect(rig.ws_url) as ws:
        ws.recv(timeout=5)
        for i in range(2000):
            ws.send(json.dumps({"address": "/top_k", "args": [1 + i % 100]}))
        err = recv_until(ws, lambda m: m["type"] == "error" and "too many" in m["reason"])
        assert err["address"] == ""
    deadline = time.monotonic() + 10
    while rig.studio.received < 2000 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert rig.studio.received == 2000  # the oversized message was never taken in
    assert rig.studio.shed > 0
    assert rig.osc.received == rig.studio.received - rig.studio.shed
    assert rig.control.status()["slots"][0]["prompt"] != "x" * MAX_MESSAGE_BYTES


def test_busy_port_is_one_clear_line(rig) -> None:
    with pytest.raises(RuntimeError, match=r"cannot serve the web studio on 127\.0\.0\.1:\d+ .*--web PORT"):
        WebStudio("127.0.0.1", rig.studio.port)
    with socket.create_connection(("127.0.0.1", rig.studio.port), timeout=2) as s:  # still serving
        s.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n" % rig.studio.port)
        assert s.recv(12) == b"HTTP/1.1 200"


def test_a_page_that_stops_reading_loses_packets_not_audio(rig) -> None:
    """A stalled listener: its outbox overflows and is counted; the tap never blocks the frame loop."""
    frame = np.zeros((FRAME_SAMPLES, 2), np.float32)
    with connect(rig.ws_url.replace("/ws", "/ws/audio"), max_queue=1, close_timeout=0.5) as ws:
        deadline = time.monotonic() + 5
        while not rig.studio.status()["listeners"] and time.monotonic() < deadline:
            time.sleep(0.01)
        for i in range(400):  # 16 s of audio (6 MB) at once; this page reads none of it
            rig.studio.tap.publish(frame, i)
            if i % 40 == 0:
                time.sleep(0.05)  # let the server thread move what it can
        deadline = time.monotonic() + 10
        while rig.studio.status()["audio_dropped"] == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert rig.studio.status()["audio_dropped"] > 0
        ws.recv(timeout=5)  # the connection is alive and still delivers
    assert rig.studio.recorder.audio_seconds > 0


def test_web_flags_are_checked_before_anything_starts() -> None:
    for args, message in ((["--web-host", "0.0.0.0"], "--web-host needs --web"),
                          (["--web", "70000"], "--web PORT must be 0..65535")):
        proc = subprocess.run([sys.executable, "-m", "bridge.cli", "serve", "--audio", "null", *args],
                              capture_output=True, text=True, timeout=60, cwd=ROOT)
        assert proc.returncode != 0 and message in proc.stderr, proc.stderr
