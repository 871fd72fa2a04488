//! `sonograd replay`: a recording, a CSV export or TensorBoard event files read back through
//! the same consumers and routing as a live run; as fast as possible, or paced by the recorded
//! clock or `--step-ms`.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Result;
use clap::Args;

use sonograd::pipeline::queue::{event_queue, DEFAULT_CAPACITY};
use sonograd::route::clock::PlaybackClock;
use sonograd::source::csv::ColumnMap;
use sonograd::source::input;
use sonograd::source::pacing::{Pace, StepRange};
use sonograd::source::replay_paced::{self, ReplayInput, ReplayOptions};
use sonograd::source::tensorboard::{tags::TagMap, TensorBoard};

use super::{EventOutputArgs, STOP};

#[derive(Args, Debug, Clone)]
pub struct ReplayArgs {
    /// The JSON-lines recording, CSV export (with --csv-columns), or TensorBoard event file or
    /// folder (searched recursively; each folder of event files is one run) to read.
    pub file: PathBuf,
    /// Read FILE as CSV with this column mapping, e.g. step=Step,loss=train/loss,grad_norm:fc1=grads/fc1.
    #[arg(long, value_name = "MAP")]
    pub csv_columns: Option<String>,
    /// TensorBoard tags to events, overriding the conventions, e.g. loss=train/objective,grad_norm:fc1=g/fc1.
    #[arg(long, value_name = "MAP")]
    pub tags: Option<String>,
    /// Print the TensorBoard tags found, their values and what each becomes; play nothing.
    #[arg(long)]
    pub list_tags: bool,
    /// Play at this multiple of the recorded wall-clock speed (e.g. 4).
    #[arg(long, value_name = "X", conflicts_with = "step_ms")]
    pub speed: Option<String>,
    /// Play each step for this many milliseconds.
    #[arg(long, value_name = "MS")]
    pub step_ms: Option<String>,
    /// Pace the replay at --step-ms per step (default 50 ms, the seed's lockstep). This is
    /// also the default when the built-in synth plays on an audio device and no pace is given.
    #[arg(long, conflicts_with = "speed")]
    pub paced: bool,
    /// First step replayed.
    #[arg(long, value_name = "N")]
    pub from_step: Option<u64>,
    /// Last step replayed.
    #[arg(long, value_name = "N")]
    pub to_step: Option<u64>,
    /// Start again at the end, until Ctrl-C (for installations).
    #[arg(long = "loop")]
    pub looping: bool,
    #[command(flatten)]
    pub output: EventOutputArgs,
}

