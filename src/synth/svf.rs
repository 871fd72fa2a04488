//! The voices' low-pass filter: the same state-variable filter as fundsp's `lowpass_hz`
//! (Simper's trapezoidal SVF, same coefficients), evaluated eight samples at a time.
//!
//! Sample by sample the filter is a serial chain of multiply-adds (about 15 cycles a
//! sample). It is linear with two state values, so eight outputs are a fixed linear function
//! of the state and the eight inputs: `y[k] = C·A^k·s + Σ_{j≤k} h[k−j]·x[j]`. Those weights
//! are computed once per cutoff change (in f64), and the eight outputs then come from
//! independent multiply-adds. The state after the eight samples is the same kind of sum, so
//! it rides in lanes 8 and 9 of the same sixteen-lane vector: where the CPU has AVX-512,
//! one register holds a chunk's outputs and its next state. A leftover of fewer than eight
//! samples runs the plain recursion.
//!
//! The AVX-512 copy ([`chunks_avx512`]) and the portable one ([`chunks`]) perform the same
//! IEEE operations, in the same order, on every lane (no fused multiply-add): the same bits.

/// Weights for one cutoff: see the module docs.
#[derive(Clone, Debug)]
struct Weights {
    // Recursion coefficients (fundsp's `SvfCoefs::lowpass`).
    a1: f32,
    a2: f32,
    a3: f32,
    // Lanes 0-7: y[k] = (p1[k]·ic1 + p2[k]·ic2) + Σ_j h[j][k]·x[j]. Lanes 8 and 9: the
    // state after eight samples, (ic1, ic2)' = A^8·s + Σ_j g[j]·x[j], the same sum with
    // p = A^8 and h[j] = g[j]. Lanes 10-15 stay zero.
    p1: [f32; 16],
    p2: [f32; 16],
    h: [[f32; 16]; 8],
}

impl Weights {
    fn new(sample_rate: f32, cutoff: f32, q: f32) -> Weights {
        // Below Nyquist, or tan() blows up.
        let cutoff = cutoff.clamp(1.0, 0.49 * sample_rate);
        let q = q.max(0.01);
        let g = (std::f64::consts::PI * cutoff as f64 / sample_rate as f64).tan();
        let k = 1.0 / q as f64;
        let a1 = 1.0 / (1.0 + g * (g + k));
        let a2 = g * a1;
        let a3 = g * a2;
        // State s = (ic1, ic2): s' = A·s + B·x, y = C·s + D·x.
        let a = [[2.0 * a1 - 1.0, -2.0 * a2], [2.0 * a2, 1.0 - 2.0 * a3]];
        let b = [2.0 * a2, 2.0 * a3];
        let (c, d) = ([a2, 1.0 - a3], a3);
        let mul_row = |r: [f64; 2]| {
            [
                r[0] * a[0][0] + r[1] * a[1][0],
                r[0] * a[0][1] + r[1] * a[1][1],
            ]
        };
        let mul_col = |v: [f64; 2]| {
            [
                a[0][0] * v[0] + a[0][1] * v[1],
                a[1][0] * v[0] + a[1][1] * v[1],
            ]
        };
        // Rows C·A^k and columns A^k·B, k = 0..8.
        let mut rows = [[0.0f64; 2]; 9];
        let mut cols = [[0.0f64; 2]; 9];
        rows[0] = c;
        cols[0] = b;
        for i in 1..9 {
            rows[i] = mul_row(rows[i - 1]);
            cols[i] = mul_col(cols[i - 1]);
        }
        // Impulse response: h(0) = D, h(m) = C·A^(m−1)·B.
        let mut imp = [0.0f64; 8];
        imp[0] = d;
        for m in 1..8 {
            imp[m] = rows[m - 1][0] * b[0] + rows[m - 1][1] * b[1];
        }
        // A^8, column by column: A^8·e1 and A^8·e2.
        let (mut e1, mut e2) = ([1.0, 0.0], [0.0, 1.0]);
        for _ in 0..8 {
            e1 = mul_col(e1);
            e2 = mul_col(e2);
        }
        let mut w = Weights {
            a1: a1 as f32,
            a2: a2 as f32,
            a3: a3 as f32,
            p1: [0.0; 16],
            p2: [0.0; 16],
            h: [[0.0; 16]; 8],
        };
        for kk in 0..8 {
            w.p1[kk] = rows[kk][0] as f32;
            w.p2[kk] = rows[kk][1] as f32;
            for j in 0..=kk {
                w.h[j][kk] = imp[kk - j] as f32;
            }
            w.h[kk][8] = cols[7 - kk][0] as f32;
            w.h[kk][9] = cols[7 - kk][1] as f32;
        }
        (w.p1[8], w.p2[8]) = (e1[0] as f32, e2[0] as f32);
        (w.p1[9], w.p2[9]) = (e1[1] as f32, e2[1] as f32);
        w
    }
}

