"""Time upstream's own streaming step (magenta-rt 2.0.3, JAX) on a checkpoint.

Run with the oracle interpreter ($MRT_ORACLE_PYTHON, which has magenta-rt[jax]);
`mrt-bridge bench --compare-upstream` runs it for you and prints both figures.
Prints one JSON object: per-frame milliseconds of upstream's full frame step
(depthformer sampling + SpectroStream decode), measured like ours: one call per
frame after warm-up.
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
    _, state = mrt.generate(frames=1)
    for _ in range(args.warmup):
        _, state = mrt.generate(frames=1, state=state)
    times = []
    for _ in range(args.frames):
        t = time.perf_counter()
        _, state = mrt.generate(frames=1, state=state)
        times.append((time.perf_counter() - t) * 1e3)
    arr = np.array(times)
    print(json.dumps({
        "impl": f"upstream magenta-rt JAX ({args.compute})",
        "jax": jax.__version__, "device": str(jax.devices()[0]),
        "frames": args.frames, "setup_s": round(setup, 1),
        "p50_ms": float(np.percentile(arr, 50)), "p95_ms": float(np.percentile(arr, 95)),
        "p99_ms": float(np.percentile(arr, 99)), "max_ms": float(arr.max()), "mean_ms": float(arr.mean()),
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
