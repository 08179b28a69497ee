"""Run upstream oracle scripts (tests/oracle/*.py) from our venv, without JAX.

The oracle interpreter (one with ``magenta-rt[jax]``) is named by the env var
``MRT_ORACLE_PYTHON``. Tests marked ``@pytest.mark.oracle`` call
:func:`require_oracle` first: it skips when the variable is unset, except on CI
(``CI=true``), where a missing oracle is a failure, not a skip.
"""

from __future__ import annotations

import logging
import os
import subprocess
from pathlib import Path

import pytest

from tests.ci import missing

logger = logging.getLogger(__name__)

ORACLE_ENV = "MRT_ORACLE_PYTHON"
ORACLE_DIR = Path(__file__).resolve().parent / "oracle"
_TAIL_CHARS = 4000


class OracleError(RuntimeError):
    """An oracle script exited non-zero or timed out."""


def oracle_python() -> str | None:
    """Path of the oracle interpreter from ``$MRT_ORACLE_PYTHON``, or None if unset."""
    value = os.environ.get(ORACLE_ENV, "").strip()
    return value or None


def require_oracle() -> str:
    """Return the oracle interpreter; skip the test if unset (fail on CI=true)."""
    path = oracle_python()
    if path is None:
        message = (
            f"{ORACLE_ENV} is not set: point it at a Python with magenta-rt[jax]==2.0.3 "
            "(e.g. /opt/oracle/bin/python) to run upstream parity tests"
        )
        missing(message)
    if not Path(path).exists():
        pytest.fail(f"{ORACLE_ENV}={path!r} does not exist", pytrace=False)
    return path


def _tail(text: str | bytes | None) -> str:
    if text is None:
        return ""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return text[-_TAIL_CHARS:]


def run_oracle(script_name: str, *args: str | os.PathLike[str], timeout: float = 600) -> None:
    """Run ``tests/oracle/<script_name>`` with the oracle Python; raise OracleError on failure.

    Runs with ``cwd`` set to the script's directory so that upstream's own
    package layout cannot be shadowed by anything in the caller's directory.
    """
    python = require_oracle()
    script = ORACLE_DIR / script_name
    if not script.is_file():
        raise FileNotFoundError(f"no oracle script {script}")
    cmd = [python, str(script), *(os.fspath(a) for a in args)]
    env = dict(os.environ)
    env.setdefault("JAX_PLATFORMS", "cpu")
    logger.info("oracle: %s", " ".join(cmd))
    try:
        proc = subprocess.run(cmd, cwd=ORACLE_DIR, env=env, capture_output=True, text=True,
                              timeout=timeout, check=False)
    except subprocess.TimeoutExpired as exc:
        raise OracleError(
            f"oracle timed out after {timeout}s: {' '.join(cmd)}\n"
            f"--- stdout tail ---\n{_tail(exc.stdout)}\n--- stderr tail ---\n{_tail(exc.stderr)}"
        ) from exc
    if proc.returncode != 0:
        raise OracleError(
            f"oracle exited {proc.returncode}: {' '.join(cmd)}\n"
            f"--- stdout tail ---\n{_tail(proc.stdout)}\n--- stderr tail ---\n{_tail(proc.stderr)}"
        )
    logger.debug("oracle stderr tail:\n%s", _tail(proc.stderr))
