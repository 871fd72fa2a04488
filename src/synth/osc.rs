//! Block oscillators whose loops the compiler vectorises: a sine and a PolyBLEP sawtooth.
//!
//! fundsp's `Sine` accumulates its phase sample by sample (a serial chain of additions) and
//! was the largest cost of rendering. [`SineOsc`] computes a block's phases directly (from a
//! constant ramp when the frequency is constant over the block, the common case: a held
//! note) and evaluates the sine with a branch-free polynomial, so both loops run on SIMD
//! lanes. Same input, same output: there is no state but the phase.
//!
//! The methods are `#[inline(always)]`: the engine compiles its whole voice loop once more
//! with AVX enabled and picks that copy at run time (see [`super::engine`]).

/// Largest block, frames: voices and the engine work in blocks of at most this many.
pub const BLOCK: usize = 256;

/// `RAMP[i] = i` as `f32`: the sample offsets of a block, read instead of converting an
/// integer counter (which does not vectorise).
pub static RAMP: [f32; BLOCK] = {
    let mut r = [0.0f32; BLOCK];
    let mut i = 0;
    while i < BLOCK {
        r[i] = i as f32;
        i += 1;
    }
    r
};

/// `sin(2π x)` for |x| < 2^22, absolute error below 1e-6.
#[inline(always)]
pub fn sin_cycles(x: f32) -> f32 {
    // Round to nearest without a libm call (the magic-number trick; exact for |x| < 2^22).
    const MAGIC: f32 = 12_582_912.0; // 1.5 × 2^23
    let r = x - ((x + MAGIC) - MAGIC); // in [-0.5, 0.5]
                                       // sin(2π r) = r·(1/4 − r²)·Q(r²): the factors give the zeros at 0 and ±1/2 exactly, and
                                       // Q, a quartic in r² fitted to minimise the absolute error, is smooth. Error < 3.5e-7
                                       // on [-1/2, 1/2], in 15 operations and no branch or select.
    let r2 = r * r;
    let q = 12.233_326_f32;
    let q = q * r2 - 38.123_207;
    let q = q * r2 + 67.043_9;
    let q = q * r2 - 64.834_68;
    let q = q * r2 + 25.132_73;
    r * (0.25 - r2) * q
}

/// An oscillator's phase in cycles, advanced a block at a time (in f64, so that a long note
/// keeps its frequency).
#[derive(Clone, Debug)]
struct Phase {
    phase: f64,
    sample_duration: f64,
}

impl Phase {
    fn new(sample_rate: f64) -> Phase {
        Phase {
            phase: 0.0,
            sample_duration: 1.0 / sample_rate,
        }
    }

    /// For `n` samples at the constant `hz`: the start phase and the increment per sample,
    /// then advances by the block.
    #[inline(always)]
    fn constant(&mut self, hz: f32, n: usize) -> (f32, f32) {
        let inc = hz as f64 * self.sample_duration;
        let start = self.phase as f32;
        self.advance(n as f64 * inc);
        (start, inc as f32)
    }

    /// For one sample per entry of `freq` (Hz): writes each sample's phase offset from the
    /// block's start into `offsets`, returns the start phase, and advances by the block (the
    /// advance summed in f64: f32 rounding of the running sum would add up over a long note).
    #[inline(always)]
    fn varying(&mut self, freq: &[f32], offsets: &mut [f32]) -> f32 {
        let dt = self.sample_duration as f32;
        let mut acc = 0.0f32;
        for (p, f) in offsets.iter_mut().zip(freq) {
            *p = acc;
            acc += f * dt;
        }
        let start = self.phase as f32;
        self.advance(freq.iter().map(|f| *f as f64).sum::<f64>() * self.sample_duration);
        start
    }

    #[inline(always)]
    fn advance(&mut self, delta: f64) {
        let next = self.phase + delta;
        self.phase = next - next.floor();
    }
}

/// Sine oscillator. See the module docs.
#[derive(Clone, Debug)]
pub struct SineOsc(Phase);

impl SineOsc {
    /// An oscillator at `sample_rate` Hz starting at phase 0.
    pub fn new(sample_rate: f64) -> SineOsc {
        SineOsc(Phase::new(sample_rate))
    }

    /// Back to phase 0.
    pub fn reset(&mut self) {
        self.0.phase = 0.0;
    }

    /// Writes `out.len()` (≤ [`BLOCK`]) samples at the constant frequency `hz`.
    #[inline(always)]
    pub fn process_constant(&mut self, hz: f32, out: &mut [f32]) {
        let n = out.len().min(BLOCK);
        let (p0, inc) = self.0.constant(hz, n);
        sine_ramp(p0, inc, &mut out[..n]);
    }

    /// Writes one sample per entry of `freq` (Hz, ≤ [`BLOCK`] entries) into `out`.
    #[inline(always)]
    pub fn process(&mut self, freq: &[f32], out: &mut [f32]) {
        let n = freq.len().min(out.len()).min(BLOCK);
        let mut offsets = [0.0f32; BLOCK];
        let p0 = self.0.varying(&freq[..n], &mut offsets[..n]);
        for (o, p) in out[..n].iter_mut().zip(&offsets[..n]) {
            *o = sin_cycles(p0 + *p);
        }
    }

