"""Conditioning after scripted sessions equals what upstream's C++ live engine sends.

Expected rows are written by hand from upstream's source (magenta/magenta-realtime
at 694a545e, Apache-2.0), cited by file:line:

- core/src/midi_note_tracker.cpp: noteOn stores ONSET (:28); noteOff turns
  ONSET into ONSET_RELEASED and SUSTAIN into IDLE (:42-43); evaluateAndUpdate
  returns the state it read and moves ONSET -> SUSTAIN, ONSET_RELEASED -> IDLE
  (:67-68).
- core/src/mlx_engine.cpp: calculate_token (:1430-1440, table :1424-1428):
  IDLE -> 0; Mask (onset_mode 0) -> 3; Unmask (1) -> 2 for ONSET and
  ONSET_RELEASED, 1 for SUSTAIN. populate_condition_tokens (:1444-1491):
  W >= 127 -> every pitch its token, so IDLE = 0 (:1450-1455); else every
  pitch mask (:1462), 0 within +-W of each non-IDLE pitch (:1470-1477), then
  the non-IDLE pitches' tokens (:1479-1483); the drum slot is 0 with drumless,
  else mask (:1487-1488). generate_frame keeps style levels 0..5 and masks
  6..11 (:1517-1523).
- core/include/magentart/mlx_engine.h: kNumReservedTokens = 7 (:98), so the
  engine's token for a raw value v is v + 7 and the mask id is 6;
  kMusicCoCaMaskedTailLevels = 6 (:80); kDefaultMusicCoCaTokensPiano (:87-88).

Upstream's row is 12 style + 128 pitch + 1 drum tokens (cond_len, mlx_engine.cpp
:1505); the three guidance bins are computed from the raw scales inside the
exported step, so they are checked against the preset's scales separately.
"""

from __future__ import annotations

import numpy as np
import pytest
import rtmidi

from bridge import cli, presets
from bridge import conditioning as cond
from bridge.control.midi_in import MidiHandler, MidiInput
from bridge.control.state import ControlState
from tests.jack_util import jack_server
from tests.test_midi_in import wait_for

RESERVED = 7  # mlx_engine.h:98 kNumReservedTokens
MASK = RESERVED - 1  # the model's mask id
OFF, SUS, ONS, ANY = RESERVED + 0, RESERVED + 1, RESERVED + 2, RESERVED + 3
PIANO = [325, 98, 979, 657, 802, 453, 475, 622, 729, 934, 567, 782]  # mlx_engine.h:87-88
UPSTREAM_LEN = cond.NUM_STYLE_TOKENS + cond.NUM_PITCHES + 1


def upstream_row(style: list[int] | None, pitches: dict[int, int], fill: int = MASK,
                 drum: int = MASK, tail_mask: bool = True) -> np.ndarray:
    """An upstream conditioning row: style (tail masked, :1517-1523), 128 pitches, drum slot."""
    row = np.full(UPSTREAM_LEN, MASK, np.int64)
    if style is not None:
        kept = 6 if tail_mask else 12
        row[:kept] = np.asarray(style[:kept]) + RESERVED
    row[12:140] = fill
    for p, tok in pitches.items():
        row[12 + p] = tok
    row[140] = drum
    return row


def ours_as_upstream(snap) -> np.ndarray:
    """Our raw 144-int vector in upstream's token space (first 141 values + 7)."""
    return snap.conditioning[:UPSTREAM_LEN].astype(np.int64) + RESERVED


def app_state() -> ControlState:
    s = ControlState()
    presets.get(presets.UPSTREAM_APP).apply(s)
    return s


