//! One playback clock: a dry run (`--monitor`) of a replay shows every step of a run that was
//! recorded far faster than it plays, paced or not, and `--speed` scales the time between
//! messages.

use crate::common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use common::{grad, loss, run_ok, run_start, total};

const LAYERS: [&str; 4] = ["fc1", "fc2", "fc3", "fc4"];

/// A recording of `steps` steps, `dt` seconds apart in recorded wall time, whose layer norms
/// jump by a factor of 10 every step (so every step changes every layer's note).
fn write_recording(path: &Path, steps: u64, dt: f64) {
    let mut lines = vec![run_start(0, &LAYERS).to_json_line()];
    for s in 0..steps {
        let t = 1.0e9 + s as f64 * dt;
        for (i, name) in LAYERS.iter().enumerate() {
            let up = (s + i as u64).is_multiple_of(2);
            let v = if up { 3.0 } else { 0.03 } * (1.0 + i as f64 * 0.4);
            let mut e = grad(s, name, Some(i as u32), v);
            e.time = t;
            lines.push(e.to_json_line());
        }
        for mut e in [total(s, 1.0), loss(s, 2.0 / (1.0 + s as f64))] {
            e.time = t;
            lines.push(e.to_json_line());
        }
    }
    std::fs::write(path, lines.join("\n") + "\n").unwrap();
}

/// (time, step, voice) of every monitor line that sets a synth voice's pitch.
fn pitch_lines(stdout: &str) -> Vec<(f64, u64, u32)> {
    stdout
        .lines()
        .filter(|l| l.contains(" pitch "))
        .map(|l| {
            let mut w = l.split_whitespace();
            let time: f64 = w.next().unwrap().trim_end_matches('s').parse().unwrap();
            assert_eq!(w.next(), Some("step"), "{l}");
            let step: u64 = w.next().unwrap().parse().unwrap();
            let voice = l
                .split(" voice ")
                .nth(1)
                .and_then(|r| r.split_whitespace().next())
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("no voice in {l}"));
            (time, step, voice)
        })
        .collect()
}

/// Asserts that every step of `0..steps` set the pitch of four distinct voices.
fn every_layer_every_step(lines: &[(f64, u64, u32)], steps: u64) {
    let mut by_step: BTreeMap<u64, BTreeSet<u32>> = BTreeMap::new();
    for (_, step, voice) in lines {
        by_step.entry(*step).or_default().insert(*voice);
    }
    for s in 0..steps {
        let voices = by_step.get(&s).map_or(0, |v| v.len());
        assert_eq!(
            voices,
            4,
            "step {s}: pitch of {voices} layers routed, want all 4 ({} pitch lines in all)",
            lines.len()
        );
    }
}

#[test]
fn unpaced_dry_run_routes_every_layer_on_every_step() {
    let dir = tempfile::tempdir().unwrap();
    let rec = dir.path().join("fast.jsonl");
    // 100 steps recorded in 70 ms, as a small CPU run records them.
    write_recording(&rec, 100, 0.0007);
    let out = run_ok(&["replay", rec.to_str().unwrap(), "--monitor", "--no-audio"]);
    let lines = pitch_lines(&out.stdout);
    every_layer_every_step(&lines, 100);
    // The time column is the step clock: 50 ms a step by default.
    for (time, step, _) in &lines {
        assert!(
            (time - *step as f64 * 0.05).abs() < 0.0015,
            "step {step} at {time} s"
        );
    }
}

#[test]
fn paced_dry_run_shows_what_the_paced_replay_sends() {
    let dir = tempfile::tempdir().unwrap();
    let rec = dir.path().join("fast.jsonl");
    write_recording(&rec, 100, 0.0007);
    let started = std::time::Instant::now();
    // The seed's lockstep, 50 ms a step: the default mapping's 20 Hz rate limit lets every
    // step through.
    let paced = run_ok(&[
        "replay",
        rec.to_str().unwrap(),
        "--paced",
        "--monitor",
        "--no-audio",
    ]);
    let took = started.elapsed().as_secs_f64();
    assert!(took >= 4.9, "100 steps at 50 ms took {took:.2} s");
    let lines = pitch_lines(&paced.stdout);
    every_layer_every_step(&lines, 100);
    for (time, step, _) in &lines {
        assert!(
            (time - *step as f64 * 0.05).abs() < 0.0015,
            "step {step} at {time} s"
        );
    }
    // The unpaced dry run sends the same messages.
    let unpaced_same_clock = run_ok(&["replay", rec.to_str().unwrap(), "--monitor", "--no-audio"]);
    let key = |l: &[(f64, u64, u32)]| l.iter().map(|(_, s, v)| (*s, *v)).collect::<Vec<_>>();
    assert_eq!(key(&pitch_lines(&unpaced_same_clock.stdout)), key(&lines));
}

#[test]
fn speed_two_halves_the_time_between_messages() {
    let dir = tempfile::tempdir().unwrap();
    let rec = dir.path().join("slow.jsonl");
    // 20 steps, 60 ms apart in recorded time.
    write_recording(&rec, 20, 0.06);
    let span = |speed: &str| {
        let out = run_ok(&[
            "replay",
            rec.to_str().unwrap(),
            "--speed",
            speed,
            "--monitor",
            "--no-audio",
        ]);
        let lines = pitch_lines(&out.stdout);
        assert!(!lines.is_empty());
        let first = lines.first().unwrap().0;
        let last = lines.last().unwrap().0;
        last - first
    };
    let one = span("1");
    let two = span("2");
    assert!(
        (one - 1.14).abs() < 0.02,
        "speed 1: {one:.3} s from first to last"
    );
    assert!(
        (two / one - 0.5).abs() < 0.03,
        "speed 2: {two:.3} s against {one:.3} s at speed 1"
    );
}
