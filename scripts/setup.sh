#!/usr/bin/env bash
# Set up magenta-rt-bridge on a fresh Debian/Ubuntu machine: system libraries (when root),
# then a virtual environment in .venv with the project installed.
#   scripts/setup.sh           runtime only
#   scripts/setup.sh --test    also test tools, example compilers and the upstream oracle (.venv-oracle)
set -euo pipefail
cd "$(dirname "$0")/.."
want_test=0
[[ "${1:-}" == "--test" ]] && want_test=1

# gcc + libc6-dev build bridge/kernels (the int8 kernel of AVX2 CPUs without VNNI).
apt_packages=(libportaudio2 libjack-jackd2-0 jackd2 gcc libc6-dev)
if (( want_test )); then apt_packages+=(mono-mcs mono-runtime godot3-server chromium chromium-driver); fi
missing=()
installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }
for p in "${apt_packages[@]}"; do installed "$p" || missing+=("$p"); done
if (( ${#missing[@]} )); then
  if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
    echo "setup: installing system packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # jackd2 asks about realtime priority; preseed the answer.
    echo "jackd2 jackd/tweak_rt_limits boolean false" | debconf-set-selections
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "setup: please install these system packages (needs root): ${missing[*]}" >&2
  fi
fi

python=${PYTHON:-python3}
if [[ ! -x .venv/bin/python ]]; then "$python" -m venv .venv; fi
.venv/bin/python -m pip install -q --upgrade pip
if (( want_test )); then
  .venv/bin/python -m pip install -q -e '.[export,test]'
else
  .venv/bin/python -m pip install -q -e '.[export]'
fi

# Built here once, not on the first engine start; without a compiler ORT's kernels run.
if ! kernels=$(.venv/bin/python -m bridge.kernels.build 2>&1); then
  echo "setup: native int8 kernels not built, ONNX Runtime's run instead: ${kernels##*$'\n'}" >&2
else
  echo "setup: $kernels"
fi

if (( want_test )) && [[ -z "${MRT_ORACLE_PYTHON:-}" ]]; then
  # The upstream library (JAX) is the reference our parity tests compare against.
  if [[ ! -x .venv-oracle/bin/python ]] || ! .venv-oracle/bin/python -c "import magenta_rt" 2>/dev/null; then
    echo "setup: installing the upstream oracle magenta-rt[jax]==2.0.3 into .venv-oracle (about 1.2 GB)"
    "$python" -m venv .venv-oracle
    .venv-oracle/bin/python -m pip install -q 'magenta-rt[jax]==2.0.3'
  fi
fi
if (( want_test )); then echo "setup: done (.venv with test tools, .venv-oracle)"; else echo "setup: done (.venv)"; fi
echo "setup: to use mrt-bridge in this shell: source .venv/bin/activate   (or call .venv/bin/mrt-bridge)"
