#!/usr/bin/env bash
# Build .venv-v1-oracle: upstream Magenta RT v1 (t5x + flaxformer, JAX on CPU) as a reference
# for the v1 parity tests (tests/oracle_v1/, tests/data/v1/). Not needed for the normal suite:
# CI checks against the golden files recorded with this environment.
#
# Upstream v1 needs t5x and flaxformer, which are not on PyPI, plus airio and a newer
# jestimator than PyPI's (both t5x imports). Give this script source snapshots of them,
# each either a git checkout / mirror (the pinned commit is exported with `git archive`)
# or an already exported source tree:
#
#   T5X_SRC         github.com/google-research/t5x      commit 7781d167 (upstream v1's Dockerfile pin)
#   FLAXFORMER_SRC  github.com/google/flaxformer        commit 399ea3a8 (upstream v1's pyproject pin)
#   MAGENTA_RT_SRC  github.com/magenta/magenta-realtime commit 04ebaa7d (= eef91d4^, the last commit with v1)
#   AIRIO_SRC       github.com/google/airio             commit 69897df7
#   JESTIMATOR_SRC  github.com/google-research/jestimator commit 326824a4
#
# Example (mirrors made with `git clone --mirror`):
#   T5X_SRC=~/src/t5x.git FLAXFORMER_SRC=~/src/flaxformer.git MAGENTA_RT_SRC=~/src/magenta-realtime.git \
#   AIRIO_SRC=~/src/airio.git JESTIMATOR_SRC=~/src/jestimator.git scripts/setup_v1_oracle.sh
#
# PyPI packages are pinned in tests/oracle_v1/requirements.txt (jax 0.7.2, flax 0.12.0,
# tensorflow 2.21.0, seqio 0.0.20, gin-config 0.5.0, tf2jax 0.3.8, tensorstore 0.1.86) and
# installed with --no-deps. Upstream's own patches (patch/ at that commit) are applied:
# t5x setup.py and partitioning.py (CPU mesh), seqio vocabularies.py (no tensorflow_text).
# Needs Python 3.11 (PYTHON=...), about 2.5 GB of disk; CPU only.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${V1_ORACLE_VENV:-.venv-v1-oracle}
python=${PYTHON:-python3.11}

declare -A pins=(
  [T5X_SRC]=7781d167ab421dae96281860c09d5bd785983853
  [FLAXFORMER_SRC]=399ea3a85e9807ada653fd0de1a9de627eb0acde
  [MAGENTA_RT_SRC]=04ebaa7da13701734281c630ffd13f7ee9893e45
  [AIRIO_SRC]=69897df7d9a427b947a9f7bb4164c7782b43e601
  [JESTIMATOR_SRC]=326824a477feef6d92e6f44175000907a72899ca
)
# Paths exported from each repo (the mirrors may lack big test data blobs; these are all we need).
declare -A paths=(
  [T5X_SRC]="setup.py README.md t5x :!t5x/testdata :!t5x/contrib"
  [FLAXFORMER_SRC]="setup.py README.md flaxformer"
  [MAGENTA_RT_SRC]="setup.py pyproject.toml README.md LICENSE magenta_rt patch"
  [AIRIO_SRC]="setup.py README.md airio"
  [JESTIMATOR_SRC]="pyproject.toml README.md LICENSE jestimator/__init__.py jestimator/amos.py jestimator/amos_helper.py"
)
missing=()
for var in T5X_SRC FLAXFORMER_SRC MAGENTA_RT_SRC AIRIO_SRC JESTIMATOR_SRC; do
  [[ -n "${!var:-}" && -d "${!var}" ]] || missing+=("$var")
done
if (( ${#missing[@]} )); then
  echo "setup_v1_oracle: set these to source snapshots (git dir or source tree): ${missing[*]}" >&2
  sed -n '7,18p' "$0" >&2
  exit 2
fi
command -v "$python" >/dev/null || { echo "setup_v1_oracle: $python not found (set PYTHON=python3.11)" >&2; exit 2; }

src="$venv/src"
rm -rf "$venv"
"$python" -m venv "$venv"
mkdir -p "$src"
export_src() {  # $1 = variable name, $2 = destination
  local from=${!1} dest=$2
  mkdir -p "$dest"
  if git -C "$from" rev-parse --git-dir >/dev/null 2>&1; then
    # shellcheck disable=SC2086  # word-splitting the path list is intended
    git -C "$from" archive "${pins[$1]}" -- ${paths[$1]} | tar -x -C "$dest"
  else
    cp -a "$from"/. "$dest"/
  fi
}
for var in T5X_SRC FLAXFORMER_SRC MAGENTA_RT_SRC AIRIO_SRC JESTIMATOR_SRC; do
  name=$(echo "${var%_SRC}" | tr 'A-Z_' 'a-z_')
  echo "setup_v1_oracle: exporting $var (${pins[$var]:0:10}) to $src/$name"
  export_src "$var" "$src/$name"
done
patches="$src/magenta_rt/patch"
patch -s -d "$src/t5x" setup.py < "$patches/t5x_setup.py.patch"
patch -s -d "$src/t5x/t5x" partitioning.py < "$patches/t5x_partitioning.py.patch"

pip=("$venv/bin/python" -m pip install -q --no-deps)
"$venv/bin/python" -m pip install -q --upgrade pip
echo "setup_v1_oracle: installing pinned PyPI packages (tests/oracle_v1/requirements.txt)"
"${pip[@]}" -r tests/oracle_v1/requirements.txt
"${pip[@]}" "$src/t5x" "$src/flaxformer" "$src/airio" "$src/jestimator" "$src/magenta_rt"
seqio_dir=$("$venv/bin/python" -c "import importlib.util, os; print(os.path.dirname(importlib.util.find_spec('seqio').origin))")
patch -s -d "$seqio_dir" vocabularies.py < "$patches/seqio_vocabularies.py.patch"

echo "setup_v1_oracle: checking upstream's parameter tree against tests/data/v1/param_tree_tiny.tsv"
if ! "$venv/bin/python" tests/oracle_v1/param_tree.py tiny 2>/dev/null | diff -q - tests/data/v1/param_tree_tiny.tsv >/dev/null; then
  echo "setup_v1_oracle: the oracle's parameter tree differs from tests/data/v1/param_tree_tiny.tsv" >&2
  exit 1
fi
echo "setup_v1_oracle: done. Use it with: export MRT_V1_ORACLE_PYTHON=$PWD/$venv/bin/python"
