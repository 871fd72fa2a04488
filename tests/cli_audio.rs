//! The built-in synth from the command line: `train --wav`, `render`, and their errors.

mod common;
use common::*;

/// (sample rate, frames) of a 16-bit WAV, read with hound.
fn wav_shape(path: &std::path::Path) -> (u32, u32, u32) {
    let r = hound::WavReader::open(path).unwrap();
    (r.spec().sample_rate, r.duration(), r.spec().channels.into())
}

#[test]
fn train_wav_and_render_give_the_same_audio() {
    let dir = tempfile::tempdir().unwrap();
    let wav = dir.path().join("run.wav");
    let rec = dir.path().join("run.jsonl");
    let steps = "20";
    run_ok(&[
        "train",
        "--steps",
        steps,
        "--quiet",
        "--record",
        rec.to_str().unwrap(),
        "--wav",
        wav.to_str().unwrap(),
    ]);
    // 20 steps at the default 50 ms, plus the 1.5 s tail: 2.5 s at 48 kHz.
    let (rate, frames, channels) = wav_shape(&wav);
    assert_eq!((rate, channels), (48_000, 2));
    assert!(
        (frames as f64 / 48_000.0 - 2.5).abs() < 0.06,
        "{frames} frames"
    );
    // Rendering the same recording again gives the same bytes.
    let again = dir.path().join("again.wav");
    run_ok(&[
        "render",
        rec.to_str().unwrap(),
        "-o",
        again.to_str().unwrap(),
        "--quiet",
    ]);
    assert_eq!(std::fs::read(&wav).unwrap(), std::fs::read(&again).unwrap());
    // --step-ms changes the length: 20 steps x 100 ms + 1.5 s.
    let slow = dir.path().join("slow.wav");
    run_ok(&[
        "render",
        rec.to_str().unwrap(),
        "-o",
        slow.to_str().unwrap(),
        "--step-ms",
        "100",
        "--quiet",
    ]);
    let (_, frames, _) = wav_shape(&slow);
    assert!(
        (frames as f64 / 48_000.0 - 3.5).abs() < 0.06,
        "{frames} frames"
    );
}

#[test]
fn bad_audio_flags_and_inputs_are_clean_errors() {
    let dir = tempfile::tempdir().unwrap();
    let wav = dir.path().join("x.wav");
    let w = wav.to_str().unwrap();
    for args in [
        vec!["render", "/nonexistent/run.jsonl", "-o", w],
        vec!["train", "--steps", "2", "--wav", w, "--step-ms", "0"],
        vec!["train", "--steps", "2", "--wav", w, "--sample-rate", "10"],
        vec!["train", "--steps", "2", "--wav", w, "--no-monitor"],
    ] {
        let out = run_cli(&args);
        assert_clean_error(&out, &args);
    }
}
