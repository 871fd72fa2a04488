//! A block sine oscillator whose loops the compiler vectorises.
//!
//! fundsp's `Sine` accumulates its phase sample by sample (a serial chain of additions) and
//! was the largest cost of rendering. [`SineOsc`] computes a block's phases directly when the
//! frequency is constant over the block (the common case: a held note) and evaluates the sine
//! with a branch-free polynomial, so both loops run on SIMD lanes. Same input, same output:
//! there is no state but the phase.

use std::f32::consts::TAU;

/// Largest block, frames (fundsp's block size).
pub const BLOCK: usize = fundsp::MAX_BUFFER_SIZE;

/// `sin(2π x)` for |x| < 2^22, absolute error below 1e-6.
#[inline(always)]
pub fn sin_cycles(x: f32) -> f32 {
    // Round to nearest without a libm call (the magic-number trick; exact for |x| < 2^22).
    const MAGIC: f32 = 12_582_912.0; // 1.5 × 2^23
    let r = x - ((x + MAGIC) - MAGIC); // in [-0.5, 0.5]
                                       // sin(2π r) = sin(2π (±0.5 − r)): fold into [-0.25, 0.25].
    let a = r.abs();
    let y = f32::copysign(a.min(0.5 - a), r);
    let z = y * TAU;
    let z2 = z * z;
    // Taylor series to z^11: error < 6e-8 on [-π/2, π/2].
    let p = -1.0 / 39_916_800.0;
    let p = p * z2 + 1.0 / 362_880.0;
    let p = p * z2 - 1.0 / 5_040.0;
    let p = p * z2 + 1.0 / 120.0;
    let p = p * z2 - 1.0 / 6.0;
    let p = p * z2 + 1.0;
    z * p
}

/// Sine oscillator (phase in cycles). See the module docs.
#[derive(Clone, Debug)]
pub struct SineOsc {
    phase: f64,
    sample_duration: f64,
}

impl SineOsc {
    /// An oscillator at `sample_rate` Hz starting at phase 0.
    pub fn new(sample_rate: f64) -> SineOsc {
        SineOsc {
            phase: 0.0,
            sample_duration: 1.0 / sample_rate,
        }
    }

    /// Back to phase 0.
    pub fn reset(&mut self) {
        self.phase = 0.0;
    }

    /// Writes `out.len()` (≤ [`BLOCK`]) samples at the constant frequency `hz`.
    pub fn process_constant(&mut self, hz: f32, out: &mut [f32]) {
        let n = out.len().min(BLOCK);
        let inc = hz as f64 * self.sample_duration;
        sine_ramp(self.phase as f32, inc as f32, &mut out[..n]);
        let next = self.phase + n as f64 * inc;
        self.phase = next - next.floor();
    }

    /// Writes one sample per entry of `freq` (Hz, ≤ [`BLOCK`] entries) into `out`.
    pub fn process(&mut self, freq: &[f32], out: &mut [f32]) {
        let n = freq.len().min(out.len()).min(BLOCK);
        let mut phases = [0.0f32; BLOCK];
        let dt = self.sample_duration as f32;
        let mut acc = 0.0f32;
        for (p, f) in phases[..n].iter_mut().zip(freq) {
            *p = acc;
            acc += f * dt;
        }
        sine_offsets(self.phase as f32, &phases[..n], &mut out[..n]);
        // The block's advance in f64: f32 rounding of `acc` would add up over a long note.
        let total: f64 = freq[..n].iter().map(|f| *f as f64).sum::<f64>() * self.sample_duration;
        let next = self.phase + total;
        self.phase = next - next.floor();
    }
}

/// `out[i] = sin_cycles(p0 + i·inc)`.
#[inline(always)]
fn sine_ramp_body(p0: f32, inc: f32, out: &mut [f32]) {
    for (i, o) in out.iter_mut().enumerate() {
        *o = sin_cycles(p0 + i as f32 * inc);
    }
}

