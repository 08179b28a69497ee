"""Upstream (magenta-rt 2.0.3, JAX) reference harness for the MRT2 depthformer.

Run ONLY with the oracle interpreter (``$MRT_ORACLE_PYTHON``, which has
``magenta-rt[jax]``); our package never imports JAX. Two subcommands:

``make-checkpoint``
    Builds the upstream model for a size (tiny configs below), initialises
    it through ``MagentaRT2Sampler`` exactly as upstream lays out its
    checkpoints, replaces every all-zeros / all-ones tensor with random
    non-degenerate values and writes ``params/<path>`` keys to safetensors.

``run``
    Streams N frames through upstream's own streaming modules (float32
    compute, batch 1, CFG only as conditioning tokens) and writes an npz with
    ``tokens`` [N,12], ``logits`` [N,12,1024] (soft-capped, per-level slice),
    ``temporal_out`` [N,D], ``encoded`` [N,E].

    * ``--mode greedy``: upstream ``StreamingEncoderDecoderSampler.step`` with
      constants temperature=1.0, top_k=1 (the path ``MagentaRT2System`` takes,
      minus the codec). ``logits`` come from the sow'ed ``depth_logits``
      intermediates (pre-softcap there; the cap is applied here).
      With ``--num-cfgs 1|2`` it runs upstream's logit-level guidance: the
      ``classifier_free_guidance_scale_<key>`` / ``_negative_<key>`` constants
      (keys musiccoca, notes; negatives = the frame's conditioning with that group
      masked) with the per-frame float scales of ``--guidance``; ``logits`` are
      then the guided mix of the rows' soft-capped logits, as upstream samples it.
      ``--prefill-tokens`` first steps the stream as upstream's live engine
      prefills it (``core/src/mlx_engine.cpp`` prefill_with_token_array): rows
      0..P-2 forced as the previous frame under ``--prefill-conditioning``, then
      row P-1 as the next frame's input.
    * ``--mode teacher``: a small driver calling the upstream submodules'
      own ``encoder.body.step``, ``decoder.embedder``,
      ``decoder.temporal_body.step`` and ``decoder.depth_body.step``; the depth
      loop is fed the teacher tokens, and the next frame's temporal input is
      the teacher frame. ``tokens`` then holds the per-level argmax of the
      logits (what greedy would pick given the teacher prefix) and
      ``teacher_tokens`` the forced input.

Example::

    /opt/oracle/bin/python tests/oracle/depthformer_oracle.py make-checkpoint \
        --size tiny --seed 0 --out /tmp/tiny.safetensors
    /opt/oracle/bin/python tests/oracle/depthformer_oracle.py run --size tiny \
        --checkpoint /tmp/tiny.safetensors --conditioning cond.npy --frames 100 \
        --mode greedy --out /tmp/greedy.npz
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

logger = logging.getLogger("depthformer_oracle")

NUM_RESERVED_TOKENS = 6
CODEBOOK_SIZE = 1024
NUM_CODEBOOKS = 12
CONDITIONING_LENGTH = 144
# 6 reserved tokens + 1 dropout token (magenta_rt/jax/system.py _build_conditioning).
CONDITIONING_OFFSET = NUM_RESERVED_TOKENS + 1
SOFT_CAP = 30.0

# Tiny configs shared with the ONNX exporter's tests. ModelSpec fields by name;
# horizon = encoder/temporal self/temporal cross max past horizon.
TINY_SIZES: dict[str, dict[str, Any]] = {
    # mrt2_small-shaped: temporal width != depth width -> Dense depth_input_adapter.
    "tiny": {
        "encoder": {"num_layers": 1, "model_dims": 64, "hidden_dims": 128, "num_heads": 2,
            "dim_per_head": 32, "ffn_use_gated_activation": False},
        "temporal": {"num_layers": 2, "model_dims": 128, "hidden_dims": 256, "num_heads": 4,
            "dim_per_head": 32, "ffn_use_gated_activation": False},
        "depth": {"num_layers": 2, "model_dims": 96, "hidden_dims": 192, "num_heads": 3,
            "dim_per_head": 32, "ffn_use_gated_activation": False},
        "horizon": 5,
    },
    # mrt2_base-shaped: equal widths -> Identity depth_input_adapter.
    "tiny_base": {
        "encoder": {"num_layers": 1, "model_dims": 128, "hidden_dims": 256, "num_heads": 4,
            "dim_per_head": 32, "ffn_use_gated_activation": False},
        "temporal": {"num_layers": 2, "model_dims": 128, "hidden_dims": 256, "num_heads": 4,
            "dim_per_head": 32, "ffn_use_gated_activation": False},
        "depth": {"num_layers": 2, "model_dims": 128, "hidden_dims": 256, "num_heads": 4,
            "dim_per_head": 32, "ffn_use_gated_activation": False},
        "horizon": 4,
    },
}
UPSTREAM_SIZES = ("mrt2_small", "mrt2_base")
ALL_SIZES = tuple(TINY_SIZES) + UPSTREAM_SIZES


# --------------------------------------------------------------------------
# Model construction
# --------------------------------------------------------------------------

def model_for_size(size: str) -> Any:
    """An upstream MagentaRT2ModelBase subclass instance, float32 params AND compute."""
    import jax.numpy as jnp
    from magenta_rt.config import ModelSpec
    from magenta_rt.jax import model as mrt_model

    attrs: dict[str, Any] = {"param_dtype": jnp.float32, "compute_dtype": jnp.float32}
    if size in TINY_SIZES:
        spec = TINY_SIZES[size]
        base = mrt_model.MagentaRT2ModelBase
        attrs.update(
            encoder_size=ModelSpec(**spec["encoder"]),
            decoder_temporal_size=ModelSpec(**spec["temporal"]),
            decoder_depth_size=ModelSpec(**spec["depth"]),
            encoder_max_past_horizon=spec["horizon"],
            decoder_temporal_self_attention_max_past_horizon=spec["horizon"],
            decoder_temporal_cross_attention_max_past_horizon=spec["horizon"],
        )
    elif size in UPSTREAM_SIZES:
        base = mrt_model.get_model_class(size)
    else:
        raise ValueError(f"unknown size {size!r}; choose from {ALL_SIZES}")
    cls = type(f"Oracle_{size}", (base,), attrs)
    return cls()


def sampler_config(size: str) -> Any:
    """MagentaRT2Sampler.Config for a size (full SpectroStream codec config)."""
    from magenta_rt.jax import spectrostream
    from magenta_rt.jax.system import MagentaRT2Sampler

    model = model_for_size(size)
    return MagentaRT2Sampler.Config(
        depthformer=model.depthformer_config(),
        spectrostream=spectrostream.stft_spectrostream_40ms_generic_48khz_stereo_config(
            rvq_truncation_level=model.spectrostream.rvq_truncation_level,
            use_unique_codes=False,
        ),
    )


def _input_spec() -> Any:
    import jax
    import jax.numpy as jnp

    return jax.ShapeDtypeStruct([CONDITIONING_LENGTH], jnp.int32)


def _conditioning_block(raw: np.ndarray) -> Any:
    """Raw [144] conditioning -> upstream block: +7 offset, shape [1, 1, 144]."""
    import magenta_rt  # noqa: F401  (installs the vendored sequence_layers)
    import sequence_layers.jax as sl

    cond = np.asarray(raw, np.int32) + CONDITIONING_OFFSET
    return sl.Sequence.from_values(cond.reshape(1, 1, -1))


def _constants(temperature: float, top_k: int) -> dict[str, Any]:
    import jax.numpy as jnp

    return {"temperature": jnp.array([temperature], jnp.float32),
            "top_k": jnp.array([top_k], dtype=jnp.int32)}


# --------------------------------------------------------------------------
# make-checkpoint
# --------------------------------------------------------------------------

def _randomize_degenerate(flat: dict[str, np.ndarray], seed: int) -> int:
    """Replace all-zeros / all-ones tensors in place; returns how many changed."""
    rng = np.random.RandomState(seed)
    changed = 0
    for key in sorted(flat):
        value = flat[key]
        if value.size == 0 or not np.issubdtype(value.dtype, np.floating):
            continue
        leaf = key.rsplit("/", 1)[-1]
        if np.all(value == 0):
            if leaf == "bias":
                new = 0.05 * rng.standard_normal(value.shape)
            elif leaf == "per_dim_scale":
                new = 0.3 * rng.standard_normal(value.shape)
            else:  # embeddings (mulan_dequantizer, sink key/value) and the rest
                new = 0.5 * rng.standard_normal(value.shape)
        elif np.all(value == 1):
            new = 1.0 + 0.1 * rng.standard_normal(value.shape)
        else:
            continue
        flat[key] = new.astype(value.dtype)
        changed += 1
    return changed


def make_checkpoint(size: str, seed: int, out: Path, depthformer_only: bool = True) -> None:
    """Initialise the upstream sampler for `size` and save a randomised checkpoint."""
    import flax.linen as nn
    import flax.traverse_util as flaxtu
    import jax
    from safetensors.numpy import save_file

    t0 = time.perf_counter()
    rngs = {"params": jax.random.PRNGKey(seed), "random": jax.random.PRNGKey(0)}
    block = _conditioning_block(np.full(CONDITIONING_LENGTH, -1, np.int32))
    constants = _constants(1.0, 1)
    if depthformer_only:
        # The EncoderDecoder alone: same tree as MagentaRT2Sampler's 'depthformer'
        # subtree (checked key-for-key), without initialising the full-size codec.
        module = model_for_size(size).depthformer_config().make()
        init_state = _sampler_initial_state
        init_step = _sampler_plain_step
        prefix = ("depthformer",)
    else:
        module = sampler_config(size).make()
        init_state = module.get_initial_state
        init_step = module.step_with_emits
        prefix = ()
    state, _ = module.init_with_output(
        rngs, 1, _input_spec(), constants={}, training=False, method=init_state)
    variables = jax.jit(lambda r, x, s, c: module.init(
        r, x, s, constants=c, training=False, method=init_step))(rngs, block, state, constants)
    params = nn.meta.unbox(variables["params"])
    flat = {
        "params/" + "/".join(prefix + path): np.asarray(value)
        for path, value in flaxtu.flatten_dict(params).items()
    }
    if depthformer_only:
        flat = {k: v for k, v in flat.items() if k.startswith("params/depthformer/")}
    changed = _randomize_degenerate(flat, seed)
    out.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: np.ascontiguousarray(v, np.float32) for k, v in flat.items()}, str(out))
    logger.info(
        "wrote %s: %d tensors, %d params, %d degenerate tensors randomised, %.1fs",
        out, len(flat), sum(v.size for v in flat.values()), changed, time.perf_counter() - t0,
    )


# --------------------------------------------------------------------------
# run
# --------------------------------------------------------------------------

def load_depthformer_params(path: Path) -> dict[str, Any]:
    """{'params': <depthformer subtree>} from a `params/...` safetensors file."""
    import flax.traverse_util as flaxtu
    from safetensors.numpy import load_file

    prefix = "params/depthformer/"
    flat = {tuple(k[len(prefix):].split("/")): v for k, v in load_file(str(path)).items()
            if k.startswith(prefix)}
    if not flat:
        raise ValueError(f"{path}: no tensors under {prefix!r}")
    return {"params": flaxtu.unflatten_dict(flat)}


def _sampler_initial_state(module: Any, *args: Any, **kwargs: Any) -> Any:
    """EncoderDecoder method: StreamingEncoderDecoderSampler.get_initial_state."""
    return module.sampler.get_initial_state(*args, **kwargs)


def _sampler_plain_step(module: Any, *args: Any, **kwargs: Any) -> Any:
    """EncoderDecoder method: StreamingEncoderDecoderSampler.step."""
    return module.sampler.step(*args, **kwargs)


CFG_KEYS = ("musiccoca", "notes")  # upstream's sorted guidance keys
CFG_MASKED = {"musiccoca": slice(0, 12), "notes": slice(12, 140)}


def _guided_constants(constants: dict[str, Any], num_cfgs: int, cond: np.ndarray,
                      scales: np.ndarray) -> dict[str, Any]:
    """Add upstream's guidance constants: scale and negative conditioning per key."""
    import jax.numpy as jnp

    out = dict(constants)
    for key, scale in zip(CFG_KEYS[:num_cfgs], scales[:num_cfgs]):
        negative = np.array(cond, np.int32)
        negative[CFG_MASKED[key]] = -1
        out[f"classifier_free_guidance_scale_{key}"] = jnp.array([scale], jnp.float32)
        out[f"classifier_free_guidance_negative_{key}"] = _conditioning_block(negative)
    return out


