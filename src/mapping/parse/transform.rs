//! A route's `transform`: domain, learning, curve, smoothing.

use super::values::*;
use super::*;

const TRANSFORM_KEYS: &[&str] = &[
    "domain",
    "learn",
    "percentiles",
    "warmup",
    "span",
    "curve",
    "curvature",
    "invert",
    "clamp",
    "smoothing",
];
/// The curves, by their `curve` name (the curvature is read beside it).
#[derive(Clone, Copy, PartialEq)]
enum CurveName {
    Linear,
    Log,
    Exp,
    LinCurve,
}

const CURVES: &[(&str, CurveName)] = &[
    ("linear", CurveName::Linear),
    ("log", CurveName::Log),
    ("exp", CurveName::Exp),
    ("lincurve", CurveName::LinCurve),
];

/// `curve` when none is given.
const DEFAULT_CURVE: CurveName = CurveName::Linear;

/// The ways of learning a domain, by their `learn` name (their parameters are read beside).
#[derive(Clone, Copy, PartialEq)]
enum LearnName {
    MinMax,
    Percentile,
    Warmup,
}

const LEARN: &[(&str, LearnName)] = &[
    ("minmax", LearnName::MinMax),
    ("percentile", LearnName::Percentile),
    ("warmup", LearnName::Warmup),
];

