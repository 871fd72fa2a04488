//! Property tests: curves are monotone, outputs stay in their declared ranges for any finite
//! input, and NaN/Inf never leak into MIDI numbers.

use proptest::prelude::*;
use sonograd::event::{Event, Layer, Payload};
use sonograd::mapping::parse_str;
use sonograd::mapping::schema::{Curve, Target};
use sonograd::message::Action;
use sonograd::route::transform::shape;
use sonograd::route::Router;

fn curve() -> impl Strategy<Value = Curve> {
    prop_oneof![
        Just(Curve::Linear),
        Just(Curve::Log),
        (-20.0..20.0f64).prop_map(Curve::Exp),
        (-20.0..20.0f64).prop_map(Curve::LinCurve),
    ]
}

const MAPPING: &str = r#"
[outputs.synth]
kind = "synth"
voices = 8
[outputs.daw]
kind = "midi"
channel = 3
[outputs.sc]
kind = "osc"
port = 9000

[[route]]
output = "synth"
per_layer = true
match = { metric = "grad_norm" }
transform = { domain = [1e-3, 1e3], curve = "log", invert = true, smoothing = 0.5 }
to = { param = "cutoff", range = [300, 3000] }

[[route]]
output = "synth"
match = { metric = "grad_norm" }
transform = { domain = [-5, 5], curve = "exp", curvature = -3 }
to = { param = "pan", range = [-0.5, 0.5] }

[[route]]
output = "daw"
per_layer = true
match = { metric = "grad_norm" }
transform = { domain = "learned", learn = "minmax", warmup = 1 }
scale = { root = "C2", name = "dorian", octaves = 4 }
to = { note = "value", velocity = "value" }

[[route]]
output = "daw"
match = { metric = "grad_norm" }
transform = { domain = [0, 1], clamp = false }
to = { cc = 7, 14bit = true }

[[route]]
output = "daw"
match = { metric = "grad_norm" }
transform = { domain = "learned", learn = "percentile", warmup = 3, curve = "lincurve", curvature = 5 }
to = { pitch_bend = true }

[[route]]
output = "daw"
match = { metric = "grad_norm" }
transform = { domain = [0, 10], clamp = false }
to = { note = "value", range = [40, 80] }

[[route]]
output = "sc"
match = { metric = "grad_norm" }
transform = { domain = [0, 100] }
to = { address = "/x", range = [-2, 7] }
"#;

fn value() -> impl Strategy<Value = f64> {
    prop_oneof![
        4 => -1e6..1e6f64,
        2 => -10.0..10.0f64,
        1 => Just(f64::NAN),
        1 => Just(f64::INFINITY),
        1 => Just(f64::NEG_INFINITY),
        1 => Just(f64::MAX),
        1 => Just(f64::MIN_POSITIVE),
        1 => Just(0.0),
    ]
}

proptest! {
    #[test]
    fn curves_are_monotone(c in curve(), lo in 1e-4..10.0f64, width in 1e-3..1e4f64, a in -1e5..1e5f64, b in -1e5..1e5f64) {
        let hi = lo + width;
        let (x, y) = if a <= b { (a, b) } else { (b, a) };
        let (fx, fy) = (shape(c, lo, hi, x, true), shape(c, lo, hi, y, true));
        prop_assert!(fx <= fy + 1e-12, "{c:?} [{lo}, {hi}]: f({x}) = {fx} > f({y}) = {fy}");
        prop_assert!((0.0..=1.0).contains(&fx) && (0.0..=1.0).contains(&fy));
        // Inverted: non-increasing.
        prop_assert!(1.0 - fx >= 1.0 - fy - 1e-12);
    }

    #[test]
    fn outputs_stay_in_range_and_nan_never_leaks(values in proptest::collection::vec((value(), 0u32..6), 1..40)) {
        let m = parse_str(MAPPING, "props.toml").unwrap();
        let mut router = Router::new(&m);
        let mut out = Vec::new();
        for (i, (v, layer)) in values.iter().enumerate() {
            let e = Event::new(i as u64, 0, 0.0, Payload::GradNorm { layer: Layer::new(format!("l{layer}"), *layer), value: *v });
            router.route(i as f64, &e, &mut out);
            if !v.is_finite() {
                prop_assert!(out.is_empty(), "non-finite {v} produced {out:?}");
            }
            for msg in out.drain(..) {
                prop_assert!(msg.level.is_finite());
                let route = &m.routes[msg.route as usize];
                match (msg.action, &route.target) {
                    (Action::Synth { voice, value, pan, .. }, Target::Synth { range, .. }) => {
                        prop_assert!(voice < 8);
                        let (lo, hi) = (range[0].min(range[1]), range[0].max(range[1]));
                        prop_assert!(value >= lo - 1e-9 && value <= hi + 1e-9, "{value} outside {range:?}");
                        if let Some(p) = pan { prop_assert!((-1.0..=1.0).contains(&p)); }
                    }
                    (Action::Note { channel, note, velocity, .. }, Target::Note { .. }) => {
                        prop_assert!((1..=16).contains(&channel));
                        prop_assert!(note <= 127 && (1..=127).contains(&velocity));
                        if route.scale.is_some() {
                            // C2 (36) dorian over 4 octaves: 36..=84.
                            prop_assert!((36..=84).contains(&note), "{note}");
                        } else {
                            prop_assert!((40..=80).contains(&note), "{note}");
                        }
                    }
                    (Action::Cc { channel, value, fine, .. }, Target::Cc { .. }) => {
                        prop_assert!((1..=16).contains(&channel));
                        let max = if fine { 16383 } else { 127 };
                        prop_assert!(value <= max, "{value} > {max}");
                    }
                    (Action::PitchBend { channel, value }, Target::PitchBend { .. }) => {
                        prop_assert!((1..=16).contains(&channel) && value <= 16383);
                    }
                    (Action::Osc { value }, Target::Osc(t)) => {
                        prop_assert!(value >= t.range[0] - 1e-9 && value <= t.range[1] + 1e-9);
                    }
                    (a, t) => prop_assert!(false, "action {a:?} does not fit target {t:?}"),
                }
            }
        }
    }
}