def test_preset_values_are_upstreams() -> None:
    p = presets.get("upstream-app")
    # examples/common/react_ui/defaultParams.ts: DEFAULT_TEMPERATURE 1.1, DEFAULT_TOPK 50,
    # DEFAULT_CFG_MUSICCOCA 1.6, DEFAULT_CFG_NOTES 2.4, DEFAULT_CFG_DRUMS 4.0, DEFAULT_UNMASK_WIDTH 0
    assert (p.temperature, p.top_k, p.guidance, p.unmask_width) == (1.1, 50, (1.6, 2.4, 4.0), 0)
    assert list(p.default_style) == PIANO and p.onset_mode is False  # mlx_engine.cpp:195 onset_mode_{0}
    snap = app_state().snapshot(0)
    assert snap.temperature == pytest.approx(1.1) and snap.top_k == 50 and snap.guidance == (1.6, 2.4, 4.0)
    # guidance bins, computed in the step: (scale + 1) / step, step 0.2 (style, notes) and 1.0 (drums)
    assert snap.conditioning[cond.CFG_STYLE_INDEX:].tolist() == [13, 17, 5]
    with pytest.raises(ValueError, match="unknown preset"):
        presets.get("upstream")


def test_scripted_session_mask_mode_width_0() -> None:
    """upstream-app defaults: Mask onsets, unmask width 0, piano style until a prompt."""
    s = app_state()
    expected = []
    frames = []

    def frame(exp: np.ndarray) -> None:
        expected.append(exp)
        frames.append(ours_as_upstream(s.snapshot(len(frames))))

    frame(upstream_row(PIANO, {}))                    # nothing held: all pitches mask (:1462)
    s.note_on(60, 100)
    frame(upstream_row(PIANO, {60: ANY}))             # ONSET, Mask -> 3 (:1426)
    frame(upstream_row(PIANO, {60: ANY}))             # SUSTAIN, Mask -> 3 (:1428)
    s.note_off(60)
    frame(upstream_row(PIANO, {}))                    # SUSTAIN -> IDLE (tracker :43); W=0: mask
    s.note_on(64, 90)
    s.note_off(64)                                    # quick tap inside one frame
    frame(upstream_row(PIANO, {64: ANY}))             # ONSET_RELEASED (:42) still seen, -> 3 (:1427)
    frame(upstream_row(PIANO, {}))                    # ONSET_RELEASED -> IDLE (:68)
    s.note_on(50, 80)
    s.note_off(50)
    s.note_on(50, 80)                                 # on, off, on inside one frame: held
    frame(upstream_row(PIANO, {50: ANY}))
    s.note_on(52, 0)                                  # velocity 0: note-off of an idle pitch
    frame(upstream_row(PIANO, {50: ANY}))
    s.set_drumless(True)
    frame(upstream_row(PIANO, {50: ANY}, drum=OFF))   # drumless -> 0 (:1487-1488)
    for i, (want, got) in enumerate(zip(expected, frames)):
        np.testing.assert_array_equal(got, want, err_msg=f"frame {i}")


def test_scripted_session_unmask_mode_widths() -> None:
    """Unmask onsets (onset_mode 1) with widths 2 and 127, at the keyboard's edges."""
    s = app_state()
    s.set_onset_mode(True)
    s.set_unmask_width(2)
    s.note_on(0)
    s.note_on(70)
    near = {1: OFF, 2: OFF, 68: OFF, 69: OFF, 71: OFF, 72: OFF}  # +-2, clipped at 0 (:1472-1473)
    np.testing.assert_array_equal(ours_as_upstream(s.snapshot(0)),
                                  upstream_row(PIANO, {**near, 0: ONS, 70: ONS}))  # ONSET -> 2 (:1435-1436)
    np.testing.assert_array_equal(ours_as_upstream(s.snapshot(1)),
                                  upstream_row(PIANO, {**near, 0: SUS, 70: SUS}))  # SUSTAIN -> 1
    s.note_on(70)                                     # re-strike while held: ONSET again (:28)
    s.set_unmask_width(127)
    np.testing.assert_array_equal(ours_as_upstream(s.snapshot(2)),
                                  upstream_row(PIANO, {0: SUS, 70: ONS}, fill=OFF))  # W>=127: IDLE -> 0 (:1450-1455)
    s.note_off(0)
    s.note_off(70)
    s.set_unmask_width(126)
    s.note_on(127)
    expected = {j: OFF for j in range(1, 127)}        # 127 - 126 = 1: pitch 0 stays mask (:1472)
    expected[127] = ONS
    np.testing.assert_array_equal(ours_as_upstream(s.snapshot(3)), upstream_row(PIANO, expected))


