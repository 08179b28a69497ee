"""Game-state mapper: slew, curves, crossfade, quantisation, triggers, ticks."""

from __future__ import annotations

from pathlib import Path

import pytest

from bridge import conditioning as cond
from bridge.control.mapping import GameMapper, apply_curve
from bridge.control.mapping_config import MappingConfig
from bridge.control.state import ControlState
from bridge.prefill import PrefillSpec

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "adaptive_soundtrack.toml"


def make(tmp_path: Path, text: str, ticks: list | None = None) -> tuple[ControlState, GameMapper]:
    path = tmp_path / "map.toml"
    path.write_text(text)
    state = ControlState()
    mapper = GameMapper(MappingConfig.from_toml(path), state,
                        on_tick=None if ticks is None else (lambda *a: ticks.append(a)))
    state.add_frame_hook(mapper.advance)
    return state, mapper


def weights(state: ControlState) -> list[float]:
    return [s["weight"] for s in state.status()["slots"]]


def test_example_config_loads_and_runs() -> None:
    cfg = MappingConfig.from_toml(EXAMPLE)
    assert [n for n, _ in cfg.prompts] == ["calm", "battle", "hero"]
    assert set(cfg.states) == {"explore", "combat"} and cfg.bpm == 120
    assert cfg.midi_drum_channel() == 10 and set(cfg.midi["cc"]) == {"1", "7"}
    state = ControlState()
    mapper = GameMapper(cfg, state)
    state.add_frame_hook(mapper.advance)
    state.snapshot(0)
    st = state.status()
    assert st["slots"][0] == {"prompt": "calm ambient pads, soft evolving textures", "weight": 1.0}
    assert st["slots"][1]["weight"] == 0.0
    assert st["temperature"] == pytest.approx(1.2)


RTPC = """
[prompts]
a = "calm"
b = "battle"
[rtpc.danger]
range = [0.0, 1.0]
slew = 1.0
curve = "linear"
targets = [{ param = "weight.b", from = 0.0, to = 2.0 }, { param = "temperature", from = 1.0, to = 2.0 }]
"""


def test_rtpc_linear_slew_takes_slew_seconds(tmp_path: Path) -> None:
    state, mapper = make(tmp_path, RTPC)
    state.snapshot(0)
    assert weights(state)[:2] == [1.0, 0.0]
    mapper.set_rtpc("danger", 1.0)
    seen = []
    for f in range(1, 30):
        state.snapshot(f)
        seen.append(weights(state)[1])
    # full range in 1.0 s = 25 frames, 1/25 per frame, mapped to 0..2
    assert seen[0] == pytest.approx(2 / 25)
    assert seen[11] == pytest.approx(2 * 12 / 25)
    assert seen[23] == pytest.approx(2 * 24 / 25)
    assert seen[24] == pytest.approx(2.0) and seen[28] == pytest.approx(2.0)
    assert state.status()["temperature"] == pytest.approx(2.0)
    with pytest.raises(ValueError):
        mapper.set_rtpc("danger", 1.5)
    with pytest.raises(ValueError):
        mapper.set_rtpc("nope", 0.5)


def test_curves() -> None:
    assert apply_curve("linear", 0.25) == 0.25
    assert apply_curve("s-curve", 0.25) == pytest.approx(0.15625)
    assert apply_curve("s-curve", 0.5) == pytest.approx(0.5)
    assert apply_curve("exp", 0.5) < 0.5 < apply_curve("log", 0.5)
    for c in ("exp", "log", "s-curve"):
        assert apply_curve(c, 0.0) == pytest.approx(0.0)
        assert apply_curve(c, 1.0) == pytest.approx(1.0)


STATES = """
initial_state = "explore"
[tempo]
bpm = 120
beats_per_bar = 4
[prompts]
calm = "calm"
battle = "battle"
[states.explore]
weights = { calm = 1.0 }
params = { temperature = 1.0 }
[states.combat]
crossfade = 1.0
quantize = "bar"
weights = { battle = 1.0 }
params = { temperature = 2.0 }
[states.now]
crossfade = 0.4
weights = { calm = 0.5, battle = 0.5 }
"""


