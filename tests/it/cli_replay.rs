//! Recordings: a run stopped by SIGINT closes its file cleanly, a killed one leaves a file
//! that still replays, and `replay --json` gives back exactly what was recorded.

use crate::common;
use common::*;

use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use sonograd::event::{EndReason, Event, Payload};

/// Sends a signal with `/bin/kill` (no libc needed).
fn signal(child: &Child, sig: &str) {
    let status = std::process::Command::new("kill")
        .args([sig, &child.id().to_string()])
        .status()
        .expect("running kill");
    assert!(status.success(), "kill {sig} failed");
}

/// Waits for the child to exit; kills it and fails after `limit`.
fn wait_for(child: &mut Child, limit: Duration) -> std::process::ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("sonograd did not exit within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Starts a long recorded run and waits until its file holds a few hundred lines.
fn start_long_run(file: &Path) -> Child {
    let mut child = sonograd(&[
        "train",
        "--quiet",
        "--steps",
        "100000",
        "--record",
        file.to_str().unwrap(),
    ])
    .stdout(Stdio::null())
    .stderr(Stdio::null())
    .spawn()
    .unwrap();
    let start = Instant::now();
    loop {
        let lines = std::fs::read_to_string(file)
            .map(|t| t.lines().count())
            .unwrap_or(0);
        if lines >= 300 {
            return child;
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the run ended early: {status}");
        }
        if start.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            panic!("the run recorded only {lines} lines in 30 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn sigint_ends_the_run_cleanly_with_exit_130() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("int.jsonl");
    let mut child = start_long_run(&file);
    signal(&child, "-INT");
    let status = wait_for(&mut child, Duration::from_secs(20));
    assert_eq!(status.code(), Some(130), "{status}");
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.ends_with('\n'), "the last line is unfinished");
    let events = parse_lines(&text, "int.jsonl");
    assert_eq!(end_reason(&events), EndReason::Interrupted);
    assert_eq!(count_kind(&events, "run_end"), 1);
    // Far from the 100000 planned steps.
    assert!(count_kind(&events, "loss") < 100_000);
}

#[test]
fn a_killed_run_leaves_a_file_that_replays() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("killed.jsonl");
    let mut child = start_long_run(&file);
    signal(&child, "-KILL");
    let status = wait_for(&mut child, Duration::from_secs(20));
    assert_eq!(status.code(), None, "killed by a signal: {status}");
    let text = std::fs::read_to_string(&file).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines.len() >= 300);
    // Every line but possibly the last (cut mid-write) is a valid event.
    let complete = if text.ends_with('\n') {
        lines.len()
    } else {
        lines.len() - 1
    };
    for (i, line) in lines[..complete].iter().enumerate() {
        Event::from_json_line(line).unwrap_or_else(|e| panic!("line {}: {e}: {line}", i + 1));
    }
    // No run_end: the run never got to say goodbye.
    assert!(!text.contains("\"run_end\""));
    let out = run_cli(&["replay", file.to_str().unwrap(), "--quiet"]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
}

#[test]
fn a_cut_last_line_is_skipped_with_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("cut.jsonl");
    let line = |step| Event::new(step, 0, 1.0, Payload::Loss { value: 0.5 }).to_json_line();
    let last = line(2);
    std::fs::write(
        &file,
        format!("{}\n{}\n{}", line(0), line(1), &last[..last.len() / 2]),
    )
    .unwrap();
    let out = run_cli(&["replay", file.to_str().unwrap(), "--json", "--quiet"]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let warning = format!("warning: {}:3:", file.display());
    assert!(out.stderr.contains(&warning), "{}", out.stderr);
    let events = parse_lines(&out.stdout, "stdout");
    assert_eq!(events.len(), 2);
    assert_eq!(events[1].step, 1);
}

#[test]
fn replay_json_gives_back_the_recording() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("run.jsonl");
    // lr 10: the recording also holds NaN values, written as strings, and alarms.
    run_ok(&[
        "train",
        "--quiet",
        "--lr",
        "10",
        "--steps",
        "25",
        "--record",
        file.to_str().unwrap(),
    ]);
    let recorded = read_events(&file);
    assert!(count_kind(&recorded, "non_finite") > 0);
    let out = run_ok(&["replay", file.to_str().unwrap(), "--json", "--quiet"]);
    let replayed = parse_lines(&out.stdout, "replay stdout");
    assert_eq!(recorded.len(), replayed.len());
    for (i, (a, b)) in recorded.iter().zip(&replayed).enumerate() {
        assert!(
            same_event(a, b),
            "event {i} differs:\n  recorded {a:?}\n  replayed {b:?}"
        );
    }
    // Line for line, too: the same JSON text (replay writes what train wrote).
    let text = std::fs::read_to_string(&file).unwrap();
    assert_eq!(out.stdout.lines().count(), text.lines().count());
}