/// `out[i] = sin_cycles(p0 + offsets[i])`.
#[inline(always)]
fn sine_offsets_body(p0: f32, offsets: &[f32], out: &mut [f32]) {
    for (o, p) in out.iter_mut().zip(offsets) {
        *o = sin_cycles(p0 + *p);
    }
}

// The sine loops dominate rendering. Where the CPU has AVX they run 8 lanes wide instead of
// SSE2's 4. AVX adds no fused multiply-add here (no `fma` feature, and Rust never contracts),
// so both versions perform the same IEEE operations and give bit-identical samples.
// `is_x86_feature_detected!` reads a cached flag: no allocation, no lock.

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx")]
unsafe fn sine_ramp_avx(p0: f32, inc: f32, out: &mut [f32]) {
    sine_ramp_body(p0, inc, out)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx")]
unsafe fn sine_offsets_avx(p0: f32, offsets: &[f32], out: &mut [f32]) {
    sine_offsets_body(p0, offsets, out)
}

fn sine_ramp(p0: f32, inc: f32, out: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx") {
        // SAFETY: the CPU supports AVX (checked just above).
        return unsafe { sine_ramp_avx(p0, inc, out) };
    }
    sine_ramp_body(p0, inc, out)
}

fn sine_offsets(p0: f32, offsets: &[f32], out: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx") {
        // SAFETY: the CPU supports AVX (checked just above).
        return unsafe { sine_offsets_avx(p0, offsets, out) };
    }
    sine_offsets_body(p0, offsets, out)
}

/// `x − floor(x)` for |x| < 2^22 without a libm call.
#[inline(always)]
fn fract(x: f32) -> f32 {
    const MAGIC: f32 = 12_582_912.0;
    let r = (x + MAGIC) - MAGIC;
    let f = x - r; // in [-0.5, 0.5]
    if f < 0.0 {
        f + 1.0
    } else {
        f
    }
}

/// Band-limited sawtooth (−1..1, rising) by PolyBLEP: the naive ramp with each jump
/// smoothed over one sample on either side, branch-free so the loop vectorises.
#[derive(Clone, Debug)]
pub struct SawOsc {
    phase: f64,
    sample_duration: f64,
}

/// The ramp at phase `t` (0..1) with increment `dt` per sample (0 < dt < 0.5).
#[inline(always)]
fn saw_blep(t: f32, dt: f32) -> f32 {
    let inv = 1.0 / dt;
    let naive = 2.0 * t - 1.0;
    let a = t * inv; // just after the jump
    let b = (t - 1.0) * inv; // just before it
    let after = a + a - a * a - 1.0;
    let before = b * b + b + b + 1.0;
    let c = if t < dt {
        after
    } else if t > 1.0 - dt {
        before
    } else {
        0.0
    };
    naive - c
}

impl SawOsc {
    /// An oscillator at `sample_rate` Hz starting at phase 0.
    pub fn new(sample_rate: f64) -> SawOsc {
        SawOsc {
            phase: 0.0,
            sample_duration: 1.0 / sample_rate,
        }
    }

    /// Back to phase 0.
    pub fn reset(&mut self) {
        self.phase = 0.0;
    }

    /// Writes `out.len()` (≤ [`BLOCK`]) samples at the constant frequency `hz` (> 0).
    pub fn process_constant(&mut self, hz: f32, out: &mut [f32]) {
        let n = out.len().min(BLOCK);
        let inc = hz as f64 * self.sample_duration;
        let (p0, dt) = (self.phase as f32, (inc as f32).max(1e-9));
        for (i, o) in out[..n].iter_mut().enumerate() {
            *o = saw_blep(fract(p0 + i as f32 * dt), dt);
        }
        let next = self.phase + n as f64 * inc;
        self.phase = next - next.floor();
    }

