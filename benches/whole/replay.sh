#!/usr/bin/env bash
# Whole-process pipeline speed: `sonograd replay` of a 50,000-step, 4-layer recording
# (300,002 events) through the default mapping, every routed message printed by --monitor
# and written to --midi-file, start-up included. Prints the median of RUNS runs and the
# events a second.
#
#   bash benches/whole/replay.sh [RUNS]        (needs target/release/sonograd and .venv's python)
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
. "$root/benches/whole/common.sh" "$@"
"$py" "$root/benches/whole/numpy_render.py" make 50000 "$tmp/rec.jsonl"
events=$(wc -l < "$tmp/rec.jsonl")
s=$(median_wall "$bin" replay "$tmp/rec.jsonl" --no-audio --monitor --midi-file "$tmp/out.mid" --quiet)
printf 'sonograd replay (whole process): %6.3f s  %8.0f events/s\n' "$s" "$(awk "BEGIN {print $events / $s}")"
