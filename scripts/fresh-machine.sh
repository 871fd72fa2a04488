#!/usr/bin/env bash
# Proves that the README's main command sets up everything from nothing: builds a minimal
# Debian root (mmdebstrap, from Debian's own packages), puts a clean clone of this repository's
# HEAD in it and runs `bash scripts/demo.sh --no-audio --steps 20` there as root.
#
# Needs root on a Debian or Ubuntu host (it installs mmdebstrap when missing). It leaves nothing
# behind: the root is unmounted and removed at exit (SONOGRAD_KEEP_ROOT=1 keeps it).
#
# Rust: rustup's own download site is not reachable from the machines this project is built on,
# so the host's toolchain (~/.cargo and ~/.rustup) is bind-mounted, read-only, into the root
# instead of letting scripts/setup.sh install one. On a machine with internet access the same
# script installs Rust with rustup. Everything else (apt packages, libtorch from PyPI's wheels)
# is fetched inside the root by the project's own scripts.
#
# Usage: bash scripts/fresh-machine.sh [extra arguments for scripts/demo.sh]
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
suite="${SONOGRAD_FRESH_SUITE:-bookworm}"
[ "$(id -u)" -eq 0 ] || { echo "fresh-machine: run as root (it builds a chroot)" >&2; exit 1; }

if ! command -v mmdebstrap >/dev/null 2>&1; then
  echo "fresh-machine: installing mmdebstrap"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends mmdebstrap >/dev/null
fi

work="$(mktemp -d /var/tmp/sonograd-fresh.XXXXXX)"
root="$work/root"
mounted=()
cleanup() {
  local i
  for ((i = ${#mounted[@]} - 1; i >= 0; i--)); do
    umount -R "${mounted[$i]}" 2>/dev/null || umount -l "${mounted[$i]}" 2>/dev/null || true
  done
  if [ "${SONOGRAD_KEEP_ROOT:-}" = 1 ]; then
    echo "fresh-machine: kept $root"
  elif ! findmnt -R "$root" >/dev/null 2>&1; then
    rm -rf "$work"
  else
    echo "fresh-machine: something is still mounted under $root; not removing it" >&2
  fi
}
trap cleanup EXIT
started=$(date +%s)

echo "fresh-machine: building a minimal $suite root in $root"
mmdebstrap --quiet --variant=apt --mode=root "$suite" "$root"

# Reach the same package registries as the host: its extra certificate authorities, resolver
# and pip configuration.
if [ -d /usr/local/share/ca-certificates ]; then
  mkdir -p "$root/usr/local/share/ca-certificates"
  cp -a /usr/local/share/ca-certificates/. "$root/usr/local/share/ca-certificates/"
fi
mkdir -p "$root/etc/ssl/certs"
[ -f /etc/ssl/certs/ca-certificates.crt ] && cp /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/"
cp /etc/resolv.conf "$root/etc/"
[ -f /etc/pip.conf ] && cp /etc/pip.conf "$root/etc/"

bind() { # bind SRC DST [ro]
  mkdir -p "$2"
  mount --bind "$1" "$2"
  mounted+=("$2")
  if [ "${3:-}" = ro ]; then mount -o remount,bind,ro "$2"; fi
}
mount -t proc proc "$root/proc"; mounted+=("$root/proc")
mount --rbind /dev "$root/dev"; mount --make-rslave "$root/dev"; mounted+=("$root/dev")
if [ -x "$HOME/.cargo/bin/cargo" ]; then
  # The toolchain only: the registry cache stays empty, so every crate is downloaded afresh.
  mkdir -p "$root/root/.cargo"
  bind "$HOME/.cargo/bin" "$root/root/.cargo/bin" ro
  bind "$HOME/.rustup" "$root/root/.rustup" ro
fi

echo "fresh-machine: cloning $(git -C "$repo" rev-parse --short HEAD) into the root"
git clone -q "$repo" "$root/root/sonograd"
cmd="cd /root/sonograd && bash scripts/demo.sh --no-audio --steps 20 $*"
echo "fresh-machine: running in the root: $cmd"
# A clean environment, as on a new machine, plus the host's variables that point pip, curl and
# git at the host's certificate bundle.
envs=(HOME=/root PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 TERM=dumb)
for v in SSL_CERT_FILE SSL_CERT_DIR REQUESTS_CA_BUNDLE PIP_CERT PIP_INDEX_URL PIP_TRUSTED_HOST \
         CURL_CA_BUNDLE GIT_SSL_CAINFO CARGO_HTTP_CAINFO NODE_EXTRA_CA_CERTS http_proxy https_proxy \
         HTTP_PROXY HTTPS_PROXY no_proxy NO_PROXY; do
  [ -n "${!v:-}" ] && envs+=("$v=${!v}")
done
# Cargo writes its registry cache under ~/.cargo, which is the root's own (only bin/ is bound).
envs+=(CARGO_HOME=/root/.cargo RUSTUP_HOME=/root/.rustup)
chroot "$root" /usr/bin/env -i "${envs[@]}" /bin/bash -c "$cmd"

# What the demo must have left behind: five recordings and five WAVs.
n_jsonl=$(find "$root/root/sonograd/demo" -name '*.jsonl' | wc -l)
n_wav=$(find "$root/root/sonograd/demo" -name '*.wav' | wc -l)
[ "$n_jsonl" -eq 5 ] && [ "$n_wav" -eq 5 ] || {
  echo "fresh-machine: FAILED: the demo wrote $n_jsonl recordings and $n_wav WAVs (want 5 and 5)" >&2
  exit 1
}
echo "fresh-machine: passed in $(( $(date +%s) - started )) s (the demo wrote $n_jsonl recordings and $n_wav WAVs)"