impl Cx<'_> {
    pub(super) fn transform(&mut self, v: &Val<'_>, path: &str) -> Option<Transform> {
        let t = self.table(v, path)?;
        self.keys(t, path, TRANSFORM_KEYS, &[], "`transform`");
        let mut ok = true;
        let mut fail = |_: ()| ok = false;
        let curve_name = match get(t, "curve") {
            Some(c) => self
                .choice(c, &join(path, "curve"), "curve", CURVES)
                .or_else(|| {
                    fail(());
                    None
                }),
            None => Some(DEFAULT_CURVE),
        };
        let curvature = match get(t, "curvature") {
            Some(c) => {
                if matches!(curve_name, Some(CurveName::Linear | CurveName::Log)) {
                    self.err(
                        c.span(),
                        &join(path, "curvature"),
                        "`curvature` applies only to `curve = \"exp\"` or `\"lincurve\"`",
                    );
                    ok = false;
                }
                let n = self.number(
                    c,
                    &join(path, "curvature"),
                    -50.0,
                    50.0,
                    "a curvature between -50 and 50",
                );
                if n.is_none() {
                    ok = false;
                }
                n
            }
            None => {
                if curve_name == Some(CurveName::LinCurve) {
                    self.missing(
                        v.span(),
                        path,
                        "curvature",
                        "`lincurve` needs a curvature, e.g. -4 or 4",
                    );
                    ok = false;
                }
                None
            }
        };
        let curve = match curve_name.unwrap_or(DEFAULT_CURVE) {
            CurveName::Linear => Curve::Linear,
            CurveName::Log => Curve::Log,
            CurveName::Exp => Curve::Exp(curvature.unwrap_or(4.0)),
            CurveName::LinCurve => Curve::LinCurve(curvature.unwrap_or(0.0)),
        };
        let learned_keys = ["learn", "percentiles", "warmup", "span"];
        let domain = match get(t, "domain") {
            None => Some(Domain::Fixed { lo: 0.0, hi: 1.0 }),
            Some(d) => match d.get_ref() {
                DeValue::String(s) if s.as_ref() == "learned" => {
                    let learn = match get(t, "learn") {
                        Some(l) => self.choice(l, &join(path, "learn"), "learn mode", LEARN),
                        None => Some(LearnName::MinMax),
                    };
                    let warmup = match get(t, "warmup") {
                        Some(w) => self.integer(
                            w,
                            &join(path, "warmup"),
                            1,
                            100_000,
                            "a number of events 1-100000",
                        ),
                        None => Some(20),
                    };
                    let percentiles = match get(t, "percentiles") {
                        Some(p) => {
                            if learn != Some(LearnName::Percentile) {
                                self.err(
                                    p.span(),
                                    &join(path, "percentiles"),
                                    "`percentiles` applies only to `learn = \"percentile\"`",
                                );
                            }
                            match self.pair(p, &join(path, "percentiles")) {
                                Some([a, b])
                                    if (0.0..=100.0).contains(&a)
                                        && (0.0..=100.0).contains(&b)
                                        && a < b =>
                                {
                                    Some([a, b])
                                }
                                Some(_) => {
                                    self.err(
                                        p.span(),
                                        &join(path, "percentiles"),
                                        "expected two percentiles 0-100, the first below the second",
                                    );
                                    None
                                }
                                None => None,
                            }
                        }
                        None => Some([5.0, 95.0]),
                    };
                    let span = match get(t, "span") {
                        Some(x) => {
                            if learn != Some(LearnName::Warmup) {
                                self.err(
                                    x.span(),
                                    &join(path, "span"),
                                    "`span` applies only to `learn = \"warmup\"`",
                                );
                            }
                            self.number(
                                x,
                                &join(path, "span"),
                                1.0001,
                                1e12,
                                "a ratio above 1 (the domain's top over its bottom, e.g. 100: two decades)",
                            )
                        }
                        None => Some(100.0),
                    };
                    match (learn, warmup, percentiles) {
                        (Some(LearnName::MinMax), Some(w), _) => Some(Domain::Learned {
                            learn: Learn::MinMax,
                            warmup: w as u32,
                        }),
                        (Some(LearnName::Warmup), Some(w), _) => span.map(|span| Domain::Learned {
                            learn: Learn::Warmup { span },
                            warmup: w as u32,
                        }),
                        (Some(LearnName::Percentile), Some(w), Some([lo, hi])) => {
                            Some(Domain::Learned {
                                learn: Learn::Percentile { lo, hi },
                                warmup: w as u32,
                            })
                        }
                        _ => None,
                    }
                }
                DeValue::String(s) => {
                    let hint = did_you_mean(s, &["learned"]);
                    self.err(
                        d.span(),
                        &join(path, "domain"),
                        format!("expected `[lo, hi]` or \"learned\", found the string {s:?}{hint}"),
                    );
                    None
                }
                _ => {
                    match self.pair(d, &join(path, "domain")) {
                        Some([lo, hi]) if lo < hi => {
                            if curve_name == Some(CurveName::Log) && lo <= 0.0 {
                                self.err(
                                d.span(),
                                &join(path, "domain"),
                                format!("a `log` curve needs a positive domain, found lower bound {lo}"),
                            );
                                None
                            } else {
                                Some(Domain::Fixed { lo, hi })
                            }
                        }
                        Some([lo, hi]) => {
                            self.err(d.span(), &join(path, "domain"), format!("expected `[lo, hi]` with lo below hi, found [{lo}, {hi}] (use `invert = true` to turn it around)"));
                            None
                        }
                        None => None,
                    }
                }
            },
        };
        if !matches!(domain, Some(Domain::Learned { .. }))
            && get(t, "domain").is_none_or(|d| !d.get_ref().is_str())
        {
            for k in learned_keys {
                if let Some(x) = get(t, k) {
                    self.err(
                        x.span(),
                        &join(path, k),
                        format!("`{k}` applies only to `domain = \"learned\"`"),
                    );
                    ok = false;
                }
            }
        }
        let invert = get(t, "invert").and_then(|b| self.boolean(b, &join(path, "invert")));
        let clamp = get(t, "clamp").map_or(Some(true), |b| self.boolean(b, &join(path, "clamp")));
        let smoothing = match get(t, "smoothing") {
            Some(s) => self.number(
                s,
                &join(path, "smoothing"),
                0.0,
                0.999,
                "a smoothing coefficient from 0 (none) below 1",
            ),
            None => Some(0.0),
        };
        if !ok {
            return None;
        }
        Some(Transform {
            domain: domain?,
            curve,
            invert: invert.unwrap_or(false),
            clamp: clamp?,
            smoothing: smoothing?,
        })
    }
}
