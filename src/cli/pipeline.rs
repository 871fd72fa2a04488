//! The event thread of every command: the consumers (summary, dispatcher, recorder, printer,
//! progress bar) built from the output flags, behind the detector, and the thread that runs them.

use std::io::IsTerminal;
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};

use sonograd::consume::{self, Consumers, EventConsumer};
use sonograd::diagnose::Detector;
use sonograd::dispatch::{Dispatcher, LiveReports};
use sonograd::mapping::Mapping;
use sonograd::print::{EventPrinter, PrintFormat};
use sonograd::progress::Progress;
use sonograd::record::Recorder;
use sonograd::route::clock::PlaybackClock;
use sonograd::source::listen::{Filtered, SenderFilter};
use sonograd::summary::{RunSummary, SummaryCollector};

use super::EventOutputArgs;

/// Joins the consumer thread even when training unwinds, so recordings are flushed.
pub struct JoinOnDrop(Option<std::thread::JoinHandle<consume::ConsumerReport>>);

impl JoinOnDrop {
    /// Starts the consumer thread.
    pub fn spawn(rx: sonograd::queue::EventReceiver, consumers: Consumers) -> Self {
        JoinOnDrop(Some(consume::spawn(rx, consumers)))
    }

    /// Waits for the consumer thread to finish.
    pub fn join(mut self) -> consume::ConsumerReport {
        self.0
            .take()
            .and_then(|h| h.join().ok())
            .unwrap_or_default()
    }
}

impl Drop for JoinOnDrop {
    fn drop(&mut self) {
        if let Some(h) = self.0.take() {
            let _ = h.join();
        }
    }
}

/// The event thread's consumers, and where the live synth reports what it did.
pub struct Pipeline {
    /// The consumers, behind the detector.
    pub consumers: Consumers,
    /// The live synth's reports, filled when the consumers finish.
    pub live: LiveReports,
    /// Whether the built-in synth plays on an audio device.
    pub playing: bool,
}

/// Consumers for the event thread from the output flags, routing on `clock`, behind the detector (the mapping's
/// `[diagnose]` thresholds; none with `--no-diagnose`); the summary is shared back.
pub fn consumers(
    output: &EventOutputArgs,
    mapping: Mapping,
    steps: u64,
    summary: &Arc<Mutex<RunSummary>>,
    clock: PlaybackClock,
) -> Result<Pipeline> {
    consumers_filtered(output, mapping, steps, summary, clock, None)
}

/// As [`consumers`], routing only the senders `filter` lets through (the recording keeps all).
pub fn consumers_filtered(
    output: &EventOutputArgs,
    mapping: Mapping,
    steps: u64,
    summary: &Arc<Mutex<RunSummary>>,
    clock: PlaybackClock,
    filter: Option<SenderFilter>,
) -> Result<Pipeline> {
    let detector =
        (!output.no_diagnose && mapping.diagnose.enabled).then(|| Detector::new(mapping.diagnose));
    let mut list: Vec<Box<dyn EventConsumer>> = vec![Box::new(SummaryCollector(summary.clone()))];
    let mut settings = output.output_settings()?;
    settings.clock = clock;
    let live = settings.live_reports.clone();
    let watch = output.mapping.is_some() && !output.no_reload;
    let path = output
        .mapping
        .clone()
        .unwrap_or_else(|| "config/default.toml".into());
    let dispatcher = Dispatcher::with_outputs(
        &path,
        mapping,
        output.monitor,
        watch,
        Box::new(std::io::stdout()),
        settings,
    )?;
    let playing = dispatcher.live_info().is_some();
    if let (Some(info), true) = (dispatcher.live_info(), output.verbose) {
        eprintln!(
            "audio: {} at {} Hz, buffer {} frames requested, {} granted",
            info.device,
            info.sample_rate,
            info.requested_frames,
            info.granted_frames
                .map_or_else(|| "size not reported".to_string(), |f| f.to_string())
        );
    }
    let dispatcher: Box<dyn EventConsumer> = Box::new(dispatcher);
    list.push(match filter {
        Some(filter) if !filter.is_all() => Box::new(Filtered::new(dispatcher, filter)),
        _ => dispatcher,
    });
    if let Some(path) = &output.record {
        list.push(Box::new(Recorder::create(path).context("--record")?));
    }
    if output.print || output.json {
        list.push(Box::new(EventPrinter::new(if output.json {
            PrintFormat::Json
        } else {
            PrintFormat::Text
        })));
    }
    if !output.quiet && std::io::stderr().is_terminal() {
        list.push(Box::new(Progress::new(steps)));
    }
    Ok(Pipeline {
        consumers: Consumers::new(list, detector),
        live,
        playing,
    })
}
