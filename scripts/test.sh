#!/usr/bin/env bash
# Set up everything the test suite needs (see setup.sh --test), then run it.
# Extra arguments go to pytest, e.g. scripts/test.sh -k osc
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --test
export MRT_ORACLE_PYTHON="${MRT_ORACLE_PYTHON:-$PWD/.venv-oracle/bin/python}"
exec .venv/bin/python -m pytest -p no:cacheprovider "$@"
