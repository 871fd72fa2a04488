//! The integration tests, as one test binary: each test binary links the whole crate and
//! libtorch, so one binary instead of thirty saves most of the suite's build time. The tests
//! run as threads of one process: helpers in `common` keep them from sharing ports, servers,
//! environment variables or global state.
//!
//! Run one area with a filter: `cargo test --test it cli_replay`.

mod common;

mod check;
mod cli_audio;
mod cli_errors;
mod cli_replay;
mod cli_report;
mod cli_routing;
mod cli_train;
mod diagnose_train;
mod listen_e2e;
mod listen_fuzz;
mod mapping_patches;
mod midi_file_render;
mod midi_stop_all;
mod osc_oscdump;
mod osc_peer_down;
mod props;
mod python_client;
mod report_chromium;
mod router;
mod score_render;
mod scsynth_live;
mod shipped;
mod synth_patches;
mod synth_render;
mod trainer;
mod watch;
