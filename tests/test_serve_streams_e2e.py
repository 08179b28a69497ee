"""`mrt-bridge serve --streams N` end to end: real daemon subprocess, real OSC over UDP, real TCP PCM clients.

Proves: every open stream plays on its own PCM port; a stream opened over OSC
plays exactly what a lone single-stream ``Engine`` with its seed plays (audio
within 1 LSB), while another stream keeps playing; per-stream controls reach
only their stream; a full daemon refuses ``/stream/open`` with a reason; a
closed stream stops while the others play on; ``/status`` carries totals and
every stream, ``/stream/<id>/status`` one stream; bad ids and bare addresses are
refused and the daemon lives on; SIGTERM exits cleanly.
"""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

from bridge.audio.pcm_stream import read_packet
from bridge.control.state import ControlState
from bridge.engine import Engine
from bridge.presets import get as get_preset

ROOT = Path(__file__).resolve().parents[1]
STREAMS = 3
LSB = 1 / 32768


def free_port_range(n: int) -> int:
    """A base port with ``n`` consecutive TCP ports free on 127.0.0.1 right now."""
    for _ in range(100):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            base = s.getsockname()[1]
        if base + n > 65535:
            continue
        socks = []
        try:
            for p in range(base, base + n):
                s = socket.socket()
                socks.append(s)
                s.bind(("127.0.0.1", p))
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError("no free port range")


class Osc:
    """A UDP OSC client that also receives the daemon's replies."""

    def __init__(self, port: int) -> None:
        from pythonosc.osc_message import OscMessage

        self._parse = OscMessage
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(5.0)
        self.port = port

    def send(self, address: str, *args) -> None:
        from bridge.control.osc_server import _build

        self.sock.sendto(_build(address, list(args)), ("127.0.0.1", self.port))

    def ask(self, address: str, *args, reply: str) -> list:
        """Send, then return the arguments of the first reply at ``reply``."""
        self.send(address, *args)
        end = time.monotonic() + 10
        while time.monotonic() < end:
            msg = self._parse(self.sock.recvfrom(65536)[0])
            if msg.address == reply:
                return list(msg.params)
        raise AssertionError(f"no {reply} after {address}")

    def status(self, address: str = "/status", reply: str = "/status/reply") -> dict:
        return json.loads(self.ask(address, reply=reply)[-1])


class PcmClient:
    """Reads packets of one stream's PCM port on a thread."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.packets: list[tuple[dict, np.ndarray]] = []
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            while True:
                self.packets.append(read_packet(self.sock))
        except (OSError, ConnectionError):
            pass

    def wait(self, n: int, timeout: float = 30.0) -> None:
        end = time.monotonic() + timeout
        while len(self.packets) < n and time.monotonic() < end:
            time.sleep(0.02)
        assert len(self.packets) >= n, f"got {len(self.packets)} PCM packets, wanted {n}"

    def close(self) -> None:
        self.sock.close()


@contextmanager
def streams_daemon(*extra: str) -> Iterator[tuple[subprocess.Popen, int, int, list[str]]]:
    from tests.clients.daemon import free_port

    osc_port = free_port(socket.SOCK_DGRAM)
    base = free_port_range(STREAMS)
    cmd = [sys.executable, "-m", "bridge.cli", "serve", "--streams", str(STREAMS), "--audio", "null",
           "--osc-port", str(osc_port), "--pcm-port", str(base), "--threads", "1", *extra]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1)
    log: list[str] = []
    ready = threading.Event()

    def pump() -> None:
        for line in proc.stdout:
            log.append(line)
            if "OSC listening" in line:
                ready.set()

    threading.Thread(target=pump, daemon=True).start()
    try:
        end = time.monotonic() + 180
        while not ready.wait(0.2):
            assert proc.poll() is None and time.monotonic() < end, "daemon did not start:\n" + "".join(log)
        yield proc, osc_port, base, log
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)


def _reference_audio(package: Path, seed: int, frames: int) -> list[np.ndarray]:
    """What a lone single-stream Engine plays under a fresh stream's default controls."""
    control = ControlState()
    get_preset("default").apply(control)
    snap = control.snapshot(0)
    engine = Engine(package, "cpu", seed=seed, num_cfgs=2, threads=1)
    return [engine.step(snap.conditioning, snap.temperature, snap.top_k, guidance=snap.guidance).audio
            for _ in range(frames)]


