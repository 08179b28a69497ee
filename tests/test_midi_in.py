"""MIDI input through real rtmidi ports on a private `jackd -d dummy` server."""

from __future__ import annotations

import os
import time

import mido
import pytest
import rtmidi

from bridge import conditioning as cond
from bridge.control.midi_in import CcTarget, JackClientMidiInput, MidiEventRing, MidiInput, parse_cc_map
from bridge.control.state import ControlState
from tests.jack_util import jack_server


def wait_for(fn, timeout: float = 3.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if fn():
            return
        time.sleep(0.01)
    raise AssertionError("condition not met within timeout")


def notes(state: ControlState, f: int):
    return state.snapshot(f).conditioning[cond.NOTES_SLICE]


def test_jack_virtual_port_notes_drums_cc() -> None:
    with jack_server():
        state = ControlState()
        midi = MidiInput(state, api="jack", cc_map={1: CcTarget("guidance.style", 0.0, 7.0),
                                                    7: CcTarget("volume", 0.0, 1.0)})
        with midi:
            out = rtmidi.MidiOut(rtapi=rtmidi.API_UNIX_JACK, name="test-kbd")
            try:
                ports = out.get_ports()
                assert "mrt-bridge:midi_in" in ports, ports
                out.open_port(ports.index("mrt-bridge:midi_in"))
                out.send_message([0x90, 60, 100])           # note on ch 1
                out.send_message([0x99, 36, 100])           # drum note on ch 10
                out.send_message([0xB0, 1, 127])            # CC1 -> guidance.style 7
                out.send_message([0xB0, 7, 0])              # CC7 -> volume 0
                out.send_message([0xB0, 20, 5])             # unmapped CC: ignored
                out.send_message([0xF8])                    # clock (filtered)
                wait_for(lambda: state.status()["volume"] == 0.0)
                snap = state.snapshot(0)
                assert snap.conditioning[cond.NOTES_SLICE][60] == cond.NOTE_ONSET
                assert snap.conditioning[cond.DRUMS_INDEX] == cond.DRUMS_PLAY
                assert snap.conditioning[cond.CFG_STYLE_INDEX] == cond.cfg_style_notes_bin(7.0)
                assert notes(state, 1)[60] == cond.NOTE_SUSTAIN
                out.send_message([0x90, 60, 0])             # velocity-0 note-on = off
                out.send_message([0x89, 36, 0])             # drum off
                out.send_message([0x90, 64, 80])
                out.send_message([0xB0, 123, 0])            # all notes off
                wait_for(lambda: not state.status()["notes_held"] and midi.received >= 9)
                snap = state.snapshot(2)
                n = snap.conditioning[cond.NOTES_SLICE]
                assert n[60] == cond.NOTE_OFF
                assert n[64] == cond.NOTE_ONSET  # struck before the panic: one onset frame
                assert notes(state, 3)[64] == cond.NOTE_OFF
                assert state.snapshot(4).conditioning[cond.DRUMS_INDEX] == cond.MASKED
            finally:
                out.close_port()
                out.delete()


def test_jack_connect_to_named_port() -> None:
    with jack_server():
        src = rtmidi.MidiOut(rtapi=rtmidi.API_UNIX_JACK, name="keyboard")
        src.open_virtual_port("out")
        try:
            state = ControlState()
            with MidiInput(state, api="jack", virtual=False, connect="keyboard:out",
                           client_name="mrt-conn") as midi:
                time.sleep(0.2)  # let JACK settle the connection
                src.send_message([0x92, 67, 90])  # channel 3
                wait_for(lambda: midi.received >= 1)
                assert notes(state, 0)[67] == cond.NOTE_ONSET
            with pytest.raises(RuntimeError, match="no MIDI port matching"):
                MidiInput(state, api="jack", virtual=False, connect="nothing-like-this").open()
        finally:
            src.close_port()
            src.delete()


def test_alsa_virtual_port_or_skip() -> None:
    if not os.path.exists("/dev/snd/seq"):
        pytest.skip("ALSA sequencer unavailable here (/dev/snd/seq missing); JACK variant covers rtmidi")
    state = ControlState()
    with MidiInput(state, api="alsa", client_name="mrt-bridge-test"):
        out = rtmidi.MidiOut(rtapi=rtmidi.API_LINUX_ALSA)
        try:
            ports = out.get_ports()
            idx = next(i for i, p in enumerate(ports) if "mrt-bridge-test" in p)
            out.open_port(idx)
            out.send_message([0x90, 72, 100])
            wait_for(lambda: state.status()["notes_held"] == [72])
        finally:
            out.delete()


def test_bad_midi_never_raises() -> None:
    state = ControlState()
    midi = MidiInput(state, api="jack")  # not opened: handler only
    before = state.status()
    for raw in ([], [0x90], [0x90, 200, 1], [0x12, 0x34], [0xF0, 1, 2], [0xB0, 20, 1], [0xE0, 0, 64]):
        midi.handle_bytes(raw)
    assert state.status() == before
    assert midi.ignored == 7
    midi.handle(mido.Message("reset"))
    with pytest.raises(ValueError):
        MidiInput(state, api="coreaudio")
    with pytest.raises(ValueError):
        MidiInput(state, drum_channel=17)


def test_parse_cc_map() -> None:
    m = parse_cc_map({"1": {"param": "guidance.style", "min": 0, "max": 7},
                      "74": {"param": "slot.2.weight"}, "11": {"param": "game.danger"}})
    assert m[1] == CcTarget("guidance.style", 0.0, 7.0)
    assert m[74] == CcTarget("slot.2.weight", 0.0, 1.0)
    for bad in ({"123": {"param": "volume"}}, {"1": {"param": "pitch"}},
                {"1": {"param": "slot.9.weight"}}, {"1": {"param": "volume", "max": "x"}}):
        with pytest.raises(ValueError):
            parse_cc_map(bad)


def test_midi_event_ring_is_bounded_and_counts_losses() -> None:
    ring = MidiEventRing(capacity=4)
    assert ring.pop() is None
    for i in range(6):  # two more than fit
        ring.push(bytes([0x90, 60 + i, 100]))
    assert len(ring) == 4 and ring.dropped == 2
    assert [ring.pop() for _ in range(2)] == [[0x90, 60, 100], [0x90, 61, 100]]
    assert ring.push(bytearray([0xC0, 5])) and ring.push(memoryview(bytes([0xFF])))  # wraps around
    assert not ring.push(bytes([0xF0, 1, 2, 3, 0xF7])) and not ring.push(b"")
    assert ring.too_long == 2
    assert [ring.pop() for _ in range(5)] == [[0x90, 62, 100], [0x90, 63, 100], [0xC0, 5], [0xFF], None]


def _jack_sink():
    """A started JackSink (client mrt-bridge) on the private server; the caller stops it."""
    from bridge.audio.ring import AudioRing
    from bridge.audio.sinks.jack_sink import JackSink

    sink = JackSink(AudioRing(48_000), autoconnect=False)
    sink.open()
    sink.start()
    return sink


def test_midi_port_on_the_jack_audio_client() -> None:
    """With JACK audio, MIDI in is a port of the sink's own client: exactly mrt-bridge:midi_in."""
    import jack

    with jack_server():
        src = rtmidi.MidiOut(rtapi=rtmidi.API_UNIX_JACK, name="keyboard")
        src.open_virtual_port("out")
        sink = _jack_sink()
        try:
            state = ControlState()
            midi = JackClientMidiInput(state, sink, connect="keyboard:out", drum_channel=3,
                                       cc_map={1: CcTarget("guidance.style", 0.0, 7.0)})
            assert midi.start()[0].startswith("mrt-bridge:midi_in")
            probe = jack.Client("probe", no_start_server=True)
            try:
                ours = sorted(p.name for p in probe.get_ports("mrt-bridge"))
                assert ours == ["mrt-bridge:midi_in", "mrt-bridge:out_L", "mrt-bridge:out_R"], ours
                assert [p.name for p in probe.get_all_connections("mrt-bridge:midi_in")] == ["keyboard:out"]
            finally:
                probe.close()
            src.send_message([0x90, 60, 100])                     # note on ch 1
            src.send_message([0x92, 38, 100])                     # drum note on ch 3
            src.send_message([0xB0, 1, 127])                      # CC1 -> guidance.style 7
            src.send_message([0xF0, 0x7E, 0x7F, 0x06, 0x01, 0xF7])  # sysex: too long, dropped
            src.send_message([0xF8])                              # clock: filtered
            wait_for(lambda: state.status()["guidance"]["style"] == pytest.approx(7.0))
            snap = state.snapshot(0)
            assert snap.conditioning[cond.NOTES_SLICE][60] == cond.NOTE_ONSET
            assert snap.conditioning[cond.DRUMS_INDEX] == cond.DRUMS_PLAY
            assert midi.received == 3 and midi.ignored == 1 and midi.ring.too_long == 1
            assert sink.status()["midi_in"] == {"port": "mrt-bridge:midi_in", "dropped": 0}
            midi.stop()
            with pytest.raises(RuntimeError, match="no MIDI port matching"):
                JackClientMidiInput(state, sink, connect="nothing-like-this").start()
        finally:
            sink.stop()
            src.close_port()
            src.delete()


MIDI_TOML = """
[prompts]
calm = "calm"
[rtpc.danger]
range = [0.0, 1.0]
targets = [{ param = "temperature", from = 1.0, to = 2.0 }]
[midi]
drum_channel = 5
cc = { 1 = { param = "game.danger" }, 74 = { param = "guidance.style", min = 0.0, max = 7.0 } }
"""


@pytest.mark.parametrize("audio", ["jack", "null"])
def test_daemon_wiring_applies_the_config_midi_table(tmp_path, audio: str) -> None:
    """start_inputs with --config: [midi] cc and drum_channel reach the mapped parameters.

    audio=jack: the port is on the JACK audio sink's client; audio=null: an
    rtmidi JACK virtual port. Both connect to an existing port (--midi-connect).
    """
    from bridge.daemon.app import ServeOptions
    from bridge.daemon.inputs import start_inputs

    cfg = tmp_path / "map.toml"
    cfg.write_text(MIDI_TOML)
    with jack_server():
        src = rtmidi.MidiOut(rtapi=rtmidi.API_UNIX_JACK, name="daw")
        src.open_virtual_port("out")
        sink = _jack_sink() if audio == "jack" else None
        opts = ServeOptions(model=tmp_path, audio=audio, midi="jack", osc_port=0, config=cfg,
                            midi_connect="daw:out")
        control = ControlState()
        closers = start_inputs(opts, control, dict, sink)
        try:
            assert "mrt-bridge:midi_in" in src.get_ports()
            src.send_message([0xB0, 1, 127])      # CC1 -> RTPC danger 1.0 -> temperature 2.0
            src.send_message([0xB0, 74, 127])     # CC74 -> guidance.style 7
            src.send_message([0xB0, 7, 0])        # CC7: not in the file's map (the default is replaced)
            src.send_message([0x94, 40, 100])     # channel 5 is the drum channel here
            src.send_message([0x99, 36, 100])     # channel 10 is an ordinary channel here
            wait_for(lambda: 36 in control.status()["notes_held"])
            control.snapshot(0)
            status = control.status()
            assert status["temperature"] == pytest.approx(2.0)
            assert status["guidance"]["style"] == pytest.approx(7.0)
            assert status["volume"] == 1.0
            assert status["drum_notes_held"] == [40] and status["notes_held"] == [36]
        finally:
            for c in closers:
                c.close()
            if sink is not None:
                sink.stop()
            src.close_port()
            src.delete()
