//! `sonograd-train`: the companion binary that runs `train` and `demo` with libtorch (the
//! `train` feature). `sonograd train ...` hands over to it with its own arguments; any other
//! command it runs exactly as `sonograd` does.

mod args;
#[path = "../../cli/mod.rs"]
mod cli;
mod demo;
mod train;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use sonograd::event::EndReason;

/// `train` and `demo` with their full flags.
#[derive(Parser, Debug)]
#[command(name = "sonograd", version, about = "Hear neural-network training")]
struct TrainerCli {
    #[command(subcommand)]
    command: TrainerCommand,
}

#[derive(Subcommand, Debug)]
enum TrainerCommand {
    /// Train a model and emit its events (gradient norms, loss, lr, NaN/Inf alarms).
    Train(Box<args::TrainArgs>),
    /// The seed's demo: SGD at lr 0.01, 0.1, 1.0 (batch 20), lr 1.0 at batch 256, and Adam 0.01.
    Demo(args::DemoArgs),
}

fn main() -> ExitCode {
    let first = std::env::args_os().nth(1);
    if !first.as_ref().is_some_and(|a| a == "train" || a == "demo") {
        return cli::run(|_| unreachable!("train and demo are parsed by sonograd-train itself"));
    }
    let parsed = TrainerCli::parse();
    cli::install_stop_handler();
    cli::exit_code(match &parsed.command {
        TrainerCommand::Train(args) => {
            train::run(args).map(|reason| reason == EndReason::Interrupted)
        }
        TrainerCommand::Demo(args) => demo::run(args).map(|()| false),
    })
}
