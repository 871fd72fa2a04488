//! Value → level: domain, curve, clamp, invert and smoothing, with per-slot learned state.

use crate::mapping::schema::{Curve, Domain, Learn, Transform};

/// Maps `x` from the domain `[lo, hi]` through `curve`, without clamping or inverting.
///
/// Returns a level where `lo` gives 0 and `hi` gives 1. With [`Curve::Log`] a non-positive `x`
/// gives 0 (log of nothing). A degenerate domain (`hi <= lo`) gives 0.5.
pub fn shape(curve: Curve, lo: f64, hi: f64, x: f64, clamp: bool) -> f64 {
    if hi <= lo || hi.is_nan() || lo.is_nan() {
        return 0.5;
    }
    let mut u = match curve {
        Curve::Log => {
            if x <= 0.0 || lo <= 0.0 {
                0.0
            } else {
                (x / lo).ln() / (hi / lo).ln()
            }
        }
        _ => (x - lo) / (hi - lo),
    };
    if clamp {
        u = u.clamp(0.0, 1.0);
    }
    match curve {
        Curve::Linear | Curve::Log => u,
        Curve::Exp(c) | Curve::LinCurve(c) => {
            if c.abs() < 1e-6 {
                u
            } else {
                (c * u).exp_m1() / c.exp_m1()
            }
        }
    }
}

/// Learned-domain state of one slot.
#[derive(Clone, Debug)]
enum LearnState {
    Fixed,
    MinMax {
        min: f64,
        max: f64,
    },
    Percentile {
        ring: Vec<f64>,
        scratch: Vec<f64>,
        pos: usize,
        filled: usize,
        since: usize,
        lo: f64,
        hi: f64,
    },
    Warmup {
        /// The first `warmup` positive values (sorted in place once full).
        seen: Vec<f64>,
        filled: usize,
        lo: f64,
        hi: f64,
    },
}

/// The per-slot (route × layer) state of a transform: learned domain and smoothing filter.
///
/// Created once per slot; [`TransformState::apply`] never allocates.
#[derive(Clone, Debug)]
pub struct TransformState {
    learn: LearnState,
    seen: u64,
    smooth: Option<f64>,
}

impl TransformState {
    /// Fresh state for a transform (allocates the percentile window, if any).
    pub fn new(t: &Transform) -> TransformState {
        let learn = match t.domain {
            Domain::Fixed { .. } => LearnState::Fixed,
            Domain::Learned {
                learn: Learn::MinMax,
                ..
            } => LearnState::MinMax {
                min: f64::INFINITY,
                max: f64::NEG_INFINITY,
            },
            Domain::Learned {
                learn: Learn::Warmup { .. },
                warmup,
            } => LearnState::Warmup {
                seen: vec![0.0; warmup.max(1) as usize],
                filled: 0,
                lo: 0.0,
                hi: 0.0,
            },
            Domain::Learned {
                learn: Learn::Percentile { .. },
                warmup,
            } => {
                let n = warmup.max(1) as usize;
                LearnState::Percentile {
                    ring: vec![0.0; n],
                    scratch: vec![0.0; n],
                    pos: 0,
                    filled: 0,
                    since: 0,
                    lo: 0.0,
                    hi: 0.0,
                }
            }
        };
        TransformState {
            learn,
            seen: 0,
            smooth: None,
        }
    }

