"""MIDI learn over real OSC (UDP) and a real rtmidi JACK port on a private jackd."""

from __future__ import annotations

import time

import pytest
import rtmidi
from pythonosc.udp_client import SimpleUDPClient

from bridge import conditioning as cond
from bridge.control.mapping_config import MappingConfig
from bridge.control.midi_in import CcTarget, parse_cc_map
from bridge.control.midi_learn import write_cc_table
from bridge.control.state import ControlState
from bridge.daemon.app import ServeOptions
from bridge.daemon.inputs import start_inputs
from tests.daw_util import wait_until
from tests.jack_util import jack_server

pytestmark = [pytest.mark.jack]

CONFIG = """\
# my soundtrack (this comment must survive a save)
initial_state = "calm"

[tempo]
bpm = 96

[prompts]
calm = "calm pads"

[states.calm]
weights = { calm = 1.0 }

[midi]
drum_channel = 5
cc = { 1 = { param = "temperature", min = 0.5, max = 2.0 } }

[rtpc.danger]
range = [0.0, 1.0]
targets = [{ param = "temperature", from = 1.0, to = 2.0 }]
"""


def _inputs(cfg, control):
    opts = ServeOptions(model=cfg.parent, audio="null", midi="jack", osc_port=0, config=cfg,
                        midi_connect="ctl:out")
    closers = start_inputs(opts, control, dict, None)
    osc = next(c.what for c in closers if repr(c) == "osc-server")
    return closers, SimpleUDPClient(*osc.address)


def test_learn_cc21_to_guidance_notes_and_save(tmp_path) -> None:
    cfg = tmp_path / "map.toml"
    cfg.write_text(CONFIG)
    with jack_server():
        src = rtmidi.MidiOut(rtapi=rtmidi.API_UNIX_JACK, name="ctl")
        src.open_virtual_port("out")
        control = ControlState()
        closers, osc = _inputs(cfg, control)
        try:
            src.send_message([0xB0, 21, 127])  # not bound yet: ignored
            time.sleep(0.2)
            assert control.status()["guidance"]["notes"] == cond.DEFAULT_CFG_NOTES
            osc.send_message("/midi/learn", ["/guidance/notes"])
            time.sleep(0.2)
            src.send_message([0xB3, 21, 127])  # any channel: binds CC 21 and moves it to the top
            wait_until(lambda: control.status()["guidance"]["notes"] == cond.CFG_MAX, 3.0, "CC 21 -> max")
            src.send_message([0xB0, 21, 0])
            wait_until(lambda: control.status()["guidance"]["notes"] == cond.CFG_MIN, 3.0, "CC 21 -> min")
            osc.send_message("/midi/learn", ["/nonsense"])  # refused, nothing armed
            src.send_message([0xB0, 22, 127])
            osc.send_message("/midi/learn/save", [])
            wait_until(lambda: "21 =" in cfg.read_text(), 3.0, "the config file rewritten")
        finally:
            for c in closers:
                c.close()
        text = cfg.read_text()
        assert text.startswith("# my soundtrack (this comment must survive a save)\n")
        reloaded = MappingConfig.from_toml(cfg)
        assert reloaded.bpm == 96 and reloaded.midi["drum_channel"] == 5 and "danger" in reloaded.rtpcs
        cc = parse_cc_map(reloaded.midi["cc"])
        assert cc == {1: CcTarget("temperature", 0.5, 2.0),
                      21: CcTarget("guidance.notes", cond.CFG_MIN, cond.CFG_MAX)}
        # the written config drives a fresh daemon: CC 21 moves guidance.notes without learning
        control = ControlState()
        closers, _ = _inputs(cfg, control)
        try:
            src.send_message([0xB0, 21, 127])
            wait_until(lambda: control.status()["guidance"]["notes"] == cond.CFG_MAX, 3.0, "reloaded CC 21")
        finally:
            for c in closers:
                c.close()
            src.close_port()
            src.delete()


def test_save_refuses_what_it_cannot_rewrite_and_leaves_the_file(tmp_path) -> None:
    cfg = tmp_path / "map.toml"
    cfg.write_text('[prompts]\na = "x"\n[midi.cc]\n1 = { param = "volume" }\n')
    with pytest.raises(ValueError, match="names no \\[rtpc\\]"):
        write_cc_table(cfg, {30: CcTarget("game.nope", 0.0, 1.0)})
    assert cfg.read_text() == '[prompts]\na = "x"\n[midi.cc]\n1 = { param = "volume" }\n'
    assert [p.name for p in tmp_path.iterdir()] == ["map.toml"], "no temporary file left behind"
    write_cc_table(cfg, {30: CcTarget("top_k", 1.0, 100.0)})
    cc = parse_cc_map(MappingConfig.from_toml(cfg).midi["cc"])
    assert cc == {1: CcTarget("volume", 0.0, 1.0), 30: CcTarget("top_k", 1.0, 100.0)}
