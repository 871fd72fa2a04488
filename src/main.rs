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
        Command::Listen(args) => cli::listen::run(args).map(|()| false),
        Command::Demo(args) => cli::demo::run(args).map(|()| false),
        Command::Ports => cli::ports().map(|()| false),
        Command::Render(args) => cli::render::run(args).map(|()| false),
        Command::Report(args) => cli::report::run(args).map(|()| false),
        Command::Devices => cli::render::devices().map(|()| false),
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
            eprintln!("error: {}", describe(&e));
            ExitCode::from(2)
        }
    }
}

/// The error and its causes on one line, like `{e:#}`, but without repeating a cause that
/// an outer message already quotes (thiserror's `"{0}"` with `#[from]`, or `"{path}: {source}"`,
/// show their source and also report it as the cause).
fn describe(e: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in e.chain() {
        let part = cause.to_string();
        if text.contains(&part) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&part);
    }
    text
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
