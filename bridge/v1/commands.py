"""The CLI for v1 packages: ``export``, ``render`` and ``bench`` dispatch here on the family.

The shared command modules parse the arguments; these functions run them for Magenta RT v1
(2 s chunks) and refuse, with one line, what only MRT2 has (notes, drums, events, prefill).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import time

import numpy as np

from onnx_export.v1 import config as v1

log = logging.getLogger("mrt-bridge")

# The seed document's figure for upstream v1 on a TPU: about 1.25 s to generate 2 s of audio.
UPSTREAM_TPU_CHUNK_MS = 1250.0
CHUNK_MS = v1.CHUNK_SECONDS * 1000


def export_v1(args: argparse.Namespace) -> int:
    """`mrt-bridge export` on a t5x checkpoint directory."""
    from onnx_export.v1.export import export_v1_package

    if args.size is not None and args.size not in v1.SIZES:
        raise ValueError(f"--size {args.size} is not a v1 size ({', '.join(v1.SIZES)})")
    if getattr(args, "codec_encoder", None) is not None:
        raise ValueError("--codec-encoder is for MRT2 checkpoints (v1 has no live audio input)")
    out = export_v1_package(args.checkpoint, args.out, args.precision, size=args.size, codec=args.codec,
                            int8_scheme=args.int8_scheme)
    print(f"wrote v1 model package {out}")
    return 0


def _refuse(args: argparse.Namespace, flags: dict[str, object]) -> None:
    given = [flag for flag, value in flags.items() if value not in (None, False)]
    if given:
        raise ValueError(f"{', '.join(given)}: not available for Magenta RT v1 packages "
                         "(2 s chunks conditioned on style only)")


def sampling_args(args: argparse.Namespace) -> tuple[float, float, int]:
    """(guidance, temperature, top-k) from the flags, upstream's defaults (5.0, 1.1, 40) where absent."""
    guidance = v1.DEFAULT_GUIDANCE_WEIGHT if getattr(args, "guidance", None) is None else float(args.guidance)
    temperature = v1.DEFAULT_TEMPERATURE if args.temperature is None else float(args.temperature)
    top_k = v1.DEFAULT_TOPK if args.top_k is None else int(args.top_k)
    if not (math.isfinite(guidance) and -10 <= guidance <= 20):
        raise ValueError("--guidance must be in -10..20")
    if not (math.isfinite(temperature) and 0 <= temperature <= 3):
        raise ValueError("--temperature must be in 0..3 (0 = greedy)")
    if not 0 <= top_k <= v1.NUM_EMBEDDINGS:
        raise ValueError(f"--top-k must be in 0..{v1.NUM_EMBEDDINGS} (0 = no cutoff)")
    return guidance, temperature, top_k


def render_v1(args: argparse.Namespace) -> int:
    """`mrt-bridge render` with a v1 package: whole chunks, cut to the length asked for."""
    from bridge.render import check_writable, write_wav
    from bridge.v1.engine import V1Engine

    _refuse(args, {"--events": args.events, "--config": args.config, "--trace-out": args.trace_out,
                   "--preset": args.preset, "--prefill": getattr(args, "prefill", None),
                   "--num-cfgs": getattr(args, "num_cfgs", None)})
    frames = args.frames if args.frames is not None else int(round(args.seconds * v1.FRAME_RATE))
    if frames <= 0:
        raise ValueError("nothing to render: --frames/--seconds must be positive")
    guidance, temperature, top_k = sampling_args(args)
    check_writable(args.out)
    if args.tokens_out is not None:
        check_writable(args.tokens_out)
    engine = V1Engine(args.model, args.provider)
    if engine.codec is None:
        raise ValueError(f"{args.model}: the package has no codec decoder, so it cannot render audio "
                         "(export it with --codec)")
    style = None if args.style_tokens is None else np.array(args.style_tokens)
    chunks = math.ceil(frames / v1.CHUNK_FRAMES)
    audio, tokens, times = [], [], []
    for _ in range(chunks):
        t0 = time.perf_counter()
        chunk = engine.generate_chunk(style, seed=args.seed, guidance_weight=guidance,
                                      temperature=temperature, topk=top_k)
        times.append((time.perf_counter() - t0) * 1e3)
        audio.append(chunk.audio)
        tokens.append(chunk.tokens)
    write_wav(args.out, np.concatenate(audio)[: frames * v1.FRAME_SAMPLES])
    if args.tokens_out is not None:
        np.save(args.tokens_out, np.concatenate(tokens)[:frames])
    p50 = float(np.percentile(times, 50))
    print(f"wrote {args.out}: {frames} frames ({frames / v1.FRAME_RATE:.2f} s) in {chunks} chunks of 2 s, "
          f"Magenta RT v1 {engine.size}{' (synthetic)' if engine.is_synthetic else ''}, seed {args.seed}, "
          f"guidance {guidance:g}, temperature {temperature:g}, top-k {top_k}; chunk p50 {p50:.0f} ms "
          f"({CHUNK_MS / max(p50, 1e-6):.2f}x real time)")
    return 0


