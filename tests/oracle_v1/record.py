"""Record the v1 golden files (tests/data/v1/) from upstream's v1 code, or check them against a fresh run.

Run from our .venv; it drives two oracle interpreters:

- ``$MRT_V1_ORACLE_PYTHON`` (scripts/setup_v1_oracle.sh): upstream v1 LM via t5x
  (tests/oracle_v1/generate.py);
- ``$MRT_ORACLE_PYTHON`` (magenta-rt 2.0.3, scripts/setup.sh --test): the JAX SpectroStream
  that decodes the v1 tokens for the audio golden (tests/oracle/spectrostream_oracle.py).

    .venv/bin/python tests/oracle_v1/record.py            # (re)write tests/data/v1/*.npz
    .venv/bin/python tests/oracle_v1/record.py --check    # fresh oracle run == golden files

Every case uses the synthetic tiny checkpoint ``synth-checkpoint --family v1 --size tiny
--seed 0`` and float32 activations (gin ``ACTIVATION_DTYPE='float32'``; upstream's default
is bfloat16, recorded once for comparison in ``tokens_bf16_style_cfg5.npz``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from onnx_export.v1 import config as v1  # noqa: E402
from onnx_export.v1.codec import codec_config, decode_plan, synth_codec_tensors  # noqa: E402
from onnx_export.v1.synth import write_checkpoint  # noqa: E402

DATA = REPO / "tests" / "data" / "v1"
CHECKPOINT_SEED = 0
CODEC_SIZE, CODEC_SEED = "tiny", 0
STYLE_A = "3,141,592,653,589,793"
STYLE_B = "271,828,182,845,904,523"

# name -> generate.py arguments. Greedy = temperature 0 (t5x's argmax branch).
CASES: dict[str, dict] = {
    "nostyle_greedy": dict(chunks=7, seed=0, guidance=0.0, temperature=0.0, topk=40, style="none"),
    "style_cfg5_greedy": dict(chunks=7, seed=1, guidance=5.0, temperature=0.0, topk=40, style=STYLE_A),
    "style_cfg2_topk1": dict(chunks=3, seed=2, guidance=2.0, temperature=1.1, topk=1, style=STYLE_B),
    "bf16_style_cfg5": dict(
        chunks=3, seed=1, guidance=5.0, temperature=0.0, topk=40, style=STYLE_A, activation_dtype="bfloat16"
    ),
}
AUDIO_CASE, AUDIO_CHUNKS = "style_cfg5_greedy", 2
AUDIO_EXCERPT = 24_000  # first 0.5 s of each chunk: the 40 ms crossfade and 12 frames after it


def _python(var: str) -> str:
    value = os.environ.get(var, "").strip()
    if not value:
        raise SystemExit(f"record: set {var} (see tests/data/v1/README.md)")
    return value


def _generate(ckpt: Path, case: dict, out: Path, chunks: int | None = None, replay: Path | None = None) -> dict:
    args = [_python("MRT_V1_ORACLE_PYTHON"), str(REPO / "tests/oracle_v1/generate.py"), "--checkpoint", str(ckpt)]
    for key, value in case.items():
        if key == "chunks":
            value = chunks or value
        args += [f"--{key.replace('_', '-')}", str(value)]
    args += ["--out", str(out)]
    if replay is not None:
        args += ["--replay-audio", str(replay)]
    subprocess.run(args, check=True, cwd=REPO / "tests/oracle_v1")
    with np.load(out) as z:
        return {k: z[k] for k in z.files}


def _decode_chunk(frames: np.ndarray, tensors: Path, tmp: Path) -> np.ndarray:
    """One v1 chunk (51 frames) -> 51 x 1920 samples with the MRT2 oracle's streaming SpectroStream."""
    codes = tmp / "codes.npy"
    np.save(codes, decode_plan(frames).astype(np.int32))
    out = tmp / "decoded.npz"
    overrides = json.dumps(codec_config(CODEC_SIZE).upstream_overrides())
    script = REPO / "tests/oracle/spectrostream_oracle.py"
    cmd = [_python("MRT_ORACLE_PYTHON"), str(script), "decode", "--overrides", overrides]
    cmd += ["--tensors", str(tensors), "--codes", str(codes), "--out", str(out), "--no-layer"]
    subprocess.run(cmd, check=True)
    with np.load(out) as z:
        stream = z["stream"]
    n = v1.FRAME_SAMPLES
    return stream[n : (len(frames) + 1) * n]