pub fn run(args: &ReplayArgs) -> Result<()> {
    let (input, tensorboard) = open_input(
        &args.file,
        args.csv_columns.as_deref(),
        args.tags.as_deref(),
    )?;
    if args.list_tags {
        match &input {
            ReplayInput::TensorBoard(tb) => print!("{}", tb.tag_listing()),
            _ => anyhow::bail!(
                "--list-tags: {} is not a TensorBoard event file or folder",
                args.file.display()
            ),
        }
        return Ok(());
    }
    let mapping = super::load_mapping(&args.output)?;
    let mut opts = ReplayOptions::new(input);
    opts.pace = Pace::from_flags(args.speed.as_deref(), args.step_ms.as_deref())?;
    opts.range = StepRange::new(args.from_step, args.to_step)?;
    opts.passes = if args.looping { None } else { Some(1) };

    // No progress bar: a replay has no planned length.
    let builder = super::pipeline::builder(&args.output, mapping, 0, clock(opts.pace))?;
    let mut pipeline = super::pipeline::build(builder, &args.output)?;
    let unpaced = args.speed.is_none() && args.step_ms.is_none();
    if unpaced && (args.paced || pipeline.playing().is_some()) {
        opts.pace = Pace::StepMs(DEFAULT_PACED_STEP_MS);
        if !args.paced && !args.output.quiet {
            eprintln!(
                "playing at {DEFAULT_PACED_STEP_MS} ms a step (--speed X or --step-ms MS to change, --no-audio for none)"
            );
        }
    }
    // A recording made with the detector on already holds its diagnoses: replay them as they
    // are instead of diagnosing the run a second time.
    if pipeline.diagnosing()
        && matches!(opts.input, ReplayInput::JsonLines(_))
        && sonograd::source::replay::has_diagnoses(&args.file)
    {
        pipeline = pipeline.without_detector();
    }
    let (result, done) = if opts.pace == Pace::AsFast {
        // Unpaced: consume on this thread, so nothing is ever merged.
        let result = replay_paced::replay(&opts, &mut |event| pipeline.event(&event), &STOP);
        (result, pipeline.finish())
    } else {
        // Paced: a consumer thread, so the router keeps ticking between events.
        let (mut tx, rx, _stats) = event_queue(DEFAULT_CAPACITY);
        let running = pipeline.spawn(rx);
        let result = replay_paced::replay(&opts, &mut |event| tx.send(event), &STOP);
        tx.close();
        (result, running.finish())
    };
    let report = result?;
    super::fail_on_errors(&done)?;
    if let Some(line) = report.truncated_tail {
        eprintln!(
            "warning: {}:{line}: unfinished last line skipped (the run was cut off)",
            args.file.display()
        );
    }
    if !args.output.quiet {
        let mut s = done.summary;
        if matches!(opts.input, ReplayInput::JsonLines(_)) {
            s.recording = Some(args.file.clone());
        }
        if let Some(tb) = &tensorboard {
            eprintln!(
                "  TensorBoard: {} run{}, {} scalar values",
                tb.runs.len(),
                if tb.runs.len() == 1 { "" } else { "s" },
                tb.values()
            );
        }
        eprint!("{s}");
    }
    super::report_live(&done.synth, &args.output);
    Ok(())
}

/// The clock a replay at `pace` routes on: the recorded clock sped up for `--speed`, else the
/// step clock at `--step-ms` (default 50 ms), whether it waits or runs as fast as it can, so a
/// dry run shows what the paced replay plays.
fn clock(pace: Pace) -> PlaybackClock {
    match pace {
        Pace::Speed(x) => PlaybackClock::Recorded(x),
        Pace::StepMs(ms) if ms > 0.0 => PlaybackClock::Steps(ms / 1000.0),
        _ => PlaybackClock::Steps(DEFAULT_PACED_STEP_MS / 1000.0),
    }
}

/// Picks and opens the reader for `path` (see [`input::detect`]) from the `--csv-columns` and
/// `--tags` flags; TensorBoard warnings (damaged records, unfinished tails) go to stderr.
pub fn open_input(
    path: &std::path::Path,
    csv_columns: Option<&str>,
    tags: Option<&str>,
) -> Result<(ReplayInput, Option<Arc<TensorBoard>>)> {
    let columns = csv_columns.map(ColumnMap::parse).transpose()?;
    let tags = tags.map(TagMap::parse).transpose()?;
    let input = input::detect(path, columns.as_ref(), tags.as_ref())?;
    if tags.is_some() && !matches!(input, ReplayInput::TensorBoard(_)) {
        anyhow::bail!(
            "--tags: {} is not a TensorBoard event file or folder",
            path.display()
        );
    }
    let tb = match &input {
        ReplayInput::TensorBoard(tb) => {
            let corrupt = tb.notes.iter().filter(|n| n.is_corrupt()).count();
            for note in &tb.notes {
                eprintln!("warning: {note}");
            }
            if corrupt > 0 {
                eprintln!("warning: {corrupt} damaged record(s) skipped");
            }
            Some(tb.clone())
        }
        _ => None,
    };
    Ok((input, tb))
}

/// Milliseconds per step of `--paced` without `--step-ms` (the seed's lockstep).
pub const DEFAULT_PACED_STEP_MS: f64 = 50.0;
