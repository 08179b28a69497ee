"""Stopping a long-running command on SIGINT/SIGTERM without a lock in the signal handler.

Python runs a signal handler in the main thread between two bytecodes, which can
be while that thread holds a lock: inside ``threading.Event.wait`` it holds the
event's condition lock, so a handler calling ``Event.set()`` (the same, non
re-entrant lock) hangs the process for good. The daemon's main thread spends its
life in such a wait; a CI run caught ``serve`` hung after "SIGINT: stopping".
(CPython documents the same trap for ``multiprocessing.Event``, gh-126434.)

:class:`StopFlag` is what commands wait on instead: setting it is one attribute
store, waiting polls it, and the "stopping" line is logged by the waiting
thread, not by the handler.
"""

from __future__ import annotations

import logging
import signal
import time

POLL_S = 0.02  # how soon a waiter notices a stop; the daemon's loop wakes every 0.2 s anyway


class StopFlag:
    """An Event-like stop request that a signal handler may set (``set``, ``is_set``, ``wait``)."""

    def __init__(self, logger: logging.Logger | None = None) -> None:
        self.log = logger or logging.getLogger("mrt-bridge")
        self._set = False
        self.signum: int | None = None  # the signal that set it, if one did
        self._logged = False

    def set(self) -> None:
        self._set = True

    def is_set(self) -> bool:
        return self._set

    def wait(self, timeout: float | None = None) -> bool:
        """Block until set or ``timeout`` seconds pass; True if set. Logs a signal's stop once."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._set:
            left = POLL_S if deadline is None else deadline - time.monotonic()
            if left <= 0:
                return False
            time.sleep(min(POLL_S, left))
        if self.signum is not None and not self._logged:
            self._logged = True
            self.log.info("%s: stopping", signal.Signals(self.signum).name)
        return True

    def on_signal(self, signum: int, _frame=None) -> None:
        """A signal handler: record the signal and set the flag, nothing else (no locks, no I/O)."""
        self.signum = signum
        self._set = True


def stop_on_signals(logger: logging.Logger | None = None,
                    signals: tuple[int, ...] = (signal.SIGINT, signal.SIGTERM)) -> StopFlag:
    """A StopFlag that ``signals`` set (call from the main thread); ``logger`` gets the "stopping" line."""
    stop = StopFlag(logger)
    for signum in signals:
        signal.signal(signum, stop.on_signal)
    return stop
