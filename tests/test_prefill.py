"""Prefill from the command line and config: silence, audio, tokens; reset returns to it at once.

Parity of the prefilled stream with upstream's live engine is in test_guidance_parity.py.
"""

from __future__ import annotations

import wave

import numpy as np
import pytest

from bridge import cli
from bridge.engine import Engine, codes_to_tokens
from bridge.prefill import (
    AUDIO_TRIM_FRAMES,
    SILENCE_FRAMES,
    PrefillSpec,
    apply_prefill,
    load_stereo_48k,
    load_tokens,
    parse_prefill,
    prefill_tokens,
)
from tests.test_depthformer_parity import varied_conditioning


def write_wav(path, data: np.ndarray, rate: int) -> None:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1 if data.ndim == 1 else data.shape[1])
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes((np.clip(data, -1, 1) * 32767).astype("<i2").tobytes())


@pytest.fixture(scope="module")
def engine(bundled_package) -> Engine:
    return Engine(bundled_package, provider="cpu", num_cfgs=2, seed=3, threads=1)


def test_reset_returns_to_the_prefilled_state_without_recompute(engine):
    apply_prefill(engine, PrefillSpec("silence"), (3.0, 1.0, 1.0))
    assert engine.prefilled_frames == SILENCE_FRAMES
    cond = varied_conditioning(12, 9)
    first = [engine.generate(c).tokens for c in cond]
    engine.reset(seed=3)
    again = [engine.generate(c).tokens for c in cond]
    np.testing.assert_array_equal(first, again)
    engine.clear_prefill()
    engine.reset(seed=3)
    fresh = [engine.generate(c).tokens for c in cond]
    assert (np.array(fresh) != np.array(first)).any()  # the prefill is what made them equal


def test_audio_prefill_resamples_any_wav_and_trims(engine, tmp_path):
    t = np.arange(int(2.5 * 22050)) / 22050
    write_wav(tmp_path / "mono22k.wav", 0.5 * np.sin(2 * np.pi * 330 * t), 22050)
    audio = load_stereo_48k(tmp_path / "mono22k.wav")
    assert audio.shape[1] == 2 and abs(len(audio) - 2.5 * 48000) <= 2
    tokens = prefill_tokens(engine, parse_prefill(f"audio:{tmp_path / 'mono22k.wav'}"))
    assert len(tokens) == int(2.5 * 25) - 2 * AUDIO_TRIM_FRAMES
    write_wav(tmp_path / "short.wav", np.zeros(48000), 48000)
    with pytest.raises(ValueError, match="needs more than 2 s"):
        prefill_tokens(engine, parse_prefill(f"audio:{tmp_path / 'short.wav'}"))


def test_token_files_take_codes_or_model_tokens(tmp_path):
    codes = np.random.default_rng(0).integers(0, 1024, (7, 12))
    np.save(tmp_path / "codes.npy", codes)
    np.save(tmp_path / "tokens.npy", codes_to_tokens(codes))
    np.testing.assert_array_equal(load_tokens(tmp_path / "codes.npy"), codes_to_tokens(codes))
    np.testing.assert_array_equal(load_tokens(tmp_path / "tokens.npy"), codes_to_tokens(codes))
    np.save(tmp_path / "bad.npy", np.full((3, 12), 5000))
    with pytest.raises(ValueError, match="neither codes"):
        load_tokens(tmp_path / "bad.npy")
    np.save(tmp_path / "shape.npy", np.zeros((3, 11), np.int64))
    with pytest.raises(ValueError, match=r"\[N, 12\]"):
        load_tokens(tmp_path / "shape.npy")


@pytest.mark.parametrize("text, match", [("noise", "expected none"), ("audio:", "expected none"),
                                         ("audio:/no/such.wav", "not found"), ("tokens:x.wav", ".npy")])
def test_bad_prefill_specs_are_one_clear_line(text, match):
    with pytest.raises(ValueError, match=match):
        parse_prefill(text)


def test_render_with_prefill_and_guidance_rows(tmp_path, capsys):
    out = tmp_path / "take.wav"
    np.save(tmp_path / "ctx.npy", np.random.default_rng(1).integers(0, 1024, (30, 12)))
    args = ["render", "--frames", "10", "--out", str(out), "--seed", "4", "--num-cfgs", "1",
            "--prefill", f"tokens:{tmp_path / 'ctx.npy'}", "--tokens-out", str(tmp_path / "a.npy")]
    assert cli.main(args) == 0
    assert "guidance rows 2" in capsys.readouterr().out
    assert cli.main([*args[:-1], str(tmp_path / "b.npy")]) == 0
    np.testing.assert_array_equal(np.load(tmp_path / "a.npy"), np.load(tmp_path / "b.npy"))  # deterministic
    plain = [*args[:9], "--tokens-out", str(tmp_path / "c.npy")]
    assert cli.main(plain) == 0
    assert (np.load(tmp_path / "a.npy") != np.load(tmp_path / "c.npy")).any()
    assert cli.main(["render", "--frames", "5", "--out", str(out), "--prefill", "tokens:/nope.npy"]) == 2
    assert "not found" in capsys.readouterr().err
