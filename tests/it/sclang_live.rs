//! SuperCollider's language for real: `sclang` runs `patches/supercollider/sonograd.scd`
//! headless (`QT_QPA_PLATFORM=offscreen`; as root Qt WebEngine also wants its sandbox off),
//! boots scsynth on a JACK dummy server, and `sonograd replay --mapping
//! config/supercollider.toml` plays it:
//! - every message the replay's `--monitor` shows reaches its handler (the file's `verbose`
//!   word makes each handler post what it received), for every kind of address: grad, loss,
//!   ratio, epoch, the NaN alarm and the diagnoses the detector found in the recording
//!   (`non_finite`, `loss_spike`);
//! - `jack_capture` of scsynth's output sounds, and its pitch follows the run: the loss drone
//!   and each layer's notes sit where the mapping puts them, first low, then high;
//! - a recording that carries every diagnosis kind (as a foreign trainer's would) plays
//!   each kind's own chord, told apart in the captured audio.
//!
//! And the compiled `.scsyndef` files cannot drift from their source: sclang rebuilds them
//! from the `.scd` (`sclang sonograd.scd write`) and they must be byte-equal to the shipped
//! ones (SuperCollider 3.13 writes the same bytes for the same SynthDef: no normalisation).

use crate::common;
use crate::common::live::{self, OscText};

use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const PEERS: &[&str] = &["sclang", "jackd", "jack_wait", "jack_capture", "scsynth"];

fn patch_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("patches/supercollider")
}

/// `sclang` headless: no display, and (as root) no Chromium sandbox for Qt WebEngine.
fn sclang() -> Command {
    let mut cmd = Command::new("sclang");
    sclang_env(&mut cmd);
    cmd
}

fn sclang_env(cmd: &mut Command) {
    cmd.env("QT_QPA_PLATFORM", "offscreen")
        .env("QTWEBENGINE_CHROMIUM_FLAGS", "--no-sandbox")
        .env("QTWEBENGINE_DISABLE_SANDBOX", "1");
}

#[test]
fn sclang_rebuilds_the_shipped_synthdefs_byte_for_byte() {
    if !common::require_peers(&["sclang"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let scd = dir.path().join("sonograd.scd");
    std::fs::copy(patch_dir().join("sonograd.scd"), &scd).unwrap();
    let (mut p, lines) = live::spawn_lines({
        let mut c = sclang();
        c.arg(&scd).arg("write").current_dir(dir.path());
        c
    });
    let done = common::wait_for(Duration::from_secs(60), || {
        p.0.try_wait().is_ok_and(|s| s.is_some())
    });
    assert!(done, "sclang write did not exit:\n{}", lines.tail(30));
    let mut shipped: Vec<String> = std::fs::read_dir(patch_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".scsyndef"))
        .collect();
    shipped.sort();
    let mut built: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".scsyndef"))
        .collect();
    built.sort();
    assert_eq!(
        built,
        shipped,
        "the .scd defines other SynthDefs than the shipped files:\n{}",
        lines.tail(30)
    );
    for name in &shipped {
        let a = std::fs::read(patch_dir().join(name)).unwrap();
        let b = std::fs::read(dir.path().join(name)).unwrap();
        assert!(
            a == b,
            "{name}: the shipped file ({} bytes) differs from what sclang compiles from \
             sonograd.scd ({} bytes): run `sclang sonograd.scd write` in patches/supercollider",
            a.len(),
            b.len()
        );
    }
}

/// sclang with the patch loaded and scsynth booted on `jack`, quit on drop.
struct Sclang {
    lines: live::Lines,
    lang_port: u16,
    server_port: u16,
    proc: Option<common::Proc>,
}

impl Sclang {
    fn start(jack: &common::Jack) -> Sclang {
        let (lang_port, server_port) = (common::free_udp_port(), common::free_udp_port());
        let mut cmd = jack.command("sclang");
        sclang_env(&mut cmd);
        cmd.args(["-u", &lang_port.to_string()])
            .arg(patch_dir().join("sonograd.scd"))
            .args(["verbose", &format!("server={server_port}")])
            .env(
                "SC_JACK_DEFAULT_OUTPUTS",
                "system:playback_1,system:playback_2",
            );
        let (proc, lines) = live::spawn_lines(cmd);
        let sc = Sclang {
            lines,
            lang_port,
            server_port,
            proc: Some(proc),
        };
        let up = sc.lines.wait(Duration::from_secs(60), |l| {
            l.starts_with("sonograd: listening on")
        });
        assert!(
            up,
            "sclang did not boot scsynth and load the patch:\n{}",
            sc.lines.tail(40)
        );
        sc
    }