def _with_previous_frame(state: Any, tokens: np.ndarray) -> Any:
    """The state with every row's previous frame set to ``tokens`` [12] (a forced input)."""
    encoder_state, previous_output, (rng, previous, temporal, step), countdown = state
    values = np.broadcast_to(np.asarray(tokens, np.int32), previous.values.shape).copy()
    previous = type(previous)(values, previous.mask)
    previous_output = type(previous_output)(
        np.broadcast_to(np.asarray(tokens, np.int32), previous_output.values.shape).copy(), previous_output.mask)
    return (encoder_state, previous_output, (rng, previous, temporal, step), countdown)


def _sampler_step_guided(module: Any, x: Any, state: Any, constants: dict[str, Any]) -> Any:
    """Upstream streaming step with guidance constants (the batch holds every CFG row)."""
    out, new_state = module.sampler.step(x, state, training=False, constants=constants)
    return out.values, new_state


def _sampler_step(module: Any, x: Any, state: Any, constants: dict[str, Any]) -> Any:
    """Upstream streaming step (StreamingEncoderDecoderSampler.step) + encoded capture."""
    out, new_state = module.sampler.step(x, state, training=False, constants=constants)
    # Encoded frame, recomputed by the encoder body's own step from the same
    # (pre-step) encoder state: a pure function, identical to what the sampler saw.
    encoded, _ = module.encoder.body.step(x, state[0], training=False, constants=constants)
    return out.values, new_state, encoded.values


