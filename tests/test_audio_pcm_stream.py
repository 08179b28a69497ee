"""The PCM stream sink: real TCP clients on loopback, real frame loop on the tiny model."""

from __future__ import annotations

import itertools
import socket
import struct
import time

import numpy as np
import pytest

from bridge.audio.gain import MUTE_SETTLE_FRAMES as MUTE_FRAMES
from bridge.audio.pcm_stream import PcmStreamServer, encode_packet, read_packet
from bridge.audio.ring import AudioRing
from bridge.audio.sinks.null import NullSink
from bridge.control.state import ControlState
from bridge.daemon.frame_loop import FrameLoop, ring_capacity
from bridge.engine import Engine
from bridge.synthetic import bundled_package


def test_packet_layout_is_the_documented_one() -> None:
    frames = np.arange(8, dtype=np.float32).reshape(4, 2)
    pkt = encode_packet(7, frames, frame_index=123, produced_ns=99)
    assert pkt[:4] == b"MRTA" and len(pkt) == 40 + 4 * 2 * 4
    fields = struct.unpack("<4sHHIIHHIQQ", pkt[:40])
    assert fields == (b"MRTA", 1, 40, 7, 48_000, 2, 1, 4, 123, 99)
    assert np.frombuffer(pkt[40:], "<f4").tolist() == list(range(8))


@pytest.fixture(scope="module")
def engine() -> Engine:
    return Engine(bundled_package(), provider="cpu", threads=1)


def start_daemon_parts(engine: Engine, control: ControlState, server: PcmStreamServer):
    ring = AudioRing(ring_capacity(10, 48_000))
    sink = NullSink(ring)
    loop = FrameLoop(engine, control, ring, buffer_frames=4, taps=(server,))
    loop.start()
    assert loop.wait_filled(30.0)
    sink.start()
    return loop, sink


def test_clients_get_continuous_sequence_and_bounded_latency(engine: Engine) -> None:
    """Two clients; one checks continuity and timing, the other never reads (must not stall)."""
    control = ControlState()
    server = PcmStreamServer(port=0)
    fast = socket.create_connection(("127.0.0.1", server.port))
    stalled = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stalled.connect(("127.0.0.1", server.port))
    deadline = time.monotonic() + 2
    while server.client_count < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    loop, sink = start_daemon_parts(engine, control, server)
    try:
        fast.settimeout(5)
        packets = [read_packet(fast) for _ in range(10)]
        seqs = [h["sequence"] for h, _ in packets]
        assert seqs == list(range(seqs[0], seqs[0] + 10)), seqs
        head, audio = packets[-1]
        assert (head["samplerate"], head["channels"], head["format"], head["frame_count"]) == (48_000, 2, 1, 1920)
        assert np.abs(audio).max() > 0
        # A control change reaches the stream in the frames made right after it: mute, and the
        # packets fade to silence within the mute envelope (a few frames), counted in frames.
        t_change = time.time()
        frame_at_change = loop.frame_index
        control.set_muted(True)
        while True:
            head, audio = read_packet(fast)
            if not audio.any():
                break
        latency_ms = (time.time() - t_change) * 1e3
        assert head["frame_index"] <= frame_at_change + 1 + MUTE_FRAMES, (head, frame_at_change)
        print(f"PCM stream: control change -> silent packet received in {latency_ms:.1f} ms")
        # Meanwhile the frame loop ran at full pace despite the client that never reads.
        time.sleep(1.5)
        status = loop.status()
        assert status["underruns"] == 0, status
        pcm = server.status()
        assert pcm["dropped"] > 0, "the stalled client loses packets instead of back-pressuring"
        # The fast client is still in sequence after all that.
        h1, _ = read_packet(fast)
        h2, _ = read_packet(fast)
        assert h2["sequence"] == h1["sequence"] + 1
    finally:
        loop.stop()
        sink.stop()
        server.close()
        fast.close()
        stalled.close()


def test_slow_reader_sees_gaps_in_sequence_numbers(engine: Engine) -> None:
    control = ControlState()
    server = PcmStreamServer(port=0, max_queue=2)
    client = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    client.connect(("127.0.0.1", server.port))
    client.settimeout(5)
    loop, sink = start_daemon_parts(engine, control, server)
    try:
        time.sleep(1.5)  # ~37 frames produced; the queue holds 2, the socket buffers a few
        seqs = []
        client.setblocking(False)
        time.sleep(0.05)
        client.settimeout(1.0)
        for _ in range(12):
            seqs.append(read_packet(client)[0]["sequence"])
        gaps = [b - a for a, b in itertools.pairwise(seqs) if b - a != 1]
        assert gaps and all(g > 1 for g in gaps), seqs
        # Once caught up, the stream is live again: the next packet is one of the newest frames
        # (at most the client queue plus what the socket buffers behind the frame loop).
        head, _ = read_packet(client)
        assert head["frame_index"] >= loop.frame_index - 2 - 4, (head, loop.frame_index)
    finally:
        loop.stop()
        sink.stop()
        server.close()
        client.close()


def test_client_disconnect_is_forgotten() -> None:
    server = PcmStreamServer(port=0)
    try:
        c = socket.create_connection(("127.0.0.1", server.port))
        deadline = time.monotonic() + 2
        while server.client_count < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        c.close()
        frame = np.zeros((1920, 2), np.float32)
        deadline = time.monotonic() + 3
        while server.client_count and time.monotonic() < deadline:
            server.publish(frame, 0)
            time.sleep(0.02)
        assert server.client_count == 0
    finally:
        server.close()
