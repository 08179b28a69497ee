"""ONNX graphs of the MRT2 depthformer: streaming encoder, temporal step, depth decoder.

Numbers follow upstream (magenta_rt/jax/depthformer.py, transformer.py and the
vendored sequence_layers):

- RMSNorm ``x * rsqrt(mean(x^2) + 1e-6) * scale`` before ("pre_norm") and after
  ("post_norm") every sub-layer, inside the residual: ``x + post(f(pre(x)))``.
- Attention queries are scaled by ``1.442695041 / sqrt(h) * softplus(per_dim_scale)``;
  sink logits use the *unscaled* queries against one learned sink key per head.
  Masked logits are set to ``-0.7 * float32.max`` before the softmax.
- FFN: ``W2 gelu_tanh(W1 x + b1) + b2`` (jax.nn.gelu's default tanh form).
- NoPE: attention has no positions, so the KV cache is an unordered window.

Streaming state (temporal graph), per layer ``i``::

    past.self_k.i   [n, h, W]   keys of the last W frames, transposed for MatMul
    past.self_v.i   [n, W, h]
    past.cross_k.i  [n, h, W]   projected encoder outputs of the last W frames
    past.cross_v.i  [n, W, h]
    past.step       [1] int64   frames seen; slot j of a window is valid iff j >= W - step

Each step attends over ``concat(window, current)`` (W + 1 keys plus the sink)
and keeps the newest W, exactly like upstream's non-ring-buffer KV cache.
"""

from __future__ import annotations

import numpy as np
import onnx

from bridge import io_names as io

from . import checkpoint as ck
from .configs import (
    CODEBOOK_SIZE,
    MUSICCOCA_PER_LEVEL_VOCAB,
    NUM_LEVELS,
    NUM_RESERVED_TOKENS,
    REGULAR_CHANNEL_VOCABS,
    SOFT_CAP,
    DepthformerConfig,
    StackSpec,
)
from .graph import GraphBuilder

TOKEN_OFFSET = NUM_RESERVED_TOKENS + 1
MASK_VALUE = float(-0.7 * np.finfo(np.float32).max)
R_SOFTPLUS_0 = 1.442695041
NORM_EPS = 1e-6


# --------------------------------------------------------------------------- blocks
def rms_norm(g: GraphBuilder, x: str, scale_key: str, w: dict) -> str:
    """x * rsqrt(mean(x^2) + eps) * scale over the last axis."""
    ms = g.op("ReduceMean", [g.mul(x, x)], axes=[-1], keepdims=1)
    inv = g.op("Reciprocal", [g.op("Sqrt", [g.add(ms, g.const(NORM_EPS))])])
    return g.mul(g.mul(x, inv), g.weight(scale_key, w[scale_key]))


def layer_norm(g: GraphBuilder, x: str, prefix: str, w: dict) -> str:
    scale, bias = f"{prefix}/scale", f"{prefix}/bias"
    return g.op(
        "LayerNormalization",
        [x, g.weight(scale, w[scale]), g.weight(bias, w[bias])],
        axis=-1, epsilon=NORM_EPS,
    )


def dense(g: GraphBuilder, x: str, prefix: str, w: dict, bias: bool = True) -> str:
    """x @ kernel (+ bias); kernel [in, out] as upstream stores it."""
    y = g.matmul(x, g.weight(f"{prefix}/kernel", w[f"{prefix}/kernel"]))
    if bias:
        y = g.add(y, g.weight(f"{prefix}/bias", w[f"{prefix}/bias"]))
    return y


def gelu_tanh(g: GraphBuilder, x: str) -> str:
    """0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))."""
    x3 = g.mul(g.mul(x, x), x)
    inner = g.mul(g.add(x, g.mul(x3, g.const(0.044715))), g.const(np.sqrt(2.0 / np.pi)))
    return g.mul(g.mul(x, g.const(0.5)), g.add(g.op("Tanh", [inner]), g.const(1.0)))


