"""The v1 codec: MRT2's SpectroStream decoder with 16 RVQ levels (see tests/data/v1/README.md for the evidence).

v1 decodes 16 of the codec's 64 RVQ levels (``MagentaRTConfiguration.decoder_codec_rvq_depth``)
where MRT2 decodes 12; the network and the 64 x 1024 x 256 codebooks are the same
SpectroStream, so the v1 codec is our MRT2 codec export with ``rvq_truncation_level=16``.

Framing. Upstream v1 decodes each chunk from scratch: ``codec.decode(frames)`` turns the
1 crossfade frame + 50 new frames into exactly 51 x 1920 samples. Our streaming decoder has
one frame of lookahead (block k+1 of its output is the audio of frame k). ``decode_plan``
states how a chunk is decoded to the same 51 x 1920 samples with it: reset the decoder
state, step the 51 frames and then the last frame once more (so frame 50 has its lookahead),
and drop the first (silent) block.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from ..spectrostream_config import CodecConfig, synth_spectrostream_tensors
from ..spectrostream_config import codec_config as mrt2_codec_config
from . import config as v1


def codec_config(size: str = "full") -> CodecConfig:
    """MRT2's codec config ``size`` (full or tiny) decoding v1's 16 levels."""
    base = mrt2_codec_config(size)
    return dataclasses.replace(
        base,
        name=f"v1_{base.name}",
        num_quantizers=max(base.num_quantizers, v1.DECODER_LEVELS),
        rvq_truncation_level=v1.DECODER_LEVELS,
    )


def synth_codec_tensors(size: str, seed: int) -> dict[str, np.ndarray]:
    """Random codec-decoder tensors (``params/soundstream/...``) for ``codec_config(size)``, from ``seed``."""
    return synth_spectrostream_tensors(codec_config(size), np.random.default_rng(seed))


def decode_plan(frames: np.ndarray) -> np.ndarray:
    """The code frames to step through a fresh streaming decoder for one v1 chunk: ``frames`` + its last frame.

    Keep output samples ``[FRAME_SAMPLES : (len(frames) + 1) * FRAME_SAMPLES]``.
    """
    frames = np.asarray(frames)
    if frames.ndim != 2 or frames.shape[1] != v1.DECODER_LEVELS:
        raise ValueError(f"expected (frames, {v1.DECODER_LEVELS}) codes, got {frames.shape}")
    return np.concatenate([frames, frames[-1:]], axis=0)
