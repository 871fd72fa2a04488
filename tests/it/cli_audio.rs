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

#[test]
fn bad_audio_flags_and_inputs_are_clean_errors() {
    let dir = tempfile::tempdir().unwrap();
    let wav = dir.path().join("x.wav");
    let w = wav.to_str().unwrap();
    for args in [
        vec!["render", "/nonexistent/run.jsonl", "-o", w],
        vec!["train", "--steps", "2", "--wav", w, "--step-ms", "0"],
        vec!["train", "--steps", "2", "--wav", w, "--sample-rate", "10"],
        vec!["train", "--steps", "2", "--wav", w, "--unmeasured"],
    ] {
        let out = run_cli(&args);
        assert_clean_error(&out, &args);
    }
}

/// A `sonograd` command that may open an audio device, on a machine whose audio is made
/// unreachable: no JACK server by that name, and an ALSA without configuration.
fn without_any_device(args: &[&str]) -> CliOutput {
    let out = sonograd(args)
        .env_remove("SONOGRAD_NO_AUDIO")
        .env("JACK_DEFAULT_SERVER", "sonograd-no-such-server")
        .env("ALSA_CONFIG_PATH", "/dev/null")
        .output()
        .expect("run sonograd");
    CliOutput {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

#[test]
fn no_audio_device_is_a_warning_and_training_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let rec = dir.path().join("run.jsonl");
    let out = without_any_device(&["train", "--steps", "15", "--record", rec.to_str().unwrap()]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(
        out.stderr
            .contains("no audio output device could be opened")
            && out.stderr.contains("--wav FILE")
            && out.stderr.contains("going on without sound"),
        "{}",
        out.stderr
    );
    let events = read_events(&rec);
    assert_eq!(end_reason(&events), sonograd::event::EndReason::Completed);
    assert_eq!(count_kind(&events, "total_norm"), 15);
}

#[test]
fn an_audio_device_asked_for_by_name_must_exist() {
    let args = [
        "train",
        "--steps",
        "5",
        "--audio-device",
        "no-such-device-7f3a",
    ];
    let out = without_any_device(&args);
    assert_clean_error(&out, &args);
    assert!(
        error_line(&out).contains("no-such-device-7f3a"),
        "{}",
        out.stderr
    );
    assert!(
        error_line(&out).contains("sonograd devices"),
        "{}",
        out.stderr
    );
    // --no-audio wins: nothing is opened, nothing is asked of the device.
    let mut quiet = args.to_vec();
    quiet.push("--no-audio");
    let out = without_any_device(&quiet);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let bad = ["train", "--steps", "5", "--buffer-frames", "0"];
    assert_clean_error(&run_cli(&bad), &bad);
}

#[test]
fn paced_training_holds_each_step_to_the_clock() {
    let started = std::time::Instant::now();
    let out = run_ok(&[
        "train",
        "--steps",
        "12",
        "--paced",
        "--step-ms",
        "150",
        "--quiet",
    ]);
    let secs = started.elapsed().as_secs_f64();
    // 12 steps at 150 ms: the last starts 1.65 s after the first (long enough that the
    // unpaced run, start-up included, stays shorter on a busy machine).
    assert!(
        secs >= 1.65,
        "paced run took only {secs:.3} s: {}",
        out.stderr
    );
    let unpaced = std::time::Instant::now();
    run_ok(&["train", "--steps", "12", "--quiet"]);
    assert!(
        unpaced.elapsed().as_secs_f64() < secs,
        "pacing made no difference"
    );
    let bad = ["train", "--paced", "--no-monitor"];
    assert_clean_error(&run_cli(&bad), &bad);
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
