//! Offline rendering through the pipeline: a run's events routed on the step clock (each
//! step lasts `step_ms` of audio, whatever the recording's wall clock says, so the same input
//! gives the same bytes) to the built-in synth writing a WAV ([`WavOutput`]) and to any file
//! sinks, in one pass. `sonograd render` builds the same pipeline with
//! [`super::Builder::offline`] and [`super::Builder::wav`].
//!
//! ```no_run
//! use sonograd::pipeline::render::render_recording;
//! use sonograd::synth::render::RenderOptions;
//! let mapping = sonograd::mapping::check("config/default.toml").unwrap();
//! let events: Vec<sonograd::event::Event> = Vec::new();
//! render_recording(events, &mapping, &RenderOptions::default(), "out.wav".as_ref()).unwrap();
//! ```

use std::path::Path;

use crate::event::Event;
use crate::mapping::schema::Mapping;
use crate::output::wav::{WavOutput, WavSink};
use crate::synth::render::{RenderError, RenderOptions, RenderReport};

use super::{Pipeline, Report};

/// Renders a recording (events in order) through `mapping` to a WAV file at `out`, as it is
/// (no detector runs). See [`render_events_to`].
pub fn render_recording<I>(
    events: I,
    mapping: &Mapping,
    opts: &RenderOptions,
    out: &Path,
) -> Result<RenderReport, RenderError>
where
    I: IntoIterator<Item = Event>,
{
    let wav = WavOutput::create(out, mapping, opts)?;
    render_with(events, mapping, opts, wav)
}

/// Renders events to any seekable writer: each step plays at its place on the step clock
/// ([`crate::route::clock::StepPositions`], gaps capped at `max_gap_steps`), the router's
/// clock is that time in seconds, and `tail_ms` of audio follows the step after the last.
pub fn render_events_to<I, W>(
    events: I,
    mapping: &Mapping,
    opts: &RenderOptions,
    out: W,
) -> Result<RenderReport, RenderError>
where
    I: IntoIterator<Item = Event>,
    W: WavSink + 'static,
{
    let wav = WavOutput::to_writer(out, mapping, opts)?;
    render_with(events, mapping, opts, wav)
}

fn render_with<I>(
    events: I,
    mapping: &Mapping,
    opts: &RenderOptions,
    wav: WavOutput,
) -> Result<RenderReport, RenderError>
where
    I: IntoIterator<Item = Event>,
{
    let mut pipeline = Pipeline::builder(mapping.clone())
        .offline(opts)
        .wav(wav)
        .diagnose(false)
        .build()
        .map_err(|e| RenderError::Output(e.to_string()))?;
    let steps = feed(&mut pipeline, events);
    rendered(pipeline.finish(), steps)
}

/// Hands every event to `pipeline` on this thread; returns how many steps they held (a step
/// counts again each time the step number changes).
pub fn feed(pipeline: &mut Pipeline, events: impl IntoIterator<Item = Event>) -> u64 {
    let mut steps = 0;
    let mut prev = None;
    for event in events {
        if prev != Some(event.step) {
            prev = Some(event.step);
            steps += 1;
        }
        pipeline.event(&event);
    }
    steps
}

/// The render's report from a finished pipeline's and the [`feed`]'s step count, or the
/// first output's error.
pub fn rendered(report: Report, steps: u64) -> Result<RenderReport, RenderError> {
    if let Some(e) = report.errors.into_iter().next() {
        return Err(RenderError::Output(e));
    }
    let mut r = report.rendered.unwrap_or_default();
    r.events = report.events + report.diagnoses;
    r.steps = steps;
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Layer, Payload};
    use std::io::{Cursor, Seek, SeekFrom, Write};
    use std::sync::{Arc, Mutex};

    fn events(steps: u64) -> Vec<Event> {
        (0..steps)
            .flat_map(|s| {
                let mut v: Vec<Event> = (0..4u32)
                    .map(|l| {
                        let value = 10f64.powf(((s as f64) * 0.05 * (l + 1) as f64).sin() * 2.0);
                        let layer = Layer::new(format!("fc{l}"), l);
                        Event::new(s, 0, 0.0, Payload::GradNorm { layer, value })
                    })
                    .collect();
                v.push(Event::new(s, 0, 0.0, Payload::Loss { value: 1.0 }));
                v
            })
            .collect()
    }

    fn mapping() -> Mapping {
        crate::mapping::check(concat!(env!("CARGO_MANIFEST_DIR"), "/config/default.toml")).unwrap()
    }

    /// A writer whose bytes the test reads back after the render.
    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Cursor<Vec<u8>>>>);

    impl Write for Shared {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().write(b)
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Seek for Shared {
        fn seek(&mut self, to: SeekFrom) -> std::io::Result<u64> {
            self.0.lock().unwrap().seek(to)
        }
    }

    /// The file written behind, on its own thread, holds exactly the bytes rendered in memory.
    #[test]
    fn written_behind_file_is_the_in_memory_render() {
        let opts = RenderOptions::default();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.wav");
        let a = render_recording(events(300), &mapping(), &opts, &path).unwrap();
        let mem = Shared::default();
        let b = render_events_to(events(300), &mapping(), &opts, mem.clone()).unwrap();
        assert_eq!(a, b);
        assert_eq!(a.steps, 300);
        assert_eq!(a.events, 1500);
        // 300 steps of 2,400 frames, then the 1.5 s tail.
        assert_eq!(a.frames, 300 * 2400 + 72_000);
        let file = std::fs::read(&path).unwrap();
        assert!(file.len() > 1 << 20, "{} bytes", file.len());
        assert!(
            file == mem.0.lock().unwrap().get_ref()[..],
            "the files differ"
        );
    }

    /// A write that fails is reported as the render's error, with the OS's reason.
    #[cfg(target_os = "linux")]
    #[test]
    fn a_failing_write_is_an_error() {
        let full = Path::new("/dev/full");
        if !full.exists() {
            return;
        }
        let err = render_recording(events(50), &mapping(), &RenderOptions::default(), full)
            .unwrap_err()
            .to_string();
        assert!(err.contains("space"), "{err}");
    }

    /// A recording that jumps by a billion steps renders 40 steps of silence, not years.
    #[test]
    fn a_jump_in_the_step_counter_is_capped() {
        let mut evs = events(3);
        for e in events(3) {
            let mut e = e;
            e.step += 1_000_000_000;
            evs.push(e);
        }
        let r = render_events_to(
            evs,
            &mapping(),
            &RenderOptions::default(),
            Shared::default(),
        )
        .unwrap();
        assert_eq!(r.steps, 6);
        // Positions 0, 1, 2, then 42, 43, 44: 45 steps of audio and the tail.
        assert_eq!(r.frames, 45 * 2400 + 72_000);
    }
}
