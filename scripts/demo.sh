#!/usr/bin/env bash
# The main job: set up what is missing, build, and run the seed's demo
# (SGD lr 0.01 / 0.1 / 1.0 at batch 20, lr 1.0 at batch 256, Adam 0.01), recorded under demo/.
# Extra arguments go to `sonograd demo` (e.g. --steps 500).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
bash scripts/setup.sh
[ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"
cargo build --release --quiet
exec ./target/release/sonograd demo "$@"
