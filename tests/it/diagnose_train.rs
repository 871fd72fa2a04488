//! The detector on real training runs, no rigged numbers: a deep sigmoid MLP really
//! vanishes, a too-high learning rate really explodes, a ReLU net with a large negative bias
//! really dies, and the seed's healthy setting (SGD lr 0.01, batch 20, 200 steps, digits)
//! raises no alarm. Each run is short; the dev profile is optimised.

use crate::common;
use common::*;

use std::sync::atomic::AtomicBool;

use sonograd::diagnose::{Detector, Thresholds};
use sonograd::event::{DiagnosisKind, Event, Payload};
use sonograd_trainer::model::{Activation, ModelOptions};
use sonograd_trainer::optim::{OptimizerConfig, OptimizerKind};
use sonograd_trainer::{Length, TrainConfig, Trainer};

/// A diagnosis as the tests look at it.
#[derive(Debug, Clone)]
struct Found {
    step: u64,
    kind: DiagnosisKind,
    layers: Vec<String>,
    reason: String,
}

fn config(lr: f64, steps: u64) -> TrainConfig {
    TrainConfig {
        optimizer: OptimizerConfig::new(OptimizerKind::Sgd, lr),
        length: Length::Steps(steps),
        ..TrainConfig::default()
    }
}

/// Trains for real, then runs the stream through the detector with default thresholds.
fn diagnose(cfg: TrainConfig) -> (Vec<Event>, Vec<Found>) {
    let mut trainer = Trainer::new(cfg).expect("trainer");
    let mut events: Vec<Event> = Vec::new();
    trainer
        .run(Some(&mut events), &AtomicBool::new(false))
        .expect("run");
    let mut detector = Detector::new(Thresholds::default());
    let mut out = Vec::new();
    for e in &events {
        detector.observe(e, &mut out);
    }
    detector.finish(&mut out);
    let found: Vec<Found> = out
        .iter()
        .map(|e| match &e.payload {
            Payload::Diagnosis {
                diagnosis,
                layers,
                reason,
            } => Found {
                step: e.step,
                kind: *diagnosis,
                layers: layers.iter().map(|l| l.to_string()).collect(),
                reason: reason.clone(),
            },
            other => panic!("the detector emitted {other:?}"),
        })
        .collect();
    if std::env::var_os("SONOGRAD_SHOW").is_some() {
        for f in &found {
            eprintln!("{f:?}");
        }
    }
    (events, found)
}

fn first(found: &[Found], kind: DiagnosisKind) -> &Found {
    found
        .iter()
        .find(|f| f.kind == kind)
        .unwrap_or_else(|| panic!("no {kind} diagnosis in {found:#?}"))
}

/// Norm of one layer at one step, from the real events.
fn grad_at(events: &[Event], step: u64, layer: &str) -> f64 {
    events
        .iter()
        .find_map(|e| match &e.payload {
            Payload::GradNorm { layer: l, value } if e.step == step && &*l.name == layer => {
                Some(*value)
            }
            _ => None,
        })
        .unwrap_or_else(|| panic!("no grad_norm of {layer} at step {step}"))
}

#[test]
fn the_seeds_healthy_setting_raises_no_alarm() {
    let (events, found) = diagnose(config(0.01, 200));
    assert_eq!(count_kind(&events, "loss"), 200);
    assert!(found.is_empty(), "false alarms: {found:#?}");
}

#[test]
fn a_deep_sigmoid_net_vanishes_in_its_first_layers() {
    let cfg = TrainConfig {
        hidden: vec![64; 6],
        model_options: ModelOptions {
            activation: Activation::Sigmoid,
            init_bias: None,
        },
        ..config(0.01, 60)
    };
    let (events, found) = diagnose(cfg);
    let v = first(&found, DiagnosisKind::Vanishing);
    // Sustained for the default 20 steps from the start: named at step 19.
    assert!((19..=30).contains(&v.step), "{v:?}");
    assert_eq!(v.layers.first().map(String::as_str), Some("fc1"), "{v:?}");
    assert!(!v.layers.iter().any(|l| l == "fc7"), "{v:?}");
    // The real norms agree: fc1 is over two orders of magnitude below fc7 at that step.
    let ratio = grad_at(&events, v.step, "fc1") / grad_at(&events, v.step, "fc7");
    assert!(ratio < 1e-2, "fc1/fc7 = {ratio}");
    // Nothing else is wrong with it: no explosion, no NaN, no dead layer.
    assert!(
        found.iter().all(|f| !matches!(
            f.kind,
            DiagnosisKind::Exploding | DiagnosisKind::NonFinite | DiagnosisKind::DeadLayer
        )),
        "{found:#?}"
    );
}

#[test]
fn the_same_net_with_relu_does_not_vanish() {
    let cfg = TrainConfig {
        hidden: vec![64; 6],
        ..config(0.01, 60)
    };
    let (_, found) = diagnose(cfg);
    assert!(
        !found.iter().any(|f| f.kind == DiagnosisKind::Vanishing),
        "{found:#?}"
    );
}

#[test]
fn a_too_high_learning_rate_explodes_before_it_goes_non_finite() {
    let (events, found) = diagnose(config(EXPLODING_LR, 60));
    let x = first(&found, DiagnosisKind::Exploding);
    assert!(x.step < 30, "{x:?}");
    assert!(!x.layers.is_empty(), "{x:?}");
    let nf = first(&found, DiagnosisKind::NonFinite);
    assert!(x.step < nf.step, "explosion {x:?} after the NaN {nf:?}");
    // The first non-finite diagnosis agrees with the trainer's own first non_finite event.
    let first_alarm = events
        .iter()
        .find(|e| e.payload.kind() == "non_finite")
        .expect("the run goes non-finite");
    assert_eq!(nf.step, first_alarm.step, "{nf:?}");
    if let Some(layer) = first_alarm.payload.layer() {
        assert!(nf.layers.iter().any(|l| **l == *layer.name), "{nf:?}");
    }
}

