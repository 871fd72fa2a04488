//! Block oscillators whose loops the compiler vectorises: sine, PolyBLEP sawtooth and square,
//! PolyBLAMP triangle, and two-operator FM (as the equivalent phase modulation).
//!
//! fundsp's `Sine` accumulates its phase sample by sample (a serial chain of additions), and
//! its square and triangle read band-limited wavetables with gathers; together they were the
//! largest cost of rendering. Here a block's phases are computed directly: from a constant
//! ramp when the frequency is constant over the block (a held note), or from per-sample phase
//! offsets the voice computes in closed form while a note glides (a [`Path`]). Each waveform
//! is then a branch-free function of the phase, so every loop runs on SIMD lanes. Same input,
//! same output: there is no state but the phase.
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

    /// For one block along `path` of `n` samples: the start phase and, for a constant path,
    /// the increment per sample; advances by the block.
    #[inline(always)]
    fn take(&mut self, path: &Path, n: usize) -> (f32, f32) {
        match *path {
            Path::Constant { hz } => self.constant(hz, n),
            Path::Varying { adv, .. } => {
                let start = self.phase as f32;
                self.advance(adv);
                (start, 0.0)
            }
        }
    }

    #[inline(always)]
    fn advance(&mut self, delta: f64) {
        let next = self.phase + delta;
        self.phase = next - next.floor();
    }
}

/// How an oscillator's phase moves over one block.
#[derive(Clone, Copy, Debug)]
pub enum Path<'a> {
    /// At the constant frequency `hz`.
    Constant {
        /// Frequency, Hz (> 0).
        hz: f32,
    },
    /// Sample by sample: `off[i]`, the phase of sample `i` less the block's start phase, and
    /// `inc[i]`, its frequency (cycles a sample), both in cycles; `adv`, the phase advance
    /// over the whole block (cycles, in f64 so that a long note keeps its frequency).
    Varying {
        /// Phase offsets from the block's start, cycles.
        off: &'a [f32],
        /// Increments, cycles a sample (> 0).
        inc: &'a [f32],
        /// The block's whole advance, cycles.
        adv: f64,
    },
}

impl Path<'_> {
    /// Fills `off` and `inc` (as long as `freq`) from one frequency per sample (Hz) at
    /// `sample_rate`, and returns the block's advance for [`Path::Varying`]. A running sum
    /// (serial): the voices use it only where their closed form does not apply.
    pub fn offsets(freq: &[f32], sample_rate: f64, off: &mut [f32], inc: &mut [f32]) -> f64 {
        let sd = 1.0 / sample_rate;
        let dt = sd as f32;
        let mut acc = 0.0f32;
        for ((o, k), f) in off.iter_mut().zip(inc.iter_mut()).zip(freq) {
            *o = acc;
            *k = f * dt;
            acc += f * dt;
        }
        freq.iter().map(|f| *f as f64).sum::<f64>() * sd
    }
}

/// Runs `wave(phase, increment)` over `out` along `path`: `phase` is the sample's phase in
/// cycles, not wrapped (≥ 0, < 2^22), `increment` its frequency in cycles a sample.
#[inline(always)]
fn drive(phase: &mut Phase, path: &Path, out: &mut [f32], wave: impl Fn(f32, f32) -> f32) {
    let n = out.len().min(BLOCK);
    let (p0, inc) = phase.take(path, n);
    match *path {
        Path::Constant { .. } => {
            for (o, i) in out[..n].iter_mut().zip(&RAMP) {
                *o = wave(p0 + i * inc, inc);
            }
        }
        Path::Varying { off, inc, .. } => {
            for ((o, d), k) in out[..n].iter_mut().zip(off).zip(inc) {
                *o = wave(p0 + d, *k);
            }
        }
    }
}

/// The powers and running sums of a smoothing coefficient `k` over a block, for the voices'
/// closed-form glide and sweep: a value that moves as `v ← target + (v − target)·k` each
/// sample is `target + (v₀ − target)·pow[i]` at sample `i`, and its running sum up to (not
/// including) sample `i` is `target·i + (v₀ − target)·sum[i]`. Computed in f64.
#[derive(Clone, Debug)]
pub struct Geometric {
    /// `pow[i] = k^(i+1)`.
    pub pow: [f32; BLOCK],
    /// `sum[i] = Σ_{j<i} k^(j+1)`, for `i` in `0..=BLOCK`.
    pub sum: [f32; BLOCK + 1],
}

