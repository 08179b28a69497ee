"""The depth decoder on every core of the frame when no codec decode runs beside it."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from bridge import runtime
from bridge.bench import bench_conditioning
from bridge.engine import Engine
from bridge.pipeline import CodecOverlap
from bridge.runtime import FrameThreads, frame_threads
from bridge.synthetic import bundled_package


@pytest.mark.parametrize("cores, threads, codec_threads, expected", [
    (1, None, None, FrameThreads(1, 1, 0)),  # nothing to borrow
    (2, None, None, FrameThreads(1, 1, 2)),
    (4, None, None, FrameThreads(3, 1, 4)),
    (8, None, None, FrameThreads(4, 4, 0)),  # the model already has the most threads worth having
    (2, 2, None, FrameThreads(2, 1, 0)),  # --threads 2 on 2 cores: no more cores for the depth
    (8, 1, 1, FrameThreads(1, 1, 2)),  # never more than the model and codec were given
])
def test_frame_threads(monkeypatch, cores, threads, codec_threads, expected) -> None:
    monkeypatch.setattr(runtime.os, "cpu_count", lambda: cores)
    monkeypatch.delenv("MRT_THREADS", raising=False)
    assert frame_threads(threads, codec_threads) == expected


@pytest.fixture()
def two_core_engines(monkeypatch) -> tuple[Engine, Engine]:
    """Two engines of the bundled model with one model + one codec thread as on 2 cores."""
    monkeypatch.setattr(runtime.os, "cpu_count", lambda: 2)
    monkeypatch.delenv("MRT_THREADS", raising=False)
    return tuple(Engine(bundled_package(), provider="cpu", seed=3) for _ in range(2))


def test_wide_and_narrow_depth_decoders_make_the_same_frames(two_core_engines) -> None:
    wide, narrow = two_core_engines
    assert wide.threads == {"model": 1, "codec": 1, "depth_wide": 2}
    wide.share_codec_core(lambda: False)  # as if an idle codec thread lent its core every frame
    for i in range(6):
        a, b = wide.generate(bench_conditioning(i)), narrow.generate(bench_conditioning(i))
        assert (a.depth_threads, b.depth_threads) == (2, 1)
        np.testing.assert_array_equal(a.tokens, b.tokens)
        np.testing.assert_array_equal(a.logits, b.logits)


def test_depth_stays_narrow_while_the_codec_thread_decodes(two_core_engines, monkeypatch) -> None:
    engine = two_core_engines[0]
    assert engine.generate(bench_conditioning(0)).depth_threads == 1  # decoding in line: no core to borrow
    assert engine._depth_wide is None  # nor its second depth session
    release = threading.Event()
    decode = engine.decode

    def slow_decode(codes):
        assert release.wait(30.0)
        return decode(codes)

    monkeypatch.setattr(engine, "decode", slow_decode)
    codec = CodecOverlap(engine, overlap=True)
    try:
        assert engine.codec_busy is not None and not engine.codec_busy()
        assert codec.push(engine.generate(bench_conditioning(0))) is None
        assert engine.codec_busy()
        assert engine.generate(bench_conditioning(1)).depth_threads == 1  # the decode holds a core
        release.set()
        assert codec.flush().audio is not None and not engine.codec_busy()
        assert engine.generate(bench_conditioning(2)).depth_threads == 2
    finally:
        release.set()
        codec.close()
    assert engine.codec_busy is None  # a closed pipeline no longer lends the engine its core


def test_closing_an_old_pipeline_leaves_the_new_ones_hook(two_core_engines) -> None:
    engine = two_core_engines[0]
    old, new = CodecOverlap(engine, overlap=True), CodecOverlap(engine, overlap=True)
    old.close()
    assert engine.codec_busy == new.busy
    new.close()
    assert engine.codec_busy is None


def test_the_daemons_engine_wrappers_lend_the_core_to_the_engine_itself(two_core_engines, tmp_path) -> None:
    """Live input and session recording wrap the engine; the codec thread's core must still reach it."""
    from bridge.audio.ring import AudioRing
    from bridge.daemon.audio_in import InputMix
    from bridge.daemon.session_record import SessionRecorder

    engine = two_core_engines[0]
    mix, recorder = InputMix(engine, AudioRing(48_000)), SessionRecorder(tmp_path / "session")
    wrapped = recorder.wrap_engine(mix.wrap_engine(engine))
    codec = CodecOverlap(wrapped, overlap=True)
    try:
        assert engine.codec_busy == codec.busy
        assert codec.push(wrapped.generate(bench_conditioning(0))) is None
        codec.flush()
        assert wrapped.generate(bench_conditioning(1)).depth_threads == 2
    finally:
        codec.close()
        mix.close()
        recorder.close()
    assert engine.codec_busy is None