def ffn(g: GraphBuilder, x: str, prefix: str, w: dict) -> str:
    """Residual non-gated FFN with pre/post RMSNorm."""
    h = rms_norm(g, x, f"{prefix}/pre_norm/scale", w)
    h = gelu_tanh(g, dense(g, h, f"{prefix}/ffn_layer1", w))
    h = dense(g, h, f"{prefix}/ffn_layer2", w)
    return g.add(x, rms_norm(g, h, f"{prefix}/post_norm/scale", w))


def _proj_kernel(g: GraphBuilder, key: str, w: dict) -> str:
    """[d, n, h] projection kernel as a [d, n*h] MatMul weight."""
    arr = w[key]
    return g.weight(key, arr.reshape(arr.shape[0], -1))


def _out_kernel(g: GraphBuilder, key: str, w: dict) -> str:
    """[d, n, h] output kernel as a [n*h, d] MatMul weight."""
    arr = w[key]
    return g.weight(key, arr.reshape(arr.shape[0], -1).T.copy())


def query_heads(g: GraphBuilder, x: str, attn: str, spec: StackSpec, w: dict) -> tuple[str, str]:
    """Project x [1, d] to queries [n, 1, h]: (scaled for keys, unscaled for sinks)."""
    n, h = spec.num_heads, spec.dim_per_head
    q = g.reshape(g.matmul(x, _proj_kernel(g, f"{attn}/query_projection/kernel", w)), [n, 1, h])
    per_dim = w[f"{attn}/per_dim_scale"]
    # softplus(per_dim_scale) is a constant of the weights: fold it at export.
    scale = (R_SOFTPLUS_0 / np.sqrt(h)) * np.logaddexp(0.0, per_dim.astype(np.float64))
    scaled = g.mul(q, g.weight(f"{attn}/per_dim_scale[query_scale]", scale.astype(np.float32)))
    return scaled, q


def key_value_heads(g: GraphBuilder, x: str, attn: str, spec: StackSpec, w: dict) -> tuple[str, str]:
    """Project x [1, d] to keys [n, h, 1] (transposed) and values [n, 1, h]."""
    n, h = spec.num_heads, spec.dim_per_head
    k = g.reshape(g.matmul(x, _proj_kernel(g, f"{attn}/key_projection/kernel", w)), [n, h, 1])
    v = g.reshape(g.matmul(x, _proj_kernel(g, f"{attn}/value_projection/kernel", w)), [n, 1, h])
    return k, v


def attend(
    g: GraphBuilder, q_scaled: str, q_raw: str | None, keys_t: str, values: str,
    valid: str | None, attn: str, w: dict,
) -> str:
    """Softmax attention of queries [n,1,h] over keys [n,h,T] / values [n,T,h] (+ a sink).

    ``valid`` is a bool [T] mask (None: all valid). Returns context [n, 1, h].
    """
    logits = g.matmul(q_scaled, keys_t)  # [n, 1, T]
    if valid is not None:
        logits = g.op("Where", [valid, logits, g.const(MASK_VALUE)])
    if q_raw is not None:
        sink_k = w[f"{attn}/sink_key_embeddings"]  # [1, n, h]
        sink_v = w[f"{attn}/sink_value_embeddings"]
        sk = g.weight(f"{attn}/sink_key_embeddings", sink_k.transpose(1, 2, 0).copy())  # [n, h, 1]
        sv = g.weight(f"{attn}/sink_value_embeddings", sink_v.transpose(1, 0, 2).copy())  # [n, 1, h]
        logits = g.concat([g.matmul(q_raw, sk), logits], axis=-1)
        values = g.concat([sv, values], axis=1)
    probs = g.op("Softmax", [logits], axis=-1)
    return g.matmul(probs, values)


def attention_out(g: GraphBuilder, ctx: str, prefix: str, spec: StackSpec, w: dict) -> str:
    flat = g.reshape(ctx, [1, spec.num_heads * spec.dim_per_head])
    return g.matmul(flat, _out_kernel(g, f"{prefix}/output_projection/kernel", w))


def residual_attention(g: GraphBuilder, x: str, prefix: str, w: dict, body) -> str:
    """x + post_norm(out_proj(body(pre_norm(x))))."""
    h = rms_norm(g, x, f"{prefix}/pre_norm/scale", w)
    h = body(h)
    return g.add(x, rms_norm(g, h, f"{prefix}/post_norm/scale", w))


