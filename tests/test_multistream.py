"""Batched equals unbatched: streams stepped together make what single-stream Engines make alone.

Real ONNX Runtime sessions of the bundled synthetic package. Each stream has
its own controls and seed; one joins mid-way, one leaves, one is skipped for a
frame (parked) — and every stream's tokens equal a lone ``Engine``'s with the
same seed and controls, audio within 1 LSB at int16.
"""

from __future__ import annotations

import time

import numpy as np
import pytest

from bridge.conditioning import Conditioning, build_vector
from bridge.control.state import ControlState
from bridge.daemon.streams import MultiFrameLoop, StreamClock, StreamSlot
from bridge.engine import Engine
from bridge.multistream import MultiStreamEngine, StreamInput
from tests.priority_util import assert_audio_priority

FRAMES = 10
LSB = 1 / 32768


def _controls() -> list[dict]:
    rng = np.random.default_rng(5)
    notes = np.full(128, -1, np.int64)
    notes[[60, 64, 67]] = 1
    return [
        dict(conditioning=Conditioning(style_tokens=rng.integers(0, 1024, 12)), temperature=1.3, top_k=40),
        dict(conditioning=Conditioning(notes=notes, drums=1, cfg_style=1.4, cfg_notes=2.2), temperature=0.9,
             top_k=5),
        dict(conditioning=build_vector(rng.integers(0, 1024, 12), notes, -1, cfg_style=2.0, cfg_notes=0.6),
             temperature=1.1, top_k=300),
        dict(conditioning=Conditioning(), temperature=0.0, top_k=1),  # greedy
    ]


def _alone(package, num_cfgs: int, seed: int, ctl: dict, frames: int) -> list:
    engine = Engine(package, "cpu", seed=seed, num_cfgs=num_cfgs, threads=1)
    ctl = dict(ctl)
    cond = ctl.pop("conditioning")
    return [engine.step(cond, **ctl) for _ in range(frames)]


def _assert_same(got: list, want: list, label: str) -> None:
    assert len(got) == len(want) > 0, label
    for i, (g, w) in enumerate(zip(got, want)):
        assert g.index == w.index == i, label
        np.testing.assert_array_equal(g.tokens, w.tokens, err_msg=f"{label} frame {i}")
        np.testing.assert_allclose(g.logits, w.logits, atol=1e-4, err_msg=f"{label} frame {i}")
        assert np.abs(g.audio - w.audio).max() <= LSB, f"{label} frame {i}: audio differs by more than 1 LSB"


@pytest.fixture(scope="module")
def int8_rows_package(tiny_checkpoint, tmp_path_factory):
    """int8 with per-row activation scales: a row's result must not depend on its batch."""
    from onnx_export.mrt2.export import export_package

    return export_package(tiny_checkpoint, "tiny", tmp_path_factory.mktemp("rows") / "pkg", precision="int8",
                          int8_scheme="rows", progress=False)


@pytest.mark.parametrize("num_cfgs,package", [(2, "bundled"), (0, "bundled"), (2, "int8_rows")])
def test_batched_equals_single_stream_with_join_leave_and_park(request, num_cfgs: int, package: str) -> None:
    bundled_package = request.getfixturevalue(f"{package}_package")
    ctls = _controls()
    seeds = [3, 11, 42, 7]
    want = [_alone(bundled_package, num_cfgs, s, c, FRAMES) for s, c in zip(seeds, ctls)]
    multi = MultiStreamEngine(bundled_package, 4, "cpu", num_cfgs=num_cfgs, threads=1)
    ids = [multi.open(seeds[0]), multi.open(seeds[1]), None, multi.open(seeds[3])]
    got: dict[int, list] = {i: [] for i in range(4)}
    for f in range(FRAMES + 6):
        if f == 3:
            ids[2] = multi.open(seeds[2])  # joins mid-way: rows zeroed, step 0
        if f == 6:
            multi.close(ids[1])  # leaves after 6 frames
        inputs = {}
        for k, sid in enumerate(ids):
            if sid is None or sid not in multi.stream_ids or len(got[k]) >= FRAMES:
                continue
            if k == 3 and f in (2, 5, 6):
                continue  # not stepped this frame: parked, state kept
            inputs[sid] = StreamInput(**ctls[k])
        frames = multi.step(inputs)
        assert sorted(frames) == sorted(inputs)
        for k, sid in enumerate(ids):
            if sid in frames:
                got[k].append(frames[sid])
    assert [len(got[k]) for k in range(4)] == [FRAMES, 6, FRAMES, FRAMES]
    for k in range(4):
        _assert_same(got[k], want[k][: len(got[k])], f"stream {k} (num_cfgs={num_cfgs})")
    assert any(not np.array_equal(got[0][i].tokens, got[2][i].tokens) for i in range(FRAMES))