def test_state_crossfade_quantised_to_bar(tmp_path: Path) -> None:
    ticks: list = []
    state, mapper = make(tmp_path, STATES, ticks)
    state.snapshot(0)
    assert weights(state)[:2] == [1.0, 0.0]
    for f in range(1, 5):
        state.snapshot(f)
    mapper.set_state("combat")
    # 120 bpm: beats at frames 0, 13 (12.5 rounded up), 25, 38; bar 1 starts at frame 50
    w = {}
    for f in range(5, 80):
        state.snapshot(f)
        w[f] = weights(state)[:2]
    assert w[49] == [1.0, 0.0]
    assert w[50] == [1.0, 0.0]  # crossfade starts at the downbeat (t = 0)
    assert w[55] == pytest.approx([0.8, 0.2])
    assert w[75] == pytest.approx([0.0, 1.0])
    assert state.status()["temperature"] == pytest.approx(2.0)
    beats = [(a[1], a[2], a[3]) for a in ticks if a[0] == "beat"]
    bars = [a[2] for a in ticks if a[0] == "bar"]
    assert beats[:5] == [(0, 0, 0), (1, 0, 1), (2, 0, 2), (3, 0, 3), (4, 1, 0)]
    assert bars == [0, 1]


def test_beat_frames_and_tempo_change(tmp_path: Path) -> None:
    ticks: list = []
    state, mapper = make(tmp_path, STATES, ticks)
    frames_of_beats = []
    for f in range(51):
        n = len(ticks)
        state.snapshot(f)
        if any(t[0] == "beat" for t in ticks[n:]):
            frames_of_beats.append(f)
    assert frames_of_beats == [0, 13, 25, 38, 50]
    mapper.set_tempo(60.0)  # a beat every 25 frames from here, phase kept
    frames_of_beats = []
    for f in range(51, 130):
        n = len(ticks)
        state.snapshot(f)
        if any(t[0] == "beat" for t in ticks[n:]):
            frames_of_beats.append(f)
    # at frame 51 the beat position is 4.08; beat 5 needs 0.92 beat = 23 frames
    assert frames_of_beats == [74, 99, 124]
    with pytest.raises(ValueError):
        mapper.set_tempo(float("nan"))


def test_unquantised_state_and_retarget(tmp_path: Path) -> None:
    state, mapper = make(tmp_path, STATES)
    state.snapshot(0)
    mapper.set_state("now")
    state.snapshot(1)
    assert weights(state)[:2] == [1.0, 0.0]  # t = 0 at the first frame
    state.snapshot(6)  # engine frame counter skipped: 5 of the 10 crossfade frames pass at once
    assert weights(state)[:2] == pytest.approx([0.75, 0.25])
    state.snapshot(0)  # frame counter restarted (engine reset): counts as one frame
    assert weights(state)[:2] == pytest.approx([0.7, 0.3])
    for f in range(1, 5):
        state.snapshot(f)
    assert weights(state)[:2] == pytest.approx([0.5, 0.5])
    with pytest.raises(ValueError):
        mapper.set_state("nope")


TRIGGERS = """
[tempo]
bpm = 150
[prompts]
a = "a"
hero = "hero"
[defaults]
"weight.hero" = 0.0
[triggers.stinger]
kind = "boost"
prompt = "hero"
amount = 2.0
attack = 0.2
hold = 0.2
release = 0.4
[triggers.hit]
kind = "notes"
notes = [60, 64]
length = 0.2
quantize = "beat"
"""


def test_boost_envelope_and_note_burst(tmp_path: Path) -> None:
    state, mapper = make(tmp_path, TRIGGERS)
    state.snapshot(0)
    mapper.trigger("stinger")
    hero = []
    for f in range(1, 22):
        state.snapshot(f)
        hero.append(weights(state)[1])
    # attack 5 frames, hold 5, release 10
    assert hero[0] == 0.0
    assert hero[1] == pytest.approx(0.4)
    assert hero[5] == pytest.approx(2.0) and hero[9] == pytest.approx(2.0)
    assert hero[15] == pytest.approx(1.0)
    assert hero[20] == 0.0
    # note burst waits for the next beat (150 bpm: every 10 frames -> frame 30)
    mapper.trigger("hit")
    got = {}
    for f in range(22, 40):
        snap = state.snapshot(f)
        got[f] = snap.conditioning[cond.NOTES_SLICE][[60, 64]].tolist()
    assert got[29] == [-1, -1]
    assert got[30] == [2, 2]
    assert got[31] == [1, 1]
    assert got[34] == [1, 1]
    assert got[35] == [0, 0]


