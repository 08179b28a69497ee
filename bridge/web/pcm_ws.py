"""PCM of every stream over WebSocket: ``ws://HOST:PORT/stream/<id>`` (``serve --streams N --ws-port P``).

For web pages and engines that speak WebSocket rather than raw TCP. Each binary
message is one PCM stream packet, the same bytes as the stream's TCP port
sends (docs/pcm-stream.md). The frame loop only appends encoded packets to a
bounded queue per stream (:class:`bridge.web.server.AudioTap`); this server's
own thread hands them to each listener's bounded outbox, so a slow or stalled
listener loses its oldest packets (counted) and never holds anyone up.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import socket
import threading

from websockets.asyncio.server import ServerConnection, serve
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

from bridge.audio.pcm_stream import decode_header

from .server import AUDIO_OUTBOX, MAX_CLIENTS, PUMP_INTERVAL_S, AudioTap, _Client, stop_loop_thread

log = logging.getLogger(__name__)
_ws_log = logging.getLogger("bridge.web.pcm_ws.websockets")
_ws_log.setLevel(logging.WARNING)
_PATH = re.compile(r"^/stream/(\d+)$")


class PcmWebSockets:
    """One WebSocket port for the PCM of ``streams`` streams. Binds in the constructor."""

    def __init__(self, streams: int, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        try:
            self._sock = socket.create_server((host, port))
        except OSError as exc:
            reason = os.strerror(exc.errno) if exc.errno else str(exc)
            raise RuntimeError(f"cannot serve PCM over WebSocket on {host}:{port} ({reason}); "
                               "choose another port with --ws-port") from None
        self.port: int = self._sock.getsockname()[1]
        self.taps = [AudioTap() for _ in range(streams)]
        self._clients: list[set[_Client]] = [set() for _ in range(streams)]
        self._loop = asyncio.new_event_loop()
        self._stop = asyncio.Event()
        self._thread: threading.Thread | None = None
        self.refused = 0

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop.run_until_complete, args=(self._main(),),
                                        name="pcm-websockets", daemon=True)
        self._thread.start()
        log.info("PCM over WebSocket on ws://%s:%d/stream/<id>", self.host, self.port)

    def close(self) -> None:
        """Stop serving and close every connection. Idempotent."""
        for tap in self.taps:
            tap.closed = True
        if not self._loop.is_closed():
            stop_loop_thread(self._loop, self._stop, self._thread)
        self._sock.close()

    def status(self, sid: int) -> dict:
        """Listeners and dropped packets of one stream (plain JSON types)."""
        clients = list(self._clients[sid])
        return {"listeners": len(clients), "dropped": self.taps[sid].dropped + sum(c.dropped for c in clients)}

    # --------------------------------------------------------------- the thread
    async def _main(self) -> None:
        async with serve(self._handle, sock=self._sock, process_request=self._check, max_size=1024,
                         max_queue=4, compression=None, close_timeout=1.0, logger=_ws_log, server_header=None):
            pump = asyncio.create_task(self._pump())
            await self._stop.wait()
            pump.cancel()
            await asyncio.gather(pump, return_exceptions=True)

    def _check(self, connection: ServerConnection, request: Request) -> Response | None:
        m = _PATH.match(request.path)
        if m is None or int(m[1]) >= len(self.taps):
            return self._refuse(404, f"no such stream: expected /stream/0..{len(self.taps) - 1}")
        if len(self._clients[int(m[1])]) >= MAX_CLIENTS:
            return self._refuse(503, f"stream {m[1]} has {MAX_CLIENTS} listeners already")
        return None

    def _refuse(self, code: int, reason: str) -> Response:
        self.refused += 1
        return Response(code, reason, Headers([("Content-Type", "text/plain")]), (reason + "\n").encode())

    async def _handle(self, ws: ServerConnection) -> None:
        sid = int(_PATH.match(ws.request.path)[1])
        client = _Client(ws, AUDIO_OUTBOX)
        client.first = self.taps[sid].sequence  # from the next frame on: nothing stale from the queue
        self._clients[sid].add(client)
        drain = asyncio.create_task(client.drain())
        try:
            async for _ in ws:  # listeners send nothing we use; reading notices the close
                pass
        finally:
            self._clients[sid].discard(client)
            drain.cancel()

    async def _pump(self) -> None:
        while True:
            await asyncio.sleep(PUMP_INTERVAL_S)
            for tap, clients in zip(self.taps, self._clients):
                while tap.packets:
                    packet = tap.packets.popleft()
                    sequence = decode_header(packet)["sequence"]
                    for client in list(clients):
                        if sequence >= client.first:
                            client.offer(packet)
