"""Start and stop a private ``jackd -d dummy`` server for tests (shared helper).

Usage::

    with jack_server() as name:   # skips the test if jackd is missing (fails under CI=true)
        ...  # JACK clients in this process connect to server `name`

Sets ``JACK_DEFAULT_SERVER`` and ``JACK_NO_AUDIO_RESERVATION`` in
``os.environ`` for the duration, so in-process clients (JACK-Client, rtmidi
JACK API) and subprocesses find the private server. jackd's output goes to
a temporary log file (never an unread pipe, which a chatty jackd could fill
and block on); its tail is part of any start-up error.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from tests.ci import missing


def _tail(log, chars: int = 2000) -> str:
    log.flush()
    log.seek(0)
    text = log.read().decode(errors="replace").strip()
    return text[-chars:] or "(jackd wrote nothing)"


def _server_up(name: str, env: dict[str, str]) -> bool:
    r = subprocess.run(["jack_lsp", "-s", name], env=env, capture_output=True, text=True, timeout=10,
                       check=False)
    return r.returncode == 0 and "system:" in r.stdout


@contextmanager
def jack_server(rate: int = 48000, period: int = 1024, timeout: float = 10.0) -> Iterator[str]:
    """Run ``jackd -n NAME -d dummy``; yield NAME; stop it afterwards."""
    jackd = shutil.which("jackd")
    if jackd is None or shutil.which("jack_lsp") is None:
        missing("jackd not installed (Debian: apt-get install -y jackd2)")
    name = f"mrt-test-{uuid.uuid4().hex[:8]}"
    env = dict(os.environ, JACK_NO_AUDIO_RESERVATION="1", JACK_NO_START_SERVER="1")
    cmd = [jackd, "-n", name, "-d", "dummy", "-r", str(rate), "-p", str(period)]
    with tempfile.TemporaryFile(prefix=f"{name}-", suffix=".log") as log:
        _running[name] = (subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL, stdout=log,
                                           stderr=subprocess.STDOUT), cmd, env, log)
        try:
            yield from _serve(_running[name][0], log, name, env, timeout)
        finally:
            _terminate(_running.pop(name)[0])


# name -> (jackd process, command, environment, log file) of the servers jack_server() runs
_running: dict[str, tuple] = {}


def _terminate(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@contextmanager
def jack_server_down(name: str, timeout: float = 10.0) -> Iterator[None]:
    """Stop the server ``name`` (run by :func:`jack_server`) for the block, then start it again."""
    proc, cmd, env, log = _running[name]
    _terminate(proc)
    try:
        yield
    finally:
        proc = subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        _running[name] = (proc, cmd, env, log)
        end = time.monotonic() + timeout
        while not _server_up(name, env):
            if proc.poll() is not None or time.monotonic() > end:
                pytest.fail(f"jackd -n {name} did not come back; its log:\n{_tail(log)}")
            time.sleep(0.1)


def _serve(proc: subprocess.Popen, log, name: str, env: dict[str, str], timeout: float) -> Iterator[str]:
    """Wait for the server, point this process's JACK clients at it, yield its name, restore."""
    end = time.monotonic() + timeout
    while not _server_up(name, env):
        if proc.poll() is not None:
            missing(f"jackd -d dummy failed to start (exit {proc.returncode}); its log:\n{_tail(log)}")
        if time.monotonic() > end:
            pytest.fail(f"jackd -d dummy did not come up within {timeout:g} s; its log:\n{_tail(log)}")
        time.sleep(0.1)
    keys = ("JACK_DEFAULT_SERVER", "JACK_NO_AUDIO_RESERVATION", "JACK_NO_START_SERVER")
    saved = {k: os.environ.get(k) for k in keys}
    os.environ.update(JACK_DEFAULT_SERVER=name, JACK_NO_AUDIO_RESERVATION="1", JACK_NO_START_SERVER="1")
    try:
        yield name
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
