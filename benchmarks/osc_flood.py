"""OSC flood benchmark: does control traffic cost audio? (issue 12, item 1)

Starts ``mrt-bridge serve --audio null --midi none`` on the bundled tiny model
(or --model), then for --seconds at once:

- a flood process sends valid OSC to the daemon as fast as it can (a cycle of
  pre-built /volume, /temperature, /guidance, /note/on|off, /style/weight...
  datagrams; ``--builder`` builds each one with python-osc instead, slower);
- a hog process keeps one CPU core busy (as a game would);
- this process asks /status once a second from its own socket and waits up
  to 1 s for each reply.

Prints the underruns during the flood, the share of /status requests answered,
what the daemon shed/coalesced and the kernel dropped, and step-time figures.
Target (issue 12): 0 underruns and >= 95 % answered. Figures, not assertions.

    python benchmarks/osc_flood.py --seconds 60
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import socket
import sys
import time

from pythonosc.osc_message import OscMessage
from pythonosc.osc_message_builder import OscMessageBuilder
from soak import free_udp_port, start_daemon, stop_daemon  # benchmarks/ is on sys.path when run as a script

from bridge.daemon.frame_loop import DEFAULT_BUFFER_FRAMES


def message(address: str, *args) -> bytes:
    b = OscMessageBuilder(address)
    for a in args:
        b.add_arg(a)
    return b.build().dgram


def flood_datagrams() -> list[bytes]:
    """A varied cycle of valid control messages."""
    out = []
    for i in range(50):
        out.append(message("/volume", 0.5 + i / 100))
        out.append(message("/temperature", 0.8 + i / 100))
        out.append(message("/guidance/style", float(i % 6)))
        out.append(message("/style/weight/0", float(i % 3)))
        out.append(message("/note/on", 40 + i, 100))
        out.append(message("/note/off", 40 + i))
        out.append(message("/top_k", 10 + i))
    return out


def flood(port: int, seconds: float, builder: bool, counter) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    dgrams = flood_datagrams()
    addr = ("127.0.0.1", port)
    end = time.monotonic() + seconds
    n = 0
    while time.monotonic() < end:
        if builder:
            for i in range(100):
                sock.sendto(message("/volume", 0.5 + (i % 50) / 100), addr)
        else:
            for d in dgrams:
                sock.sendto(d, addr)
        n += 100 if builder else len(dgrams)
    counter.value = n


def hog(seconds: float) -> None:
    end = time.monotonic() + seconds
    x = 0
    while time.monotonic() < end:
        x += 1


class StatusAsker:
    """Asks /status from its own socket; the reply comes back to that socket."""

    def __init__(self, port: int) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.addr = ("127.0.0.1", port)
        self.request = message("/status")

    def ask(self, timeout: float = 1.0) -> dict | None:
        self.sock.settimeout(0.0)
        try:  # discard stale replies
            while True:
                self.sock.recv(65536)
        except OSError:
            pass
        self.sock.sendto(self.request, self.addr)
        end = time.monotonic() + timeout
        while (left := end - time.monotonic()) > 0:
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(65536)
            except OSError:
                return None
            msg = OscMessage(data)
            if msg.address == "/status/reply":
                return json.loads(msg.params[5])
        return None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--model", help="model package (default: bundled synthetic tiny)")
    ap.add_argument("--buffer-frames", type=int, default=DEFAULT_BUFFER_FRAMES,
                    help="the daemon's --buffer-frames (default: its default, %(default)s)")
    ap.add_argument("--no-hog", action="store_true", help="do not keep a core busy")
    ap.add_argument("--builder", action="store_true", help="build each datagram with python-osc (slower)")
    ap.add_argument("--no-flood", action="store_true", help="baseline: the hog and /status only")
    args = ap.parse_args(argv)

    osc_port = free_udp_port()
    cmd = [sys.executable, "-m", "bridge.cli", "serve", "--audio", "null", "--midi", "none",
           "--osc-port", str(osc_port), "--buffer-frames", str(args.buffer_frames), "--provider", "cpu"]
    if args.model:
        cmd += ["--model", args.model]
    proc, log_path = start_daemon(cmd, "flood")
    asker = StatusAsker(osc_port)
    first = None
    deadline = time.monotonic() + 120
    while first is None and time.monotonic() < deadline and proc.poll() is None:
        first = asker.ask()
    if first is None:
        proc.kill()
        print(log_path.read_text()[-3000:])
        print("flood: daemon never answered /status", file=sys.stderr)
        return 1
    time.sleep(2.0)
    before = asker.ask() or first
    counter = mp.Value("q", 0)
    workers = [] if args.no_flood else [
        mp.Process(target=flood, args=(osc_port, args.seconds, args.builder, counter))]
    if not args.no_hog:
        workers.append(mp.Process(target=hog, args=(args.seconds + 2,)))
    for w in workers:
        w.start()
    asked = answered = 0
    last = before
    t0 = time.monotonic()
    try:
        while time.monotonic() - t0 < args.seconds:
            tick = time.monotonic()
            asked += 1
            reply = asker.ask()
            if reply is not None:
                answered += 1
                last = reply
            time.sleep(max(0.0, 1.0 - (time.monotonic() - tick)))
        for w in workers:
            w.join(timeout=10)
        time.sleep(0.5)
        after = asker.ask() or last
    finally:
        for w in workers:
            if w.is_alive():
                w.terminate()
        rc = stop_daemon(proc)

    e0, e1 = before["engine"], after["engine"]
    osc = after["osc"]
    sent = counter.value
    print("\n=== OSC flood results ===")
    print(f"flood              {args.seconds:.0f} s, {sent} datagrams sent ({sent / args.seconds:,.0f}/s, "
          f"{'python-osc builder' if args.builder else 'pre-built'}), "
          f"{'one core kept busy' if not args.no_hog else 'no hog'}")
    print(f"underruns          {e1['underruns'] - e0['underruns']} during the flood "
          f"({e1['underruns']} since start)")
    print(f"/status answered   {answered} of {asked} ({100 * answered / max(asked, 1):.1f} %)")
    print(f"daemon OSC         received {osc['received']}, applied {osc['received'] - osc['shed'] - osc['coalesced']}"
          f" - shed {osc['shed']}, coalesced {osc['coalesced']}, rejected {osc['rejected']}, "
          f"kernel dropped {osc.get('kernel_dropped')}, replies limited {osc['replies_limited']}")
    step = e1.get("step_ms", {})
    print(f"step ms            p50 {step.get('p50')}  p95 {step.get('p95')}  p99 {step.get('p99')}  "
          f"max {step.get('max')} (rolling window)")
    print(f"ring low water     {e1.get('ring_low_water_ms')} ms (buffer {e1.get('buffer_ms')} ms)")
    print(f"daemon exit code   {rc} (expected 0 after SIGTERM); log {log_path}")
    return 0 if rc == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
