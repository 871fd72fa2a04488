//! The live path for real: a JACK dummy server, cpal's JACK host, `jack_capture` recording
//! what reached `system:playback`, and a pitch-contour check of the capture. The audio
//! callback runs under the forbidding allocator the whole time.

#[path = "it/common/mod.rs"]
mod common;
mod rt_alloc;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use sonograd::message::{Action, Message};
use sonograd::route::Router;
use sonograd::source::step_pace::StepPacer;
use sonograd::synth::live::{LiveError, LiveOptions, SynthOutput};

#[global_allocator]
static GLOBAL: rt_alloc::Counting = rt_alloc::Counting;

#[test]
fn unknown_device_suggests_wav() {
    // cpal's JACK host reads the environment that start_jack sets.
    let _guard = lock(&JACK_LOCK);
    let opts = LiveOptions {
        device: Some("no-such-device-7f3a".into()),
        ..LiveOptions::default()
    };
    let err = SynthOutput::open(&default_mapping(), &opts)
        .err()
        .expect("must fail");
    assert!(matches!(err, LiveError::UnknownDevice { .. }), "{err}");
    assert!(err.to_string().contains("--wav FILE"), "{err}");
    let none = LiveError::NoDevice {
        tried: "alsa:default: no card".into(),
    };
    assert!(none.to_string().contains("--wav FILE"));
}

/// Held by the tests of this binary that use JACK: cpal's JACK host runs in this process and
/// reads the environment that `start_jack` sets.
static JACK_LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Starts the JACK dummy server of these tests (48 kHz, 256 frames) for this process and its
/// children, or returns None (after a note; a failure under CI) when JACK's tools are missing.
fn start_jack() -> Option<(std::sync::MutexGuard<'static, ()>, Jack)> {
    if !require_peers(&["jackd", "jack_wait", "jack_capture"]) {
        return None;
    }
    let guard = lock(&JACK_LOCK);
    let jack = Jack::start("synth-live");
    jack.set_process_env();
    Some((guard, jack))
}

/// Records `system:playback` for `secs` seconds into `wav` (in the background).
fn start_capture(jack: &Jack, wav: &std::path::Path, secs: u32) -> Proc {
    let capture = jack
        .command("jack_capture")
        .args([
            "-d",
            &secs.to_string(),
            "--daemon",
            "-b",
            "16",
            "--port",
            "system:playback*",
        ])
        .arg(wav)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start jack_capture");
    std::thread::sleep(Duration::from_millis(400));
    Proc(capture)
}

/// The pitch of every 60 ms window of the capture that has sound.
fn captured_contour(wav: &std::path::Path) -> Vec<f64> {
    let (sr, l, r) = read_wav(wav);
    let m = mono(&l, &r);
    let win = (sr as usize) * 60 / 1000;
    let mut contour: Vec<f64> = Vec::new();
    for w in m.chunks(win) {
        if w.len() == win && rms(w) > 0.02 {
            contour.push(peak_hz(w, sr));
        }
    }
    contour
}

/// The captured contour holds the sent pitches, in rising order.
fn assert_contour_follows(contour: &[f64], expected: &[f64]) {
    println!("expected {expected:?}\ncontour {contour:?}");
    assert!(
        contour.len() >= 15,
        "too little sound captured: {contour:?}"
    );
    // Windows that straddle a note change, or hold a note's glide-in or release, may peak in
    // between; the others must be sent pitches (within a quarter tone: a 60 ms window
    // resolves a low note no better), and every sent pitch must be heard.
    let near = |p: f64, e: f64| (p - e).abs() < 0.029 * e;
    let heard: Vec<Option<f64>> = contour
        .iter()
        .map(|p| expected.iter().copied().find(|e| near(*p, *e)))
        .collect();
    let matched = heard.iter().flatten().count();
    assert!(
        matched * 10 >= contour.len() * 7,
        "{matched} of {} windows match: {contour:?}",
        contour.len()
    );
    for e in expected {
        assert!(
            heard.contains(&Some(*e)),
            "sent {e} Hz never heard: {contour:?}"
        );
    }
    // The sent pitches are heard in the order sent: rising, never back down.
    let order: Vec<f64> = heard.iter().flatten().copied().collect();
    assert!(
        order.windows(2).all(|w| w[1] >= w[0]),
        "heard out of order: {contour:?}"
    );
    let (lo, hi) = expected
        .iter()
        .fold((f64::MAX, 0f64), |(lo, hi), e| (lo.min(*e), hi.max(*e)));
    assert!(hi > lo * 3.0, "sent {expected:?}");
}

/// Ten steps of one layer, norm rising 1e-3 → 1e3.
fn rising_steps() -> Vec<Vec<sonograd::event::Event>> {
    (0..10u64)
        .map(|s| grad_step(s, &[10f64.powf(-3.0 + 6.0 * s as f64 / 9.0)]))
        .collect()
}

