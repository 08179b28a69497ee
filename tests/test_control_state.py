"""ControlState: note semantics frame by frame, one-shot requests, style resolution."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from bridge import conditioning as cond
from bridge.control.state import ControlState, summarize


def notes_of(snap) -> np.ndarray:
    return snap.conditioning[cond.NOTES_SLICE]


def test_defaults_match_upstream() -> None:
    s = ControlState()
    snap = s.snapshot(0)
    assert snap.conditioning.dtype == np.int32
    np.testing.assert_array_equal(snap.conditioning, cond.default_vector())
    assert snap.temperature == pytest.approx(1.3)
    assert snap.top_k == 40
    assert snap.seed is None and not snap.reset and not snap.paused and not snap.muted
    assert not snap.conditioning.flags.writeable


def test_note_on_onset_then_sustain_then_off() -> None:
    s = ControlState()
    s.note_on(60, 100)
    seq = [notes_of(s.snapshot(i))[60] for i in range(3)]
    assert seq == [cond.NOTE_ONSET, cond.NOTE_SUSTAIN, cond.NOTE_SUSTAIN]
    s.note_off(60)
    assert notes_of(s.snapshot(3))[60] == cond.NOTE_OFF
    assert notes_of(s.snapshot(4))[60] == cond.NOTE_OFF
    # untouched pitches stay masked
    assert notes_of(s.snapshot(5))[61] == cond.MASKED


def test_on_off_inside_one_frame_still_one_onset() -> None:
    s = ControlState()
    s.note_on(64, 90)
    s.note_off(64)
    assert notes_of(s.snapshot(0))[64] == cond.NOTE_ONSET
    assert notes_of(s.snapshot(1))[64] == cond.NOTE_OFF


def test_velocity_zero_is_note_off_and_retrigger() -> None:
    s = ControlState()
    s.note_on(50, 10)
    s.snapshot(0)
    s.note_on(50, 0)
    assert notes_of(s.snapshot(1))[50] == cond.NOTE_OFF
    s.note_on(50, 10)
    s.snapshot(2)
    s.note_on(50, 10)  # re-strike while held: a fresh onset
    assert notes_of(s.snapshot(3))[50] == cond.NOTE_ONSET


def test_onset_mode_off_sends_any() -> None:
    s = ControlState()
    s.set_onset_mode(False)
    s.note_on(60)
    assert notes_of(s.snapshot(0))[60] == cond.NOTE_ANY
    assert notes_of(s.snapshot(1))[60] == cond.NOTE_ANY
    s.note_off(60)
    assert notes_of(s.snapshot(2))[60] == cond.NOTE_OFF


def test_midi_gate_closes_without_notes() -> None:
    s = ControlState()
    s.set_midi_gate(True)
    assert s.snapshot(0).gated
    s.note_on(60)
    assert not s.snapshot(1).gated
    s.note_off(60)
    assert s.snapshot(2).gated
    s.drum_on(36)
    s.drum_off(36)  # a hit inside one frame opens the gate for that frame
    assert not s.snapshot(3).gated
    assert s.snapshot(4).gated
    assert not s.snapshot(5).muted, "the gate is not the user's mute"


def test_panic_and_clear() -> None:
    s = ControlState()
    for p in (60, 64, 67):
        s.note_on(p)
    s.snapshot(0)
    s.all_notes_off()
    n = notes_of(s.snapshot(1))
    assert (n[[60, 64, 67]] == cond.NOTE_OFF).all()
    s.clear_notes()
    assert (notes_of(s.snapshot(2)) == cond.MASKED).all()


def test_set_notes_vector() -> None:
    s = ControlState()
    v = np.full(128, -1)
    v[[10, 11, 12, 13]] = [0, 1, 2, 3]
    s.set_notes(v)
    n = notes_of(s.snapshot(0))
    assert n[[10, 11, 12, 13]].tolist() == [0, 1, 2, 3]
    n = notes_of(s.snapshot(1))
    assert n[[10, 11, 12, 13]].tolist() == [0, 1, 1, 3]
    with pytest.raises(ValueError):
        s.set_notes([0] * 127)
    with pytest.raises(ValueError):
        s.set_notes([4] * 128)


def test_drums_latched_hits_and_drumless() -> None:
    s = ControlState()
    assert s.snapshot(0).conditioning[cond.DRUMS_INDEX] == cond.MASKED
    s.set_drums(0)
    s.drum_hit()
    assert s.snapshot(1).conditioning[cond.DRUMS_INDEX] == 1
    assert s.snapshot(2).conditioning[cond.DRUMS_INDEX] == 0
    s.drum_on(36)
    s.snapshot(3)
    assert s.snapshot(4).conditioning[cond.DRUMS_INDEX] == 1
    s.set_drumless(True)
    assert s.snapshot(5).conditioning[cond.DRUMS_INDEX] == 0


def test_one_shot_requests_consumed() -> None:
    s = ControlState()
    s.request_seed(1234)
    s.request_reset()
    s.request_buffer(4096)
    a = s.snapshot(0)
    b = s.snapshot(1)
    assert (a.seed, a.reset, a.buffer_samples) == (1234, True, 4096)
    assert (b.seed, b.reset, b.buffer_samples) == (None, False, None)


def test_params_and_validation_leave_state_unchanged() -> None:
    s = ControlState()
    s.set_guidance("style", 5.0)
    s.set_temperature(0.0)
    s.set_top_k(7)
    s.set_volume(0.5)
    before = s.status()
    for bad in (
        lambda: s.set_guidance("style", float("nan")),
        lambda: s.set_guidance("bass", 1.0),
        lambda: s.set_temperature(3.5),
        lambda: s.set_top_k(0),
        lambda: s.set_top_k(2.5),
        lambda: s.set_volume(float("inf")),
        lambda: s.note_on(128),
        lambda: s.note_on(60, 200),
        lambda: s.set_slot(6, "x", 1.0),
        lambda: s.set_slot(0, "x", -0.1),
        lambda: s.set_style_tokens([1] * 11),
        lambda: s.set_style_tokens([1024] * 12),
        lambda: s.request_seed(-1),
        lambda: s.set_muted(2),
    ):
        with pytest.raises(ValueError):
            bad()
    assert s.status() == before
    snap = s.snapshot(0)
    assert snap.conditioning[cond.CFG_STYLE_INDEX] == cond.cfg_style_notes_bin(5.0)
    assert snap.temperature == 0.0  # exact greedy: no floor
    assert snap.top_k == 7 and snap.volume == 0.5


class RecordingResolver:
    """A real resolver stand-in that answers from its own thread when released."""

    def __init__(self) -> None:
        self.requests: list[list[tuple[str, float]]] = []
        self.callbacks = []

    def request(self, slots, on_ready) -> None:
        self.requests.append(list(slots))
        self.callbacks.append(on_ready)

    def answer(self, i: int, value: int) -> None:
        t = threading.Thread(target=self.callbacks[i], args=(np.full(12, value),))
        t.start()
        t.join()


def test_style_slots_resolve_and_previous_holds() -> None:
    r = RecordingResolver()
    s = ControlState(style_resolver=r)
    s.set_style_tokens(np.arange(12))
    s.set_slot(0, "calm ambient", 1.0)
    assert r.requests == [[("calm ambient", 1.0)]]
    # previous style holds until the resolver answers
    assert s.snapshot(0).conditioning[cond.STYLE_SLICE].tolist() == list(range(12))
    # changes while in flight are coalesced into one follow-up request
    s.set_slot(1, "palette:battle", 0.5)
    s.set_slot_weight(1, 0.7)
    assert len(r.requests) == 1
    r.answer(0, 5)
    assert s.snapshot(1).conditioning[cond.STYLE_SLICE].tolist() == [5] * 12
    assert r.requests[1] == [("calm ambient", 1.0), ("palette:battle", 0.7)]
    r.answer(1, 9)
    assert s.snapshot(2).conditioning[cond.STYLE_SLICE].tolist() == [9] * 12
    # a stale answer (older generation) is ignored
    r.answer(0, 3)
    assert s.snapshot(3).conditioning[cond.STYLE_SLICE].tolist() == [9] * 12
    # bad tokens from the resolver are dropped
    s.set_slot_weight(0, 0.5)
    r.callbacks[2](np.full(12, 5000))
    assert s.snapshot(4).conditioning[cond.STYLE_SLICE].tolist() == [9] * 12
    s.clear_style()
    assert (s.snapshot(5).conditioning[cond.STYLE_SLICE] == cond.MASKED).all()


def test_all_weights_zero_masks_style() -> None:
    r = RecordingResolver()
    s = ControlState(style_resolver=r)
    s.set_slot(0, "a", 1.0)
    r.answer(0, 4)
    s.set_slot_weight(0, 0.0)
    assert (s.snapshot(0).conditioning[cond.STYLE_SLICE] == cond.MASKED).all()


def test_frame_hook_runs_and_failure_is_contained() -> None:
    s = ControlState()
    seen = []
    s.add_frame_hook(seen.append)

    def broken(i: int) -> None:
        raise RuntimeError("boom")

    s.add_frame_hook(broken)
    s.snapshot(7)
    s.snapshot(8)
    assert seen == [7, 8]


def test_status_and_summary() -> None:
    s = ControlState()
    s.note_on(60)
    snap = s.snapshot(0)
    st = s.status()
    assert st["notes_held"] == [60]
    assert st["conditioning"]["onsets"] == [60]
    assert summarize(snap.conditioning)["masked"] == 127


def test_concurrent_writers_and_reader() -> None:
    s = ControlState()
    stop = threading.Event()

    def writer(base: int) -> None:
        i = 0
        while not stop.is_set():
            s.note_on(base + i % 10)
            s.note_off(base + (i + 5) % 10)
            s.set_temperature((i % 30) / 10)
            i += 1

    threads = [threading.Thread(target=writer, args=(b,)) for b in (20, 40)]
    for t in threads:
        t.start()
    for f in range(300):
        vec = s.snapshot(f).conditioning
        cond.validate_vector(vec)
    stop.set()
    for t in threads:
        t.join()
