//! The integration tests, as one test binary: each test binary links the whole crate and
//! libtorch, so one binary instead of thirty saves most of the suite's build time. The tests
//! run as threads of one process: helpers in `common` keep them from sharing ports, servers,
//! environment variables or global state.
//!
//! Run one area with a filter: `cargo test --test it cli_replay`. Modules that train with the
//! built-in trainer are compiled with the `train` feature (the default) only; the light build
//! (`--no-default-features`) runs the rest and `libtorch_split`.

mod common;

mod check;
#[cfg(feature = "train")]
mod cli_audio;
#[cfg(feature = "train")]
mod cli_errors;
#[cfg(feature = "train")]
mod cli_replay;
#[cfg(feature = "train")]
mod cli_report;
#[cfg(feature = "train")]
mod cli_routing;
#[cfg(feature = "train")]
mod cli_train;
mod controls;
#[cfg(feature = "train")]
mod corpus;
#[cfg(feature = "train")]
mod default_sound;
#[cfg(feature = "train")]
mod diagnose_corpus;
mod diagnose_stall;
#[cfg(feature = "train")]
mod diagnose_train;
mod file_outputs;
mod foreign_alarms;
mod libtorch_split;
mod listen_e2e;
mod listen_fuzz;
mod mapping_patches;
mod midi_file_render;
mod midi_stop_all;
mod osc_oscdump;
mod osc_peer_down;
mod playback_clock;
mod props;
mod python_client;
mod report_chromium;
mod router;
mod sclang_live;
mod score_render;
mod scsynth_live;
mod shipped;
mod sonic_pi_live;
mod synth_patches;
mod synth_render;
mod tensorboard;
#[cfg(feature = "train")]
mod trainer;
mod watch;
