# Sourced by the whole-process benchmarks: median_wall CMD... prints the median wall seconds
# of $runs runs of CMD (after one warm-up run), its output thrown away.
# Median wall seconds of RUNS runs of a command (after one warm-up run).
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
