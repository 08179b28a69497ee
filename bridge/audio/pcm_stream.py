"""PCM stream for in-engine playback: 48 kHz stereo frames over local TCP.

Every frame the daemon produces is published, as one packet, to every
connected client (byte layout in docs/pcm-stream.md)::

    offset size  type     field
    0      4     bytes    magic b"MRTA"
    4      2     u16      version (1)
    6      2     u16      header size in bytes (40)
    8      4     u32      sequence number (+1 per packet, shared by all clients)
    12     4     u32      sample rate (48000)
    16     2     u16      channels (2)
    18     2     u16      sample format (1 = float32 little-endian, interleaved L R)
    20     4     u32      frame count (sample frames per channel in this packet)
    24     8     u64      engine frame index since the daemon started
    32     8     u64      publish time, Unix epoch nanoseconds
    40     ...   payload  frame_count * channels * 4 bytes

All integers are little-endian. A gap in the sequence numbers means packets
were dropped for that client. Each client has a small queue (default 4
packets = 160 ms); a client that cannot keep up loses its oldest packets,
so its latency stays bounded and the frame loop is never slowed down by it.

One sender thread serves every client with non-blocking sockets (no thread
per connection). At most ``max_clients`` connect at once; a further
connection receives ``MRTX`` + a one-line reason and is closed. A client
that accepts no bytes for ``STALL_S`` seconds is dropped.
"""

from __future__ import annotations

import collections
import logging
import selectors
import socket
import struct
import threading
import time

import numpy as np

log = logging.getLogger(__name__)

MAGIC = b"MRTA"
REFUSED = b"MRTX"  # a refused connection: this magic, a reason line, then close
DEFAULT_MAX_CLIENTS = 8
STALL_S = 2.0
VERSION = 1
HEADER = struct.Struct("<4sHHIIHHIQQ")
HEADER_SIZE = HEADER.size  # 40
FORMAT_FLOAT32 = 1
DEFAULT_QUEUE_PACKETS = 4


def encode_packet(sequence: int, frames: np.ndarray, frame_index: int, samplerate: int = 48_000,
                  produced_ns: int | None = None) -> bytes:
    """One packet: header + interleaved float32 LE samples of ``frames`` (shape (n, channels))."""
    n, channels = frames.shape
    header = HEADER.pack(MAGIC, VERSION, HEADER_SIZE, sequence & 0xFFFFFFFF, samplerate, channels,
                         FORMAT_FLOAT32, n, frame_index,
                         time.time_ns() if produced_ns is None else produced_ns)
    return header + np.ascontiguousarray(frames, dtype="<f4").tobytes()


def decode_header(data: bytes) -> dict:
    """Parse the 40-byte header (for clients and tests); raise ValueError if it is not one."""
    magic, version, size, seq, rate, ch, fmt, count, index, ns = HEADER.unpack_from(data)
    if magic == REFUSED:
        raise ConnectionRefusedError(data[4:].split(b"\n")[0].decode(errors="replace").strip())
    if magic != MAGIC:
        raise ValueError(f"bad magic {magic!r}")
    return {"version": version, "header_size": size, "sequence": seq, "samplerate": rate,
            "channels": ch, "format": fmt, "frame_count": count, "frame_index": index,
            "produced_ns": ns, "payload_bytes": count * ch * 4}


