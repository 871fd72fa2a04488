//! Bad input: every case exits 2 with one clear `error:` line (or clap's usage error), names
//! what is wrong, and never shows a panic or a backtrace.

use crate::common;
use common::*;

use sonograd::event::{Event, Payload};

#[test]
fn unknown_flag_is_a_usage_error() {
    let out = fails_with(&["train", "--no-such-flag"], &["--no-such-flag"]);
    assert!(out.stderr.contains("Usage:"), "{}", out.stderr);
}

#[test]
fn negative_learning_rate() {
    // `--lr -1` reads as a flag to clap: a usage error naming `-1`.
    fails_with(&["train", "--lr", "-1", "--steps", "5"], &["-1"]);
    // `--lr=-1` reaches the validation.
    fails_with(
        &["train", "--lr=-1", "--steps", "5"],
        &["--lr must be a positive number", "-1"],
    );
    fails_with(&["train", "--lr", "0", "--steps", "5"], &["--lr"]);
}

#[test]
fn zero_batch_size() {
    fails_with(&["train", "--batch-size", "0"], &["--batch-size"]);
}

#[test]
fn unknown_data_and_optimizer() {
    fails_with(&["train", "--data", "nope"], &["nope", "digits"]);
    fails_with(&["train", "--optimizer", "foo"], &["foo", "adam"]);
}

#[test]
fn cuda_without_cuda() {
    if sonograd_trainer::cuda_available() {
        eprintln!("CUDA is available here: skipping the no-CUDA error case");
        return;
    }
    fails_with(
        &["train", "--device", "cuda", "--steps", "5"],
        &["--device cuda", "CUDA is not available"],
    );
}

#[test]
fn cnn_on_plain_features() {
    let out = fails_with(
        &["train", "--model", "cnn", "--data", "spirals"],
        &["--model cnn needs image data"],
    );
    // The message is said once, not repeated by the error chain.
    assert_eq!(
        error_line(&out).matches("needs image data").count(),
        1,
        "{}",
        out.stderr
    );
}

#[test]
fn record_into_a_missing_folder() {
    fails_with(
        &[
            "train",
            "--steps",
            "5",
            "--record",
            "/nonexistent/dir/x.jsonl",
        ],
        &["--record", "/nonexistent/dir/x.jsonl"],
    );
}

#[test]
fn missing_idx_folder_is_one_line_naming_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-data");
    let spec = format!("idx:{}", missing.display());
    let out = fails_with(
        &["train", "--data", &spec, "--steps", "5"],
        &[missing.to_str().unwrap()],
    );
    assert_eq!(out.stderr.lines().count(), 1, "{}", out.stderr);
    assert_eq!(
        out.stderr.matches(missing.to_str().unwrap()).count(),
        1,
        "path repeated:\n{}",
        out.stderr
    );
}

#[test]
fn replay_of_a_missing_file() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("gone.jsonl");
    let out = fails_with(
        &["replay", missing.to_str().unwrap()],
        &[missing.to_str().unwrap(), "No such file"],
    );
    assert_eq!(
        error_line(&out).matches("No such file").count(),
        1,
        "{}",
        out.stderr
    );
}

#[test]
fn replay_of_a_malformed_recording_names_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.jsonl");
    let good = |step| Event::new(step, 0, 1.0, Payload::Loss { value: 1.0 }).to_json_line();
    // Line 3 of 5 has a string where the value belongs.
    let text = format!(
        "{}\n{}\n{{\"v\":1,\"step\":2,\"kind\":\"loss\",\"value\":\"lots\"}}\n{}\n{}\n",
        good(0),
        good(1),
        good(3),
        good(4)
    );
    std::fs::write(&file, text).unwrap();
    let shown = format!("{}:3:", file.display());
    fails_with(&["replay", file.to_str().unwrap()], &[&shown, "lots"]);
}

#[test]
fn a_broken_mapping_is_reported_with_file_line_and_column() {
    let broken = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/mappings/broken/02-unknown-metric.toml"
    );
    // The unknown metric `grad_nrom` sits on line 7, column 20 of that file.
    let at = format!("{broken}:7:20:");
    for cmd in ["train", "replay"] {
        let dir = tempfile::tempdir().unwrap();
        let rec = dir.path().join("r.jsonl");
        std::fs::write(
            &rec,
            Event::new(0, 0, 1.0, Payload::Loss { value: 1.0 }).to_json_line() + "\n",
        )
        .unwrap();
        let mut args = vec![cmd];
        if cmd == "replay" {
            args.push(rec.to_str().unwrap());
        } else {
            args.extend(["--steps", "5"]);
        }
        args.extend(["--mapping", broken]);
        let out = run_cli(&args);
        assert_clean_error(&out, &args);
        assert!(
            error_line(&out).contains("invalid mapping"),
            "{}",
            out.stderr
        );
        assert!(
            out.stderr.contains(&at) && out.stderr.contains("did you mean `grad_norm`"),
            "sonograd {args:?}: expected {at:?} in:\n{}",
            out.stderr
        );
    }
}
