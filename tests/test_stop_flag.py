"""The stop request SIGINT/SIGTERM set must never hang the main thread (bridge/stop_flag.py).

A Python signal handler runs in the main thread between two bytecodes; the
harness below stands in for a signal landing at every point of the waiting
code: a profile hook calls the handler at the N-th call/return event inside
``wait`` for N = 1..30 (more than one pass of StopFlag's poll loop, all of
Event.wait), each with a fresh flag. A handler that takes a lock the waiter
holds hangs there; the harness runs in a subprocess with a time limit, so a
hang shows as a failure, not a stuck suite.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

from bridge.stop_flag import StopFlag, stop_on_signals

ROOT = Path(__file__).resolve().parents[1]

HARNESS = textwrap.dedent("""
    import signal, sys, threading
    from bridge.stop_flag import StopFlag

    def make_flag():
        flag = StopFlag()
        return flag, flag.on_signal

    def make_event():  # what `serve` did before: Event.set() from the handler
        event = threading.Event()
        return event, lambda signum, frame: event.set()

    make = make_flag if sys.argv[1] == "flag" else make_event
    for n in range(1, 31):
        stop, handler = make()
        seen = 0

        def hook(frame, event, arg):
            global seen
            seen += 1
            if seen == n:
                handler(signal.SIGINT, frame)

        sys.setprofile(hook)
        woke = stop.wait(0.5)
        sys.setprofile(None)
        if seen >= n and not woke:
            sys.exit(f"set at event {n} but wait() did not wake")
    print("all 30 woke")
""")


def run_harness(kind: str, timeout: float) -> subprocess.CompletedProcess | None:
    """The harness's result, or None if it hung (killed after ``timeout`` s; it takes ~1 s)."""
    try:
        return subprocess.run([sys.executable, "-c", HARNESS, kind], cwd=ROOT, capture_output=True,
                              text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return None


def test_handler_at_any_point_of_wait_never_hangs() -> None:
    result = run_harness("flag", timeout=30)
    assert result is not None, "StopFlag.wait hung with its signal handler fired inside it"
    assert result.returncode == 0 and "all 30 woke" in result.stdout, result.stdout + result.stderr


def test_harness_catches_the_event_hang() -> None:
    """Control: the same harness on threading.Event (the old code) hangs, so the test above can fail."""
    assert run_harness("event", timeout=5) is None


def test_wait_times_out_and_wakes_on_set_from_another_thread() -> None:
    flag = StopFlag()
    t0 = time.monotonic()
    assert flag.wait(0.05) is False
    assert time.monotonic() - t0 >= 0.05
    threading.Timer(0.05, flag.set).start()
    assert flag.wait(5.0) is True and flag.is_set()
    assert flag.signum is None


def test_stop_on_signals_installs_and_logs_once(caplog) -> None:
    previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        flag = stop_on_signals()
        assert signal.getsignal(signal.SIGTERM) == flag.on_signal
        signal.raise_signal(signal.SIGTERM)
        with caplog.at_level("INFO", logger="mrt-bridge"):
            assert flag.wait(5.0) and flag.wait(0)
        assert flag.signum == signal.SIGTERM
        assert [r.getMessage() for r in caplog.records] == ["SIGTERM: stopping"]
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
