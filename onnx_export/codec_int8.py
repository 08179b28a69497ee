"""The int8 SpectroStream decoder: calibrated static int8 convs, checked against fp32 in dB.

Built from the direct-conv decoder (``winograd=False``; Winograd's transformed activations
do not survive 8-bit: 7 dB SNR), then:

- every Conv but those of ``FP32_CONV_SCOPES``: QDQ int8 (``static_int8``; ORT runs
  ``QLinearConv``, u8 activations x s8 per-channel weights, VNNI where the CPU has it, else
  AVX2's int16 pair sums);
- the input layer's three 1x1 convs (MatMuls, 33 MB of fp32 weights read per frame): 8-bit
  blocks (``MatMulNBits``, as the depthformer's int8 pass);
- the inverse STFT, the output conv and the shortcut 1x1 convs stay fp32.

Activation ranges come from streaming the fp32 decoder over calibration codes: uniformly
random codes, and "held" codes whose coarse levels change every few frames like a music
model's tokens. The SNR against the fp32 graph is measured on other codes (``audio_snr_db``).
"""

from __future__ import annotations

import logging

import numpy as np
import onnx
import onnxruntime as ort

from bridge import io_names
from bridge.bench import machine

from .precision import CODEC_INT8_MIN_SNR_DB, has_int8_dot, to_int8
from .spectrostream import build_codec_decoder
from .spectrostream_config import CodecConfig
from .static_int8 import (
    AMX_WEIGHT_ZERO_POINT,
    calibrate,
    conv_targets,
    fold_constant_splits,
    quantize_convs,
)

log = logging.getLogger(__name__)

# Convs kept in fp32 (by scope). The output conv writes the spectrum the iSTFT turns into audio
# (an 8-bit output there is an 8-bit audio error); the 1x1 shortcut convs carry the residual
# stream (alone in int8 they cost the most: 36 dB each, against 42-48 dB for a body conv).
FP32_CONV_SCOPES = ("output_layer", "shortcut")
# Calibration: sequences x frames per sequence (half random, half held codes).
CALIBRATION_SEQUENCES = 4
CALIBRATION_FRAMES = 12
# Levels that stay put between changes in "held" codes, and how long they are held.
HELD_LEVELS = 4
HELD_FRAMES = (2, 8)


def codes_sequence(rng: np.random.Generator, frames: int, levels: int, held: bool) -> np.ndarray:
    """[frames, levels] codec codes: uniform random, or with the coarse levels held for a few
    frames at a time (closer to a music model's output than white noise is)."""
    codes = rng.integers(0, 1024, (frames, levels))
    if held:
        i = 0
        while i < frames:
            n = int(rng.integers(*HELD_FRAMES))
            codes[i:i + n, :HELD_LEVELS] = codes[i, :HELD_LEVELS]
            i += n
    return codes


def calibration_codes(levels: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [codes_sequence(rng, CALIBRATION_FRAMES, levels, held=bool(i % 2))
            for i in range(CALIBRATION_SEQUENCES)]


def _session(model: onnx.ModelProto, threads: int = 1) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.log_severity_level = 3
    return ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])


def stream(model: onnx.ModelProto, sequences: list[np.ndarray]
           ) -> tuple[list[dict[str, np.ndarray]], np.ndarray]:
    """Decode each codes sequence from a fresh state. Returns every call's full feed (codes and
    ``past.*`` state, for calibration) and the audio, [sequences, frames * 1920, 2]."""
    sess = _session(model, threads=2)
    state_names = [i.name for i in sess.get_inputs() if i.name.startswith(io_names.PAST)]
    present = [io_names.present(io_names.state_name(n)) for n in state_names]
    zeros = {i.name: np.zeros([int(d) for d in i.shape], np.float32)
             for i in sess.get_inputs() if i.name in state_names}
    feeds, audio = [], []
    for seq in sequences:
        state = dict(zeros)
        chunks = []
        for codes in seq:
            feed = {io_names.CODES: np.asarray(codes, np.int64)[None], **state}
            feeds.append(feed)
            out = sess.run([io_names.AUDIO, *present], feed)
            chunks.append(out[0][0])
            state = dict(zip(state_names, out[1:]))
        audio.append(np.concatenate(chunks))
    return feeds, np.stack(audio)


def audio_snr_db(reference: np.ndarray, test: np.ndarray) -> float:
    """10 log10(signal energy / error energy) of ``test`` against ``reference``."""
    err = float(np.sum((np.asarray(test, np.float64) - reference) ** 2))
    sig = float(np.sum(np.asarray(reference, np.float64) ** 2))
    return float("inf") if err == 0 else 10.0 * np.log10(sig / err)