# --------------------------------------------------------------------------- encoder
def build_encoder(cfg: DepthformerConfig, w: dict) -> onnx.ModelProto:
    """conditioning [1,144] raw ints -> encoded [1, E] (stateless: the body is an identity).

    ::

        cond + 7 --+-- [0:12)  + level*1031 -> Gather(mulan 12372x768) -> Sum -> Dense(768->E) --+
                   +-- [12:144) + chan offs  -> Gather(regular 1536xE) -> Mean -----------------+-> avg -> LayerNorm
    """
    g = GraphBuilder("mrt2_encoder")
    e = cfg.encoder_dims
    cond = g.input(io.CONDITIONING, np.int64, [1, 144])
    tokens = g.add(cond, g.const(TOKEN_OFFSET, np.int64))
    style = g.slice(tokens, [0], [NUM_LEVELS], [1])
    regular = g.slice(tokens, [NUM_LEVELS], [144], [1])

    style_idx = g.add(style, g.const(np.arange(NUM_LEVELS) * MUSICCOCA_PER_LEVEL_VOCAB, np.int64))
    table = f"{ck.MULAN}/mulan_dequantizer/embedding"
    style_emb = g.op("Gather", [g.weight(table, w[table]), style_idx], axis=0)  # [1,12,768]
    style_sum = g.op("ReduceSum", [style_emb, g.ints([1])], keepdims=0)  # [1,768]
    style_vec = dense(g, style_sum, f"{ck.MULAN}/depth_input_adapter", w, bias=False)

    offsets = np.concatenate([[0], np.cumsum(REGULAR_CHANNEL_VOCABS)[:-1]]).astype(np.int64)
    reg_idx = g.add(regular, g.const(offsets, np.int64))
    reg_table = f"{ck.REGULAR}/embedding"
    reg_emb = g.op("Gather", [g.weight(reg_table, w[reg_table]), reg_idx], axis=0)  # [1,132,E]
    reg_vec = g.op("ReduceMean", [reg_emb], axes=[1], keepdims=0)

    mixed = g.mul(g.add(style_vec, reg_vec), g.const(0.5))
    out = layer_norm(g, mixed, f"{ck.ENCODER}/encoder_ln", w)
    g.output(out, io.ENCODED, np.float32, [1, e])
    return g.build("MRT2 streaming encoder (conditioning embedding + LayerNorm)")


# --------------------------------------------------------------------------- temporal
def token_embedding(g: GraphBuilder, tokens: str, dims: int, w: dict) -> str:
    """Shared decoder embedding, scaled by sqrt(temporal width): tokens [...] -> [..., D]."""
    emb = g.op("Gather", [g.weight(ck.EMBEDDING, w[ck.EMBEDDING]), tokens], axis=0)
    return g.mul(emb, g.const(np.float32(np.sqrt(dims))))


def windowed_attention(
    g: GraphBuilder, hx: str, kv_x: str, name: str, prefix: str, i: int,
    cfg: DepthformerConfig, w: dict, valid: str,
) -> str:
    """Attention of hx over a sliding window of keys/values projected from kv_x (+ sink).

    Keys and values of the newest W frames are state ``<name>_k.i`` / ``<name>_v.i``;
    this step attends over the W window slots plus the current frame.
    """
    t, W = cfg.temporal, cfg.max_past_horizon
    n, h = t.num_heads, t.dim_per_head
    attn = f"{prefix}/attention"
    qs, qr = query_heads(g, hx, attn, t, w)
    k, v = key_value_heads(g, kv_x, attn, t, w)
    keys = g.concat([g.state(f"{name}_k.{i}", np.float32, [n, h, W]), k], axis=2)
    vals = g.concat([g.state(f"{name}_v.{i}", np.float32, [n, W, h]), v], axis=1)
    g.set_present(f"{name}_k.{i}", g.slice(keys, [1], [W + 1], [2]))
    g.set_present(f"{name}_v.{i}", g.slice(vals, [1], [W + 1], [1]))
    return attention_out(g, attend(g, qs, qr, keys, vals, valid, attn, w), prefix, t, w)