def bench_v1(args: argparse.Namespace) -> int:
    """`mrt-bridge bench` with a v1 package: whole-chunk time against the 2 s budget."""
    from bridge.v1.engine import V1Engine

    _refuse(args, {"--against": args.against, "--compare-upstream": args.compare_upstream,
                   "--streams": args.streams, "--codec-threads": args.codec_threads,
                   "--num-cfgs": args.num_cfgs})
    chunks = max(1, math.ceil(args.frames / v1.CHUNK_FRAMES))
    warmup = math.ceil(args.warmup / v1.CHUNK_FRAMES)
    engine = V1Engine(args.model, args.provider, threads=args.threads)
    stages: dict[str, list[float]] = {}
    totals = []
    for i in range(warmup + chunks):
        t0 = time.perf_counter()
        chunk = engine.generate_chunk(None, seed=0)
        if i >= warmup:
            totals.append((time.perf_counter() - t0) * 1e3)
            for key, ms in chunk.timings_ms.items():
                stages.setdefault(key, []).append(ms)
    p50, p99 = (float(np.percentile(totals, q)) for q in (50, 99))
    result = {
        "family": "v1", "model": str(args.model), "size": engine.size, "synthetic": engine.is_synthetic,
        "precision": engine.package.precision, "provider": engine.provider, "chunks": chunks,
        "warmup_chunks": warmup, "chunk_ms_budget": CHUNK_MS, "p50_ms": round(p50, 1), "p99_ms": round(p99, 1),
        "max_ms": round(max(totals), 1), "realtime_factor_p50": round(CHUNK_MS / p50, 3),
        "upstream_tpu_chunk_ms": UPSTREAM_TPU_CHUNK_MS,
        "vs_upstream_tpu_p50": round(UPSTREAM_TPU_CHUNK_MS / p50, 3),
        "stages_p50_ms": {k: round(float(np.percentile(v, 50)), 1) for k, v in stages.items()},
    }
    if args.json:
        print(json.dumps(result))
        return 0
    if engine.is_synthetic:
        print("note: synthetic package (random weights): timing only, the audio is noise")
    verdict = "holds real time" if p99 <= CHUNK_MS else "does NOT hold real time"
    print(f"Magenta RT v1 {engine.size} ({engine.package.precision}, {engine.provider}): {chunks} chunks of 2 s "
          f"after {warmup} warm-up\n"
          f"  chunk p50 {p50:.0f} ms, p99 {p99:.0f} ms, max {max(totals):.0f} ms against the {CHUNK_MS:.0f} ms "
          f"budget: {CHUNK_MS / p50:.2f}x real time at p50, {verdict} at p99\n"
          f"  upstream on a TPU: about {UPSTREAM_TPU_CHUNK_MS:.0f} ms per chunk ({UPSTREAM_TPU_CHUNK_MS / p50:.2f}x "
          "this machine's p50)\n"
          "  stages p50: " + ", ".join(f"{k} {v:.0f} ms" for k, v in result["stages_p50_ms"].items()))
    return 0
