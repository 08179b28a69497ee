"""HTTP + WebSocket server of the browser studio (`mrt-bridge serve --web [PORT]`).

One thread runs an asyncio loop with a ``websockets`` server on 127.0.0.1
(``--web-host`` to change):

    GET /                       the page (bridge/web/static/: plain HTML/JS/CSS, nothing from elsewhere)
    GET /static/NAME            its scripts and styles
    GET /api/studio.json        the OSC address table and the loaded mapping (bridge/web/describe.py)
    GET /download/events.jsonl  the session's control events, render's JSON Lines format
    GET /download/audio.wav     the last minutes of output audio
    WS  /ws                     control: JSON {"address": ..., "args": [...]} in; status pushed out
                                4 times a second, with the frames' conditioning (FrameTrace records)
    WS  /ws/audio               output audio: each binary message is one PCM stream packet
                                (bridge/audio/pcm_stream.py, docs/pcm-stream.md)

Control messages enter ``OscServer.handle_message``: validated, counted and
logged exactly like OSC datagrams. Audio first: the frame loop only appends
an encoded packet to a bounded deque (:class:`AudioTap`); everything else
happens on this thread. Every client has a small outbox; a slow one loses its
oldest messages (counted) and slows nobody else. Incoming messages over
16 KiB close the connection; more than 200 control messages a second from
one page are shed and counted.
"""

from __future__ import annotations

import asyncio
import collections
import email.utils
import importlib.resources
import json
import logging
import os
import socket
import threading
import time
from http import HTTPStatus
from urllib.parse import urlsplit

import numpy as np
from websockets.asyncio.server import ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from bridge.audio.pcm_stream import encode_packet
from bridge.control import osc_api
from bridge.control.mapping import GameMapper
from bridge.control.osc_server import OscServer
from bridge.control.state import ControlState
from bridge.daemon.trace import FrameTrace

from .describe import describe
from .session import SessionRecorder

log = logging.getLogger(__name__)
# websockets logs every plain HTTP answer at INFO; keep only its problems.
_ws_log = logging.getLogger(__name__ + ".websockets")
_ws_log.setLevel(logging.WARNING)

DEFAULT_PORT = 8080
STATUS_INTERVAL_S = 0.25
PUMP_INTERVAL_S = 0.01
MAX_MESSAGE_BYTES = 16 * 1024
CONTROL_RATE = 200.0          # messages per second per page, bursts of twice that
CONTROL_OUTBOX = 8            # status pushes and error replies waiting for a slow page
AUDIO_OUTBOX = 8              # PCM packets (320 ms) waiting for a slow page
TAP_QUEUE = 50                # frames (2 s) between the frame loop and this thread
MAX_CLIENTS = 16              # per socket kind
MAX_FRAMES_PER_PUSH = 250     # trace records in one status push (the trace keeps 250)

_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
          ".css": "text/css; charset=utf-8", ".png": "image/png", ".svg": "image/svg+xml"}
# The page may talk only to this server: no fonts, scripts or anything else from the internet.
_CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'")


class AudioTap:
    """FrameLoop tap: each 48 kHz frame becomes one PCM stream packet in a bounded queue.

    ``publish`` runs on the frame-loop thread (the codec thread when overlapped):
    one encode and a deque append, never a lock or a wait. When this server
    falls 2 s behind, the oldest packets are dropped and counted.
    """

    def __init__(self, maxlen: int = TAP_QUEUE) -> None:
        self.packets: collections.deque[bytes] = collections.deque(maxlen=maxlen)
        self.sequence = 0
        self.dropped = 0
        self.closed = False

    def publish(self, frames: np.ndarray, frame_index: int) -> None:
        if self.closed:
            return
        if len(self.packets) == self.packets.maxlen:
            self.dropped += 1  # the deque drops the oldest on append
        self.packets.append(encode_packet(self.sequence, frames, frame_index))
        self.sequence += 1


