#!/usr/bin/env bash
# Whole-process render speed: `sonograd render` of a 10,000-step, 4-layer recording (500 s of
# audio at 50 ms a step, 48 kHz, 16-bit, default mapping), start-up included, side by side with
# a numpy script that renders one sine per step to WAV. Prints the median of RUNS runs of each
# as a real-time factor (audio seconds / wall seconds).
#
#   bash benches/whole/render.sh [RUNS]        (needs target/release/sonograd and .venv's numpy)
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
. "$root/benches/whole/common.sh" "$@"
"$py" "$root/benches/whole/numpy_render.py" make 10000 "$tmp/rec.jsonl"
audio_s=500


s=$(median_wall "$bin" render "$tmp/rec.jsonl" -o "$tmp/a.wav" --quiet)
p=$(median_wall "$py" "$root/benches/whole/numpy_render.py" render "$tmp/rec.jsonl" "$tmp/b.wav")
printf 'sonograd render (whole process): %6.3f s  %6.0fx real time\n' "$s" "$(awk "BEGIN {print $audio_s / $s}")"
printf 'numpy, one sine a step:          %6.3f s  %6.0fx real time\n' "$p" "$(awk "BEGIN {print $audio_s / $p}")"
