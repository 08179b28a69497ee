"""OSC server over real UDP loopback: control, status reply, subscriptions, garbage."""

from __future__ import annotations

import json
import logging
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from pythonosc.osc_bundle_builder import IMMEDIATELY, OscBundleBuilder
from pythonosc.osc_message import OscMessage
from pythonosc.osc_message_builder import OscMessageBuilder
from pythonosc.udp_client import SimpleUDPClient

from bridge import conditioning as cond
from bridge.control import osc_api, osc_doc
from bridge.control.mapping import GameMapper
from bridge.control.mapping_config import MappingConfig
from bridge.control.osc_server import OscServer
from bridge.control.state import ControlState

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "adaptive_soundtrack.toml"


def engine_status() -> dict:
    return {"frame": 1234, "step_ms_p50": 11.5, "step_ms_p99": 30.25, "underruns": 2, "ring_fill": 0.5}


@pytest.fixture()
def rig() -> Iterator[tuple[ControlState, GameMapper, OscServer, SimpleUDPClient]]:
    state = ControlState()
    server_box: list[OscServer] = []
    mapper = GameMapper(MappingConfig.from_toml(EXAMPLE), state,
                        on_tick=lambda *a: server_box[0].send_tick(*a))
    state.add_frame_hook(mapper.advance)
    server = OscServer(state, mapper, status_provider=engine_status, port=0, status_interval=0.2)
    server_box.append(server)
    with server:
        host, port = server.address
        yield state, mapper, server, SimpleUDPClient(host, port)


@pytest.fixture()
def plain() -> Iterator[tuple[ControlState, None, OscServer, SimpleUDPClient]]:
    """A server without a mapping config (the mapper would own temperature etc.)."""
    state = ControlState()
    with OscServer(state, None, status_provider=None, port=0) as server:
        yield state, None, server, SimpleUDPClient(*server.address)