class _Client:
    """One WebSocket with a bounded outbox drained by its own task."""

    def __init__(self, ws: ServerConnection, maxlen: int) -> None:
        self.ws = ws
        self.outbox: collections.deque[str | bytes] = collections.deque(maxlen=maxlen)
        self.wake = asyncio.Event()
        self.dropped = 0

    def offer(self, message: str | bytes) -> None:
        if len(self.outbox) == self.outbox.maxlen:
            self.dropped += 1
        self.outbox.append(message)
        self.wake.set()

    async def drain(self) -> None:
        try:
            while True:
                await self.wake.wait()
                self.wake.clear()
                while self.outbox:
                    await self.ws.send(self.outbox.popleft())
        except ConnectionClosed:
            pass


class _TokenBucket:
    def __init__(self, rate: float, burst: float) -> None:
        self.rate, self.burst = rate, burst
        self.tokens = burst
        self.last = time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.last) * self.rate)
        self.last = now
        if self.tokens < 1.0:
            return False
        self.tokens -= 1.0
        return True


def _load_static() -> dict[str, tuple[bytes, str]]:
    root = importlib.resources.files("bridge.web") / "static"
    out = {}
    for item in root.iterdir():
        suffix = "." + item.name.rsplit(".", 1)[-1]
        if item.is_file() and suffix in _TYPES:
            out[item.name] = (item.read_bytes(), _TYPES[suffix])
    if "index.html" not in out:
        raise RuntimeError("the web studio's page is missing from the installed package (bridge/web/static)")
    return out


def _bind(host: str, port: int) -> socket.socket:
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0][0]
        return socket.create_server((host, port), family=family)
    except OSError as exc:
        reason = os.strerror(exc.errno) if exc.errno else str(exc)
        raise RuntimeError(f"cannot serve the web studio on {host}:{port} ({reason}); "
                           "is another daemon running? choose another port with --web PORT") from None


def stop_loop_thread(loop: asyncio.AbstractEventLoop, stop: asyncio.Event, thread: threading.Thread | None) -> None:
    """Set ``stop`` inside ``loop`` (run by ``thread``), wait for the thread, then close the loop."""
    if thread is not None and thread.is_alive():
        try:
            loop.call_soon_threadsafe(stop.set)
        except RuntimeError:
            pass  # the loop already ended
        thread.join(timeout=5.0)
    if thread is None or not thread.is_alive():
        loop.close()