    /// What the handlers posted (`verbose`): "sonograd: [ /sonograd/loss, 212.5, 0.5 ]".
    fn received(&self) -> Vec<OscText> {
        self.lines
            .snapshot()
            .iter()
            .filter_map(|l| {
                let inner = l.strip_prefix("sonograd: [ ")?.strip_suffix(" ]")?;
                let mut words = inner.split(", ").map(str::to_string);
                let addr = words.next()?;
                Some((addr, words.collect()))
            })
            .collect()
    }
}

impl Drop for Sclang {
    fn drop(&mut self) {
        // scsynth is sclang's child and outlives it: quit it first.
        if let Ok(sock) = UdpSocket::bind("127.0.0.1:0") {
            let quit = rosc::encoder::encode(&rosc::OscPacket::Message(rosc::OscMessage {
                addr: "/quit".into(),
                args: vec![],
            }))
            .unwrap();
            let _ = sock.send_to(&quit, ("127.0.0.1", self.server_port));
        }
        std::thread::sleep(Duration::from_millis(300));
        self.proc.take();
    }
}

const STEPS: u64 = live::STEPS;
const STEP_MS: f64 = live::STEP_MS;
const HALF: u64 = live::HALF;

/// Replays `rec` paced at `step_ms` through `mapping` with `--monitor`; the monitor's OSC
/// messages and the instant the replay started.
fn replay(rec: &Path, mapping: &Path, step_ms: f64) -> (Vec<OscText>, Instant) {
    let started = Instant::now();
    let args = [
        "replay",
        rec.to_str().unwrap(),
        "--mapping",
        mapping.to_str().unwrap(),
        "--monitor",
        "--quiet",
        "--step-ms",
        &step_ms.to_string(),
    ];
    let out = common::run_ok(&args);
    (live::monitor_osc(&out.stdout), started)
}

/// Waits until sclang's handlers posted at least `n` messages; what they posted.
fn wait_received(sc: &Sclang, n: usize) -> Vec<OscText> {
    common::wait_for(Duration::from_secs(15), || sc.received().len() >= n);
    sc.received()
}

fn assert_same(sent: &[OscText], got: &[OscText], sc: &Sclang) {
    let problems = live::compare_by_address(sent, got);
    assert!(
        problems.is_empty(),
        "sclang's handlers did not receive what the monitor shows:\n{}\nsclang:\n{}",
        problems.join("\n"),
        sc.lines.tail(20)
    );
}

