//! The offline synth: the engine writing what it plays to a WAV, on a frame clock, and the
//! options of a render. A render runs through the pipeline like every command
//! ([`crate::pipeline::render`]); [`crate::output::wav::WavOutput`] is the output that
//! drives an [`OfflineSynth`] there. Audio is rendered in small chunks and streamed to the
//! WAV writer: memory does not grow with the run's length.

use std::io::{Seek, Write};
use std::path::PathBuf;

use super::control::{Control, VoiceMap};
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

const CHUNK: usize = 1024;

/// An engine that writes what it plays to a WAV, with a frame clock. The building block of
/// offline rendering: [`send`](Self::send) messages, [`advance_to`](Self::advance_to) a frame,
/// [`finish`](Self::finish).
pub struct OfflineSynth<W: Write + Seek> {
    engine: Engine,
    map: VoiceMap,
    writer: hound::WavWriter<W>,
    format: WavFormat,
    frame: u64,
    controls: u64,
    left: Vec<f32>,
    right: Vec<f32>,
    pcm: Vec<i16>,
}

impl<W: Write + Seek> OfflineSynth<W> {
    /// A synth for `map`'s voices playing `patches` (one per engine voice), writing stereo
    /// `format` at `sample_rate` to `out`.
    pub fn new(
        map: VoiceMap,
        patches: &[Patch],
        sample_rate: u32,
        format: WavFormat,
        out: W,
    ) -> Result<Self, RenderError> {
        if patches.len() != map.total as usize {
            return Err(RenderError::Options(format!(
                "{} patches for {} voices",
                patches.len(),
                map.total
            )));
        }
        let spec = hound::WavSpec {
            channels: 2,
            sample_rate,
            bits_per_sample: match format {
                WavFormat::Int16 => 16,
                WavFormat::Float32 => 32,
            },
            sample_format: match format {
                WavFormat::Int16 => hound::SampleFormat::Int,
                WavFormat::Float32 => hound::SampleFormat::Float,
            },
        };
        Ok(OfflineSynth {
            engine: Engine::new(patches, sample_rate as f32),
            map,
            writer: hound::WavWriter::new(out, spec)?,
            format,
            frame: 0,
            controls: 0,
            left: vec![0.0; CHUNK],
            right: vec![0.0; CHUNK],
            pcm: vec![0; 2 * CHUNK],
        })
    }

    /// Frames written so far.
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

    /// Renders and writes audio up to (not including) frame `to`; nothing if already there.
    pub fn advance_to(&mut self, to: u64) -> Result<(), RenderError> {
        while self.frame < to {
            let n = ((to - self.frame) as usize).min(CHUNK);
            let (l, r) = (&mut self.left[..n], &mut self.right[..n]);
            self.engine.render(l, r);
            match self.format {
                WavFormat::Int16 => {
                    // Convert the whole chunk first (a loop the compiler vectorises).
                    let pcm = &mut self.pcm[..2 * n];
                    interleave_i16(l, r, pcm);
                    let mut w = self.writer.get_i16_writer(2 * n as u32);
                    for s in pcm.iter() {
                        // SAFETY: exactly 2 * n samples are written into a writer of 2 * n.
                        unsafe { w.write_sample_unchecked(*s) };
                    }
                    w.flush()?;
                }
                WavFormat::Float32 => {
                    for i in 0..n {
                        self.writer.write_sample(l[i])?;
                        self.writer.write_sample(r[i])?;
                    }
                }
            }
            self.frame += n as u64;
        }
        Ok(())
    }

    /// What the engine's guards did so far.
    pub fn engine_stats(&self) -> EngineStats {
        self.engine.stats()
    }

    /// Controls applied so far.
    pub fn controls(&self) -> u64 {
        self.controls
    }

    /// Finalises the WAV header and returns the writer's target.
    pub fn finish(self) -> Result<(), RenderError> {
        self.writer.finalize()?;
        Ok(())
    }
}

/// Interleaves `left` and `right` into `pcm` as 16-bit samples ([`to_i16`]). The loop runs
/// in AVX-512 or AVX2 registers where the CPU has them; every copy performs the same
/// operations, so the bytes are the same on every machine.
fn interleave_i16(left: &[f32], right: &[f32], pcm: &mut [i16]) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512bw") {
            // SAFETY: the CPU supports AVX-512F and BW (checked just above).
            return unsafe { interleave_i16_avx512(left, right, pcm) };
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports AVX2 (checked just above).
            return unsafe { interleave_i16_avx2(left, right, pcm) };
        }
    }
    interleave_i16_body(left, right, pcm)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw")]
unsafe fn interleave_i16_avx512(left: &[f32], right: &[f32], pcm: &mut [i16]) {
    interleave_i16_body(left, right, pcm)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn interleave_i16_avx2(left: &[f32], right: &[f32], pcm: &mut [i16]) {
    interleave_i16_body(left, right, pcm)
}

#[inline(always)]
fn interleave_i16_body(left: &[f32], right: &[f32], pcm: &mut [i16]) {
    for ((frame, a), b) in pcm.chunks_exact_mut(2).zip(left).zip(right) {
        frame[0] = to_i16(*a);
        frame[1] = to_i16(*b);
    }
}

/// Rounds half away from zero without a libm call (the engine keeps |x| ≤ 1; anything
/// else is clamped, a NaN becomes −1).
#[inline(always)]
fn to_i16(x: f32) -> i16 {
    // `if` forms compile to one `maxps`/`minps` each, and map a NaN to the bound.
    let x = if x > -1.0 { x } else { -1.0 };
    let x = if x < 1.0 { x } else { 1.0 };
    let y = x * 32767.0;
    let y = y + f32::copysign(0.5, y);
    // SAFETY: `y` is finite and within ±32767.5, so it fits an i32. (The checked cast does
    // not vectorise.)
    unsafe { y.to_int_unchecked::<i32>() as i16 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_copy_of_the_pcm_loop_gives_the_same_samples() {
        let mut rng = 0x2545_f491u32;
        let mut left: Vec<f32> = (0..4099)
            .map(|_| {
                rng = rng.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                (rng >> 8) as f32 / (1 << 22) as f32 - 2.0
            })
            .collect();
        left[..6].copy_from_slice(&[f32::NAN, f32::INFINITY, -0.0, 0.5 / 32767.0, 1.0, -1.0]);
        let right: Vec<f32> = left.iter().rev().map(|x| x * 0.75).collect();
        let mut plain = vec![0i16; 2 * left.len()];
        interleave_i16_body(&left, &right, &mut plain);
        // NaN -> -1, +inf -> +1, -0 -> 0, half a step rounds away from zero, then the bounds.
        let lefts: Vec<i16> = plain.iter().step_by(2).take(6).copied().collect();
        assert_eq!(lefts, [-32767, 32767, 0, 1, 32767, -32767]);
        let mut fast = vec![0i16; plain.len()];
        interleave_i16(&left, &right, &mut fast);
        assert_eq!(plain, fast);
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            let mut avx2 = vec![0i16; plain.len()];
            // SAFETY: the CPU supports AVX2 (checked just above).
            unsafe { interleave_i16_avx2(&left, &right, &mut avx2) };
            assert_eq!(plain, avx2);
        }
    }
}
