//! Synthetic streams, one per diagnosis kind, and streams that must stay quiet.

use super::*;
use crate::event::{EndReason, Layer, RunInfo};

/// Builds a trainer-like stream: per step, each layer's norm, the total and the loss.
struct Stream {
    events: Vec<Event>,
    run: Option<Arc<str>>,
}

impl Stream {
    fn new() -> Self {
        Stream {
            events: vec![Event::new(
                0,
                0,
                0.0,
                Payload::RunStart {
                    info: Box::new(RunInfo::default()),
                },
            )],
            run: None,
        }
    }

    fn step(&mut self, step: u64, norms: &[f64], loss: f64) {
        let mut total = 0.0;
        for (i, &v) in norms.iter().enumerate() {
            total += v * v;
            self.push(
                step,
                Payload::GradNorm {
                    layer: Layer::new(format!("fc{}", i + 1), i as u32),
                    value: v,
                },
            );
        }
        self.push(
            step,
            Payload::TotalNorm {
                value: total.sqrt(),
            },
        );
        self.push(step, Payload::Loss { value: loss });
    }

    fn push(&mut self, step: u64, payload: Payload) {
        let mut e = Event::new(step, 0, step as f64, payload);
        e.run = self.run.clone();
        self.events.push(e);
    }

    fn end(mut self, step: u64) -> Vec<Event> {
        self.push(
            step,
            Payload::RunEnd {
                reason: EndReason::Completed,
                coalesced: 0,
            },
        );
        self.events
    }
}

fn diagnose(events: &[Event], cfg: Thresholds) -> Vec<(u64, DiagnosisKind, Vec<String>)> {
    let mut d = Detector::new(cfg);
    let mut out = Vec::new();
    for e in events {
        d.observe(e, &mut out);
    }
    d.finish(&mut out);
    out.iter()
        .map(|e| match &e.payload {
            Payload::Diagnosis {
                diagnosis, layers, ..
            } => (
                e.step,
                *diagnosis,
                layers.iter().map(|l| l.to_string()).collect(),
            ),
            other => panic!("not a diagnosis: {other:?}"),
        })
        .collect()
}

/// A healthy-looking run: norms wobble by ±20 % around slowly falling levels, the loss falls.
fn healthy(steps: u64) -> Stream {
    let mut s = Stream::new();
    for t in 0..steps {
        let wobble = 1.0 + 0.2 * ((t * 7919 % 13) as f64 / 6.0 - 1.0);
        let decay = 1.0 / (1.0 + t as f64 / 100.0);
        s.step(
            t,
            &[0.8 * wobble * decay, 0.5 * wobble, 0.3 / wobble],
            2.3 * decay * wobble.sqrt(),
        );
    }
    s
}

#[test]
fn a_healthy_stream_gets_no_diagnosis() {
    let events = healthy(300).end(299);
    assert_eq!(diagnose(&events, Thresholds::default()), vec![]);
}

#[test]
fn exploding_names_the_growing_layers() {
    let mut s = Stream::new();
    for t in 0..40u64 {
        // fc2 grows 3x a step from step 20 on; fc1 stays put.
        let g = if t < 20 {
            1.0
        } else {
            3f64.powi((t - 20) as i32)
        };
        s.step(t, &[0.5, g], 2.0 - t as f64 * 0.01);
    }
    let got = diagnose(&s.end(39), Thresholds::default());
    let first = got
        .iter()
        .find(|d| d.1 == DiagnosisKind::Exploding)
        .expect("exploding");
    // Each of the last 3 steps must be 10x the running median (1.118) of the steps before:
    // steps 23 (27x), 24 and 25 are, step 22 (9.01) is not, so the window 23..=25 is first.
    assert_eq!(first.0, 25, "{got:?}");
    assert_eq!(first.2, vec!["fc2"]);
    // Fired once for the whole episode.
    assert_eq!(
        got.iter()
            .filter(|d| d.1 == DiagnosisKind::Exploding)
            .count(),
        1
    );
}

