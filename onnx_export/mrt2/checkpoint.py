"""Reading upstream MRT2 checkpoints (safetensors, ``params/...`` keys) and checking their layout."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..tensors import check_tensors, load_tensors
from .configs import (
    MUSICCOCA_EMBED_DIM,
    MUSICCOCA_NUM_EMBEDDINGS,
    REGULAR_NUM_EMBEDDINGS,
    VOCAB_SIZE,
    DepthformerConfig,
    StackSpec,
)

DF = "params/depthformer"
ENCODER = f"{DF}/encoder/body"
MULAN = f"{ENCODER}/layers_1/branched_mulan_embedder/mulan_embedder"
REGULAR = f"{ENCODER}/layers_1/branched_regular_embedder/regular_embedder"
EMBEDDING = f"{DF}/decoder/decoder_embedding/embedding/embedding"
TEMPORAL = f"{DF}/decoder/temporal_body/transformer"
DEPTH = f"{DF}/decoder/depth_body"


def _attention_shapes(prefix: str, d: int, spec: StackSpec, kv_dims: int, sinks: bool) -> dict:
    n, h = spec.num_heads, spec.dim_per_head
    shapes = {
        f"{prefix}/attention/query_projection/kernel": (d, n, h),
        f"{prefix}/attention/key_projection/kernel": (kv_dims, n, h),
        f"{prefix}/attention/value_projection/kernel": (kv_dims, n, h),
        f"{prefix}/attention/per_dim_scale": (h,),
        f"{prefix}/output_projection/kernel": (d, n, h),
        f"{prefix}/pre_norm/scale": (d,),
        f"{prefix}/post_norm/scale": (d,),
    }
    if sinks:
        shapes[f"{prefix}/attention/sink_key_embeddings"] = (1, n, h)
        shapes[f"{prefix}/attention/sink_value_embeddings"] = (1, n, h)
    return shapes


def _ffn_shapes(prefix: str, spec: StackSpec) -> dict:
    d, f = spec.model_dims, spec.hidden_dims
    return {
        f"{prefix}/ffn_layer1/kernel": (d, f),
        f"{prefix}/ffn_layer1/bias": (f,),
        f"{prefix}/ffn_layer2/kernel": (f, d),
        f"{prefix}/ffn_layer2/bias": (d,),
        f"{prefix}/pre_norm/scale": (d,),
        f"{prefix}/post_norm/scale": (d,),
    }


def depthformer_shapes(cfg: DepthformerConfig) -> dict[str, tuple[int, ...]]:
    """Every depthformer tensor of ``cfg`` with its shape, keyed as upstream saves it."""
    e, t, dp = cfg.encoder_dims, cfg.temporal, cfg.depth
    shapes: dict[str, tuple[int, ...]] = {
        f"{ENCODER}/encoder_ln/scale": (e,),
        f"{ENCODER}/encoder_ln/bias": (e,),
        f"{MULAN}/mulan_dequantizer/embedding": (MUSICCOCA_NUM_EMBEDDINGS, MUSICCOCA_EMBED_DIM),
        f"{MULAN}/depth_input_adapter/kernel": (MUSICCOCA_EMBED_DIM, e),
        f"{REGULAR}/embedding": (REGULAR_NUM_EMBEDDINGS, e),
        EMBEDDING: (VOCAB_SIZE, t.model_dims),
        f"{DEPTH}/final_ln/scale": (dp.model_dims,),
        f"{DEPTH}/final_ln/bias": (dp.model_dims,),
        f"{DEPTH}/to_logits/kernel": (dp.model_dims, VOCAB_SIZE),
        f"{DEPTH}/to_logits/bias": (VOCAB_SIZE,),
    }
    if cfg.has_depth_adapter:
        shapes[f"{DEPTH}/depth_input_adapter/kernel"] = (t.model_dims, dp.model_dims)
    for i in range(t.num_layers):
        layer = f"{TEMPORAL}/x_layers_{i}"
        shapes.update(_attention_shapes(f"{layer}/self_attention", t.model_dims, t, t.model_dims, True))
        shapes.update(_attention_shapes(f"{layer}/cross_attention", t.model_dims, t, e, True))
        shapes.update(_ffn_shapes(f"{layer}/ffn", t))
    for i in range(dp.num_layers):
        layer = f"{DEPTH}/transformer/x_layers_{i}"
        shapes.update(_attention_shapes(f"{layer}/self_attention", dp.model_dims, dp, dp.model_dims, False))
        shapes.update(_ffn_shapes(f"{layer}/ffn", dp))
    return shapes


def load_depthformer(path: Path, cfg: DepthformerConfig) -> dict[str, np.ndarray]:
    """Load and validate the depthformer part of a checkpoint, as float32 arrays."""
    tensors = load_tensors(path)
    expected = depthformer_shapes(cfg)
    check_tensors(tensors, expected, f"{Path(path).name} (as {cfg.name})")
    return {k: np.asarray(tensors[k], np.float32) for k in expected} | {
        k: v for k, v in tensors.items() if k not in expected
    }


def guess_size(tensors_or_path) -> str | None:
    """Name the configured size whose depthformer shapes match, if any."""
    from .configs import SIZES

    tensors = load_tensors(tensors_or_path) if isinstance(tensors_or_path, (str, Path)) else tensors_or_path
    for name, cfg in SIZES.items():
        exp = depthformer_shapes(cfg)
        if all(k in tensors and tuple(tensors[k].shape) == s for k, s in exp.items()):
            return name
    return None
