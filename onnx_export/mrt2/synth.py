"""Random checkpoints in the exact upstream layout (no JAX needed), for tests and the bundled model."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .. import spectrostream, spectrostream_encoder
from .checkpoint import depthformer_shapes
from .configs import get_config


def _value(key: str, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """A non-degenerate random value, scaled so activations stay in a sane range."""
    leaf = key.rsplit("/", 1)[-1]
    if leaf == "scale":  # norm scales
        return (1.0 + 0.1 * rng.standard_normal(shape)).astype(np.float32)
    if leaf == "bias":
        return (0.02 * rng.standard_normal(shape)).astype(np.float32)
    if leaf == "per_dim_scale":
        return (0.2 * rng.standard_normal(shape)).astype(np.float32)
    if leaf.startswith("sink_"):
        return (0.5 * rng.standard_normal(shape)).astype(np.float32)
    if leaf == "embedding":  # lookup tables: unit-ish rows after the sqrt(D) scale
        return (rng.standard_normal(shape) / np.sqrt(shape[-1])).astype(np.float32)
    # Dense / projection kernels: fan-in scaled. Output projections are [d, n, h]
    # with fan-in n*h; every other kernel has its fan-in first.
    fan_in = int(np.prod(shape[1:])) if "output_projection" in key else shape[0]
    return (rng.standard_normal(shape) / np.sqrt(fan_in)).astype(np.float32)


def synth_tensors(size: str, seed: int) -> dict[str, np.ndarray]:
    """All tensors of a random ``size`` checkpoint (depthformer + SpectroStream decoder)."""
    cfg = get_config(size)
    rng = np.random.default_rng(seed)
    tensors = {k: _value(k, s, rng) for k, s in depthformer_shapes(cfg).items()}
    tensors.update(spectrostream.synth_spectrostream_tensors(spectrostream.codec_config(cfg.codec), rng))
    return tensors


def synth_codec_encoder_tensors(size: str, seed: int) -> dict[str, np.ndarray]:
    """Random ``params/encoder/...`` tensors (upstream's encoder.safetensors layout) for ``size``'s codec.

    The file has no codebooks: the encoder quantizes with the checkpoint's
    ``params/soundstream/quantizer/embedding``, like upstream.
    """
    cfg = spectrostream.codec_config(get_config(size).codec)
    rng = np.random.default_rng(seed + 1)
    return spectrostream_encoder.synth_spectrostream_encoder_tensors(cfg, rng, include_quantizer=False)


def _save(tensors: dict[str, np.ndarray], out: Path, size: str, seed: int) -> Path:
    """Write safetensors atomically (a crash never leaves a truncated file under ``out``)."""
    from safetensors.numpy import save_file

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(out.suffix + ".partial")
    save_file(tensors, str(tmp), metadata={"format": "mrt2", "synthetic": "true", "size": size, "seed": str(seed)})
    tmp.replace(out)
    return out


def write_codec_encoder(size: str, seed: int, out: Path) -> Path:
    """A random upstream-layout ``encoder.safetensors`` for ``size``'s codec."""
    return _save(synth_codec_encoder_tensors(size, seed), out, size, seed)


def write_checkpoint(size: str, seed: int, out: Path) -> Path:
    """A random checkpoint of ``size`` in upstream's exact layout."""
    return _save(synth_tensors(size, seed), out, size, seed)
