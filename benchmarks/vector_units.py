"""Do this machine's CPUs have int8 multiply units of their own, or share one core's?

On a VM the vCPUs may be separate cores or the two threads of one core (or take turns with
other guests), and that decides how the model step and the overlapped codec decode, both int8
multiply-bound, run side by side. This compiles ``vector_units.c`` with the system C compiler,
runs it on each CPU alone, then on all at once, and prints each CPU's int8 multiply rate
(vpmaddubsw + vpmaddwd, 2 instructions per 32 multiply-adds, as in ORT's u8 x s8 kernels and
mrt-bridge's rows kernel) and the ratio together / alone: ~1 means separate cores, ~1/N that
the N CPUs share one core's units. Then the same for reading memory (``--read-mb`` streamed with
AVX2 loads, best of four passes): the ceiling of a step that streams its int8 weights once a
frame, as the temporal step does. Rates, not a verdict: run it a few times on a VM, whose
placement changes. The last line is one JSON object.

    .venv/bin/python benchmarks/vector_units.py --repeat 3
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from bridge.bench import machine
from bridge.kernels.build import compiler

SOURCE = Path(__file__).with_name("vector_units.c")


def build(folder: Path) -> Path:
    cc = compiler()
    if cc is None:
        sys.exit("vector_units: no C compiler (cc/gcc) on PATH")
    exe = folder / "vector_units"
    subprocess.run([cc, "-O2", "-mavx2", "-o", str(exe), str(SOURCE)], check=True)
    return exe


def run_on(exe: Path, cpus: list[int], probe: list[str]) -> list[float]:
    """Start one copy pinned to each of ``cpus`` at once with arguments ``probe``; each copy's
    rate (G multiply ops / s, or GB/s read)."""
    procs = [subprocess.Popen([str(exe), *probe], stdout=subprocess.PIPE, text=True,
                              preexec_fn=lambda c=c: os.sched_setaffinity(0, {c})) for c in cpus]
    return [float(p.communicate()[0].split()[1]) for p in procs]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeat", type=int, default=3, help="runs of each measurement, best kept (default 3)")
    p.add_argument("--iterations", type=int, default=100_000_000,
                   help="loop iterations of 12 multiplies per run (default 1e8: ~0.2 s on a 3 GHz core)")
    p.add_argument("--read-mb", type=int, default=256,
                   help="megabytes each copy streams from memory (default 256: beyond any cache)")
    args = p.parse_args()
    if min(args.repeat, args.iterations, args.read_mb) < 1:
        p.error("--repeat, --iterations and --read-mb must be >= 1")
    if "avx2" not in machine()["isa"]:
        sys.exit("vector_units: this CPU has no AVX2")
    cpus = sorted(os.sched_getaffinity(0))
    with tempfile.TemporaryDirectory() as tmp:
        exe = build(Path(tmp))
        alone, together = measure(exe, cpus, [str(args.iterations)], args.repeat)
        read_alone, read_together = measure(exe, cpus, ["read", str(args.read_mb)], args.repeat)
    gmac = 16.0  # multiply-adds per multiply instruction, two instructions per 32
    for c in cpus:
        print(f"cpu {c}: alone {alone[c] * gmac:6.1f} int8 GMAC/s, reads {read_alone[c]:5.1f} GB/s")
    ratio = sum(together) / sum(alone.values())
    print(f"all {len(cpus)} at once: " + ", ".join(f"{r * gmac:.1f}" for r in together)
          + f" int8 GMAC/s each; together / alone {ratio:.2f}"
          + f" (1: separate cores; {1 / len(cpus):.2f}: one core's units shared)")
    read_ratio = sum(read_together) / sum(read_alone.values())
    print(f"reading {args.read_mb} MB each, all at once: " + ", ".join(f"{r:.1f}" for r in read_together)
          + f" GB/s each; together / alone {read_ratio:.2f}")
    print(json.dumps({**machine(), "cpus": cpus, "alone_gmac_s": {c: round(v * gmac, 1) for c, v in alone.items()},
                      "together_gmac_s": [round(v * gmac, 1) for v in together],
                      "together_over_alone": round(ratio, 3),
                      "read_mb": args.read_mb,
                      "alone_read_gb_s": {c: round(v, 2) for c, v in read_alone.items()},
                      "together_read_gb_s": [round(v, 2) for v in read_together],
                      "read_together_over_alone": round(read_ratio, 3)}))
    return 0


def measure(exe: Path, cpus: list[int], probe: list[str], repeat: int) -> tuple[dict[int, float], list[float]]:
    """The best of ``repeat`` runs of ``probe`` on each CPU alone, and on all at once."""
    alone = {c: max(run_on(exe, [c], probe)[0] for _ in range(repeat)) for c in cpus}
    together = max((run_on(exe, cpus, probe) for _ in range(repeat)), key=sum)
    return alone, together


if __name__ == "__main__":
    raise SystemExit(main())
