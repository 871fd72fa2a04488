//! The real-time part: voices, control application, master limiter and the last NaN guard.
//!
//! [`Engine::render`] fills stereo buffers of any length in blocks of at most 64 frames.
//! Nothing here allocates, locks or blocks after [`Engine::new`]. The output is always
//! finite and within ±[`CEILING`] (below 0 dBFS): a look-free limiter with instant attack
//! and smooth release rides the sum, then a final guard replaces any non-finite sample by
//! silence and clamps.
//!
//! ```
//! use sonograd::synth::engine::Engine;
//! use sonograd::synth::patch::Patch;
//! let mut e = Engine::new(&[Patch::builtin("sine").unwrap()], 48_000.0);
//! let (mut l, mut r) = (vec![0.0; 480], vec![0.0; 480]);
//! e.render(&mut l, &mut r);
//! assert!(l.iter().all(|x| *x == 0.0)); // silent until a message arrives
//! ```

use fundsp::MAX_BUFFER_SIZE;

use super::control::Control;
use super::patch::Patch;
use super::voice::Voice;
use crate::mapping::schema::SynthParam;

/// Peak output level (linear): −0.18 dBFS.
pub const CEILING: f32 = 0.98;

/// Counters of what the guards did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EngineStats {
    /// Controls ignored: unknown voice or a non-finite value.
    pub rejected: u64,
    /// Voices reset because they produced a non-finite sample.
    pub voice_resets: u64,
    /// Output samples the final guard replaced (non-finite) or clamped.
    pub guarded: u64,
    /// Frames in which the limiter reduced the gain.
    pub limited_frames: u64,
}

/// Master limiter: instant attack (the gain never lets a peak past [`CEILING`]) and an
/// exponential release back to unity.
#[derive(Clone, Debug)]
struct Limiter {
    gain: f32,
    release_k: f32,
}

impl Limiter {
    fn new(sample_rate: f32) -> Limiter {
        Limiter {
            gain: 1.0,
            release_k: (-1.0 / (0.150 * sample_rate)).exp(),
        }
    }
}

/// Voices plus master section. See the module docs.
pub struct Engine {
    voices: Vec<Voice>,
    limiter: Limiter,
    mix_l: [f32; MAX_BUFFER_SIZE],
    mix_r: [f32; MAX_BUFFER_SIZE],
    stats: EngineStats,
    sample_rate: f32,
}

impl Engine {
    /// An engine with one voice per patch, at `sample_rate` Hz.
    pub fn new(patches: &[Patch], sample_rate: f32) -> Engine {
        Engine {
            voices: patches
                .iter()
                .enumerate()
                .map(|(i, p)| Voice::new(p, sample_rate, i as u64))
                .collect(),
            limiter: Limiter::new(sample_rate),
            mix_l: [0.0; MAX_BUFFER_SIZE],
            mix_r: [0.0; MAX_BUFFER_SIZE],
            stats: EngineStats::default(),
            sample_rate,
        }
    }

    /// Sample rate in Hz.
    pub fn sample_rate(&self) -> f32 {
        self.sample_rate
    }

    /// The voices.
    pub fn voices(&self) -> &[Voice] {
        &self.voices
    }

    /// What the guards did so far.
    pub fn stats(&self) -> EngineStats {
        EngineStats {
            voice_resets: self.voices.iter().map(Voice::resets).sum(),
            ..self.stats
        }
    }

    /// Applies one control. Unknown voices and non-finite values are counted and ignored.
    pub fn apply(&mut self, c: &Control) {
        let Some(v) = self.voices.get_mut(c.voice as usize) else {
            self.stats.rejected += 1;
            return;
        };
        if c.pan.is_finite() {
            v.set_pan(c.pan);
        }
        if !c.value.is_finite() {
            // A trigger from a non-finite alarm always carries level 1; anything else is bad.
            self.stats.rejected += 1;
            return;
        }
        match c.param {
            SynthParam::Pitch => v.set_pitch(c.value),
            SynthParam::Amp => v.set_amp(c.value),
            SynthParam::Cutoff => v.set_cutoff(c.value),
            SynthParam::Pan => v.set_pan(c.value),
            SynthParam::Trigger => v.strike(c.value),
        }
    }

    /// Renders `left.len()` frames (both slices must have the same length).
    pub fn render(&mut self, left: &mut [f32], right: &mut [f32]) {
        let n = left.len().min(right.len());
        let mut done = 0;
        while done < n {
            let m = (n - done).min(MAX_BUFFER_SIZE);
            self.block(m);
            left[done..done + m].copy_from_slice(&self.mix_l[..m]);
            right[done..done + m].copy_from_slice(&self.mix_r[..m]);
            done += m;
        }
    }

    /// Renders `out.len() / channels` frames interleaved: left, right, then silence on any
    /// further channels; mono gets the average.
    pub fn render_interleaved(&mut self, out: &mut [f32], channels: usize) {
        let channels = channels.max(1);
        for chunk in out.chunks_mut(channels * MAX_BUFFER_SIZE) {
            let m = chunk.len() / channels;
            self.block(m);
            for (i, frame) in chunk.chunks_exact_mut(channels).enumerate() {
                if channels == 1 {
                    frame[0] = 0.5 * (self.mix_l[i] + self.mix_r[i]);
                } else {
                    frame[0] = self.mix_l[i];
                    frame[1] = self.mix_r[i];
                    for x in &mut frame[2..] {
                        *x = 0.0;
                    }
                }
            }
        }
    }

    /// One block of `m` ≤ 64 frames into `mix_l`/`mix_r`, limited and guarded.
    fn block(&mut self, m: usize) {
        let (l, r) = (&mut self.mix_l[..m], &mut self.mix_r[..m]);
        l.fill(0.0);
        r.fill(0.0);
        let mut any = false;
        for v in &mut self.voices {
            any |= v.process(m, l, r);
        }
        if !any && self.limiter.gain >= 1.0 {
            return;
        }
        // At unity gain with every sample finite and within the ceiling, the per-frame loop
        // below would leave the gain at exactly 1 and every sample as it is: skip it.
        if self.limiter.gain == 1.0 && within_ceiling(l) && within_ceiling(r) {
            return;
        }
        let lim = &mut self.limiter;
        for i in 0..m {
            let (a, b) = (l[i], r[i]);
            let peak = a.abs().max(b.abs());
            let mut g = 1.0 - (1.0 - lim.gain) * lim.release_k;
            if peak * g > CEILING {
                g = CEILING / peak;
                self.stats.limited_frames += 1;
            }
            lim.gain = if g.is_finite() { g } else { 1.0 };
            let (mut x, mut y) = (a * lim.gain, b * lim.gain);
            if x.is_nan() || x.abs() > CEILING {
                x = if x.is_finite() {
                    x.clamp(-CEILING, CEILING)
                } else {
                    0.0
                };
                self.stats.guarded += 1;
            }
            if y.is_nan() || y.abs() > CEILING {
                y = if y.is_finite() {
                    y.clamp(-CEILING, CEILING)
                } else {
                    0.0
                };
                self.stats.guarded += 1;
            }
            l[i] = x;
            r[i] = y;
        }
    }
}

/// True when every sample is finite and within ±[`CEILING`] (a NaN fails the comparison).
fn within_ceiling(x: &[f32]) -> bool {
    // A branch-free fold the compiler vectorises.
    x.iter().fold(true, |ok, s| ok & (s.abs() <= CEILING))
}
