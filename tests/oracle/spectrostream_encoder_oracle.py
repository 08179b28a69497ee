"""Upstream (magenta-rt 2.0.3, JAX) reference harness for the SpectroStream ENCODER.

Run ONLY with the oracle interpreter (``$MRT_ORACLE_PYTHON``); our package never imports JAX.
The codec config is upstream's ``stft_spectrostream_40ms_generic_48khz_stereo_config(
rvq_truncation_level=12, encoded_truncation_level=12, use_unique_codes=False)`` (float32) with
the fields given by ``--overrides`` (JSON, from ``CodecConfig.upstream_overrides()``) replaced.

Tensor keys are those of upstream's published files: ``params/encoder/...`` (as in
``resources/spectrostream/encoder.safetensors``) plus ``params/soundstream/quantizer/embedding``
and, for ``--decode``, ``params/soundstream/decoder/...`` (as in the MRT2 checkpoint).

Subcommands:

``shapes --overrides J --out S.json``
    {key: shape} of every encoder parameter, keys as ``params/encoder/...``.

``encode --overrides J --tensors T.npz --audio A.npy --out O.npz [--decode]``
    Audio [N*1920, 2] through ``waveform_to_embeddings_layer.step`` then
    ``quantizer.embeddings_to_codes_layer.step``, one 1920-sample step per frame from
    ``get_initial_state``: ``stream_codes`` [N,12], ``stream_mask`` [N], ``stream_emb`` [N,F]
    (pre-quantization embeddings). Also the whole signal at once (``layer_codes``,
    ``layer_emb``, ``layer_mask``). With ``--decode``: ``roundtrip`` [N*1920,2], the streaming
    codes decoded by upstream's streaming decoder (as ``MagentaRT2Sampler`` does).
"""

from __future__ import annotations

import argparse
import json
import logging
import time

import numpy as np
from spectrostream_oracle import _flatten, _load, _sequence, _upstream_config  # same folder

logger = logging.getLogger("spectrostream_encoder_oracle")
ENC_PREFIX = "params/encoder/"
SS_PREFIX = "params/soundstream/"
FRAME = 1920


def _variables(flat: dict) -> dict:
    """Published keys -> the variables tree of a standalone SpectroStream module."""
    tree: dict = {}
    for key, v in flat.items():
        if key.startswith(ENC_PREFIX):
            parts = ["encoder", *key[len(ENC_PREFIX):].split("/")]
        elif key.startswith(SS_PREFIX):
            parts = key[len(SS_PREFIX):].split("/")
        else:
            continue
        node = tree
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        node[parts[-1]] = v
    return {"params": tree}


def cmd_shapes(args: argparse.Namespace) -> None:
    import flax.linen as nn
    import jax
    import jax.numpy as jnp
    import sequence_layers.jax as sl

    module = _upstream_config(json.loads(args.overrides)).make()
    wave = _sequence(jnp.zeros((1, FRAME * 3, 2), jnp.float32), sl, jnp)
    abstract = jax.eval_shape(lambda: module.init(jax.random.PRNGKey(0), wave, training=False))
    flat = _flatten(nn.meta.unbox(abstract)["params"]["encoder"], ENC_PREFIX)
    with open(args.out, "w") as f:
        json.dump({k: list(v.shape) for k, v in flat.items()}, f, indent=1, sort_keys=True)


def cmd_encode(args: argparse.Namespace) -> None:
    import flax.linen as nn
    import jax
    import jax.numpy as jnp
    import sequence_layers.jax as sl

    module = _upstream_config(json.loads(args.overrides)).make()
    variables = _variables({k: jnp.asarray(v, jnp.float32)
                            for k, v in _load(args.tensors).items()})
    audio = np.load(args.audio).astype(np.float32)
    n = audio.shape[0] // FRAME

    def init_state(m):
        return m.waveform_to_embeddings_layer.get_initial_state(
            1, sl.ShapeDType((2,), jnp.float32), training=False)

    def step(m, wave, state):
        emb, state = m.waveform_to_embeddings_layer.step(_sequence(wave[None], sl, jnp), state,
                                                        training=False)
        codes = m.quantizer.embeddings_to_codes_layer.layer(emb, training=False)
        return emb.values[0], codes.values[0], codes.mask[0], state

    def layer(m, wave):
        emb = m.waveform_to_embeddings_layer.layer(_sequence(wave[None], sl, jnp),
                                                   training=False)
        codes = m.quantizer.embeddings_to_codes_layer.layer(emb, training=False)
        return emb.values[0], codes.values[0], codes.mask[0]

    state = nn.apply(init_state, module)(variables)
    step_fn = jax.jit(lambda v, a, s: nn.apply(step, module)(v, a, s))
    embs, codes, masks = [], [], []
    t0 = time.time()
    for i in range(n):
        e, c, m, state = step_fn(variables, jnp.asarray(audio[i * FRAME:(i + 1) * FRAME]), state)
        embs.append(np.asarray(e))
        codes.append(np.asarray(c))
        masks.append(np.asarray(m))
    logger.info("streamed %d frames in %.1fs", n, time.time() - t0)
    result = {"stream_emb": np.concatenate(embs).astype(np.float32),
              "stream_codes": np.concatenate(codes).astype(np.int64),
              "stream_mask": np.concatenate(masks)}
    e, c, m = jax.jit(lambda v, a: nn.apply(layer, module)(v, a))(variables,
                                                                 jnp.asarray(audio[:n * FRAME]))
    result.update(layer_emb=np.asarray(e, np.float32), layer_codes=np.asarray(c, np.int64),
                  layer_mask=np.asarray(m))
    if args.decode:
        result["roundtrip"] = _decode_stream(module, variables, result["stream_codes"])
    np.savez(args.out, **result)


def _decode_stream(module, variables, codes: np.ndarray) -> np.ndarray:
    """Upstream's streaming decode, one step per frame (as the MRT2 sampler)."""
    import flax.linen as nn
    import jax
    import jax.numpy as jnp
    import sequence_layers.jax as sl

    q = codes.shape[1]
    num_features = module.config.num_features

    def init_state(m):
        return (m.quantizer.codes_to_embeddings_layer.get_initial_state(
                    1, sl.ShapeDType((q,), jnp.int32), training=False),
                m.embeddings_to_waveform_layer.get_initial_state(
                    1, sl.ShapeDType((num_features,), jnp.float32), training=False))

    def step(m, frame_codes, state):
        s_codes, s_wave = state
        emb, s_codes = m.quantizer.codes_to_embeddings_layer.step(
            _sequence(frame_codes[None, None, :], sl, jnp), s_codes, training=False)
        y, s_wave = m.embeddings_to_waveform_layer.step(emb, s_wave, training=False)
        return y.values[0], (s_codes, s_wave)

    state = nn.apply(init_state, module)(variables)
    step_fn = jax.jit(lambda v, c, s: nn.apply(step, module)(v, c, s))
    outs = []
    for i in range(len(codes)):
        y, state = step_fn(variables, jnp.asarray(codes[i].astype(np.int32)), state)
        outs.append(np.asarray(y))
    return np.concatenate(outs).astype(np.float32)


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
    p = sub.add_parser("encode")
    p.add_argument("--overrides", required=True)
    p.add_argument("--tensors", required=True)
    p.add_argument("--audio", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--decode", action="store_true", help="also decode the streaming codes")
    p.set_defaults(func=cmd_encode)
    args = parser.parse_args()
    args.func(args)


if __name__ == "__main__":
    main()