def _teacher_step(module: Any, x: Any, state: Any, constants: dict[str, Any],
                  teacher_frame: Any) -> Any:
    """One frame with the depth loop forced to `teacher_frame` ([1, 12] token ids).

    Mirrors StreamingEncoderDecoderSampler.step + MultivariateDecoder.step_with_emits
    but feeds teacher tokens instead of samples; every op is an upstream module call.
    """
    import jax.numpy as jnp
    import magenta_rt  # noqa: F401  (installs the vendored sequence_layers)
    import sequence_layers.jax as sl

    encoder_state, _previous_output, decoder_state, countdown = state
    rng, previous_frame, temporal_state, step = decoder_state
    decoder = module.decoder

    encoded, encoder_state = module.encoder.body.step(
        x, encoder_state, training=False, constants=constants)
    sampler_constants = constants | {module.sampler.conditioning_name: encoded}

    embedded_frame = decoder.embedder(previous_frame, training=False)
    temporal_inputs = embedded_frame.apply_values(jnp.mean, axis=-2)
    temporal_outputs, temporal_state = decoder.temporal_body.step(
        temporal_inputs, temporal_state, training=False, constants=sampler_constants)

    depth_state = decoder.depth_body.get_initial_state(
        batch_size=temporal_outputs.shape[0], input_spec=temporal_outputs.channel_spec,
        training=False)
    depth_inputs = temporal_outputs
    raw_logits = []
    for level in range(decoder.config.num_codebooks):
        logits, depth_state = decoder.depth_body.step(depth_inputs, depth_state, training=False)
        raw_logits.append(logits.values)
        forced = sl.Sequence.from_values(teacher_frame[:, level:level + 1])
        depth_inputs = decoder.embedder(forced, training=False)

    teacher_seq = sl.Sequence.from_values(teacher_frame[:, None, :])
    new_state = (encoder_state, sl.MaskedSequence(teacher_seq.values, teacher_seq.mask),
                 (rng, teacher_seq, temporal_state, step + 1), countdown)
    return (jnp.stack(raw_logits, axis=-2), new_state, encoded.values,
            temporal_outputs.values)


