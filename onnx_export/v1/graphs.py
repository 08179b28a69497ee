"""ONNX graphs of the Magenta RT v1 LM: encoder, temporal step, depth decoder with sampling.

Upstream (commit ``eef91d4^``): ``magenta_rt/system.py`` (``MagentaRTT5X.generate_chunk``),
``magenta_rt/depthformer/{modules,decode,model}.py``, ``configs/mrt_merged_base.gin``, on
flaxformer's T5 blocks (``t5_architecture``, ``dense_attention``, ``relative_position_biases``)
and t5x's ``decoding.temperature_sample``. How one 2 s chunk is decoded there:

- Encoder (a plain flaxformer T5 ``Encoder``, not ``DepthformerEncoder``): 1006 tokens, token
  embedding + sinusoidal ``FixedEmbed`` positions (no relative biases), pre-norm layers
  ``x + Attn(RMS(x))``, ``x + MLP(RMS(x))``, final RMSNorm. RMSNorm is
  ``x * rsqrt(mean(x^2) + 1e-6) * scale``; attention has no biases and no query scaling
  (T5 folds it into the init); the MLP is gated GELU ``wo(gelu_tanh(wi_0 x) * wi_1 x)``.
  Every input id is >= 1 (MASK), so the padding masks are all ones.
- Decoder (``DepthformerDecoder``, no absolute positions), decoding 800 tokens one per step
  ``s`` from a fresh cache; the token fed at step 0 is BOS = 0, then the token sampled at
  ``s - 1``. Frame ``f`` = steps ``16f .. 16f+15``, level ``k = s % 16``:

  * temporal stack (``PeriodicCallableTemporalDecoder``), run at ``k = 0`` only: its input is
    the mean of the embeddings of the last 16 fed tokens (frame ``f - 1``'s levels; for
    ``f = 0`` sixteen copies of the BOS embedding). Layers: causal self-attention over the
    frames so far with a T5 relative bias (128 buckets, max distance 128, one-directional:
    bucket = f - j here), cross-attention over the encoder output (no mask, no bias), MLP.
    No final norm: its output goes to the depth stack.
  * depth stack (``PeriodicResetDepthDecoder``), cache reset every frame: level 0's input is
    the temporal output, level ``k``'s the embedding of level ``k - 1``'s token; causal
    self-attention over the frame's levels with its own relative bias (16 buckets, max
    distance 16), MLP; then the decoder's final RMSNorm and the logits over the whole
    vocabulary (29824 ids, no slicing to the level's range).
  * classifier-free guidance (``decode_with_classifier_free_guidance``) on a 2-row batch
    (row 0 prompt, row 1 prompt with the 6 style tokens MASKed):
    ``logits = (1 + w) * row0 - w * row1``; the sampled token is copied to both rows. With
    ``w = 0`` nothing is mixed and row 0 samples from its own logits (so one row suffices).
  * ``temperature_sample``: for ``T > 1e-4`` top-k (k = 0: no cutoff) on ``logits / T``, then
    a categorical draw; else greedy argmax of the raw logits. Token 1 is EOS: every later
    token of the chunk becomes 0.
  * one PRNG key per chunk, ``PRNGKey(seed + chunk_index)``, split once per step.

Here: the encoder graph also projects the encoder output to every temporal layer's
cross-attention keys and values (the decoder recomputes them at every step upstream; they are
fixed for the chunk). The temporal graph is one frame step with explicit KV state
(``past.self_k.i`` [rows, heads, 50, head_dim], written at slot ``step``). The depth graph runs
a whole frame: 16 levels unrolled (their KV cache lives inside the graph, as upstream resets it
every frame), guidance, top-k and Gumbel-max sampling ``argmax(topk_logits + T * gumbel)``
with the noise an input (``[1, 16, K]``, K >= the effective top-k): the same distribution as
upstream's categorical draw, exact greedy at T = 0, reproducible from a seed. Sampled tokens
therefore differ from upstream's (JAX's threefry stream is not reproduced); greedy tokens do
not. EOS masking is the engine's (``bridge/v1/engine.py``).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import onnx

from bridge import io_names as io
from bridge.v1 import io_names as v1io

from ..graph import GraphBuilder
from ..kv_ring import ring_slots, ring_write
from . import config as v1

NORM_EPS = 1e-6
MASK_BIAS = -1e10  # flaxformer's additive bias for masked attention logits

EMBEDDING = "token_embedder/embedding"
ENCODER = "encoder"
TEMPORAL = "decoder/decoder/temporal_decoder"
DEPTH = "decoder/decoder/depth_decoder"
TEMPORAL_RELPOS = f"{TEMPORAL}/relpos_bias/rel_embedding"
DEPTH_RELPOS = f"{DEPTH}/relpos_bias_depth/rel_embedding"
DECODER_NORM = "decoder/decoder_norm/scale"
LOGITS_KERNEL = "decoder/logits_dense/kernel"

Weights = Mapping[str, np.ndarray]


# --------------------------------------------------------------------------- tables
def relative_position_bucket(relative_position: np.ndarray, bidirectional: bool, num_buckets: int,
                             max_distance: int) -> np.ndarray:
    """T5's bucket of ``memory - query`` positions (flaxformer RelativePositionBiases, numpy path)."""
    ret = 0
    n = -relative_position
    if bidirectional:
        num_buckets //= 2
        ret += (n < 0).astype(np.int32) * num_buckets
        n = np.abs(n)
    else:
        n = np.maximum(n, 0)
    max_exact = num_buckets // 2
    is_small = n < max_exact
    val_if_large = max_exact + (
        np.log(n.astype(np.float32) / max_exact + np.finfo(np.float32).eps)
        / np.log(max_distance / max_exact) * (num_buckets - max_exact)
    ).astype(np.int32)
    val_if_large = np.minimum(val_if_large, num_buckets - 1)
    return ret + np.where(is_small, n, val_if_large)


