"""Time upstream's own streaming step (magenta-rt 2.0.3, JAX) on a checkpoint.

Run with the oracle interpreter ($MRT_ORACLE_PYTHON, which has magenta-rt[jax]);
`mrt-bridge bench --compare-upstream` runs it for you and prints both figures.
Prints one JSON object: per-frame milliseconds of upstream's full frame step
(depthformer sampling + SpectroStream decode), measured like ours: one call per
frame after warm-up. With ``--num-cfgs 1|2`` the step runs upstream's logit-level
guidance (the live engine's 2- or 3-row batch: ``classifier_free_guidance_scale_<key>``
and ``_negative_<key>`` constants, which upstream's JAX sampler takes with the same
code as its MLX export); otherwise it is ``MagentaRT2System.generate``, one row.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--size", required=True, choices=["mrt2_small", "mrt2_base"])
    p.add_argument("--checkpoint", required=True, type=Path)
    p.add_argument("--frames", type=int, default=50)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--compute", choices=["bfloat16", "float32"], default="bfloat16",
                   help="upstream's compute dtype (its default is bfloat16)")
    p.add_argument("--num-cfgs", type=int, choices=[0, 1, 2], default=0,
                   help="logit-level guidance rows (0: MagentaRT2System.generate, one row)")
    args = p.parse_args()

    home = Path(tempfile.mkdtemp(prefix="mrt-upstream-"))
    (home / "magenta-rt-v2" / "checkpoints").mkdir(parents=True)
    os.symlink(args.checkpoint.resolve(), home / "magenta-rt-v2" / "checkpoints" / f"{args.size}.safetensors")
    os.environ["MAGENTA_HOME"] = str(home)

    import jax
    import jax.numpy as jnp
    import numpy as np
    from magenta_rt import musiccoca, paths
    from magenta_rt.jax import model as model_configs
    from magenta_rt.jax import system

    paths.set_magenta_home(home / "magenta-rt-v2")
    if args.compute == "float32":
        base = model_configs.MODEL_REGISTRY[args.size]
        model_configs.MODEL_REGISTRY[args.size] = type(f"{base.__name__}F32", (base,), {"compute_dtype": jnp.float32})
    t0 = time.perf_counter()
    mrt = system.MagentaRT2System(size=args.size, style_model=musiccoca.MockMusicCoCa())
    setup = time.perf_counter() - t0
    step = guided_step(mrt, args.num_cfgs) if args.num_cfgs else (
        lambda state: mrt.generate(frames=1, state=state)[1])
    state = step(None)
    for _ in range(args.warmup):
        state = step(state)
    times = []
    for _ in range(args.frames):
        t = time.perf_counter()
        state = step(state)
        times.append((time.perf_counter() - t) * 1e3)
    arr = np.array(times)
    print(json.dumps({
        "impl": f"upstream magenta-rt JAX ({args.compute}{f', logit guidance --num-cfgs {args.num_cfgs}' if args.num_cfgs else ''})",
        "num_cfgs": args.num_cfgs,
        "jax": jax.__version__, "device": str(jax.devices()[0]),
        "frames": args.frames, "setup_s": round(setup, 1),
        "p50_ms": float(np.percentile(arr, 50)), "p95_ms": float(np.percentile(arr, 95)),
        "p99_ms": float(np.percentile(arr, 99)), "max_ms": float(arr.max()), "mean_ms": float(arr.mean()),
    }))
    return 0


def guided_step(mrt, num_cfgs: int):
    """A jitted frame step of ``mrt``'s sampler with logit-level guidance (style, then notes negatives)."""
    import jax
    import jax.numpy as jnp
    import magenta_rt  # noqa: F401  (installs the vendored sequence_layers)
    import numpy as np
    import sequence_layers.jax as sl

    style = (np.arange(12) * 83) % 1024
    cond = {cfg.key: ([*style] if cfg.key == "musiccoca" else [-1] * cfg.rvq_truncation_level)
            for cfg in mrt._model.input_configs if not cfg.cfg_scale_keys}
    block, constants = mrt._build_conditioning(cond)
    raw = np.asarray(block.values)
    masked = {"musiccoca": slice(0, 12), "notes": slice(12, 140)}
    scales = {"musiccoca": 3.0, "notes": 1.0}
    init_constants = {}
    for key in ("musiccoca", "notes")[:num_cfgs]:
        negative = raw.copy()
        negative[..., masked[key]] = 6  # -1 (masked) + the +7 offset
        constants[f"classifier_free_guidance_scale_{key}"] = jnp.array([scales[key]])
        constants[f"classifier_free_guidance_negative_{key}"] = sl.Sequence.from_values(jnp.asarray(negative))
        init_constants[f"classifier_free_guidance_scale_{key}"] = jnp.array([scales[key]])
    rngs = {"params": jax.random.PRNGKey(42), "random": jax.random.PRNGKey(0)}
    spec = jax.ShapeDtypeStruct([mrt._num_channels], jnp.int32)
    init = jax.jit(lambda p, c: mrt._sampler.apply(p, 1, spec, constants=c, training=False, rngs=rngs,
                                                   method=mrt._sampler.get_initial_state))
    run = jax.jit(lambda p, x, c, s: mrt._sampler.apply(p, x=x, state=s, constants=c, training=False, rngs=rngs,
                                                        method=mrt._sampler.step_with_emits))

    def step(state):
        if state is None:
            state = init(mrt._params, init_constants)
        out, state, _ = run(mrt._params, block, constants, state)
        jax.block_until_ready(out.values)
        return state

    return step


if __name__ == "__main__":
    sys.exit(main())