def temporal_layer(
    g: GraphBuilder, x: str, enc: str, i: int, cfg: DepthformerConfig, w: dict, valid: str
) -> str:
    """Self-attention over past frames, cross-attention over past encoder outputs, FFN."""
    layer = f"{ck.TEMPORAL}/x_layers_{i}"
    for name, source in (("self", None), ("cross", enc)):
        prefix = f"{layer}/{name}_attention"
        x = residual_attention(
            g, x, prefix, w,
            lambda hx, name=name, source=source, prefix=prefix: windowed_attention(
                g, hx, source or hx, name, prefix, i, cfg, w, valid),
        )
    return ffn(g, x, f"{layer}/ffn", w)


def _window_valid(g: GraphBuilder, step: str, window: int) -> str:
    """bool [W + 1]: window slot j valid iff j >= W - step; the current frame always."""
    slots = g.const(np.arange(window + 1), np.int64)
    return g.op("GreaterOrEqual", [slots, g.op("Sub", [g.const([window], np.int64), step])])


def add_temporal(g: GraphBuilder, cfg: DepthformerConfig, w: dict, prev_tokens: str, encoded: str) -> str:
    """Temporal step on an existing builder; returns temporal_out [1, Dt]."""
    dims = cfg.temporal.model_dims
    step = g.state("step", np.int64, [1])
    valid = _window_valid(g, step, cfg.max_past_horizon)
    emb = token_embedding(g, prev_tokens, dims, w)  # [1, 12, D]
    x = g.op("ReduceMean", [emb], axes=[1], keepdims=0)  # [1, D]
    for i in range(cfg.temporal.num_layers):
        x = temporal_layer(g, x, encoded, i, cfg, w, valid)
    g.set_present("step", g.add(step, g.const([1], np.int64)))
    return x


def build_temporal(cfg: DepthformerConfig, w: dict) -> onnx.ModelProto:
    """prev_tokens [1,12] + encoded [1,E] + KV windows -> temporal_out [1, Dt] + KV windows."""
    g = GraphBuilder("mrt2_temporal_step")
    prev = g.input(io.PREV_TOKENS, np.int64, [1, NUM_LEVELS])
    enc = g.input(io.ENCODED, np.float32, [1, cfg.encoder_dims])
    out = add_temporal(g, cfg, w, prev, enc)
    g.output(out, io.TEMPORAL_OUT, np.float32, [1, cfg.temporal.model_dims])
    return g.build("MRT2 temporal decoder step with explicit sliding-window KV caches")


