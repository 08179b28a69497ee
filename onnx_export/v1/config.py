"""Magenta RT v1 constants and model sizes: the one source of truth for the v1 family.

Numbers follow upstream v1 (commit ``eef91d4^`` of magenta/magenta-realtime):
``magenta_rt/system.py`` (``MagentaRTConfiguration``, ``MagentaRTT5X``) and the gin
files ``magenta_rt/depthformer/configs/{mrt_merged_base,mrt_merged_large,depthformer}.gin``.

Token layout of the LM vocabulary (``MagentaRTConfiguration.vocab_*``)::

    0 PAD | 1 MASK | 2 .. 16386 codec tokens (16 levels x 1024) | 1024 unused |
    17410 .. 23554 style tokens (6 levels x 1024) | unused up to 29698 (rounded to 29824)

Encoder input (1006 tokens): the last 250 context frames x their first 4 RVQ levels,
frame-major (``frame0 level0..3, frame1 level0..3, ...``), then 6 style tokens. The
negative (unconditioned) row for classifier-free guidance has the style tokens replaced
by MASK. Decoder output: 50 frames x 16 levels = 800 tokens per 2 s chunk.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

# Timing (system.py MagentaRTConfiguration).
SAMPLE_RATE = 48_000
NUM_CHANNELS = 2
FRAME_RATE = 25  # codec frames per second
FRAME_SAMPLES = SAMPLE_RATE // FRAME_RATE  # 1920
CHUNK_SECONDS = 2.0
CONTEXT_SECONDS = 10.0
CROSSFADE_SECONDS = 0.04
CHUNK_FRAMES = 50  # 2 s x 25 Hz
CONTEXT_FRAMES = 250  # 10 s x 25 Hz
CONTEXT_CHUNKS = CONTEXT_FRAMES // CHUNK_FRAMES  # 5
CROSSFADE_FRAMES = 1  # 40 ms x 25 Hz
CHUNK_SAMPLES = CHUNK_FRAMES * FRAME_SAMPLES  # 96000
CROSSFADE_SAMPLES = CROSSFADE_FRAMES * FRAME_SAMPLES  # 1920

# RVQ layout.
CODEBOOK_SIZE = 1024
DECODER_LEVELS = 16  # levels generated and decoded
ENCODER_LEVELS = 4  # levels of context the encoder sees
STYLE_LEVELS = 6  # MusicCoCa RVQ levels fed to the encoder
STYLE_CODEBOOK_SIZE = 1024
STYLE_EMBED_DIM = 768

# Vocabulary (system.py vocab_* properties).
PAD_ID = 0
MASK_ID = 1
CODEC_OFFSET = 2
CODEC_VOCAB = DECODER_LEVELS * CODEBOOK_SIZE  # 16384
STYLE_OFFSET = CODEC_OFFSET + CODEC_VOCAB + 1024  # 17410 (1024 unused ids before it)
STYLE_VOCAB = STYLE_LEVELS * STYLE_CODEBOOK_SIZE  # 6144
VOCAB_SIZE = STYLE_OFFSET + STYLE_VOCAB  # 23554 ids in use
VOCAB_SIZE_PRETRAINED = 29698  # seqio.PassThroughVocabulary.size in the gins
# t5x utils.round_vocab_size_to_multiple (default divisor 128): the embedding / logits width.
NUM_EMBEDDINGS = -(-VOCAB_SIZE_PRETRAINED // 128) * 128  # 29824

# Sequence lengths (magenta_rt.gin TASK_FEATURE_LENGTHS).
ENCODER_LENGTH = CONTEXT_FRAMES * ENCODER_LEVELS + STYLE_LEVELS  # 1006
DECODER_LENGTH = CHUNK_FRAMES * DECODER_LEVELS  # 800

# Sampling defaults (system.py MagentaRTT5X.__init__).
DEFAULT_GUIDANCE_WEIGHT = 5.0
DEFAULT_TEMPERATURE = 1.1
DEFAULT_TOPK = 40

# Relative position biases (depthformer.gin): temporal stack and depth stack.
TEMPORAL_RELPOS_BUCKETS = 128
TEMPORAL_RELPOS_MAX_DISTANCE = 128
DEPTH_RELPOS_BUCKETS = DECODER_LEVELS
DEPTH_RELPOS_MAX_DISTANCE = DECODER_LEVELS


@dataclass(frozen=True)
class V1Size:
    """Widths and layer counts of one v1 LM (the gin macros of the same names)."""

    name: str
    num_encoder_layers: int  # NUM_ENCODER_LAYERS
    num_temporal_layers: int  # NUM_TEMPORAL_LAYERS (depthformer.gin; NUM_DECODER_LAYERS is unused)
    num_depth_layers: int  # NUM_DEPTH_LAYERS
    num_heads: int  # NUM_HEADS
    head_dim: int  # HEAD_DIM
    embed_dim: int  # EMBED_DIM
    mlp_dim: int  # MLP_DIM (also DEPTH_MLP_DIM)
    num_embeddings: int = NUM_EMBEDDINGS

    def gin_overrides(self) -> str:
        """Gin bindings that turn upstream's ``mrt_merged_base.gin`` into this size."""
        return "\n".join(
            [
                f"NUM_ENCODER_LAYERS = {self.num_encoder_layers}",
                f"NUM_TEMPORAL_LAYERS = {self.num_temporal_layers}",
                f"NUM_DEPTH_LAYERS = {self.num_depth_layers}",
                f"NUM_HEADS = {self.num_heads}",
                f"HEAD_DIM = {self.head_dim}",
                f"EMBED_DIM = {self.embed_dim}",
                f"MLP_DIM = {self.mlp_dim}",
                f"DEPTH_MLP_DIM = {self.mlp_dim}",
            ]
        )

    def to_dict(self) -> dict:
        return asdict(self)


SIZES: dict[str, V1Size] = {
    # The published checkpoints (mrt_merged_base.gin / mrt_merged_large.gin).
    "base": V1Size("base", 12, 20, 4, 12, 64, 768, 2048),
    "large": V1Size("large", 24, 20, 4, 16, 64, 1024, 2816),
    # Same architecture, real vocabulary and sequence lengths, toy widths: runs in seconds.
    "tiny": V1Size("tiny", 2, 2, 2, 2, 8, 16, 32),
}

def get_size(name: str) -> V1Size:
    """The v1 size called ``name`` (tiny, base or large)."""
    try:
        return SIZES[name]
    except KeyError:
        raise ValueError(f"unknown v1 size {name!r}; choose one of {', '.join(SIZES)}") from None
