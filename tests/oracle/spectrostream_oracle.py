"""Upstream (magenta-rt 2.0.3, JAX) reference harness for the SpectroStream codec.

Run ONLY with the oracle interpreter (``$MRT_ORACLE_PYTHON``); our package never imports JAX.
The codec config is upstream's ``stft_spectrostream_40ms_generic_48khz_stereo_config(
rvq_truncation_level=12, use_unique_codes=False)`` (float32 params and compute) with the
fields given by ``--overrides`` (JSON, from ``CodecConfig.upstream_overrides()``) replaced.

Subcommands:

``shapes --overrides J --out S.json``
    Abstractly initialise upstream's SpectroStream and write {checkpoint key: shape} for
    every parameter, keys as in the MRT2 checkpoint (``params/soundstream/...``).

``decode --overrides J --tensors T.npz --codes C.npy --out O.npz``
    Decode codes [N,12] with upstream's own modules, as ``MagentaRT2Sampler`` does:
    ``quantizer.codes_to_embeddings_layer`` then ``embeddings_to_waveform_layer``, one
    ``step`` per frame from ``get_initial_state`` (``stream`` [N*1920,2], ``stream_mask``
    [N*1920]); and the whole sequence at once through ``codes_to_waveform_layer.layer``
    (``layer`` [(N-1)*1920,2]; its Lookahead drops the first frame). Float output, before
    upstream's 0.5 gain / int16.

``encode --overrides J --tensors T.npz --audio A.npy --out O.npz``
    ``waveform_to_codes_layer.layer`` on audio [S,2]: ``codes`` [S/1920, num_quantizers].
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import time

import numpy as np

logger = logging.getLogger("spectrostream_oracle")
PREFIX = "params/soundstream/"


def _upstream_config(overrides: dict):
    import jax.numpy as jnp
    from magenta_rt.jax import spectrostream

    q_levels = overrides.get("rvq_truncation_level", 12)
    cfg = spectrostream.stft_spectrostream_40ms_generic_48khz_stereo_config(
        rvq_truncation_level=q_levels, encoded_truncation_level=q_levels,
        use_unique_codes=False, param_dtype=jnp.float32, compute_dtype=jnp.float32)
    q = dataclasses.replace(cfg.quantizer,
                            num_quantizers=overrides.get("num_quantizers", 64),
                            embedding_dim=overrides.get("num_features", 256))
    return dataclasses.replace(
        cfg, quantizer=q,
        num_features=overrides.get("num_features", 256),
        decoder_base_conv_depth=overrides.get("decoder_base_conv_depth", 64),
        encoder_base_conv_depth=overrides.get("encoder_base_conv_depth", 32))


def _flatten(tree, prefix: str) -> dict:
    out = {}
    for k, v in tree.items():
        if isinstance(v, dict) or hasattr(v, "items"):
            out.update(_flatten(v, prefix + k + "/"))
        else:
            out[prefix + k] = v
    return out


def _unflatten(flat: dict) -> dict:
    tree: dict = {}
    for key, v in flat.items():
        assert key.startswith(PREFIX), key
        parts = key[len(PREFIX):].split("/")
        node = tree
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        node[parts[-1]] = v
    return {"params": tree}


def _sequence(values, sl, jnp):
    return sl.Sequence(values, jnp.ones(values.shape[:2], dtype=jnp.bool_))


def cmd_shapes(args: argparse.Namespace) -> None:
    import flax.linen as nn
    import jax
    import jax.numpy as jnp
    import sequence_layers.jax as sl

    module = _upstream_config(json.loads(args.overrides)).make()
    wave = _sequence(jnp.zeros((1, 1920 * 3, 2), jnp.float32), sl, jnp)
    abstract = jax.eval_shape(lambda: module.init(jax.random.PRNGKey(0), wave, training=False))
    abstract = nn.meta.unbox(abstract)
    flat = _flatten(abstract["params"], PREFIX)
    with open(args.out, "w") as f:
        json.dump({k: list(v.shape) for k, v in flat.items()}, f, indent=1, sort_keys=True)


def _load(path: str) -> dict:
    if path.endswith(".safetensors"):
        from safetensors.numpy import load_file
        return load_file(path)
    with np.load(path) as z:
        return {k: z[k] for k in z.files}


def cmd_decode(args: argparse.Namespace) -> None:
    import flax.linen as nn
    import jax
    import jax.numpy as jnp
    import sequence_layers.jax as sl

    module = _upstream_config(json.loads(args.overrides)).make()
    tensors = {k: v for k, v in _load(args.tensors).items() if k.startswith(PREFIX)}
    variables = _unflatten({k: jnp.asarray(v, jnp.float32) for k, v in tensors.items()})
    codes = np.load(args.codes).astype(np.int32)
    n, q = codes.shape
    num_features = module.config.num_features

    def init_state(m):
        s_codes = m.quantizer.codes_to_embeddings_layer.get_initial_state(
            1, sl.ShapeDType((q,), jnp.int32), training=False)
        s_wave = m.embeddings_to_waveform_layer.get_initial_state(
            1, sl.ShapeDType((num_features,), jnp.float32), training=False)
        return s_codes, s_wave

    def step(m, frame_codes, state):
        s_codes, s_wave = state
        x = _sequence(frame_codes[None, None, :], sl, jnp)
        emb, s_codes = m.quantizer.codes_to_embeddings_layer.step(x, s_codes, training=False)
        y, s_wave = m.embeddings_to_waveform_layer.step(emb, s_wave, training=False)
        return y.values[0], y.mask[0], (s_codes, s_wave)

    def layer(m, all_codes):
        y = m.codes_to_waveform_layer.layer(_sequence(all_codes[None], sl, jnp), training=False)
        return y.values[0], y.mask[0]

    state = nn.apply(init_state, module)(variables)
    step_fn = jax.jit(lambda v, c, s: nn.apply(step, module)(v, c, s))
    t0 = time.time()
    outs, masks = [], []
    for i in range(n):
        y, mask, state = step_fn(variables, jnp.asarray(codes[i]), state)
        outs.append(np.asarray(y))
        masks.append(np.asarray(mask))
    logger.info("streamed %d frames in %.1fs", n, time.time() - t0)
    result = {"stream": np.concatenate(outs).astype(np.float32),
              "stream_mask": np.concatenate(masks)}
    if not args.no_layer:
        y, mask = jax.jit(lambda v, c: nn.apply(layer, module)(v, c))(variables,
                                                                     jnp.asarray(codes))
        result["layer"] = np.asarray(y, np.float32)
        result["layer_mask"] = np.asarray(mask)
    np.savez(args.out, **result)


def main() -> None:
    import jax
    import magenta_rt.jax.spectrostream  # noqa: F401  (installs the vendored sequence_layers)

    jax.config.update("jax_default_matmul_precision", "highest")
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("shapes")
    p.add_argument("--overrides", required=True)
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_shapes)
    p = sub.add_parser("decode")
    p.add_argument("--overrides", required=True)
    p.add_argument("--tensors", required=True)
    p.add_argument("--codes", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--no-layer", action="store_true", help="skip the whole-sequence decode")
    p.set_defaults(func=cmd_decode)
    args = parser.parse_args()
    args.func(args)


if __name__ == "__main__":
    main()
