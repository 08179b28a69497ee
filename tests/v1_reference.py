"""A plain numpy v1 LM decode, written from upstream's full-sequence (training-mode) path.

Independent of the ONNX graphs' step structure: the temporal stack runs over all frames at once
with a causal mask (``modules._to_temporal_embedded_inputs``), the depth stack over all 16 levels
of a frame with a causal mask (``_to_depth_embedded_inputs``), re-run after each sampled token.
Slow (quadratic), fine for the tiny size. Used to check the exported graphs' logits and greedy
tokens; the golden files from upstream's JAX oracle check both against the real thing.
"""

from __future__ import annotations

import numpy as np

from onnx_export.v1 import config as v1
from onnx_export.v1.graphs import (
    DECODER_NORM,
    DEPTH,
    DEPTH_RELPOS,
    EMBEDDING,
    LOGITS_KERNEL,
    TEMPORAL,
    TEMPORAL_RELPOS,
    causal_bias_table,
    sinusoid_positions,
)


def _rms(x, scale):
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + 1e-6) * scale


def _gelu(x):
    return 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x**3)))


def _softmax(x):
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


class Reference:
    def __init__(self, size: v1.V1Size, w: dict[str, np.ndarray]) -> None:
        self.s, self.w = size, {k: np.asarray(a, np.float64) for k, a in w.items()}

    def _attn(self, xq, xkv, prefix, bias=None):
        s, w = self.s, self.w
        n, h = s.num_heads, s.head_dim
        q = (xq @ w[f"{prefix}/query/kernel"]).reshape(*xq.shape[:-1], n, h)
        k = (xkv @ w[f"{prefix}/key/kernel"]).reshape(*xkv.shape[:-1], n, h)
        v = (xkv @ w[f"{prefix}/value/kernel"]).reshape(*xkv.shape[:-1], n, h)
        logits = np.einsum("...qnh,...knh->...nqk", q, k)
        if bias is not None:
            logits = logits + bias
        ctx = np.einsum("...nqk,...knh->...qnh", _softmax(logits), v)
        return ctx.reshape(*ctx.shape[:-2], n * h) @ w[f"{prefix}/out/kernel"]

    def _mlp(self, x, p):
        w = self.w
        hx = _rms(x, w[f"{p}/pre_mlp_layer_norm/scale"])
        return x + (_gelu(hx @ w[f"{p}/mlp/wi_0/kernel"]) * (hx @ w[f"{p}/mlp/wi_1/kernel"])) @ w[f"{p}/mlp/wo/kernel"]

    def encode(self, tokens: np.ndarray) -> np.ndarray:
        """tokens [R, 1006] -> encoded [R, 1006, D]."""
        s, w = self.s, self.w
        x = w[EMBEDDING][tokens] + sinusoid_positions(tokens.shape[1], s.embed_dim)
        for i in range(s.num_encoder_layers):
            p = f"encoder/layers_{i}"
            hx = _rms(x, w[f"{p}/pre_attention_layer_norm/scale"])
            x = x + self._attn(hx, hx, f"{p}/attention")
            x = self._mlp(x, p)
        return _rms(x, w["encoder/encoder_norm/scale"])

    def _causal(self, rel, length, max_distance):
        table = causal_bias_table(rel, length, max_distance).transpose(1, 0, 2)  # [n, q, k]
        return np.where(np.tril(np.ones((length, length), bool)), table, -1e10)

    def temporal(self, frame_inputs: np.ndarray, encoded: np.ndarray) -> np.ndarray:
        """frame_inputs [R, F, D] (mean-pooled) -> temporal outputs [R, F, D], causal over F."""
        s, w = self.s, self.w
        bias = self._causal(w[TEMPORAL_RELPOS], frame_inputs.shape[1], v1.TEMPORAL_RELPOS_MAX_DISTANCE)
        x = frame_inputs
        for i in range(s.num_temporal_layers):
            p = f"{TEMPORAL}/layers_{i}"
            hx = _rms(x, w[f"{p}/pre_self_attention_layer_norm/scale"])
            x = x + self._attn(hx, hx, f"{p}/self_attention", bias)
            hx = _rms(x, w[f"{p}/pre_cross_attention_layer_norm/scale"])
            x = x + self._attn(hx, encoded, f"{p}/encoder_decoder_attention")
            x = self._mlp(x, p)
        return x

    def depth_logits(self, inputs: np.ndarray) -> np.ndarray:
        """inputs [R, L, D] (temporal out, then embeddings of levels 0..L-2) -> logits [R, L, V]."""
        s, w = self.s, self.w
        bias = self._causal(w[DEPTH_RELPOS], inputs.shape[1], v1.DEPTH_RELPOS_MAX_DISTANCE)
        x = inputs
        for i in range(s.num_depth_layers):
            p = f"{DEPTH}/depth_layers_{i}"
            hx = _rms(x, w[f"{p}/pre_self_attention_layer_norm/scale"])
            x = x + self._attn(hx, hx, f"{p}/self_attention", bias)
            x = self._mlp(x, p)
        return _rms(x, w[DECODER_NORM]) @ w[LOGITS_KERNEL]

    def greedy_chunk(self, encoder_tokens: np.ndarray, guidance: float, frames: int = v1.CHUNK_FRAMES):
        """Greedy decode of ``frames`` frames: (tokens [frames, 16], guided logits [frames, 16, V])."""
        w = self.w
        encoded = self.encode(encoder_tokens)
        rows = encoded.shape[0]
        emb = w[EMBEDDING]
        tokens = np.zeros((frames, v1.DECODER_LEVELS), np.int64)
        all_logits = np.zeros((frames, v1.DECODER_LEVELS, emb.shape[0]))
        frame_inputs = [emb[0]]
        for f in range(frames):
            t_in = np.broadcast_to(np.stack(frame_inputs), (rows, f + 1, emb.shape[1]))
            t_out = self.temporal(t_in, encoded)[:, -1]
            depth_in = [t_out]
            for k in range(v1.DECODER_LEVELS):
                logits = self.depth_logits(np.stack(depth_in, axis=1))[:, -1]
                guided = logits[0] if rows == 1 else (1 + guidance) * logits[0] - guidance * logits[1]
                all_logits[f, k] = guided
                tokens[f, k] = int(np.argmax(guided))
                depth_in.append(np.broadcast_to(emb[tokens[f, k]], t_out.shape))
            frame_inputs.append(emb[tokens[f]].mean(0))
        return tokens, all_logits
