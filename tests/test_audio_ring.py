"""The SPSC audio ring: wraparound, partial reads of callback-sized blocks, underruns."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from bridge.audio.resample import LinearResampler
from bridge.audio.ring import AudioRing

FRAME = 1920


def ramp(start: int, n: int) -> np.ndarray:
    """Stereo frames whose left channel counts samples and right is its negative."""
    x = np.arange(start, start + n, dtype=np.float32)
    return np.stack([x, -x], axis=1)


def test_write_then_read_exact() -> None:
    ring = AudioRing(4 * FRAME)
    assert ring.write(ramp(0, FRAME))
    out = np.empty((FRAME, 2), np.float32)
    assert ring.read_into(out) == FRAME
    np.testing.assert_array_equal(out, ramp(0, FRAME))
    assert ring.underruns == 0 and ring.fill == 0


@pytest.mark.parametrize("block", [256, 1024, 4096, 1000])
def test_partial_reads_across_wraparound(block: int) -> None:
    """Frames of 1920 written, callback blocks of another size read: the stream is intact."""
    ring = AudioRing(max(3 * FRAME, block + FRAME) + 17)  # not a multiple of either size
    total = 40 * FRAME
    written = 0
    got = []
    out = np.empty((block, 2), np.float32)
    while len(got) * block < total - block:
        while written < total and ring.free >= FRAME:
            assert ring.write(ramp(written, FRAME))
            written += FRAME
        assert ring.fill >= block or written == total
        assert ring.read_into(out) == block
        got.append(out.copy())
    stream = np.concatenate(got)
    np.testing.assert_array_equal(stream, ramp(0, stream.shape[0]))
    assert ring.underruns == 0
    assert ring.frames_read == stream.shape[0]


def test_underrun_fills_silence_and_counts() -> None:
    ring = AudioRing(2 * FRAME)
    ring.write(ramp(1, 300))
    out = np.full((1024, 2), 9.0, np.float32)
    assert ring.read_into(out) == 300
    np.testing.assert_array_equal(out[:300], ramp(1, 300))
    assert not out[300:].any()
    assert ring.underruns == 1 and ring.underrun_frames == 724
    assert ring.read_into(out) == 0  # empty: all silence, one more underrun
    assert not out.any()
    assert ring.underruns == 2 and ring.underrun_frames == 724 + 1024
    assert ring.low_water == 0


def test_write_is_all_or_nothing_when_full() -> None:
    ring = AudioRing(FRAME + 100)
    assert ring.write(ramp(0, FRAME))
    assert not ring.write(ramp(FRAME, FRAME))
    assert ring.fill == FRAME and ring.frames_written == FRAME


def test_discard_drops_buffered_audio() -> None:
    ring = AudioRing(3 * FRAME)
    ring.write(ramp(0, FRAME))
    assert ring.discard() == FRAME
    assert ring.fill == 0


def test_concurrent_producer_consumer_keeps_order() -> None:
    """A real producer thread against a consumer thread: every sample arrives in order."""
    ring = AudioRing(2 * FRAME + 333)
    total = 300 * FRAME
    got = np.empty((total, 2), np.float32)

    def produce() -> None:
        pos = 0
        while pos < total:
            if ring.write(ramp(pos, FRAME)):
                pos += FRAME

    t = threading.Thread(target=produce)
    t.start()
    out = np.empty((256, 2), np.float32)
    pos = 0
    while pos < total:
        k = ring.read_into(out)
        got[pos:pos + k] = out[:k]
        pos += k
    t.join()
    np.testing.assert_array_equal(got, ramp(0, total))


def test_resampler_streams_like_one_shot_interpolation() -> None:
    """Chunked 48 kHz -> 44.1 kHz equals interpolating the whole signal at once."""
    sr_in, sr_out = 48_000, 44_100
    t = np.arange(20 * FRAME) / sr_in
    sig = np.stack([np.sin(2 * np.pi * 440 * t), np.cos(2 * np.pi * 97 * t)], 1).astype(np.float32)
    rs = LinearResampler(sr_in, sr_out)
    chunks = [rs.process(sig[i:i + FRAME]) for i in range(0, sig.shape[0], FRAME)]
    lengths = {c.shape[0] for c in chunks}
    assert lengths <= {1764, 1765}, lengths
    y = np.concatenate(chunks)
    pos = np.arange(y.shape[0]) * (sr_in / sr_out) - 1.0  # first output is the zero pre-sample
    ref = np.stack([np.interp(pos, np.arange(sig.shape[0]), sig[:, c], left=0.0) for c in range(2)], 1)
    np.testing.assert_allclose(y, ref, atol=1e-5)
    assert abs(y.shape[0] - sig.shape[0] * sr_out / sr_in) <= 2


def test_resampler_identity_passes_through() -> None:
    block = ramp(0, FRAME)
    assert LinearResampler(48_000, 48_000).process(block) is block


def test_running_dry_after_close_is_end_of_stream_not_underrun():
    ring = AudioRing(4096)
    assert ring.write(np.ones((1920, 2), np.float32))
    out = np.empty((1024, 2), np.float32)
    ring.read_into(out)
    ring.read_into(out)  # 896 left, 1024 asked: a real underrun while the producer runs
    assert ring.underruns == 1
    ring.close()
    ring.read_into(out)  # dry after the producer said it is done (shutdown drain)
    assert ring.underruns == 1 and not out.any()