#[test]
fn vanishing_names_the_starved_early_layers() {
    let mut s = Stream::new();
    for t in 0..60u64 {
        s.step(t, &[1e-6, 1e-4, 0.05, 0.5], 2.3 - t as f64 * 0.01);
    }
    let got = diagnose(&s.end(59), Thresholds::default());
    assert_eq!(
        got,
        vec![(
            19,
            DiagnosisKind::Vanishing,
            vec!["fc1".to_string(), "fc2".to_string()]
        )]
    );
}

#[test]
fn the_first_non_finite_value_names_its_layer_once() {
    let mut s = Stream::new();
    for t in 0..10u64 {
        let fc2 = if t >= 6 { f64::NAN } else { 0.4 };
        let fc1 = if t >= 7 { f64::NAN } else { 0.4 };
        s.step(t, &[fc1, fc2, 0.3], 2.0);
        if t == 6 {
            s.push(
                t,
                Payload::NonFinite {
                    layer: Some(Layer::new("fc2", 1)),
                    quantity: Quantity::Grad,
                    state: NonFiniteKind::Nan,
                },
            );
        }
    }
    let events = s.end(9);
    let got = diagnose(&events, Thresholds::default());
    assert_eq!(
        got,
        vec![(6, DiagnosisKind::NonFinite, vec!["fc2".to_string()])]
    );
    // The reason says what and which.
    let mut d = Detector::new(Thresholds::default());
    let mut out = Vec::new();
    for e in &events {
        d.observe(e, &mut out);
    }
    let Payload::Diagnosis { reason, .. } = &out[0].payload else {
        panic!()
    };
    assert_eq!(reason, "first non-finite value: fc2 gradient is NaN");
}

