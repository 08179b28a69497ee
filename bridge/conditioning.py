"""The 144-int per-frame conditioning vector of MRT2, and helpers to build it.

Layout (raw values, before the model's +7 token offset, which the encoder
graph applies itself):

    [0:12)    MusicCoCa style tokens, 0..1023 each, or -1 (masked)
    [12:140)  128 MIDI pitch states: -1 masked, 0 off, 1 sustain, 2 onset,
              3 sustain-or-onset (the model decides)
    [140]     drum state: -1 masked, 0 none, 1 play
    [141]     CFG bin for style  (scale in [-1, 7], step 0.2 -> 0..40)
    [142]     CFG bin for notes  (same binning)
    [143]     CFG bin for drums  (scale in [-1, 7], step 1.0 -> 0..8)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

NUM_STYLE_TOKENS = 12
NUM_PITCHES = 128
STYLE_CODEBOOK_SIZE = 1024

STYLE_SLICE = slice(0, 12)
NOTES_SLICE = slice(12, 140)
DRUMS_INDEX = 140
CFG_STYLE_INDEX = 141
CFG_NOTES_INDEX = 142
CFG_DRUMS_INDEX = 143
CONDITIONING_LENGTH = 144

MASKED = -1
NOTE_OFF, NOTE_SUSTAIN, NOTE_ONSET, NOTE_ANY = 0, 1, 2, 3
DRUMS_NONE, DRUMS_PLAY = 0, 1

CFG_MIN, CFG_MAX = -1.0, 7.0
CFG_STEP_STYLE_NOTES, CFG_BINS_STYLE_NOTES = 0.2, 41
CFG_STEP_DRUMS, CFG_BINS_DRUMS = 1.0, 9

# Upstream's defaults (magenta_rt.jax.system.MagentaRT2System).
DEFAULT_CFG_STYLE = 3.0
DEFAULT_CFG_NOTES = 1.0
DEFAULT_CFG_DRUMS = 1.0
DEFAULT_TEMPERATURE = 1.3
DEFAULT_TOP_K = 40

# Token offset applied to every conditioning value before embedding:
# 6 reserved tokens + 1 dropout token; -1 (masked) becomes 6.
TOKEN_OFFSET = 7


def cfg_bin(scale: float, step: float, num_bins: int) -> int:
    """Map a guidance scale to its conditioning bin, as upstream does.

    Clamps to [-1, 7], rounds (half to even, like Python's ``round``) to the
    nearest multiple of ``step`` above -1, and clips to ``[0, num_bins - 1]``.
    """
    if not math.isfinite(scale):
        raise ValueError(f"guidance scale must be finite, got {scale!r}")
    clamped = max(CFG_MIN, min(CFG_MAX, float(scale)))
    index = int(round((clamped - CFG_MIN) / step))
    return max(0, min(num_bins - 1, index))


def cfg_style_notes_bin(scale: float) -> int:
    return cfg_bin(scale, CFG_STEP_STYLE_NOTES, CFG_BINS_STYLE_NOTES)


def cfg_drums_bin(scale: float) -> int:
    return cfg_bin(scale, CFG_STEP_DRUMS, CFG_BINS_DRUMS)


def _masked_notes() -> np.ndarray:
    return np.full(NUM_PITCHES, MASKED, np.int32)


@dataclass
class Conditioning:
    """Everything that conditions one frame, in musician-facing units.

    ``style_tokens`` is ``None`` (masked) or 12 MusicCoCa RVQ codes.
    ``notes`` holds the 128 pitch states, ``drums`` the drum state.
    """

    style_tokens: np.ndarray | None = None
    notes: np.ndarray = field(default_factory=_masked_notes)
    drums: int = MASKED
    cfg_style: float = DEFAULT_CFG_STYLE
    cfg_notes: float = DEFAULT_CFG_NOTES
    cfg_drums: float = DEFAULT_CFG_DRUMS

    def to_vector(self) -> np.ndarray:
        """Return the raw 144-int vector (validated) for the encoder graph."""
        return build_vector(
            self.style_tokens, self.notes, self.drums,
            self.cfg_style, self.cfg_notes, self.cfg_drums,
        )


def build_vector(
    style_tokens: np.ndarray | list[int] | None,
    notes: np.ndarray | list[int] | None,
    drums: int,
    cfg_style: float = DEFAULT_CFG_STYLE,
    cfg_notes: float = DEFAULT_CFG_NOTES,
    cfg_drums: float = DEFAULT_CFG_DRUMS,
) -> np.ndarray:
    """Build and validate the raw 144-int conditioning vector."""
    vec = np.empty(CONDITIONING_LENGTH, np.int32)
    if style_tokens is None:
        vec[STYLE_SLICE] = MASKED
    else:
        style = np.asarray(style_tokens, dtype=np.int64).reshape(-1)
        if style.shape != (NUM_STYLE_TOKENS,):
            raise ValueError(f"style tokens: expected 12 values, got {style.shape[0]}")
        bad = (style < MASKED) | (style >= STYLE_CODEBOOK_SIZE)
        if bad.any():
            raise ValueError(
                f"style token {int(style[bad][0])} out of range -1..{STYLE_CODEBOOK_SIZE - 1}"
            )
        vec[STYLE_SLICE] = style
    if notes is None:
        vec[NOTES_SLICE] = MASKED
    else:
        arr = np.asarray(notes, dtype=np.int64).reshape(-1)
        if arr.shape != (NUM_PITCHES,):
            raise ValueError(f"notes: expected 128 pitch states, got {arr.shape[0]}")
        if ((arr < MASKED) | (arr > NOTE_ANY)).any():
            raise ValueError("notes: pitch states must be in -1..3")
        vec[NOTES_SLICE] = arr
    if int(drums) not in (MASKED, DRUMS_NONE, DRUMS_PLAY):
        raise ValueError(f"drums: expected -1, 0 or 1, got {drums!r}")
    vec[DRUMS_INDEX] = int(drums)
    vec[CFG_STYLE_INDEX] = cfg_style_notes_bin(cfg_style)
    vec[CFG_NOTES_INDEX] = cfg_style_notes_bin(cfg_notes)
    vec[CFG_DRUMS_INDEX] = cfg_drums_bin(cfg_drums)
    return vec


def default_vector() -> np.ndarray:
    """Upstream's unconditioned frame: everything masked, default guidance."""
    return Conditioning().to_vector()


def validate_vector(vec: np.ndarray) -> np.ndarray:
    """Check a raw vector's shape and per-field ranges; return it as int32."""
    arr = np.asarray(vec)
    if arr.shape != (CONDITIONING_LENGTH,):
        raise ValueError(f"conditioning: expected shape (144,), got {arr.shape}")
    if not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"conditioning: expected integers, got {arr.dtype}")
    lo = np.full(CONDITIONING_LENGTH, MASKED)
    hi = np.empty(CONDITIONING_LENGTH, np.int64)
    hi[STYLE_SLICE] = STYLE_CODEBOOK_SIZE - 1
    hi[NOTES_SLICE] = NOTE_ANY
    hi[DRUMS_INDEX] = DRUMS_PLAY
    lo[CFG_STYLE_INDEX:] = 0
    hi[CFG_STYLE_INDEX] = hi[CFG_NOTES_INDEX] = CFG_BINS_STYLE_NOTES - 1
    hi[CFG_DRUMS_INDEX] = CFG_BINS_DRUMS - 1
    bad = np.nonzero((arr < lo) | (arr > hi))[0]
    if bad.size:
        i = int(bad[0])
        raise ValueError(f"conditioning[{i}]={int(arr[i])} outside {int(lo[i])}..{int(hi[i])}")
    return arr.astype(np.int32, copy=False)