def _level_slices(capped: np.ndarray) -> np.ndarray:
    """[..., 12, vocab] capped logits -> [..., 12, 1024] each level's valid slice."""
    out = np.empty(capped.shape[:-1] + (CODEBOOK_SIZE,), np.float32)
    for level in range(NUM_CODEBOOKS):
        lo = NUM_RESERVED_TOKENS + level * CODEBOOK_SIZE
        out[..., level, :] = capped[..., level, lo:lo + CODEBOOK_SIZE]
    return out


def soft_cap(x: np.ndarray) -> np.ndarray:
    """Upstream logit soft cap tanh(x/30)*30, in float32."""
    return (np.tanh(np.asarray(x, np.float32) / np.float32(SOFT_CAP))
            * np.float32(SOFT_CAP)).astype(np.float32)


def _load_conditioning(path: Path, frames: int) -> np.ndarray:
    cond = np.load(path)
    if cond.ndim == 1:
        cond = np.broadcast_to(cond, (frames, cond.shape[0]))
    if cond.shape != (frames, CONDITIONING_LENGTH) and not (
            cond.ndim == 2 and cond.shape[0] >= frames and cond.shape[1] == CONDITIONING_LENGTH):
        raise ValueError(f"conditioning must be [144] or [>=N,144], got {cond.shape}")
    return np.asarray(cond[:frames], np.int32)