def to_int16(audio: np.ndarray) -> np.ndarray:
    """Float audio in [-1, 1] -> int16 (x 32767, rounded; upstream v1 applies no gain)."""
    return np.round(np.clip(audio, -1.0, 1.0) * 32767.0).astype(np.int16)


def _token_golden(run: dict, case: dict) -> dict:
    return {
        "tokens": run["tokens"].astype(np.uint16),
        "llm_tokens": run["llm_tokens"].astype(np.uint16),
        "settings": np.array(json.dumps({"checkpoint_seed": CHECKPOINT_SEED, "size": "tiny", **case})),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="compare a fresh oracle run with the golden files")
    args = ap.parse_args()
    DATA.mkdir(parents=True, exist_ok=True)
    failures = []
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        ckpt = write_checkpoint("tiny", CHECKPOINT_SEED, tmp / "llm_tiny")
        runs = {}
        for name, case in CASES.items():
            runs[name] = _generate(ckpt, case, tmp / f"{name}.npz")
            golden = _token_golden(runs[name], case)
            path = DATA / f"tokens_{name}.npz"
            if args.check:
                with np.load(path) as z:
                    same = all(np.array_equal(z[k], golden[k]) for k in ("tokens", "llm_tokens"))
                print(f"{path.name}: {'same' if same else 'DIFFERENT'}")
                if not same:
                    failures.append(path.name)
            else:
                np.savez_compressed(path, **golden)
                print(f"wrote {path.name}")

        # Audio: decode the first chunks' codec frames with the MRT2 JAX SpectroStream, then let
        # upstream's generate_chunk crossfade them (replay), exactly as it does with its own codec.
        tensors = tmp / "codec.npz"
        np.savez(tensors, **synth_codec_tensors(CODEC_SIZE, CODEC_SEED))
        frames = runs[AUDIO_CASE]["codec_frames"][:AUDIO_CHUNKS]
        decoded = np.stack([_decode_chunk(f, tensors, tmp) for f in frames])
        np.savez(tmp / "replay.npz", decoded=decoded)
        replayed = _generate(ckpt, CASES[AUDIO_CASE], tmp / "replayed.npz", AUDIO_CHUNKS, tmp / "replay.npz")
        if not np.array_equal(replayed["tokens"], runs[AUDIO_CASE]["tokens"][:AUDIO_CHUNKS]):
            raise SystemExit("record: the replay run generated different tokens")
        audio = replayed["audio"]
        settings = {"case": AUDIO_CASE, "chunks": AUDIO_CHUNKS, "codec": CODEC_SIZE, "codec_seed": CODEC_SEED}
        settings["excerpt_samples"] = AUDIO_EXCERPT
        golden = {"audio_int16": to_int16(audio[:, :AUDIO_EXCERPT]), "settings": np.array(json.dumps(settings))}
        path = DATA / f"audio_{AUDIO_CASE}.npz"
        if args.check:
            with np.load(path) as z:
                err = int(np.max(np.abs(z["audio_int16"].astype(np.int32) - golden["audio_int16"])))
            print(f"{path.name}: max |diff| {err} LSB")
            if err > 1:
                failures.append(path.name)
        else:
            np.savez_compressed(path, **golden)
            print(
                f"wrote {path.name}: rms {float(np.sqrt(np.mean(audio**2))):.4f}, peak {float(np.abs(audio).max()):.4f}"
            )
    if failures:
        raise SystemExit(f"record --check: differs from the golden files: {', '.join(failures)}")


if __name__ == "__main__":
    main()