#[test]
fn a_layerless_gradient_alarm_is_the_total_norm_not_the_loss() {
    // A source that knows only the total norm (a CSV or TensorBoard export) alarms it
    // without a layer, with quantity `grad`: that is the gradient, not the loss.
    let mut s = Stream::new();
    for t in 0..5u64 {
        s.step(t, &[0.4, 0.3], 2.0);
    }
    s.push(
        5,
        Payload::NonFinite {
            layer: None,
            quantity: Quantity::Grad,
            state: NonFiniteKind::Inf,
        },
    );
    let events = s.end(5);
    let mut d = Detector::new(Thresholds::default());
    let mut out = Vec::new();
    for e in &events {
        d.observe(e, &mut out);
    }
    let reasons: Vec<&str> = out
        .iter()
        .filter_map(|e| match &e.payload {
            Payload::Diagnosis { reason, .. } => Some(reason.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(
        reasons,
        ["first non-finite value: total gradient norm is Inf"]
    );
}

#[test]
fn a_non_finite_loss_has_no_layer() {
    let mut s = Stream::new();
    for t in 0..5u64 {
        s.step(t, &[0.4, 0.3], if t == 3 { f64::INFINITY } else { 2.0 });
    }
    let got = diagnose(&s.end(4), Thresholds::default());
    assert_eq!(got, vec![(3, DiagnosisKind::NonFinite, vec![])]);
}

/// A loss series with a deterministic ±`amp` wobble (no period-2 pattern).
fn wobble(t: u64, amp: f64) -> f64 {
    1.0 + amp * (((t * 7919 + 13) % 101) as f64 / 50.0 - 1.0)
}

#[test]
fn a_plateau_is_found_once_the_loss_stops_moving() {
    let mut s = Stream::new();
    for t in 0..800u64 {
        // Falls a little for 60 steps, then sits at 2.2 with a ±0.5 % wobble: stuck near
        // where it started.
        let loss = if t < 60 {
            2.3 - 0.1 * t as f64 / 60.0
        } else {
            2.2 * wobble(t, 0.005)
        };
        s.step(t, &[0.4, 0.3], loss);
    }
    let got = diagnose(&s.end(799), Thresholds::default());
    let plateaus: Vec<_> = got
        .iter()
        .filter(|d| d.1 == DiagnosisKind::Plateau)
        .collect();
    // Said once however long it sits there.
    assert_eq!(plateaus.len(), 1, "{got:?}");
    // The first 300-step window whose oldest third is on the plateau ends at step
    // 60 + 300 - 1 = 359; the 2 % tolerance lets it fire a little before that.
    assert!((299..=359).contains(&plateaus[0].0), "{got:?}");
    assert!(plateaus[0].2.is_empty());
    assert_eq!(got.len(), 1, "{got:?}");
}

#[test]
fn a_plateau_is_said_again_only_after_the_trend_moved() {
    let cfg = Thresholds {
        plateau_level: 0.0,
        ..Thresholds::default()
    };
    // Flat at 2.0 for 600 steps, falls to 1.0 over 200, flat again.
    let loss = |t: u64| {
        let base = match t {
            0..600 => 2.0,
            600..800 => 2.0 - (t - 600) as f64 / 200.0,
            _ => 1.0,
        };
        base * wobble(t, 0.003)
    };
    let mut s = Stream::new();
    for t in 0..1400u64 {
        s.step(t, &[0.4, 0.3], loss(t));
    }
    let got = diagnose(&s.end(1399), cfg);
    let steps: Vec<u64> = got
        .iter()
        .filter(|d| d.1 == DiagnosisKind::Plateau)
        .map(|d| d.0)
        .collect();
    assert_eq!(steps.len(), 2, "{got:?}");
    assert!(steps[0] < 600, "{steps:?}");
    // Again once the new level has filled the window's oldest third: 800 + 300 - 1.
    assert!((1000..=1099).contains(&steps[1]), "{steps:?}");
    // Still falling steadily (by 1 % every 10 steps) is no plateau, however slow per step.
    let mut s = Stream::new();
    for t in 0..1500u64 {
        s.step(
            t,
            &[0.4, 0.3],
            2.3 * 0.999f64.powi(t as i32) * wobble(t, 0.05),
        );
    }
    assert_eq!(diagnose(&s.end(1499), cfg), vec![]);
}

#[test]
fn oscillation_is_a_big_up_and_down_not_noise() {
    let mut s = Stream::new();
    for t in 0..120u64 {
        // Up 3x, down 3x, around a level, from step 30 on.
        let g = if t < 30 {
            1.0 + 0.01 * t as f64
        } else if t % 2 == 0 {
            3.0
        } else {
            1.0
        };
        s.step(t, &[0.2, g], 2.0 - t as f64 * 0.01);
    }
    let got = diagnose(&s.end(119), Thresholds::default());
    let osc: Vec<_> = got
        .iter()
        .filter(|d| d.1 == DiagnosisKind::Oscillation)
        .collect();
    assert_eq!(osc.len(), 1, "{got:?}");
    // Needs the 40-step window's detrended lag-1 correlation at -0.6 or below with a 1.5x
    // swing, 10 steps in a row.
    assert!((50..=85).contains(&osc[0].0), "{got:?}");
    assert!(!got.iter().any(|d| d.1 == DiagnosisKind::Exploding));
}

#[test]
fn mini_batch_noise_is_not_an_oscillation_nor_a_spike() {
    // Independent ±60 % noise on the norms and a ±40 % noise on a falling loss: every other
    // step reverses direction, but nothing alternates and nothing stands out.
    let mut s = Stream::new();
    let mut x = 12345u64;
    let mut noise = || {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (x >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
    };
    for t in 0..3000u64 {
        let g = 0.5 * (1.0 + 0.6 * noise());
        let loss = 2.3 / (1.0 + t as f64 / 300.0) * (1.0 + 0.4 * noise());
        s.step(t, &[0.3 * (1.0 + 0.6 * noise()), g], loss);
    }
    assert_eq!(diagnose(&s.end(2999), Thresholds::default()), vec![]);
}

#[test]
fn a_converged_runs_short_jump_is_no_explosion_but_sustained_growth_is() {
    // The norm falls from 1 to 1e-3 and sits there; single steps jump 10x to 30x (one hard
    // mini-batch) now and then.
    let level = |t: u64| 0.99f64.powi(t as i32).max(1e-3);
    let mut s = Stream::new();
    for t in 0..1200u64 {
        let jump = if t % 97 == 0 {
            10.0 + (t % 3) as f64 * 10.0
        } else {
            1.0
        };
        let g = level(t) * jump * wobble(t, 0.3);
        s.step(t, &[g * 0.5, g], 0.01 + level(t));
    }
    let quiet = diagnose(&s.events.clone(), Thresholds::default());
    assert!(
        !quiet.iter().any(|d| d.1 == DiagnosisKind::Exploding),
        "{quiet:?}"
    );
    // Then it really grows, 2x a step from step 1200.
    for t in 1200..1220u64 {
        let g = 1e-3 * 2f64.powi((t - 1199) as i32);
        s.step(t, &[g * 0.5, g], 0.011 + g);
    }
    let got = diagnose(&s.end(1219), Thresholds::default());
    let x: Vec<_> = got
        .iter()
        .filter(|d| d.1 == DiagnosisKind::Exploding)
        .collect();
    assert_eq!(x.len(), 1, "{got:?}");
    // 16x at step 1203, so steps 1203..=1205 are the first three all 10x above: step 1205.
    assert_eq!(x[0].0, 1205, "{got:?}");
    assert_eq!(x[0].2, vec!["fc1", "fc2"]);
}

#[test]
fn a_loss_spike_is_a_jump_that_lasts_not_one_hard_batch() {
    let mut s = Stream::new();
    for t in 0..300u64 {
        let loss = match t {
            // One hard mini-batch: a single step at 5x.
            120 => 5.0,
            // A real spike: three steps up, from step 200.
            200..=202 => 6.0,
            _ => 2.0 * 0.998f64.powi(t as i32) * wobble(t, 0.1),
        };
        s.step(t, &[0.4, 0.3], loss);
    }
    let got = diagnose(&s.end(299), Thresholds::default());
    // Named on its second high step (two of the last three are high), once.
    assert_eq!(
        got,
        vec![(201, DiagnosisKind::LossSpike, vec![])],
        "{got:?}"
    );
}

#[test]
fn dead_layers_are_named_together_after_the_threshold() {
    let mut s = Stream::new();
    for t in 0..30u64 {
        s.step(t, &[0.0, 0.0, 0.7], 2.3);
    }
    let got = diagnose(&s.end(29), Thresholds::default());
    assert_eq!(
        got[0],
        (
            19,
            DiagnosisKind::DeadLayer,
            vec!["fc1".to_string(), "fc2".to_string()]
        )
    );
    // A layer that comes back to life and dies again is diagnosed again.
    let mut s = Stream::new();
    for t in 0..60u64 {
        let v = if t == 25 { 0.1 } else { 0.0 };
        s.step(t, &[v, 0.5], 2.0 - 0.01 * t as f64);
    }
    let got = diagnose(&s.end(59), Thresholds::default());
    let dead: Vec<u64> = got
        .iter()
        .filter(|d| d.1 == DiagnosisKind::DeadLayer)
        .map(|d| d.0)
        .collect();
    assert_eq!(dead, vec![19, 45]);
}

#[test]
fn thresholds_change_what_fires() {
    let mut s = Stream::new();
    for t in 0..30u64 {
        s.step(t, &[0.0, 0.5], 2.0 - 0.01 * t as f64);
    }
    let events = s.end(29);
    let cfg = Thresholds {
        dead_steps: 5,
        ..Thresholds::default()
    };
    assert_eq!(diagnose(&events, cfg)[0].0, 4);
    let off = Thresholds {
        enabled: false,
        ..Thresholds::default()
    };
    assert!(diagnose(&events, off).is_empty());
}

#[test]
fn a_stream_with_its_own_diagnoses_is_left_alone() {
    let mut s = Stream::new();
    s.push(
        0,
        Payload::Diagnosis {
            diagnosis: DiagnosisKind::Plateau,
            layers: vec![],
            reason: "foreign".into(),
        },
    );
    for t in 0..30u64 {
        s.step(t, &[0.0, 0.5], 2.0);
    }
    assert!(diagnose(&s.end(29), Thresholds::default()).is_empty());
}

#[test]
fn runs_and_ranks_are_diagnosed_apart() {
    // Two runs interleaved step by step: one dead, one healthy; only the dead one is named,
    // and its diagnosis carries its run tag.
    let mut dead = Stream::new();
    dead.run = Some("a".into());
    let mut fine = healthy(40);
    fine.run = Some("b".into());
    for e in &mut fine.events {
        e.run = Some("b".into());
    }
    for t in 0..40u64 {
        dead.step(t, &[0.0, 0.5], 2.0 - 0.01 * t as f64);
    }
    let mut events = Vec::new();
    let (a, b) = (dead.end(39), fine.end(39));
    let (mut ia, mut ib) = (a.into_iter().peekable(), b.into_iter().peekable());
    while ia.peek().is_some() || ib.peek().is_some() {
        events.extend(ia.next());
        events.extend(ib.next());
    }
    let mut d = Detector::new(Thresholds::default());
    let mut out = Vec::new();
    for e in &events {
        d.observe(e, &mut out);
    }
    assert_eq!(out.len(), 1, "{out:?}");
    assert_eq!(out[0].run.as_deref(), Some("a"));
    assert_eq!(out[0].step, 19);
}

#[test]
fn with_diagnoses_puts_each_before_the_event_that_completed_it() {
    let mut s = Stream::new();
    for t in 0..25u64 {
        s.step(t, &[0.0, 0.5], 2.0 - 0.01 * t as f64);
    }
    let events = s.events; // no run_end: the last step is judged at the end of the input
    let all: Vec<Event> = WithDiagnoses::new(
        events.clone().into_iter(),
        Detector::new(Thresholds::default()),
    )
    .collect();
    assert_eq!(all.len(), events.len() + 1);
    let at = all
        .iter()
        .position(|e| e.payload.kind() == "diagnosis")
        .unwrap();
    assert_eq!(all[at].step, 19);
    assert_eq!((all[at - 1].step, all[at + 1].step), (19, 20));
    // Everything else comes through unchanged and in order.
    let rest: Vec<Event> = all
        .into_iter()
        .filter(|e| e.payload.kind() != "diagnosis")
        .collect();
    assert_eq!(rest, events);
    // A dead layer only at the very end is still named, after the last event.
    let mut s = Stream::new();
    for t in 0..20u64 {
        s.step(t, &[0.0, 0.5], 2.0);
    }
    let all: Vec<Event> =
        WithDiagnoses::new(s.events.into_iter(), Detector::new(Thresholds::default())).collect();
    assert_eq!(all.last().unwrap().payload.kind(), "diagnosis");
}

#[test]
fn a_live_stream_that_stops_stepping_stalls_once_until_steps_come_back() {
    use std::time::{Duration, Instant};
    let t0 = Instant::now();
    let at = |secs: f64| t0 + Duration::from_secs_f64(secs);
    let mut s = Stream::new();
    for t in 0..6u64 {
        s.step(t, &[0.4, 0.3], 2.0);
    }
    let mut d = Detector::new(Thresholds::default());
    let mut out = Vec::new();
    for (i, e) in s.events.iter().enumerate() {
        d.observe_live(e, at(e.step as f64 * 0.1 + i as f64 * 1e-4), &mut out);
    }
    d.tick(at(5.0), &mut out);
    assert!(out.is_empty(), "{out:?}");
    // 10 s after step 5 arrived (at 0.5 s): stall, about step 5, once.
    d.tick(at(10.4), &mut out);
    assert!(out.is_empty(), "{out:?}");
    d.tick(at(10.6), &mut out);
    d.tick(at(30.0), &mut out);
    assert_eq!(out.len(), 1, "{out:?}");
    let Payload::Diagnosis {
        diagnosis, reason, ..
    } = &out[0].payload
    else {
        panic!()
    };
    assert_eq!((*diagnosis, out[0].step), (DiagnosisKind::Stall, 5));
    assert!(
        reason.starts_with("no step for 10.1 s after step 5"),
        "{reason}"
    );
    // Steps come back: cleared; a second silence is a second stall.
    out.clear();
    let mut more = Stream::new();
    more.step(6, &[0.4, 0.3], 2.0);
    for e in &more.events[1..] {
        d.observe_live(e, at(31.0), &mut out);
    }
    d.tick(at(35.0), &mut out);
    assert!(out.is_empty(), "{out:?}");
    d.tick(at(41.5), &mut out);
    assert_eq!(out.len(), 1, "{out:?}");
    assert_eq!(out[0].step, 6);
    // A run that ended is silent on purpose; so is one that never stepped much.
    out.clear();
    let mut d = Detector::new(Thresholds::default());
    let events = {
        let mut s = Stream::new();
        for t in 0..6u64 {
            s.step(t, &[0.4, 0.3], 2.0);
        }
        s.end(5)
    };
    for e in &events {
        d.observe_live(e, at(0.0), &mut out);
    }
    d.tick(at(100.0), &mut out);
    assert!(out.is_empty(), "{out:?}");
    let mut d = Detector::new(Thresholds::default());
    let mut s = Stream::new();
    s.step(0, &[0.4, 0.3], 2.0);
    s.step(1, &[0.4, 0.3], 2.0);
    for e in &s.events {
        d.observe_live(e, at(0.0), &mut out);
    }
    d.tick(at(100.0), &mut out);
    assert!(out.is_empty(), "{out:?}");
}

#[test]
fn a_replayed_stream_never_stalls() {
    use std::time::{Duration, Instant};
    // Offline observation has no clock: ticks later on change nothing.
    let mut s = Stream::new();
    for t in 0..50u64 {
        s.step(t, &[0.4, 0.3], 2.0 - 0.01 * t as f64);
    }
    let mut d = Detector::new(Thresholds::default());
    let mut out = Vec::new();
    for e in &s.events {
        d.observe(e, &mut out);
    }
    d.tick(Instant::now() + Duration::from_secs(3600), &mut out);
    assert!(out.is_empty(), "{out:?}");
}

#[test]
fn short_numbers() {
    assert_eq!(short(0.0123), "0.0123");
    assert_eq!(short(2.302_9), "2.303");
    assert_eq!(short(1234.5), "1234");
    assert_eq!(short(3.2e-7), "3.2e-7");
    assert_eq!(short(0.0), "0");
    assert_eq!(short(f64::NAN), "NaN");
}

mod props {
    use super::*;
    use proptest::prelude::*;

    fn value() -> impl Strategy<Value = f64> {
        prop_oneof![
            Just(0.0),
            Just(f64::NAN),
            Just(f64::INFINITY),
            Just(f64::NEG_INFINITY),
            Just(f64::MAX),
            Just(f64::MIN_POSITIVE),
            -1e300..1e300f64,
            0.0..10.0f64,
        ]
    }

    fn payload() -> impl Strategy<Value = Payload> {
        let layer = (0..6u32, proptest::option::of(0..8u32)).prop_map(|(n, i)| Layer {
            name: format!("l{n}").into(),
            index: i,
        });
        prop_oneof![
            (layer.clone(), value()).prop_map(|(layer, value)| Payload::GradNorm { layer, value }),
            value().prop_map(|value| Payload::TotalNorm { value }),
            value().prop_map(|value| Payload::Loss { value }),
            (proptest::option::of(layer), any::<bool>()).prop_map(|(layer, nan)| {
                Payload::NonFinite {
                    layer,
                    quantity: Quantity::Grad,
                    state: if nan {
                        NonFiniteKind::Nan
                    } else {
                        NonFiniteKind::Inf
                    },
                }
            }),
            Just(Payload::EpochEnd),
            Just(Payload::RunStart {
                info: Box::new(RunInfo::default())
            }),
            Just(Payload::RunEnd {
                reason: EndReason::Interrupted,
                coalesced: 0
            }),
        ]
    }

    fn event() -> impl Strategy<Value = Event> {
        (
            0..40u64,
            payload(),
            proptest::option::of(0..3u32),
            any::<bool>(),
        )
            .prop_map(|(step, payload, rank, forward)| {
                let mut e = Event::new(step, 0, 0.0, payload);
                e.rank = rank;
                if forward {
                    e.step = step / 4;
                }
                e
            })
    }

    proptest! {
        #[test]
        fn never_panics_and_only_emits_well_formed_diagnoses(
            events in proptest::collection::vec(event(), 0..400),
            small in any::<bool>(),
        ) {
            let cfg = if small {
                Thresholds {
                    exploding_steps: 1,
                    vanishing_steps: 1,
                    plateau_steps: 1,
                    oscillation_steps: 1,
                    dead_steps: 1,
                    rearm_steps: 1,
                    ..Thresholds::default()
                }
            } else {
                Thresholds::default()
            };
            let mut d = Detector::new(cfg);
            let mut out = Vec::new();
            for e in &events {
                d.observe(e, &mut out);
            }
            d.finish(&mut out);
            for e in &out {
                match &e.payload {
                    Payload::Diagnosis { reason, layers, .. } => {
                        prop_assert!(!reason.is_empty());
                        prop_assert!(layers.len() <= 6);
                        let line = e.to_json_line();
                        prop_assert_eq!(&Event::from_json_line(&line).unwrap(), e);
                    }
                    other => prop_assert!(false, "emitted {:?}", other),
                }
            }
            // At most one non-finite diagnosis per stream and run.
            let runs = events.iter().filter(|e| matches!(e.payload, Payload::RunStart { .. })).count();
            let nf = out.iter().filter(|e| matches!(e.payload, Payload::Diagnosis { diagnosis: DiagnosisKind::NonFinite, .. })).count();
            prop_assert!(nf <= 4 * (runs + 1));
        }
    }
}

/// The sorted mirrors give exactly the medians, spreads and quantiles that selecting from the
/// whole range gives, as ranges grow, slide, jump and the window is cleared; ties included.
#[test]
fn sorted_mirrors_match_selection_bit_for_bit() {
    let mut w = Window::new(301);
    let (mut a, mut b) = (Sorted::default(), Sorted::default());
    let mut scratch = Vec::new();
    let mut x = 0x2545_F491_4F6C_DD1Du64;
    let mut checked = 0;
    for step in 0..3000u32 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        // Some repeated values (ties), some negative zeros, mostly spread values.
        let v = match x % 7 {
            0 => 1.5,
            1 => -0.0,
            _ => ((x >> 11) as f64 / (1u64 << 53) as f64 - 0.3) * 10f64.powi((x % 5) as i32),
        };
        w.push(v);
        if step % 1000 == 999 {
            w.clear();
        }
        let n = w.len();
        // A trailing range like the rules', and one that jumps about.
        let from = n.saturating_sub(202);
        let ranges = [
            (from, n.saturating_sub(2)),
            ((x as usize >> 3) % (n + 1), n),
        ];
        for ((lo, hi), mirror) in ranges.into_iter().zip([&mut a, &mut b]) {
            let (lo, hi) = (lo.min(hi), hi);
            let sorted = mirror.sync(&w, lo, hi);
            assert_eq!(sorted.len(), hi - lo);
            let want = median_mad(w.range(lo, hi), &mut scratch);
            let got = sorted_median_mad(sorted);
            let bits = |p: Option<(f64, f64)>| p.map(|(m, d)| (m.to_bits(), d.to_bits()));
            assert_eq!(bits(got), bits(want), "step {step} range {lo}..{hi}");
            let q = |v: Option<f64>| v.map(f64::to_bits);
            assert_eq!(
                q(sorted_quantile(sorted, 0.99)),
                q(quantile(w.range(lo, hi), 0.99, &mut scratch)),
                "step {step}"
            );
            checked += 1;
        }
    }
    assert_eq!(checked, 6000);
}
