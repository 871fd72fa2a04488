//! The pipeline every command runs its events through, in one place.
//!
//! A source (the built-in trainer, a replay, a listener) sends [`Event`]s into the bounded
//! [`queue`]; the consumer thread ([`consume`]) hands each event to the detector
//! ([`crate::diagnose`]) and then to the sinks: the [`summary`], the [`dispatch`]er (which
//! routes it through the mapping to every [`crate::output::Output`]: ports, the [`live`]
//! synth, the [`monitor`] and file sinks), the [`record`]er, the [`print`](mod@print)er and the
//! `progress` bar. One [`Builder`] makes the pipeline for every command;
//! [`Pipeline::finish`] (or [`Running::finish`] for a pipeline on its own thread) returns a
//! typed [`Report`].
//!
//! ```no_run
//! use sonograd::pipeline::{queue::event_queue, Pipeline};
//! use sonograd::route::clock::PlaybackClock;
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let mapping = sonograd::mapping::check(std::path::Path::new("config/default.toml"))?;
//! let pipeline = Pipeline::builder(mapping)
//!     .clock(PlaybackClock::Wall)
//!     .record("run.jsonl")
//!     .build()?;
//! let (mut tx, rx, _stats) = event_queue(8192);
//! let running = pipeline.spawn(rx);
//! // ... tx.send(event) for every event of the run ...
//! tx.close();
//! let report = running.finish();
//! print!("{}", report.summary);
//! # Ok(()) }
//! ```

pub mod consume;
pub mod dispatch;
pub(crate) mod filter;
pub mod live;
pub mod monitor;
mod ports;
pub mod print;
pub(crate) mod progress;
pub mod queue;
pub mod record;
pub mod render;
mod report;
mod sound_controls;
pub mod summary;

use std::path::PathBuf;

pub use report::Report;

use crate::diagnose::Detector;
use crate::event::Event;
use crate::mapping::schema::Mapping;
use crate::route::clock::PlaybackClock;
use crate::source::listen::SenderFilter;
use crate::synth::live::LiveReport;

use consume::{Consumers, EventConsumer};
use dispatch::{Dispatcher, OutputSettings};
use monitor::LineSink;
use print::{EventPrinter, PrintFormat};
use progress::Progress;
use queue::EventReceiver;
use record::Recorder;
use summary::SummaryCollector;

/// Building a pipeline failed: a recording, an output or the mapping watcher could not be
/// opened. Nothing has started.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The recording file cannot be created.
    #[error("--record: {source}")]
    Record {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// An output (a port named on the command line, an audio device asked for by name, a file
    /// sink) or the mapping watcher cannot be opened.
    #[error("{0}")]
    Output(std::io::Error),
}

/// Makes a [`Pipeline`]: which mapping routes the events, on which clock, and which sinks
/// take them. Every command builds its pipeline here.
pub struct Builder {
    mapping: Mapping,
    mapping_path: PathBuf,
    watch: bool,
    settings: OutputSettings,
    monitor_all: bool,
    lines: Option<LineSink>,
    record: Option<PathBuf>,
    print: Option<PrintFormat>,
    progress: Option<u64>,
    filter: Option<SenderFilter>,
    diagnose: bool,
    live: bool,
    wav: Option<crate::output::wav::WavOutput>,
}

impl Builder {
    /// The file the mapping came from (named in reload messages); `watch`: reload it when it
    /// is saved.
    pub fn mapping_file(mut self, path: impl Into<PathBuf>, watch: bool) -> Self {
        self.mapping_path = path.into();
        self.watch = watch;
        self
    }

    /// How outputs are opened and which file sinks are written (the settings' clock is
    /// replaced by [`Builder::clock`] when that is called after).
    pub fn outputs(mut self, settings: OutputSettings) -> Self {
        self.settings = settings;
        self
    }

    /// The playback clock that rate limits, coalescing, note lengths and the monitor run on.
    pub fn clock(mut self, clock: PlaybackClock) -> Self {
        self.settings.clock = clock;
        self
    }

    /// Prints every routed message as a monitor line (not only those of `monitor` outputs).
    pub fn monitor_all(mut self, all: bool) -> Self {
        self.monitor_all = all;
        self
    }

    /// Where monitor lines go (default: stdout).
    pub fn monitor_lines(mut self, lines: LineSink) -> Self {
        self.lines = Some(lines);
        self
    }

    /// Records every event, diagnoses included, to this JSON-lines file.
    pub fn record(mut self, path: impl Into<PathBuf>) -> Self {
        self.record = Some(path.into());
        self
    }

    /// Prints every event to stdout in this format.
    pub fn print(mut self, format: PrintFormat) -> Self {
        self.print = Some(format);
        self
    }

    /// Shows a progress bar on stderr for a run of this many steps.
    pub fn progress(mut self, steps: u64) -> Self {
        self.progress = Some(steps);
        self
    }

    /// Routes only the senders `filter` lets through (the recording keeps every event).
    pub fn only(mut self, filter: SenderFilter) -> Self {
        self.filter = Some(filter);
        self
    }