    /// Adds `left.len()` (≤ [`BLOCK`]) samples at the constant frequency `hz`, times
    /// `gains.0` to `left` and `gains.1` to `right`: oscillator, gain and pan in one pass.
    #[inline(always)]
    pub fn add_constant(
        &mut self,
        hz: f32,
        gains: (f32, f32),
        left: &mut [f32],
        right: &mut [f32],
    ) {
        let n = left.len().min(right.len()).min(BLOCK);
        let (p0, inc) = self.0.constant(hz, n);
        let (gl, gr) = gains;
        for ((l, r), i) in left[..n].iter_mut().zip(&mut right[..n]).zip(&RAMP) {
            let s = sin_cycles(p0 + i * inc);
            *l += s * gl;
            *r += s * gr;
        }
    }
}

/// `out[i] = sin_cycles(p0 + i·inc)`.
#[inline(always)]
fn sine_ramp(p0: f32, inc: f32, out: &mut [f32]) {
    for (o, i) in out.iter_mut().zip(&RAMP) {
        *o = sin_cycles(p0 + i * inc);
    }
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
pub struct SawOsc(Phase);

/// The ramp at phase `t` (0..1) with increment `dt` per sample (0 < dt < 0.5; `inv` = 1/dt).
#[inline(always)]
fn saw_blep(t: f32, dt: f32, inv: f32) -> f32 {
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
        SawOsc(Phase::new(sample_rate))
    }

    /// Back to phase 0.
    pub fn reset(&mut self) {
        self.0.phase = 0.0;
    }

    /// Writes `out.len()` (≤ [`BLOCK`]) samples at the constant frequency `hz` (> 0).
    #[inline(always)]
    pub fn process_constant(&mut self, hz: f32, out: &mut [f32]) {
        let n = out.len().min(BLOCK);
        let (p0, inc) = self.0.constant(hz, n);
        let dt = inc.max(1e-9);
        let inv = 1.0 / dt;
        for (o, i) in out[..n].iter_mut().zip(&RAMP) {
            *o = saw_blep(fract(p0 + i * dt), dt, inv);
        }
    }

    /// Writes one sample per entry of `freq` (Hz > 0, ≤ [`BLOCK`] entries) into `out`.
    #[inline(always)]
    pub fn process(&mut self, freq: &[f32], out: &mut [f32]) {
        let n = freq.len().min(out.len()).min(BLOCK);
        let mut offsets = [0.0f32; BLOCK];
        let p0 = self.0.varying(&freq[..n], &mut offsets[..n]);
        let dt = self.0.sample_duration as f32;
        for ((o, p), f) in out[..n].iter_mut().zip(&offsets[..n]).zip(freq) {
            let d = (f * dt).max(1e-9);
            *o = saw_blep(fract(p0 + *p), d, 1.0 / d);
        }
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
        let blocks = 48_000 / BLOCK; // about 1 s of audio
        for _ in 0..blocks {
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
        let want = hz * (blocks * BLOCK) as f32 / 48_000.0;
        assert!(
            (crossings as f32 - want).abs() <= 1.0,
            "{crossings} cycles, want {want}"
        );
    }

    /// The loops compiled with AVX, as the engine's AVX copy compiles them.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx")]
    unsafe fn with_avx(osc: &mut SineOsc, freq: &[f32], out: &mut [f32]) {
        osc.process(freq, out)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx")]
    unsafe fn constant_with_avx(osc: &mut SineOsc, hz: f32, out: &mut [f32]) {
        osc.process_constant(hz, out)
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn sine_loops_give_the_same_bits_with_and_without_avx() {
        if !std::arch::is_x86_feature_detected!("avx") {
            return;
        }
        let (mut a, mut b) = ([0.0f32; BLOCK], [0.0f32; BLOCK]);
        let freq: [f32; BLOCK] = std::array::from_fn(|i| 300.0 + i as f32 * 1.37);
        let (mut oa, mut ob) = (SineOsc::new(48_000.0), SineOsc::new(48_000.0));
        for k in 0..200 {
            let hz = 100.0 + k as f32 * 17.3;
            // SAFETY: the CPU supports AVX (checked above).
            unsafe { constant_with_avx(&mut oa, hz, &mut a) };
            ob.process_constant(hz, &mut b);
            assert_eq!(a.map(f32::to_bits), b.map(f32::to_bits));
            // SAFETY: as above.
            unsafe { with_avx(&mut oa, &freq, &mut a) };
            ob.process(&freq, &mut b);
            assert_eq!(a.map(f32::to_bits), b.map(f32::to_bits));
        }
    }

    #[test]
    fn saw_rises_jumps_once_a_cycle_and_stays_in_range() {
        let sr = 48_000.0;
        let (mut a, mut b) = (SawOsc::new(sr), SawOsc::new(sr));
        let hz = 55.0f32;
        // 1 s in blocks of 64: both paths' phases stay close enough for the comparison
        // (near a jump a phase difference of 1e-6 moves the output by ~1e-3).
        const N: usize = 64;
        let freq = [hz; N];
        let (mut oa, mut ob) = ([0.0f32; N], [0.0f32; N]);
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
