"""ONNX graphs of the MRT2 depthformer: streaming encoder, temporal step, depth decoder.

Numbers follow upstream (magenta_rt/jax/depthformer.py, transformer.py and the
vendored sequence_layers):

- RMSNorm ``x * rsqrt(mean(x^2) + 1e-6) * scale`` before ("pre_norm") and after
  ("post_norm") every sub-layer, inside the residual: ``x + post(f(pre(x)))``.
- Attention queries are scaled by ``1.442695041 / sqrt(h) * softplus(per_dim_scale)``;
  sink logits use the *unscaled* queries against one learned sink key per head.
  Masked logits are set to ``-0.7 * float32.max`` before the softmax.
- FFN: ``W2 gelu_tanh(W1 x + b1) + b2`` (jax.nn.gelu's default tanh form).
- RMSNorm and bias + gelu are single fused ORT operators (``SimplifiedLayerNormalization``,
  ``com.microsoft.FastGelu``): same arithmetic, a fraction of the per-op dispatch cost.
- NoPE: attention has no positions, so the KV cache is an unordered window.

Batch: every graph runs on ``rows`` = streams x (1 + num_cfgs) rows; a stream's rows
are its positive conditioning and its guidance negatives (bridge/io_names.py). The
depth graph mixes each stream's rows into one set of guided logits, samples once
and feeds the token back to all of its rows.

Streaming state (temporal graph), per layer ``i``, one ring of W + 1 slots per row::

    past.self_k.i   [N, n, W+1, h]  keys of the current and last W frames
    past.self_v.i   [N, n, W+1, h]
    past.cross_k.i  [N, n, W+1, h]  projected encoder outputs, likewise
    past.cross_v.i  [N, n, W+1, h]
    past.step       [N] int64       frames seen; slot j of a ring is valid iff j <= step

Each step writes its keys/values over the oldest slot (step mod W+1) and attends over
the ring: the current and W previous frames plus the sink, exactly the keys of upstream's
sliding-window KV cache (attention has no positions, so their order does not matter).
"""

from __future__ import annotations

import numpy as np
import onnx

from bridge import io_names as io

from ..graph import GraphBuilder
from ..kv_ring import ring_slots, ring_write
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

TOKEN_OFFSET = NUM_RESERVED_TOKENS + 1
MASK_VALUE = float(-0.7 * np.finfo(np.float32).max)
R_SOFTPLUS_0 = 1.442695041
NORM_EPS = 1e-6


# --------------------------------------------------------------------------- blocks
def rms_norm(g: GraphBuilder, x: str, scale_key: str, w: dict) -> str:
    """x * rsqrt(mean(x^2) + eps) * scale over the last axis (one fused ORT op)."""
    return g.op("SimplifiedLayerNormalization", [x, g.weight(scale_key, w[scale_key])], axis=-1, epsilon=NORM_EPS)


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


def ffn(g: GraphBuilder, x: str, prefix: str, w: dict) -> str:
    """Residual non-gated FFN with pre/post RMSNorm; the first layer's bias and
    gelu_tanh (jax.nn.gelu's default) are one fused op (com.microsoft FastGelu)."""
    h = rms_norm(g, x, f"{prefix}/pre_norm/scale", w)
    h = dense(g, h, f"{prefix}/ffn_layer1", w, bias=False)
    bias = f"{prefix}/ffn_layer1/bias"
    h = g.op("FastGelu", [h, g.weight(bias, w[bias])], domain="com.microsoft")
    h = dense(g, h, f"{prefix}/ffn_layer2", w)
    return g.add(x, rms_norm(g, h, f"{prefix}/post_norm/scale", w))


def _out_kernel(g: GraphBuilder, key: str, w: dict) -> str:
    """[d, n, h] output kernel as a [n*h, d] MatMul weight."""
    arr = w[key]
    return g.weight(key, arr.reshape(arr.shape[0], -1).T.copy())


