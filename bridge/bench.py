"""Frame-step benchmark and quality comparison of model packages.

Timing: stream warm-up + N frames through the full frame step (encoder,
temporal step with its guidance rows, depth decoder with guided sampling,
codec decode) at upstream's default sampling settings, and report per-stage
and total percentiles. With overlap (the daemon's default) the codec decodes
frame k on a second thread while frame k+1 is generated, and "total" is the
wall time of one such frame period; without it, the plain sum of the stages.
Over the measured frames it also reads the process's CPU time (all threads): a
frame's CPU work, and how busy the cores were. On N cores a frame period can
average no less than work / N, so a figure near 100% says only less work makes
frames faster, and a low one that part of the work waits for the rest.

Quality (``--against REF``): the reference package decodes greedily; the
package under test is teacher-forced with the reference's tokens so errors do
not compound, and we report per-level argmax agreement and logit error, plus
how long free-running greedy decoding stays token-identical.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
from pathlib import Path

import numpy as np

from . import FRAME_MS
from .conditioning import Conditioning
from .engine import Engine
from .pipeline import CodecOverlap
from .runtime import int8_matmul_kernel

STAGES = ("encoder", "temporal", "depth", "codec", "total")


def _pct(values: list[float]) -> dict:
    a = np.asarray(values, np.float64)
    return {
        "p50_ms": round(float(np.percentile(a, 50)), 3),
        "p95_ms": round(float(np.percentile(a, 95)), 3),
        "p99_ms": round(float(np.percentile(a, 99)), 3),
        "max_ms": round(float(a.max()), 3),
        "mean_ms": round(float(a.mean()), 3),
    }


def cpu_work(cpu_s: float, wall_s: float, steps: int, cores: int) -> tuple[float, float]:
    """From the process's CPU seconds (all threads) and the wall seconds over ``steps``: CPU ms a
    step and how busy the ``cores`` were (0-1). On N cores a step averages at least CPU / N."""
    return round(cpu_s * 1e3 / steps, 3), round(cpu_s / (cores * wall_s), 4)


def bench_conditioning(i: int) -> np.ndarray:
    """A moving conditioning (style, a held note, drums) so nothing is trivially cached."""
    notes = np.full(128, -1)
    notes[60 + (i // 25) % 12] = 2 if i % 25 == 0 else 1
    return Conditioning(style_tokens=(np.arange(12) * 83 + i // 50) % 1024, notes=notes, drums=1).to_vector()


# Instruction sets that decide which ONNX Runtime (MLAS) kernels run: int8 dot products
# (VNNI), 512-bit vectors, bf16 and AMX tiles.
ISA_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_bf16", "amx_int8")


def machine() -> dict:
    """CPU model, core count and the instruction sets of ISA_FLAGS it has."""
    info: dict[str, str] = {}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            info.setdefault(key.strip(), value.strip())  # the first processor's
    except OSError:
        pass
    cpu = info.get("model name") or platform.processor() or platform.machine()
    flags = set(info.get("flags", "").split())
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(),
            "isa": [f for f in ISA_FLAGS if f in flags]}


def run_bench(engine: Engine, frames: int = 200, warmup: int = 20, overlap: bool = True) -> dict:
    """Time ``frames`` frame periods after ``warmup``; see the module docstring."""
    import time

    timings: dict[str, list[float]] = {s: [] for s in STAGES}
    wide = 0
    codec = CodecOverlap(engine, overlap)
    first_measured = warmup + codec.latency_frames
    try:
        for i in range(first_measured + frames):
            if i == first_measured:
                cpu0, wall0 = time.process_time(), time.perf_counter()
            t0 = time.perf_counter()
            done = codec.push(engine.generate(bench_conditioning(i)))
            period = (time.perf_counter() - t0) * 1e3
            if done is None or done.index < warmup:
                continue
            for s in STAGES[:-1]:
                timings[s].append(done.timings_ms.get(s, 0.0))
            wide += done.depth_threads > engine.threads["model"]
            timings["total"].append(period if codec.overlap else sum(done.timings_ms.get(s, 0.0) for s in STAGES[:-1]))
        cpu_s, wall_s = time.process_time() - cpu0, time.perf_counter() - wall0
    finally:
        codec.close()
    total = _pct(timings["total"])
    host = machine()
    import onnxruntime as ort

    return {
        **total,
        "num_cfgs": engine.num_cfgs,
        "rows": engine.rows,
        "overlap": codec.overlap,
        "threads": engine.threads,
        "depth_wide_share": round(wide / frames, 4),
        **dict(zip(("cpu_ms_per_frame", "cores_busy"), cpu_work(cpu_s, wall_s, frames, host["cores"]))),
        "rtf": round(total["mean_ms"] / FRAME_MS, 4),
        "x_realtime_p50": round(FRAME_MS / total["p50_ms"], 2),
        "stages": {s: _pct(timings[s]) for s in STAGES if s != "total"},
        "frames": frames,
        "warmup": warmup,
        "size": engine.package.size,
        "precision": engine.package.precision,
        "int8_scheme": engine.package.int8_scheme,
        "int8_matmul_kernel": int8_matmul_kernel(engine.package, engine.providers),
        "codec_precision": engine.package.codec_variant(),
        "synthetic": engine.is_synthetic,
        "provider": engine.provider,
        "onnxruntime": ort.__version__,
        "machine": host,
    }


def compare_quality(test: Engine, reference: Engine, frames: int = 100) -> dict:
    """Token agreement and logit error of ``test`` against ``reference`` (greedy, teacher-forced)."""
    agree, max_err, mean_err = [], 0.0, []
    ref_frames = []
    for i in range(frames):
        r = reference.step(bench_conditioning(i), 1.0, 1)
        t = test.step(bench_conditioning(i), 1.0, 1, forced_tokens=r.tokens)
        ref_frames.append(r.tokens)
        agree.append(t.logits.argmax(-1) == r.logits.argmax(-1))
        diff = np.abs(t.logits - r.logits)
        max_err = max(max_err, float(diff.max()))
        mean_err.append(float(diff.mean()))
    agree = np.stack(agree)
    reference.reset()
    test.reset()
    same = 0
    for i in range(frames):
        if (test.step(bench_conditioning(i), 1.0, 1).tokens != ref_frames[i]).any():
            break
        same += 1
    return {
        "frames": frames,
        "argmax_agreement": round(float(agree.mean()), 4),
        "argmax_agreement_per_level": [round(float(x), 3) for x in agree.mean(axis=0)],
        "logit_max_abs_err": round(max_err, 4),
        "logit_mean_abs_err": round(float(np.mean(mean_err)), 5),
        "greedy_identical_frames": same,
    }


def run_upstream(checkpoint: Path, size: str, frames: int, warmup: int, compute: str, num_cfgs: int = 0) -> dict:
    """Time upstream's JAX streaming step in the oracle interpreter ($MRT_ORACLE_PYTHON)."""
    python = os.environ.get("MRT_ORACLE_PYTHON")
    if not python:
        raise RuntimeError(
            "--compare-upstream needs the upstream oracle: set MRT_ORACLE_PYTHON to a Python with "
            "'magenta-rt[jax]==2.0.3' installed (see README, 'Benchmarks')"
        )
    script = Path(__file__).resolve().parent.parent / "benchmarks" / "upstream_step.py"
    if not script.is_file():
        raise RuntimeError(f"{script} is missing (run from a source checkout for --compare-upstream)")
    proc = subprocess.run(
        [python, str(script), "--size", size, "--checkpoint", str(checkpoint),
         "--frames", str(frames), "--warmup", str(warmup), "--compute", compute, "--num-cfgs", str(num_cfgs)],
        capture_output=True, text=True, timeout=3600,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"upstream benchmark failed:\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def format_report(result: dict) -> str:
    lines = [
        f"model {result['size']} ({result['precision']}{', synthetic' if result['synthetic'] else ''}"
        f"{', scheme ' + result['int8_scheme'] if result.get('int8_scheme') else ''}"
        f"{' on ' + result['int8_matmul_kernel'] if result.get('int8_matmul_kernel') else ''}"
        f"{'; codec ' + result['codec_precision'] if result.get('codec_precision') else ''}) "
        f"on {result['provider']}, {result['machine']['cores']} cores ({result['machine']['cpu']}; "
        f"{' '.join(result['machine']['isa']) or 'no AVX2'}), onnxruntime {result['onnxruntime']}",
        f"{result['frames']} frames after {result['warmup']} warm-up; guidance rows {result['rows']} "
        f"(--num-cfgs {result['num_cfgs']}); codec {'overlapped on a second thread' if result['overlap'] else 'in line'}",
        f"{'stage':<10}{'p50':>9}{'p95':>9}{'p99':>9}{'max':>9}  (ms per 40 ms frame)",
    ]
    for name, s in [*result["stages"].items(), ("total", result)]:
        lines.append(f"{name:<10}{s['p50_ms']:>9.2f}{s['p95_ms']:>9.2f}{s['p99_ms']:>9.2f}{s['max_ms']:>9.2f}")
    t = result["threads"]
    lines.append(
        f"threads: model {t['model']}, codec {t['codec']}; depth decoder on {t['depth_wide']} in "
        f"{result['depth_wide_share']:.0%} of frames (those with no decode beside it)"
        if t["depth_wide"] else f"threads: model {t['model']}, codec {t['codec']}"
    )
    cpu = result["cpu_ms_per_frame"]
    cores = result["machine"]["cores"]
    lines.append(
        f"CPU {cpu:.2f} ms a frame (all threads): {cores} cores {result['cores_busy']:.0%} busy; "
        f"at this much work a frame period averages at least {cpu / cores:.2f} ms"
    )
    lines.append(
        f"real-time factor {result['rtf']:.3f} (mean step / 40 ms; < 1 is faster than real time), "
        f"{result['x_realtime_p50']:.2f}x real time at p50"
    )
    if "quality" in result:
        q = result["quality"]
        lines.append(
            f"quality vs {q['reference']}: argmax agreement {q['argmax_agreement']:.2%} (teacher-forced), "
            f"logit error max {q['logit_max_abs_err']:.3g} mean {q['logit_mean_abs_err']:.3g}, "
            f"greedy identical for {q['greedy_identical_frames']}/{q['frames']} frames"
        )
    if "upstream" in result:
        u = result["upstream"]
        lines.append(
            f"upstream ({u['impl']}, same machine): p50 {u['p50_ms']:.1f} ms, p99 {u['p99_ms']:.1f} ms "
            f"-> ours is {u['p50_ms'] / result['p50_ms']:.1f}x faster at p50"
        )
    return "\n".join(lines)
