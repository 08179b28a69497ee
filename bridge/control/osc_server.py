"""OSC over UDP: receive control messages, reply to /status, push ticks to subscribers.

One daemon thread owns a UDP socket (default 127.0.0.1:9000), parses each
datagram with python-osc (messages and bundles; bundle timetags are ignored,
messages apply on arrival) and dispatches through bridge/control/osc_api.py.
Anything malformed is logged once per (address, reason), counted, and
dropped; the thread never dies on input.
"""

from __future__ import annotations

import json
import logging
import re
import socket
import struct
import threading
import time
from collections.abc import Callable
from typing import Self

from pythonosc.osc_message import OscMessage
from pythonosc.osc_message_builder import OscMessageBuilder

from bridge.control import osc_api
from bridge.control.mapping import GameMapper
from bridge.control.state import ControlState

log = logging.getLogger(__name__)

MAX_SUBSCRIBERS = 16
MAX_BUNDLE_DEPTH = 4
_BUNDLE = b"#bundle\x00"
MAX_LOGGED_REASONS = 512
STATUS_KEYS = ("frame", "step_ms_p50", "step_ms_p99", "underruns", "ring_fill")


def _split_packet(data: bytes, depth: int = 0) -> list[OscMessage]:
    """Messages of a datagram, walking bundles ourselves (timetags ignored).

    python-osc's own bundle parser logs a warning per bad element on the root
    logger; this keeps malformed input to one line per reason.
    """
    if data.startswith(_BUNDLE):
        if depth >= MAX_BUNDLE_DEPTH:
            raise ValueError("bundles nested too deep")
        out: list[OscMessage] = []
        pos = 16  # "#bundle\0" + 8-byte timetag
        if len(data) < pos:
            raise ValueError("truncated bundle header")
        while pos < len(data):
            if pos + 4 > len(data):
                raise ValueError("truncated bundle element size")
            (size,) = struct.unpack(">i", data[pos:pos + 4])
            pos += 4
            if size <= 0 or size % 4 or pos + size > len(data):
                raise ValueError("bad bundle element size")
            out.extend(_split_packet(data[pos:pos + size], depth + 1))
            pos += size
        return out
    if not data.startswith(b"/"):
        raise ValueError("does not start with '/' or '#bundle'")
    try:
        return [OscMessage(data)]
    except Exception as exc:  # noqa: BLE001 - python-osc raises ParseError and others
        raise ValueError(f"{type(exc).__name__}: {exc}"[:120]) from None


def _build(address: str, args: list) -> bytes:
    b = OscMessageBuilder(address)
    for a in args:
        if isinstance(a, bool):
            b.add_arg(int(a), "i")
        elif isinstance(a, int):
            b.add_arg(a, "i")
        elif isinstance(a, float):
            b.add_arg(a, "f")
        else:
            b.add_arg(str(a), "s")
    return b.build().dgram


