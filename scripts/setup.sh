#!/usr/bin/env bash
# One-time set-up, run by scripts/demo.sh and scripts/test.sh; safe to run again.
# - Debian/Ubuntu packages that are missing (through apt; sudo when not root):
#     build-essential pkg-config libasound2-dev libjack-jackd2-dev python3 python3-pip python3-venv python3-dev ca-certificates curl
# - Rust through rustup when cargo is missing.
# - libtorch 2.13.0 into ./libtorch (scripts/setup-libtorch.sh), unless LIBTORCH or
#   LIBTORCH_USE_PYTORCH is set.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"

# Packages to build and run sonograd (cpal is built with its JACK backend, so JACK's headers are
# needed even by the default build; Python's headers let the Python client build its native
# measuring path, clients/python/sonograd/_native.c); scripts/test.sh adds the tests' real peers through
# SONOGRAD_EXTRA_PKGS.
pkgs=(build-essential pkg-config libasound2-dev libjack-jackd2-dev python3 python3-pip python3-venv python3-dev ca-certificates curl)
for extra in ${SONOGRAD_EXTRA_PKGS:-}; do pkgs+=("$extra"); done
have() { command -v "$1" >/dev/null 2>&1; }
need_pkgs=()
if have dpkg; then
  for p in "${pkgs[@]}"; do
    dpkg -s "$p" >/dev/null 2>&1 || need_pkgs+=("$p")
  done
else
  have g++ || need_pkgs+=(build-essential)
  have python3 || need_pkgs+=(python3)
fi

if [ ${#need_pkgs[@]} -gt 0 ]; then
  if ! have apt-get; then
    echo "setup: missing ${need_pkgs[*]} and no apt-get here; install them yourself" >&2
    exit 1
  fi
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "setup: installing with apt: ${need_pkgs[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}" >/dev/null
fi

if ! have cargo; then
  if [ -x "$HOME/.cargo/bin/cargo" ]; then
    export PATH="$HOME/.cargo/bin:$PATH"
  else
    echo "setup: installing Rust with rustup (https://rustup.rs)"
    curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal -c clippy,rustfmt
    export PATH="$HOME/.cargo/bin:$PATH"
  fi
fi

bash "$root/scripts/setup-libtorch.sh"
