//! `sonograd train` end to end: divergence is reported and survived, seeds reproduce runs,
//! `--halt-on-nonfinite` stops early, and IDX data trains an MLP and the CNN.

use crate::common;
use common::*;

use std::path::Path;

use sonograd::event::{EndReason, Event, Payload};
use sonograd_trainer::data::write_idx;

/// Trains with `args` plus `--record FILE --quiet`, returns the recorded events.
fn train_recorded(dir: &Path, name: &str, args: &[&str]) -> Vec<Event> {
    let file = dir.join(name);
    let file_arg = file.to_str().unwrap();
    let mut all = vec!["train", "--quiet", "--record", file_arg];
    all.extend_from_slice(args);
    run_ok(&all);
    read_events(&file)
}

fn run_start_info(events: &[Event]) -> &sonograd::event::RunInfo {
    match &events.first().expect("empty recording").payload {
        Payload::RunStart { info } => info,
        other => panic!("first event is not run_start: {other:?}"),
    }
}

#[test]
fn a_diverging_run_reports_non_finite_values_and_completes() {
    let dir = tempfile::tempdir().unwrap();
    let events = train_recorded(dir.path(), "hot.jsonl", &["--lr", "10", "--steps", "40"]);
    let alarms = count_kind(&events, "non_finite");
    assert!(alarms > 0, "lr 10 should diverge within 40 steps");
    assert_eq!(end_reason(&events), EndReason::Completed);
    // All 40 steps ran: one loss event per step, even after the NaNs.
    assert_eq!(count_kind(&events, "loss"), 40);
    // The alarms agree with the values: some loss or gradient norm is itself non-finite.
    assert!(events.iter().any(|e| matches!(
        e.payload,
        Payload::Loss { value } | Payload::GradNorm { value, .. } if !value.is_finite()
    )));
}

#[test]
fn a_gentle_run_stays_finite() {
    let dir = tempfile::tempdir().unwrap();
    let events = train_recorded(
        dir.path(),
        "calm.jsonl",
        &["--lr", "0.01", "--steps", "200"],
    );
    assert_eq!(count_kind(&events, "non_finite"), 0);
    assert_eq!(count_kind(&events, "loss"), 200);
    for e in &events {
        if let Some(v) = e.payload.value() {
            assert!(v.is_finite(), "non-finite value in {}", e.to_json_line());
        }
    }
    assert_eq!(end_reason(&events), EndReason::Completed);
}

#[test]
fn the_same_seed_gives_the_same_events() {
    let dir = tempfile::tempdir().unwrap();
    let args = ["--seed", "7", "--steps", "30"];
    let a = train_recorded(dir.path(), "a.jsonl", &args);
    let b = train_recorded(dir.path(), "b.jsonl", &args);
    assert!(a.len() > 30 * 4, "too few events: {}", a.len());
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(without_time(x), without_time(y));
    }
    let c = train_recorded(dir.path(), "c.jsonl", &["--seed", "8", "--steps", "30"]);
    let differs = a.len() != c.len()
        || a.iter()
            .zip(&c)
            .any(|(x, y)| without_time(x) != without_time(y));
    assert!(differs, "seeds 7 and 8 gave identical runs");
    // Not just the seed field: the training values themselves differ.
    let losses = |ev: &[Event]| -> Vec<f64> {
        ev.iter()
            .filter_map(|e| match e.payload {
                Payload::Loss { value } => Some(value),
                _ => None,
            })
            .collect()
    };
    assert_ne!(losses(&a), losses(&c));
}

#[test]
fn halt_on_nonfinite_stops_at_the_first_nan() {
    let dir = tempfile::tempdir().unwrap();
    let events = train_recorded(
        dir.path(),
        "halt.jsonl",
        &["--lr", "10", "--steps", "40", "--halt-on-nonfinite"],
    );
    assert_eq!(end_reason(&events), EndReason::NonFinite);
    let steps = count_kind(&events, "loss");
    assert!(steps < 40, "ran {steps} of 40 steps");
    assert!(count_kind(&events, "non_finite") > 0);
    // It stopped at the step of the first alarm: no step after it.
    let first_alarm = events
        .iter()
        .find(|e| e.payload.kind() == "non_finite")
        .unwrap()
        .step;
    assert!(events.iter().all(|e| e.step <= first_alarm));
    assert_eq!(steps as u64, first_alarm + 1);
}

/// A tiny IDX set: 60 8x8 images of 3 classes (a bright row band whose position is the
/// class), labels 0, 1, 2 in turn.
fn tiny_idx(dir: &Path) {
    let n = 60;
    let mut images = Vec::with_capacity(n * 64);
    let mut labels = Vec::with_capacity(n);
    for i in 0..n {
        let class = (i % 3) as u8;
        labels.push(class);
        for row in 0..8u8 {
            for col in 0..8u8 {
                let lit = row / 3 == class;
                images.push(if lit {
                    200 + col
                } else {
                    ((i * 7 + col as usize) % 40) as u8
                });
            }
        }
    }
    write_idx(dir, "train", &images, (8, 8), &labels).unwrap();
}

#[test]
fn idx_data_trains_an_mlp_and_the_cnn() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("tiny");
    std::fs::create_dir(&data).unwrap();
    tiny_idx(&data);
    let spec = format!("idx:{}", data.display());

    let mlp = train_recorded(
        dir.path(),
        "mlp.jsonl",
        &["--data", &spec, "--steps", "10", "--batch-size", "8"],
    );
    let info = run_start_info(&mlp);
    // 8x8 = 64 inputs, the default hidden widths, 3 classes.
    assert_eq!(info.model, "mlp 64-256-128-64-3");
    assert_eq!(info.layers, ["fc1", "fc2", "fc3", "fc4"]);
    assert!(info.dataset.contains("idx:"), "{}", info.dataset);
    assert_eq!(count_kind(&mlp, "loss"), 10);
    assert_eq!(end_reason(&mlp), EndReason::Completed);

    let cnn = train_recorded(
        dir.path(),
        "cnn.jsonl",
        &[
            "--data",
            &spec,
            "--model",
            "cnn",
            "--steps",
            "10",
            "--batch-size",
            "8",
        ],
    );
    let info = run_start_info(&cnn);
    assert_eq!(info.model, "cnn 8x8 conv8-conv16-fc64-3");
    assert_eq!(info.layers, ["conv1", "conv2", "fc1", "fc2"]);
    assert_eq!(count_kind(&cnn, "loss"), 10);
    // Every layer of the CNN reports a gradient norm each step.
    assert_eq!(count_kind(&cnn, "grad_norm"), 10 * 4);
    assert_eq!(end_reason(&cnn), EndReason::Completed);
}