def test_prompt_style_is_tail_masked_raw_tokens_are_not() -> None:
    class Immediate:
        """A style resolver answering at once with fixed tokens (the protocol ControlState uses)."""

        def request(self, slots, on_ready) -> None:
            on_ready(np.arange(100, 112, dtype=np.int32))

    s = app_state()
    s.set_style_resolver(Immediate())
    s.set_slot(0, "disco funk", 1.0)
    np.testing.assert_array_equal(ours_as_upstream(s.snapshot(0)),
                                  upstream_row(list(range(100, 112)), {}))  # levels 6..11 masked (:1517-1523)
    s.set_style_tokens(list(range(200, 212)))  # ours: raw tokens are used as given (issue 10)
    assert s.snapshot(1).conditioning[cond.STYLE_SLICE].tolist() == list(range(200, 212))
    s.clear_style()
    assert (s.snapshot(2).conditioning[cond.STYLE_SLICE] == cond.MASKED).all()


def test_our_default_semantics_unchanged() -> None:
    """Default preset: onset then sustain, released pitches stay off, no tail masking, masked style."""
    s = ControlState()
    s.note_on(60)
    s.note_on(61)
    s.note_off(61)
    n = s.snapshot(0).conditioning
    assert (n[cond.STYLE_SLICE] == cond.MASKED).all()
    assert n[12 + 60] == cond.NOTE_ONSET and n[12 + 61] == cond.NOTE_ONSET
    n = s.snapshot(1).conditioning
    assert n[12 + 60] == cond.NOTE_SUSTAIN and n[12 + 61] == cond.NOTE_OFF and n[12 + 62] == cond.MASKED
    s.note_off(60)
    assert s.snapshot(2).conditioning[12 + 60] == cond.NOTE_OFF  # sticky until /notes/clear


@pytest.mark.parametrize("preset", presets.NAMES)
def test_unison_voices_release_on_last_note_off(preset) -> None:
    """Issue 12 item 9: two voices (MIDI channels, or MIDI and OSC) on one pitch."""
    s = ControlState()
    presets.get(preset).apply(s)
    midi = MidiHandler(s, drum_channel=presets.get(preset).drum_channel)
    midi.handle_bytes([0x90, 60, 100])   # ch 1
    midi.handle_bytes([0x91, 60, 100])   # ch 2, same pitch
    s.note_on(60)                        # OSC too
    s.snapshot(0)
    midi.handle_bytes([0x80, 60, 0])     # ch 1 off: ch 2 and OSC still hold 60
    midi.handle_bytes([0x91, 60, 0])     # ch 2 off (velocity 0)
    held = s.snapshot(1).conditioning[12 + 60]
    assert held in (cond.NOTE_SUSTAIN, cond.NOTE_ANY)
    assert s.status()["notes_held"] == [60]
    s.note_off(60)
    released = s.snapshot(2).conditioning[12 + 60]
    assert released == (cond.MASKED if preset == presets.UPSTREAM_APP else cond.NOTE_OFF)


