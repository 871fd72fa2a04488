//! Streams from other writers that send a NaN or Inf value but no `non_finite` event still
//! sound the alarm routes (`metric = "nonfinite"`), in a render, a replay of a CSV export and
//! a live stream; a stream that already holds its alarms sounds each once, as before.

use crate::common;
use common::audio::{mono, read_wav};
use common::*;

use std::path::Path;
use std::process::Stdio;

const STEPS: u64 = 400;
const NAN_STEP: u64 = 200;

/// JSON lines the way Python's `json.dumps` writes them: bare `NaN`, no `non_finite` line
/// unless `own_alarm`. Three layers, a healthy loss, fc2's gradient NaN at [`NAN_STEP`].
fn foreign_recording(own_alarm: bool) -> String {
    let mut s = String::new();
    for step in 0..STEPS {
        let t = 1000.0 + step as f64 * 0.01;
        for (i, name) in ["fc1", "fc2", "fc3"].iter().enumerate() {
            let v = if step == NAN_STEP && *name == "fc2" {
                "NaN".to_string()
            } else {
                format!("{}", 0.5 + 0.1 * i as f64 + 0.001 * (step % 7) as f64)
            };
            s += &format!(
                "{{\"v\": 1, \"kind\": \"grad_norm\", \"step\": {step}, \"time\": {t}, \"layer\": \"{name}\", \"value\": {v}}}\n"
            );
            if own_alarm && v == "NaN" {
                s += &format!(
                    "{{\"v\": 1, \"kind\": \"non_finite\", \"step\": {step}, \"time\": {t}, \"layer\": \"{name}\", \"quantity\": \"grad\", \"state\": \"nan\"}}\n"
                );
            }
        }
        s += &format!(
            "{{\"v\": 1, \"kind\": \"loss\", \"step\": {step}, \"time\": {t}, \"value\": {}}}\n",
            2.0 / (1.0 + step as f64 * 0.01)
        );
    }
    s
}

fn alarms_only() -> String {
    format!("{}/config/alarms-only.toml", env!("CARGO_MANIFEST_DIR"))
}

fn render(dir: &Path, name: &str, text: &str) -> Vec<f32> {
    let rec = dir.join(format!("{name}.jsonl"));
    std::fs::write(&rec, text).unwrap();
    let wav = dir.join(format!("{name}.wav"));
    let map = alarms_only();
    run_ok(&[
        "render",
        rec.to_str().unwrap(),
        "--mapping",
        &map,
        "-o",
        wav.to_str().unwrap(),
        "--quiet",
    ]);
    let (sr, l, r) = read_wav(&wav);
    assert_eq!(sr, 48_000);
    mono(&l, &r)
}

#[test]
fn a_bare_nan_from_another_writer_sounds_the_alarm_when_it_happens() {
    let dir = tempfile::tempdir().unwrap();
    let audio = render(dir.path(), "foreign", &foreign_recording(false));
    // 50 ms a step: the NaN's step starts at 10.0 s.
    let at = |secs: f64| (secs * 48_000.0) as usize;
    let nan_at = NAN_STEP as f64 * 0.05;
    let before = audio[..at(nan_at - 0.1)]
        .iter()
        .fold(0f32, |m, x| m.max(x.abs()));
    assert!(before < 1e-4, "sound before the NaN: peak {before}");
    let strike = &audio[at(nan_at - 0.05)..at(nan_at + 0.5)];
    let peak = strike.iter().fold(0f32, |m, x| m.max(x.abs()));
    assert!(peak > 0.05, "no alarm at the NaN: peak {peak}");
    let first = audio.iter().position(|x| x.abs() > 1e-3).unwrap();
    let first_secs = first as f64 / 48_000.0;
    assert!(
        (first_secs - nan_at).abs() < 0.06,
        "the alarm starts at {first_secs:.3} s, the NaN's step at {nan_at} s"
    );
}

#[test]
fn a_writer_that_sends_its_own_alarm_is_struck_once() {
    let dir = tempfile::tempdir().unwrap();
    let bare = render(dir.path(), "bare", &foreign_recording(false));
    let own = render(dir.path(), "own", &foreign_recording(true));
    // The same sound, sample for sample: the writer's alarm takes the place of the one made
    // for it.
    assert_eq!(bare.len(), own.len());
    assert!(bare
        .iter()
        .zip(&own)
        .all(|(a, b)| a.to_bits() == b.to_bits()));
    // A second strike at the same instant can sound the same, so count the strikes on the
    // monitor: one, for either.
    let map = alarms_only();
    for name in ["bare", "own"] {
        let rec = dir.path().join(format!("{name}.jsonl"));
        let out = run_ok(&[
            "replay",
            rec.to_str().unwrap(),
            "--mapping",
            &map,
            "--monitor",
            "--quiet",
            "--no-audio",
        ]);
        assert_eq!(
            nan_alarm_lines(&out.stdout).len(),
            1,
            "{name}: {}",
            out.stdout
        );
    }
}

fn nan_alarm_lines(stdout: &str) -> Vec<&str> {
    stdout.lines().filter(|l| l.contains("nan-alarm")).collect()
}

#[test]
fn a_nan_cell_in_a_csv_export_sounds_the_alarm() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("run.csv");
    let mut text = String::from("Step,train/loss,grad/fc1\n");
    for step in 0..50 {
        let loss = if step == 30 {
            "nan".into()
        } else {
            format!("{}", 1.0 / (1.0 + step as f64))
        };
        text += &format!("{step},{loss},0.5\n");
    }
    std::fs::write(&csv, text).unwrap();
    let map = alarms_only();
    let out = run_ok(&[
        "replay",
        csv.to_str().unwrap(),
        "--csv-columns",
        "step=Step,loss=train/loss,grad_norm:fc1=grad/fc1",
        "--mapping",
        &map,
        "--monitor",
        "--quiet",
        "--no-audio",
    ]);
    let lines = nan_alarm_lines(&out.stdout);
    assert_eq!(lines.len(), 1, "{}", out.stdout);
    assert!(lines[0].contains("step     30"), "{}", lines[0]);
    assert!(lines[0].contains("nonfinite = NaN"), "{}", lines[0]);
}

#[test]
fn a_live_stream_with_a_bare_nan_sounds_the_alarm_once_per_step() {
    let dir = tempfile::tempdir().unwrap();
    // Steps 0..400 as above; both forms: bare (an alarm is made) and with the writer's own
    // (passed, not doubled). Step 200 bare, and step 201 again with its own alarm.
    let mut text = foreign_recording(false);
    text += &foreign_recording(true)
        .lines()
        .filter(|l| l.contains("\"step\": 200,"))
        .map(|l| l.replace("\"step\": 200,", "\"step\": 401,") + "\n")
        .collect::<String>();
    let input = dir.path().join("in.jsonl");
    std::fs::write(&input, text).unwrap();
    let map = alarms_only();
    let out = sonograd(&[
        "listen",
        "--stdin",
        "--mapping",
        &map,
        "--monitor",
        "--quiet",
        "--no-audio",
    ])
    .stdin(Stdio::from(std::fs::File::open(&input).unwrap()))
    .output()
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines = nan_alarm_lines(&stdout);
    assert_eq!(lines.len(), 2, "{stdout}");
    assert!(lines[0].contains("step    200") && lines[0].contains("nonfinite fc2 = NaN"));
    assert!(lines[1].contains("step    401"), "{}", lines[1]);
}