    /// Maps one value to a level. `None` for a non-finite value (or a non-finite result),
    /// and while a learned domain is still warming up (a `warmup`-anchored domain sounds from
    /// its first positive value on).
    pub fn apply(&mut self, t: &Transform, x: f64) -> Option<f64> {
        if !x.is_finite() {
            return None;
        }
        let log = matches!(t.curve, Curve::Log);
        let (lo, hi) = match (&t.domain, &mut self.learn) {
            (Domain::Fixed { lo, hi }, _) => (*lo, *hi),
            (Domain::Learned { warmup, .. }, LearnState::MinMax { min, max }) => {
                if !(log && x <= 0.0) {
                    *min = min.min(x);
                    *max = max.max(x);
                    self.seen += 1;
                }
                if self.seen < (*warmup).max(1) as u64 {
                    return None;
                }
                (*min, *max)
            }
            (
                Domain::Learned {
                    learn: Learn::Percentile { lo: plo, hi: phi },
                    ..
                },
                LearnState::Percentile {
                    ring,
                    scratch,
                    pos,
                    filled,
                    since,
                    lo,
                    hi,
                },
            ) => {
                if !(log && x <= 0.0) {
                    let n = ring.len();
                    ring[*pos] = x;
                    *pos = (*pos + 1) % n;
                    *filled = (*filled + 1).min(n);
                    *since += 1;
                    if *filled == n && (*since >= n || self.seen == 0) {
                        scratch.copy_from_slice(ring);
                        scratch.sort_unstable_by(f64::total_cmp);
                        let pick =
                            |p: f64| scratch[((p / 100.0) * (n - 1) as f64).round() as usize];
                        *lo = pick(*plo);
                        *hi = pick(*phi);
                        *since = 0;
                        self.seen += 1;
                    }
                }
                if self.seen == 0 {
                    return None;
                }
                (*lo, *hi)
            }
            (
                Domain::Learned {
                    learn: Learn::Warmup { span },
                    ..
                },
                LearnState::Warmup {
                    seen,
                    filled,
                    lo,
                    hi,
                },
            ) => {
                let n = seen.len();
                if *filled < n && x > 0.0 {
                    seen[*filled] = x;
                    *filled += 1;
                    // Centred on the first value until the warm-up is over, then on the
                    // warm-up's median for good.
                    let anchor = if *filled == n {
                        seen.sort_unstable_by(f64::total_cmp);
                        seen[(n - 1) / 2]
                    } else {
                        seen[0]
                    };
                    if *filled == 1 || *filled == n {
                        let half = span.sqrt();
                        *lo = anchor / half;
                        *hi = anchor * half;
                    }
                }
                if *filled == 0 {
                    return None;
                }
                (*lo, *hi)
            }
            _ => return None,
        };
        let mut level = shape(t.curve, lo, hi, x, t.clamp);
        if t.invert {
            level = 1.0 - level;
        }
        if t.smoothing > 0.0 {
            let prev = self.smooth.unwrap_or(level);
            level = t.smoothing * prev + (1.0 - t.smoothing) * level;
            self.smooth = Some(level);
        }
        level.is_finite().then_some(level)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixed(lo: f64, hi: f64, curve: Curve) -> Transform {
        Transform {
            domain: Domain::Fixed { lo, hi },
            curve,
            ..Transform::default()
        }
    }

    #[test]
    fn log_domain_centre() {
        // 1.0 in [1e-3, 1e3]: ln(1/1e-3) / ln(1e6) = 3/6 = 0.5.
        assert!((shape(Curve::Log, 1e-3, 1e3, 1.0, true) - 0.5).abs() < 1e-12);
        assert_eq!(shape(Curve::Log, 1e-3, 1e3, 0.0, true), 0.0);
        assert_eq!(shape(Curve::Log, 1e-3, 1e3, 1e9, true), 1.0);
    }

    #[test]
    fn exp_curve_end_points_and_bend() {
        assert!((shape(Curve::Exp(4.0), 0.0, 1.0, 1.0, true) - 1.0).abs() < 1e-12);
        assert_eq!(shape(Curve::Exp(4.0), 0.0, 1.0, 0.0, true), 0.0);
        // Convex: (e^2 - 1) / (e^4 - 1) = 0.1192...
        assert!((shape(Curve::Exp(4.0), 0.0, 1.0, 0.5, true) - 0.119_202_922).abs() < 1e-6);
        assert_eq!(shape(Curve::LinCurve(0.0), 0.0, 2.0, 1.0, true), 0.5);
    }

    #[test]
    fn invert_clamp_and_smoothing() {
        let mut t = fixed(0.0, 10.0, Curve::Linear);
        t.invert = true;
        let mut s = TransformState::new(&t);
        assert_eq!(s.apply(&t, 2.5), Some(0.75));
        assert_eq!(s.apply(&t, 20.0), Some(0.0));
        assert_eq!(s.apply(&t, f64::NAN), None);
        t.invert = false;
        t.smoothing = 0.5;
        let mut s = TransformState::new(&t);
        assert_eq!(s.apply(&t, 0.0), Some(0.0));
        assert_eq!(s.apply(&t, 10.0), Some(0.5)); // 0.5*0 + 0.5*1
        assert_eq!(s.apply(&t, 10.0), Some(0.75));
    }

    #[test]
    fn learned_minmax_and_percentile() {
        let t = Transform {
            domain: Domain::Learned {
                learn: Learn::MinMax,
                warmup: 3,
            },
            ..Transform::default()
        };
        let mut s = TransformState::new(&t);
        assert_eq!(s.apply(&t, 2.0), None);
        assert_eq!(s.apply(&t, 4.0), None);
        assert_eq!(s.apply(&t, 3.0), Some(0.5)); // domain [2, 4]
        assert_eq!(s.apply(&t, 6.0), Some(1.0)); // domain grows to [2, 6]
        assert_eq!(s.apply(&t, 4.0), Some(0.5));

        let t = Transform {
            domain: Domain::Learned {
                learn: Learn::Percentile { lo: 0.0, hi: 100.0 },
                warmup: 5,
            },
            ..Transform::default()
        };
        let mut s = TransformState::new(&t);
        for x in [5.0, 1.0, 3.0, 2.0] {
            assert_eq!(s.apply(&t, x), None);
        }
        // Window [5,1,3,2,4]: 0th percentile 1, 100th 5; 4 -> 0.75.
        assert_eq!(s.apply(&t, 4.0), Some(0.75));
        assert_eq!(s.apply(&t, 100.0), Some(1.0)); // domain refreshed only every 5 events
    }

    #[test]
    fn warmup_anchored_domain_is_centred_then_held() {
        let t = Transform {
            domain: Domain::Learned {
                learn: Learn::Warmup { span: 100.0 },
                warmup: 5,
            },
            curve: Curve::Log,
            ..Transform::default()
        };
        let close = |a: Option<f64>, b: f64| a.is_some_and(|a| (a - b).abs() < 1e-12);
        let mut s = TransformState::new(&t);
        // Nothing to anchor on yet: a zero is skipped.
        assert_eq!(s.apply(&t, 0.0), None);
        // The first value sits in the middle of [2/10, 2*10]; 20 is the top.
        assert!(close(s.apply(&t, 2.0), 0.5));
        assert!(close(s.apply(&t, 20.0), 1.0));
        assert!(close(s.apply(&t, 0.2), 0.0));
        // Fifth value: warm-up [2, 20, 0.2, 5, 1] has median 2... still centred on 2.
        assert!(close(s.apply(&t, 5.0), 0.5 + 0.5 * 2.5f64.log10()));
        assert!(close(s.apply(&t, 1.0), 0.5 - 0.5 * 2f64.log10()));
        // Held from now on: a norm that keeps rising keeps rising in level, then clamps.
        let mut last = 0.0;
        for x in [3.0, 6.0, 12.0, 19.0] {
            let l = s.apply(&t, x).unwrap();
            assert!(l > last, "{x} -> {l}");
            last = l;
        }
        assert_eq!(s.apply(&t, 1e9), Some(1.0));
        assert_eq!(s.apply(&t, 1e-9), Some(0.0));
        assert!(close(s.apply(&t, 2.0), 0.5));

        // The median, not the first value, is the anchor after the warm-up.
        let mut s = TransformState::new(&t);
        for x in [100.0, 1.0, 3.0, 2.0] {
            s.apply(&t, x);
        }
        // [100, 1, 3, 2, 4] -> median 3: domain [0.3, 30].
        assert!(close(s.apply(&t, 4.0), 0.5 + 0.5 * (4.0f64 / 3.0).log10()));
        assert!(close(s.apply(&t, 3.0), 0.5));
    }
}
