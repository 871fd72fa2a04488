//! What a finished pipeline reports: the run's summary, what the consumers saw, and what
//! each output did.

use std::path::PathBuf;

use crate::output::midi_sched::SchedReport;
use crate::output::OutputReport;
use crate::synth::live::LiveReport;

use super::summary::RunSummary;

/// What a pipeline did, returned by [`super::Pipeline::finish`] and
/// [`super::Running::finish`].
#[derive(Debug, Default)]
pub struct Report {
    /// Events handled (those that came in; diagnoses are counted apart).
    pub events: u64,
    /// Diagnoses the detector added to the stream.
    pub diagnoses: u64,
    /// Messages the router sent to the outputs.
    pub routed: u64,
    /// The run's summary (loss, norms, problems), when a summary was collected.
    pub summary: RunSummary,
    /// The recording written, and how many events it holds.
    pub recorded: Option<(PathBuf, u64)>,
    /// The built-in synth's sessions on an audio device (a reload that changes the voices
    /// starts a new one).
    pub synth: Vec<LiveReport>,
    /// What the offline render to a WAV did (`render`).
    pub rendered: Option<crate::synth::render::RenderReport>,
    /// The MIDI ports played, by name.
    pub midi: Vec<(String, SchedReport)>,
    /// What went wrong: the first error of each consumer that failed (it was then dropped,
    /// the others went on) and each output that lost data.
    pub errors: Vec<String>,
}

impl Report {
    /// Files an output's report.
    pub fn add_output(&mut self, report: OutputReport) {
        match report {
            OutputReport::Synth(r) => self.synth.push(r),
            OutputReport::Midi { port, report } => self.midi.push((port, report)),
            OutputReport::Rendered(r) => self.rendered = Some(r),
            OutputReport::Failed(e) => self.errors.push(e),
        }
    }
}