def test_all_notes_off_cc_is_per_channel_and_panic_is_global() -> None:
    s = ControlState()
    midi = MidiHandler(s, drum_channel=10)
    midi.handle_bytes([0x90, 60, 100])   # ch 1
    midi.handle_bytes([0x91, 64, 100])   # ch 2
    midi.handle_bytes([0x91, 60, 100])   # ch 2 also holds 60
    midi.handle_bytes([0x99, 36, 100])   # drum note, ch 10
    s.snapshot(0)
    midi.handle_bytes([0xB0, 123, 0])    # all notes off on ch 1: 60 still held by ch 2
    assert s.status()["notes_held"] == [60, 64] and s.status()["drum_notes_held"] == [36]
    midi.handle_bytes([0xB1, 120, 0])    # all sound off on ch 2
    n = s.snapshot(1).conditioning
    assert n[12 + 60] == n[12 + 64] == cond.NOTE_OFF and n[cond.DRUMS_INDEX] == cond.DRUMS_PLAY
    midi.handle_bytes([0xB9, 123, 0])    # on the drum channel: the drum notes
    assert s.status()["drum_notes_held"] == []
    midi.handle_bytes([0x92, 67, 100])
    midi.handle_bytes([0x93, 69, 100])
    s.all_notes_off()                    # /notes/panic: everything
    assert s.status()["notes_held"] == []
    midi.handle_bytes([0x94, 71, 100])
    midi.handle_bytes([0xFF])            # MIDI reset: everything
    assert s.status()["notes_held"] == []


def test_seed_rotation_reseeds_every_reset() -> None:
    s = ControlState()
    s.request_reset()
    assert s.snapshot(0).seed is None            # ours: the random stream continues
    s.set_seed_rotation(5)
    s.request_reset()
    snap = s.snapshot(1)
    assert snap.reset and snap.seed == 5         # base 0 + rotation
    assert s.snapshot(2).seed is None            # one-shot
    s.request_seed(100)
    assert s.snapshot(3).seed == 100             # an explicit seed wins
    s.request_reset()
    assert s.snapshot(4).seed == 105             # base is the last /seed
    s.set_seed_rotation(None)
    s.request_reset()
    assert s.snapshot(5).seed is None
    s.set_seed_base(7)                           # render --seed 7: the engine's start seed
    s.set_seed_rotation(0)
    s.request_reset()
    assert s.snapshot(6).seed == 7               # rotation 0 replays the start (upstream: key(42 + row))
    assert app_state().status()["seed_rotation"] == 0
    for bad in (-1, 1001, 2.5):
        with pytest.raises(ValueError):
            s.set_seed_rotation(bad)


def test_temperature_zero_is_exact() -> None:
    s = ControlState()
    s.set_temperature(0.0)
    assert s.snapshot(0).temperature == 0.0


def test_real_jack_midi_session_matches_upstream_rows() -> None:
    """The same table through a real JACK MIDI port: unison on two channels, a tap, a drum-channel note."""
    with jack_server():
        s = app_state()
        preset = presets.get(presets.UPSTREAM_APP)
        with MidiInput(s, api="jack", drum_channel=preset.drum_channel) as midi:
            out = rtmidi.MidiOut(rtapi=rtmidi.API_UNIX_JACK, name="test-daw")
            try:
                ports = out.get_ports()
                out.open_port(ports.index("mrt-bridge:midi_in"))
                for msg in ([0x90, 60, 100], [0x91, 60, 100], [0x99, 36, 100]):  # ch 10 is a pitch here
                    out.send_message(msg)
                wait_for(lambda: midi.received >= 3)
                np.testing.assert_array_equal(ours_as_upstream(s.snapshot(0)),
                                              upstream_row(PIANO, {60: ANY, 36: ANY}))
                out.send_message([0x80, 60, 0])                   # ch 1 off; ch 2 holds 60
                out.send_message([0x92, 72, 100])
                out.send_message([0x82, 72, 0])                   # tap inside one frame
                wait_for(lambda: midi.received >= 6)
                np.testing.assert_array_equal(ours_as_upstream(s.snapshot(1)),
                                              upstream_row(PIANO, {60: ANY, 36: ANY, 72: ANY}))
                out.send_message([0x81, 60, 0])
                out.send_message([0x89, 36, 0])
                wait_for(lambda: midi.received >= 8)
                np.testing.assert_array_equal(ours_as_upstream(s.snapshot(2)), upstream_row(PIANO, {}))
            finally:
                out.close_port()
                out.delete()