def run(size: str, checkpoint: Path, conditioning: Path, frames: int, mode: str,
        out: Path, teacher_tokens: Path | None = None, dump_state_keys: bool = False,
        num_cfgs: int = 0, guidance: Path | None = None, prefill_tokens: Path | None = None,
        prefill_conditioning: Path | None = None) -> None:
    """Stream `frames` frames through the upstream depthformer; save an npz."""
    import jax
    import jax.numpy as jnp
    import magenta_rt  # noqa: F401  (installs the vendored sequence_layers)
    import sequence_layers.jax as sl

    t_start = time.perf_counter()
    model = model_for_size(size)
    edm = model.depthformer_config().make()  # EncoderDecoder; its .sampler is what
    variables = load_depthformer_params(checkpoint)  # MagentaRT2Sampler.layers[0] is.
    cond = _load_conditioning(conditioning, frames)
    constants = _constants(1.0, 1)
    rngs = {"random": jax.random.PRNGKey(0)}
    scales = np.zeros((frames, 2), np.float32)
    if num_cfgs:
        if mode != "greedy" or guidance is None:
            raise ValueError("--num-cfgs needs --mode greedy and --guidance")
        scales = np.asarray(np.load(guidance), np.float32).reshape(-1, 3)[:frames, :2]
    init_constants = _guided_constants({}, num_cfgs, cond[0], scales[0])

    state = edm.apply(variables, 1, _input_spec(), training=False, constants=init_constants, rngs=rngs,
                      method=_sampler_initial_state)
    # The sampler returns its previous output as a MaskedSequence while the
    # initial state holds a plain Sequence, and the SOS frame is weakly typed:
    # match both up front so the jitted step compiles once, not twice.
    state = (state[0], sl.MaskedSequence(state[1].values, state[1].mask), *state[2:])
    state = jax.tree.map(np.asarray, state)
    if dump_state_keys:
        for path, leaf in jax.tree_util.tree_flatten_with_path(state)[0]:
            logger.info("state %s %s %s", jax.tree_util.keystr(path), leaf.shape, leaf.dtype)

    teacher = None
    if mode == "teacher":
        if teacher_tokens is None:
            raise ValueError("--mode teacher needs --teacher-tokens")
        teacher = np.asarray(np.load(teacher_tokens), np.int32)
        if teacher.ndim != 2 or teacher.shape[0] < frames or teacher.shape[1] != NUM_CODEBOOKS:
            raise ValueError(f"teacher tokens must be [>=N,12], got {teacher.shape}")
        step_fn = jax.jit(lambda v, x, s, c, t: edm.apply(
            v, x, s, c, t, rngs=rngs, method=_teacher_step))
    elif mode == "greedy":
        step_fn = jax.jit(lambda v, x, s, c: edm.apply(
            v, x, s, c, rngs=rngs, mutable=["intermediates"],
            method=_sampler_step_guided if num_cfgs else _sampler_step))
    else:
        raise ValueError(f"unknown mode {mode!r}")

    if prefill_tokens is not None:
        forced = np.asarray(np.load(prefill_tokens), np.int32)
        pre_cond = np.asarray(np.load(prefill_conditioning), np.int32)
        pre_constants = _guided_constants(constants, num_cfgs, pre_cond, scales[0])
        block = _conditioning_block(pre_cond)
        for row in forced[:-1]:
            state = _with_previous_frame(state, row)
            state = jax.tree.map(np.asarray, step_fn(variables, block, state, pre_constants)[0][1])
        state = _with_previous_frame(state, forced[-1])

    tokens, logits, temporal_out, encoded = [], [], [], []
    t_loop = time.perf_counter()
    for i in range(frames):
        block = _conditioning_block(cond[i])
        if teacher is not None:
            raw, state, enc, tout = step_fn(variables, block, state, constants,
                                            jnp.asarray(teacher[i:i + 1]))
            capped = _level_slices(soft_cap(np.asarray(raw)[0, 0]))
            levels = np.arange(NUM_CODEBOOKS)
            tokens.append(NUM_RESERVED_TOKENS + levels * CODEBOOK_SIZE + capped.argmax(-1))
        elif num_cfgs:
            frame_constants = _guided_constants(constants, num_cfgs, cond[i], scales[i])
            (toks, state), inter = step_fn(variables, block, state, frame_constants)
            dec = inter["intermediates"]["decoder"]
            rows = _level_slices(soft_cap(np.stack([np.asarray(v)[:, 0] for v in dec["depth_logits"]], axis=1)))
            capped = rows[0].copy()  # upstream's order: full + s1 (full - neg1) + s2 (full - neg2)
            for r in range(1, num_cfgs + 1):
                capped = capped + np.float32(scales[i, r - 1]) * (rows[0] - rows[r])
            tout, enc = np.asarray(dec["temporal_outputs"][0])[:1], np.zeros((1, 1, 1), np.float32)
            tokens.append(np.asarray(toks)[0, 0])
        else:
            (toks, state, enc), inter = step_fn(variables, block, state, constants)
            dec = inter["intermediates"]["decoder"]
            raw = np.stack([np.asarray(v)[0, 0] for v in dec["depth_logits"]])
            capped = _level_slices(soft_cap(raw))
            tout = dec["temporal_outputs"][0]
            tokens.append(np.asarray(toks)[0, 0])
        logits.append(capped)
        temporal_out.append(np.asarray(tout)[0, 0])
        encoded.append(np.asarray(enc)[0, 0])
        if i == 0:
            t_first = time.perf_counter()
        logger.debug("frame %d done at %.3fs", i, time.perf_counter() - t_loop)
    t_end = time.perf_counter()

    result = {
        "tokens": np.stack(tokens).astype(np.int64),
        "logits": np.stack(logits).astype(np.float32),
        "temporal_out": np.stack(temporal_out).astype(np.float32),
        "encoded": np.stack(encoded).astype(np.float32),
        "conditioning": cond,
    }
    if teacher is not None:
        result["teacher_tokens"] = teacher[:frames].astype(np.int64)
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez(out, **result)
    logger.info(
        "%s %s: %d frames -> %s; setup %.1fs, first frame (jit) %.1fs, "
        "%.1f ms/frame after",
        size, mode, frames, out, t_loop - t_start, t_first - t_loop,
        1000 * (t_end - t_first) / max(1, frames - 1),
    )


