//! The built-in synth from the command line: `train --wav`, `render`, and their errors.

use crate::common;
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
    // Rendered over a longer file (written over in place, not truncated first), the file
    // is exactly the new WAV: the same bytes as a render to a new file.
    run_ok(&[
        "render",
        rec.to_str().unwrap(),
        "-o",
        slow.to_str().unwrap(),
        "--quiet",
    ]);
    assert_eq!(
        std::fs::read(&slow).unwrap(),
        std::fs::read(&again).unwrap()
    );
}

/// A long render through the synth thread (many stretches handed over) is complete, has
/// sound throughout, and gives the same bytes every time.
#[test]
fn a_long_render_behind_the_synth_thread_is_whole_and_repeatable() {
    let dir = tempfile::tempdir().unwrap();
    let rec = dir.path().join("run.jsonl");
    write_recording(&rec, 2_000);
    let render = |name: &str| {
        let wav = dir.path().join(name);
        run_ok(&[
            "render",
            rec.to_str().unwrap(),
            "-o",
            wav.to_str().unwrap(),
            "--quiet",
        ]);
        wav
    };
    let (a, b) = (render("a.wav"), render("b.wav"));
    let (rate, frames, _) = wav_shape(&a);
    // 2,000 steps of 50 ms and the 1.5 s tail.
    assert_eq!(frames, 2_000 * rate / 20 + rate * 3 / 2, "{frames} frames");
    assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
    // Every second of the run has sound in it.
    let samples: Vec<i16> = hound::WavReader::open(&a)
        .unwrap()
        .samples::<i16>()
        .map(Result::unwrap)
        .collect();
    for (i, second) in samples.chunks(2 * rate as usize).take(100).enumerate() {
        let peak = second.iter().map(|s| s.unsigned_abs()).max().unwrap_or(0);
        assert!(peak > 300, "second {i} is silent (peak {peak})");
    }
}