# Logit-level guidance (upstream's live engine): each negative row is the positive
# conditioning with one group masked; keys in upstream's order (sorted: musiccoca, notes).
NUM_CFGS_CHOICES = (0, 1, 2)
GUIDANCE_MASKED_GROUPS = (STYLE_SLICE, NOTES_SLICE)


def check_num_cfgs(num_cfgs: int) -> int:
    """0 (conditioning tokens only), 1 (+ style negative) or 2 (+ notes negative)."""
    if int(num_cfgs) not in NUM_CFGS_CHOICES:
        raise ValueError(f"num_cfgs must be 0, 1 or 2, got {num_cfgs!r}")
    return int(num_cfgs)


def guidance_rows(vec: np.ndarray, num_cfgs: int, out: np.ndarray) -> np.ndarray:
    """Fill ``out`` [1 + num_cfgs, 144] with [positive, style-masked, notes-masked][:1 + num_cfgs].

    Drums are never masked, and every row keeps the positive row's guidance bins.
    """
    out[:] = vec
    for row, group in enumerate(GUIDANCE_MASKED_GROUPS[:num_cfgs], start=1):
        out[row, group] = MASKED
    return out


def guidance_from_vector(vec: np.ndarray) -> tuple[float, float, float]:
    """The (style, notes, drums) scales a raw vector's guidance bins stand for."""
    return (
        CFG_MIN + CFG_STEP_STYLE_NOTES * int(vec[CFG_STYLE_INDEX]),
        CFG_MIN + CFG_STEP_STYLE_NOTES * int(vec[CFG_NOTES_INDEX]),
        CFG_MIN + CFG_STEP_DRUMS * int(vec[CFG_DRUMS_INDEX]),
    )