impl Geometric {
    /// The tables for `k` (0 ≤ k < 1), on the heap (2 KB).
    pub fn new(k: f32) -> Box<Geometric> {
        let k = k as f64;
        let mut g = Box::new(Geometric {
            pow: [0.0; BLOCK],
            sum: [0.0; BLOCK + 1],
        });
        let (mut p, mut s) = (1.0f64, 0.0f64);
        for i in 0..BLOCK {
            p *= k;
            g.pow[i] = p as f32;
            g.sum[i] = s as f32;
            s += p;
        }
        g.sum[BLOCK] = s as f32;
        g
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

    /// Writes `out.len()` (≤ [`BLOCK`]) samples along `path`.
    #[inline(always)]
    pub fn render(&mut self, path: &Path, out: &mut [f32]) {
        drive(&mut self.0, path, out, |p, _| sin_cycles(p));
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

    /// Writes `out.len()` (≤ [`BLOCK`]) samples along `path`.
    #[inline(always)]
    pub fn render(&mut self, path: &Path, out: &mut [f32]) {
        drive(&mut self.0, path, out, |p, inc| {
            let d = inc.max(1e-9);
            saw_blep(fract(p), d, 1.0 / d)
        });
    }
}

/// `x` if positive, else 0 (one `maxps`; a NaN gives 0).
#[inline(always)]
fn pos(x: f32) -> f32 {
    if x > 0.0 {
        x
    } else {
        0.0
    }
}

/// Band-limited triangle (−1..1) by PolyBLAMP: the naive triangle with each corner rounded
/// over one sample on either side (the integral of the PolyBLEP correction), branch-free.
/// The same waveform and level as fundsp's `triangle()`: 0 at phase 0, rising to +1 at a
/// quarter cycle and down to −1 at three quarters.
#[derive(Clone, Debug)]
pub struct TriangleOsc(Phase);

/// The triangle at phase `x` (cycles, not wrapped) with increment `dt` (cycles a sample).
#[inline(always)]
fn triangle_blamp(x: f32, dt: f32) -> f32 {
    let dt = dt.max(1e-9);
    let inv = 1.0 / dt;
    let u = fract(x + 0.25); // the peak at u = 1/2, the trough at u = 0
    let dp = (u - 0.5).abs(); // distance to the peak, cycles (0..1/2); to the trough: 1/2 − dp
    let naive = 1.0 - 4.0 * dp;
    // The slope turns by ∓8·dt a sample at the peak and the trough; a turn by s, x samples
    // away, is smoothed by s·(1 − |x|)³/6 within one sample.
    let mp = pos(1.0 - dp * inv);
    let mt = pos(1.0 - (0.5 - dp) * inv);
    naive + (4.0 / 3.0) * dt * (mt * mt * mt - mp * mp * mp)
}

impl TriangleOsc {
    /// An oscillator at `sample_rate` Hz starting at phase 0.
    pub fn new(sample_rate: f64) -> TriangleOsc {
        TriangleOsc(Phase::new(sample_rate))
    }

    /// Back to phase 0.
    pub fn reset(&mut self) {
        self.0.phase = 0.0;
    }

    /// Writes `out.len()` (≤ [`BLOCK`]) samples along `path`.
    #[inline(always)]
    pub fn render(&mut self, path: &Path, out: &mut [f32]) {
        drive(&mut self.0, path, out, triangle_blamp);
    }
}

/// The level of [`SquareOsc`]: that of fundsp's `square()`, whose wavetable is normalised to
/// its Gibbs overshoot, so that its flat parts sit at about ±0.79 (the RMS of the two agree
/// within 0.1 dB; see the tests).
pub const SQUARE_LEVEL: f32 = 0.786;

/// Band-limited square (±[`SQUARE_LEVEL`]) by PolyBLEP, branch-free: high for the first half
/// cycle, low for the second, like fundsp's `square()`.
#[derive(Clone, Debug)]
pub struct SquareOsc(Phase);

/// The square at phase `x` (cycles, not wrapped) with increment `dt` (cycles a sample).
#[inline(always)]
fn square_blep(x: f32, dt: f32) -> f32 {
    let inv = 1.0 / dt.max(1e-9);
    let dh = fract(x) - 0.5; // from the falling edge, cycles (−1/2..1/2)
    let naive = if dh < 0.0 {
        SQUARE_LEVEL
    } else {
        -SQUARE_LEVEL
    };
    // Within a sample of an edge the step is replaced by the PolyBLEP: for a jump of ±2 at
    // distance x samples the correction is ∓sign(x)·(1 − |x|)², which for both edges here
    // comes to −naive·q².
    let qh = pos(1.0 - dh.abs() * inv);
    let q0 = pos(1.0 - (0.5 - dh.abs()) * inv);
    naive * (1.0 - q0 * q0 - qh * qh)
}

impl SquareOsc {
    /// An oscillator at `sample_rate` Hz starting at phase 0.
    pub fn new(sample_rate: f64) -> SquareOsc {
        SquareOsc(Phase::new(sample_rate))
    }

    /// Back to phase 0.
    pub fn reset(&mut self) {
        self.0.phase = 0.0;
    }

    /// Writes `out.len()` (≤ [`BLOCK`]) samples along `path`.
    #[inline(always)]
    pub fn render(&mut self, path: &Path, out: &mut [f32]) {
        drive(&mut self.0, path, out, square_blep);
    }
}

/// Two-operator FM: a sine carrier whose frequency a sine modulator at `ratio` × its
/// frequency swings by `index` × the modulator's frequency. Computed as the phase modulation
/// it is equal to: integrating `f·(1 + index·ratio·sin 2πφₘ)` over time gives the carrier
/// phase `φ + (index/2π)·(1 − cos 2πφₘ)`, where `φ` integrates `f` and `φₘ` integrates
/// `ratio·f`, however `f` glides. So both phases come from the same [`Path`], with no running
/// sum, and the result is the exact FM rather than a sample-by-sample approximation of it.
#[derive(Clone, Debug)]
pub struct FmOsc {
    carrier: Phase,
    modulator: Phase,
    ratio: f32,
    depth: f32,
}

impl FmOsc {
    /// An FM pair at `sample_rate` Hz starting at phase 0.
    pub fn new(sample_rate: f64, ratio: f32, index: f32) -> FmOsc {
        FmOsc {
            carrier: Phase::new(sample_rate),
            modulator: Phase::new(sample_rate),
            ratio,
            depth: index / std::f32::consts::TAU,
        }
    }

    /// Back to phase 0.
    pub fn reset(&mut self) {
        self.carrier.phase = 0.0;
        self.modulator.phase = 0.0;
    }

    /// Writes `out.len()` (≤ [`BLOCK`]) samples along `path`.
    #[inline(always)]
    pub fn render(&mut self, path: &Path, out: &mut [f32]) {
        let n = out.len().min(BLOCK);
        let (ratio, depth) = (self.ratio, self.depth);
        let ratio64 = ratio as f64;
        let (pc, pm) = (self.carrier.phase as f32, self.modulator.phase as f32);
        // cos 2πφ = sin 2π(φ + 1/4).
        let pm = pm + 0.25;
        match *path {
            Path::Constant { hz } => {
                let inc = hz as f64 * self.carrier.sample_duration;
                self.carrier.advance(n as f64 * inc);
                self.modulator.advance(n as f64 * inc * ratio64);
                let (ic, im) = (inc as f32, (inc * ratio64) as f32);
                for (o, i) in out[..n].iter_mut().zip(&RAMP) {
                    let m = depth * (1.0 - sin_cycles(pm + i * im));
                    *o = sin_cycles(pc + i * ic + m);
                }
            }
            Path::Varying { off, adv, .. } => {
                self.carrier.advance(adv);
                self.modulator.advance(adv * ratio64);
                for (o, d) in out[..n].iter_mut().zip(off) {
                    let m = depth * (1.0 - sin_cycles(pm + d * ratio));
                    *o = sin_cycles(pc + d + m);
                }
            }
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

    /// Power spectrum of `x` (its length a whole number of the tone's cycles), by FFT.
    fn power(x: &[f32]) -> Vec<f64> {
        use rustfft::{num_complex::Complex, FftPlanner};
        let mut buf: Vec<Complex<f64>> = x.iter().map(|v| Complex::new(*v as f64, 0.0)).collect();
        FftPlanner::new()
            .plan_fft_forward(buf.len())
            .process(&mut buf);
        let n = x.len() as f64;
        buf[..x.len() / 2]
            .iter()
            .map(|c| c.norm_sqr() / (n * n))
            .collect()
    }

    /// The share of the power (above DC) that lies off the harmonics of bin `f0`: aliasing.
    fn alias_share(x: &[f32], f0: usize) -> f64 {
        let p = power(x);
        let total: f64 = p[1..].iter().sum();
        let off: f64 = p
            .iter()
            .enumerate()
            .filter(|(i, _)| i % f0 != 0)
            .map(|(_, v)| v)
            .sum();
        off / total
    }

    fn rms(x: &[f32]) -> f64 {
        (x.iter().map(|v| (*v as f64).powi(2)).sum::<f64>() / x.len() as f64).sqrt()
    }

    const SR: f64 = 48_000.0;
    /// 0.1 s: a tone of `k` × 10 Hz fills it with whole cycles.
    const N: usize = 4800;

    /// `N` samples of `osc` at the constant `hz`, in blocks.
    fn run(hz: f32, mut block: impl FnMut(&Path, &mut [f32])) -> Vec<f32> {
        let mut out = vec![0.0f32; N];
        for c in out.chunks_mut(BLOCK) {
            block(&Path::Constant { hz }, c);
        }
        out
    }

    /// fundsp's table oscillator, the one these replace, at the constant `hz`.
    fn fundsp(mut node: fundsp::prelude::WaveSynth<fundsp::prelude::U1>, hz: f32) -> Vec<f32> {
        use fundsp::prelude::AudioNode;
        node.set_sample_rate(SR);
        (0..N).map(|_| node.tick(&[hz].into())[0]).collect()
    }

    /// Naive (not band-limited) forms, for the aliasing comparison.
    fn naive(hz: f32, wave: impl Fn(f64) -> f64) -> Vec<f32> {
        (0..N)
            .map(|i| wave((i as f64 * hz as f64 / SR).fract()) as f32)
            .collect()
    }

    #[test]
    fn triangle_and_square_have_fundsps_pitch_and_level() {
        for hz in [110.0f32, 440.0, 1230.0] {
            let f0 = (hz / 10.0) as usize;
            let mut tri = TriangleOsc::new(SR);
            let ours = run(hz, |p, o| tri.render(p, o));
            let theirs = fundsp(fundsp::prelude::triangle().0, hz);
            let mut sq = SquareOsc::new(SR);
            let ours_sq = run(hz, |p, o| sq.render(p, o));
            let theirs_sq = fundsp(fundsp::prelude::square().0, hz);
            for (name, a, b) in [
                ("triangle", &ours, &theirs),
                ("square", &ours_sq, &theirs_sq),
            ] {
                let (pa, pb) = (power(a), power(b));
                let peak = |p: &[f64]| (1..p.len()).max_by(|i, j| p[*i].total_cmp(&p[*j])).unwrap();
                assert_eq!(
                    peak(&pa),
                    f0,
                    "{name} at {hz} Hz peaks at bin {}",
                    peak(&pa)
                );
                assert_eq!(peak(&pb), f0);
                // Level: RMS and the fundamental's power within 0.1 dB of fundsp's.
                let db = |x: f64, y: f64| 10.0 * (x / y).log10();
                let rms_db = 2.0 * db(rms(a), rms(b));
                println!(
                    "{name} {hz} Hz: RMS ours {:.4} fundsp {:.4} ({rms_db:+.3} dB)",
                    rms(a),
                    rms(b)
                );
                assert!(
                    rms_db.abs() < 0.1,
                    "{name} at {hz} Hz: RMS {rms_db:+.3} dB off fundsp"
                );
                let fund_db = db(pa[f0], pb[f0]);
                assert!(
                    fund_db.abs() < 0.1,
                    "{name} at {hz} Hz: fundamental {fund_db:+.3} dB"
                );
                // The same harmonics: the first few odd ones within 0.5 dB.
                for h in [3, 5, 7] {
                    if f0 * h < N / 2 && pb[f0 * h] > 1e-8 {
                        let d = db(pa[f0 * h], pb[f0 * h]);
                        assert!(d.abs() < 0.5, "{name} at {hz} Hz, harmonic {h}: {d:+.2} dB");
                    }
                }
                // And no even ones.
                assert!(pa[2 * f0] < 1e-6 * pa[f0], "{name}: even harmonic");
            }
            let peak = ours.iter().fold(0.0f32, |m, v| m.max(v.abs()));
            assert!(peak <= 1.0 && peak > 0.9, "triangle peak {peak}");
        }
    }

    #[test]
    fn triangle_and_square_alias_far_less_than_naive_ones() {
        // 2630 Hz: the square's 11th harmonic and up fold back below Nyquist.
        let hz = 2630.0f32;
        let f0 = 263;
        let mut tri = TriangleOsc::new(SR);
        let tri_ours = alias_share(&run(hz, |p, o| tri.render(p, o)), f0);
        let tri_naive = alias_share(
            &naive(hz, |t| 1.0 - 4.0 * ((t + 0.25).fract() - 0.5).abs()),
            f0,
        );
        let mut sq = SquareOsc::new(SR);
        let sq_ours = alias_share(&run(hz, |p, o| sq.render(p, o)), f0);
        let sq_naive = alias_share(&naive(hz, |t| if t < 0.5 { 1.0 } else { -1.0 }), f0);
        let db = |x: f64| 10.0 * x.log10();
        println!(
            "aliasing at {hz} Hz: triangle {:.1} dB (naive {:.1}), square {:.1} dB (naive {:.1})",
            db(tri_ours),
            db(tri_naive),
            db(sq_ours),
            db(sq_naive)
        );
        assert!(db(tri_ours) < db(tri_naive) - 10.0 && db(tri_ours) < -50.0);
        assert!(db(sq_ours) < db(sq_naive) - 10.0 && db(sq_ours) < -30.0);
    }

    #[test]
    fn gliding_paths_match_the_constant_ones_and_stay_in_range() {
        // A Varying path at a constant frequency is the constant path.
        let hz = 329.6f32;
        let inc = [hz / SR as f32; 64];
        let mut off = [0.0f32; 64];
        let mut incs = [0.0f32; 64];
        let adv = Path::offsets(&[hz; 64], SR, &mut off, &mut incs);
        close(&incs, &inc, 1e-9);
        let varying = Path::Varying {
            off: &off,
            inc: &incs,
            adv,
        };
        let constant = Path::Constant { hz };
        let (mut a, mut b) = ([0.0f32; 64], [0.0f32; 64]);
        let (mut t1, mut t2) = (TriangleOsc::new(SR), TriangleOsc::new(SR));
        let (mut s1, mut s2) = (SquareOsc::new(SR), SquareOsc::new(SR));
        let (mut w1, mut w2) = (SawOsc::new(SR), SawOsc::new(SR));
        let (mut f1, mut f2) = (FmOsc::new(SR, 2.0, 0.6), FmOsc::new(SR, 2.0, 0.6));
        for _ in 0..750 {
            t1.render(&constant, &mut a);
            t2.render(&varying, &mut b);
            close(&a, &b, 1e-3);
            s1.render(&constant, &mut a);
            s2.render(&varying, &mut b);
            close(&a, &b, 1e-2);
            assert!(a.iter().all(|v| v.abs() <= SQUARE_LEVEL + 1e-6));
            w1.render(&constant, &mut a);
            w2.render(&varying, &mut b);
            close(&a, &b, 1e-2);
            f1.render(&constant, &mut a);
            f2.render(&varying, &mut b);
            close(&a, &b, 1e-3);
        }
    }

    fn close(a: &[f32], b: &[f32], tol: f32) {
        for (x, y) in a.iter().zip(b) {
            assert!((x - y).abs() < tol, "{x} vs {y}");
        }
    }

    #[test]
    fn fm_is_the_integrated_frequency_modulation() {
        // The old way: the carrier's frequency swung sample by sample by the modulator, and
        // summed into its phase. The phase-modulation form is its exact limit: the two agree
        // closely at a low pitch and give the same sidebands.
        let (hz, ratio, index) = (220.0f32, 2.0f32, 0.6f32);
        let mut fm = FmOsc::new(SR, ratio, index);
        let ours = run(hz, |p, o| fm.render(p, o));
        let (mut carrier, mut modulator) = (SineOsc::new(SR), SineOsc::new(SR));
        let mut old = vec![0.0f32; N];
        for c in old.chunks_mut(BLOCK) {
            let n = c.len();
            let mut m = vec![0.0f32; n];
            modulator.process(&vec![hz * ratio; n], &mut m);
            let f: Vec<f32> = m.iter().map(|a| hz * (1.0 + index * ratio * a)).collect();
            carrier.process(&f, c);
        }
        close(&ours, &old, 0.03);
        let (po, pn) = (power(&ours), power(&old));
        for k in [22, 66, 110, 154] {
            assert!(
                (po[k] - pn[k]).abs() < 0.02 * pn[22],
                "bin {k}: {} vs {}",
                po[k],
                pn[k]
            );
        }
        assert!(
            po[66] > 0.01 * po[22],
            "no sideband: {} vs {}",
            po[66],
            po[22]
        );
    }

    #[test]
    fn geometric_tables_follow_the_recurrence() {
        let k = 0.9948f32;
        let g = Geometric::new(k);
        let (mut v, mut sum) = (1.0f64, 0.0f64);
        for i in 0..BLOCK {
            assert!(
                (g.sum[i] as f64 - sum).abs() <= 1e-5 * sum.max(1.0),
                "sum {i}"
            );
            v *= k as f64;
            sum += v;
            assert!((g.pow[i] as f64 - v).abs() <= 1e-6, "pow {i}");
        }
        assert!((g.sum[BLOCK] as f64 - sum).abs() <= 1e-5 * sum);
        let z = Geometric::new(0.0);
        assert!(z.pow.iter().chain(&z.sum).all(|x| *x == 0.0));
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
