"""Prefill: start a stream (and every ``/reset``) from context instead of from nothing.

As upstream's live engine does it (``core/src/mlx_engine.cpp``): ``silence`` feeds
550 frames of the SpectroStream tokens of silence, ``audio:FILE`` the tokens of a
clip (any WAV, resampled to 48 kHz stereo, at most 28 s, 25 frames trimmed at each
end), ``tokens:FILE.npy`` saved tokens. Style and notes are masked while the
context is fed (upstream's default), so prompts steer only what comes after.
Audio and token files come from the command line or config only, never over OSC.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from . import CODEBOOK_SIZE, FRAME_SAMPLES, SAMPLE_RATE, TOKENS_PER_FRAME
from .conditioning import DRUMS_NONE, MASKED, build_vector

if TYPE_CHECKING:  # the config parser imports this module; keep ONNX Runtime out of it
    from .engine import Engine

log = logging.getLogger(__name__)

SILENCE_FRAMES = 550  # upstream's apps: 22 s, above mrt2_small's ~19.7 s receptive field
AUDIO_TRIM_FRAMES = 25  # per end: encoder warm-up at the head, STFT padding at the tail
AUDIO_MAX_SECONDS = 28  # upstream's encoder input cap
_SILENCE_ENCODE_FRAMES = 40  # long enough for the streaming encoder's codes of silence to settle
KINDS = ("none", "silence", "audio", "tokens")


@dataclass(frozen=True)
class PrefillSpec:
    """What to prefill with: ``kind`` is one of :data:`KINDS`; ``path`` for audio and tokens."""

    kind: str = "none"
    path: Path | None = None

    def __str__(self) -> str:
        return self.kind if self.path is None else f"{self.kind}:{self.path}"


def parse_prefill(text: object, base_dir: Path | None = None) -> PrefillSpec:
    """Parse ``none | silence | audio:FILE | tokens:FILE.npy``; the file must exist.

    A relative path is taken from ``base_dir`` (the config file's folder) when given,
    else from the working directory; the spec keeps it absolute.
    """
    usage = "expected none, silence, audio:FILE or tokens:FILE.npy"
    if not isinstance(text, str):
        raise ValueError(f"prefill: {usage}, got {text!r}")
    kind, _, rest = text.strip().partition(":")
    if kind in ("none", "silence") and not rest:
        return PrefillSpec(kind)
    if kind not in ("audio", "tokens") or not rest.strip():
        raise ValueError(f"prefill: {usage}, got {text!r}")
    path = Path(rest.strip()).expanduser()
    path = ((base_dir or Path.cwd()) / path).resolve()
    if kind == "tokens" and path.suffix != ".npy":
        raise ValueError(f"prefill: tokens must be a .npy file, got {rest!r}")
    if not path.is_file():
        raise ValueError(f"prefill: {kind} file not found: {path}")
    return PrefillSpec(kind, path)


def prefill_conditioning(guidance: tuple[float, float, float], drumless: bool = False) -> np.ndarray:
    """Conditioning while context is fed: style and notes masked, drums masked (0 when drumless)."""
    return build_vector(None, None, DRUMS_NONE if drumless else MASKED, *guidance)


def current_guidance(control) -> tuple[float, float, float]:
    """The (style, notes, drums) guidance scales a ControlState holds now (nothing consumed)."""
    g = control.status()["guidance"]
    return (g["style"], g["notes"], g["drums"])


def silence_codes(engine: Engine) -> np.ndarray:
    """The 12 codes SpectroStream gives silence (upstream caches one mid-clip frame of it)."""
    codes = engine.encode_audio(np.zeros((_SILENCE_ENCODE_FRAMES * FRAME_SAMPLES, 2), np.float32))
    tail = codes[-4:]
    if not (tail == tail[-1]).all():
        log.warning("codes of silence did not settle after %d frames", _SILENCE_ENCODE_FRAMES)
    return codes[-1]


def load_stereo_48k(path: Path) -> np.ndarray:
    """Any PCM WAV (rate, 1 or more channels) as float32 [n, 2] at 48 kHz."""
    from .style.audio import read_wav, resample

    data, rate = read_wav(path)
    if data.ndim == 1:
        data = data[:, None]
    if data.shape[1] == 1:
        data = np.repeat(data, 2, axis=1)
    data = data[:, :2]
    if not np.isfinite(data).all():
        raise ValueError(f"{path}: audio contains NaN or infinite samples")
    return np.stack([resample(data[:, c], rate, SAMPLE_RATE) for c in range(2)], axis=1)


def audio_codes(engine: Engine, audio: np.ndarray) -> np.ndarray:
    """Codes of a 48 kHz stereo clip, capped at 28 s, trimmed by 25 frames at each end."""
    max_frames = AUDIO_MAX_SECONDS * SAMPLE_RATE // FRAME_SAMPLES
    frames = min(len(audio) // FRAME_SAMPLES, max_frames)
    if frames <= 2 * AUDIO_TRIM_FRAMES:
        raise ValueError(f"prefill audio is {len(audio) / SAMPLE_RATE:.2f} s: it needs more than "
                         f"{2 * AUDIO_TRIM_FRAMES * FRAME_SAMPLES / SAMPLE_RATE:g} s "
                         f"({AUDIO_TRIM_FRAMES} frames are trimmed at each end)")
    if len(audio) // FRAME_SAMPLES > max_frames:
        log.warning("prefill audio is %.1f s: using its first %d s", len(audio) / SAMPLE_RATE, AUDIO_MAX_SECONDS)
    codes = engine.encode_audio(audio[: frames * FRAME_SAMPLES])
    return codes[AUDIO_TRIM_FRAMES:frames - AUDIO_TRIM_FRAMES]


def load_tokens(path: Path) -> np.ndarray:
    """Saved tokens [N, 12]: codes 0..1023, or model token ids (6 + level*1024 + code) as
    ``render --tokens-out`` writes them; returned as model token ids."""
    from .engine import NUM_RESERVED_TOKENS, codes_to_tokens

    try:
        arr = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path}: not a .npy array: {exc}") from None
    if arr.ndim != 2 or arr.shape[1] != TOKENS_PER_FRAME or len(arr) < 1 or not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"{path}: expected integer tokens of shape [N, 12], got {arr.dtype} {arr.shape}")
    arr = arr.astype(np.int64)
    if ((arr >= 0) & (arr < CODEBOOK_SIZE)).all():
        return codes_to_tokens(arr)
    lo = NUM_RESERVED_TOKENS + CODEBOOK_SIZE * np.arange(TOKENS_PER_FRAME)
    if ((arr >= lo) & (arr < lo + CODEBOOK_SIZE)).all():
        return arr
    raise ValueError(f"{path}: values are neither codes 0..{CODEBOOK_SIZE - 1} nor model tokens of each level")


def prefill_tokens(engine: Engine, spec: PrefillSpec) -> np.ndarray | None:
    """Model tokens [N, 12] of the context ``spec`` names (None for ``none``)."""
    from .engine import codes_to_tokens

    if spec.kind == "none":
        return None
    if spec.kind == "silence":
        return np.repeat(codes_to_tokens(silence_codes(engine))[None], SILENCE_FRAMES, axis=0)
    if spec.kind == "audio":
        return codes_to_tokens(audio_codes(engine, load_stereo_48k(spec.path)))
    return load_tokens(spec.path)


def apply_prefill(
    engine: Engine,
    spec: PrefillSpec,
    guidance: tuple[float, float, float],
    drumless: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> int:
    """Prefill ``engine`` (and so every later reset) as ``spec`` says; returns the frames of context."""
    tokens = prefill_tokens(engine, spec)
    if tokens is None:
        engine.clear_prefill()
        engine.reset()
        return 0
    engine.prefill(tokens, prefill_conditioning(guidance, drumless), progress)
    log.info("prefilled from %s: %d frames of context", spec, len(tokens))
    return len(tokens)
