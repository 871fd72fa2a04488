//! `sonograd replay`.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use anyhow::Result;
use clap::Args;

use sonograd::source::replay::Recording;
use sonograd::summary::RunSummary;

use super::{EventOutputArgs, STOP};

#[derive(Args, Debug, Clone)]
pub struct ReplayArgs {
    /// The JSON-lines recording to read.
    pub file: PathBuf,
    #[command(flatten)]
    pub output: EventOutputArgs,
}

pub fn run(args: &ReplayArgs) -> Result<()> {
    let mapping = super::load_mapping(&args.output)?;
    let summary = Arc::new(Mutex::new(RunSummary::default()));
    let mut output = args.output.clone();
    output.quiet = true; // no progress bar: replay has no planned length
    let mut consumers = super::train::consumers(&output, mapping, 0, &summary)?;
    let mut recording = Recording::open(&args.file)?;
    let mut outcome = Ok(());
    for item in recording.by_ref() {
        if STOP.load(std::sync::atomic::Ordering::Relaxed) {
            break;
        }
        match item {
            Ok(event) => {
                for c in consumers.iter_mut() {
                    c.event(&event)?;
                }
            }
            Err(e) => {
                outcome = Err(e.into());
                break;
            }
        }
    }
    for c in consumers.iter_mut() {
        c.finish()?;
    }
    if let Some(line) = recording.truncated_tail() {
        eprintln!(
            "warning: {}:{line}: unfinished last line skipped (the run was cut off)",
            args.file.display()
        );
    }
    if !args.output.quiet {
        let s = summary.lock().map(|s| s.clone()).unwrap_or_default();
        eprint!("{s}");
    }
    outcome
}