/// A W&B-style CSV export (sparse cells, quoted header names, NaN as text) replays as the
/// events its column mapping names, and is routed like any recording.
#[test]
fn a_csv_export_replays_as_events_and_is_routed() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("export.csv");
    std::fs::write(
        &csv,
        "Step,\"train/loss\",grads/fc1,grads/fc2,lr\n\
         0,2.5,0.5,1.5,0.1\n\
         1,2.25,,2.0,0.1\n\
         2,NaN,4.0,8.0,0.1\n",
    )
    .unwrap();
    let columns = "step=Step,loss=train/loss,lr=lr,grad_norm:fc1=grads/fc1,grad_norm:fc2=grads/fc2";
    let rec = dir.path().join("out.jsonl");
    let out = run_ok(&[
        "replay",
        csv.to_str().unwrap(),
        "--csv-columns",
        columns,
        "--record",
        rec.to_str().unwrap(),
        "--monitor",
    ]);
    let events = read_events(&rec);
    let values = |kind: &str, layer: Option<&str>| -> Vec<(u64, f64)> {
        events
            .iter()
            .filter(|e| e.payload.kind() == kind)
            .filter(|e| layer.is_none() || e.payload.layer().map(|l| &*l.name) == layer)
            .map(|e| (e.step, e.payload.value().unwrap()))
            .collect()
    };
    let loss = values("loss", None);
    assert_eq!(loss[..2], [(0, 2.5), (1, 2.25)]);
    assert!(loss[2].0 == 2 && loss[2].1.is_nan(), "{loss:?}");
    // The empty cell gives no event.
    assert_eq!(values("grad_norm", Some("fc1")), [(0, 0.5), (2, 4.0)]);
    assert_eq!(
        values("grad_norm", Some("fc2")),
        [(0, 1.5), (1, 2.0), (2, 8.0)]
    );
    assert_eq!(values("lr", None).len(), 3);
    // The default mapping gives each layer's norm a pitch on its voice (a CSV without a time
    // column puts every row at the same instant, so the rate limit may merge a row's value
    // into the next one's: the first and last values always sound).
    for (layer, value) in [("fc1", "0.5"), ("fc2", "1.5"), ("fc1", "4"), ("fc2", "8")] {
        let wanted = format!("<- grad_norm {layer} = {value}");
        assert!(
            out.stdout
                .lines()
                .any(|l| l.contains("pitch") && l.ends_with(&wanted)),
            "no pitch for {wanted}: {}",
            out.stdout
        );
    }

    // A cell that is not a number is an error that names the file, line and column.
    std::fs::write(&csv, "Step,train/loss\n0,2.5\n1,lots\n").unwrap();
    let args = [
        "replay",
        csv.to_str().unwrap(),
        "--csv-columns",
        "step=Step,loss=train/loss",
    ];
    let out = run_cli(&args);
    assert_clean_error(&out, &args);
    let line = error_line(&out);
    assert!(
        line.contains("export.csv:3") && line.contains("train/loss"),
        "{line}"
    );
    // A mapped column that the header lacks is named too.
    let args = [
        "replay",
        csv.to_str().unwrap(),
        "--csv-columns",
        "step=Step,loss=val/loss",
    ];
    let out = run_cli(&args);
    assert_clean_error(&out, &args);
    assert!(error_line(&out).contains("val/loss"), "{}", out.stderr);
}
