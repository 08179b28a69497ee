"""Which of the instruction sets ONNX Runtime's CPU kernels dispatch on this CPU has."""

from __future__ import annotations

from pathlib import Path

# /proc/cpuinfo flag names, in order of the kernels MLAS picks (fp32 GEMM/conv, int8 dot
# products, bf16 and AMX tiles).
ISA_FLAGS = ("avx2", "fma", "avx512f", "avx512bw", "avx512_vnni", "avx_vnni", "avx512_bf16",
             "amx_tile", "amx_int8", "amx_bf16")


def cpu_isa(cpuinfo: Path = Path("/proc/cpuinfo")) -> list[str]:
    """The ``ISA_FLAGS`` this machine's first CPU reports (empty where /proc/cpuinfo is absent)."""
    try:
        text = cpuinfo.read_text()
    except OSError:
        return []
    for line in text.splitlines():
        if line.startswith("flags"):
            have = set(line.split(":", 1)[1].split())
            return [f for f in ISA_FLAGS if f in have]
    return []


def has_int8_dot(isa: list[str]) -> bool:
    """True where int8 convolutions run on dot-product instructions (VNNI or AMX)."""
    return any(f in isa for f in ("avx512_vnni", "avx_vnni", "amx_int8"))
