"""`mrt-bridge bench --streams B[,B...]`: step cost of the batched multi-stream engine against B.

For each B, B streams (different seeds, moving conditioning) are stepped
together as `serve --streams` does: one batched model step (encoder,
temporal, depth: one ORT call each for all B streams), then each stream's
codec decode in line. Reported per B: p50/p99 of the model step, of the B
codec decodes and of the whole step; the cost per stream; a step's CPU work
over all threads and how busy the cores were (on N cores a step averages at
least work / N); and whether B streams hold real time (whole-step p99 under
the 40 ms frame).
"""

from __future__ import annotations

import time
from pathlib import Path

from .bench import FRAME_MS, _pct, bench_conditioning, cpu_work, machine
from .multistream import MultiStreamEngine, StreamInput


def parse_streams(text: str) -> list[int]:
    """``"1,2,4"`` -> [1, 2, 4] (each >= 1)."""
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ValueError(f"--streams: expected counts like 1,2,4,8, got {text!r}") from None
    if not values or min(values) < 1:
        raise ValueError(f"--streams: counts must be >= 1, got {text!r}")
    return values


def run_streams_bench(model: Path | str, counts: list[int], frames: int = 100, warmup: int = 10, *,
                      provider: str = "auto", threads: int | None = None, num_cfgs: int = 2,
                      codec_threads: int | None = None) -> dict:
    """Time ``frames`` batched steps after ``warmup`` for each stream count in ``counts``."""
    engine = MultiStreamEngine(model, max(counts), provider, threads=threads, num_cfgs=num_cfgs,
                               codec_threads=codec_threads)
    rows = []
    for b in counts:
        for sid in list(engine.stream_ids):
            engine.close(sid)
        ids = [engine.open(seed=s) for s in range(b)]
        model_ms, codec_ms, total_ms = [], [], []
        for i in range(warmup + frames):
            if i == warmup:
                cpu0, wall0 = time.process_time(), time.perf_counter()
            inputs = {sid: StreamInput(bench_conditioning(i + 7 * k)) for k, sid in enumerate(ids)}
            t0 = time.perf_counter()
            out = engine.generate(inputs)
            t1 = time.perf_counter()
            for sid, frame in out.items():
                engine.decode(sid, frame.codes)
            t2 = time.perf_counter()
            if i >= warmup:
                model_ms.append((t1 - t0) * 1e3)
                codec_ms.append((t2 - t1) * 1e3)
                total_ms.append((t2 - t0) * 1e3)
        cpu_ms, busy = cpu_work(time.process_time() - cpu0, time.perf_counter() - wall0, frames, machine()["cores"])
        total = _pct(total_ms)
        rows.append({"streams": b, "step": total, "model": _pct(model_ms), "codec": _pct(codec_ms),
                     "per_stream_p50_ms": round(total["p50_ms"] / b, 3), "cpu_ms_per_step": cpu_ms, "cores_busy": busy,
                     "realtime": total["p99_ms"] < FRAME_MS})
    import onnxruntime as ort

    base = rows[0]["step"]["p50_ms"] / rows[0]["streams"]
    for r in rows:
        r["vs_unbatched_p50"] = round(base * r["streams"] / r["step"]["p50_ms"], 2)
    return {"rows": rows, "frames": frames, "warmup": warmup, "num_cfgs": engine.num_cfgs,
            "size": engine.package.size, "precision": engine.package.precision, "synthetic": engine.is_synthetic,
            "provider": engine.provider, "threads": engine.threads, "onnxruntime": ort.__version__,
            "machine": machine()}


def format_streams_report(result: dict) -> str:
    m = result["machine"]
    lines = [
        f"batched streams: {result['size']} {result['precision']}{' (SYNTHETIC)' if result['synthetic'] else ''}, "
        f"num_cfgs {result['num_cfgs']}, {result['provider']}, threads {result['threads']}, "
        f"{result['frames']} frames after {result['warmup']} warm-up",
        f"machine: {m['cpu']}, {m['cores']} cores; onnxruntime {result['onnxruntime']}",
        "",
        "  B | step p50  step p99 | model p50  model p99 | codec p50  codec p99 | ms/stream | CPU ms/step  busy "
        "| x vs 1-stream | real time",
        "----+---------------------+---------------------+---------------------+-----------+------------------"
        "+---------------+----------",
    ]
    for r in result["rows"]:
        s, mo, c = r["step"], r["model"], r["codec"]
        lines.append(
            f"{r['streams']:3d} | {s['p50_ms']:8.2f}  {s['p99_ms']:8.2f} | {mo['p50_ms']:9.2f}  {mo['p99_ms']:9.2f} | "
            f"{c['p50_ms']:9.2f}  {c['p99_ms']:9.2f} | {r['per_stream_p50_ms']:9.2f} | "
            f"{r['cpu_ms_per_step']:11.2f} {r['cores_busy']:5.0%} | "
            f"{r['vs_unbatched_p50']:13.2f} | {'yes' if r['realtime'] else 'NO'}")
    lines.append("")
    lines.append("step = one batched model step for all B streams + B codec decodes (as serve --streams runs it); "
                 "real time: step p99 < 40 ms. CPU ms/step: the process's CPU time over all threads a step; "
                 "busy: that over the cores' time (on N cores a step averages at least CPU / N). "
                 "x vs 1-stream: B x the 1-stream step / the B-stream step (> 1: batching saves).")
    return "\n".join(lines)