def build_int8_codec_decoder(weights: dict[str, np.ndarray], cfg: CodecConfig, seed: int = 0,
                             amx: bool | None = None) -> onnx.ModelProto:
    """The int8 decoder (module docstring), calibrated on ``calibration_codes(seed)``; its
    weights take ``AMX_WEIGHT_ZERO_POINT`` where ``amx`` (default: this CPU has AMX-INT8)."""
    if amx is None:
        amx = "amx_int8" in machine()["isa"]
    model = fold_constant_splits(build_codec_decoder(weights, cfg, winograd=False))
    feeds, _ = stream(model, calibration_codes(cfg.rvq_truncation_level, seed))
    keep_fp32 = {n.name for n in conv_targets(model)
                 if any(f"/{scope}/" in n.name for scope in FP32_CONV_SCOPES)}
    convs = [n for n in conv_targets(model) if n.name not in keep_fp32]
    tensors = sorted({n.input[0] for n in convs} | {n.output[0] for n in convs})
    ranges = calibrate(model, feeds, tensors)
    model = quantize_convs(model, ranges, exclude=keep_fp32,
                           weight_zero_point=AMX_WEIGHT_ZERO_POINT if amx else 0)
    keep = [n.name for n in model.graph.node
            if n.op_type == "MatMul" and "/input_layer/" not in n.name]
    return to_int8(model, nodes_to_exclude=keep)


def codec_snr_db(reference: onnx.ModelProto, candidate: onnx.ModelProto, levels: int,
                 seed: int = 1, frames: int = 24) -> float:
    """SNR (dB) of ``candidate``'s audio against ``reference``'s over random and held codes."""
    rng = np.random.default_rng(seed)
    seqs = [codes_sequence(rng, frames, levels, held) for held in (False, True)]
    _, ref = stream(reference, seqs)
    _, got = stream(candidate, seqs)
    return audio_snr_db(ref, got)


def int8_codec_kernels(isa: list[str]) -> str | None:
    """The int8 conv kernels ORT uses on a CPU with ``isa`` ("amx", "vnni", "avx2"), or None
    where the int8 decoder is not worth building (no AVX2)."""
    if "amx_int8" in isa:
        return "amx"
    if has_int8_dot(isa):
        return "vnni"
    return "avx2" if "avx2" in isa else None


def choose_int8_codec_decoder(fp32: onnx.ModelProto, weights: dict[str, np.ndarray],
                              cfg: CodecConfig) -> tuple[onnx.ModelProto, dict]:
    """The codec decoder of an int8 package: the int8 graph where this CPU has int8 conv kernels
    (``int8_codec_kernels``) and its audio stays within ``CODEC_INT8_MIN_SNR_DB`` of ``fp32``;
    else ``fp32``. The SNR is measured on this CPU's kernels, so on AVX2, where u8 x s8 pair sums
    can saturate in int16, a saturating calibration shows up there (measured: 29.05 dB on AVX2
    against 29.07 dB exact, mrt2_small; 1.33x faster than fp32 on one core, 36.5 vs 48.5 ms).

    Returns the graph and the check, for the manifest: chosen precision, measured SNR, the
    threshold and the instruction sets of the CPU that prepared it.
    """
    isa = machine()["isa"]
    check: dict = {"min_snr_db": CODEC_INT8_MIN_SNR_DB, "cpu_isa": isa}
    kernels = int8_codec_kernels(isa)
    if kernels is None:
        check |= {"precision": "fp32", "reason": "no AVX2 or int8 dot product"}
        log.info("codec decoder: fp32 (%s)", check["reason"])
        return fp32, check
    int8 = build_int8_codec_decoder(weights, cfg, amx=kernels == "amx")
    snr = codec_snr_db(fp32, int8, cfg.rvq_truncation_level)
    check |= {"int8_snr_db": round(snr, 2), "int8_kernels": kernels}
    if snr < CODEC_INT8_MIN_SNR_DB:
        check |= {"precision": "fp32", "reason": "int8 SNR below the threshold"}
        log.warning("codec decoder: fp32 (int8 SNR %.1f dB < %.1f dB)", snr, CODEC_INT8_MIN_SNR_DB)
        return fp32, check
    log.info("codec decoder: int8, %s kernels, SNR %.1f dB against fp32 (>= %.1f dB)",
             kernels, snr, CODEC_INT8_MIN_SNR_DB)
    return int8, {**check, "precision": "int8"}