def _recv_exact(sock, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("PCM stream closed")
        buf += chunk
    return bytes(buf)


def _recv_line(sock, limit: int = 200) -> str:
    buf = bytearray()
    while len(buf) < limit:
        chunk = sock.recv(1)
        if not chunk or chunk == b"\n":
            break
        buf += chunk
    return buf.decode(errors="replace").strip()


def read_packet(sock) -> tuple[dict, np.ndarray]:
    """Read one packet from a connected socket: (header dict, float32 frames of shape (n, channels)).

    Raises ConnectionRefusedError with the daemon's reason if it refused the connection.
    """
    first = _recv_exact(sock, 4)
    if first == REFUSED:
        raise ConnectionRefusedError(_recv_line(sock))
    head = decode_header(first + _recv_exact(sock, HEADER_SIZE - 4))
    _recv_exact(sock, head["header_size"] - HEADER_SIZE)  # a longer header from a newer version
    data = np.frombuffer(_recv_exact(sock, head["payload_bytes"]), "<f4")
    return head, data.reshape(head["frame_count"], head["channels"])


class _Client:
    """One connected listener: a bounded packet queue and the packet being sent."""

    def __init__(self, sock: socket.socket, addr: tuple, max_queue: int) -> None:
        self.sock = sock
        self.addr = addr
        self.queue: collections.deque[bytes] = collections.deque(maxlen=max_queue)
        self.pending: memoryview | None = None  # the rest of a partly sent packet
        self.last_progress = time.monotonic()
        self.sent = 0
        self.dropped = 0

    def offer(self, packet: bytes) -> None:
        if len(self.queue) == self.queue.maxlen:
            self.dropped += 1  # deque drops the oldest on append
        self.queue.append(packet)

    def flush(self) -> bool:
        """Send what the socket takes without blocking; False if the client is gone."""
        while True:
            if self.pending is None:
                if not self.queue:
                    return True
                self.pending = memoryview(self.queue.popleft())
            try:
                n = self.sock.send(self.pending)
            except BlockingIOError:
                return True
            except OSError:
                return False
            if n == 0:
                return False
            self.last_progress = time.monotonic()
            self.pending = self.pending[n:] if n < len(self.pending) else None
            if self.pending is None:
                self.sent += 1

    @property
    def waiting(self) -> bool:
        return self.pending is not None or bool(self.queue)


class PcmStreamServer:
    """Accepts TCP clients on ``host:port`` and fans each published frame out to them."""

    def __init__(self, port: int, host: str = "127.0.0.1", samplerate: int = 48_000,
                 max_queue: int = DEFAULT_QUEUE_PACKETS, send_buffer: int = 64 * 1024,
                 max_clients: int = DEFAULT_MAX_CLIENTS) -> None:
        self.samplerate = samplerate
        self.max_queue = max_queue
        self.send_buffer = send_buffer
        self.max_clients = max_clients
        self.sequence = 0
        self.packets = 0
        self.refused = 0
        self.stalled = 0
        self._clients: list[_Client] = []
        self._lock = threading.Lock()  # guards the client list (not the audio path)
        self._dropped_closed = 0
        self._wake = threading.Event()
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self._listener.bind((host, port))
        except OSError as exc:
            self._listener.close()
            raise RuntimeError(f"PCM stream: cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
        self._listener.listen(16)
        self.host, self.port = self._listener.getsockname()[:2]
        self._running = True
        self._accept_thread = threading.Thread(target=self._accept_loop, name="pcm-accept", daemon=True)
        self._send_thread = threading.Thread(target=self._send_loop, name="pcm-send", daemon=True)
        self._accept_thread.start()
        self._send_thread.start()
        log.info("PCM stream on tcp://%s:%d (48 kHz stereo float32, header %d bytes, at most %d clients)",
                 self.host, self.port, HEADER_SIZE, max_clients)

    def _accept_loop(self) -> None:
        while self._running:
            try:
                sock, addr = self._listener.accept()
            except OSError:
                break
            with self._lock:
                full = len(self._clients) >= self.max_clients
            if full:
                self.refused += 1
                try:
                    sock.setblocking(False)
                    sock.send(REFUSED + f" too many PCM clients (at most {self.max_clients})\n".encode())
                except OSError:
                    pass
                sock.close()
                if self.refused == 1 or self.refused % 100 == 0:
                    log.warning("PCM stream: refused a connection from %s:%d: %d clients already "
                                "(at most %d; %d refused so far)", *addr[:2], self.max_clients,
                                self.max_clients, self.refused)
                continue
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, self.send_buffer)
            sock.setblocking(False)
            with self._lock:
                self._clients.append(_Client(sock, addr, self.max_queue))
            log.info("PCM client %s:%d connected", *addr[:2])

    def _send_loop(self) -> None:
        """The one sender thread: write queued packets to every client without blocking."""
        sel = selectors.DefaultSelector()
        try:
            while self._running:
                self._wake.wait(0.1)
                self._wake.clear()
                with self._lock:
                    clients = list(self._clients)
                blocked = []
                now = time.monotonic()
                for client in clients:
                    if not client.flush():
                        self._drop(client, "disconnected")
                    elif client.waiting:
                        if now - client.last_progress > STALL_S:
                            self.stalled += 1
                            self._drop(client, f"took no data for {STALL_S:g} s")
                        else:
                            blocked.append(client)
                if blocked:  # wait for room in a socket, or for the next packet
                    for client in blocked:
                        sel.register(client.sock, selectors.EVENT_WRITE)
                    sel.select(0.05)
                    for client in blocked:
                        sel.unregister(client.sock)
                    self._wake.set()
        finally:
            sel.close()

    def _drop(self, client: _Client, why: str) -> None:
        with self._lock:
            if client not in self._clients:
                return
            self._clients.remove(client)
            self._dropped_closed += client.dropped
        log.info("PCM client %s:%d %s; closed", *client.addr[:2], why)
        _close(client.sock)

    @property
    def client_count(self) -> int:
        return len(self._clients)

    def publish(self, frames: np.ndarray, frame_index: int) -> None:
        """Queue one frame for every client. Never blocks on a client."""
        clients = self._clients
        if not clients:
            self.sequence += 1
            return
        packet = encode_packet(self.sequence, frames, frame_index, self.samplerate)
        self.sequence += 1
        self.packets += 1
        for client in list(clients):
            client.offer(packet)
        self._wake.set()

    def status(self) -> dict:
        with self._lock:
            clients = list(self._clients)
        return {"port": self.port, "clients": len(clients), "sequence": self.sequence,
                "dropped": self._dropped_closed + sum(c.dropped for c in clients),
                "refused": self.refused, "stalled": self.stalled, "max_clients": self.max_clients}

    def close(self) -> None:
        self._running = False
        try:
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes accept() on Linux
        except OSError:
            pass
        try:
            self._listener.close()
        except OSError:
            pass
        self._wake.set()
        self._accept_thread.join(timeout=1.0)
        self._send_thread.join(timeout=1.0)
        with self._lock:
            clients, self._clients = list(self._clients), []
        for client in clients:
            _close(client.sock)


def _close(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()
