"""Live audio in: a JACK client plays into mrt-bridge:in_L/in_R of the real daemon; the temporal
input tokens equal an offline SpectroStream encoding of the same mix, frame by frame."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest

from bridge import FRAME_SAMPLES
from bridge import io_names as io
from bridge.audio.wav_float import read_float_wav
from bridge.engine import codes_to_tokens
from bridge.package import load_package
from bridge.runtime import StatefulSession, make_session
from tests.daw_util import serve, wait_until
from tests.jack_util import jack_server

pytestmark = [pytest.mark.jack]


def test_signal(seconds: float = 3.0) -> np.ndarray:
    rng = np.random.default_rng(3)
    t = np.arange(int(seconds * 48000)) / 48000.0
    left = 0.4 * np.sin(2 * np.pi * 220 * t) + 0.05 * rng.standard_normal(t.size)
    right = 0.3 * np.sin(2 * np.pi * 330 * t) * (np.sin(2 * np.pi * 2 * t) > 0) + 0.05 * rng.standard_normal(t.size)
    return np.stack([left, right], 1).astype(np.float32)


test_signal.__test__ = False  # a helper, not a test


def exact_runs(captured: np.ndarray, signal: np.ndarray) -> list[int]:
    """Lengths of the stretches of ``captured`` that are exact consecutive copies of the looped
    ``signal`` (each of its samples is unique, so one sample places a run)."""
    runs, i = [], 0
    while i < len(captured):
        where = np.nonzero(signal[:, 0] == captured[i, 0])[0]
        if len(where) != 1:  # silence, or a sample the signal does not have
            i += 1
            continue
        same = np.all(captured[i:] == signal[(where[0] + np.arange(len(captured) - i)) % len(signal)], axis=1)
        n = len(same) if same.all() else int(np.argmin(same))
        runs.append(n)
        i += max(n, 1)
    return runs


class Player:
    """A JACK client that loops a stereo signal out of two ports (what a DAW track would do)."""

    def __init__(self, signal: np.ndarray) -> None:
        import jack

        self.signal = signal
        self.pos = 0
        self.client = jack.Client("player", no_start_server=True)
        self.outs = [self.client.outports.register(n) for n in ("out_L", "out_R")]
        self.client.set_process_callback(self._process)
        self.client.activate()

    def _process(self, frames: int) -> None:
        n = len(self.signal)
        idx = (self.pos + np.arange(frames)) % n
        self.outs[0].get_array()[:] = self.signal[idx, 0]
        self.outs[1].get_array()[:] = self.signal[idx, 1]
        self.pos = (self.pos + frames) % n

    def close(self) -> None:
        self.client.deactivate()
        self.client.close()


def test_input_tokens_equal_offline_encoding_of_the_mix(bundled_package, tmp_path) -> None:
    rec = tmp_path / "take"
    signal = test_signal()
    with jack_server(period=256):
        player = Player(signal)
        try:
            with serve(bundled_package, tmp_path / "daemon.log", "--audio", "jack", "--no-autoconnect",
                       "--midi", "none", "--record", str(rec), "--overlap", "on") as (_, osc):
                ports = [p.name for p in player.client.get_ports("mrt-bridge:in_")]
                assert ports == ["mrt-bridge:in_L", "mrt-bridge:in_R"], ports
                player.client.connect("player:out_L", "mrt-bridge:in_L")
                player.client.connect("player:out_R", "mrt-bridge:in_R")
                time.sleep(0.5)
                osc.send("/input/amount", 0.5)
                time.sleep(2.0)
                osc.send("/input/amount", 0.8)
                time.sleep(1.5)
                status = wait_until(osc.status, 3.0, "status")
                osc.send("/input/amount", 2.0)  # refused: out of range
                time.sleep(0.2)
        finally:
            player.close()
    assert status["audio_in"]["amount"] == pytest.approx(0.8) and status["audio_in"]["encoding"]
    inp, rate = read_float_wav(rec / "input.wav")
    own, _ = read_float_wav(rec / "own.wav")
    mixes = [json.loads(line) for line in (rec / "mix.jsonl").read_text().splitlines()]
    temporal = [json.loads(line) for line in (rec / "temporal.jsonl").read_text().splitlines()]
    codes = [json.loads(line)["codes"] for line in (rec / "codes.jsonl").read_text().splitlines()]
    assert rate == 48000 and len(inp) == len(own) == FRAME_SAMPLES * len(mixes)
    assert [m["step"] for m in mixes] == list(range(len(mixes)))
    assert [t["step"] for t in temporal] == list(range(len(temporal))) and len(temporal) >= len(mixes)
    # 1. the JACK input path is sample-exact: a stretch of what was captured is the played signal,
    # in runs of exact copies (a cycle the player or the daemon missed on a loaded machine inserts
    # or drops a period between runs; it never alters a sample)
    start = next(i for i in range(len(inp)) if inp[i, 0] != 0.0) + 4 * FRAME_SAMPLES
    stretch = 10 * FRAME_SAMPLES
    runs = exact_runs(inp[start:start + stretch], signal)
    assert max(runs, default=0) >= FRAME_SAMPLES and sum(r for r in runs if r >= 256) >= 0.75 * stretch, runs
    # 2. temporal inputs = an offline encoding of (1 - a) * own + a * input, with the encoder's latency:
    # the call made after decoding frame j gives the codes of the mix of frame j - 1
    pkg = load_package(bundled_package)
    enc = StatefulSession(make_session(pkg.graph_path(io.CODEC_ENCODER), ["CPUExecutionProvider"]), "enc")
    s0 = next(m["step"] for m in mixes if m["encoded"])
    offline = {}
    for m in mixes[s0:]:
        assert m["encoded"], "the input stayed on"
        k, a = m["step"], m["amount"]
        mix = np.empty((1, FRAME_SAMPLES, 2), np.float32)
        np.multiply(own[k * FRAME_SAMPLES:(k + 1) * FRAME_SAMPLES], np.float32(1.0 - a), out=mix[0])
        mix[0] += np.float32(a) * inp[k * FRAME_SAMPLES:(k + 1) * FRAME_SAMPLES]
        offline[k] = codes_to_tokens(enc.run({io.AUDIO: mix})[io.CODES][0]).tolist()
    used = [t for t in temporal if t["prev_tokens"] is not None]
    assert used and min(t["from_step"] for t in used) == s0 + 1, "the masked first call is never used"
    delay = {t["step"] - t["from_step"] for t in used}
    assert delay == {2}, f"the overlapped codec: frame n's decoding feeds frame n + 2, got {delay}"
    for t in used:
        assert t["prev_tokens"] == offline[t["from_step"]], f"step {t['step']}: not the encoded mix"
    assert len(used) >= 50, len(used)
    assert all(t["prev_tokens"] is None for t in temporal if t["step"] < s0 + 3)
    differs = sum(t["prev_tokens"] != codes_to_tokens(np.array(codes[t["step"] - 1])).tolist() for t in used)
    assert differs >= len(used) // 2, "the encoded tokens hardly differ from the model's own: test proves nothing"
    assert sorted({m["amount"] for m in mixes[s0:]}) == pytest.approx([0.5, 0.8])


def test_engine_prev_tokens_hook_replaces_the_temporal_input(bundled_package) -> None:
    from bridge.conditioning import Conditioning
    from bridge.engine import Engine

    a, b = (Engine(bundled_package, "cpu", threads=1, seed=4) for _ in range(2))
    cond = Conditioning()
    for _ in range(3):
        fa = a.step(cond)
        fb = b.step(cond, prev_tokens=b.prev_tokens.copy())  # the same tokens, given explicitly
        np.testing.assert_array_equal(fa.logits, fb.logits)
    other = codes_to_tokens(np.arange(12) * 37)
    fa, fb = a.step(cond), b.step(cond, prev_tokens=other)
    assert not np.array_equal(fa.logits, fb.logits)
    assert b.prev_tokens.tolist() == fb.tokens.tolist(), "the hook is for one step only"
