"""Start the real `mrt-bridge serve` daemon as a subprocess for the example-client tests.

Runs the bundled synthetic model with ``--audio null --midi none``, the shared
mapping config examples/adaptive_soundtrack.toml, OSC and PCM on free loopback
ports. No mocks: the clients under test talk to the same daemon users run.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "examples" / "adaptive_soundtrack.toml"


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    """A port that is free for both UDP and TCP on 127.0.0.1 right now."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, kind) as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        other = socket.SOCK_DGRAM if kind == socket.SOCK_STREAM else socket.SOCK_STREAM
        with socket.socket(socket.AF_INET, other) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port
    raise RuntimeError("no free port")


@dataclass
class Daemon:
    proc: subprocess.Popen
    osc_port: int
    pcm_port: int
    log: list[str] = field(default_factory=list)

    def log_text(self) -> str:
        return "".join(self.log)


@contextlib.contextmanager
def running_daemon(config: Path = CONFIG, startup_timeout: float = 180.0, extra_args: Sequence[str] = (),
                   ready_line: str = "OSC listening") -> Iterator[Daemon]:
    """Yield a started daemon (``ready_line`` seen in its log); stop it (SIGTERM, then kill) on exit."""
    osc_port = free_port(socket.SOCK_DGRAM)
    pcm_port = free_port(socket.SOCK_STREAM)
    cmd = [
        sys.executable,
        "-m",
        "bridge.cli",
        "serve",
        "--audio",
        "null",
        "--midi",
        "none",
        "--osc-port",
        str(osc_port),
        "--pcm-port",
        str(pcm_port),
        "--config",
        str(config),
        *extra_args,
    ]
    proc = subprocess.Popen(
        cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1
    )
    daemon = Daemon(proc, osc_port, pcm_port)
    ready = threading.Event()

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            daemon.log.append(line)
            if ready_line in line:
                ready.set()

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + startup_timeout
        while not ready.wait(0.2):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"daemon did not start (rc={proc.poll()}):\n{daemon.log_text()}")
        yield daemon
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        reader.join(5)
