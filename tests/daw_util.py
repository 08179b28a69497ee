"""Helpers for the DAW tests: the real daemon as a subprocess, an OSC peer, a MIDI sender."""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from pythonosc.osc_message import OscMessage
from pythonosc.udp_client import SimpleUDPClient

ROOT = Path(__file__).resolve().parents[1]


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(fn, timeout: float, what: str, step: float = 0.05):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = fn()
        if value:
            return value
        time.sleep(step)
    raise AssertionError(f"timed out waiting for {what}")


class OscPeer:
    """Sends to the daemon; a thread collects every message sent back (ticks, status replies)."""

    def __init__(self, port: int) -> None:
        self.client = SimpleUDPClient("127.0.0.1", port)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self.received: list[tuple[float, str, list]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data, _ = self.sock.recvfrom(65536)
            except (TimeoutError, OSError):
                continue
            msg = OscMessage(data)
            self.received.append((time.monotonic(), msg.address, list(msg.params)))

    def send(self, address: str, *args) -> None:
        self.client.send_message(address, list(args))

    def status(self, timeout: float = 2.0) -> dict | None:
        n = len(self.received)
        self.send("/status", self.port)
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            for _, addr, args in self.received[n:]:
                if addr == "/status/reply":
                    return json.loads(args[-1])
            time.sleep(0.02)
        return None

    def ticks(self, address: str = "/tick/beat") -> list[tuple[float, list]]:
        return [(t, a) for t, addr, a in list(self.received) if addr == address]

    def close(self) -> None:
        self._stop.set()
        self._thread.join(1.0)
        self.sock.close()


@contextlib.contextmanager
def serve(model: Path, log_path: Path, *args: str, timeout: float = 90.0) -> Iterator[tuple[subprocess.Popen, OscPeer]]:
    """Run ``mrt-bridge serve --osc-port P --provider cpu --model MODEL ARGS`` until it answers /status;
    stop it (SIGTERM) afterwards."""
    port = free_udp_port()
    cmd = [sys.executable, "-m", "bridge.cli", "serve", "--osc-port", str(port), "--provider", "cpu",
           "--model", str(model), *args]
    with open(log_path, "w") as log_file:
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=log_file, stderr=subprocess.STDOUT)
    peer = OscPeer(port)
    try:
        wait_until(lambda: proc.poll() is not None or peer.status(0.5), timeout, "the daemon's /status", 0.1)
        assert proc.poll() is None, log_path.read_text()
        yield proc, peer
    finally:
        peer.close()
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def median_interval(times: list[float]) -> float:
    import statistics

    return statistics.median(b - a for a, b in zip(times, times[1:]))