/// Low-pass filter with resonance. See the module docs.
#[derive(Clone, Debug)]
pub(crate) struct LowpassSvf {
    sample_rate: f32,
    q: f32,
    cutoff: f32,
    w: Weights,
    ic1: f32,
    ic2: f32,
}

impl LowpassSvf {
    /// A filter at `cutoff` Hz with quality `q` (0.707: no resonance), at `sample_rate` Hz.
    pub(crate) fn new(sample_rate: f32, cutoff: f32, q: f32) -> LowpassSvf {
        LowpassSvf {
            sample_rate,
            q,
            cutoff,
            w: Weights::new(sample_rate, cutoff, q),
            ic1: 0.0,
            ic2: 0.0,
        }
    }

    /// Sets the cutoff (Hz); recomputes the weights.
    pub(crate) fn set_cutoff(&mut self, cutoff: f32) {
        self.cutoff = cutoff;
        self.w = Weights::new(self.sample_rate, cutoff, self.q);
    }

    /// Clears the state.
    pub(crate) fn reset(&mut self) {
        self.ic1 = 0.0;
        self.ic2 = 0.0;
    }

    /// Filters `x` into `y` (same length). Inlined into the engine's voice loop; whole chunks
    /// of eight run in AVX-512 registers where the CPU has them.
    #[inline(always)]
    pub(crate) fn process(&mut self, x: &[f32], y: &mut [f32]) {
        let n = x.len().min(y.len());
        let whole = n / 8 * 8;
        let mut s = (self.ic1, self.ic2);
        let (xw, yw) = (&x[..whole], &mut y[..whole]);
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU supports AVX-512F (checked just above).
            s = unsafe { chunks_avx512(&self.w, xw, yw, s) };
        } else {
            s = chunks(&self.w, xw, yw, s);
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            s = chunks(&self.w, xw, yw, s);
        }
        let (mut s1, mut s2) = s;
        let w = &self.w;
        for (v0, out) in x[whole..n].iter().zip(&mut y[whole..n]) {
            let v3 = v0 - s2;
            let v1 = w.a1 * s1 + w.a2 * v3;
            let v2 = s2 + w.a2 * s1 + w.a3 * v3;
            s1 = 2.0 * v1 - s1;
            s2 = 2.0 * v2 - s2;
            *out = v2;
        }
        self.ic1 = s1;
        self.ic2 = s2;
    }
}

/// Filters whole chunks of eight (`x.len()` a multiple of 8) from state `s`; returns the
/// state after them. Portable: per lane the same operations, in the same order, as
/// [`chunks_avx512`].
#[inline(always)]
fn chunks(w: &Weights, x: &[f32], y: &mut [f32], s: (f32, f32)) -> (f32, f32) {
    let (mut s1, mut s2) = s;
    for (xc, yc) in x.chunks_exact(8).zip(y.chunks_exact_mut(8)) {
        // The inputs' part first: it does not wait for the state.
        let mut xpart = [0.0f32; 16];
        for (hj, xj) in w.h.iter().zip(xc) {
            for (a, h) in xpart.iter_mut().zip(hj) {
                *a += h * xj;
            }
        }
        for (k, out) in yc.iter_mut().enumerate() {
            *out = (w.p1[k] * s1 + w.p2[k] * s2) + xpart[k];
        }
        (s1, s2) = (
            (w.p1[8] * s1 + w.p2[8] * s2) + xpart[8],
            (w.p1[9] * s1 + w.p2[9] * s2) + xpart[9],
        );
    }
    (s1, s2)
}