def project_heads(g: GraphBuilder, x: str, attn: str, names: tuple[str, ...], spec: StackSpec, w: dict) -> list[str]:
    """Project x [N, d] with the ``<name>_projection`` kernels of ``attn`` to heads [N, n, 1, h] each.

    The kernels ([d, n, h]) are concatenated into one [d, len(names)*n*h] weight, so one
    MatMul (one weight read, one activation quantization under int8) makes all of them::

        x -> MatMul(Wq | Wk | Wv) -> Split -> Reshape [N, n, 1, h] each
    """
    n, h = spec.num_heads, spec.dim_per_head
    keys = [f"{attn}/{name}_projection/kernel" for name in names]
    fused = np.concatenate([w[k].reshape(w[k].shape[0], -1) for k in keys], axis=1)
    y = g.matmul(x, g.weight("|".join(keys), fused))
    parts = g.multi("Split", [y, g.ints([n * h] * len(names))], len(names), axis=-1) if len(names) > 1 else [y]
    return [g.reshape(p, [-1, n, 1, h]) for p in parts]


def scale_queries(g: GraphBuilder, q: str, attn: str, spec: StackSpec, w: dict) -> str:
    """Queries [N, n, 1, h] times 1.442695041 / sqrt(h) * softplus(per_dim_scale) (for the keys)."""
    per_dim = w[f"{attn}/per_dim_scale"]
    # softplus(per_dim_scale) is a constant of the weights: fold it at export.
    scale = (R_SOFTPLUS_0 / np.sqrt(spec.dim_per_head)) * np.logaddexp(0.0, per_dim.astype(np.float64))
    return g.mul(q, g.weight(f"{attn}/per_dim_scale[query_scale]", scale.astype(np.float32)))


def attend(
    g: GraphBuilder, q_scaled: str, q_raw: str | None, keys: str, values: str,
    valid: str | None, attn: str, w: dict,
) -> str:
    """Softmax attention of queries [N,n,1,h] over keys and values [N,n,T,h] (+ a sink).

    ``valid`` is a bool mask broadcastable to [N, n, 1, T] (None: all valid).
    Returns context [N, n, 1, h]. With a sink::

        q_raw @ sink_k --+
                         +-- concat -> softmax -> p[0] * sink_v + p[1:] @ values
        q_scaled @ keys -+   (masked)
    """
    logits = g.op("FusedMatMul", [q_scaled, keys], domain="com.microsoft", transB=1)  # [N, n, 1, T]
    if valid is not None:
        logits = g.op("Where", [valid, logits, g.const(MASK_VALUE)])
    if q_raw is None:
        return g.matmul(g.op("Softmax", [logits], axis=-1), values)
    sink_k = w[f"{attn}/sink_key_embeddings"]  # [1, n, h]
    sink_v = w[f"{attn}/sink_value_embeddings"]
    sk = g.weight(f"{attn}/sink_key_embeddings", sink_k.transpose(1, 2, 0).copy())  # [n, h, 1]
    sv = g.weight(f"{attn}/sink_value_embeddings", sink_v.transpose(1, 0, 2).copy())  # [n, 1, h]
    probs = g.op("Softmax", [g.concat([g.matmul(q_raw, sk), logits], axis=-1)], axis=-1)
    p_sink = g.slice(probs, [0], [1], [-1])
    p_keys = g.slice(probs, [1], [np.iinfo(np.int64).max], [-1])
    return g.add(g.mul(p_sink, sv), g.matmul(p_keys, values))


def attention_out(g: GraphBuilder, ctx: str, prefix: str, spec: StackSpec, w: dict) -> str:
    flat = g.reshape(ctx, [-1, spec.num_heads * spec.dim_per_head])
    return g.matmul(flat, _out_kernel(g, f"{prefix}/output_projection/kernel", w))