@pytest.mark.parametrize("overlap", ["off", "on"])
def test_streams_daemon_end_to_end(bundled_package: Path, overlap: str) -> None:
    with streams_daemon("--open-streams", "1", "--overlap", overlap) as (proc, osc_port, base, log):
        osc = Osc(osc_port)
        pcm0 = PcmClient(base)
        pcm0.wait(5)
        # Stream 1 opens over OSC with its own seed while stream 0 plays: the client is already
        # connected, so it hears the stream from its first frame.
        pcm1 = PcmClient(base + 1)
        time.sleep(0.3)
        assert pcm1.packets == []  # closed: nothing is published
        assert osc.ask("/stream/1/open", 5, reply="/stream/opened") == [1, base + 1]
        pcm1.wait(8)
        want = _reference_audio(bundled_package, 5, 8)
        for i, (head, audio) in enumerate(pcm1.packets[:8]):
            assert head["frame_index"] == i and head["samplerate"] == 48_000 and audio.shape == (1920, 2)
            assert np.abs(audio - want[i]).max() <= LSB, f"stream 1 frame {i} differs from a lone Engine"
        assert max(np.abs(a).max() for _, a in pcm1.packets[:8]) > 0.01  # not silence

        # Per-stream controls reach only their stream.
        osc.send("/stream/0/temperature", 0.5)
        osc.send("/stream/1/top_k", 7)
        s0 = osc.status("/stream/0/status", "/stream/0/status/reply")
        s1 = osc.status("/stream/1/status", "/stream/1/status/reply")
        assert (s0["control"]["temperature"], s0["control"]["top_k"]) == (0.5, 40)
        assert (s1["control"]["temperature"], s1["control"]["top_k"]) == (1.3, 7)
        assert s0["stream"]["open"] and s0["stream"]["frames"] > 0 and s0["stream"]["pcm"]["clients"] == 1

        # The third stream by /stream/open; then the daemon is full and says so.
        assert osc.ask("/stream/open", reply="/stream/opened") == [2, base + 2]
        refused = osc.ask("/stream/open", reply="/stream/refused")
        assert "full" in refused[0] and str(STREAMS) in refused[0]
        pcm2 = PcmClient(base + 2)
        pcm2.wait(3)

        # Bad input: refused, counted, daemon alive.
        before = osc.status()["osc"]["rejected"]
        osc.send("/temperature", 0.7)  # bare address: name a stream
        osc.send("/stream/9/temperature", 0.7)  # no such stream
        osc.send("/stream/0/buffer", 4096)  # not per stream
        osc.send("/stream/0/temperature", "hot")
        time.sleep(0.3)
        status = osc.status()
        assert status["osc"]["rejected"] == before + 4
        assert proc.poll() is None

        # Stream 1 leaves; 0 and 2 play on, 1 gets no more packets.
        assert osc.ask("/stream/1/close", reply="/stream/closed") == [1]
        time.sleep(0.4)
        n1, n0, n2 = len(pcm1.packets), len(pcm0.packets), len(pcm2.packets)
        time.sleep(1.0)
        assert len(pcm1.packets) == n1
        assert len(pcm0.packets) >= n0 + 15 and len(pcm2.packets) >= n2 + 15
        for client in (pcm0, pcm2):  # the others' frames go on in order (a slow reader may lose some)
            index = [h["frame_index"] for h, _ in client.packets]
            assert index == sorted(set(index))

        # Totals and every stream in /status.
        status = osc.status()
        e, streams = status["engine"], status["streams"]
        assert e["streams_max"] == STREAMS and e["streams_open"] == 2 and e["steps"] > 0
        assert [s["open"] for s in streams] == [True, False, True]
        assert e["codec_overlap_frames"] == (overlap == "on")
        assert streams[0]["frames"] > streams[1]["frames"] > 0 and streams[2]["pcm"]["port"] == base + 2
        assert e["underruns"] == sum(s["underruns"] for s in streams)
        assert [s["ring_low_water_ms"] is not None for s in streams] == [True, False, True]  # open ones only
        assert e["ring_low_water_ms"] == min(streams[0]["ring_low_water_ms"], streams[2]["ring_low_water_ms"])
        print("streams e2e: step ms", e["step_ms"], "underruns", e["underruns"], "batch p50", e["batch_p50"])

        for c in (pcm0, pcm1, pcm2):
            c.close()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0, "".join(log)
    text = "".join(log)
    assert "stream 1 closed" in text and "Traceback" not in text
    # the stop line's low water is read before stopping closes the streams
    assert re.search(r"stopped after \d+ batched steps \(\d+ frames over all streams\): \d+ underruns, "
                     r"step p50 [\d.]+ / p99 [\d.]+ ms, ring low water [\d.]+ ms", text), text[-2000:]
    # The reported latency counts the overlap's frame (3 frames of buffer + 1 clock block of 1024 samples).
    want = "182 ms (buffer 3 frames + 1 in the codec)" if overlap == "on" else "142 ms"
    assert f"control latency about {want}\n" in text, text