#[test]
fn sclang_plays_every_message_and_its_pitch_follows_the_run() {
    if !common::require_peers(PEERS) {
        return;
    }
    let jack = common::Jack::start("sclang-live");
    let sc = Sclang::start(&jack);
    let dir = tempfile::tempdir().unwrap();
    let mapping = live::mapping_file(
        dir.path(),
        "supercollider.toml",
        "port = 57120",
        &format!("port = {}", sc.lang_port),
    );
    let rec = dir.path().join("run.jsonl");
    live::write_two_halves(&rec);

    let wav = dir.path().join("sclang.wav");
    let replay_secs = STEPS as f64 * STEP_MS / 1000.0;
    let cap = live::capture(&jack, &wav, replay_secs + 3.0);
    let cap_started = Instant::now();
    let (sent, replay_started) = replay(&rec, &mapping, STEP_MS);
    let offset = replay_started.duration_since(cap_started).as_secs_f64();

    // Every kind of address was sent, the detector's diagnoses included.
    for prefix in [
        "/sonograd/grad/fc1",
        "/sonograd/grad/fc3",
        "/sonograd/loss",
        "/sonograd/ratio/fc2",
        "/sonograd/epoch",
        "/sonograd/alarm",
        "/sonograd/diagnosis/non_finite",
        "/sonograd/diagnosis/loss_spike",
    ] {
        assert!(
            sent.iter().any(|(a, _)| a == prefix),
            "the replay sent no {prefix}: {:?}",
            sent.iter()
                .map(|(a, _)| a)
                .collect::<std::collections::BTreeSet<_>>()
        );
    }
    let got = wait_received(&sc, sent.len());
    assert_same(&sent, &got, &sc);
    assert!(
        sc.lines
            .any(|l| l.starts_with(&format!("sonograd alarm: fc2 at step {}", live::NAN_STEP))),
        "no alarm post:\n{}",
        sc.lines.tail(20)
    );
    assert!(
        sc.lines
            .any(|l| l.starts_with("sonograd diagnosis: loss_spike")),
        "no loss_spike post:\n{}",
        sc.lines.tail(20)
    );

    live::finish_capture(cap, &wav, Duration::from_secs(15));
    let (sr, l, r) = common::read_wav(&wav);
    let x = common::mono(&l, &r);
    let peak = x.iter().fold(0f32, |m, s| m.max(s.abs()));
    assert!(peak > 0.01, "captured audio is silent (peak {peak})");

    // Where the second half starts sounding, found in the audio (a busy machine delays the
    // capture's start and the paced replay, so the wall clock only bounds it): the first
    // 0.2 s window, of windows every 50 ms, from which on the drone sits at 820 Hz rather
    // than 212.5 Hz for half a second.
    let e = |w: &[f32], hz: f64| live::energy_near(w, sr, hz, 0.02);
    let frame = |i: usize| live::seconds(&x, sr, i as f64 * 0.05, i as f64 * 0.05 + 0.2);
    let frames = x.len() / (sr as usize / 20);
    let high: Vec<bool> = (0..frames)
        .map(|i| e(frame(i), 820.0) > 4.0 * e(frame(i), 212.5))
        .collect();
    let change = (0..frames.saturating_sub(10))
        .find(|&i| high[i..i + 10].iter().all(|h| *h))
        .map(|i| i as f64 * 0.05 + 0.1)
        .unwrap_or_else(|| panic!("the drone never moved to 820 Hz for 0.5 s"));
    let expected = offset + HALF as f64 * STEP_MS / 1000.0;
    assert!(
        change > expected - 1.0 && change < expected + 3.0,
        "the second half sounds from {change:.2} s, the clock says about {expected:.2} s"
    );
    // Steps 20..50 and 80..110, 0.5 s clear of the change, the epoch's bell and the alarms.
    let secs = |steps: f64| steps * STEP_MS / 1000.0;
    let early = live::seconds(&x, sr, change - secs(40.0), change - secs(10.0));
    let late = live::seconds(&x, sr, change + secs(20.0), change + secs(50.0));
    // Drone: loss 0.5 -> 212.5 Hz, 3.2 -> 820 Hz (range 100..1000 over [0, 4]). Notes:
    // midi 40 + 10·layer + 36·level, level 0.5 at the anchor, 0.75 a factor √10 above it.
    let note = |layer: f64, level: f64| live::midi_hz(40.0 + 10.0 * layer + 36.0 * level);
    let lows = [212.5, note(0.0, 0.5), note(1.0, 0.5), note(2.0, 0.5)];
    let highs = [820.0, note(0.0, 0.75), note(1.0, 0.75), note(2.0, 0.75)];
    for hz in lows {
        let (a, b) = (e(early, hz), e(late, hz));
        assert!(
            a > 3.0 * b,
            "{hz:.1} Hz: energy {a:.3e} in the first half, {b:.3e} in the second (change at {change:.2} s)"
        );
    }
    for hz in highs {
        let (a, b) = (e(early, hz), e(late, hz));
        assert!(
            b > 3.0 * a,
            "{hz:.1} Hz: energy {a:.3e} in the first half, {b:.3e} in the second (change at {change:.2} s)"
        );
    }
}

#[test]
fn sclang_plays_each_diagnosis_as_its_own_chord() {
    if !common::require_peers(PEERS) {
        return;
    }
    let jack = common::Jack::start("sclang-diag");
    let sc = Sclang::start(&jack);
    let dir = tempfile::tempdir().unwrap();
    let mapping = live::mapping_file(
        dir.path(),
        "supercollider.toml",
        "port = 57120",
        &format!("port = {}", sc.lang_port),
    );
    let rec = dir.path().join("diagnoses.jsonl");
    let last = live::write_diagnoses(&rec);

    let wav = dir.path().join("diag.wav");
    let cap = live::capture(&jack, &wav, last as f64 * STEP_MS / 1000.0 + 2.0);
    let (sent, _) = replay(&rec, &mapping, STEP_MS);
    for (kind, _) in live::CHORDS {
        let addr = format!("/sonograd/diagnosis/{}", kind.name());
        assert!(
            sent.iter().any(|(a, _)| *a == addr),
            "the replay sent no {addr}"
        );
    }
    let got = wait_received(&sc, sent.len());
    assert_same(&sent, &got, &sc);
    for (kind, _) in live::CHORDS {
        let post = format!("sonograd diagnosis: {} in fc2 at step", kind.name());
        assert!(
            sc.lines.any(|l| l.starts_with(&post)),
            "no {post:?}:\n{}",
            sc.lines.tail(20)
        );
    }

    live::finish_capture(cap, &wav, Duration::from_secs(20));
    let (sr, l, r) = common::read_wav(&wav);
    live::assert_chords(&common::mono(&l, &r), sr);
}
