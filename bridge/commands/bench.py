"""`mrt-bridge bench`: per-frame latency of the full frame step, and quality against a reference."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from bridge.commands.engine_args import add_engine_args, engine_options


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "bench",
        help="benchmark the frame step (p50/p95/p99 per frame, real-time factor, per stage)",
        description=(
            "Stream frames through the full frame step (encoder, temporal step, depth decoder with "
            "sampling, codec decode) and report p50/p95/p99/max milliseconds per 40 ms frame, the "
            "real-time factor, a per-stage breakdown and a frame's CPU work (all threads; on N cores "
            "a frame period averages at least work / N, so cores near 100% busy mean only less work "
            "is faster: JSON cpu_ms_per_frame, cores_busy). Optionally compare quality against a "
            "reference package (e.g. the fp32 export of the same checkpoint) and speed against "
            "upstream's JAX implementation on the same checkpoint. On AVX2 CPUs without AMX the int8 "
            "matmuls of rows/rows_u8 packages run on mrt-bridge's own exact kernel (the header says "
            "'on mrt-bridge/avx2' or 'on mrt-bridge/avx512-vnni'); MRT_BRIDGE_NATIVE_KERNELS=off runs "
            "ORT's instead, =on uses it on any AVX2 CPU, =avx2 its AVX2 variant even where the CPU has "
            "VNNI (default auto)."
        ),
    )
    p.add_argument("--model", type=Path, help="model package (default: the bundled synthetic model)")
    p.add_argument("--frames", type=int, default=200, help="measured frames (default 200)")
    p.add_argument("--warmup", type=int, default=20, help="unmeasured frames first (default 20)")
    p.add_argument("--provider", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--threads", type=int,
                   help="ONNX Runtime intra-op threads of the model graphs (default: min(cores - 1, 4), at "
                        "least 1: the overlapped codec keeps a core, and the depth decoder takes the codec's threads too "
                        "in frames where no decode runs beside it; --streams: min(cores, 4))")
    p.add_argument("--codec-threads", type=int,
                   help="intra-op threads of the codec decoder (default: the cores --threads leaves, at least 1)")
    add_engine_args(p, prefill=False)
    p.add_argument("--no-overlap", dest="overlap", action="store_false",
                   help="decode in line after each model step instead of overlapped on a second thread "
                        "(as the daemon does); total is then the sum of the stages")
    p.add_argument("--json", action="store_true",
                   help="print one JSON object (last line; p50_ms, p99_ms, ...) instead of a table")
    p.add_argument("--against", type=Path, metavar="REF_PKG",
                   help="reference package for quality figures (argmax agreement, logit error)")
    p.add_argument("--compare-upstream", action="store_true",
                   help="also time upstream's JAX streaming step on --checkpoint (needs MRT_ORACLE_PYTHON)")
    p.add_argument("--checkpoint", type=Path, help="source checkpoint, for --compare-upstream")
    p.add_argument("--upstream-compute", default="bfloat16", choices=["bfloat16", "float32"],
                   help="upstream's compute dtype for --compare-upstream (its default: bfloat16)")
    p.add_argument("--streams", metavar="B[,B...]",
                   help="benchmark the batched multi-stream engine (serve --streams) instead: for each count B, "
                        "B streams stepped together; prints B vs step p50/p99 (model, codec, whole step), the "
                        "cost per stream and whether B streams hold real time, e.g. --streams 1,2,4,8")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from bridge import bench
    from bridge.engine import Engine
    from bridge.synthetic import NOTICE, bundled_package

    if args.frames < 1 or args.warmup < 0:
        raise ValueError("--frames must be >= 1 and --warmup >= 0")
    model = args.model or bundled_package()
    from bridge.v1.engine import is_v1_package

    if is_v1_package(model):
        from bridge.v1.commands import bench_v1

        return bench_v1(args)
    if args.streams is not None:
        return _run_streams(args, model)
    engine = Engine(model, args.provider, threads=args.threads, seed=0, num_cfgs=engine_options(args, None)[0],
                    codec_threads=args.codec_threads)
    if engine.is_synthetic and not args.json:
        print(NOTICE)
    result = bench.run_bench(engine, args.frames, args.warmup, overlap=args.overlap)
    if args.against:
        ref = Engine(args.against, args.provider, threads=args.threads, decode_audio=False, num_cfgs=engine.num_cfgs)
        engine.reset(seed=0)
        result["quality"] = {"reference": str(args.against), **bench.compare_quality(engine, ref)}
    if args.compare_upstream:
        if args.checkpoint is None:
            raise ValueError("--compare-upstream needs --checkpoint (the checkpoint the package came from)")
        if engine.package.size not in ("mrt2_small", "mrt2_base"):
            raise ValueError("--compare-upstream needs a package of a published size (mrt2_small or mrt2_base)")
        result["upstream"] = bench.run_upstream(
            args.checkpoint, engine.package.size, min(args.frames, 50), min(args.warmup, 5), args.upstream_compute,
            engine.num_cfgs,
        )
        result["upstream_ratio_p50"] = round(result["upstream"]["p50_ms"] / result["p50_ms"], 2)
    if args.json:
        print(json.dumps(result))
    else:
        print(bench.format_report(result))
    return 0


def _run_streams(args: argparse.Namespace, model: Path) -> int:
    from bridge.bench_streams import format_streams_report, parse_streams, run_streams_bench

    for flag, value in (("--against", args.against), ("--compare-upstream", args.compare_upstream)):
        if value:
            raise ValueError(f"{flag} is not supported with --streams")
    counts = parse_streams(args.streams)
    result = run_streams_bench(model, counts, args.frames, args.warmup, provider=args.provider,
                               threads=args.threads, num_cfgs=engine_options(args, None)[0],
                               codec_threads=args.codec_threads)
    print(json.dumps(result) if args.json else format_streams_report(result))
    return 0