class OscServer:
    """UDP OSC server for the control API.

    ``status_provider`` returns engine figures for /status (keys: frame,
    step_ms_p50, step_ms_p99, underruns, ring_fill; any extra keys are
    passed on in the JSON). ``status_interval`` is the period of status
    pushes to subscribers (0 disables them).
    """

    def __init__(
        self,
        state: ControlState,
        mapper: GameMapper | None = None,
        status_provider: Callable[[], dict] | None = None,
        host: str = "127.0.0.1",
        port: int = 9000,
        status_interval: float = 1.0,
        daw=None,
    ) -> None:
        self._ctx = osc_api.Context(state, mapper, self, daw)
        self._state = state
        self._mapper = mapper
        self._status_provider = status_provider
        self._status_interval = status_interval
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            self._sock.bind((host, port))
        except OSError as exc:
            self._sock.close()
            raise RuntimeError(
                f"cannot listen for OSC on {host}:{port} ({exc.strerror}); "
                "is another daemon running? choose another port with --osc-port"
            ) from None
        self._sock.settimeout(0.1)
        self._subscribers: list[tuple[str, int]] = []
        self._sub_lock = threading.Lock()
        self._logged: set[tuple[str, str]] = set()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.received = 0
        self.rejected = 0
        self._count_lock = threading.Lock()  # the web studio's thread counts here too
        # Called with (address, args) for every applied message (e.g. the web studio's recorder).
        self.listeners: list[Callable[[str, list], None]] = []

    @property
    def address(self) -> tuple[str, int]:
        """The bound (host, port), useful with port 0."""
        return self._sock.getsockname()

    def start(self) -> None:
        """Start the receive thread."""
        self._thread = threading.Thread(target=self._run, name="osc-server", daemon=True)
        self._thread.start()
        log.info("OSC listening on %s:%d", *self.address)

    def stop(self) -> None:
        """Stop the thread and close the socket."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
        self._sock.close()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ receive
    def _run(self) -> None:
        next_push = time.monotonic() + self._status_interval
        while not self._stop.is_set():
            try:
                data, sender = self._sock.recvfrom(65536)
            except TimeoutError:
                data = None
            except OSError as exc:
                # e.g. ECONNREFUSED after sending to a subscriber that went away
                if self._stop.is_set():
                    break
                log.debug("recvfrom: %s", exc)
                continue
            if data is not None:
                self.handle_datagram(data, sender)
            if self._status_interval > 0 and time.monotonic() >= next_push:
                next_push = time.monotonic() + self._status_interval
                self._push_status()

    def handle_datagram(self, data: bytes, sender: tuple[str, int]) -> None:
        """Parse and dispatch one datagram (messages or a bundle); never raises."""
        try:
            messages = _split_packet(data)
        except ValueError as exc:
            self._reject("<datagram>", f"not an OSC packet ({exc})")
            return
        for msg in messages:
            self.handle_message(msg.address, list(msg.params), sender)

    def handle_message(self, address: str, args: list, sender: tuple[str, int]) -> str | None:
        """Dispatch one message from any transport (OSC, the web studio); never raises.

        Counted, validated and logged exactly like a datagram's messages. Returns
        None when it was applied, else the reason it was rejected. Applied
        messages are passed to every callable in ``listeners`` (address, args).
        """
        with self._count_lock:
            self.received += 1
        try:
            osc_api.dispatch(self._ctx, address, args, sender)
        except LookupError:
            reason = "unknown address"
        except ValueError as exc:
            reason = str(exc)
        except Exception:
            with self._count_lock:
                self.rejected += 1
            log.exception("OSC %s: handler failed", address)
            return "handler failed"
        else:
            for listener in self.listeners:
                try:
                    listener(address, args)
                except Exception:
                    log.exception("OSC listener %r failed", listener)
            return None
        self._reject(address, reason)
        return reason

    def _reject(self, address: str, reason: str) -> None:
        with self._count_lock:
            self.rejected += 1
        address = address[:80]
        found = osc_api.match(address)
        key_addr = found[0].address if found else address
        # numbers (and a parse error's details) do not make a new reason
        coarse = reason.split(" (")[0] if address == "<datagram>" else reason
        key = (key_addr, re.sub(r"-?\d+(\.\d+)?(e-?\d+)?", "#", coarse))
        if key in self._logged:
            return
        if len(self._logged) >= MAX_LOGGED_REASONS:
            return
        self._logged.add(key)
        log.warning("OSC %s ignored: %s (further identical problems are not logged)", address, reason)

    # -------------------------------------------------------------------- send
    def _send(self, dgram: bytes, addr: tuple[str, int]) -> None:
        try:
            self._sock.sendto(dgram, addr)
        except OSError as exc:
            log.debug("OSC send to %s failed: %s", addr, exc)

    def status_payload(self) -> dict:
        """Everything /status/reply carries, as a dict."""
        engine: dict = {}
        if self._status_provider is not None:
            try:
                engine = dict(self._status_provider())
            except Exception:
                log.exception("status provider failed")
        out = {"engine": engine, "control": self._state.status(),
               "osc": {"received": self.received, "rejected": self.rejected}}
        if self._mapper is not None:
            out["game"] = self._mapper.status()
        if self._ctx.daw is not None:
            out.update(self._ctx.daw.status())
        return out

    def _status_dgram(self) -> bytes:
        payload = self.status_payload()
        e = payload["engine"]

        def num(key: str, kind: type) -> int | float:
            try:
                return kind(e.get(key, -1))
            except (TypeError, ValueError):
                return kind(-1)

        args = [num("frame", int), num("step_ms_p50", float), num("step_ms_p99", float),
                num("underruns", int), num("ring_fill", float),
                json.dumps(payload, separators=(",", ":"), default=str)]
        return _build("/status/reply", args)

    def reply_status(self, sender: tuple[str, int], port: int | None) -> None:
        """Send /status/reply to the sender (at ``port`` if given)."""
        self._send(self._status_dgram(), (sender[0], port or sender[1]))

    def subscribe(self, sender: tuple[str, int], port: int | None) -> None:
        """Add a subscriber for ticks and status pushes."""
        addr = (sender[0], port or sender[1])
        with self._sub_lock:
            if addr in self._subscribers:
                return
            if len(self._subscribers) >= MAX_SUBSCRIBERS:
                raise ValueError(f"too many subscribers (max {MAX_SUBSCRIBERS})")
            self._subscribers.append(addr)
        log.info("OSC subscriber %s:%d", *addr)

    def unsubscribe(self, sender: tuple[str, int], port: int | None) -> None:
        """Remove a subscriber (no-op if absent)."""
        addr = (sender[0], port or sender[1])
        with self._sub_lock:
            if addr in self._subscribers:
                self._subscribers.remove(addr)

    def subscribers(self) -> list[tuple[str, int]]:
        """Current subscribers."""
        with self._sub_lock:
            return list(self._subscribers)

    def _push_status(self) -> None:
        subs = self.subscribers()
        if subs:
            dgram = self._status_dgram()
            for addr in subs:
                self._send(dgram, addr)

    def send_tick(self, kind: str, beat: int, bar: int, beat_in_bar: int) -> None:
        """Mapper tick callback: /tick/beat (beat, bar, beat_in_bar) or /tick/bar (bar) to subscribers."""
        subs = self.subscribers()
        if not subs:
            return
        if kind == "bar":
            dgram = _build("/tick/bar", [bar])
        else:
            dgram = _build("/tick/beat", [beat, bar, beat_in_bar])
        for addr in subs:
            self._send(dgram, addr)
