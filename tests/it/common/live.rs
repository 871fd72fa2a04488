//! Live-coding peers (sclang, Sonic Pi's server) as processes: their output lines, the
//! shipped OSC mappings pointed at a test's port, the `--monitor` lines of a replay as OSC
//! messages, and `jack_capture` of a JACK dummy server's speakers.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::peers::{wait_for, Jack, Proc};
use sonograd::event::{DiagnosisKind, Event};

/// The lines a child writes to stdout and stderr, collected as they come.
#[derive(Clone, Default)]
pub struct Lines(pub Arc<Mutex<Vec<String>>>);

impl Lines {
    pub fn snapshot(&self) -> Vec<String> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn any(&self, f: impl Fn(&str) -> bool) -> bool {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .any(|l| f(l))
    }

    /// Waits until a line satisfies `f`.
    pub fn wait(&self, timeout: Duration, f: impl Fn(&str) -> bool) -> bool {
        wait_for(timeout, || self.any(&f))
    }

    /// All lines, for a failure message (the last `n`).
    pub fn tail(&self, n: usize) -> String {
        let all = self.snapshot();
        all[all.len().saturating_sub(n)..].join("\n")
    }
}

/// Spawns `cmd` with stdout and stderr collected into [`Lines`] (stdin closed).
pub fn spawn_lines(mut cmd: Command) -> (Proc, Lines) {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
    let lines = Lines::default();
    let out = child.stdout.take().unwrap();
    let err = child.stderr.take().unwrap();
    for pipe in [
        Box::new(out) as Box<dyn std::io::Read + Send>,
        Box::new(err) as Box<dyn std::io::Read + Send>,
    ] {
        let sink = lines.clone();
        std::thread::spawn(move || {
            for l in BufReader::new(pipe).lines().map_while(Result::ok) {
                sink.0.lock().unwrap_or_else(|e| e.into_inner()).push(l);
            }
        });
    }
    (Proc(child), lines)
}

/// Writes config/NAME with `from` replaced by `to` (e.g. the port) into `dir`; its path.
pub fn mapping_file(dir: &Path, name: &str, from: &str, to: &str) -> PathBuf {
    let path = format!("{}/config/{name}", env!("CARGO_MANIFEST_DIR"));
    let src = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    assert!(src.contains(from), "{name} has no {from:?}");
    let out = dir.join(name);
    std::fs::write(&out, src.replace(from, to)).unwrap();
    out
}

/// An OSC message as the tests compare it: the address and its arguments as text (strings
/// without quotes).
pub type OscText = (String, Vec<String>);

/// The OSC messages of `--monitor` lines ("  0.100s step 1 loss  sc /sonograd/loss 550 1
/// <- loss = 1"), in order.
pub fn monitor_osc(stdout: &str) -> Vec<OscText> {
    stdout
        .lines()
        .filter_map(|line| {
            let body = line.split("  <- ").next()?;
            let at = body.find(" /")?;
            let mut words = body[at + 1..].split(' ');
            let addr = words.next()?.to_string();
            let args = words
                .map(|w| w.trim_matches('"').to_string())
                .collect::<Vec<_>>();
            Some((addr, args))
        })
        .collect()
}

/// Whether two argument lists agree: numbers within float32 precision, text exactly.
pub fn same_args(a: &[String], b: &[String]) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|(x, y)| match (x.parse::<f64>(), y.parse::<f64>()) {
                (Ok(x), Ok(y)) => (x - y).abs() <= 1e-4 * y.abs().max(1.0),
                _ => x == y,
            })
}

/// Compares what a peer received with what the monitor said was sent: for every address,
/// the same messages in the same order. Returns the problems (empty: they agree).
pub fn compare_by_address(sent: &[OscText], received: &[OscText]) -> Vec<String> {
    use std::collections::BTreeMap;
    let group = |m: &[OscText]| {
        let mut g: BTreeMap<String, Vec<Vec<String>>> = BTreeMap::new();
        for (a, args) in m {
            g.entry(a.clone()).or_default().push(args.clone());
        }
        g
    };
    let (s, r) = (group(sent), group(received));
    let mut problems = Vec::new();
    for addr in s
        .keys()
        .chain(r.keys())
        .collect::<std::collections::BTreeSet<_>>()
    {
        let (a, b) = (
            s.get(addr).map_or(&[][..], |v| v),
            r.get(addr).map_or(&[][..], |v| v),
        );
        if a.len() != b.len() {
            problems.push(format!(
                "{addr}: {} sent, {} received (first sent {:?}, first received {:?})",
                a.len(),
                b.len(),
                a.first(),
                b.first()
            ));
            continue;
        }
        if let Some((x, y)) = a.iter().zip(b).find(|(x, y)| !same_args(x, y)) {
            problems.push(format!("{addr}: sent {x:?}, received {y:?}"));
        }
    }
    problems
}

