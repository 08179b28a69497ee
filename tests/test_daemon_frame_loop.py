"""The frame loop on the real tiny synthetic model, real ControlState and a real clocked sink."""

from __future__ import annotations

import json
import time
import wave

import numpy as np
import pytest

from bridge.audio.gain import MUTE_SETTLE_FRAMES
from bridge.audio.ring import AudioRing
from bridge.audio.sinks.null import NullSink
from bridge.audio.sinks.wav import WavSink
from bridge.bench import bench_conditioning
from bridge.control.state import ControlState
from bridge.daemon.frame_loop import FrameLoop, ring_capacity
from bridge.daemon.trace import FrameTrace
from bridge.engine import Engine
from bridge.synthetic import bundled_package


@pytest.fixture(scope="module")
def engine() -> Engine:
    return Engine(bundled_package(), provider="cpu", threads=1)


def run_loop(engine: Engine, control: ControlState, sink_cls, seconds: float, *, buffer_frames: int = 4,
             trace: FrameTrace | None = None, sink_kwargs: dict | None = None, during=None, overlap: bool = False):
    ring = AudioRing(ring_capacity(50, 48_000))
    sink = sink_cls(ring, **(sink_kwargs or {}))
    sink.open()
    loop = FrameLoop(engine, control, ring, buffer_frames=buffer_frames, trace=trace, overlap=overlap)
    loop.start()
    assert loop.wait_filled(30.0)
    ring.reset_low_water()
    sink.start()
    t0 = time.monotonic()
    if during is not None:
        during(loop)
    time.sleep(max(0.0, seconds - (time.monotonic() - t0)))
    loop.stop()
    sink.stop()
    return ring, sink, loop


@pytest.mark.parametrize("overlap", [False, True])
def test_loop_keeps_ring_at_target_depth_without_underruns(engine: Engine, overlap: bool) -> None:
    control = ControlState()
    ring, _sink, loop = run_loop(engine, control, NullSink, 2.0, buffer_frames=4, overlap=overlap)
    status = loop.status()
    assert loop.failed is None
    # Paced by the ring, not by the model's speed: never more than the buffer (+ the frame the
    # overlap adds, which reaches the ring as soon as it is decoded) ahead of playback.
    extra = 1920 * loop.codec.latency_frames
    assert loop.frame_index * 1920 <= ring.frames_read + 4 * 1920 + 1920 + extra, status
    assert status["frames"] > 4 and ring.frames_read > 0
    assert status["underruns"] == 0, status
    assert ring.fill <= 4 * 1920 + 1921 + extra
    assert status["step_ms"]["p50"] is not None


def test_pause_mute_volume_and_trace(engine: Engine, tmp_path) -> None:
    """Paused frames are produced as silence; notes show up in the JSONL trace."""
    control = ControlState()
    trace = FrameTrace(tmp_path / "trace.jsonl")
    out = tmp_path / "out.wav"

    def during(loop: FrameLoop) -> None:
        time.sleep(0.5)
        control.note_on(60, 100)
        time.sleep(0.5)
        control.set_paused(True)
        time.sleep(0.5)
        control.set_paused(False)
        control.set_volume(0.0)

    _ring, _sink, _loop = run_loop(engine, control, WavSink, 2.0, trace=trace,
                                sink_kwargs={"path": out}, during=during)
    records = [json.loads(line) for line in (tmp_path / "trace.jsonl").read_text().splitlines()]
    assert [r["frame"] for r in records] == list(range(len(records)))
    onset = [r for r in records if 60 in r["onsets"]]
    assert len(onset) == 1, "a note-on is an onset in exactly one frame"
    later = [r for r in records if r["frame"] > onset[0]["frame"]]
    assert later and all(60 in r["sustained"] for r in later)
    paused = [r for r in records if r["paused"]]
    # A pause fades out over the first paused frames (the model still runs for them), then stops.
    assert len(paused) > MUTE_SETTLE_FRAMES
    assert all(r["step_ms"] is None for r in paused[MUTE_SETTLE_FRAMES:])
    assert any(r["volume"] == 0.0 for r in records)
    with wave.open(str(out)) as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (48_000, 2, 2)
        pcm = np.frombuffer(w.readframes(w.getnframes()), np.int16).reshape(-1, 2)
    assert 1.8 * 48_000 <= pcm.shape[0] <= 2.3 * 48_000
    first = pcm[:int(0.4 * 48_000)]
    assert np.abs(first).max() > 0, "the model's audio reaches the file"


def test_reset_and_seed_requests_reach_the_engine(engine: Engine) -> None:
    control = ControlState()

    def during(loop: FrameLoop) -> None:
        time.sleep(0.3)
        control.request_seed(1234)
        time.sleep(0.3)
        control.request_reset()
        control.request_buffer(2 * 1920)

    _, _, loop = run_loop(engine, control, NullSink, 1.0, during=during)
    assert loop.engine_resets == 2
    assert engine.seed == 1234
    assert loop.buffer_frames == 2


def test_resampling_fills_ring_at_sink_rate(engine: Engine) -> None:
    control = ControlState()
    ring = AudioRing(ring_capacity(10, 44_100))
    loop = FrameLoop(engine, control, ring, buffer_frames=4, out_rate=44_100)
    loop.start()
    assert loop.wait_filled(30.0)
    loop.stop()
    per_frame = 1920 * 44_100 / 48_000
    assert abs(ring.fill - loop.frames_out * per_frame) <= 2