    /// Writes one sample per entry of `freq` (Hz > 0, ≤ [`BLOCK`] entries) into `out`.
    pub fn process(&mut self, freq: &[f32], out: &mut [f32]) {
        let n = freq.len().min(out.len()).min(BLOCK);
        let mut phases = [0.0f32; BLOCK];
        let dt = self.sample_duration as f32;
        let mut acc = 0.0f32;
        for (p, f) in phases[..n].iter_mut().zip(freq) {
            *p = acc;
            acc += f * dt;
        }
        let p0 = self.phase as f32;
        for ((o, p), f) in out[..n].iter_mut().zip(&phases[..n]).zip(freq) {
            *o = saw_blep(fract(p0 + *p), (f * dt).max(1e-9));
        }
        // The block's advance in f64: f32 rounding of `acc` would add up over a long note.
        let total: f64 = freq[..n].iter().map(|f| *f as f64).sum::<f64>() * self.sample_duration;
        let next = self.phase + total;
        self.phase = next - next.floor();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sin_cycles_matches_libm() {
        let mut worst = 0.0f32;
        for i in -200_000..200_000 {
            let x = i as f32 * 1.37e-4;
            worst =
                worst.max((sin_cycles(x) - (x as f64 * std::f64::consts::TAU).sin() as f32).abs());
        }
        assert!(worst < 1e-6, "worst error {worst}");
    }

    #[test]
    fn constant_and_varying_paths_agree_and_keep_the_frequency() {
        let sr = 48_000.0;
        let (mut a, mut b) = (SineOsc::new(sr), SineOsc::new(sr));
        let hz = 441.3f32;
        let freq = [hz; BLOCK];
        let (mut oa, mut ob) = ([0.0f32; BLOCK], [0.0f32; BLOCK]);
        let mut crossings = 0;
        let mut last = 0.0f32;
        for _ in 0..750 {
            // 1 s of audio
            a.process_constant(hz, &mut oa);
            b.process(&freq, &mut ob);
            for (x, y) in oa.iter().zip(&ob) {
                assert!((x - y).abs() < 1e-4, "{x} vs {y}");
                if last < 0.0 && *x >= 0.0 {
                    crossings += 1;
                }
                last = *x;
            }
        }
        assert!(
            (crossings as f32 - hz).abs() <= 1.0,
            "{crossings} cycles in 1 s"
        );
    }

    #[test]
    fn sine_loops_give_the_same_bits_with_and_without_avx() {
        let (mut a, mut b) = ([0.0f32; BLOCK], [0.0f32; BLOCK]);
        let offsets: [f32; BLOCK] =
            std::array::from_fn(|i| i as f32 * 0.0137 + (i % 3) as f32 * 1e-3);
        for k in 0..200 {
            let p0 = k as f32 * 0.0049;
            sine_ramp(p0, 0.0091, &mut a);
            sine_ramp_body(p0, 0.0091, &mut b);
            assert_eq!(a.map(f32::to_bits), b.map(f32::to_bits));
            sine_offsets(p0, &offsets, &mut a);
            sine_offsets_body(p0, &offsets, &mut b);
            assert_eq!(a.map(f32::to_bits), b.map(f32::to_bits));
        }
    }

    #[test]
    fn saw_rises_jumps_once_a_cycle_and_stays_in_range() {
        let sr = 48_000.0;
        let (mut a, mut b) = (SawOsc::new(sr), SawOsc::new(sr));
        let hz = 55.0f32;
        let freq = [hz; BLOCK];
        let (mut oa, mut ob) = ([0.0f32; BLOCK], [0.0f32; BLOCK]);
        let (mut jumps, mut last, mut sum) = (0, 0.0f32, 0.0f64);
        for _ in 0..750 {
            a.process_constant(hz, &mut oa);
            b.process(&freq, &mut ob);
            for (x, y) in oa.iter().zip(&ob) {
                assert!((x - y).abs() < 1e-3, "{x} vs {y}");
                assert!(x.abs() <= 1.0 + 1e-6, "{x}");
                if last >= 0.0 && *x < 0.0 {
                    jumps += 1;
                }
                last = *x;
                sum += *x as f64;
            }
        }
        assert!((jumps as f32 - hz).abs() <= 1.0, "{jumps} jumps in 1 s");
        assert!((sum / 48_000.0).abs() < 0.02, "mean {}", sum / 48_000.0);
    }
}