/// `jack_capture` of `system:playback*` for `secs` seconds into `wav`; waits until it writes.
pub fn capture(jack: &Jack, wav: &Path, secs: f64) -> Proc {
    let p = Proc(
        jack.command("jack_capture")
            .args([
                "-d",
                &format!("{secs:.1}"),
                "--daemon",
                "-b",
                "16",
                "--port",
                "system:playback*",
                wav.to_str().unwrap(),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start jack_capture"),
    );
    let started = wait_for(Duration::from_secs(10), || {
        std::fs::metadata(wav).is_ok_and(|m| m.len() > 0)
    });
    assert!(
        started,
        "jack_capture did not start writing {}",
        wav.display()
    );
    p
}

/// Waits for a `jack_capture` started by [`capture`] to finish its seconds.
pub fn finish_capture(mut p: Proc, wav: &Path, timeout: Duration) {
    let done = wait_for(timeout, || p.0.try_wait().is_ok_and(|s| s.is_some()));
    assert!(done, "jack_capture did not finish {}", wav.display());
}

/// Energy of `x` within `rel` (a fraction) of `hz`.
pub fn energy_near(x: &[f32], sr: u32, hz: f64, rel: f64) -> f64 {
    super::audio::band_energy(x, sr, hz * (1.0 - rel), hz * (1.0 + rel))
}

/// The samples from `from` to `to` seconds (clamped to the recording).
pub fn seconds(x: &[f32], sr: u32, from: f64, to: f64) -> &[f32] {
    let at = |s: f64| ((s.max(0.0) * sr as f64) as usize).min(x.len());
    &x[at(from)..at(to)]
}

/// Frequency of MIDI note `n` in Hz.
pub fn midi_hz(n: f64) -> f64 {
    440.0 * 2f64.powf((n - 69.0) / 12.0)
}

// --- A recording for the live peers ---------------------------------------------------------

pub const STEPS: u64 = 120;
pub const HALF: u64 = 60;
pub const NAN_STEP: u64 = 116;
pub const STEP_MS: f64 = 50.0;

/// A run of [`STEPS`] steps ([`STEP_MS`] apart) in two halves: loss 0.5 then 3.2 (a spike the
/// detector names: `loss_spike`), every layer's (fc1..fc3) gradient norm √10 higher in the
/// second half, update ratios every 10 steps, an epoch end at step 1, a total norm of 500 on
/// steps 100 and 101, and a NaN in fc2's gradient at step [`NAN_STEP`] (`non_finite`).
pub fn write_two_halves(path: &Path) {
    let layers = ["fc1", "fc2", "fc3"];
    let mut ev = vec![super::run_start(0, &layers)];
    for s in 0..STEPS {
        let t = s as f64 * STEP_MS / 1000.0;
        let jitter = 1.0 + 0.004 * (s as f64 * 1.7).sin();
        let high = s >= HALF;
        let mut step: Vec<Event> = Vec::new();
        for (i, l) in layers.iter().enumerate() {
            let v = if s == NAN_STEP && i == 1 {
                f64::NAN
            } else {
                10f64.powf(i as f64 * 0.5 - 1.0) * if high { 10f64.sqrt() } else { 1.0 } * jitter
            };
            step.push(super::grad(s, l, Some(i as u32), v));
            if s % 10 == 0 {
                step.push(super::ratio(s, l, i as u32, 1e-3));
            }
        }
        if s == NAN_STEP {
            step.push(super::nan_grad(s, "fc2", 1));
        }
        step.push(super::loss(s, if high { 3.2 } else { 0.5 } * jitter));
        // The total norm: over 100 on two steps (Sonic Pi's explosion cue; two steps are not
        // the detector's sustained `exploding`).
        let total = if s == 100 || s == 101 {
            500.0
        } else {
            0.6 * jitter
        };
        step.push(super::total(s, total));
        if s == 1 {
            step.push(super::epoch_end(s, 0));
        }
        for mut e in step {
            e.time = t;
            ev.push(e);
        }
    }
    write_events(path, &ev);
}

pub fn write_events(path: &Path, ev: &[Event]) {
    let text: String = ev.iter().map(|e| e.to_json_line() + "\n").collect();
    std::fs::write(path, text).unwrap();
}

/// The chord of each diagnosis kind in sonograd.scd and sonograd.rb (config/default.toml's).
pub const CHORDS: [(DiagnosisKind, [f64; 2]); 8] = [
    (DiagnosisKind::Exploding, [1760.0, 2489.02]),
    (DiagnosisKind::Vanishing, [65.41, 98.0]),
    (DiagnosisKind::NonFinite, [440.0, 466.16]),
    (DiagnosisKind::Plateau, [196.0, 392.0]),
    (DiagnosisKind::Oscillation, [330.0, 336.0]),
    (DiagnosisKind::DeadLayer, [110.0, 130.81]),
    (DiagnosisKind::LossSpike, [1046.5, 1318.51]),
    (DiagnosisKind::Stall, [146.83, 207.65]),
];

/// The step of the `i`th kind's diagnosis in [`write_diagnoses`].
pub fn diagnosis_step(i: usize) -> u64 {
    10 + 20 * i as u64
}

/// Writes a recording that carries its own diagnoses (as a foreign trainer's detector
/// would: `replay` routes them as they are), one of each kind of [`CHORDS`] in fc2 every 20
/// steps from step 10, [`STEP_MS`] a step, and a loss at the end; returns the last step.
pub fn write_diagnoses(path: &Path) -> u64 {
    let mut ev = vec![super::run_start(0, &["fc1", "fc2"])];
    for (i, (kind, _)) in CHORDS.iter().enumerate() {
        let mut d = super::diagnosis(diagnosis_step(i), *kind, &["fc2"]);
        d.time = d.step as f64 * STEP_MS / 1000.0;
        ev.push(d);
    }
    let last = diagnosis_step(CHORDS.len());
    let mut e = super::loss(last, 1.0);
    e.time = last as f64 * STEP_MS / 1000.0;
    ev.push(e);
    write_events(path, &ev);
    last
}

/// Asserts that a capture of [`write_diagnoses`]' replay plays each kind as its own chord,
/// without trusting the wall clock to place them (a busy machine delays a capture's start
/// and a paced replay): in 0.25 s windows every 50 ms, each kind's two tones (energy above
/// their median over the capture, the background) peak somewhere; at its peak they carry
/// more than 3 times the energy of any other kind's tones, and the peaks come in the
/// recording's order, about 20 steps apart.
pub fn assert_chords(x: &[f32], sr: u32) {
    let win = (0.25 * sr as f64) as usize;
    let hop = (0.05 * sr as f64) as usize;
    let n = 16384usize.max(win.next_power_of_two());
    let hz_per_bin = sr as f64 / n as f64;
    // scores[frame][kind]: the energy of the kind's two tones (±1 %, at least ±5 Hz).
    let mut scores: Vec<[f64; 8]> = Vec::new();
    let mut at = 0;
    while at + win <= x.len() {
        let spec = super::audio::spectrum(&x[at..at + win], n);
        let mut row = [0.0; 8];
        for (k, (_, chord)) in CHORDS.iter().enumerate() {
            for hz in chord {
                let half = (hz * 0.01).max(5.0);
                let (lo, hi) = (
                    ((hz - half) / hz_per_bin).ceil() as usize,
                    ((hz + half) / hz_per_bin).floor() as usize,
                );
                row[k] += spec[lo..=hi.min(spec.len() - 1)]
                    .iter()
                    .map(|v| v * v)
                    .sum::<f64>();
            }
        }
        scores.push(row);
        at += hop;
    }
    assert!(
        scores.len() > 20,
        "the capture is too short ({} frames)",
        scores.len()
    );
    let background: Vec<f64> = (0..8)
        .map(|k| {
            let mut v: Vec<f64> = scores.iter().map(|r| r[k]).collect();
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        })
        .collect();
    let above = |f: usize, k: usize| (scores[f][k] - background[k]).max(0.0);
    let mut worst = f64::INFINITY;
    let mut peaks = Vec::new();
    for (k, (kind, _)) in CHORDS.iter().enumerate() {
        let peak = (0..scores.len())
            .max_by(|&a, &b| above(a, k).total_cmp(&above(b, k)))
            .unwrap();
        let own = above(peak, k);
        assert!(own > 0.0, "{kind}: its chord never sounds");
        for (j, (other, _)) in CHORDS.iter().enumerate().filter(|(j, _)| *j != k) {
            let theirs = above(peak, j);
            worst = worst.min(own / theirs);
            assert!(
                own > 3.0 * theirs,
                "{kind} at {:.2} s: its chord {own:.3e}, {other}'s {theirs:.3e}",
                peak as f64 * 0.05
            );
        }
        peaks.push(peak as f64 * 0.05);
    }
    let gap = (diagnosis_step(1) - diagnosis_step(0)) as f64 * STEP_MS / 1000.0;
    for (i, w) in peaks.windows(2).enumerate() {
        let d = w[1] - w[0];
        assert!(
            d > 0.5 * gap && d < 1.5 * gap,
            "{} then {}: {d:.2} s apart, expected about {gap} s (peaks {peaks:.2?})",
            CHORDS[i].0,
            CHORDS[i + 1].0
        );
    }
    eprintln!(
        "each chord against the loudest other kind's: at least {worst:.1}x; peaks {peaks:.2?} s"
    );
}