def residual_attention(g: GraphBuilder, x: str, prefix: str, w: dict, body) -> str:
    """x + post_norm(out_proj(body(pre_norm(x))))."""
    h = rms_norm(g, x, f"{prefix}/pre_norm/scale", w)
    h = body(h)
    return g.add(x, rms_norm(g, h, f"{prefix}/post_norm/scale", w))


# --------------------------------------------------------------------------- encoder
def build_encoder(cfg: DepthformerConfig, w: dict) -> onnx.ModelProto:
    """conditioning [N,144] raw ints -> encoded [N, E] (stateless: the body is an identity).

    ::

        cond + 7 --+-- [0:12)  + level*1031 -> Gather(mulan 12372x768) -> Sum -> Dense(768->E) --+
                   +-- [12:144) + chan offs  -> Gather(regular 1536xE) -> Mean -----------------+-> avg -> LayerNorm
    """
    g = GraphBuilder("mrt2_encoder")
    e = cfg.encoder_dims
    with g.scope("encoder"):
        cond = g.input(io.CONDITIONING, np.int64, [io.ROWS, 144])
        tokens = g.add(cond, g.const(TOKEN_OFFSET, np.int64))
        style = g.slice(tokens, [0], [NUM_LEVELS], [1])
        regular = g.slice(tokens, [NUM_LEVELS], [144], [1])

        style_idx = g.add(style, g.const(np.arange(NUM_LEVELS) * MUSICCOCA_PER_LEVEL_VOCAB, np.int64))
        table = f"{ck.MULAN}/mulan_dequantizer/embedding"
        style_emb = g.op("Gather", [g.weight(table, w[table]), style_idx], axis=0)  # [N,12,768]
        style_sum = g.op("ReduceSum", [style_emb, g.ints([1])], keepdims=0)  # [N,768]
        style_vec = dense(g, style_sum, f"{ck.MULAN}/depth_input_adapter", w, bias=False)

        offsets = np.concatenate([[0], np.cumsum(REGULAR_CHANNEL_VOCABS)[:-1]]).astype(np.int64)
        reg_idx = g.add(regular, g.const(offsets, np.int64))
        reg_table = f"{ck.REGULAR}/embedding"
        reg_emb = g.op("Gather", [g.weight(reg_table, w[reg_table]), reg_idx], axis=0)  # [N,132,E]
        reg_vec = g.op("ReduceMean", [reg_emb], axes=[1], keepdims=0)

        mixed = g.mul(g.add(style_vec, reg_vec), g.const(0.5))
        out = layer_norm(g, mixed, f"{ck.ENCODER}/encoder_ln", w)
    g.output(out, io.ENCODED, np.float32, [io.ROWS, e])
    return g.build("MRT2 streaming encoder (conditioning embedding + LayerNorm)")


# --------------------------------------------------------------------------- temporal
def token_embedding(g: GraphBuilder, tokens: str, dims: int, w: dict) -> str:
    """Shared decoder embedding, scaled by sqrt(temporal width): tokens [...] -> [..., D]."""
    emb = g.op("Gather", [g.weight(ck.EMBEDDING, w[ck.EMBEDDING]), tokens], axis=0)
    return g.mul(emb, g.const(np.float32(np.sqrt(dims))))


def windowed_attention(
    g: GraphBuilder, hx: str, kv_x: str, name: str, prefix: str, i: int,
    cfg: DepthformerConfig, w: dict, ring: tuple[str, str],
) -> str:
    """Attention of hx over the current and the W previous frames' keys/values of kv_x (+ sink).

    Keys and values live in rings of W + 1 slots, states ``<name>_k.i`` / ``<name>_v.i``
    [N, n, W+1, h]: this frame's are written over the oldest slot, then the query attends
    over the whole ring (``ring`` = (scatter index [N, n, 3], valid mask)). Attention has no
    positions (NoPE), so slot order does not matter.
    """
    t, S = cfg.temporal, cfg.max_past_horizon + 1
    shape = [io.ROWS, t.num_heads, S, t.dim_per_head]
    attn = f"{prefix}/attention"
    index, valid = ring
    if hx == kv_x:  # self-attention: one fused q|k|v projection
        qr, k, v = project_heads(g, hx, attn, ("query", "key", "value"), t, w)
    else:
        (qr,) = project_heads(g, hx, attn, ("query",), t, w)
        k, v = project_heads(g, kv_x, attn, ("key", "value"), t, w)
    qs = scale_queries(g, qr, attn, t, w)
    keys = ring_write(g, f"{name}_k.{i}", shape, k, index)
    vals = ring_write(g, f"{name}_v.{i}", shape, v, index)
    return attention_out(g, attend(g, qs, qr, keys, vals, valid, attn, w), prefix, t, w)