def wait_for(cond_fn, timeout: float = 2.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond_fn():
            return
        time.sleep(0.005)
    raise AssertionError("condition not met within timeout")


def barrier(server: OscServer, client: SimpleUDPClient) -> None:
    """Wait until the server has processed everything sent so far (a status round trip)."""
    n = server.received
    client.send_message("/unsubscribe", [1])  # harmless message, counted when processed
    wait_for(lambda: server.received > n)


def recv_msg(sock: socket.socket, timeout: float = 2.0) -> OscMessage:
    sock.settimeout(timeout)
    data, _ = sock.recvfrom(65536)
    return OscMessage(data)


def test_controls_change_state(plain) -> None:
    state, _, server, client = plain
    client.send_message("/temperature", 0.8)
    client.send_message("/top_k", 100.0)  # integral float accepted as int
    client.send_message("/guidance/style", 5)  # int accepted as float
    client.send_message("/note/on", [60, 90])
    client.send_message("/note/on", [62])
    client.send_message("/drums", 1)
    client.send_message("/style/tokens", list(range(12)))
    client.send_message("/mute", 1)
    client.send_message("/volume", 0.5)
    client.send_message("/seed", 77)
    barrier(server, client)
    snap = state.snapshot(0)
    assert snap.temperature == pytest.approx(0.8) and snap.top_k == 100
    assert snap.conditioning[cond.CFG_STYLE_INDEX] == cond.cfg_style_notes_bin(5.0)
    assert snap.conditioning[cond.NOTES_SLICE][[60, 62]].tolist() == [2, 2]
    assert snap.conditioning[cond.DRUMS_INDEX] == 1
    assert snap.conditioning[cond.STYLE_SLICE].tolist() == list(range(12))
    assert snap.muted and snap.volume == 0.5 and snap.seed == 77
    client.send_message("/note/off", 60)
    client.send_message("/notes/panic", [])
    client.send_message("/game/danger", 0.5)  # no mapping loaded: rejected, not fatal
    barrier(server, client)
    assert state.snapshot(1).conditioning[cond.NOTES_SLICE][[60, 62]].tolist() == [0, 0]
    assert server.rejected == 1


def test_bundle_accepted_and_game_routes(rig) -> None:
    state, mapper, server, client = rig
    b = OscBundleBuilder(IMMEDIATELY)
    for addr, val in (("/game/danger", 1.0), ("/state", "combat"), ("/tempo", 90.0)):
        m = OscMessageBuilder(addr)
        m.add_arg(val)
        b.add_content(m.build())
    client.send(b.build())
    barrier(server, client)
    st = mapper.status()
    assert st["rtpc"]["danger"]["target"] == 1.0
    state.snapshot(0)
    assert mapper.status()["bpm"] == 90.0


def test_status_reply_to_sender_and_reply_port(rig) -> None:
    state, _, server, _ = rig
    state.note_on(64)
    state.snapshot(5)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    other = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    other.bind(("127.0.0.1", 0))
    try:
        m = OscMessageBuilder("/status").build()
        sock.sendto(m.dgram, server.address)
        reply = recv_msg(sock)
        assert reply.address == "/status/reply"
        frame, p50, p99, underruns, fill, text = reply.params
        assert (frame, p50, p99, underruns, fill) == (1234, 11.5, 30.25, 2, 0.5)
        data = json.loads(text)
        assert data["control"]["conditioning"]["onsets"] == [64]
        assert data["engine"]["frame"] == 1234
        assert data["game"]["state"] == "explore"
        # reply port given as argument
        b = OscMessageBuilder("/status")
        b.add_arg(other.getsockname()[1])
        sock.sendto(b.build().dgram, server.address)
        assert recv_msg(other).address == "/status/reply"
    finally:
        sock.close()
        other.close()


def test_subscribe_gets_ticks_and_status(rig) -> None:
    state, _, server, _ = rig
    sub = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sub.bind(("127.0.0.1", 0))
    try:
        sub.sendto(OscMessageBuilder("/subscribe").build().dgram, server.address)
        wait_for(lambda: server.subscribers())
        for f in range(14):  # 120 bpm: beats at frames 0 and 13
            state.snapshot(f)
        got = []
        end = time.monotonic() + 1.0
        while time.monotonic() < end:
            try:
                got.append(recv_msg(sub, 0.3))
            except TimeoutError:
                break
        addrs = [(m.address, list(m.params)) for m in got]
        assert ("/tick/bar", [0]) in addrs
        assert ("/tick/beat", [0, 0, 0]) in addrs
        assert ("/tick/beat", [1, 0, 1]) in addrs
        assert any(a == "/status/reply" for a, _ in addrs)
    finally:
        sub.close()
    # the subscriber socket is gone: sends fail (ICMP), the server must keep working
    state.snapshot(25)
    time.sleep(0.3)
    client = SimpleUDPClient(*server.address)
    client.send_message("/top_k", 9)
    wait_for(lambda: state.status()["top_k"] == 9)


GARBAGE = [
    b"",
    b"\x00\x01\x02garbage",
    b"/temperature\x00\x00\x00\x00,f\x00",  # truncated float
    b"#bundle\x00" + b"\xff" * 20,
    bytes(range(256)),
]


def test_malformed_burst_leaves_state_and_server_intact(rig, caplog) -> None:
    state, mapper, server, client = rig
    client.send_message("/temperature", 1.1)
    barrier(server, client)
    before = state.status()
    before_game = mapper.status()["rtpc"]
    raw = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    caplog.set_level(logging.WARNING, logger="bridge.control.osc_server")
    try:
        for _ in range(20):
            for g in GARBAGE:
                raw.sendto(g, server.address)
            client.send_message("/temperature", float("nan"))
            client.send_message("/temperature", float("inf"))
            client.send_message("/temperature", 7.0)
            client.send_message("/temperature", "hot")
            client.send_message("/temperature", [1.0, 2.0])
            client.send_message("/top_k", 1.5)
            client.send_message("/top_k", 0)
            client.send_message("/note/on", [200, 10])
            client.send_message("/note/on", [])
            client.send_message("/notes", [1] * 127)
            client.send_message("/style/tokens", [5000] * 12)
            client.send_message("/style/prompt/9", ["x", 1.0])
            client.send_message("/style/prompt/0", [1.0, "x"])
            client.send_message("/style/weight/0", -1.0)
            client.send_message("/game/danger", 5.0)
            client.send_message("/game/unknown_rtpc", 0.5)
            client.send_message("/state", "nowhere")
            client.send_message("/mute", 3)
            client.send_message("/no/such/address", 1)
            client.send_message("/drums", 2)
            barrier(server, client)  # keep each burst within the socket's receive buffer
    finally:
        raw.close()
    assert state.status() == before
    assert mapper.status()["rtpc"] == before_game
    assert server.rejected == 20 * (len(GARBAGE) + 20)
    warnings = [r.getMessage() for r in caplog.records]
    # logged once per (address, reason), not once per message
    assert len(warnings) <= 30
    assert any("/temperature" in w and "finite" in w for w in warnings)
    assert any("/no/such/address" in w and "unknown address" in w for w in warnings)
    assert any("not an OSC packet" in w for w in warnings)
    client.send_message("/temperature", 2.0)
    wait_for(lambda: state.status()["temperature"] == 2.0)


def test_doc_lists_every_address_and_is_current() -> None:
    text = (ROOT / "docs" / "osc-api.md").read_text()
    for route in osc_api.ROUTES:
        assert f"`{route.address}`" in text, route.address
    assert text == osc_doc.markdown(), "docs/osc-api.md is stale: python -m bridge.control.osc_doc > docs/osc-api.md"


def test_port_in_use_gives_clear_error() -> None:
    state = ControlState()
    with OscServer(state, port=0) as first, pytest.raises(RuntimeError, match="--osc-port"):
        OscServer(state, port=first.address[1])