def test_reset_reseed_and_refusals(bundled_package) -> None:
    ctl = _controls()[0]
    multi = MultiStreamEngine(bundled_package, 2, "cpu", num_cfgs=1, threads=1)
    a = multi.open(seed=1)
    b = multi.open(seed=2)
    with pytest.raises(RuntimeError, match="full: 2 of 2"):
        multi.open()
    with pytest.raises(ValueError, match="already open"):
        multi.close(b) or multi.open(sid=a)
    b = multi.open(seed=2)
    for _ in range(3):
        multi.step({a: StreamInput(**ctl), b: StreamInput(**ctl)})
    multi.reset(a, seed=9)  # back to an empty stream with a new seed; b carries on
    got = [multi.step({a: StreamInput(**ctl), b: StreamInput(**ctl)})[a] for _ in range(4)]
    _assert_same(got, _alone(bundled_package, 1, 9, ctl, 4), "reset stream")
    with pytest.raises(KeyError, match="no open stream 99"):
        multi.step({99: StreamInput(**ctl)})
    with pytest.raises(ValueError, match="temperature"):
        multi.generate({a: StreamInput(ctl["conditioning"], temperature=float("nan"))})


def test_streams_bench_reports_every_count(bundled_package) -> None:
    from bridge.bench_streams import format_streams_report, parse_streams, run_streams_bench

    result = run_streams_bench(bundled_package, parse_streams("1,3"), frames=3, warmup=1, provider="cpu", threads=1)
    assert [r["streams"] for r in result["rows"]] == [1, 3]
    for r in result["rows"]:
        assert 0 < r["model"]["p50_ms"] and 0 < r["codec"]["p50_ms"]
        assert set(r["step"]) >= {"p50_ms", "p99_ms"} and isinstance(r["realtime"], bool)
        assert r["cpu_ms_per_step"] > 0 and 0 < r["cores_busy"] <= 1  # CPU time over wall x cores
    text = format_streams_report(result)
    assert "  1 |" in text and "  3 |" in text and "CPU ms/step" in text
    with pytest.raises(ValueError, match="counts must be >= 1"):
        parse_streams("0,2")


def test_streams_audio_threads_run_ahead_of_control(bundled_package) -> None:
    """The --streams frame loop and its codec thread take nice -10 where allowed, as the
    single-stream daemon's (root / CAP_SYS_NICE)."""
    engine = MultiStreamEngine(bundled_package, 1, threads=1)
    slots = [StreamSlot(0, ControlState(), None)]
    loop = MultiFrameLoop(engine, slots, buffer_frames=2, overlap=True)
    loop.request_open(0, 1)
    loop.start()
    try:
        assert loop.wait_filled(1, 30.0)
        assert_audio_priority(loop._thread, "streams-codec")
    finally:
        loop.stop()


class _Arrivals:
    """A stream's WebSocket tap stand-in: when each of its frames came out."""

    def __init__(self) -> None:
        self.at: dict[int, float] = {}

    def publish(self, frames: np.ndarray, frame_index: int) -> None:
        self.at[frame_index] = time.monotonic()


def test_streams_overlapped_audio_reaches_the_rings_while_the_next_step_still_runs(bundled_package,
                                                                                    monkeypatch) -> None:
    """Overlapped, a batch's audio goes into every stream's ring (and out to its taps) the moment
    the codec thread has it, not after the next batched step: with each step held 60 ms (a slow
    spell) every frame is out well before the next step ends."""
    engine = MultiStreamEngine(bundled_package, 2, threads=1)
    generate, step_end = engine.generate, []

    def slow_generate(inputs):
        frames = generate(inputs)
        time.sleep(0.06)
        step_end.append(time.monotonic())
        return frames

    monkeypatch.setattr(engine, "generate", slow_generate)
    taps = [_Arrivals(), _Arrivals()]
    slots = [StreamSlot(sid, ControlState(), None, ws=taps[sid]) for sid in range(2)]
    loop = MultiFrameLoop(engine, slots, buffer_frames=3, overlap=True)
    for sid in range(2):
        loop.request_open(sid, sid + 1)
    clock = StreamClock(slots)
    loop.start()
    try:
        assert loop.wait_filled(2, 30.0)
        clock.start()
        time.sleep(0.6)
    finally:
        loop.stop()
        clock.stop()
    assert loop.failed is None
    for tap in taps:  # both streams are in every step from the first, so frame k came from step k
        pairs = [(tap.at[k], step_end[k + 1]) for k in sorted(tap.at) if k + 1 < len(step_end)]
        assert len(pairs) >= 5
        assert all(out < next_end - 0.03 for out, next_end in pairs), pairs
