//! The voices' low-pass filter: the same state-variable filter as fundsp's `lowpass_hz`
//! (Simper's trapezoidal SVF, same coefficients), evaluated eight samples at a time.
//!
//! Sample by sample the filter is a serial chain of multiply-adds (about 15 cycles a
//! sample). It is linear with two state values, so eight outputs are a fixed linear function
//! of the state and the eight inputs: `y[k] = C·A^k·s + Σ_{j≤k} h[k−j]·x[j]`. Those weights
//! are computed once per cutoff change (in f64), and the eight outputs then come from
//! independent multiply-adds the compiler vectorises. A leftover of fewer than eight samples
//! runs the plain recursion.

/// Weights for one cutoff: see the module docs.
#[derive(Clone, Debug)]
struct Weights {
    // Recursion coefficients (fundsp's `SvfCoefs::lowpass`).
    a1: f32,
    a2: f32,
    a3: f32,
    // y[k] = p1[k]·ic1 + p2[k]·ic2 + Σ_j h[j][k]·x[j]
    p1: [f32; 8],
    p2: [f32; 8],
    h: [[f32; 8]; 8],
    // State after eight samples: s' = A^8·s + Σ_j g[j]·x[j]
    a8: [[f32; 2]; 2],
    g1: [f32; 8],
    g2: [f32; 8],
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
        let mut w = Weights {
            a1: a1 as f32,
            a2: a2 as f32,
            a3: a3 as f32,
            p1: [0.0; 8],
            p2: [0.0; 8],
            h: [[0.0; 8]; 8],
            a8: [[0.0; 2]; 2],
            g1: [0.0; 8],
            g2: [0.0; 8],
        };
        for kk in 0..8 {
            w.p1[kk] = rows[kk][0] as f32;
            w.p2[kk] = rows[kk][1] as f32;
            for j in 0..=kk {
                w.h[j][kk] = imp[kk - j] as f32;
            }
            w.g1[kk] = cols[7 - kk][0] as f32;
            w.g2[kk] = cols[7 - kk][1] as f32;
        }
        // A^8, column by column: A^8·e1 and A^8·e2.
        let (mut e1, mut e2) = ([1.0, 0.0], [0.0, 1.0]);
        for _ in 0..8 {
            e1 = mul_col(e1);
            e2 = mul_col(e2);
        }
        w.a8 = [[e1[0] as f32, e2[0] as f32], [e1[1] as f32, e2[1] as f32]];
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

    /// Filters `x` into `y` (same length). Inlined into the engine's voice loop, so that its
    /// AVX copy runs the eight lanes in one register.
    #[inline(always)]
    pub(crate) fn process(&mut self, x: &[f32], y: &mut [f32]) {
        let w = &self.w;
        let (mut s1, mut s2) = (self.ic1, self.ic2);
        let mut xs = x.chunks_exact(8);
        let mut ys = y.chunks_exact_mut(8);
        for (xc, yc) in (&mut xs).zip(&mut ys) {
            let mut acc: [f32; 8] = std::array::from_fn(|k| w.p1[k] * s1 + w.p2[k] * s2);
            for (hj, xj) in w.h.iter().zip(xc) {
                for (a, h) in acc.iter_mut().zip(hj) {
                    *a += h * xj;
                }
            }
            yc.copy_from_slice(&acc);
            let (mut n1, mut n2) = (0.0f32, 0.0f32);
            for ((g1, g2), xj) in w.g1.iter().zip(&w.g2).zip(xc) {
                n1 += g1 * xj;
                n2 += g2 * xj;
            }
            let t1 = w.a8[0][0] * s1 + w.a8[0][1] * s2 + n1;
            let t2 = w.a8[1][0] * s1 + w.a8[1][1] * s2 + n2;
            s1 = t1;
            s2 = t2;
        }
        for (v0, out) in xs.remainder().iter().zip(ys.into_remainder()) {
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