class _Collect:
    """A tap keeping every published frame (index, audio copy)."""

    def __init__(self) -> None:
        self.frames: list[tuple[int, np.ndarray]] = []

    def publish(self, frames: np.ndarray, frame_index: int) -> None:
        self.frames.append((frame_index, frames.copy()))


@pytest.mark.parametrize("overlap", [True, False])
def test_codec_overlap_delivers_the_same_frames_in_order(overlap: bool) -> None:
    """With the codec one frame behind on its own thread, audio equals in-line decoding, frame by frame."""
    engine = Engine(bundled_package(), provider="cpu", threads=1, seed=5)
    control = ControlState()
    control.note_on(60, 100)
    tap = _Collect()
    ring = AudioRing(ring_capacity(50, 48_000))
    loop = FrameLoop(engine, control, ring, buffer_frames=12, taps=(tap,), overlap=overlap)
    loop.start()
    assert loop.wait_filled(30.0)
    loop.stop()
    assert loop.failed is None and loop.codec.latency_frames == (1 if overlap else 0)
    assert loop.status()["codec_overlap_frames"] == loop.codec.latency_frames
    got = tap.frames
    assert [i for i, _ in got] == list(range(len(got))) and len(got) >= 10
    reference = Engine(bundled_package(), provider="cpu", threads=1, seed=5)
    replay = ControlState()
    replay.note_on(60, 100)
    for i, audio in got:
        snap = replay.snapshot(i)
        expected = reference.step(snap.conditioning, snap.temperature, snap.top_k, guidance=snap.guidance).audio
        np.testing.assert_array_equal(audio, expected)


class _Timed(_Collect):
    """A tap that also notes when each frame reached it."""

    def __init__(self) -> None:
        super().__init__()
        self.at: dict[int, float] = {}

    def publish(self, frames: np.ndarray, frame_index: int) -> None:
        self.at[frame_index] = time.monotonic()
        super().publish(frames, frame_index)


def test_overlapped_audio_reaches_the_ring_while_the_next_step_still_runs(monkeypatch) -> None:
    """Frame k is pushed the moment the codec thread has it, not after the model's step k+1:
    with each step held 60 ms (a slow spell) every frame is out before the next step ends."""
    engine = Engine(bundled_package(), provider="cpu", threads=1, seed=3)
    generate, step_end = engine.generate, {}

    def slow_generate(*args, **kwargs):
        frame = generate(*args, **kwargs)
        time.sleep(0.06)
        step_end[frame.index] = time.monotonic()
        return frame

    monkeypatch.setattr(engine, "generate", slow_generate)
    tap = _Timed()
    ring = AudioRing(ring_capacity(10, 48_000))
    sink = NullSink(ring)
    sink.open()
    loop = FrameLoop(engine, ControlState(), ring, buffer_frames=3, taps=(tap,), overlap=True)
    loop.start()
    assert loop.wait_filled(30.0)
    sink.start()
    time.sleep(0.6)
    loop.stop()
    sink.stop()
    assert loop.failed is None
    pairs = [(tap.at[k], step_end[k + 1]) for k in sorted(tap.at) if k + 1 in step_end]
    assert len(pairs) >= 5
    assert all(out < next_end - 0.03 for out, next_end in pairs), pairs


@pytest.mark.parametrize("threshold_ms, expect_overlap", [(0.0, True), (1e9, False)])
def test_auto_overlap_times_frames_in_line_then_leaves_the_stream_untouched(monkeypatch, threshold_ms, expect_overlap):
    """Auto: a few timed frames decide; the engine is back at its start (same seed, same frames)."""
    import bridge.pipeline as pipeline

    monkeypatch.setattr(pipeline, "AUTO_THRESHOLD_MS", threshold_ms)
    engine = Engine(bundled_package(), provider="cpu", threads=1, seed=6)
    assert pipeline.choose_overlap(engine) is expect_overlap
    reference = Engine(bundled_package(), provider="cpu", threads=1, seed=6)
    for i in range(4):
        np.testing.assert_array_equal(engine.step(bench_conditioning(i)).audio,
                                      reference.step(bench_conditioning(i)).audio)


@pytest.mark.parametrize("frame_ms, warned", [(0.001, True), (40.0, False)])
def test_auto_overlap_warns_when_even_the_overlap_is_slower_than_real_time(monkeypatch, caplog, frame_ms, warned):
    """The timed frames also say, before anything plays, when no buffer can keep up (a frame of
    ``frame_ms`` stands in for a machine too slow; the tiny model is far faster than 40 ms)."""
    import bridge.pipeline as pipeline

    monkeypatch.setattr(pipeline, "FRAME_MS", frame_ms)
    with caplog.at_level("WARNING", logger="bridge.pipeline"):
        pipeline.choose_overlap(Engine(bundled_package(), provider="cpu", threads=1, seed=6))
    lines = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert bool(lines) is warned, lines
    if warned:  # the bundled model runs 3 guidance rows: dropping them is the first thing to try
        assert "slower than real time" in lines[0] and "--num-cfgs 0" in lines[0]


def test_audio_threads_run_ahead_of_control(engine: Engine) -> None:
    """The frame loop and codec threads take nice -10 where allowed (root / CAP_SYS_NICE)."""
    from tests.priority_util import assert_audio_priority

    loop = FrameLoop(engine, ControlState(), AudioRing(ring_capacity(10, 48_000)), buffer_frames=2, overlap=True)
    loop.start()
    try:
        assert loop.wait_filled(30.0)
        assert_audio_priority(loop._thread, "codec")
    finally:
        loop.stop()
