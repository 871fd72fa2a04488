# Sourced by the whole-process benchmarks, after they set $root: reads RUNS (the first
# argument, default 7), the binary ($SONOGRAD_BIN, default target/release/sonograd) and
# Python ($SONOGRAD_PYTHON, default .venv's); makes $tmp, removed at exit; defines
# median_wall CMD..., the median wall seconds of $runs runs of CMD after one warm-up run,
# its output thrown away.
runs="${1:-7}"
bin="${SONOGRAD_BIN:-$root/target/release/sonograd}"
py="${SONOGRAD_PYTHON:-$root/.venv/bin/python3}"
[ -x "$bin" ] || { echo "build it first: cargo build --release" >&2; exit 1; }
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

median_wall() {
  local times=() i start end
  "$@" >/dev/null 2>&1
  for ((i = 0; i < runs; i++)); do
    start=$(date +%s.%N)
    "$@" >/dev/null 2>&1
    end=$(date +%s.%N)
    times+=("$(awk "BEGIN {print $end - $start}")")
  done
  printf '%s\n' "${times[@]}" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'
}
