//! `stall` through the command line: `listen` says it when a sender that had been stepping
//! goes quiet (and clears it when steps come back), live `train` says it when the trainer
//! is slower than the threshold, and `replay` of the same stream never says it.

use crate::common;
use common::*;

use std::io::{BufRead, Read, Write};
use std::process::Stdio;
use std::time::Duration;

use sonograd::event::{DiagnosisKind, Event, Payload};

/// The default mapping with a short stall threshold.
fn mapping(dir: &std::path::Path, seconds: f64) -> std::path::PathBuf {
    let text = std::fs::read_to_string("config/default.toml").unwrap();
    let path = dir.join("stall.toml");
    std::fs::write(
        &path,
        format!("{text}\n[diagnose]\nstall_seconds = {seconds}\n"),
    )
    .unwrap();
    path
}

fn stalls(events: &[Event]) -> Vec<u64> {
    events
        .iter()
        .filter(|e| {
            matches!(
                e.payload,
                Payload::Diagnosis {
                    diagnosis: DiagnosisKind::Stall,
                    ..
                }
            )
        })
        .map(|e| e.step)
        .collect()
}

/// One step's events as JSON lines, stamped `time` (seconds).
fn step_lines(step: u64, time: f64) -> String {
    let mut events: Vec<Event> = [0.4, 0.3]
        .iter()
        .enumerate()
        .map(|(i, v)| grad(step, &format!("fc{}", i + 1), Some(i as u32), *v))
        .collect();
    events.push(loss(step, 2.0 - 0.01 * step as f64));
    let mut s = String::new();
    for mut e in events {
        e.time = time;
        s += &e.to_json_line();
        s.push('\n');
    }
    s
}

#[test]
fn listen_says_stall_when_a_sender_goes_quiet_and_replay_does_not() {
    let dir = tempfile::tempdir().unwrap();
    let map = mapping(dir.path(), 0.4);
    let rec = dir.path().join("listen.jsonl");
    let args = [
        "listen",
        "--stdin",
        "--mapping",
        map.to_str().unwrap(),
        "--record",
        rec.to_str().unwrap(),
        "--quiet",
    ];
    let mut child = sonograd(&args)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Send only once the listener reads (its start-up may take a while on a busy machine).
    let mut stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    while !line.starts_with("listening:") {
        line.clear();
        assert!(
            stderr.read_line(&mut line).unwrap() > 0,
            "listen ended early"
        );
    }
    let rest = std::thread::spawn(move || {
        let mut text = String::new();
        stderr.read_to_string(&mut text).unwrap();
        text
    });
    let mut stdin = child.stdin.take().unwrap();
    stdin
        .write_all((run_start(0, &["fc1", "fc2"]).to_json_line() + "\n").as_bytes())
        .unwrap();
    for step in 0..10 {
        stdin
            .write_all(step_lines(step, 100.0 + 0.02 * step as f64).as_bytes())
            .unwrap();
        std::thread::sleep(Duration::from_millis(20));
    }
    stdin.flush().unwrap();
    // The sender hangs for well over the threshold, then steps on.
    std::thread::sleep(Duration::from_millis(1500));
    for step in 10..20 {
        stdin
            .write_all(step_lines(step, 101.5 + 0.02 * step as f64).as_bytes())
            .unwrap();
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(stdin);
    let status = child.wait().unwrap();
    let stderr = rest.join().unwrap();
    assert!(status.success(), "{stderr}");
    let events = read_events(&rec);
    // One stall, about the last step before the silence, before the next step's events.
    assert_eq!(stalls(&events), vec![9], "{events:#?}");
    let at = events
        .iter()
        .position(|e| e.payload.kind() == "diagnosis")
        .unwrap();
    assert!(events[..at].iter().all(|e| e.step <= 9));
    assert!(events[at + 1..].iter().all(|e| e.step >= 9));
    assert_eq!(count_kind(&events, "loss"), 20);

    // The same stream without the diagnosis, replayed at its recorded speed (so the silence
    // is heard again), is diagnosed offline: no stall.
    let bare = dir.path().join("bare.jsonl");
    let lines: Vec<String> = events
        .iter()
        .filter(|e| e.payload.kind() != "diagnosis")
        .map(Event::to_json_line)
        .collect();
    std::fs::write(&bare, lines.join("\n") + "\n").unwrap();
    let started = std::time::Instant::now();
    let replayed = run_ok(&[
        "replay",
        bare.to_str().unwrap(),
        "--speed",
        "1",
        "--mapping",
        map.to_str().unwrap(),
        "--json",
        "--quiet",
        "--no-audio",
    ]);
    assert!(started.elapsed() >= Duration::from_millis(1000));
    let replayed = parse_lines(&replayed.stdout, "replay");
    assert_eq!(count_kind(&replayed, "loss"), 20);
    assert_eq!(stalls(&replayed), Vec::<u64>::new());
}

#[cfg(feature = "train")]
#[test]
fn live_train_says_stall_when_steps_come_slower_than_the_threshold() {
    let dir = tempfile::tempdir().unwrap();
    let map = mapping(dir.path(), 0.3);
    let rec = dir.path().join("train.jsonl");
    run_ok(&[
        "train",
        "--data",
        "moons",
        "--hidden",
        "8",
        "--steps",
        "6",
        "--paced",
        "--step-ms",
        "700",
        "--mapping",
        map.to_str().unwrap(),
        "--record",
        rec.to_str().unwrap(),
        "--no-audio",
        "--quiet",
    ]);
    let events = read_events(&rec);
    let got = stalls(&events);
    // Each step takes 0.7 s: once three steps have come, every gap is a stall, cleared by
    // the next step; none after the last step (run_end).
    assert!(!got.is_empty(), "{events:#?}");
    assert!(got.iter().all(|s| (2..=4).contains(s)), "{got:?}");
    let unique: std::collections::BTreeSet<u64> = got.iter().copied().collect();
    assert_eq!(unique.len(), got.len(), "one stall per silence: {got:?}");
}
