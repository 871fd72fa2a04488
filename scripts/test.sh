#!/usr/bin/env bash
# The whole test suite: set up what is missing (build tools, libtorch, the tests' real peers,
# a Python venv with PyTorch for the client test), then formatting, lints and every test.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
# Real peers the tests talk to: a JACK dummy server and jack_capture, scsynth, oscdump,
# fluidsynth with a General MIDI sound font; JACK headers for midir's JACK backend; headless
# Chromium for the report page (Debian's `chromium`, /usr/bin/chromium); SuperCollider's
# language (`sclang`, run headless) and Sonic Pi's server (headless, without its GUI) for the
# live-coding patches.
SONOGRAD_EXTRA_PKGS="jackd2 jack-capture libjack-jackd2-dev supercollider-server liblo-tools fluidsynth timgm6mb-soundfont chromium supercollider-language sonic-pi-server ${SONOGRAD_EXTRA_PKGS:-}" \
  bash scripts/setup.sh
bash scripts/setup-python.sh
[ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"
# Every peer is installed above: a test whose peer is missing fails here instead of skipping
# (tests/it/common/peers.rs; setting CI does the same).
export SONOGRAD_REQUIRE_PEERS=1
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --quiet -- -D warnings
cargo test --workspace --all-targets
cargo test --workspace --doc
# The Python client as users get it: installed into the venv, its pytest suite run against the
# real `sonograd listen` just built (target/debug/sonograd).
.venv/bin/python3 -m pip install --quiet --force-reinstall --no-deps ./clients/python
(cd /tmp && "$root/.venv/bin/python3" -m pytest -q -p no:cacheprovider "$root/clients/python/tests")
# Live MIDI through midir's JACK backend (the ALSA sequencer needs a kernel this CI lacks).
cargo test --features jack --test midi_jack
# The light build for people who train in Python: no trainer, no libtorch anywhere.
if cargo tree --no-default-features | grep -q torch-sys; then
  echo "test: the --no-default-features build depends on torch-sys" >&2
  exit 1
fi
cargo clippy --no-default-features --all-targets --quiet -- -D warnings
cargo test --no-default-features --all-targets
