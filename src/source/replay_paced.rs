//! Paced replay of a JSON-lines recording, a CSV export or TensorBoard event files:
//! `--speed`, `--step-ms`, `--from-step`/`--to-step`, `--loop`. The decisions are made by the
//! pure parts in [`super::pacing`] and [`super::csv`]; this module reads, waits and hands
//! events on.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::event::Event;
use crate::source::replay::{Recording, ReplayError};

use super::csv::{ColumnMap, CsvError, CsvEvents};
use super::pacing::{LoopClock, Pace, Schedule, StepRange, DEFAULT_MAX_GAP};
use super::tensorboard::{TbError, TensorBoard};

/// What to replay.
#[derive(Clone, Debug)]
pub enum ReplayInput {
    /// A JSON-lines recording (`--record` output, or any file of event lines).
    JsonLines(PathBuf),
    /// A CSV export with its column mapping (`--csv-columns`).
    Csv {
        /// The file.
        path: PathBuf,
        /// Which column is what.
        columns: ColumnMap,
    },
    /// TensorBoard event files, scanned ([`TensorBoard::scan`]).
    TensorBoard(Arc<TensorBoard>),
}

/// How to replay.
#[derive(Clone, Debug)]
pub struct ReplayOptions {
    /// The input.
    pub input: ReplayInput,
    /// How fast.
    pub pace: Pace,
    /// Which steps.
    pub range: StepRange,
    /// Passes over the input: `Some(1)` once, `None` forever (`--loop`, until stopped).
    pub passes: Option<u64>,
    /// Longest wait between two events.
    pub max_gap: Duration,
}

impl ReplayOptions {
    /// One pass as fast as possible over all steps.
    pub fn new(input: ReplayInput) -> Self {
        ReplayOptions {
            input,
            pace: Pace::AsFast,
            range: StepRange::default(),
            passes: Some(1),
            max_gap: DEFAULT_MAX_GAP,
        }
    }
}

/// Why a replay stopped early.
#[derive(Debug, thiserror::Error)]
pub enum PacedReplayError {
    /// A recording could not be read.
    #[error(transparent)]
    Recording(#[from] ReplayError),
    /// A CSV could not be read.
    #[error(transparent)]
    Csv(#[from] CsvError),
    /// Event files could not be read.
    #[error(transparent)]
    TensorBoard(#[from] TbError),
}

/// What a replay did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PacedReplayReport {
    /// Events handed on.
    pub events: u64,
    /// Events left out by the step range.
    pub skipped: u64,
    /// Passes completed.
    pub passes: u64,
    /// Line of an unfinished last line that was skipped (a recording of a killed run).
    pub truncated_tail: Option<usize>,
    /// Whether the stop flag ended it.
    pub stopped: bool,
}

/// Replays per `opts`, handing each event to `sink` when it is due; returns after the last
/// pass or when `stop` is set (checked at least every 50 ms while waiting).
pub fn replay(
    opts: &ReplayOptions,
    sink: &mut dyn FnMut(Event),
    stop: &AtomicBool,
) -> Result<PacedReplayReport, PacedReplayError> {
    let mut report = PacedReplayReport::default();
    let mut pacer = Schedule::new(opts.pace, opts.max_gap);
    let mut clock = LoopClock::default();
    let started = Instant::now();
    while opts.passes.is_none_or(|n| report.passes < n) {
        let mut any = false;
        let mut each = |event: Event, report: &mut PacedReplayReport| -> bool {
            any = true;
            if !opts.range.keeps(&event) {
                report.skipped += 1;
                return true;
            }
            let mut event = event;
            clock.apply(&mut event);
            let due = pacer.due(&event);
            if !wait_until(started + due, stop) {
                report.stopped = true;
                return false;
            }
            sink(event);
            report.events += 1;
            true
        };
        match &opts.input {
            ReplayInput::JsonLines(path) => {
                let mut recording = Recording::open(path)?;
                for item in recording.by_ref() {
                    if !each(item?, &mut report) {
                        return Ok(report);
                    }
                }
                report.truncated_tail = recording.truncated_tail();
            }
            ReplayInput::Csv { path, columns } => {
                for item in CsvEvents::open(path, columns)? {
                    if !each(item?, &mut report) {
                        return Ok(report);
                    }
                }
            }
            ReplayInput::TensorBoard(tb) => {
                for item in tb.events() {
                    if !each(item?, &mut report) {
                        return Ok(report);
                    }
                }
            }
        }
        report.passes += 1;
        clock.next_pass();
        if !any || stop.load(Ordering::Relaxed) {
            // An empty input would loop forever without waiting.
            report.stopped = stop.load(Ordering::Relaxed);
            break;
        }
    }
    Ok(report)
}

/// Sleeps until `at` in slices, returning false as soon as `stop` is set.
fn wait_until(at: Instant, stop: &AtomicBool) -> bool {
    loop {
        if stop.load(Ordering::Relaxed) {
            return false;
        }
        let now = Instant::now();
        if now >= at {
            return true;
        }
        std::thread::sleep((at - now).min(Duration::from_millis(50)));
    }
}