    /// Runs the detector in front of the sinks (default: as the mapping's `[diagnose]` table
    /// says).
    pub fn diagnose(mut self, on: bool) -> Self {
        self.diagnose = on;
        self
    }

    /// Marks the stream as live (a trainer or a listener, not a recording): the detector
    /// learns when events arrive and hears the clock, so it can say `stall`.
    pub fn live_stream(mut self) -> Self {
        self.live = true;
        self
    }

    /// An offline render (`render`): the step clock of `opts` (its `step_ms` a step, jumps
    /// capped at its `max_gap_steps`), file sinks only (no live port or audio device opens)
    /// and no monitor lines. Call it after [`Builder::outputs`].
    pub fn offline(mut self, opts: &crate::synth::render::RenderOptions) -> Self {
        self.settings.clock = PlaybackClock::Steps(opts.step_secs());
        self.settings.max_gap_steps = Some(opts.max_gap_steps);
        self.settings.files_only = true;
        self.settings.live = None;
        self.lines = Some(Box::new(std::io::sink()));
        self
    }

    /// Plays the mapping's `synth` outputs into this WAV (see [`render`]).
    pub fn wav(mut self, wav: crate::output::wav::WavOutput) -> Self {
        self.wav = Some(wav);
        self
    }

    /// Opens the sinks and outputs. Nothing has started when this fails.
    pub fn build(self) -> Result<Pipeline, BuildError> {
        let detector = (self.diagnose && self.mapping.diagnose.enabled)
            .then(|| Detector::new(self.mapping.diagnose));
        let mut list: Vec<Box<dyn EventConsumer>> = vec![Box::new(SummaryCollector::default())];
        let mut dispatcher = Dispatcher::with_outputs(
            &self.mapping_path,
            self.mapping,
            self.monitor_all,
            self.watch,
            self.lines.unwrap_or_else(|| Box::new(std::io::stdout())),
            self.settings,
        )
        .map_err(BuildError::Output)?;
        if let Some(wav) = self.wav {
            dispatcher.attach_synth(Box::new(wav));
        }
        let playing = dispatcher.live_info().cloned();
        let dispatcher: Box<dyn EventConsumer> = Box::new(dispatcher);
        list.push(match self.filter {
            Some(filter) if !filter.is_all() => Box::new(filter::Filtered::new(dispatcher, filter)),
            _ => dispatcher,
        });
        if let Some(path) = self.record {
            let recorder =
                Recorder::create(&path).map_err(|source| BuildError::Record { path, source })?;
            list.push(Box::new(recorder));
        }
        if let Some(format) = self.print {
            list.push(Box::new(EventPrinter::new(format)));
        }
        if let Some(steps) = self.progress {
            list.push(Box::new(Progress::new(steps)));
        }
        let mut consumers = Consumers::new(list, detector);
        if self.live {
            consumers = consumers.live();
        }
        Ok(Pipeline { consumers, playing })
    }
}

/// The consumers of one event stream, built and ready: feed it on this thread
/// ([`Pipeline::event`]) or start its own thread ([`Pipeline::spawn`]).
pub struct Pipeline {
    consumers: Consumers,
    playing: Option<LiveReport>,
}

impl Pipeline {
    /// A builder routing with `mapping` (already validated): summary and routing only, the
    /// detector as the mapping says, on the default clock, monitor lines to stdout.
    pub fn builder(mapping: Mapping) -> Builder {
        Builder {
            mapping,
            mapping_path: PathBuf::from("mapping"),
            watch: false,
            settings: OutputSettings::default(),
            monitor_all: false,
            lines: None,
            record: None,
            print: None,
            progress: None,
            filter: None,
            diagnose: true,
            live: false,
            wav: None,
        }
    }

    /// The built-in synth's device, sample rate and buffer sizes, when it plays live.
    pub fn playing(&self) -> Option<&LiveReport> {
        self.playing.as_ref()
    }

    /// Whether a detector runs in front of the sinks.
    pub fn diagnosing(&self) -> bool {
        self.consumers.diagnosing()
    }

    /// Turns the detector off (a stream known to carry its own diagnoses).
    pub fn without_detector(mut self) -> Self {
        self.consumers = self.consumers.without_detector();
        self
    }

    /// Handles one event on this thread.
    pub fn event(&mut self, event: &Event) {
        self.consumers.event(event);
    }

    /// Ends the stream fed on this thread: the sinks finish and report.
    pub fn finish(self) -> Report {
        self.consumers.finish()
    }

    /// Runs the pipeline on its own thread until `rx`'s senders close the queue.
    pub fn spawn(self, rx: EventReceiver) -> Running {
        Running(Some(consume::spawn(rx, self.consumers)))
    }
}

/// A pipeline on its own thread. Dropping it (a source that fails or unwinds) still waits
/// for the thread, so recordings are flushed and notes ended.
pub struct Running(Option<std::thread::JoinHandle<Report>>);

impl Running {
    /// Waits for the queue to close and the sinks to finish.
    pub fn finish(mut self) -> Report {
        self.0
            .take()
            .and_then(|h| h.join().ok())
            .unwrap_or_default()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(h) = self.0.take() {
            let _ = h.join();
        }
    }
}