@pytest.mark.parametrize(("args", "message"), [
    (["--streams", "2"], "--streams needs --pcm-port BASE"),
    (["--streams", "0", "--pcm-port", "9100"], "--streams must be 1..64"),
    (["--streams", "2", "--pcm-port", "9100", "--open-streams", "3"], "--open-streams must be 0..2"),
    (["--streams", "2", "--pcm-port", "9100", "--audio", "wav:x.wav"], "own PCM port"),
    (["--streams", "2", "--pcm-port", "9100", "--web"], "--web"),
    (["--streams", "2", "--pcm-port", "9100", "--record", "take"], "--record is not supported with --streams"),
    (["--open-streams", "1"], "--open-streams needs --streams N"),
])
def test_streams_flags_refused_with_one_line(args: list[str], message: str) -> None:
    out = subprocess.run([sys.executable, "-m", "bridge.cli", "serve", "--audio", "null", *args], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode != 0
    assert message in out.stderr + out.stdout
    assert "Traceback" not in out.stderr


def test_stream_pcm_over_websocket_equals_its_tcp_port(bundled_package: Path) -> None:
    """``--ws-port``: each stream's packets over ws://.../stream/<id> are its TCP port's packets."""
    from websockets.exceptions import InvalidStatus
    from websockets.sync.client import connect

    from bridge.audio.pcm_stream import decode_header
    from tests.clients.daemon import free_port

    ws_port = free_port(socket.SOCK_STREAM)
    with streams_daemon("--open-streams", "2", "--ws-port", str(ws_port)) as (proc, osc_port, base, log):
        tcp = PcmClient(base + 1)
        tcp.wait(1)  # the TCP client is registered: every frame the WebSocket gets, it gets too
        with connect(f"ws://127.0.0.1:{ws_port}/stream/1", open_timeout=10) as ws:
            got = [ws.recv(timeout=10) for _ in range(12)]
        first = tcp.packets[0][0]["frame_index"]
        tcp.wait(max(decode_header(p)["frame_index"] for p in got) - first + 1)  # up to the WebSocket's last frame
        tcp.close()
        by_index = {hdr["frame_index"]: frames for hdr, frames in tcp.packets}
        for packet in got:
            hdr = decode_header(packet)
            frames = np.frombuffer(packet[hdr["header_size"]:], np.float32).reshape(-1, 2)
            np.testing.assert_array_equal(frames, by_index[hdr["frame_index"]])
        assert len({decode_header(p)["frame_index"] for p in got}) == 12
        for bad in ("/stream/3", "/nope"):  # no such stream: refused before the upgrade
            with pytest.raises(InvalidStatus):
                connect(f"ws://127.0.0.1:{ws_port}{bad}", open_timeout=10)
        status = Osc(osc_port).status()
        assert status["engine"]["ws"]["port"] == ws_port and status["engine"]["ws"]["refused"] == 2
        assert proc.poll() is None, "".join(log)