/// [`chunks`] in AVX-512 registers: one register holds a chunk's eight outputs (lanes 0-7)
/// and its next state (lanes 8 and 9); the state itself moves on a short two-lane chain.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn chunks_avx512(w: &Weights, x: &[f32], y: &mut [f32], s: (f32, f32)) -> (f32, f32) {
    use std::arch::x86_64::*;
    let h: [__m512; 8] = std::array::from_fn(|j| {
        // SAFETY: each row is sixteen f32s.
        unsafe { _mm512_loadu_ps(w.h[j].as_ptr()) }
    });
    // SAFETY (both): sixteen f32s.
    let (p1, p2) = unsafe {
        (
            _mm512_loadu_ps(w.p1.as_ptr()),
            _mm512_loadu_ps(w.p2.as_ptr()),
        )
    };
    // The state (s1, s2) in lanes 0 and 1, and A^8's columns beside it.
    let c1 = _mm_setr_ps(w.p1[8], w.p1[9], 0.0, 0.0);
    let c2 = _mm_setr_ps(w.p2[8], w.p2[9], 0.0, 0.0);
    let mut st = _mm_setr_ps(s.0, s.1, 0.0, 0.0);
    for (xc, yc) in x.chunks_exact(8).zip(y.chunks_exact_mut(8)) {
        let mut xpart = _mm512_setzero_ps();
        for (hj, xj) in h.iter().zip(xc) {
            xpart = _mm512_add_ps(xpart, _mm512_mul_ps(*hj, _mm512_set1_ps(*xj)));
        }
        let s1 = _mm_shuffle_ps::<0b00_00_00_00>(st, st);
        let s2 = _mm_shuffle_ps::<0b01_01_01_01>(st, st);
        let out = _mm512_add_ps(
            _mm512_add_ps(
                _mm512_mul_ps(p1, _mm512_broadcastss_ps(s1)),
                _mm512_mul_ps(p2, _mm512_broadcastss_ps(s2)),
            ),
            xpart,
        );
        // SAFETY: `yc` is eight f32s.
        unsafe { _mm256_storeu_ps(yc.as_mut_ptr(), _mm512_castps512_ps256(out)) };
        let next = _mm512_extractf32x4_ps::<2>(xpart);
        st = _mm_add_ps(_mm_add_ps(_mm_mul_ps(c1, s1), _mm_mul_ps(c2, s2)), next);
    }
    let s2 = _mm_shuffle_ps::<0b01_01_01_01>(st, st);
    (_mm_cvtss_f32(st), _mm_cvtss_f32(s2))
}

#[cfg(test)]
mod tests {
    use super::*;
    use fundsp::prelude::lowpass_hz;

    #[test]
    fn matches_fundsps_lowpass_sample_by_sample() {
        let (sr, cutoff, q) = (48_000.0f32, 700.0f32, 1.2f32);
        let mut ours = LowpassSvf::new(sr, cutoff, q);
        let mut theirs = lowpass_hz::<f32>(cutoff, q);
        theirs.set_sample_rate(sr as f64);
        let mut rng = 0x1234_5678u32;
        let mut worst = 0.0f32;
        for block in 0..400 {
            // Odd block lengths exercise the scalar leftover too.
            let n = [64, 37, 8, 3][block % 4];
            let x: Vec<f32> = (0..n)
                .map(|_| {
                    rng = rng.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                    (rng >> 8) as f32 / (1 << 23) as f32 - 1.0
                })
                .collect();
            let mut y = vec![0.0; n];
            ours.process(&x, &mut y);
            for (xi, yi) in x.iter().zip(&y) {
                let want = theirs.tick(&[*xi].into())[0];
                worst = worst.max((want - yi).abs());
            }
        }
        assert!(worst < 1e-4, "worst difference {worst}");
    }

    #[test]
    fn avx512_and_portable_chunks_give_the_same_bits() {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx512f") {
            for (cutoff, q) in [(200.0f32, 0.707f32), (1800.0, 1.56), (20_000.0, 4.0)] {
                let w = Weights::new(48_000.0, cutoff, q);
                let (mut a, mut b) = ((0.25f32, -0.5f32), (0.25f32, -0.5f32));
                let mut rng = 0x9e37_79b9u32;
                for _ in 0..200 {
                    let x: Vec<f32> = (0..256)
                        .map(|_| {
                            rng = rng.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                            (rng >> 8) as f32 / (1 << 22) as f32 - 2.0
                        })
                        .collect();
                    let (mut ya, mut yb) = (vec![0.0f32; 256], vec![0.0f32; 256]);
                    a = chunks(&w, &x, &mut ya, a);
                    // SAFETY: the CPU supports AVX-512F (checked above).
                    b = unsafe { chunks_avx512(&w, &x, &mut yb, b) };
                    let bits = |v: &[f32]| v.iter().map(|s| s.to_bits()).collect::<Vec<_>>();
                    assert_eq!(bits(&ya), bits(&yb), "cutoff {cutoff}");
                    assert_eq!(
                        (a.0.to_bits(), a.1.to_bits()),
                        (b.0.to_bits(), b.1.to_bits())
                    );
                }
            }
        } else {
            eprintln!("no AVX-512 on this CPU: the portable copy is the only one");
        }
    }

    #[test]
    fn passes_lows_and_cuts_highs() {
        let sr = 48_000.0f32;
        let rms = |hz: f32| {
            let mut f = LowpassSvf::new(sr, 500.0, 0.707);
            let x: Vec<f32> = (0..48_000)
                .map(|i| (i as f32 * hz / sr * std::f32::consts::TAU).sin())
                .collect();
            let mut y = vec![0.0; x.len()];
            for (xc, yc) in x.chunks(64).zip(y.chunks_mut(64)) {
                f.process(xc, yc);
            }
            (y[24_000..].iter().map(|v| v * v).sum::<f32>() / 24_000.0).sqrt()
        };
        assert!((rms(100.0) - std::f32::consts::FRAC_1_SQRT_2).abs() < 0.02);
        assert!(rms(8000.0) < 0.01, "{}", rms(8000.0));
    }
}
