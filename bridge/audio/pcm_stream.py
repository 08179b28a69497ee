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
"""

from __future__ import annotations

import collections
import logging
import socket
import struct
import threading
import time

import numpy as np

log = logging.getLogger(__name__)

MAGIC = b"MRTA"
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


def read_packet(sock) -> tuple[dict, np.ndarray]:
    """Read one packet from a connected socket: (header dict, float32 frames of shape (n, channels))."""
    head = decode_header(_recv_exact(sock, HEADER_SIZE))
    _recv_exact(sock, head["header_size"] - HEADER_SIZE)  # a longer header from a newer version
    data = np.frombuffer(_recv_exact(sock, head["payload_bytes"]), "<f4")
    return head, data.reshape(head["frame_count"], head["channels"])


class _Client:
    """One connected listener with its own bounded queue and sender thread."""

    def __init__(self, sock: socket.socket, addr: tuple, max_queue: int, on_close) -> None:
        self.sock = sock
        self.addr = addr
        self.queue: collections.deque[bytes] = collections.deque(maxlen=max_queue)
        self.wake = threading.Event()
        self.closed = False
        self.sent = 0
        self.dropped = 0
        self._on_close = on_close
        self.thread = threading.Thread(target=self._run, name=f"pcm-client-{addr[1]}", daemon=True)

    def offer(self, packet: bytes) -> None:
        if len(self.queue) == self.queue.maxlen:
            self.dropped += 1  # deque drops the oldest on append
        self.queue.append(packet)
        self.wake.set()

    def _run(self) -> None:
        try:
            while not self.closed:
                self.wake.wait(0.5)
                self.wake.clear()
                while self.queue and not self.closed:
                    packet = self.queue.popleft()
                    self.sock.sendall(packet)
                    self.sent += 1
        except OSError as exc:
            if not self.closed:
                log.info("PCM client %s:%d disconnected (%s)", *self.addr[:2], exc.strerror or exc)
        finally:
            self.close()

    def close(self) -> None:
        if self.closed and self.sock is None:
            return
        self.closed = True
        self.wake.set()
        sock, self.sock = self.sock, None
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()
            self._on_close(self)


class PcmStreamServer:
    """Accepts TCP clients on ``host:port`` and fans each published frame out to them."""

    def __init__(self, port: int, host: str = "127.0.0.1", samplerate: int = 48_000,
                 max_queue: int = DEFAULT_QUEUE_PACKETS, send_buffer: int = 64 * 1024) -> None:
        self.samplerate = samplerate
        self.max_queue = max_queue
        self.send_buffer = send_buffer
        self.sequence = 0
        self.packets = 0
        self._clients: list[_Client] = []
        self._lock = threading.Lock()  # guards the client list (not the audio path)
        self._dropped_closed = 0
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self._listener.bind((host, port))
        except OSError as exc:
            self._listener.close()
            raise RuntimeError(f"PCM stream: cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
        self._listener.listen(8)
        self.host, self.port = self._listener.getsockname()[:2]
        self._running = True
        self._accept_thread = threading.Thread(target=self._accept_loop, name="pcm-accept", daemon=True)
        self._accept_thread.start()
        log.info("PCM stream on tcp://%s:%d (48 kHz stereo float32, header %d bytes)",
                 self.host, self.port, HEADER_SIZE)

    def _accept_loop(self) -> None:
        while self._running:
            try:
                sock, addr = self._listener.accept()
            except OSError:
                break
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, self.send_buffer)
            client = _Client(sock, addr, self.max_queue, self._forget)
            with self._lock:
                self._clients.append(client)
            client.thread.start()
            log.info("PCM client %s:%d connected", *addr[:2])

    def _forget(self, client: _Client) -> None:
        with self._lock:
            if client in self._clients:
                self._clients.remove(client)
                self._dropped_closed += client.dropped

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

    def status(self) -> dict:
        with self._lock:
            clients = list(self._clients)
        return {"port": self.port, "clients": len(clients), "sequence": self.sequence,
                "dropped": self._dropped_closed + sum(c.dropped for c in clients)}

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
        with self._lock:
            clients = list(self._clients)
        for client in clients:
            client.close()
        self._accept_thread.join(timeout=1.0)
