//! The offline synth: the engine writing what it plays to a WAV, on a frame clock, and the
//! options of a render. A render runs through the pipeline like every command
//! ([`crate::pipeline::render`]); [`crate::output::wav::WavOutput`] is the output that
//! drives an [`OfflineSynth`] there. Audio is rendered a span at a time and streamed to a
//! [`FrameSink`] (a [`WavEncoder`]): memory does not grow with the run's length.

use std::path::PathBuf;

use super::control::{Control, VoiceMap};
pub use super::encode::{FrameSink, Frames, WavEncoder};
use super::engine::{Engine, EngineStats};
use super::patch::Patch;
use crate::message::Message;

/// WAV sample format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum WavFormat {
    /// 16-bit integer PCM (the default; what most players expect).
    #[default]
    Int16,
    /// 32-bit float (exact engine output).
    Float32,
}

/// How to render.
#[derive(Clone, Debug, PartialEq)]
pub struct RenderOptions {
    /// Output time per training step, ms (default 50, like the seed: one audible tone a step).
    pub step_ms: f64,
    /// Sample rate, Hz (default 48000).
    pub sample_rate: u32,
    /// Sample format (default 16-bit).
    pub format: WavFormat,
    /// Audio after the last step, so that notes ring out, ms (default 1500).
    pub tail_ms: f64,
    /// A jump in the step counter lasts at most this many steps (default 40): a recording that
    /// skips from step 10 to 10^9 does not render hours of silence.
    pub max_gap_steps: u64,
    /// Patches per engine voice; `None`: the ones the mapping gives its synth outputs
    /// ([`Mapping::synth_patches`]).
    pub patches: Option<Vec<Patch>>,
}

impl Default for RenderOptions {
    fn default() -> Self {
        RenderOptions {
            step_ms: 50.0,
            sample_rate: 48_000,
            format: WavFormat::Int16,
            tail_ms: 1500.0,
            max_gap_steps: crate::route::clock::DEFAULT_MAX_GAP_STEPS,
            patches: None,
        }
    }
}

impl RenderOptions {
    /// Checks that the step length and sample rate are usable.
    pub fn validate(&self) -> Result<(), RenderError> {
        if !(self.step_ms.is_finite() && self.step_ms > 0.0 && self.step_ms <= 60_000.0) {
            return Err(RenderError::Options(format!(
                "step_ms must be in (0, 60000], not {}",
                self.step_ms
            )));
        }
        if !(1000..=384_000).contains(&self.sample_rate) {
            return Err(RenderError::Options(format!(
                "sample_rate must be in 1000..=384000, not {}",
                self.sample_rate
            )));
        }
        Ok(())
    }

    /// Playback seconds a step.
    pub fn step_secs(&self) -> f64 {
        self.step_ms * 1e-3
    }
}

/// Why a render failed.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// The output file could not be created.
    #[error("cannot create {path}: {source}")]
    Create {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Writing the WAV failed.
    #[error("cannot write the WAV: {0}")]
    Wav(#[from] hound::Error),
    /// The options are unusable.
    #[error("invalid render options: {0}")]
    Options(String),
    /// An output of the render failed (the first error, with the file it names).
    #[error("{0}")]
    Output(String),
    /// The mapping has no synth output, so there is nothing to render.
    #[error("the mapping has no `kind = \"synth\"` output: nothing to render to WAV")]
    NoSynth,
}

/// What a render did.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct RenderReport {
    /// Frames written.
    pub frames: u64,
    /// Distinct steps seen.
    pub steps: u64,
    /// Events read.
    pub events: u64,
    /// Synth controls applied.
    pub controls: u64,
    /// What the engine's guards did.
    pub engine: EngineStats,
}

impl RenderReport {
    /// Length of the audio, seconds, at `sample_rate`.
    pub fn seconds(&self, sample_rate: u32) -> f64 {
        self.frames as f64 / sample_rate as f64
    }
}

/// Frames an [`OfflineSynth`] gathers before it hands them to its sink: about 0.34 s at
/// 48 kHz, 64 KiB a channel.
pub const SPAN: usize = 16_384;

/// Frames the engine renders in one call, at most.
const PIECE: usize = 1024;

/// An engine that renders what it plays into a [`FrameSink`] (a WAV), with a frame clock.
/// The building block of offline rendering: [`send`](Self::send) messages,
/// [`advance_to`](Self::advance_to) a frame, [`finish`](Self::finish).
pub struct OfflineSynth<S: FrameSink> {
    engine: Engine,
    map: VoiceMap,
    sink: S,
    frame: u64,
    controls: u64,
    /// Frames rendered into `frames` and not yet handed to the sink.
    filled: usize,
    frames: Frames,
}

impl<S: FrameSink> OfflineSynth<S> {
    /// A synth for `map`'s voices playing `patches` (one per engine voice) at `sample_rate`,
    /// into `sink`.
    pub fn new(
        map: VoiceMap,
        patches: &[Patch],
        sample_rate: u32,
        sink: S,
    ) -> Result<Self, RenderError> {
        if patches.len() != map.total as usize {
            return Err(RenderError::Options(format!(
                "{} patches for {} voices",
                patches.len(),
                map.total
            )));
        }
        Ok(OfflineSynth {
            engine: Engine::new(patches, sample_rate as f32),
            map,
            sink,
            frame: 0,
            controls: 0,
            filled: 0,
            frames: Frames::new(SPAN),
        })
    }

    /// Frames rendered so far.
    pub fn frame(&self) -> u64 {
        self.frame
    }

    /// Applies a message now (at the current frame). Returns false for non-synth messages.
    pub fn send(&mut self, msg: &Message) -> bool {
        match Control::from_message(msg, &self.map, 0) {
            Some(c) => {
                self.apply(&c);
                true
            }
            None => false,
        }
    }

    /// Applies a synth control now (at the current frame), counted like a message.
    pub fn apply(&mut self, c: &Control) {
        self.engine.apply(c);
        self.controls += 1;
    }

    /// Sets the master gain (0..1) from the current frame on.
    pub fn set_master(&mut self, gain: f32) {
        self.engine.apply(&Control::master(gain, 0));
    }

    /// Renders audio up to (not including) frame `to`; nothing if already there. Spans go
    /// to the sink as they fill.
    pub fn advance_to(&mut self, to: u64) -> Result<(), RenderError> {
        while self.frame < to {
            // The engine renders a piece at a time: the pieces, and so its blocks, depend
            // only on the frames asked for, never on where a span ends.
            let n = ((to - self.frame) as usize).min(PIECE);
            if self.filled + n > SPAN {
                self.hand_over()?;
            }
            let at = self.filled..self.filled + n;
            let f = &mut self.frames;
            self.engine
                .render(&mut f.left[at.clone()], &mut f.right[at]);
            self.filled += n;
            self.frame += n as u64;
        }
        Ok(())
    }

    /// Hands the frames gathered so far to the sink.
    fn hand_over(&mut self) -> Result<(), RenderError> {
        let n = std::mem::take(&mut self.filled);
        self.sink.put(&mut self.frames, n)
    }

    /// What the engine's guards did so far.
    pub fn engine_stats(&self) -> EngineStats {
        self.engine.stats()
    }

    /// Controls applied so far.
    pub fn controls(&self) -> u64 {
        self.controls
    }

    /// Hands over the last frames and finishes the sink (finalises the WAV).
    pub fn finish(mut self) -> Result<(), RenderError> {
        if self.filled > 0 {
            self.hand_over()?;
        }
        self.sink.finish()
    }
}
