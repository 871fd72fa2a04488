//! The `sonograd` binary: parses arguments, runs a command, maps errors to exit codes
//! (0 fine, 2 bad input or failure, 130 interrupted).

mod cli;

use std::process::ExitCode;

use clap::Parser;

use cli::{Cli, Command};
use sonograd::event::EndReason;

fn main() -> ExitCode {
    let cli = Cli::parse();
    cli::install_stop_handler();
    let result = match &cli.command {
        Command::Train(args) => {
            cli::train::run(args).map(|reason| reason == EndReason::Interrupted)
        }
        Command::Replay(args) => cli::replay::run(args).map(|()| false),
        Command::Demo(args) => cli::demo::run(args).map(|()| false),
        Command::Check(args) => match cli::check::run(args) {
            Ok(true) => return ExitCode::SUCCESS,
            Ok(false) => return ExitCode::from(2),
            Err(e) => Err(e),
        },
    };
    match result {
        Ok(false) => ExitCode::SUCCESS,
        Ok(true) => ExitCode::from(130),
        // A closed pipe (`sonograd replay r.jsonl --monitor | head`) is not an error.
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
