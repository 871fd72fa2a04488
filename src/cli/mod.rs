//! Command-line arguments: parsed raw by clap, then validated into ready objects.

pub mod check;
pub mod demo;
pub mod listen;
pub mod replay;
pub mod train;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};

use clap::{Args, Parser, Subcommand};

/// Set by Ctrl-C or SIGTERM; sources check it between steps.
pub static STOP: AtomicBool = AtomicBool::new(false);

/// Installs the Ctrl-C / SIGTERM handler: the first signal asks for a clean stop (outputs are
/// flushed and closed), a second one exits at once.
pub fn install_stop_handler() {
    let _ = ctrlc::set_handler(|| {
        if STOP.swap(true, Ordering::SeqCst) {
            std::process::exit(130);
        }
    });
}

#[derive(Parser, Debug)]
#[command(
    name = "sonograd",
    version,
    about = "Hear neural-network training",
    propagate_version = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Train a model and emit its events (gradient norms, loss, lr, NaN/Inf alarms).
    Train(train::TrainArgs),
    /// Receive a foreign training run's events (JSON lines on stdin or UDP, OSC over UDP) and route them.
    Listen(listen::ListenArgs),
    /// Read a JSON-lines recording (or a CSV export) back, at full speed or paced.
    Replay(replay::ReplayArgs),
    /// Validate mapping files: every problem with file, line, column and a suggestion.
    Check(check::CheckArgs),
    /// The seed's demo: SGD at lr 0.01, 0.1, 1.0 (batch 20), lr 1.0 at batch 256, and Adam 0.01.
    Demo(demo::DemoArgs),
}

/// Where and how events are shown or kept; shared by the commands.
#[derive(Args, Debug, Clone, Default)]
pub struct EventOutputArgs {
    /// Write every event to this JSON-lines file.
    #[arg(long, value_name = "FILE")]
    pub record: Option<PathBuf>,
    /// Print every event to stdout as a readable line.
    #[arg(long, conflicts_with = "json")]
    pub print: bool,
    /// Print every event to stdout as a JSON line.
    #[arg(long)]
    pub json: bool,
    /// No progress bar and no summary on stderr.
    #[arg(long, short)]
    pub quiet: bool,
    /// Mapping file that routes events to outputs (default: the built-in config/default.toml).
    #[arg(long, value_name = "FILE")]
    pub mapping: Option<PathBuf>,
    /// Print every routed message as a readable line on stdout (a dry run of the mapping).
    #[arg(long)]
    pub monitor: bool,
    /// Do not reload the mapping file when it changes.
    #[arg(long)]
    pub no_reload: bool,
}

/// The built-in default mapping, used when `--mapping` is not given.
pub const DEFAULT_MAPPING: &str = include_str!("../../config/default.toml");

/// Loads and validates the mapping the flags name; all problems in one error.
pub fn load_mapping(
    output: &EventOutputArgs,
) -> anyhow::Result<sonograd::mapping::schema::Mapping> {
    let result = match &output.mapping {
        Some(path) => sonograd::mapping::check(path),
        None => sonograd::mapping::parse_str(DEFAULT_MAPPING, "config/default.toml (built in)"),
    };
    result.map_err(|diags| anyhow::anyhow!("invalid mapping:\n{diags}"))
}
