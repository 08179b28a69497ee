"""`mrt-bridge export / render / bench / serve` with v1 checkpoints and packages (tiny synthetic)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import wave
from pathlib import Path

import numpy as np
import pytest
from pythonosc.udp_client import SimpleUDPClient

from bridge.cli import main
from bridge.package import load_package
from bridge.v1.engine import V1Engine
from bridge.v1.serve import V1ControlState, V1StreamEngine, style_from_conditioning
from onnx_export.v1.synth import write_checkpoint

from .test_serve_cli import free_port, wait_for_status
from .v1_util import codec_tensors, make_v1_package

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def package(tmp_path_factory) -> Path:
    return make_v1_package(tmp_path_factory.mktemp("v1cli"))


def test_export_detects_a_v1_checkpoint(tmp_path, capsys):
    from safetensors.numpy import save_file

    ckpt = write_checkpoint("tiny", 0, tmp_path / "ckpt")
    save_file(codec_tensors(), str(tmp_path / "codec.safetensors"))
    assert main(["export", "--checkpoint", str(ckpt), "--out", str(tmp_path / "pkg"), "--precision", "int8",
                 "--codec", str(tmp_path / "codec.safetensors")]) == 0
    pkg = load_package(tmp_path / "pkg")
    assert pkg.manifest["family"] == "v1" and pkg.precision == "int8"
    assert pkg.manifest["graphs"]["codec_decoder"]["precision"] == "fp32"
    assert pkg.manifest["source_codec"]["file"] == "codec.safetensors"
    # A wrong --size, or an MRT2 flag, is one clear line.
    assert main(["export", "--checkpoint", str(ckpt), "--out", str(tmp_path / "x"), "--size", "large"]) != 0
    err = capsys.readouterr().err
    assert "not a v1 large checkpoint" in err and not (tmp_path / "x").exists()
    main(["export", "--checkpoint", str(ckpt), "--out", str(tmp_path / "x"), "--size", "mrt2_small"])
    assert "not a v1 size" in capsys.readouterr().err


def test_render_v1_writes_whole_chunks_cut_to_length(package, tmp_path, capsys):
    args = ["render", "--model", str(package), "--frames", "60", "--seed", "3", "--temperature", "0.9",
            "--top-k", "20", "--guidance", "2", "--style-tokens", ",".join(str(i * 11) for i in range(12))]
    assert main([*args, "--out", str(tmp_path / "a.wav"), "--tokens-out", str(tmp_path / "a.npy")]) == 0
    assert "2 chunks of 2 s" in capsys.readouterr().out
    with wave.open(str(tmp_path / "a.wav")) as w:
        assert (w.getnframes(), w.getnchannels(), w.getframerate()) == (60 * 1920, 2, 48000)
    tokens = np.load(tmp_path / "a.npy")
    # The same as the engine called directly with the same settings.
    engine = V1Engine(package, provider="cpu")
    style = np.arange(12) * 11
    want = [engine.generate_chunk(style, seed=3, guidance_weight=2.0, temperature=0.9, topk=20).tokens
            for _ in range(2)]
    np.testing.assert_array_equal(tokens, np.concatenate(want)[:60])
    assert main([*args, "--out", str(tmp_path / "b.wav")]) == 0
    assert (tmp_path / "a.wav").read_bytes() == (tmp_path / "b.wav").read_bytes()


@pytest.mark.parametrize("flag,value", [("--events", "x.jsonl"), ("--num-cfgs", "1"), ("--preset", "upstream-app")])
def test_render_v1_refuses_mrt2_only_flags(package, tmp_path, capsys, flag, value):
    assert main(["render", "--model", str(package), "--frames", "5", "--out", str(tmp_path / "a.wav"),
                 flag, value]) == 2
    assert f"{flag}: not available for Magenta RT v1 packages" in capsys.readouterr().err
    assert not (tmp_path / "a.wav").exists()


def test_bench_v1_json(package, capsys):
    assert main(["bench", "--model", str(package), "--frames", "50", "--warmup", "0", "--json"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["family"] == "v1" and result["chunks"] == 1 and result["chunk_ms_budget"] == 2000.0
    assert result["p50_ms"] > 0 and result["p99_ms"] >= result["p50_ms"]
    assert result["upstream_tpu_chunk_ms"] == 1250.0 and set(result["stages_p50_ms"]) >= {"encoder_ms", "decoder_ms"}


def test_stream_engine_hands_out_chunks_frame_by_frame(package):
    """The serve adapter: 50 frames per chunk, each frame's audio a slice of its chunk, reset drops ahead chunks."""
    stream = V1StreamEngine(V1Engine(package, provider="cpu"), seed=4)
    ref = V1Engine(package, provider="cpu")
    try:
        vec = np.full(144, -1, np.int32)
        want = ref.generate_chunk(None, seed=4, guidance_weight=1.5, temperature=1.0, topk=10)
        codes, audio = [], []
        for _ in range(50):
            frame = stream.generate(vec, 1.0, 10, guidance=(1.5, 0.0, 0.0))
            codes.append(frame.codes)
            audio.append(stream.decode(frame.codes))
        np.testing.assert_array_equal(np.stack(codes), want.tokens)
        np.testing.assert_array_equal(np.concatenate(audio), want.audio)
        stream.reset(seed=4)
        first = stream.generate(vec, 1.0, 10, guidance=(1.5, 0.0, 0.0))
        np.testing.assert_array_equal(first.codes, want.tokens[0])  # the stream restarted from chunk 0
    finally:
        stream.close()


def test_style_and_refusals_of_the_v1_control_state():
    vec = np.full(144, -1, np.int32)
    assert style_from_conditioning(vec) is None
    vec[:12] = np.arange(12)
    np.testing.assert_array_equal(style_from_conditioning(vec), np.arange(6))
    control = V1ControlState()
    control.note_on(60)  # before lock (presets): allowed
    control.lock()
    for call in (lambda: control.note_on(60), lambda: control.set_drums(1), lambda: control.drum_hit(),
                 lambda: control.set_guidance("notes", 1.0)):
        with pytest.raises(ValueError, match="Magenta RT v1 has no"):
            call()
    control.set_guidance("style", 4.0)
    control.set_temperature(0.5)


def test_serve_v1_plays_chunks_to_wav_and_refuses_notes(package, tmp_path):
    """A real daemon on a v1 package: WAV in real time, OSC notes refused with one line, clean exit."""
    port = free_port()
    wav = tmp_path / "out.wav"
    proc = subprocess.Popen([sys.executable, "-m", "bridge.cli", "serve", "--model", str(package), "--audio",
                             f"wav:{wav}", "--midi", "none", "--osc-port", str(port), "--duration", "8"],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        status = wait_for_status(port, proc)
        assert status  # it answers /status once audio runs
        osc = SimpleUDPClient("127.0.0.1", port)
        osc.send_message("/note/on", [60, 100])
        osc.send_message("/temperature", [0.5])
        time.sleep(0.5)
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, out
    assert "Magenta RT v1 has no note conditioning" in out and "0 underruns" in out
    with wave.open(str(wav)) as w:
        seconds = w.getnframes() / w.getframerate()
        audio = np.frombuffer(w.readframes(w.getnframes()), np.int16)
    assert 4.0 < seconds < 9.0 and np.abs(audio).max() > 0