def test_sync_makes_next_frame_a_downbeat(tmp_path: Path) -> None:
    ticks: list = []
    state, mapper = make(tmp_path, STATES, ticks)
    for f in range(20):
        state.snapshot(f)
    mapper.sync()
    ticks.clear()
    state.snapshot(20)
    assert ticks[0] == ("bar", 4, 1, 0)


@pytest.mark.parametrize("text,needle", [
    ("[prompts]\na = 1\n", "prompts.a"),
    ("[rtpc.x]\nrange = [1, 0]\ntargets=[{param='temperature'}]\n", "rtpc.x.range"),
    ("[rtpc.x]\ntargets=[{param='weight.zzz'}]\n", "zzz"),
    ("[rtpc.x]\ncurve='cubic'\ntargets=[{param='temperature'}]\n", "rtpc.x.curve"),
    ("[states.s]\nparams={temperature=9}\n", "states.s.params.temperature"),
    ("[states.s]\nquantize='bars'\n", "states.s.quantize"),
    ("[triggers.t]\nkind='boom'\n", "triggers.t.kind"),
    ("initial_state='zz'\n", "initial_state"),
    ("[tempo]\nbpm=0\n", "tempo.bpm"),
    ("bogus = 1\n", "bogus"),
    ("[midi]\ndrum_channel = 17\n", "midi.drum_channel"),
    ("[midi.cc]\n1 = { param = 'game.nope' }\n", "game.nope"),
    ("[prompts\n", "not valid TOML"),
    ("[prompts]\n" + "".join(f"p{i}='x'\n" for i in range(7)), "at most 6"),
])
def test_config_errors_name_the_key(tmp_path: Path, text: str, needle: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ValueError, match=None) as info:
        MappingConfig.from_toml(path)
    assert needle in str(info.value)


def test_preset_prefill_num_cfgs_keys(tmp_path: Path) -> None:
    (tmp_path / "clips").mkdir()
    (tmp_path / "clips" / "intro.wav").write_bytes(b"RIFF")
    (tmp_path / "start.npy").write_bytes(b"\x93NUMPY")
    base = '[prompts]\na = "calm"\n'
    path = tmp_path / "map.toml"

    def load(extra: str) -> MappingConfig:
        path.write_text(extra + "\n" + base)
        return MappingConfig.from_toml(path)

    cfg = load('preset = "upstream-app"\nprefill = "audio:clips/intro.wav"\nnum_cfgs = 1')
    assert cfg.preset == "upstream-app" and cfg.num_cfgs == 1
    assert cfg.prefill == PrefillSpec("audio", (tmp_path / "clips" / "intro.wav").resolve())  # relative to the TOML
    assert load('prefill = "silence"').prefill == PrefillSpec("silence")
    assert load('prefill = "tokens:start.npy"').prefill == PrefillSpec("tokens", (tmp_path / "start.npy").resolve())
    none = load("")
    assert none.preset is None and none.prefill is None and none.num_cfgs is None
    for extra, match in (('preset = "upstream"', "preset"), ('prefill = "audio:missing.wav"', "not found"),
                         ('prefill = "tokens:clips/intro.wav"', ".npy"), ('prefill = "noise"', "silence"),
                         ("prefill = 3", "silence"), ("num_cfgs = 3", "num_cfgs"),
                         ("num_cfgs = true", "num_cfgs"), ('prefill = "audio:"', "silence")):
        with pytest.raises(ValueError, match=match):
            load(extra)


def test_mapper_defaults_follow_the_preset(tmp_path: Path) -> None:
    """A parameter the mapping owns but gives no default starts from the preset's value."""
    text = 'preset = "upstream-app"\n' + RTPC.replace('to = 2.0 }]', 'to = 2.0, op = "add" }]')
    state, _ = make(tmp_path, text.replace('param = "temperature", from = 1.0', 'param = "temperature", from = 0.0'))
    state.snapshot(0)
    assert state.status()["temperature"] == pytest.approx(1.1)  # upstream-app 1.1 + 0 (RTPC at 0)
    path = tmp_path / "map.toml"
    other = ControlState()
    other.add_frame_hook(GameMapper(MappingConfig.from_toml(path), other, preset="default").advance)
    other.snapshot(0)
    assert other.status()["temperature"] == pytest.approx(cond.DEFAULT_TEMPERATURE)  # --preset wins
