//! The real-time part: voices, control application, master limiter and the last NaN guard.
//!
//! [`Engine::render`] fills stereo buffers of any length in blocks of at most [`BLOCK`]
//! frames. Nothing here allocates, locks or blocks after [`Engine::new`]. The output is always
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

use super::control::Control;
use super::oscillator::BLOCK;
use super::patch::Patch;
use super::voice::{Scratch, Voice};
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
    scratch: Box<Scratch>,
    limiter: Limiter,
    stats: EngineStats,
    /// Master gain now, and where it goes (a `volume` control); it moves over one block, so
    /// a change does not click.
    master: f32,
    master_to: f32,
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
            scratch: Scratch::new(),
            limiter: Limiter::new(sample_rate),
            stats: EngineStats::default(),
            master: 1.0,
            master_to: 1.0,
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
        if c.voice == Control::MASTER {
            if c.value.is_finite() {
                self.master_to = c.value.clamp(0.0, 1.0);
            } else {
                self.stats.rejected += 1;
            }
            return;
        }
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
        for (l, r) in left[..n]
            .chunks_mut(BLOCK)
            .zip(right[..n].chunks_mut(BLOCK))
        {
            self.block(l, r);
        }
    }

    /// Renders `out.len() / channels` frames interleaved: left, right, then silence on any
    /// further channels; mono gets the average.
    pub fn render_interleaved(&mut self, out: &mut [f32], channels: usize) {
        let channels = channels.max(1);
        let (mut mix_l, mut mix_r) = ([0.0f32; BLOCK], [0.0f32; BLOCK]);
        for chunk in out.chunks_mut(channels * BLOCK) {
            let m = chunk.len() / channels;
            self.block(&mut mix_l[..m], &mut mix_r[..m]);
            for (i, frame) in chunk.chunks_exact_mut(channels).enumerate() {
                if channels == 1 {
                    frame[0] = 0.5 * (mix_l[i] + mix_r[i]);
                } else {
                    frame[0] = mix_l[i];
                    frame[1] = mix_r[i];
                    for x in &mut frame[2..] {
                        *x = 0.0;
                    }
                }
            }
        }
    }

    /// One block (`l.len()` = `r.len()` ≤ [`BLOCK`] frames) into `l` and `r`, limited and
    /// guarded.
    fn block(&mut self, l: &mut [f32], r: &mut [f32]) {
        let m = l.len();
        l.fill(0.0);
        r.fill(0.0);
        let any = mix_voices(&mut self.voices, &mut self.scratch, l, r);
        if self.master != 1.0 || self.master_to != 1.0 {
            // The master gain, ramped across the block from where it was to where it goes.
            let (from, to) = (self.master, self.master_to);
            let k = (to - from) / m as f32;
            for (i, (a, b)) in l.iter_mut().zip(r.iter_mut()).enumerate() {
                let g = from + k * (i + 1) as f32;
                *a *= g;
                *b *= g;
            }
            self.master = to;
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

/// Adds every sounding voice's next `left.len()` frames to `left` and `right`; true if any
/// sounded.
///
/// The voices' loops are written so that the compiler vectorises them. Where the CPU has
/// AVX-512 or AVX, a copy of this loop compiled for it runs 16 or 8 lanes wide instead of
/// SSE2's 4. Neither adds a fused multiply-add (no `fma` feature, and Rust never contracts),
/// so every copy performs the same IEEE operations on every sample: the same bytes on every
/// machine. `is_x86_feature_detected!` reads a cached flag: no allocation, no lock.
fn mix_voices(
    voices: &mut [Voice],
    scratch: &mut Scratch,
    left: &mut [f32],
    right: &mut [f32],
) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU supports AVX-512F (checked just above).
            return unsafe { mix_voices_avx512(voices, scratch, left, right) };
        }
        if std::arch::is_x86_feature_detected!("avx") {
            // SAFETY: the CPU supports AVX (checked just above).
            return unsafe { mix_voices_avx(voices, scratch, left, right) };
        }
    }
    mix_voices_body(voices, scratch, left, right)
}

/// A copy of [`mix_voices_body`] compiled for a wider instruction set.
macro_rules! mix_voices_for {
    ($name:ident, $feature:literal) => {
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = $feature)]
        unsafe fn $name(
            voices: &mut [Voice],
            scratch: &mut Scratch,
            left: &mut [f32],
            right: &mut [f32],
        ) -> bool {
            mix_voices_body(voices, scratch, left, right)
        }
    };
}
mix_voices_for!(mix_voices_avx, "avx");
mix_voices_for!(mix_voices_avx512, "avx512f");

#[inline(always)]
fn mix_voices_body(
    voices: &mut [Voice],
    scratch: &mut Scratch,
    left: &mut [f32],
    right: &mut [f32],
) -> bool {
    let n = left.len().min(right.len());
    let mut any = false;
    for v in voices.iter_mut().filter(|v| !v.is_idle()) {
        any |= v.process(n, scratch, left, right);
    }
    any
}

