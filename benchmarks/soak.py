"""Soak benchmark: the real daemon at real time for N minutes under OSC and MIDI traffic.

Starts ``mrt-bridge serve`` as a subprocess on the bundled tiny model (or
--model). With ``--midi`` (default when jackd is installed) it runs a private
``jackd -d dummy`` server, plays through ``--audio jack`` and sends random
MIDI notes and CCs from a JACK MIDI port connected to ``mrt-bridge:midi_in``;
otherwise ``--audio null --midi none``. Meanwhile it sends random OSC control
messages over UDP, asks /status every few seconds and samples the daemon's RSS
from /proc, printing a line per minute and, at the end, underruns, step-time
percentiles, the ring's low-water mark and memory over time (growth after
warm-up and its slope). Figures, not assertions (beyond the daemon staying
alive and exiting cleanly).

    python benchmarks/soak.py --minutes 2
    python benchmarks/soak.py --minutes 30          # the long soak
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

from pythonosc.dispatcher import Dispatcher
from pythonosc.osc_server import BlockingOSCUDPServer
from pythonosc.udp_client import SimpleUDPClient

from bridge.daemon.frame_loop import DEFAULT_BUFFER_FRAMES


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_daemon(cmd: list[str], name: str, env: dict[str, str] | None = None) -> tuple[subprocess.Popen, Path]:
    """Start ``cmd`` with its output in ``$TMPDIR/mrt-<name>-<pid>.log``; (process, log path).
    It runs in the caller's directory, so relative paths among its arguments (``--model
    small_int8``) mean what the user typed."""
    log_path = Path(os.environ.get("TMPDIR", "/tmp")) / f"mrt-{name}-{os.getpid()}.log"
    with open(log_path, "w") as log_file:
        return subprocess.Popen(cmd, stdout=log_file, stderr=subprocess.STDOUT, env=env), log_path


def stop_daemon(proc: subprocess.Popen) -> int:
    """SIGTERM (a clean stop drains and exits 0), SIGKILL after 15 s; the exit code."""
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait()


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

    def ask(self, osc_port: int) -> dict | None:
        """/status from this listener's own socket (the reply comes back to it)."""
        self.latest = None
        self.server.socket.sendto(_status_request(), ("127.0.0.1", osc_port))
        self.poll(0.5)
        return self.latest

    def poll(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.server.handle_request()


def _status_request() -> bytes:
    from pythonosc.osc_message_builder import OscMessageBuilder
    return OscMessageBuilder("/status").build().dgram


class JackMidi:
    """A private ``jackd -d dummy`` and a JACK MIDI output connected to the daemon's midi_in."""

    def __init__(self) -> None:
        self.name = f"mrt-soak-{uuid.uuid4().hex[:6]}"
        self.env = dict(os.environ, JACK_DEFAULT_SERVER=self.name, JACK_NO_AUDIO_RESERVATION="1",
                        JACK_NO_START_SERVER="1")
        self.jackd = subprocess.Popen(["jackd", "-n", self.name, "-d", "dummy", "-r", "48000", "-p", "1024"],
                                      env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        end = time.monotonic() + 15
        while not self._lsp().count("system:"):
            if time.monotonic() > end or self.jackd.poll() is not None:
                raise RuntimeError("jackd -d dummy did not start")
            time.sleep(0.1)
        self.out = None
        self.sent = 0

    def _lsp(self) -> str:
        return subprocess.run(["jack_lsp", "-s", self.name], capture_output=True, text=True, check=False,
                              env=self.env).stdout

    def connect(self) -> None:
        """Open our MIDI output and connect it to mrt-bridge:midi_in (waits for the daemon's port)."""
        import rtmidi

        os.environ.update(JACK_DEFAULT_SERVER=self.name, JACK_NO_START_SERVER="1")
        self.out = rtmidi.MidiOut(rtapi=rtmidi.API_UNIX_JACK, name="soak")
        self.out.open_virtual_port("out")
        end = time.monotonic() + 30
        while "mrt-bridge:midi_in" not in self._lsp().splitlines():
            if time.monotonic() > end:
                raise RuntimeError("the daemon's mrt-bridge:midi_in never appeared")
            time.sleep(0.2)
        src = next(p for p in self._lsp().splitlines() if p.startswith("soak") and "out" in p)
        subprocess.run(["jack_connect", "-s", self.name, src, "mrt-bridge:midi_in"], check=True, env=self.env)

    def send_random(self, rng: random.Random) -> None:
        kind = rng.random()
        if kind < 0.45:
            self.out.send_message([0x90, rng.randrange(36, 96), rng.randrange(1, 128)])
        elif kind < 0.9:
            self.out.send_message([0x80, rng.randrange(36, 96), 0])
        else:
            self.out.send_message([0xB0, 7, rng.randrange(64, 128)])  # CC 7: volume
        self.sent += 1

    def close(self) -> None:
        if self.out is not None:  # our JACK client goes before the server does (no libjack noise)
            self.out.close_port()
            self.out.delete()
        self.jackd.terminate()
        try:
            self.jackd.wait(5)
        except subprocess.TimeoutExpired:
            self.jackd.kill()


def slope_mb_per_hour(samples: list[tuple[float, float]]) -> float:
    """Least-squares slope of (seconds, MB) samples, in MB per hour."""
    if len(samples) < 2:
        return float("nan")
    n = len(samples)
    mt = sum(t for t, _ in samples) / n
    mr = sum(r for _, r in samples) / n
    var = sum((t - mt) ** 2 for t, _ in samples)
    return 3600 * sum((t - mt) * (r - mr) for t, r in samples) / var if var else float("nan")


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
    ap.add_argument("--buffer-frames", type=int, default=DEFAULT_BUFFER_FRAMES,
                    help="the daemon's --buffer-frames (default: its default, %(default)s)")
    ap.add_argument("--provider", default="cpu")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--midi", action=argparse.BooleanOptionalAction, default=shutil.which("jackd") is not None,
                    help="JACK audio + MIDI traffic through a private jackd -d dummy (default: when jackd exists)")
    ap.add_argument("--midi-rate", type=float, default=10.0, help="MIDI messages per second")
    args = ap.parse_args(argv)

    osc_port = free_udp_port()
    jack = JackMidi() if args.midi else None
    audio = ["--audio", "jack", "--midi", "jack", "--no-autoconnect"] if jack else ["--audio", "null", "--midi", "none"]
    cmd = [sys.executable, "-m", "bridge.cli", "serve", *audio,
           "--osc-port", str(osc_port), "--buffer-frames", str(args.buffer_frames),
           "--provider", args.provider]
    if args.model:
        cmd += ["--model", args.model]
    proc, log_path = start_daemon(cmd, "soak", jack.env if jack else None)
    client = SimpleUDPClient("127.0.0.1", osc_port)
    listener = StatusListener()
    rng = random.Random(args.seed)

    def status() -> dict | None:
        return listener.ask(osc_port)

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
    if jack:
        jack.connect()
    rss0 = rss_mb(proc.pid)
    t0 = time.monotonic()
    end = t0 + args.minutes * 60
    sent = 0
    elapsed = 0.0
    next_status = t0 + 5
    next_line = t0 + 60
    rss_samples = [(0.0, rss0)]
    low_water_min = float("inf")
    latest = first
    total_rate = args.rate + (args.midi_rate if jack else 0.0)
    try:
        while time.monotonic() < end and proc.poll() is None:
            if jack and rng.random() < args.midi_rate / total_rate:
                jack.send_random(rng)
            else:
                address, values = random_message(rng)
                client.send_message(address, values)
                sent += 1
            time.sleep(rng.expovariate(total_rate))
            if time.monotonic() >= next_line:
                next_line += 60
                e = latest.get("engine", latest)
                print(f"  {(time.monotonic() - t0) / 60:5.1f} min  RSS {rss_samples[-1][1]:7.1f} MB  "
                      f"frames {e.get('frames')}  underruns {e.get('underruns')}", flush=True)
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
        rc = stop_daemon(proc)
        if jack:
            jack.close()

    d = latest.get("engine", latest)
    rss_end = rss_samples[-1][1]
    # growth after warm-up: compare the last sample with the one at ~30 s
    warm = next((r for t, r in rss_samples if t >= 30), rss0)
    print("\n=== soak results ===")
    print(f"duration           {elapsed / 60:.2f} min at real time, {sent} OSC messages "
          f"({sent / max(elapsed, 1e-9):.1f}/s)"
          + (f", {jack.sent} MIDI messages through JACK" if jack else ", no MIDI (--audio null)"))
    print(f"frames             {d.get('frames')}")
    print(f"underruns          {d.get('underruns')} ({d.get('underrun_ms')} ms of silence)")
    step = d.get("step_ms", {})
    print(f"step ms            p50 {step.get('p50')}  p95 {step.get('p95')}  p99 {step.get('p99')}  "
          f"max {step.get('max')}")
    print(f"ring low water     {low_water_min:.1f} ms (buffer {d.get('buffer_ms')} ms)")
    after = [(t, r) for t, r in rss_samples if t >= 30]
    print(f"RSS                start {rss0:.1f} MB, after warm-up {warm:.1f} MB, end {rss_end:.1f} MB, "
          f"growth after warm-up {rss_end - warm:+.1f} MB (slope {slope_mb_per_hour(after):+.2f} MB/h, "
          f"range {min(r for _, r in after or rss_samples):.1f}..{max(r for _, r in after or rss_samples):.1f} MB)")
    osc = latest.get("osc", {})
    print(f"OSC                received {osc.get('received')}, rejected {osc.get('rejected')}, "
          f"shed {osc.get('shed')}, coalesced {osc.get('coalesced')}")
    if jack:
        midi = d.get("sink", {}).get("midi_in", {})
        print(f"JACK               xruns {d.get('sink', {}).get('xruns')}, MIDI events dropped {midi.get('dropped')}")
    print(f"daemon exit code   {rc} (expected 0 after SIGTERM)")
    ok = rc == 0 and d.get("frames", 0) > 0
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
