"""Residual vector quantization of style embeddings (12 levels x 1024 codes).

Level k picks the code nearest (squared Euclidean; first index on ties) to
the residual left by levels 0..k-1, then subtracts it.
"""

from __future__ import annotations

import numpy as np


def _check(codebooks: np.ndarray) -> np.ndarray:
    cb = np.asarray(codebooks, np.float32)
    if cb.ndim != 3:
        raise ValueError(f"codebooks: expected [levels, codes, dim], got shape {cb.shape}")
    return cb


def rvq_tokenize(embeddings: np.ndarray, codebooks: np.ndarray) -> np.ndarray:
    """Tokens ``int32 [..., levels]`` for embeddings ``[..., dim]``."""
    cb = _check(codebooks)
    emb = np.asarray(embeddings, np.float32)
    if emb.shape[-1] != cb.shape[2]:
        raise ValueError(f"embedding dim {emb.shape[-1]} != codebook dim {cb.shape[2]}")
    lead = emb.shape[:-1]
    residual = emb.reshape(-1, cb.shape[2]).copy()
    tokens = np.empty((residual.shape[0], cb.shape[0]), np.int32)
    for k, book in enumerate(cb):
        # |r - c|^2 = |r|^2 - 2 r.c + |c|^2; |r|^2 is constant per row
        dist = np.einsum("cd,cd->c", book, book)[None, :] - 2.0 * residual @ book.T
        tokens[:, k] = np.argmin(dist, axis=1)
        residual -= book[tokens[:, k]]
    return tokens.reshape(lead + (cb.shape[0],))


def rvq_decode(tokens: np.ndarray, codebooks: np.ndarray) -> np.ndarray:
    """Sum of the chosen codes: the quantized embedding ``[..., dim]``."""
    cb = _check(codebooks)
    tok = np.asarray(tokens, np.int64)
    if tok.shape[-1] != cb.shape[0]:
        raise ValueError(f"expected {cb.shape[0]} tokens per embedding, got {tok.shape[-1]}")
    if (tok < 0).any() or (tok >= cb.shape[1]).any():
        raise ValueError(f"tokens must be in 0..{cb.shape[1] - 1}")
    return sum(cb[k][tok[..., k]] for k in range(cb.shape[0]))
