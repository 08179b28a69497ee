"""Build the native kernels' shared library once per source version, with the system C compiler.

The library is cached in the project's cache (``bridge.synthetic.cache_dir``), under
``kernels/<hash of sources, compiler and flags>/``, and written atomically, so concurrent
processes and an interrupted build never leave a broken file. ``scripts/setup.sh`` builds it;
a process that finds none builds it on first use.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path

from ..synthetic import cache_dir

log = logging.getLogger(__name__)

HERE = Path(__file__).parent
SOURCES = ("rows_gemv.c", "rows_gemv_vnni.c", "elu_quantize.c", "narrow_conv.c", "ort_ops.c")
HEADERS = ("rows_gemv.h", "elu_quantize.h", "narrow_conv.h", "ort_abi.h")
# AVX2 for the kernel; the library is only registered on CPUs that have it (rows_matmul.usable).
# rows_gemv_vnni.c asks for AVX-512 VNNI itself and runs only where the CPU has it (gemv_variant);
# narrow_conv.c asks for FMA, and its operator refuses a CPU without it (narrow_conv_supported).
CFLAGS = ("-O3", "-mavx2", "-std=c11", "-shared", "-fPIC", "-fvisibility=hidden", "-Wall", "-Werror")
LIBRARY_NAME = "libmrt_kernels.so"


def compiler() -> str | None:
    """The C compiler to use: $CC, else cc or gcc on PATH; None when there is none."""
    for name in (os.environ.get("CC"), "cc", "gcc"):
        if name and shutil.which(name):
            return name
    return None


def _digest(cc: str) -> str:
    h = hashlib.sha256(" ".join((cc, *CFLAGS)).encode())
    for name in (*SOURCES, *HEADERS):
        h.update((HERE / name).read_bytes())
    return h.hexdigest()[:16]


def build(out_dir: Path | None = None) -> Path:
    """Compile the library (if this source version is not built yet) and return its path.
    Raises RuntimeError with the compiler's message when it cannot be built."""
    cc = compiler()
    if cc is None:
        raise RuntimeError("no C compiler (cc, gcc or $CC) on PATH")
    target = (out_dir or cache_dir() / "kernels") / _digest(cc) / LIBRARY_NAME
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with replacing(target) as tmp:
        cmd = [cc, *CFLAGS, "-o", str(tmp), *(str(HERE / s) for s in SOURCES)]
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode:
            raise RuntimeError(f"{' '.join(cmd)} failed: {done.stderr.strip()}")
    log.info("built native kernels: %s", target)
    return target


@contextmanager
def replacing(target: Path) -> Iterator[Path]:
    """A temporary path beside ``target`` for the caller to write; renamed onto ``target`` when
    the block ends normally, removed if it raises (so ``target`` is never half-written)."""
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        yield tmp
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


@cache
def library() -> Path | None:
    """The built library, building it on first use; None (logged once) when it cannot be built."""
    try:
        return build()
    except (OSError, RuntimeError) as exc:
        log.warning("native int8 kernels unavailable, ONNX Runtime's own are used: %s", exc)
        return None


if __name__ == "__main__":  # scripts/setup.sh
    print(f"native int8 kernels: {build()}")