def temporal_layer(
    g: GraphBuilder, x: str, enc: str, i: int, cfg: DepthformerConfig, w: dict, ring: tuple[str, str]
) -> str:
    """Self-attention over past frames, cross-attention over past encoder outputs, FFN."""
    layer = f"{ck.TEMPORAL}/x_layers_{i}"
    for name, source in (("self", None), ("cross", enc)):
        prefix = f"{layer}/{name}_attention"
        with g.scope(f"temporal/layer{i}/{name}_attn"):
            x = residual_attention(
                g, x, prefix, w,
                lambda hx, name=name, source=source, prefix=prefix: windowed_attention(
                    g, hx, source or hx, name, prefix, i, cfg, w, ring),
            )
    with g.scope(f"temporal/layer{i}/ffn"):
        return ffn(g, x, f"{layer}/ffn", w)


def add_temporal(g: GraphBuilder, cfg: DepthformerConfig, w: dict, prev_tokens: str, encoded: str) -> str:
    """Temporal step on an existing builder; returns temporal_out [N, Dt]."""
    dims = cfg.temporal.model_dims
    step = g.state("step", np.int64, [io.ROWS])
    ring = ring_slots(g, step, cfg.max_past_horizon, cfg.temporal.num_heads)
    emb = token_embedding(g, prev_tokens, dims, w)  # [N, 12, D]
    x = g.op("ReduceMean", [emb], axes=[1], keepdims=0)  # [N, D]
    for i in range(cfg.temporal.num_layers):
        x = temporal_layer(g, x, encoded, i, cfg, w, ring)
    g.set_present("step", g.add(step, g.const([1], np.int64)))
    return x


def build_temporal(cfg: DepthformerConfig, w: dict) -> onnx.ModelProto:
    """prev_tokens [N,12] + encoded [N,E] + KV windows -> temporal_out [N, Dt] + KV windows."""
    g = GraphBuilder("mrt2_temporal_step")
    prev = g.input(io.PREV_TOKENS, np.int64, [io.ROWS, NUM_LEVELS])
    enc = g.input(io.ENCODED, np.float32, [io.ROWS, cfg.encoder_dims])
    out = add_temporal(g, cfg, w, prev, enc)
    g.output(out, io.TEMPORAL_OUT, np.float32, [io.ROWS, cfg.temporal.model_dims])
    rings = [f"{name}_{kv}.{i}" for i in range(cfg.temporal.num_layers) for name in ("self", "cross") for kv in "kv"]
    return g.build("MRT2 temporal decoder step with explicit sliding-window KV rings, one per row",
                   metadata={io.INPLACE_STATE_KEY: ",".join(rings)})


