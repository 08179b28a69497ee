"""Is v1's SpectroStream (TF SavedModels, hub repo google/magenta-realtime) the same codec as MRT2's?

Needs the real files, which no machine of this project reaches: upstream v1's
``savedmodels/ssv2_48k_stereo`` (``mrt-bridge models download v1_resources``) and an MRT2
checkpoint holding ``params/soundstream/...`` (``mrt-bridge models download mrt2_small``).
Runs from our .venv; the TF side runs in the v1 oracle env ($MRT_V1_ORACLE_PYTHON):

    .venv/bin/python tests/oracle_v1/compare_codec.py --assets ~/.cache/magenta_rt/assets \\
        --mrt2 ~/Documents/Magenta/magenta-rt-v2/checkpoints/mrt2_small.safetensors

It compares the 64 RVQ codebooks bit for bit, then decodes the same random 51 x 16 codes
with upstream v1 and with our MRT2 codec export (16 levels, ``onnx_export.v1.codec``
framing) and prints the SNR at the best alignment of -2..2 frames. The same network and
framing gives a very high SNR at shift 0.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from onnx_export.spectrostream_config import QUANTIZER_KEY  # noqa: E402
from onnx_export.v1 import config as v1  # noqa: E402
from onnx_export.v1.codec import codec_config, decode_plan  # noqa: E402


def decode_ours(tensors: dict[str, np.ndarray], codes: np.ndarray) -> np.ndarray:
    """v1 framing with our ONNX codec export: len(codes) x 1920 samples."""
    import onnxruntime as ort

    from bridge import io_names
    from bridge.runtime import StatefulSession
    from onnx_export.spectrostream import build_codec_decoder

    cfg = codec_config("full" if tensors[QUANTIZER_KEY].shape[-1] == 256 else "tiny")
    cfg = dataclasses.replace(cfg, num_quantizers=tensors[QUANTIZER_KEY].shape[0])
    model = build_codec_decoder(tensors, cfg)
    sess = StatefulSession(ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]))
    plan = decode_plan(codes).astype(np.int64)
    out = np.concatenate([sess.run({io_names.CODES: plan[i : i + 1]})[io_names.AUDIO][0] for i in range(len(plan))])
    return out[v1.FRAME_SAMPLES : (len(codes) + 1) * v1.FRAME_SAMPLES]


def best_alignment(reference: np.ndarray, ours: np.ndarray, max_shift: int = 2) -> tuple[int, float]:
    """(shift in frames, SNR dB) maximising the SNR of ``ours`` shifted against ``reference``."""
    n = v1.FRAME_SAMPLES
    best = (0, -np.inf)
    for shift in range(-max_shift, max_shift + 1):
        a = reference[max(shift, 0) * n : len(reference) + min(shift, 0) * n]
        b = ours[max(-shift, 0) * n : len(ours) + min(-shift, 0) * n]
        snr = 10 * np.log10(np.sum(a**2) / max(np.sum((a - b) ** 2), 1e-30))
        if snr > best[1]:
            best = (shift, float(snr))
    return best


def compare(v1_codebooks: np.ndarray, v1_audio: np.ndarray, mrt2: dict[str, np.ndarray], codes: np.ndarray) -> dict:
    """Codebook identity and decoded-audio agreement between v1's codec and ours on MRT2 weights."""
    table = np.asarray(mrt2[QUANTIZER_KEY], np.float32)
    same_shape = table.shape == v1_codebooks.shape
    shift, snr = best_alignment(v1_audio, decode_ours(mrt2, codes))
    return {
        "codebook_shapes": (tuple(v1_codebooks.shape), tuple(table.shape)),
        "codebooks_identical": bool(same_shape and np.array_equal(table, v1_codebooks)),
        "codebook_max_abs_diff": float(np.abs(table - v1_codebooks).max()) if same_shape else None,
        "best_shift_frames": shift,
        "snr_db": snr,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--assets", required=True, type=Path, help="upstream v1 asset folder (<cache>/assets)")
    ap.add_argument("--mrt2", required=True, type=Path, help="MRT2 checkpoint .safetensors with params/soundstream")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    from safetensors.numpy import load_file

    python = os.environ.get("MRT_V1_ORACLE_PYTHON") or sys.exit("set MRT_V1_ORACLE_PYTHON")
    codes = np.random.default_rng(args.seed).integers(0, v1.CODEBOOK_SIZE, (51, v1.DECODER_LEVELS), dtype=np.int32)
    with tempfile.TemporaryDirectory() as tmp:
        np.save(Path(tmp) / "codes.npy", codes)
        dump = Path(tmp) / "dump.npz"
        script = REPO / "tests/oracle_v1/v1_codec_dump.py"
        subprocess.run(
            [python, str(script), "--assets", str(args.assets), "--codes", f"{tmp}/codes.npy", "--out", str(dump)],
            check=True,
            cwd=script.parent,
        )
        with np.load(dump) as z:
            v1_codebooks, v1_audio = z["codebooks"], z["audio"]
    mrt2 = {k: v for k, v in load_file(str(args.mrt2)).items() if k.startswith("params/soundstream/")}
    result = compare(v1_codebooks, v1_audio, mrt2, codes)
    for k, v in result.items():
        print(f"{k}: {v}")
    same = result["codebooks_identical"] and result["best_shift_frames"] == 0 and result["snr_db"] > 60
    print("verdict:", "same codec and framing" if same else "NOT shown to be the same (see above)")


if __name__ == "__main__":
    main()
