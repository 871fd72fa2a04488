//! `sonograd report`: pictures, audio and a page for a recording.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

use super::render::OfflineArgs;
use sonograd::report::write_report;

#[derive(Args, Debug, Clone)]
pub struct ReportArgs {
    /// The JSON-lines recording to report on.
    pub file: PathBuf,
    /// The folder to write index.html, norms.png, spectrogram.png and run.wav into.
    #[arg(short, long, value_name = "DIR")]
    pub output: PathBuf,
    #[command(flatten)]
    pub offline: OfflineArgs,
}

pub fn run(args: &ReportArgs) -> Result<()> {
    let (mapping, opts) = args.offline.load()?;
    let summary = write_report(&args.file, &mapping, &opts, &args.output)?;
    if let Some(line) = summary.truncated_tail {
        eprintln!(
            "note: {}:{line}: unfinished last line skipped",
            args.file.display()
        );
    }
    if !args.offline.quiet {
        eprintln!(
            "report of steps {}–{} ({} events, {} markers, {:.1} s of audio) in {}",
            summary.steps.0,
            summary.steps.1,
            summary.events,
            summary.markers,
            summary.seconds,
            args.output.join("index.html").display()
        );
    }
    Ok(())
}
