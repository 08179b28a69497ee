"""`mrt-bridge serve` as a subprocess: help, clear errors, WAV recording, the PCM stream over OSC."""

from __future__ import annotations

import itertools
import json
import os
import select
import signal
import socket
import subprocess
import sys
import time
import wave
from pathlib import Path

import numpy as np
import pytest
from pythonosc.dispatcher import Dispatcher
from pythonosc.osc_server import BlockingOSCUDPServer
from pythonosc.udp_client import SimpleUDPClient

from bridge.audio.gain import MUTE_SETTLE_FRAMES
from bridge.audio.pcm_stream import read_packet
from tests.jack_util import jack_server

ROOT = Path(__file__).resolve().parents[1]


def serve_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "bridge.cli", "serve", *args]


def free_port(kind: int = socket.SOCK_DGRAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_status(port: int, proc: subprocess.Popen, timeout: float = 60.0) -> dict:
    """Poll /status until the daemon answers (it does once audio is running)."""
    replies: list[dict] = []
    disp = Dispatcher()
    disp.map("/status/reply", lambda _a, *args: replies.append(json.loads(args[-1])))
    server = BlockingOSCUDPServer(("127.0.0.1", 0), disp)
    server.timeout = 0.2
    client = SimpleUDPClient("127.0.0.1", port)
    try:
        end = time.monotonic() + timeout
        while time.monotonic() < end and proc.poll() is None:
            while select.select([server.socket], [], [], 0)[0]:  # drop late replies to earlier asks
                server.handle_request()
            replies.clear()
            client.send_message("/status", [server.server_address[1]])
            server.handle_request()
            if replies:
                return replies[-1]
        raise AssertionError(f"no /status reply (exit code {proc.poll()})")
    finally:
        server.server_close()


def test_help_names_every_option() -> None:
    out = subprocess.run(serve_cmd("--help"), cwd=ROOT, capture_output=True, text=True, timeout=60, check=False)
    assert out.returncode == 0
    for option in ("--model", "--config", "--osc-host", "--osc-port", "--audio", "--midi", "--buffer-frames",
                   "--pcm-port", "--trace", "--provider", "SYNTHETIC"):
        assert option in out.stdout, option


def test_missing_jack_server_names_the_alternatives(bundled_package: Path) -> None:
    env = dict(os.environ, JACK_DEFAULT_SERVER="no-such-server-mrt", JACK_NO_START_SERVER="1")
    out = subprocess.run(serve_cmd("--audio", "jack", "--midi", "none", "--model", str(bundled_package)),
                         cwd=ROOT, capture_output=True, text=True, timeout=60, check=False, env=env)
    assert out.returncode == 2, out.stderr
    last = out.stderr.strip().splitlines()[-1]
    assert "no JACK server running" in last
    for alt in ("--audio device", "--audio wav:PATH", "--audio null"):
        assert alt in last


def test_unknown_device_lists_devices_and_alternatives(bundled_package: Path) -> None:
    out = subprocess.run(serve_cmd("--audio", "device:NoSuchCard", "--midi", "none", "--model",
                                   str(bundled_package)),
                         cwd=ROOT, capture_output=True, text=True, timeout=60, check=False)
    assert out.returncode == 2, out.stderr
    last = out.stderr.strip().splitlines()[-1]
    assert "NoSuchCard" in last and "output devices:" in last and "--audio null" in last


def test_bad_audio_spec_is_rejected_before_loading() -> None:
    out = subprocess.run(serve_cmd("--audio", "speakers"), cwd=ROOT, capture_output=True, text=True,
                         timeout=60, check=False)
    assert out.returncode == 2
    assert "expected jack, device[:NAME], wav:PATH or null" in out.stderr


def test_wav_sink_records_real_time_and_exits_cleanly(bundled_package: Path, tmp_path: Path) -> None:
    wav_path = tmp_path / "live.wav"
    osc_port = free_port()
    proc = subprocess.Popen(serve_cmd("--audio", f"wav:{wav_path}", "--midi", "none", "--osc-port",
                                      str(osc_port), "--model", str(bundled_package), "--threads", "1"),
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_for_status(osc_port, proc)
        t0 = time.monotonic()
        time.sleep(2.0)
        proc.send_signal(signal.SIGINT)  # Ctrl-C
        output, _ = proc.communicate(timeout=15)
        elapsed = time.monotonic() - t0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, output
    assert "SIGINT: stopping" in output and "stopped after" in output, output
    with wave.open(str(wav_path)) as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (48_000, 2, 2)
        pcm = np.frombuffer(w.readframes(w.getnframes()), np.int16).reshape(-1, 2)
    seconds = pcm.shape[0] / 48_000
    # Recorded at real time, never as fast as the model runs (a slow machine records less, not more).
    assert 0 < seconds <= elapsed + 1.0, (seconds, elapsed)
    assert np.abs(pcm).max() > 0


def test_pcm_stream_continuity_and_osc_to_audio_latency(bundled_package: Path) -> None:
    """Issue 6: a PCM client checks sequence continuity and times an OSC change to audio."""
    osc_port, pcm_port = free_port(), free_port(socket.SOCK_STREAM)
    proc = subprocess.Popen(serve_cmd("--audio", "null", "--midi", "none", "--osc-port", str(osc_port),
                                      "--pcm-port", str(pcm_port), "--model", str(bundled_package),
                                      "--threads", "1"),
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    sock = None
    try:
        wait_for_status(osc_port, proc)
        sock = socket.create_connection(("127.0.0.1", pcm_port), timeout=5)
        packets = [read_packet(sock) for _ in range(50)]  # 2 s
        seqs = [h["sequence"] for h, _ in packets]
        assert all(b == a + 1 for a, b in itertools.pairwise(seqs)), seqs
        assert all(h["frame_count"] == 1920 and h["samplerate"] == 48_000 for h, _ in packets)
        assert all(np.abs(a).max() > 0 for _, a in packets)
        osc = SimpleUDPClient("127.0.0.1", osc_port)
        latencies, packets_until = [], []
        for mute in (1, 0, 1):
            t0 = time.time()
            osc.send_message("/mute", [mute])
            n = 0
            while True:
                _, audio = read_packet(sock)
                n += 1
                if bool(audio.any()) != bool(mute):
                    break
            latencies.append((time.time() - t0) * 1e3)
            packets_until.append(n)
        print(f"\nPCM stream: OSC /mute -> changed packet received in {', '.join(f'{x:.0f}' for x in latencies)} ms")
        # Published as soon as produced, not after the audio buffer: the change shows within a few
        # packets (transport + the mute envelope), never a buffer's worth behind.
        assert max(packets_until) <= 6 + MUTE_SETTLE_FRAMES, packets_until
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
    finally:
        if sock is not None:
            sock.close()
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.jack
def test_device_sink_through_portaudio(bundled_package: Path) -> None:
    """A real PortAudio device: PortAudio's JACK host API on a private dummy server."""
    with jack_server() as name:
        import jack

        osc_port = free_port()
        proc = subprocess.Popen(serve_cmd("--audio", "device:system", "--midi", "none", "--osc-port",
                                          str(osc_port), "--model", str(bundled_package), "--threads", "1"),
                                cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        client = jack.Client("pa-check", no_start_server=True, servername=name)
        try:
            status = wait_for_status(osc_port, proc)
            assert status["engine"]["sink"]["sink"] == "device"
            assert status["engine"]["sink"]["samplerate"] == 48_000
            outs = [p.name for p in client.get_ports(is_audio=True, is_output=True)
                    if not p.name.startswith("system:")]
            assert len(outs) >= 2, outs  # PortAudio's client feeding system:playback
            time.sleep(1.0)
            status = wait_for_status(osc_port, proc)
            assert status["engine"]["frames"] >= 25
            proc.send_signal(signal.SIGTERM)
            out, _ = proc.communicate(timeout=15)
            assert proc.returncode == 0, out
        finally:
            client.close()
            if proc.poll() is None:
                proc.kill()
                proc.wait()
