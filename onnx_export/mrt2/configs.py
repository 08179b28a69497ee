"""Architecture sizes of the MRT2 depthformer: the two published sizes and tiny test sizes.

Numbers follow upstream's ``magenta_rt/config.py`` / ``magenta_rt/jax/model.py``.
The tiny sizes are the same architecture at toy widths, for tests and for the
bundled synthetic model; ``tests/oracle/depthformer_oracle.py`` builds the
upstream model with exactly these numbers.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

# Token layout (fixed by the data, not by the model size).
NUM_RESERVED_TOKENS = 6
CODEBOOK_SIZE = 1024
NUM_LEVELS = 12
VOCAB_SIZE = NUM_LEVELS * CODEBOOK_SIZE + NUM_RESERVED_TOKENS  # 12294
SOFT_CAP = 30.0
SOS_ID = 0

# Encoder conditioning embeddings.
MUSICCOCA_EMBED_DIM = 768
MUSICCOCA_PER_LEVEL_VOCAB = CODEBOOK_SIZE + NUM_RESERVED_TOKENS + 1  # 1031 (with dropout token)
MUSICCOCA_NUM_EMBEDDINGS = NUM_LEVELS * MUSICCOCA_PER_LEVEL_VOCAB  # 12372
# Per-channel vocab of the 132 "regular" channels: 128 pitch (4+6+1), drums (2+6+1),
# 2 CFG style/notes (41+6, no dropout token), 1 CFG drums (9+6).
REGULAR_CHANNEL_VOCABS = [11] * 128 + [9] + [47, 47] + [15]
REGULAR_NUM_EMBEDDINGS = -(-sum(REGULAR_CHANNEL_VOCABS) // 128) * 128  # rounded up to 1536


@dataclass(frozen=True)
class StackSpec:
    """One transformer stack: layers, width, heads, FFN width."""

    num_layers: int
    model_dims: int
    num_heads: int
    dim_per_head: int
    hidden_dims: int


@dataclass(frozen=True)
class DepthformerConfig:
    name: str
    encoder_dims: int
    temporal: StackSpec
    depth: StackSpec
    # Past frames visible to temporal self- and cross-attention (not counting the current one).
    max_past_horizon: int
    codec: str  # spectrostream config name: 'full' or 'tiny'

    @property
    def has_depth_adapter(self) -> bool:
        return self.temporal.model_dims != self.depth.model_dims

    def to_dict(self) -> dict:
        return asdict(self)


SIZES: dict[str, DepthformerConfig] = {
    "mrt2_small": DepthformerConfig(
        name="mrt2_small",
        encoder_dims=256,
        temporal=StackSpec(12, 1024, 8, 128, 4096),
        depth=StackSpec(2, 768, 6, 128, 3072),
        max_past_horizon=41,
        codec="full",
    ),
    "mrt2_base": DepthformerConfig(
        name="mrt2_base",
        encoder_dims=1024,
        temporal=StackSpec(20, 3072, 24, 128, 8192),
        depth=StackSpec(6, 1024, 8, 128, 4096),
        max_past_horizon=25,
        codec="full",
    ),
    "tiny": DepthformerConfig(
        name="tiny",
        encoder_dims=64,
        temporal=StackSpec(2, 128, 4, 32, 256),
        depth=StackSpec(2, 96, 3, 32, 192),
        max_past_horizon=5,
        codec="tiny",
    ),
    "tiny_base": DepthformerConfig(
        name="tiny_base",
        encoder_dims=128,
        temporal=StackSpec(2, 128, 4, 32, 256),
        depth=StackSpec(2, 128, 4, 32, 256),
        max_past_horizon=4,
        codec="tiny",
    ),
}


def get_config(size: str) -> DepthformerConfig:
    try:
        return SIZES[size]
    except KeyError:
        raise ValueError(f"unknown model size {size!r}; expected one of {', '.join(SIZES)}") from None