class WebStudio:
    """The studio's server. Binds in the constructor (a busy port fails before the frame loop starts);
    :meth:`attach` connects it to the daemon's control side, :meth:`start` serves, :meth:`close` stops."""

    def __init__(self, host: str = "127.0.0.1", port: int = DEFAULT_PORT, trace: FrameTrace | None = None,
                 recorder: SessionRecorder | None = None) -> None:
        self._static = _load_static()
        self.host = host
        self._sock = _bind(host, port)
        self.port: int = self._sock.getsockname()[1]
        self.trace = trace
        self.tap = AudioTap()
        self.recorder = recorder or SessionRecorder()
        self._osc: OscServer | None = None
        self._describe = json.dumps(describe(None)).encode()
        self._control_clients: set[_Client] = set()
        self._audio_clients: set[_Client] = set()
        self._last_trace_frame = -1
        self._loop = asyncio.new_event_loop()
        self._stop = asyncio.Event()
        self._thread: threading.Thread | None = None
        self._closed = False
        # counters (this thread writes them; status readers may see them one update late)
        self.received = 0
        self.invalid = 0
        self.shed = 0
        self._dropped_gone = {False: 0, True: 0}  # outbox drops of closed connections: control, audio

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"

    # ------------------------------------------------------------------ wiring
    def attach(self, osc: OscServer, control: ControlState, mapper: GameMapper | None) -> None:
        """Send page messages through ``osc``'s dispatch and record what the daemon applies."""
        self._osc = osc
        osc.listeners.append(self.recorder.on_message)
        control.add_frame_hook(self.recorder.on_frame)
        self._describe = json.dumps(describe(mapper.config if mapper is not None else None)).encode()

    def start(self) -> None:
        """Serve on a thread of its own (after :meth:`attach`)."""
        if self._osc is None:
            raise RuntimeError("WebStudio.start() before attach()")
        self._thread = threading.Thread(target=self._loop.run_until_complete, args=(self._main(),),
                                        name="web-studio", daemon=True)
        self._thread.start()
        log.info("web studio on %s", self.url)
        if self.host not in ("127.0.0.1", "localhost", "::1"):
            log.warning("the web studio listens on %s: anyone who can reach this machine can control "
                        "the music and hear it (there is no password)", self.host)

    def close(self) -> None:
        """Stop serving and close every connection. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self.tap.closed = True
        stop_loop_thread(self._loop, self._stop, self._thread)
        self._sock.close()

    def status(self) -> dict:
        """Figures for the daemon's status (plain JSON types)."""
        return {
            "url": self.url,
            "pages": len(self._control_clients),
            "listeners": len(self._audio_clients),
            "received": self.received,
            "invalid": self.invalid,
            "shed": self.shed,
            "dropped_out": self._dropped_gone[False] + sum(c.dropped for c in list(self._control_clients)),
            "audio_dropped": (self.tap.dropped + self._dropped_gone[True]
                              + sum(c.dropped for c in list(self._audio_clients))),
            "events": self.recorder.event_count,
            "events_dropped": self.recorder.events_dropped,
            "audio_recorded_s": round(self.recorder.audio_seconds, 2),
        }

    # --------------------------------------------------------------- the thread
    async def _main(self) -> None:
        async with serve(self._handle_ws, sock=self._sock, process_request=self._http,
                         max_size=MAX_MESSAGE_BYTES, max_queue=16, compression=None,
                         close_timeout=1.0, logger=_ws_log, server_header=None):
            tasks = [asyncio.create_task(self._pump_audio()), asyncio.create_task(self._push_status())]
            await self._stop.wait()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _pump_audio(self) -> None:
        """Move packets from the tap to the recorder and to every listening page."""
        packets = self.tap.packets
        while True:
            await asyncio.sleep(PUMP_INTERVAL_S)
            while packets:
                packet = packets.popleft()
                self.recorder.add_packet(packet)
                for client in list(self._audio_clients):
                    client.offer(packet)

    async def _push_status(self) -> None:
        while True:
            await asyncio.sleep(STATUS_INTERVAL_S)
            if self._control_clients:
                message = self._status_message(self._new_frames())
                for client in list(self._control_clients):
                    client.offer(message)

    def _new_frames(self, everything: bool = False) -> list[dict]:
        records = self.trace.records.copy() if self.trace is not None else []
        last = -1 if everything else self._last_trace_frame
        fresh = [r for r in records if r["frame"] > last][-MAX_FRAMES_PER_PUSH:]
        if not everything and records:
            self._last_trace_frame = max(self._last_trace_frame, records[-1]["frame"])
        return fresh

    def _status_message(self, frames: list[dict]) -> str:
        assert self._osc is not None
        return json.dumps({"type": "status", "t": time.time(), "status": self._osc.status_payload(),
                           "frames": frames}, separators=(",", ":"), default=str)

    # ------------------------------------------------------------------- HTTP
    def _host_ok(self, host: str | None) -> bool:
        """Refuse other Host names on a loopback bind (DNS rebinding)."""
        if self.host in ("0.0.0.0", "::", ""):
            return host is not None
        names = {"127.0.0.1", "localhost", "[::1]", self.host.lower(), f"[{self.host.lower()}]"}
        return host is not None and host.lower() in {f"{n}:{self.port}" for n in names}

    def _response(self, status: HTTPStatus, body: bytes, content_type: str,
                  extra: dict[str, str] | None = None) -> Response:
        headers = Headers([
            ("Date", email.utils.formatdate(usegmt=True)),
            ("Connection", "close"),
            ("Content-Length", str(len(body))),
            ("Content-Type", content_type),
            ("Cache-Control", "no-store"),
            ("X-Content-Type-Options", "nosniff"),
        ])
        for k, v in (extra or {}).items():
            headers[k] = v
        return Response(status.value, status.phrase, headers, body)

    def _text(self, status: HTTPStatus, text: str) -> Response:
        return self._response(status, (text + "\n").encode(), "text/plain; charset=utf-8")

    async def _http(self, connection: ServerConnection, request: Request) -> Response | None:
        host = request.headers.get("Host")
        if not self._host_ok(host):
            return self._text(HTTPStatus.FORBIDDEN, "unexpected Host header")
        path = urlsplit(request.path).path
        if path in ("/ws", "/ws/audio"):
            origin = request.headers.get("Origin")
            if origin is not None and urlsplit(origin).netloc.lower() != host.lower():
                return self._text(HTTPStatus.FORBIDDEN, "WebSocket from another origin refused")
            clients = self._audio_clients if path == "/ws/audio" else self._control_clients
            if len(clients) >= MAX_CLIENTS:
                return self._text(HTTPStatus.SERVICE_UNAVAILABLE, f"too many pages (at most {MAX_CLIENTS})")
            return None
        if path in ("/", "/index.html") or path.startswith("/static/"):
            name = "index.html" if path in ("/", "/index.html") else path[len("/static/"):]
            if name in self._static:
                body, kind = self._static[name]
                return self._response(HTTPStatus.OK, body, kind, {"Content-Security-Policy": _CSP})
        elif path == "/api/studio.json":
            return self._response(HTTPStatus.OK, self._describe, "application/json")
        elif path == "/download/events.jsonl":
            return self._response(HTTPStatus.OK, self.recorder.events_jsonl(), "application/x-ndjson",
                                  {"Content-Disposition": 'attachment; filename="session-events.jsonl"'})
        elif path == "/download/audio.wav":
            wav, first, last = await asyncio.to_thread(self.recorder.wav)
            name = f"session-frames-{max(first, 0)}-{max(last, 0)}.wav"
            return self._response(HTTPStatus.OK, wav, "audio/wav",
                                  {"Content-Disposition": f'attachment; filename="{name}"'})
        return self._text(HTTPStatus.NOT_FOUND, "not found")

    # ------------------------------------------------------------- WebSockets
    async def _handle_ws(self, ws: ServerConnection) -> None:
        audio = urlsplit(ws.request.path).path == "/ws/audio"
        clients = self._audio_clients if audio else self._control_clients
        client = _Client(ws, AUDIO_OUTBOX if audio else CONTROL_OUTBOX)
        clients.add(client)
        writer = asyncio.create_task(client.drain())
        try:
            if audio:
                async for _ in ws:
                    pass  # nothing is expected from the page on the audio socket
            else:
                client.offer(self._status_message(self._new_frames(everything=True)))
                await self._serve_control(ws, client)
        except ConnectionClosed:
            pass
        finally:
            clients.discard(client)
            self._dropped_gone[audio] += client.dropped
            writer.cancel()

    async def _serve_control(self, ws: ServerConnection, client: _Client) -> None:
        bucket = _TokenBucket(CONTROL_RATE, 2 * CONTROL_RATE)
        warned_at = 0.0
        async for message in ws:
            self.received += 1
            if not bucket.take():
                self.shed += 1
                if time.monotonic() - warned_at > 1.0:
                    warned_at = time.monotonic()
                    client.offer(_error("", f"too many messages: more than {CONTROL_RATE:.0f}/s are dropped"))
                continue
            reply = self._control(message, ws.remote_address)
            if reply is not None:
                client.offer(reply)

    def _control(self, message: str | bytes, peer: tuple) -> str | None:
        """Apply one page message; return an error reply or None."""
        assert self._osc is not None
        try:
            if not isinstance(message, str):
                raise ValueError("expected a JSON text message")
            obj = json.loads(message)
            if not isinstance(obj, dict) or not isinstance(obj.get("address"), str):
                raise ValueError('expected {"address": "/...", "args": [...]}')
        except ValueError as exc:  # JSONDecodeError is a ValueError
            self.invalid += 1
            return _error("", str(exc)[:200])
        address = obj["address"][:200]
        args = obj.get("args", [])
        if not isinstance(args, list):
            args = [args]
        found = osc_api.match(address)
        if found is not None and found[0].section == osc_api.QUERY:
            self.invalid += 1
            return _error(address, "status and subscriptions are OSC-only; the studio pushes status itself")
        reason = self._osc.handle_message(address, args, (str(peer[0]), int(peer[1])))
        return None if reason is None else _error(address, reason)


def _error(address: str, reason: str) -> str:
    return json.dumps({"type": "error", "address": address, "reason": reason})