# --------------------------------------------------------------------------- depth
def guided_logits(g: GraphBuilder, logits: str, guidance: str, rows_shape: str) -> str:
    """Classifier-free guidance over each stream's rows: [N, V] -> [B, V].

    ::

        logits [N,V] -> [B,R,V] --+-- row 0 ----------------------------+
                                  +-- (row 0 - row r) * guidance[:, r] --+-> sum over r -> + row 0

    i.e. ``full + s_style (full - neg_style) + s_notes (full - neg_notes)`` (upstream's mix,
    magenta_rt/jax/depthformer.py ``_sample_categorical_with_temperature``); column 0 of
    ``guidance`` multiplies a zero difference, so one row per stream is plain sampling.
    """
    per_row = g.op("Reshape", [logits, g.op("Concat", [rows_shape, g.ints([CODEBOOK_SIZE])], axis=0)])
    full = g.slice(per_row, [0], [1], [1])  # [B, 1, V]
    diff = g.mul(g.op("Sub", [full, per_row]), g.op("Unsqueeze", [guidance, g.ints([2])]))
    mixed = g.add(full, g.op("ReduceSum", [diff, g.ints([1])], keepdims=1))
    return g.reshape(mixed, [-1, CODEBOOK_SIZE])


def sample_level(
    g: GraphBuilder, logits: str, level: int, temperature: str, top_k: str, gumbel: str,
) -> str:
    """Top-k then Gumbel-max on guided logits [B, 1024]; returns model tokens [B] of ``level``.

    Each stream keeps logits >= its own k-th largest, then argmax(logits + T * gumbel),
    so T = 0 is exact greedy.
    """
    k = g.op("Clip", [top_k, g.const(1, np.int64), g.const(CODEBOOK_SIZE, np.int64)])  # [B]
    k_max = g.op("ReduceMax", [k], keepdims=1)  # [1]
    top_values = g.op("TopK", [logits, k_max], outputs=2, axis=-1, largest=1, sorted=1)[0]
    kth = g.op("GatherElements", [top_values, g.op("Unsqueeze", [g.op("Sub", [k, g.const(1, np.int64)]),
                                                                    g.ints([1])])], axis=1)  # [B, 1]
    kept = g.op("Where", [g.op("GreaterOrEqual", [logits, kth]), logits, g.const(MASK_VALUE)])
    noise = g.op("Gather", [gumbel, g.const(level, np.int64)], axis=1)  # [B, 1024]
    score = g.add(kept, g.mul(noise, g.op("Unsqueeze", [temperature, g.ints([1])])))
    lo = NUM_RESERVED_TOKENS + level * CODEBOOK_SIZE
    return g.add(g.op("ArgMax", [score], axis=-1, keepdims=0), g.const(lo, np.int64))  # [B]


