"""MIDI input through real rtmidi ports on a private `jackd -d dummy` server."""

from __future__ import annotations

import os
import time

import mido
import pytest
import rtmidi

from bridge import conditioning as cond
from bridge.control.midi_in import CcTarget, MidiInput, parse_cc_map
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