def causal_bias_table(rel_embedding: np.ndarray, length: int, max_distance: int) -> np.ndarray:
    """[length queries, heads, length keys] one-directional relative bias of each query position."""
    heads, buckets = rel_embedding.shape
    pos = np.arange(length, dtype=np.int32)
    bucket = relative_position_bucket(pos[None, :] - pos[:, None], False, buckets, max_distance)
    return np.ascontiguousarray(rel_embedding[:, bucket].transpose(1, 0, 2).astype(np.float32))


def sinusoid_positions(length: int, features: int) -> np.ndarray:
    """flaxformer ``initializers.sinusoidal`` (min scale 1, max scale 1e4): [length, features]."""
    pe = np.zeros((length, features), np.float32)
    position = np.arange(0, length)[:, None]
    scale_factor = -np.log(10000.0 / 1.0) / (features // 2 - 1)
    div_term = 1.0 * np.exp(np.arange(0, features // 2) * scale_factor)
    pe[:, : features // 2] = np.sin(position * div_term)
    pe[:, features // 2: 2 * (features // 2)] = np.cos(position * div_term)
    return pe


# --------------------------------------------------------------------------- blocks
def rms_norm(g: GraphBuilder, x: str, key: str, w: Weights) -> str:
    """T5LayerNorm ``x * rsqrt(mean(x^2) + 1e-6) * scale`` (one fused ORT op)."""
    return g.op("SimplifiedLayerNormalization", [x, g.weight(key, w[key])], axis=-1, epsilon=NORM_EPS)


def fused_projection(g: GraphBuilder, x: str, keys: list[str], w: Weights) -> list[str]:
    """``x @ [W_1 | W_2 | ...]`` as one MatMul (one weight read), split back into the parts."""
    kernels = [w[k].reshape(w[k].shape[0], -1) for k in keys]
    y = g.matmul(x, g.weight("|".join(keys), np.concatenate(kernels, axis=1)))
    if len(keys) == 1:
        return [y]
    return g.multi("Split", [y, g.ints([k.shape[1] for k in kernels])], len(keys), axis=-1)


def mlp(g: GraphBuilder, x: str, prefix: str, w: Weights) -> str:
    """``x + wo(gelu_tanh(wi_0 h) * wi_1 h)``, ``h = RMS(x)`` (flaxformer MlpBlock, ('gelu', 'linear'))."""
    h = rms_norm(g, x, f"{prefix}/pre_mlp_layer_norm/scale", w)
    gate, lin = fused_projection(g, h, [f"{prefix}/mlp/wi_0/kernel", f"{prefix}/mlp/wi_1/kernel"], w)
    act = g.op("FastGelu", [gate], domain="com.microsoft")
    out = g.matmul(g.mul(act, lin), g.weight(f"{prefix}/mlp/wo/kernel", w[f"{prefix}/mlp/wo/kernel"]))
    return g.add(x, out)


def attention_output(g: GraphBuilder, ctx: str, attn: str, size: v1.V1Size, w: Weights) -> str:
    """Context [N, n, 1, h] -> [N, n*h] @ out kernel."""
    flat = g.reshape(ctx, [-1, size.num_heads * size.head_dim])
    return g.matmul(flat, g.weight(f"{attn}/out/kernel", w[f"{attn}/out/kernel"]))


def step_heads(g: GraphBuilder, parts: list[str], size: v1.V1Size) -> list[str]:
    """Per-step projections [N, n*h] -> heads [N, n, 1, h]."""
    return [g.reshape(p, [-1, size.num_heads, 1, size.head_dim]) for p in parts]


def self_attention_heads(g: GraphBuilder, x: str, layer: str, size: v1.V1Size, w: Weights) -> list[str]:
    """A decoder layer's step queries, keys and values [N, n, 1, h] of ``RMS(x)`` (one fused MatMul)."""
    attn = f"{layer}/self_attention"
    hx = rms_norm(g, x, f"{layer}/pre_self_attention_layer_norm/scale", w)
    return step_heads(g, fused_projection(g, hx, [f"{attn}/{p}/kernel" for p in ("query", "key", "value")], w), size)


def softmax_context(g: GraphBuilder, q: str, keys: str, values: str, bias: str | None = None,
                    valid: str | None = None) -> str:
    """``softmax(q k^T + bias)`` (masked where not ``valid``) @ values; q [N,n,Q,h], keys [N,n,T,h]."""
    logits = g.op("FusedMatMul", [q, keys], domain="com.microsoft", transB=1)
    if bias is not None:
        logits = g.add(logits, bias)
    if valid is not None:
        logits = g.op("Where", [valid, logits, g.const(MASK_BIAS)])
    return g.matmul(g.op("Softmax", [logits], axis=-1), values)


def token_embedding(g: GraphBuilder, tokens: str, w: Weights) -> str:
    """Shared token embedding (no scaling): ids [...] -> [..., D]."""
    return g.op("Gather", [g.weight(EMBEDDING, w[EMBEDDING]), tokens], axis=0)


# --------------------------------------------------------------------------- encoder
def build_encoder(size: v1.V1Size, w: Weights) -> onnx.ModelProto:
    """encoder_tokens [rows, 1006] -> cross_k.i / cross_v.i [rows, heads, 1006, head_dim] per temporal layer.

    ::

        tokens -> Gather(embedding) + sinusoid -> L x [x + Attn(RMS x), x + MLP(RMS x)] -> RMS
          -> MatMul(all temporal layers' cross K|V kernels) -> Split -> [rows, n, 1006, h] each
    """
    g = GraphBuilder("v1_encoder")
    n, h, length = size.num_heads, size.head_dim, v1.ENCODER_LENGTH
    tokens = g.input(v1io.ENCODER_TOKENS, np.int64, [io.ROWS, length])
    with g.scope("encoder/embed"):
        pos = g.weight("encoder/position_embedder[sinusoid]", sinusoid_positions(length, size.embed_dim))
        x = g.add(token_embedding(g, tokens, w), pos)  # [R, L, D]

    def heads(t: str) -> str:  # [R, L, n*h] -> [R, n, L, h]
        return g.op("Transpose", [g.reshape(t, [0, 0, n, h])], perm=[0, 2, 1, 3])

    for i in range(size.num_encoder_layers):
        layer = f"{ENCODER}/layers_{i}"
        attn = f"{layer}/attention"
        with g.scope(f"encoder/layer{i}/attn"):
            hx = rms_norm(g, x, f"{layer}/pre_attention_layer_norm/scale", w)
            q, k, v = (heads(t) for t in fused_projection(g, hx, [f"{attn}/{p}/kernel" for p in ("query", "key", "value")], w))
            ctx = g.op("Transpose", [softmax_context(g, q, k, v)], perm=[0, 2, 1, 3])  # [R, L, n, h]
            out = g.matmul(g.reshape(ctx, [0, 0, n * h]), g.weight(f"{attn}/out/kernel", w[f"{attn}/out/kernel"]))
            x = g.add(x, out)
        with g.scope(f"encoder/layer{i}/mlp"):
            x = mlp(g, x, layer, w)
    with g.scope("encoder/cross_kv"):
        enc = rms_norm(g, x, f"{ENCODER}/encoder_norm/scale", w)
        keys = []
        for i in range(size.num_temporal_layers):
            attn = f"{TEMPORAL}/layers_{i}/encoder_decoder_attention"
            keys += [f"{attn}/key/kernel", f"{attn}/value/kernel"]
        parts = fused_projection(g, enc, keys, w)
    for i in range(size.num_temporal_layers):
        shape = [io.ROWS, n, length, h]
        g.output(heads(parts[2 * i]), v1io.cross_key(i), np.float32, shape)
        g.output(heads(parts[2 * i + 1]), v1io.cross_value(i), np.float32, shape)
    return g.build("Magenta RT v1 encoder: 1006 context+style tokens -> per-layer cross-attention K/V")


# --------------------------------------------------------------------------- temporal
def build_temporal(size: v1.V1Size, w: Weights) -> onnx.ModelProto:
    """One frame of the temporal stack: prev_tokens [rows, 16] + KV state -> temporal_out [rows, D].

    ::

        prev_tokens -> Gather(embedding) -> mean over 16 levels -> for each layer:
            x + SelfAttn(RMS x)   keys/values written at slot ``step`` of [rows, n, 50, h],
                                  + relative bias row ``step``, slots > step masked
            x + CrossAttn(RMS x)  over cross_k.i / cross_v.i (inputs from the encoder graph)
            x + MLP(RMS x)
    """
    g = GraphBuilder("v1_temporal_step")
    n, h, frames = size.num_heads, size.head_dim, v1.CHUNK_FRAMES
    prev = g.input(io.PREV_TOKENS, np.int64, [io.ROWS, v1.DECODER_LEVELS])
    cross = [(g.input(v1io.cross_key(i), np.float32, [io.ROWS, n, v1.ENCODER_LENGTH, h]),
              g.input(v1io.cross_value(i), np.float32, [io.ROWS, n, v1.ENCODER_LENGTH, h]))
             for i in range(size.num_temporal_layers)]
    step = g.state("step", np.int64, [io.ROWS])
    with g.scope("temporal/input"):
        ring = ring_slots(g, step, frames - 1, n)  # slot = step (the chunk has exactly 50 frames)
        table = causal_bias_table(w[TEMPORAL_RELPOS], frames, v1.TEMPORAL_RELPOS_MAX_DISTANCE)
        bias = g.op("Unsqueeze", [g.op("Gather", [g.weight(f"{TEMPORAL_RELPOS}[causal_table]", table), step], axis=0),
                                  g.ints([2])])  # [R, n, 1, 50]
        x = g.op("ReduceMean", [token_embedding(g, prev, w)], axes=[1], keepdims=0)  # [R, D]
    state_shape = [io.ROWS, n, frames, h]
    for i in range(size.num_temporal_layers):
        layer = f"{TEMPORAL}/layers_{i}"
        with g.scope(f"temporal/layer{i}/self_attn"):
            attn, (q, k, v) = f"{layer}/self_attention", self_attention_heads(g, x, layer, size, w)
            keys = ring_write(g, f"self_k.{i}", state_shape, k, ring[0])
            values = ring_write(g, f"self_v.{i}", state_shape, v, ring[0])
            x = g.add(x, attention_output(g, softmax_context(g, q, keys, values, bias, ring[1]), attn, size, w))
        with g.scope(f"temporal/layer{i}/cross_attn"):
            attn = f"{layer}/encoder_decoder_attention"
            hx = rms_norm(g, x, f"{layer}/pre_cross_attention_layer_norm/scale", w)
            (q,) = step_heads(g, fused_projection(g, hx, [f"{attn}/query/kernel"], w), size)
            x = g.add(x, attention_output(g, softmax_context(g, q, *cross[i]), attn, size, w))
        with g.scope(f"temporal/layer{i}/mlp"):
            x = mlp(g, x, layer, w)
    g.output(x, io.TEMPORAL_OUT, np.float32, [io.ROWS, size.embed_dim])
    g.set_present("step", g.add(step, g.const([1], np.int64)))
    rings = [f"self_{kv}.{i}" for i in range(size.num_temporal_layers) for kv in "kv"]
    return g.build("Magenta RT v1 temporal step (one frame) with explicit KV state",
                   metadata={io.INPLACE_STATE_KEY: ",".join(rings)})


# --------------------------------------------------------------------------- depth
def guided_logits(g: GraphBuilder, logits: str, guidance: str) -> str:
    """``(1 + w) * row0 - w * row_last``: [rows, V] -> [1, V] (one row: w must be 0, giving row 0)."""
    pos = g.slice(logits, [0], [1], [0])
    neg = g.slice(logits, [-1], [np.iinfo(np.int64).max], [0])
    w = g.op("Unsqueeze", [guidance, g.ints([1])])  # [1, 1]
    return g.op("Sub", [g.mul(pos, g.add(w, g.const(1.0))), g.mul(neg, w)])


def sample_token(g: GraphBuilder, logits: str, level: int, temperature: str, top_k: str, gumbel: str) -> str:
    """Top-k then Gumbel-max on guided logits [1, V]: argmax over the k best of ``logit + T * gumbel``.

    k = top_k, or the whole vocabulary when top_k <= 0 (t5x: no cutoff); the noise row of
    ``level`` must hold at least k values. T = 0 picks the top logit (ties: the lowest id).
    """
    vocab = g.const([v1.NUM_EMBEDDINGS], np.int64)
    k = g.op("Where", [g.op("Greater", [top_k, g.const([0], np.int64)]), g.op("Min", [top_k, vocab]), vocab])
    values, indices = g.op("TopK", [logits, k], outputs=2, axis=-1, largest=1, sorted=1)  # [1, k]
    noise = g.op("Gather", [gumbel, g.const(level, np.int64)], axis=1)  # [1, K]
    noise = g.op("Slice", [noise, g.ints([0]), k, g.ints([1])])  # [1, k]
    score = g.add(values, g.mul(noise, g.op("Unsqueeze", [temperature, g.ints([1])])))
    best = g.op("ArgMax", [score], axis=-1, keepdims=1)  # [1, 1]
    return g.op("Squeeze", [g.op("GatherElements", [indices, best], axis=1), g.ints([1])])  # [1]


def build_depth(size: v1.V1Size, w: Weights, *, emit_logits: bool = False) -> onnx.ModelProto:
    """One frame of the depth stack with sampling: temporal_out [rows, D] -> tokens [1, 16].

    Level k (unrolled, KV cache local to the frame)::

        input (temporal_out for k = 0, else Embed(token k-1) in every row)
          -> 4 x [x + SelfAttn(RMS x) over levels 0..k (+ depth bias), x + MLP(RMS x)]
          -> RMS(decoder_norm) -> logits [rows, 29824] -> guidance -> top-k Gumbel-max -> token k

    ``emit_logits`` adds the guided logits [1, 16, vocab] as an output (tests).
    """
    g = GraphBuilder("v1_depth_decoder")
    levels = v1.DECODER_LEVELS
    tin = g.input(io.TEMPORAL_OUT, np.float32, [io.ROWS, size.embed_dim])
    guidance = g.input(io.GUIDANCE, np.float32, [1])
    temperature = g.input(io.TEMPERATURE, np.float32, [1])
    top_k = g.input(io.TOP_K, np.int64, [1])
    gumbel = g.input(io.GUMBEL, np.float32, [1, levels, "noise"])
    rows = g.op("Slice", [g.op("Shape", [tin]), g.ints([0]), g.ints([1]), g.ints([0])])  # [1]
    table = causal_bias_table(w[DEPTH_RELPOS], levels, v1.DEPTH_RELPOS_MAX_DISTANCE)  # [16, n, 16]
    logits_kernel = g.weight(LOGITS_KERNEL, w[LOGITS_KERNEL])
    cache: list[tuple[list[str], list[str]]] = [([], []) for _ in range(size.num_depth_layers)]
    tokens, all_logits = [], []
    x_in = tin
    for level in range(levels):
        x = x_in
        bias = g.weight(f"{DEPTH_RELPOS}[level{level}]", table[level, :, None, : level + 1][None])  # [1, n, 1, k+1]
        for i in range(size.num_depth_layers):
            layer = f"{DEPTH}/depth_layers_{i}"
            with g.scope(f"depth/level{level}/layer{i}/self_attn"):
                attn, (q, k, v) = f"{layer}/self_attention", self_attention_heads(g, x, layer, size, w)
                cache[i][0].append(k)
                cache[i][1].append(v)
                keys = k if level == 0 else g.concat(cache[i][0], axis=2)
                values = v if level == 0 else g.concat(cache[i][1], axis=2)
                x = g.add(x, attention_output(g, softmax_context(g, q, keys, values, bias), attn, size, w))
            with g.scope(f"depth/level{level}/layer{i}/mlp"):
                x = mlp(g, x, layer, w)
        with g.scope(f"depth/level{level}/logits"):
            logits = g.matmul(rms_norm(g, x, DECODER_NORM, w), logits_kernel)  # [R, V]
            guided = guided_logits(g, logits, guidance)  # [1, V]
            if emit_logits:
                all_logits.append(g.op("Unsqueeze", [guided, g.ints([1])]))
        with g.scope(f"depth/level{level}/sample"):
            token = sample_token(g, guided, level, temperature, top_k, gumbel)  # [1]
            tokens.append(g.op("Unsqueeze", [token, g.ints([1])]))
        if level + 1 < levels:
            x_in = token_embedding(g, g.op("Expand", [token, rows]), w)  # [R, D]
    g.output(g.concat(tokens, axis=1), io.TOKENS, np.int64, [1, levels])
    if emit_logits:
        g.output(g.concat(all_logits, axis=1), v1io.CHUNK_LOGITS, np.float32, [1, levels, v1.NUM_EMBEDDINGS])
    return g.build("Magenta RT v1 depth decoder: 16 levels, guidance, top-k Gumbel-max sampling")