def add_depth(
    g: GraphBuilder, cfg: DepthformerConfig, w: dict, temporal_out: str, guidance: str,
    temperature: str, top_k: str, gumbel: str, forced: str, force_mask: str,
) -> tuple[str, str]:
    """The 12-level depth loop, unrolled; returns (tokens [B, 12] int64, logits [B, 12, 1024]).

    Level k: depth input (temporal output for k=0, else the embedded token of
    level k-1, the same token in every row of a stream) -> adapter -> depth
    transformer over levels 0..k -> final LN -> logits of level k's slice only
    -> soft cap -> guidance mix over the stream's rows -> top-k -> Gumbel-max.
    """
    t, dp = cfg.temporal, cfg.depth
    kernel = w[f"{ck.DEPTH}/to_logits/kernel"]
    bias = w[f"{ck.DEPTH}/to_logits/bias"]
    rows_shape = g.op("Shape", [guidance])  # [B, R]
    keys: list[list[str]] = [[] for _ in range(dp.num_layers)]
    values: list[list[str]] = [[] for _ in range(dp.num_layers)]
    tokens, logits_all = [], []
    x_in = temporal_out
    for level in range(NUM_LEVELS):
        x = x_in
        if cfg.has_depth_adapter:
            with g.scope(f"depth/level{level}/adapter"):
                x = dense(g, x, f"{ck.DEPTH}/depth_input_adapter", w, bias=False)
        for i in range(dp.num_layers):
            layer = f"{ck.DEPTH}/transformer/x_layers_{i}"

            def self_attn(hx: str, i=i, layer=layer) -> str:
                attn = f"{layer}/self_attention/attention"
                q, k, v = project_heads(g, hx, attn, ("query", "key", "value"), dp, w)
                qs = scale_queries(g, q, attn, dp, w)
                keys[i].append(k)
                values[i].append(v)
                kt = keys[i][0] if len(keys[i]) == 1 else g.concat(keys[i], axis=2)
                vt = values[i][0] if len(values[i]) == 1 else g.concat(values[i], axis=2)
                return attention_out(g, attend(g, qs, None, kt, vt, None, attn, w), f"{layer}/self_attention", dp, w)

            with g.scope(f"depth/level{level}/layer{i}/self_attn"):
                x = residual_attention(g, x, f"{layer}/self_attention", w, self_attn)
            with g.scope(f"depth/level{level}/layer{i}/ffn"):
                x = ffn(g, x, f"{layer}/ffn", w)
        with g.scope(f"depth/level{level}/logits"):
            x = layer_norm(g, x, f"{ck.DEPTH}/final_ln", w)
            lo = NUM_RESERVED_TOKENS + level * CODEBOOK_SIZE
            wk = g.weight(f"{ck.DEPTH}/to_logits/kernel[level{level}]", kernel[:, lo:lo + CODEBOOK_SIZE])
            bk = g.weight(f"{ck.DEPTH}/to_logits/bias[level{level}]", bias[lo:lo + CODEBOOK_SIZE])
            logits = g.add(g.matmul(x, wk), bk)  # [N, 1024]
            logits = g.mul(g.op("Tanh", [g.mul(logits, g.const(1.0 / SOFT_CAP))]), g.const(SOFT_CAP))
            logits = guided_logits(g, logits, guidance, rows_shape)  # [B, 1024]
            logits_all.append(g.op("Unsqueeze", [logits, g.ints([1])]))
        with g.scope(f"depth/level{level}/sample"):
            sampled = sample_level(g, logits, level, temperature, top_k, gumbel)
            lvl = g.const(level, np.int64)
            token = g.op("Where", [g.op("Gather", [force_mask, lvl], axis=1), g.op("Gather", [forced, lvl], axis=1),
                                   sampled])  # [B]
            tokens.append(g.op("Unsqueeze", [token, g.ints([1])]))
        if level + 1 < NUM_LEVELS:
            per_row = g.op("Reshape", [g.op("Expand", [tokens[-1], rows_shape]), g.ints([-1])])  # [N]
            x_in = token_embedding(g, per_row, t.model_dims, w)  # [N, Dt]
    return g.concat(tokens, axis=1), g.concat(logits_all, axis=1)


def build_depth(cfg: DepthformerConfig, w: dict) -> onnx.ModelProto:
    """temporal_out of every row + sampling inputs -> 12 model tokens and guided logits per stream."""
    g = GraphBuilder("mrt2_depth_decoder")
    tin = g.input(io.TEMPORAL_OUT, np.float32, [io.ROWS, cfg.temporal.model_dims])
    guidance = g.input(io.GUIDANCE, np.float32, [io.STREAMS, io.ROWS_PER_STREAM])
    temp = g.input(io.TEMPERATURE, np.float32, [io.STREAMS])
    top_k = g.input(io.TOP_K, np.int64, [io.STREAMS])
    gumbel = g.input(io.GUMBEL, np.float32, [io.STREAMS, NUM_LEVELS, CODEBOOK_SIZE])
    forced = g.input(io.FORCED_TOKENS, np.int64, [io.STREAMS, NUM_LEVELS])
    mask = g.input(io.FORCE_MASK, np.bool_, [io.STREAMS, NUM_LEVELS])
    tokens, logits = add_depth(g, cfg, w, tin, guidance, temp, top_k, gumbel, forced, mask)
    g.output(tokens, io.TOKENS, np.int64, [io.STREAMS, NUM_LEVELS])
    g.output(logits, io.LOGITS, np.float32, [io.STREAMS, NUM_LEVELS, CODEBOOK_SIZE])
    return g.build("MRT2 depth decoder: 12 RVQ levels, guided soft-capped logits, top-k Gumbel-max sampling")
