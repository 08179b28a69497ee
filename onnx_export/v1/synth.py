"""Synthetic Magenta RT v1 checkpoints: random weights in upstream's exact t5x layout, deterministic from a seed.

The values follow the initialisers in upstream's gin (``mrt_merged_base.gin``): token
embedding N(0, 1); attention kernels N(0, 1/fan_in); MLP and logits kernels truncated
normal, here plain N(0, 1/fan_in); relative position biases uniform variance-scaling
(fan_avg). Norm scales are 1 + N(0, 0.1^2) rather than 1 so a wrong norm shows up
in parity tests. Parameters are drawn one after another, in sorted key order, from one
``numpy.random.default_rng(seed)`` stream, so any machine rebuilds the same weights.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from . import config as v1
from .checkpoint import param_shapes, write_checkpoint_dir


def _value(key: str, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    leaf = key.rsplit("/", 2)
    if leaf[-1] == "scale":  # T5LayerNorm
        return (1.0 + 0.1 * rng.standard_normal(shape)).astype(np.float32)
    if leaf[-1] == "rel_embedding":  # [heads, buckets], variance_scaling(1, fan_avg, uniform)
        limit = np.sqrt(3.0 / ((shape[0] + shape[1]) / 2.0))
        return rng.uniform(-limit, limit, shape).astype(np.float32)
    if key == "token_embedder/embedding":
        return rng.standard_normal(shape).astype(np.float32)
    return (rng.standard_normal(shape) / np.sqrt(shape[0])).astype(np.float32)


def synth_params(size: str, seed: int) -> Iterator[tuple[str, np.ndarray]]:
    """``(key, array)`` pairs of a random ``size`` v1 LM, generated lazily (base/large never sit in memory whole)."""
    rng = np.random.default_rng(seed)
    for key, shape in param_shapes(v1.get_size(size)).items():
        yield key, _value(key, shape, rng)


def write_checkpoint(size: str, seed: int, out_dir: Path | str) -> Path:
    """Write a random v1 ``size`` checkpoint (tiny, base or large) as a t5x directory; returns it."""
    v1.get_size(size)  # fail on a bad name before touching the disk
    return write_checkpoint_dir(synth_params(size, seed), out_dir)