# --------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------

def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = p.add_subparsers(dest="command", required=True)

    mk = sub.add_parser("make-checkpoint", help="init the upstream model, save safetensors")
    mk.add_argument("--size", choices=ALL_SIZES, required=True)
    mk.add_argument("--seed", type=int, default=0)
    mk.add_argument("--out", type=Path, required=True)
    mk.add_argument("--depthformer-only", action=argparse.BooleanOptionalAction, default=True,
                    help="drop the full-size soundstream/ tensors (~200 MB); default on. "
                         "--no-depthformer-only keeps them")

    rn = sub.add_parser("run", help="stream frames through the upstream depthformer")
    rn.add_argument("--size", choices=ALL_SIZES, required=True)
    rn.add_argument("--checkpoint", type=Path, required=True)
    rn.add_argument("--conditioning", type=Path, required=True,
                    help=".npy raw 144-int conditioning, [144] or [N,144] (no +7 offset)")
    rn.add_argument("--frames", type=int, required=True)
    rn.add_argument("--mode", choices=("greedy", "teacher"), default="greedy")
    rn.add_argument("--teacher-tokens", type=Path, help=".npy [N,12] model token ids")
    rn.add_argument("--out", type=Path, required=True)
    rn.add_argument("--num-cfgs", type=int, choices=(0, 1, 2), default=0,
                    help="logit-level guidance rows (upstream's live engine); needs --guidance")
    rn.add_argument("--guidance", type=Path, help=".npy [N,3] float scales (style, notes, drums) per frame")
    rn.add_argument("--prefill-tokens", type=Path, help=".npy [P,12] model token ids to prefill with")
    rn.add_argument("--prefill-conditioning", type=Path, help=".npy [144] raw conditioning during prefill")
    rn.add_argument("--dump-state-keys", action="store_true",
                    help="log the streaming state tree (paths, shapes)")
    return p


def main(argv: list[str] | None = None) -> int:
    """CLI entry point."""
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(name)s: %(message)s")
    from absl import logging as absl_logging  # sl.Logging layers log every call

    absl_logging.set_verbosity(absl_logging.WARNING)
    if args.command == "make-checkpoint":
        make_checkpoint(args.size, args.seed, args.out, args.depthformer_only)
    else:
        run(args.size, args.checkpoint, args.conditioning, args.frames, args.mode, args.out,
            args.teacher_tokens, args.dump_state_keys, args.num_cfgs, args.guidance,
            args.prefill_tokens, args.prefill_conditioning)
    return 0


if __name__ == "__main__":
    sys.exit(main())
