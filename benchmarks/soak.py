"""Soak benchmark: the real daemon at real time for N minutes under random OSC traffic.

Starts ``mrt-bridge serve --audio null --midi none`` as a subprocess on the
bundled tiny model (or --model), sends random control messages over UDP,
asks for /status every few seconds, samples the daemon's RSS from /proc,
and prints underruns, step-time percentiles, the ring's low-water mark and
memory growth. Figures, not assertions (beyond the daemon staying alive).

    python benchmarks/soak.py --minutes 2
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from pythonosc.dispatcher import Dispatcher
from pythonosc.osc_server import BlockingOSCUDPServer
from pythonosc.udp_client import SimpleUDPClient

ROOT = Path(__file__).resolve().parents[1]


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class StatusListener:
    """A UDP OSC server on an ephemeral port that keeps the latest /status/reply."""

    def __init__(self) -> None:
        self.latest: dict | None = None
        disp = Dispatcher()
        disp.map("/status/reply", self._on_reply)
        self.server = BlockingOSCUDPServer(("127.0.0.1", 0), disp)
        self.server.socket.settimeout(0.1)
        self.port = self.server.server_address[1]

    def _on_reply(self, _address: str, *args) -> None:
        for arg in args:
            if isinstance(arg, str) and arg.startswith("{"):
                self.latest = json.loads(arg)

    def poll(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.server.handle_request()


def random_message(rng: random.Random) -> tuple[str, list]:
    """One random control message from the everyday set (valid values)."""
    kind = rng.choice(["note_on", "note_off", "tokens", "temperature", "top_k", "guidance", "volume",
                       "drums", "mute"])
    if kind == "note_on":
        return "/note/on", [rng.randrange(36, 96), rng.randrange(1, 128)]
    if kind == "note_off":
        return "/note/off", [rng.randrange(36, 96)]
    if kind == "tokens":
        return "/style/tokens", [rng.randrange(1024) for _ in range(12)]
    if kind == "temperature":
        return "/temperature", [round(rng.uniform(0.5, 2.0), 2)]
    if kind == "top_k":
        return "/top_k", [rng.randrange(1, 200)]
    if kind == "guidance":
        return f"/guidance/{rng.choice(['style', 'notes', 'drums'])}", [round(rng.uniform(0, 5), 1)]
    if kind == "volume":
        return "/volume", [round(rng.uniform(0.5, 1.5), 2)]
    if kind == "drums":
        return "/drums", [rng.choice([-1, 0, 1])]
    return "/mute", [0]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=2.0)
    ap.add_argument("--model", help="model package (default: bundled synthetic tiny)")
    ap.add_argument("--rate", type=float, default=20.0, help="control messages per second")
    ap.add_argument("--buffer-frames", type=int, default=4)
    ap.add_argument("--provider", default="cpu")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    osc_port = free_udp_port()
    cmd = [sys.executable, "-m", "bridge.cli", "serve", "--audio", "null", "--midi", "none",
           "--osc-port", str(osc_port), "--buffer-frames", str(args.buffer_frames),
           "--provider", args.provider]
    if args.model:
        cmd += ["--model", args.model]
    log_path = Path(os.environ.get("TMPDIR", "/tmp")) / f"mrt-soak-{os.getpid()}.log"
    log_file = open(log_path, "w")  # noqa: SIM115
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=log_file, stderr=subprocess.STDOUT)
    client = SimpleUDPClient("127.0.0.1", osc_port)
    listener = StatusListener()
    rng = random.Random(args.seed)

    def status() -> dict | None:
        listener.latest = None
        client.send_message("/status", [listener.port])
        listener.poll(0.5)
        return listener.latest

    print(f"soak: daemon pid {proc.pid}, OSC port {osc_port}, log {log_path}", flush=True)
    first = None
    deadline = time.monotonic() + 120
    while first is None and time.monotonic() < deadline and proc.poll() is None:
        first = status()
    if first is None:
        proc.kill()
        print(log_path.read_text()[-3000:])
        print("soak: daemon never answered /status", file=sys.stderr)
        return 1
    rss0 = rss_mb(proc.pid)
    t0 = time.monotonic()
    end = t0 + args.minutes * 60
    sent = 0
    elapsed = 0.0
    next_status = t0 + 5
    rss_samples = [(0.0, rss0)]
    low_water_min = float("inf")
    latest = first
    try:
        while time.monotonic() < end and proc.poll() is None:
            address, values = random_message(rng)
            client.send_message(address, values)
            sent += 1
            time.sleep(rng.expovariate(args.rate))
            if time.monotonic() >= next_status:
                s = status()
                if s is not None:
                    latest = s
                    lw = s.get("engine", s).get("ring_low_water_ms")
                    if lw is not None:
                        low_water_min = min(low_water_min, lw)
                rss_samples.append((time.monotonic() - t0, rss_mb(proc.pid)))
                next_status = time.monotonic() + 5
        elapsed = time.monotonic() - t0
        alive = proc.poll() is None
        final = status() if alive else None
        latest = final or latest
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            rc = proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            rc = proc.wait()
        log_file.close()

    d = latest.get("engine", latest)
    rss_end = rss_samples[-1][1]
    # growth after warm-up: compare the last sample with the one at ~30 s
    warm = next((r for t, r in rss_samples if t >= 30), rss0)
    print("\n=== soak results ===")
    print(f"duration           {elapsed / 60:.2f} min at real time, {sent} OSC messages "
          f"({sent / max(elapsed, 1e-9):.1f}/s)")
    print(f"frames             {d.get('frames')}")
    print(f"underruns          {d.get('underruns')} ({d.get('underrun_ms')} ms of silence)")
    step = d.get("step_ms", {})
    print(f"step ms            p50 {step.get('p50')}  p95 {step.get('p95')}  p99 {step.get('p99')}  "
          f"max {step.get('max')}")
    print(f"ring low water     {low_water_min:.1f} ms (buffer {d.get('buffer_ms')} ms)")
    print(f"RSS                start {rss0:.1f} MB, after warm-up {warm:.1f} MB, end {rss_end:.1f} MB, "
          f"growth after warm-up {rss_end - warm:+.1f} MB")
    print(f"daemon exit code   {rc} (expected 0 after SIGTERM)")
    ok = rc == 0 and d.get("frames", 0) > 0
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