# --------------------------------------------------------------------------- depth
def add_depth(
    g: GraphBuilder, cfg: DepthformerConfig, w: dict, temporal_out: str,
    temperature: str, top_k: str, gumbel: str, forced: str, force_mask: str,
) -> tuple[str, str]:
    """The 12-level depth loop, unrolled; returns (tokens [12] int64, logits [12, 1024]).

    Level k: depth input (temporal output for k=0, else the embedded token of
    level k-1) -> adapter -> depth transformer over levels 0..k -> final LN ->
    logits of level k's slice only -> soft cap -> top-k -> Gumbel-max.
    """
    t, dp = cfg.temporal, cfg.depth
    kernel = w[f"{ck.DEPTH}/to_logits/kernel"]
    bias = w[f"{ck.DEPTH}/to_logits/bias"]
    k_clip = g.op("Clip", [top_k, g.const([1], np.int64), g.const([CODEBOOK_SIZE], np.int64)])
    keys: list[list[str]] = [[] for _ in range(dp.num_layers)]
    values: list[list[str]] = [[] for _ in range(dp.num_layers)]
    tokens, logits_all = [], []
    x_in = temporal_out
    for level in range(NUM_LEVELS):
        x = x_in
        if cfg.has_depth_adapter:
            x = dense(g, x, f"{ck.DEPTH}/depth_input_adapter", w, bias=False)
        for i in range(dp.num_layers):
            layer = f"{ck.DEPTH}/transformer/x_layers_{i}"

            def self_attn(hx: str, i=i, layer=layer) -> str:
                attn = f"{layer}/self_attention/attention"
                qs, _ = query_heads(g, hx, attn, dp, w)
                k, v = key_value_heads(g, hx, attn, dp, w)
                keys[i].append(k)
                values[i].append(v)
                kt = keys[i][0] if len(keys[i]) == 1 else g.concat(keys[i], axis=2)
                vt = values[i][0] if len(values[i]) == 1 else g.concat(values[i], axis=1)
                return attention_out(g, attend(g, qs, None, kt, vt, None, attn, w), f"{layer}/self_attention", dp, w)

            x = residual_attention(g, x, f"{layer}/self_attention", w, self_attn)
            x = ffn(g, x, f"{layer}/ffn", w)
        x = layer_norm(g, x, f"{ck.DEPTH}/final_ln", w)
        lo = NUM_RESERVED_TOKENS + level * CODEBOOK_SIZE
        wk = g.weight(f"{ck.DEPTH}/to_logits/kernel[level{level}]", kernel[:, lo:lo + CODEBOOK_SIZE])
        bk = g.weight(f"{ck.DEPTH}/to_logits/bias[level{level}]", bias[lo:lo + CODEBOOK_SIZE])
        logits = g.add(g.matmul(x, wk), bk)  # [1, 1024]
        logits = g.mul(g.op("Tanh", [g.mul(logits, g.const(1.0 / SOFT_CAP))]), g.const(SOFT_CAP))
        logits_all.append(logits)
        # top-k: keep logits >= the k-th largest, then argmax(logits + T * gumbel).
        topv = g.op("TopK", [logits, k_clip], outputs=2, axis=-1, largest=1, sorted=1)[0]
        kth = g.op("Gather", [topv, g.op("Sub", [k_clip, g.const([1], np.int64)])], axis=1)
        kept = g.op("Where", [g.op("GreaterOrEqual", [logits, kth]), logits, g.const(MASK_VALUE)])
        noise = g.op("Gather", [gumbel, g.const([level], np.int64)], axis=0)  # [1, 1024]
        score = g.add(kept, g.mul(noise, temperature))
        sampled = g.add(g.op("ArgMax", [score], axis=-1, keepdims=0), g.const([lo], np.int64))  # [1]
        lvl = g.const([level], np.int64)
        forced_k = g.op("Gather", [forced, lvl], axis=0)
        use_forced = g.op("Gather", [force_mask, lvl], axis=0)
        token = g.op("Where", [use_forced, forced_k, sampled])  # [1]
        tokens.append(token)
        if level + 1 < NUM_LEVELS:
            x_in = token_embedding(g, g.op("Unsqueeze", [token, g.ints([0])]), t.model_dims, w)
            x_in = g.reshape(x_in, [1, t.model_dims])
    tokens_out = g.concat(tokens, axis=0)
    logits_out = g.concat(logits_all, axis=0)
    return tokens_out, logits_out


def build_depth(cfg: DepthformerConfig, w: dict) -> onnx.ModelProto:
    """temporal_out + sampling inputs -> 12 model tokens and per-level soft-capped logits."""
    g = GraphBuilder("mrt2_depth_decoder")
    tin = g.input(io.TEMPORAL_OUT, np.float32, [1, cfg.temporal.model_dims])
    temp = g.input(io.TEMPERATURE, np.float32, [1])
    top_k = g.input(io.TOP_K, np.int64, [1])
    gumbel = g.input(io.GUMBEL, np.float32, [NUM_LEVELS, CODEBOOK_SIZE])
    forced = g.input(io.FORCED_TOKENS, np.int64, [NUM_LEVELS])
    mask = g.input(io.FORCE_MASK, np.bool_, [NUM_LEVELS])
    tokens, logits = add_depth(g, cfg, w, tin, temp, top_k, gumbel, forced, mask)
    g.output(tokens, io.TOKENS, np.int64, [NUM_LEVELS])
    g.output(logits, io.LOGITS, np.float32, [NUM_LEVELS, CODEBOOK_SIZE])
    return g.build("MRT2 depth decoder: 12 RVQ levels, soft-capped logits, top-k Gumbel-max sampling")