/// True when every sample is finite and within ±[`CEILING`] (a NaN fails the comparison).
fn within_ceiling(x: &[f32]) -> bool {
    // A branch-free fold the compiler vectorises.
    x.iter().fold(true, |ok, s| ok & (s.abs() <= CEILING))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synth::patch::BUILTIN;

    /// One voice per shipped patch, all struck, with gliding pitch and moving pan.
    fn busy_voices() -> Vec<Voice> {
        BUILTIN
            .iter()
            .enumerate()
            .map(|(i, (file, _))| {
                let name = file.trim_end_matches(".toml");
                let mut v = Voice::new(&Patch::builtin(name).unwrap(), 48_000.0, i as u64);
                v.set_pitch(180.0 + 70.0 * i as f32);
                v.strike(0.9);
                v.set_pitch(260.0 + 50.0 * i as f32);
                v.set_cutoff(900.0);
                v.set_pan(0.7 - 0.3 * i as f32);
                v
            })
            .collect()
    }

    type Mix = unsafe fn(&mut [Voice], &mut Scratch, &mut [f32], &mut [f32]) -> bool;

    /// `wide` (a copy compiled for a wider instruction set) gives the plain loop's bits.
    #[cfg(target_arch = "x86_64")]
    fn same_bits_as_plain(wide: Mix) {
        let (mut a, mut b) = (busy_voices(), busy_voices());
        let (mut sa, mut sb) = (Scratch::new(), Scratch::new());
        let mut sounded = 0;
        // Odd block lengths too: the loops' scalar tails must agree as well.
        for (k, n) in [256, 200, 17, 64, 3, 256]
            .iter()
            .cycle()
            .take(300)
            .enumerate()
        {
            let (mut la, mut ra) = ([0.0f32; BLOCK], [0.0f32; BLOCK]);
            let (mut lb, mut rb) = ([0.0f32; BLOCK], [0.0f32; BLOCK]);
            // SAFETY: the caller checked that the CPU supports `wide`'s instructions.
            let any_a = unsafe { wide(&mut a, &mut sa, &mut la[..*n], &mut ra[..*n]) };
            let any_b = mix_voices_body(&mut b, &mut sb, &mut lb[..*n], &mut rb[..*n]);
            assert_eq!(any_a, any_b, "block {k}");
            assert_eq!(la.map(f32::to_bits), lb.map(f32::to_bits), "block {k}");
            assert_eq!(ra.map(f32::to_bits), rb.map(f32::to_bits), "block {k}");
            sounded += la[..*n].iter().any(|x| *x != 0.0) as usize;
            if k % 40 == 39 {
                for (i, (va, vb)) in a.iter_mut().zip(b.iter_mut()).enumerate() {
                    let hz = 150.0 + (k * 7 + i * 31) as f32;
                    va.set_pitch(hz);
                    vb.set_pitch(hz);
                    va.set_pan(-0.5);
                    vb.set_pan(-0.5);
                }
            }
        }
        assert!(sounded > 200, "only {sounded} blocks sounded");
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn avx_and_plain_voice_loops_give_the_same_bits() {
        // The build machines have AVX: a missing copy would be a silent pass.
        assert!(std::arch::is_x86_feature_detected!("avx"));
        same_bits_as_plain(mix_voices_avx);
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn avx512_and_plain_voice_loops_give_the_same_bits() {
        if std::arch::is_x86_feature_detected!("avx512f") {
            same_bits_as_plain(mix_voices_avx512);
        } else {
            eprintln!("no AVX-512 on this CPU: its copy of the loop is not run here");
        }
    }

    /// The master gain scales the whole mix, moves without a click, and a bad value is
    /// rejected (counted) instead of silencing the engine.
    #[test]
    fn master_gain_scales_the_mix_without_a_click() {
        let patch = Patch::builtin("drone").unwrap();
        let render = |gain: Option<f32>| {
            let mut e = Engine::new(std::slice::from_ref(&patch), 48_000.0);
            let c = |param, value| Control {
                voice: 0,
                param,
                value,
                pan: f32::NAN,
                sent_ns: 0,
            };
            e.apply(&c(SynthParam::Pitch, 220.0));
            e.apply(&c(SynthParam::Amp, 0.5));
            e.apply(&c(SynthParam::Trigger, 1.0));
            let (mut l, mut r) = (vec![0.0f32; 24_000], vec![0.0f32; 24_000]);
            e.render(&mut l[..12_000], &mut r[..12_000]);
            if let Some(g) = gain {
                e.apply(&Control::master(g, 0));
            }
            e.apply(&Control::master(f32::NAN, 0));
            e.render(&mut l[12_000..], &mut r[12_000..]);
            (l, e.stats().rejected)
        };
        let rms = |x: &[f32]| (x.iter().map(|v| v * v).sum::<f32>() / x.len() as f32).sqrt();
        let (full, rejected) = render(None);
        let (half, _) = render(Some(0.5));
        let (mute, _) = render(Some(0.0));
        assert_eq!(rejected, 1, "a NaN gain is rejected");
        assert!(
            rms(&full[18_000..]) > 0.01,
            "the drone sounds: {}",
            rms(&full[18_000..])
        );
        let ratio = rms(&half[18_000..]) / rms(&full[18_000..]);
        assert!((ratio - 0.5).abs() < 0.01, "half the level: {ratio}");
        assert_eq!(rms(&mute[12_000 + BLOCK..]), 0.0, "silent after one block");
        assert_eq!(
            &half[..12_000],
            &full[..12_000],
            "nothing changes before the control"
        );
        // No click: the largest step between samples stays that of the unscaled drone.
        let jump = |x: &[f32]| {
            x.windows(2)
                .map(|w| (w[1] - w[0]).abs())
                .fold(0.0, f32::max)
        };
        assert!(jump(&mute[11_000..13_000]) <= jump(&full[11_000..13_000]) * 1.01);
    }
}