#[test]
fn jack_dummy_plays_the_pitch_contour() {
    let Some((_guard, server)) = start_jack() else {
        return;
    };

    let hosts = sonograd::synth::live::list_devices();
    let jack = hosts
        .iter()
        .find(|h| h.host == "JACK")
        .expect("JACK host listed");
    let devs = jack.devices.as_ref().expect("JACK devices listed");
    assert!(devs.iter().any(|d| d.id == "jack:output"), "{hosts:?}");

    let mapping = default_mapping();
    let opts = LiveOptions {
        device: Some("jack:output".into()),
        buffer_frames: 256,
        rt_hook: Some(rt_alloc::forbid),
        ..LiveOptions::default()
    };
    let mut out = SynthOutput::open(&mapping, &opts).expect("open JACK output");
    assert_eq!(out.info().granted_frames, Some(256));
    assert_eq!(out.info().sample_rate, 48_000);

    let dir = tempfile::tempdir().unwrap();
    let wav = dir.path().join("capture.wav");
    let mut capture = start_capture(&server, &wav, 3);

    // Ten paced steps of 150 ms, one layer, norm rising 1e-3 → 1e3.
    let mut router = Router::new(&mapping);
    let mut msgs: Vec<Message> = Vec::new();
    let mut pacer = StepPacer::new(150.0);
    let mut expected = Vec::new();
    let t0 = Instant::now();
    for (s, events) in rising_steps().into_iter().enumerate() {
        pacer.wait_for_step(s as u64);
        let now = t0.elapsed().as_secs_f64();
        router.tick(now, &mut msgs);
        for e in events {
            router.route(now, &e, &mut msgs);
        }
        for m in msgs.drain(..) {
            if let Action::Synth { value, .. } = m.action {
                expected.push(value);
            }
            assert!(out.send(&m));
        }
    }
    std::thread::sleep(Duration::from_millis(600));
    // More hand-overs for the latency figures: 400 amp changes at irregular times.
    let amp = msgs_for_amp(&mapping);
    for i in 0..400u64 {
        assert!(out.send(&amp));
        std::thread::sleep(Duration::from_micros(900 + (i * 7919) % 2000));
    }
    let report = out.close();
    let status = capture.0.wait().expect("jack_capture");
    assert!(status.success());

    println!("live report: {report:?}");
    assert!(report.callbacks > 100, "{report:?}");
    assert_eq!(report.sent, 410);
    assert_eq!(report.dropped, 0);
    let (p50, p99, _) = report.latency_ms.expect("latencies recorded");
    let period_ms = 256.0 / 48.0;
    println!("hand-over latency p50 {p50:.2} ms, p99 {p99:.2} ms (one buffer = {period_ms:.2} ms)");
    assert!(p50 <= period_ms + 2.0, "p50 {p50} ms");
    assert_eq!(rt_alloc::violations(), 0, "the audio callback allocated");

    assert_contour_follows(&captured_contour(&wav), &expected);
}

/// `sonograd replay --paced` plays through the JACK device by itself: the CLI opens the
/// built-in synth, reports the device and buffer sizes, and what it plays follows the norms.
#[test]
fn cli_replay_plays_live_through_jack() {
    let Some((_guard, server)) = start_jack() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let recording = dir.path().join("rising.jsonl");
    let mapping = default_mapping();
    let mut router = Router::new(&mapping);
    let mut msgs: Vec<Message> = Vec::new();
    let mut lines = String::new();
    for e in rising_steps().into_iter().flatten() {
        lines.push_str(&e.to_json_line());
        lines.push('\n');
        router.route(e.time, &e, &mut msgs);
    }
    std::fs::write(&recording, lines).unwrap();
    let expected: Vec<f64> = msgs
        .iter()
        .filter_map(|m| match m.action {
            Action::Synth { value, .. } => Some(value),
            _ => None,
        })
        .collect();
    assert_eq!(expected.len(), 10, "{msgs:?}");

    let wav = dir.path().join("capture.wav");
    let mut capture = start_capture(&server, &wav, 4);
    let out = Command::new(env!("CARGO_BIN_EXE_sonograd"))
        .args([
            "replay",
            "--paced",
            "--step-ms",
            "150",
            "--audio-device",
            "jack:output",
            "--verbose",
            // The rising norm is diagnosed as exploding, and its motif would cover a step:
            // this test follows the pitch of the norm alone.
            "--no-diagnose",
        ])
        .arg(&recording)
        .env("JACK_DEFAULT_SERVER", &server.name)
        .env_remove("SONOGRAD_NO_AUDIO")
        .stdin(Stdio::null())
        .output()
        .expect("run sonograd");
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stderr}");
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("audio: jack:output at 48000 Hz, buffer 256 frames requested, 256 granted"),
        "{stderr}"
    );
    let report = stderr
        .lines()
        .find(|l| l.contains("callbacks on jack:output"))
        .unwrap_or_else(|| panic!("no audio report: {stderr}"));
    assert!(report.contains("underruns"), "{report}");
    assert!(report.contains("hand-over latency p50"), "{report}");
    assert!(capture.0.wait().expect("jack_capture").success());
    assert_contour_follows(&captured_contour(&wav), &expected);
}

/// An `amp` message for voice 0 of the mapping's synth output.
fn msgs_for_amp(mapping: &sonograd::mapping::Mapping) -> Message {
    use sonograd::mapping::schema::{Metric, SynthParam};
    Message {
        time: 0.0,
        step: 0,
        epoch: 0,
        route: 0,
        output: mapping.output_by_name("synth").unwrap(),
        metric: Metric::Loss,
        layer: None,
        raw: 0.0,
        level: 0.5,
        alarm: false,
        action: Action::Synth {
            voice: 0,
            param: SynthParam::Amp,
            value: 0.5,
            pan: None,
        },
    }
}
