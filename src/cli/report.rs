//! `sonograd report`: pictures, audio and a page for a run; with several runs, their curves
//! overlaid as well.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

use super::render::{InputArgs, OfflineArgs};
use sonograd::report::write_report_runs;

#[derive(Args, Debug, Clone)]
pub struct ReportArgs {
    /// The runs to report on: JSON-lines recordings, CSV exports (with --csv-columns) or
    /// TensorBoard event files. The audio and per-layer pictures are of the first; with
    /// several, compare.png overlays them all, one colour per run.
    #[arg(required = true, num_args = 1.., value_name = "RUN")]
    pub files: Vec<PathBuf>,
    /// The folder to write index.html, norms.png, spectrogram.png and run.wav into.
    #[arg(short, long, value_name = "DIR")]
    pub output: PathBuf,
    #[command(flatten)]
    pub inputs: InputArgs,
    #[command(flatten)]
    pub offline: OfflineArgs,
}

pub fn run(args: &ReportArgs) -> Result<()> {
    let (mapping, opts) = args.offline.load()?;
    let inputs = args
        .files
        .iter()
        .map(|f| args.inputs.open(f))
        .collect::<Result<Vec<_>>>()?;
    let summary = write_report_runs(&inputs, &mapping, &opts, &args.output)?;
    if let Some(line) = summary.truncated_tail {
        eprintln!(
            "note: {}:{line}: unfinished last line skipped",
            args.files[0].display()
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