def test_render_preset_writes_upstream_conditioning(tiny_package, tmp_path) -> None:
    """`render --preset upstream-app`: trace rows carry the preset's style, masking and guidance bins."""
    trace = tmp_path / "trace.npy"
    events = tmp_path / "ev.jsonl"
    events.write_text('{"frame": 2, "address": "/note/on", "args": [60, 100]}\n')
    rc = cli.main(["render", "--model", str(tiny_package), "--frames", "4", "--out", str(tmp_path / "o.wav"),
                   "--preset", "upstream-app", "--events", str(events), "--trace-out", str(trace),
                   "--temperature", "0"])
    assert rc == 0
    rows = np.load(trace)
    for i in range(4):
        want = upstream_row(PIANO, {60: ANY} if i >= 2 else {})
        np.testing.assert_array_equal(rows[i, :UPSTREAM_LEN].astype(np.int64) + RESERVED, want)
        assert rows[i, cond.CFG_STYLE_INDEX:].tolist() == [13, 17, 5]


def test_serve_preset_from_flag_and_config(bundled_package, tmp_path) -> None:
    """`serve --preset upstream-app` and `preset = "upstream-app"` in --config reach the live controls."""
    import subprocess

    from tests.test_serve_cli import ROOT, free_port, serve_cmd, wait_for_status

    bad = tmp_path / "bad.toml"
    bad.write_text('preset = "upstream"\n')
    out = subprocess.run(serve_cmd("--audio", "null", "--midi", "none", "--config", str(bad)), cwd=ROOT,
                         capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 2 and "preset" in out.stderr.strip().splitlines()[-1]
    good = tmp_path / "app.toml"
    good.write_text('preset = "upstream-app"\n')
    for args in (["--preset", "upstream-app"], ["--config", str(good)]):
        port = free_port()
        proc = subprocess.Popen(serve_cmd("--audio", "null", "--midi", "none", "--osc-port", str(port),
                                          "--model", str(bundled_package), "--threads", "1", *args),
                                cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            control = wait_for_status(port, proc)["control"]
        finally:
            proc.terminate()
            proc.communicate(timeout=30)
        assert control["temperature"] == pytest.approx(1.1) and control["top_k"] == 50, args
        assert control["guidance"] == {"style": 1.6, "notes": 2.4, "drums": 4.0}
        assert (control["onset_mode"], control["unmask_width"], control["style_tail_mask"],
                control["seed_rotation"], control["default_style"]) == (False, 0, True, 0, PIANO)
        assert control["conditioning"]["style_tokens"] == PIANO[:6] + [-1] * 6


def test_readme_preset_table_is_the_one_table() -> None:
    from tests.test_serve_cli import ROOT

    text = (ROOT / "README.md").read_text()
    assert presets.table_markdown() in text, "README preset table is stale: paste presets.table_markdown()"


def test_midi_drum_channel_follows_preset_unless_config_sets_it(tmp_path) -> None:
    from bridge.control.mapping_config import MappingConfig
    from bridge.daemon.inputs import _midi_mapping

    assert _midi_mapping(None, None, "upstream-app")["drum_channel"] is None
    assert _midi_mapping(None, None, "default")["drum_channel"] == 10
    path = tmp_path / "m.toml"
    path.write_text('preset = "upstream-app"\n[midi]\ndrum_channel = 16\n')
    assert _midi_mapping(None, MappingConfig.from_toml(path), "upstream-app")["drum_channel"] == 16
    path.write_text('preset = "upstream-app"\n')
    assert _midi_mapping(None, MappingConfig.from_toml(path), "upstream-app")["drum_channel"] is None
