//! The NRT score rendered by `scsynth -N`: the pitch of each step's window follows the
//! run (a loss that falls over 30 steps drives one voice's pitch).

use crate::common;

use std::process::Command;

use sonograd::mapping;
use sonograd::message::Action;
use sonograd::output::osc_score::ScoreWriter;
use sonograd::output::Output;

const MAPPING: &str = r#"
[outputs.synth]
kind = "synth"
[[route]]
name = "loss-pitch"
output = "synth"
match = { metric = "loss" }
transform = { domain = [0, 3] }
to = { param = "pitch", voice = 0, range = [220, 880] }
"#;

#[test]
fn rendered_pitch_follows_the_loss() {
    if !common::require_peers(&["scsynth"]) {
        return;
    }
    let m = mapping::parse_str(MAPPING, "inline.toml").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let rec = dir.path().join("run.jsonl");
    common::write_recording(&rec, 30);
    let msgs = common::replay(&rec, &m, 0.1);
    assert_eq!(msgs.len(), 30, "one pitch per step");

    let score = dir.path().join("run.osc");
    let step_secs = 0.2;
    let mut w = ScoreWriter::create(&score, step_secs).unwrap();
    for msg in &msgs {
        w.send(msg, &m);
    }
    w.close();

    let wav = dir.path().join("run.wav");
    let out = Command::new("scsynth")
        .args([
            "-N",
            score.to_str().unwrap(),
            "_",
            wav.to_str().unwrap(),
            "48000",
            "WAV",
            "int16",
            "-o",
            "2",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "scsynth -N failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (sr, l, r) = common::read_wav(&wav);
    let (samples, rate) = (common::mono(&l, &r), sr as f64);
    // The last step (29) plus one step for the release, then the 1 s tail.
    let expected_len = (29.0 * step_secs + step_secs + 1.0) * rate;
    assert!(
        (samples.len() as f64 - expected_len).abs() < rate * 0.1,
        "{} samples",
        samples.len()
    );

    let mut errors = Vec::new();
    for msg in &msgs {
        let Action::Synth { value: hz, .. } = msg.action else {
            panic!("not a synth message")
        };
        // The middle of the step, away from the 20 ms glide.
        let start = ((msg.step as f64 * step_secs + 0.05) * rate) as usize;
        let window = &samples[start..start + 4096];
        let got = common::peak_hz(window, sr);
        errors.push((msg.step, hz, got));
    }
    let bad: Vec<_> = errors
        .iter()
        .filter(|(_, want, got)| (got / want - 1.0).abs() > 0.02)
        .collect();
    assert!(
        bad.is_empty(),
        "pitch off by more than 2% at (step, expected, rendered): {bad:?}"
    );
    assert!(
        errors.first().unwrap().2 > errors.last().unwrap().2 * 1.5,
        "the pitch falls with the loss"
    );
}
