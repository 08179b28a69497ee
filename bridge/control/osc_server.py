"""OSC over UDP: receive control messages, reply to /status, push ticks to subscribers.

One daemon thread owns a UDP socket (default 127.0.0.1:9000), parses each
datagram with python-osc (messages and bundles; bundle timetags are ignored,
messages apply on arrival) and dispatches through bridge/control/osc_api.py.
Anything malformed is logged once per (address, reason), counted, and
dropped; the thread never dies on input.

Control traffic never costs audio, however much arrives:

- the socket is drained in batches; while the rate stays under
  ``DISPATCH_PER_S`` every message is applied in order;
- above it (a flood), a batch is coalesced per address (latest wins, for
  value addresses such as /volume or /game/x), event messages (notes,
  triggers...) beyond ``EVENT_CAP`` per batch are shed, and everything shed
  or coalesced is counted (``osc`` in /status, with the kernel's own drops);
- the thread runs at a lower CPU priority than the frame loop (Linux nice is
  per thread) and sleeps briefly after a full batch.

Replies never amplify: /status replies are rate-limited and size-bounded and
go to the asking sender's address (a reply ``port`` argument only from this
machine); subscriptions expire unless renewed (``SUBSCRIPTION_TTL_S``) and a
subscriber whose port is closed (ICMP port unreachable) is dropped at once.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import re
import select
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
from bridge.threads import CONTROL_NICE, set_thread_nice

log = logging.getLogger(__name__)

MAX_SUBSCRIBERS = 16
SUBSCRIPTION_TTL_S = 30.0  # renew with /subscribe (the examples do every 5 s)
MAX_BUNDLE_DEPTH = 4
MAX_MESSAGES_PER_DATAGRAM = 64
_BUNDLE = b"#bundle\x00"
MAX_LOGGED_REASONS = 512
STATUS_KEYS = ("frame", "step_ms_p50", "step_ms_p99", "underruns", "ring_fill")
# Flood handling (see the module docstring).
BATCH_MAX = 512
DISPATCH_PER_S = 2000.0
DISPATCH_BURST = 1000.0
EVENT_CAP = 64
KEEP_MAX = 256
FLOOD_PAUSE_S = 0.02
# A sender with a quarter of a full batch gets its own connected socket (at most MAX_ISOLATED),
# drained ISOLATED_BATCH datagrams at a time; released after ISOLATION_QUIET_S without traffic.
MAX_ISOLATED = 8
ISOLATED_BATCH = 64
ISOLATED_RECV_BUFFER = 64 * 1024
ISOLATION_QUIET_S = 10.0
RECV_BUFFER = 1 << 20
# Replies: at most this many /status replies per second (all senders), each at most this big.
REPLIES_PER_S = 20.0
MAX_REPLY_BYTES = 8192
# OSC type tags a route can take (int, float, string and their wider/boolean forms).
ACCEPTED_TAGS = frozenset("ifsdhTF")


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
    _check_type_tags(data)
    try:
        return [OscMessage(data)]
    except Exception as exc:  # noqa: BLE001 - python-osc raises ParseError and others
        raise ValueError(f"{type(exc).__name__}: {exc}"[:120]) from None


def _check_type_tags(data: bytes) -> None:
    """Reject type tags no route takes before python-osc sees them (it skips unknown ones)."""
    end = data.find(b"\x00")
    if end < 0:
        raise ValueError("address not terminated")
    start = (end + 4) & ~3
    if start >= len(data):
        return  # no type tag string: a message without arguments
    if data[start:start + 1] != b",":
        raise ValueError("no type tag string")
    stop = data.find(b"\x00", start)
    tags = data[start + 1:stop if stop >= 0 else len(data)].decode("ascii", "replace")
    bad = set(tags) - ACCEPTED_TAGS
    if bad:
        raise ValueError(f"unsupported OSC type tag(s) {''.join(sorted(bad))!r} (accepted: i f s d h T F)")


def _address_of(data: bytes) -> str:
    """The OSC address at the start of a datagram, for log lines ('<datagram>' if none)."""
    end = data.find(b"\x00", 0, 256)
    if data.startswith(b"/") and end > 0:
        return data[:end].decode("ascii", "replace")
    return "<datagram>"


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class _TokenBucket:
    """``rate`` per second, at most ``burst`` saved up."""

    def __init__(self, rate: float, burst: float) -> None:
        self.rate, self.burst = rate, burst
        self.tokens = burst
        self.at = time.monotonic()

    def refill(self) -> float:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.at) * self.rate)
        self.at = now
        return self.tokens

    def take(self, n: float = 1.0) -> bool:
        if self.refill() >= n:
            self.tokens -= n
            return True
        return False


def _kernel_drops(port: int) -> int | None:
    """Datagrams the kernel dropped on our port (receive buffers full), from /proc/net/udp."""
    total = None
    try:
        with open("/proc/net/udp") as f:
            next(f)
            for line in f:
                fields = line.split()
                if int(fields[1].rsplit(":", 1)[1], 16) == port:
                    total = (total or 0) + int(fields[-1])
    except (OSError, ValueError, IndexError, StopIteration):
        return None
    return total


def _reuseport_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.setblocking(False)
    return sock


def bind_osc_socket(host: str = "127.0.0.1", port: int = 9000) -> socket.socket:
    """Bind the OSC UDP socket; RuntimeError with a clear line if the port is taken.

    Bound with SO_REUSEPORT so that a flooding sender can be moved onto its own
    connected socket on the same port (the kernel then queues, and drops, its
    datagrams apart from everyone else's). A plain bind first proves that no
    other process holds the port.
    """
    def busy(exc: OSError) -> RuntimeError:
        return RuntimeError(f"cannot listen for OSC on {host}:{port} ({exc.strerror}); "
                            "is another daemon running? choose another port with --osc-port")

    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        probe.bind((host, port))
        bound = probe.getsockname()
    except OSError as exc:
        raise busy(exc) from None
    finally:
        probe.close()
    sock = _reuseport_socket()
    try:
        sock.bind(bound)
    except OSError as exc:
        sock.close()
        raise busy(exc) from None
    for opt in (getattr(socket, "SO_RCVBUFFORCE", None), socket.SO_RCVBUF):
        try:  # room for bursts; FORCE works as root, plain RCVBUF up to rmem_max
            if opt is not None:
                sock.setsockopt(socket.SOL_SOCKET, opt, RECV_BUFFER)
                break
        except OSError:
            continue
    # Hear about closed subscriber ports (ICMP port unreachable) on the error queue.
    sock.setsockopt(socket.IPPROTO_IP, getattr(socket, "IP_RECVERR", 11), 1)
    return sock


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
        sock: socket.socket | None = None,
    ) -> None:
        self._ctx = osc_api.Context(state, mapper, self, daw)
        self._state = state
        self._mapper = mapper
        self._status_provider = status_provider
        self._status_interval = status_interval
        self._sock = sock if sock is not None else bind_osc_socket(host, port)
        # senders that flooded, each on its own connected socket: sender -> [socket, last datagram time]
        self._isolated: dict[tuple[str, int], list] = {}
        self._buf = bytearray(65536)
        # subscriber (host, port) -> monotonic expiry time
        self._subscribers: dict[tuple[str, int], float] = {}
        self._sub_lock = threading.Lock()
        self._logged: set[tuple[str, str]] = set()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._dispatch_budget = _TokenBucket(DISPATCH_PER_S, DISPATCH_BURST)
        self._reply_budget = _TokenBucket(REPLIES_PER_S, REPLIES_PER_S)
        self._kinds: dict[bytes, str] = {}
        self.received = 0
        self.rejected = 0
        self.shed = 0        # messages dropped unapplied under a flood
        self.coalesced = 0   # value messages superseded by a later one in the same batch
        self.replies_limited = 0
        self.isolations = 0  # flooding senders moved to their own socket
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
        for sock, _ in self._isolated.values():
            sock.close()
        self._isolated.clear()
        self._sock.close()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ receive
    def _run(self) -> None:
        set_thread_nice(CONTROL_NICE)  # the frame loop wins the CPU when both want it
        next_push = time.monotonic() + self._status_interval
        while not self._stop.is_set():
            try:
                flooded = self._receive_once()
            except Exception:  # never dies on input; handle_datagram already catches per message
                log.exception("OSC receive failed")
                flooded = False
            if self._status_interval > 0 and time.monotonic() >= next_push:
                next_push = time.monotonic() + self._status_interval
                self._push_status()
                self._release_quiet_senders()
            if flooded:
                time.sleep(FLOOD_PAUSE_S)  # a flood: give the CPU (and the GIL) back for a moment

    def _receive_once(self) -> bool:
        """Wait up to 0.1 s for input and handle one batch per socket; True while flooded."""
        socks = [self._sock] + [entry[0] for entry in self._isolated.values()]
        try:
            ready, _, _ = select.select(socks, [], [], 0.1)
        except (OSError, ValueError):
            return False
        flooded = False
        for sock in ready:
            main = sock is self._sock
            batch = self._drain(sock, BATCH_MAX if main else ISOLATED_BATCH)
            if main and len(batch) >= BATCH_MAX:
                self._isolate_heaviest(batch)
            if main and self._isolated:
                # what an isolated sender queued here before it was moved: shed at once
                n = len(batch)
                batch = [item for item in batch if item[1] not in self._isolated]
                self._count(n - len(batch), shed=n - len(batch))
            if not batch:
                continue
            entry = None if main else self._isolated.get(batch[0][1])
            if entry is not None:
                entry[1] = time.monotonic()  # still flooding: keep it isolated
            flooded |= len(batch) >= (BATCH_MAX if main else ISOLATED_BATCH)
            self._handle_batch(batch)
        return flooded

    def _drain(self, sock: socket.socket, limit: int) -> list[tuple[bytes, tuple[str, int]]]:
        """Take what is queued on ``sock`` (at most ``limit`` datagrams)."""
        out = []
        view = memoryview(self._buf)
        while len(out) < limit:
            try:
                n, sender = sock.recvfrom_into(self._buf)
            except BlockingIOError:
                break
            except ConnectionRefusedError:
                self._drop_dead_subscribers()
                continue
            except OSError as exc:
                log.debug("recvfrom: %s", exc)
                break
            out.append((bytes(view[:n]), sender))
        return out

    def _isolate_heaviest(self, batch: list[tuple[bytes, tuple[str, int]]]) -> None:
        """A full batch: move the sender with most of it onto its own connected socket."""
        counts: dict[tuple[str, int], int] = {}
        for _, sender in batch:
            counts[sender] = counts.get(sender, 0) + 1
        sender, n = max(counts.items(), key=lambda kv: kv[1])
        if n < len(batch) // 4 or sender in self._isolated:
            return
        if len(self._isolated) >= MAX_ISOLATED:
            oldest = min(self._isolated, key=lambda k: self._isolated[k][1])
            self._isolated.pop(oldest)[0].close()
        try:
            sock = _reuseport_socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, ISOLATED_RECV_BUFFER)
            sock.bind(self._sock.getsockname())
            sock.connect(sender)
        except OSError as exc:
            log.debug("cannot isolate %s: %s", sender, exc)
            return
        self._isolated[sender] = [sock, time.monotonic()]
        self.isolations += 1
        log.warning("OSC flood from %s:%d: its messages are now coalesced and shed apart from other "
                    "senders' (counted in /status osc)", *sender)

    def _release_quiet_senders(self) -> None:
        now = time.monotonic()
        for sender in [k for k, v in self._isolated.items() if now - v[1] > ISOLATION_QUIET_S]:
            self._isolated.pop(sender)[0].close()

    def _handle_batch(self, batch: list[tuple[bytes, tuple[str, int]]]) -> None:
        if self._dispatch_budget.refill() >= len(batch):
            self._dispatch_budget.tokens -= len(batch)
            for data, sender in batch:
                self.handle_datagram(data, sender)
            return
        # A flood: latest value per address, events (and queries) only as the budget allows.
        kept: list[tuple[bytes, tuple[str, int]] | None] = []
        latest: dict[bytes, int] = {}
        events = EVENT_CAP - min(EVENT_CAP, int(self._dispatch_budget.tokens))
        for item in batch:
            kind, key = self._kind(item[0])
            if kind == "value" and key in latest:
                kept[latest[key]] = None
                self._count(1, coalesced=1)
            elif len(kept) >= KEEP_MAX or (kind == "event" and events >= EVENT_CAP):
                self._count(1, shed=1)
                continue
            if kind == "value":
                latest[key] = len(kept)
            else:
                events += 1
            kept.append(item)
        self._dispatch_budget.tokens = 0.0
        for item in kept:
            if item is not None:
                self.handle_datagram(*item)

    def _count(self, received: int, shed: int = 0, coalesced: int = 0) -> None:
        """Count messages that arrive but are not dispatched."""
        with self._count_lock:
            self.received += received
            self.shed += shed
            self.coalesced += coalesced

    def _kind(self, data: bytes) -> tuple[str, bytes]:
        """'value' (latest wins) or 'event' for a raw datagram, from its address; cached."""
        if data.startswith(_BUNDLE):
            return "event", b""
        end = data.find(b"\x00", 0, 256)
        key = data[:end] if end > 0 else data[:64]
        kind = self._kinds.get(key)
        if kind is None:
            found = osc_api.match(key.decode("latin-1"))
            kind = "value" if found and found[0].address not in osc_api.EVENT_ADDRESSES else "event"
            if len(self._kinds) >= 4096:
                self._kinds.clear()
            self._kinds[key] = kind
        return kind, key

    def handle_datagram(self, data: bytes, sender: tuple[str, int]) -> None:
        """Parse and dispatch one datagram (messages or a bundle); never raises."""
        try:
            messages = _split_packet(data)
        except ValueError as exc:
            self._count(1)
            self._reject(_address_of(data), f"not an OSC packet ({exc})")
            return
        if len(messages) > MAX_MESSAGES_PER_DATAGRAM:
            extra = len(messages) - MAX_MESSAGES_PER_DATAGRAM
            self._count(extra, shed=extra)
            self._reject("<datagram>", f"bundle of more than {MAX_MESSAGES_PER_DATAGRAM} messages "
                         "(the rest were dropped)", count=False)
            messages = messages[:MAX_MESSAGES_PER_DATAGRAM]
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
            self._dispatch(address, args, sender)
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

    def _dispatch(self, address: str, args: list, sender: tuple[str, int]) -> None:
        """Apply one message (overridden by the multi-stream server); raises like osc_api.dispatch."""
        osc_api.dispatch(self._ctx, address, args, sender)

    def _reject(self, address: str, reason: str, count: bool = True) -> None:
        with self._count_lock:
            self.rejected += count
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
        except ConnectionRefusedError:
            # an earlier datagram hit a closed port; this one was not sent: retry once
            self._drop_dead_subscribers()
            try:
                self._sock.sendto(dgram, addr)
            except OSError as exc:
                log.debug("OSC send to %s failed: %s", addr, exc)
        except OSError as exc:
            log.debug("OSC send to %s failed: %s", addr, exc)

    def _drop_dead_subscribers(self) -> None:
        """Read ICMP errors (port unreachable) off the error queue; forget those subscribers."""
        for _ in range(64):
            try:
                _data, _anc, _flags, addr = self._sock.recvmsg(1, 512, socket.MSG_ERRQUEUE)
            except OSError:
                return
            with self._sub_lock:
                if self._subscribers.pop(tuple(addr[:2]), None) is not None:
                    log.info("OSC subscriber %s:%d is gone (port closed); dropped", *addr[:2])

    def status_payload(self) -> dict:
        """Everything /status/reply carries, as a dict."""
        engine: dict = {}
        if self._status_provider is not None:
            try:
                engine = dict(self._status_provider())
            except Exception:
                log.exception("status provider failed")
        osc = {"received": self.received, "rejected": self.rejected, "shed": self.shed,
               "coalesced": self.coalesced, "replies_limited": self.replies_limited,
               "isolated_senders": self.isolations,
               "kernel_dropped": _kernel_drops(self.address[1]), "subscribers": len(self._subscribers)}
        out = {"engine": engine, "control": self._state.status(), "osc": osc}
        if self._mapper is not None:
            out["game"] = self._mapper.status()
        if self._ctx.daw is not None:
            out.update(self._ctx.daw.status())
        return out

    def _status_dgram(self, full: bool = True) -> bytes:
        payload = self.status_payload()
        e = payload["engine"]

        def num(key: str, kind: type) -> int | float:
            try:
                return kind(e.get(key, -1))
            except (TypeError, ValueError):
                return kind(-1)

        head = [num("frame", int), num("step_ms_p50", float), num("step_ms_p99", float),
                num("underruns", int), num("ring_fill", float)]
        text = json.dumps(payload, separators=(",", ":"), default=str) if full else "{}"
        dgram = _build("/status/reply", [*head, text])
        if len(dgram) > MAX_REPLY_BYTES:  # never a large reply: the figures, and a note why
            dgram = _build("/status/reply", [*head, json.dumps({"truncated": True, "osc": payload["osc"]})])
        return dgram

    def _reply_target(self, sender: tuple[str, int], port: int | None, what: str) -> tuple[str, int]:
        """Where a reply goes: the sender, at ``port`` only when the sender is on this machine."""
        if port is None or port == sender[1]:
            return sender[0], sender[1]
        if not _is_loopback(sender[0]):
            raise ValueError(f"{what} port argument is accepted only from this machine; "
                             "send from the socket that should receive the replies")
        return sender[0], port

    def reply_status(self, sender: tuple[str, int], port: int | None) -> None:
        """Send /status/reply to the sender (at ``port`` if given, from this machine only); rate-limited.

        Senders on other machines get the full JSON only while they are subscribed (they
        proved they listen); otherwise the five figures, so a spoofed request cannot be
        answered with a large reply.
        """
        addr = self._reply_target(sender, port, "/status")
        if not self._reply_budget.take():
            self.replies_limited += 1
            return
        with self._sub_lock:
            subscribed = addr in self._subscribers
        self._send(self._status_dgram(full=_is_loopback(addr[0]) or subscribed), addr)

    def subscribe(self, sender: tuple[str, int], port: int | None) -> None:
        """Add (or renew) a subscriber for ticks and status pushes; it lapses after SUBSCRIPTION_TTL_S."""
        addr = self._reply_target(sender, port, "/subscribe")
        now = time.monotonic()
        with self._sub_lock:
            self._expire_locked(now)
            renewing = addr in self._subscribers
            if not renewing and len(self._subscribers) >= MAX_SUBSCRIBERS:
                raise ValueError(f"too many subscribers (max {MAX_SUBSCRIBERS}; each lapses "
                                 f"{SUBSCRIPTION_TTL_S:.0f} s after its last /subscribe)")
            self._subscribers[addr] = now + SUBSCRIPTION_TTL_S
        if not renewing:
            log.info("OSC subscriber %s:%d", *addr)

    def unsubscribe(self, sender: tuple[str, int], port: int | None) -> None:
        """Remove a subscriber (no-op if absent)."""
        addr = (sender[0], port or sender[1])
        with self._sub_lock:
            self._subscribers.pop(addr, None)

    def _expire_locked(self, now: float) -> None:
        for addr in [a for a, t in self._subscribers.items() if t <= now]:
            del self._subscribers[addr]
            log.info("OSC subscriber %s:%d lapsed (no /subscribe for %.0f s)", *addr, SUBSCRIPTION_TTL_S)

    def subscribers(self) -> list[tuple[str, int]]:
        """Current (unexpired) subscribers."""
        with self._sub_lock:
            self._expire_locked(time.monotonic())
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