/// Learning rate of the exploding run (SGD on the seed's MLP).
const EXPLODING_LR: f64 = 1.0;

#[test]
fn a_relu_net_with_a_large_negative_bias_dies() {
    let cfg = TrainConfig {
        model_options: ModelOptions {
            activation: Activation::Relu,
            init_bias: Some(-5.0),
        },
        ..config(0.01, 60)
    };
    let (events, found) = diagnose(cfg);
    let d = first(&found, DiagnosisKind::DeadLayer);
    // Dead from the first step: named after the default 20 steps of zeros.
    assert_eq!(d.step, 19, "{d:?}");
    assert_eq!(d.layers, vec!["fc1", "fc2", "fc3"], "{d:?}");
    assert_eq!(grad_at(&events, d.step, "fc1"), 0.0);
    // The output layer still learns (its bias gets a gradient), so it is not named.
    assert!(grad_at(&events, d.step, "fc4") > 0.0);
    assert!(!d.reason.is_empty());
}

#[test]
fn train_records_and_summarises_diagnoses_and_replay_does_not_repeat_them() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("dead.jsonl");
    let f = file.to_str().unwrap();
    let args = [
        "train",
        "--init-bias",
        "-5",
        "--lr",
        "0.01",
        "--steps",
        "40",
        "--record",
        f,
    ];
    let out = run_ok(&args);
    let events = read_events(&file);
    let at = events
        .iter()
        .position(|e| e.payload.kind() == "diagnosis")
        .expect("a diagnosis in the recording");
    match &events[at].payload {
        Payload::Diagnosis {
            diagnosis, layers, ..
        } => {
            assert_eq!(*diagnosis, DiagnosisKind::DeadLayer);
            assert_eq!(layers.len(), 3);
        }
        _ => unreachable!(),
    }
    // It follows step 19's events and comes before step 20's.
    assert_eq!(events[at].step, 19);
    assert_eq!(events[at - 1].step, 19);
    assert_eq!(events[at + 1].step, 20);
    // The summary names it, the sick layer and the commands to render and plot the file.
    for needle in [
        "step 19 dead_layer [fc1, fc2, fc3]",
        "sickest layer: fc1 (1 diagnosis, 40 steps at zero",
        "healthiest layer: fc4",
        &format!("sonograd render {f} -o dead.wav"),
        &format!("sonograd report {f} -o dead-report"),
    ] {
        assert!(
            out.stderr.contains(needle),
            "{needle:?} not in:\n{}",
            out.stderr
        );
    }
    let diagnoses = count_kind(&events, "diagnosis");

    // Replay: the recorded diagnoses come back once, not diagnosed a second time.
    let replayed = run_ok(&["replay", f, "--json", "--quiet"]);
    let replayed = parse_lines(&replayed.stdout, "replay");
    assert_eq!(replayed.len(), events.len());
    assert_eq!(count_kind(&replayed, "diagnosis"), diagnoses);

    // A recording without them (as --no-diagnose writes it) is diagnosed on replay, with the
    // same result.
    let bare = dir.path().join("bare.jsonl");
    let b = bare.to_str().unwrap();
    let mut no_diag = args.to_vec();
    no_diag[8] = b;
    no_diag.push("--no-diagnose");
    no_diag.push("--quiet");
    run_ok(&no_diag);
    let bare_events = read_events(&bare);
    assert_eq!(count_kind(&bare_events, "diagnosis"), 0);
    let replayed = run_ok(&["replay", b, "--json", "--quiet"]);
    let replayed = parse_lines(&replayed.stdout, "replay");
    let steps = |events: &[Event]| -> Vec<(u64, String)> {
        events
            .iter()
            .filter(|e| e.payload.kind() == "diagnosis")
            .map(|e| {
                (
                    e.step,
                    e.to_json_line()
                        .split("\"kind\"")
                        .nth(1)
                        .unwrap()
                        .to_string(),
                )
            })
            .collect()
    };
    assert_eq!(steps(&replayed), steps(&events));
}

#[test]
fn the_demos_runs_keep_their_diagnoses_and_lose_the_noise() {
    // `sonograd demo`'s five settings (the seed's MLP on digits, 200 steps, seed 0).
    let demo = [
        (OptimizerKind::Sgd, 0.01, 20, vec![]),
        (OptimizerKind::Sgd, 0.1, 20, vec![]),
        (
            OptimizerKind::Sgd,
            1.0,
            20,
            vec![DiagnosisKind::Exploding, DiagnosisKind::NonFinite],
        ),
        (
            OptimizerKind::Sgd,
            1.0,
            256,
            vec![DiagnosisKind::Exploding, DiagnosisKind::NonFinite],
        ),
        (OptimizerKind::Adam, 0.01, 20, vec![]),
    ];
    for (kind, lr, batch, want) in demo {
        let cfg = TrainConfig {
            optimizer: OptimizerConfig::new(kind, lr),
            batch_size: batch,
            length: Length::Steps(200),
            ..TrainConfig::default()
        };
        let (_, found) = diagnose(cfg);
        let kinds: Vec<DiagnosisKind> = found.iter().map(|f| f.kind).collect();
        assert_eq!(kinds, want, "{kind:?} lr {lr} batch {batch}: {found:#?}");
        if lr == 1.0 && batch == 20 {
            // The seed's lr 1.0 run: exploding within a few steps, NaN at step 7.
            assert!(found[0].step <= 6, "{found:#?}");
            assert_eq!(found[1].step, 7, "{found:#?}");
        }
    }
}
