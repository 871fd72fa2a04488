//! The detector's corpus (`tests/it/corpus/`): real training runs with the built-in trainer.
//! Healthy runs (all four optimizers, MLP and CNN, every built-in data set, batch 8 to 512,
//! 500 to 5,000 steps, several seeds) must raise no alarm; pathological ones (each of the
//! eight kinds, at various depths, widths, activations and optimizers) must be named with
//! the right kind and layer within their window. Every run trains for real here (no stored
//! numbers); `cargo run --release --example diagnose_sweep` runs the corpus and more.

use crate::corpus;

use std::collections::BTreeSet;

use corpus::{diagnose, judge, Case};
use sonograd::event::DiagnosisKind;
use sonograd_trainer::data::DataSpec;
use sonograd_trainer::model::ModelKind;
use sonograd_trainer::optim::OptimizerKind;

/// Trains every case, judges it, and fails with every problem found.
fn check(cases: &[Case]) {
    let mut problems = Vec::new();
    for case in cases {
        let (events, found) = diagnose(case);
        let steps = events.iter().filter(|e| e.payload.kind() == "loss").count() as u64;
        assert_eq!(steps, corpus::planned(case), "{}: steps trained", case.name);
        if let Err(e) = judge(case, &found) {
            problems.push(e);
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// A quarter of the healthy runs (the four tests run in parallel).
fn healthy_part(part: usize) -> Vec<Case> {
    corpus::healthy()
        .into_iter()
        .enumerate()
        .filter(|(i, _)| i % 4 == part)
        .map(|(_, c)| c)
        .collect()
}

#[test]
fn healthy_runs_raise_no_alarm_1() {
    check(&healthy_part(0));
}

#[test]
fn healthy_runs_raise_no_alarm_2() {
    check(&healthy_part(1));
}

#[test]
fn healthy_runs_raise_no_alarm_3() {
    check(&healthy_part(2));
}

#[test]
fn healthy_runs_raise_no_alarm_4() {
    check(&healthy_part(3));
}

#[test]
fn pathological_runs_are_named_with_kind_layer_and_step() {
    let cases: Vec<Case> = corpus::pathological()
        .into_iter()
        .filter(|c| c.pause.is_none())
        .collect();
    check(&cases);
}

#[test]
fn a_live_run_that_hangs_is_a_stall_and_only_then() {
    let cases: Vec<Case> = corpus::pathological()
        .into_iter()
        .filter(|c| c.pause.is_some())
        .collect();
    assert!(!cases.is_empty());
    check(&cases);
    // The same runs judged after the fact (a replay: no clock) never stall.
    for case in &cases {
        let offline = Case {
            pause: None,
            ..case.clone()
        };
        let (_, found) = diagnose(&offline);
        assert!(
            found.iter().all(|f| f.kind != DiagnosisKind::Stall),
            "{}: {found:#?}",
            case.name
        );
    }
}

#[test]
fn the_corpus_covers_what_it_promises() {
    let healthy = corpus::healthy();
    let sick = corpus::pathological();
    assert!(healthy.len() >= 20, "{} healthy runs", healthy.len());
    assert!(sick.len() >= 10, "{} pathological runs", sick.len());
    let optimizers: BTreeSet<String> = healthy
        .iter()
        .map(|c| format!("{:?}", c.cfg.optimizer.kind))
        .collect();
    let all: BTreeSet<String> = [
        OptimizerKind::Sgd,
        OptimizerKind::Adam,
        OptimizerKind::AdamW,
        OptimizerKind::RmsProp,
    ]
    .iter()
    .map(|k| format!("{k:?}"))
    .collect();
    assert_eq!(optimizers, all);
    for model in [ModelKind::Mlp, ModelKind::Cnn] {
        assert!(healthy.iter().any(|c| c.cfg.model == model), "{model:?}");
    }
    for data in [
        DataSpec::Digits,
        DataSpec::Spirals,
        DataSpec::Moons,
        DataSpec::Blobs,
        DataSpec::Xor,
    ] {
        assert!(healthy.iter().any(|c| c.cfg.data == data), "{data:?}");
    }
    let batches: Vec<usize> = healthy.iter().map(|c| c.cfg.batch_size).collect();
    assert_eq!(batches.iter().min(), Some(&8));
    assert_eq!(batches.iter().max(), Some(&512));
    let steps: Vec<u64> = healthy.iter().map(corpus::planned).collect();
    assert_eq!(steps.iter().min(), Some(&500));
    assert_eq!(steps.iter().max(), Some(&5000));
    let seeds: BTreeSet<u64> = healthy.iter().map(|c| c.cfg.seed).collect();
    assert!(seeds.len() >= 5);
    let kinds: BTreeSet<&str> = sick
        .iter()
        .flat_map(|c| c.expect.iter().map(|x| x.kind.name()))
        .collect();
    assert_eq!(kinds, DiagnosisKind::NAMES.iter().copied().collect());
    // Pathologies at several depths, activations and optimizers.
    let depths: BTreeSet<usize> = sick.iter().map(|c| c.cfg.hidden.len()).collect();
    assert!(depths.len() >= 3, "{depths:?}");
    let optimizers: BTreeSet<String> = sick
        .iter()
        .map(|c| format!("{:?}", c.cfg.optimizer.kind))
        .collect();
    assert!(optimizers.len() >= 3, "{optimizers:?}");
}

#[test]
fn healthy_runs_beyond_the_corpus_stay_silent_too() {
    // Other seeds and settings than the corpus's (the cheap 2-D ones; the sweep runs all).
    let cases: Vec<Case> = corpus::beyond()
        .into_iter()
        .filter(|c| {
            (c.cfg.data != DataSpec::Digits && c.name.ends_with("-202")) || c.name.ends_with("-b8")
        })
        .collect();
    assert!(cases.len() >= 5, "{}", cases.len());
    check(&cases);
}
