//! The integration tests' helpers, in one module: events and recordings, running the
//! `sonograd` binary, audio analysis ([`audio`]), the real peers and the locks between
//! tests of one process ([`peers`]), and `sonograd listen` as a process ([`listen`]).
//! The separate test binaries (tests/alloc, tests/midi_jack.rs) include it with `#[path]`.
#![allow(dead_code)]

pub mod audio;
pub mod listen;
pub mod live;
pub mod peers;

// Not every test binary that includes this module uses them all.
#[allow(unused_imports)]
pub use audio::*;
#[allow(unused_imports)]
pub use peers::*;

use sonograd::event::{Event, Layer, NonFiniteKind, Payload, Quantity, RunInfo};
use sonograd::mapping::{self, Mapping};
use sonograd::message::Message;
use sonograd::route::Router;

pub fn load(name: &str) -> Mapping {
    let path = format!("{}/config/{name}", env!("CARGO_MANIFEST_DIR"));
    mapping::check(&path).unwrap_or_else(|d| panic!("{d}"))
}

pub fn run_start(step: u64, layers: &[&str]) -> Event {
    let info = RunInfo {
        layers: layers.iter().map(|s| s.to_string()).collect(),
        ..RunInfo::default()
    };
    Event::new(
        step,
        0,
        0.0,
        Payload::RunStart {
            info: Box::new(info),
        },
    )
}

pub fn grad(step: u64, name: &str, index: Option<u32>, value: f64) -> Event {
    let layer = Layer {
        name: name.into(),
        index,
    };
    Event::new(step, 0, 0.0, Payload::GradNorm { layer, value })
}

pub fn ratio(step: u64, name: &str, index: u32, value: f64) -> Event {
    Event::new(
        step,
        0,
        0.0,
        Payload::UpdateRatio {
            layer: Layer::new(name, index),
            value,
        },
    )
}

pub fn loss(step: u64, value: f64) -> Event {
    Event::new(step, 0, 0.0, Payload::Loss { value })
}

pub fn lr(step: u64, value: f64) -> Event {
    Event::new(step, 0, 0.0, Payload::Lr { value })
}

pub fn total(step: u64, value: f64) -> Event {
    Event::new(step, 0, 0.0, Payload::TotalNorm { value })
}

pub fn nan_grad(step: u64, name: &str, index: u32) -> Event {
    let p = Payload::NonFinite {
        layer: Some(Layer::new(name, index)),
        quantity: Quantity::Grad,
        state: NonFiniteKind::Nan,
    };
    Event::new(step, 0, 0.0, p)
}

pub fn inf_loss(step: u64) -> Event {
    let p = Payload::NonFinite {
        layer: None,
        quantity: Quantity::Loss,
        state: NonFiniteKind::Inf,
    };
    Event::new(step, 0, 0.0, p)
}

pub fn epoch_end(step: u64, epoch: u32) -> Event {
    Event::new(step, epoch, 0.0, Payload::EpochEnd)
}

/// Routes one event at `now` and returns its messages.
pub fn feed(router: &mut Router, now: f64, e: &Event) -> Vec<Message> {
    let mut out = Vec::new();
    router.route(now, e, &mut out);
    out
}

pub fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-6 * b.abs().max(1.0)
}

// --- Running the `sonograd` binary -------------------------------------------------------

/// What a finished `sonograd` run left behind.
pub struct CliOutput {
    /// Exit code (`None` when a signal ended it).
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

/// A `sonograd` command with the given arguments (stdin closed, no live sound: tests that
/// play through an audio device ask for it themselves).
pub fn sonograd(args: &[&str]) -> std::process::Command {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_sonograd"));
    cmd.args(args)
        .stdin(std::process::Stdio::null())
        .env("SONOGRAD_NO_AUDIO", "1");
    cmd
}

/// Runs `sonograd` to the end and captures its output.
pub fn run_cli(args: &[&str]) -> CliOutput {
    let out = sonograd(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run sonograd {args:?}: {e}"));
    CliOutput {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Runs `sonograd` and insists on exit code 0.
pub fn run_ok(args: &[&str]) -> CliOutput {
    let out = run_cli(args);
    assert_eq!(
        out.code,
        Some(0),
        "sonograd {args:?} failed:\n{}",
        out.stderr
    );
    out
}

/// Asserts a failure the way the CLI promises it: exit code 2, exactly one `error:` line
/// (clap's usage errors add their usage block), and no panic or backtrace text.
pub fn assert_clean_error(out: &CliOutput, args: &[&str]) {
    assert_eq!(
        out.code,
        Some(2),
        "sonograd {args:?}: expected exit 2, got {:?}; stderr:\n{}",
        out.code,
        out.stderr
    );
    for bad in ["panicked", "RUST_BACKTRACE", "stack backtrace"] {
        assert!(
            !out.stderr.contains(bad),
            "sonograd {args:?}: {bad:?} in stderr:\n{}",
            out.stderr
        );
    }
    let errors = out
        .stderr
        .lines()
        .filter(|l| l.starts_with("error:"))
        .count();
    assert_eq!(
        errors, 1,
        "sonograd {args:?}: expected one `error:` line:\n{}",
        out.stderr
    );
}

/// The `error:` line of a failed run.
pub fn error_line(out: &CliOutput) -> &str {
    out.stderr
        .lines()
        .find(|l| l.starts_with("error:"))
        .unwrap_or_else(|| panic!("no `error:` line in:\n{}", out.stderr))
}

/// Every event of a recording; panics naming the line that does not parse.
pub fn read_events(path: &std::path::Path) -> Vec<Event> {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    parse_lines(&text, &path.display().to_string())
}

/// Parses JSON lines (blank lines skipped); panics naming the line that does not parse.
pub fn parse_lines(text: &str, what: &str) -> Vec<Event> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            Event::from_json_line(l).unwrap_or_else(|e| panic!("{what}:{}: {e}: {l}", i + 1))
        })
        .collect()
}

/// The event with its wall-clock time zeroed, for comparing runs.
pub fn without_time(e: &Event) -> Event {
    let mut e = e.clone();
    e.time = 0.0;
    e
}

/// The `run_end` reason of the last event, which must be a `run_end`.
pub fn end_reason(events: &[Event]) -> sonograd::event::EndReason {
    match events.last().map(|e| &e.payload) {
        Some(Payload::RunEnd { reason, .. }) => *reason,
        other => panic!("last event is not run_end: {other:?}"),
    }
}

/// Number of events of a kind.
pub fn count_kind(events: &[Event], kind: &str) -> usize {
    events.iter().filter(|e| e.payload.kind() == kind).count()
}

/// Events compare equal as values: NaN equals NaN (a diverged run's values are NaN).
pub fn same_event(a: &Event, b: &Event) -> bool {
    let (mut a, mut b) = (a.clone(), b.clone());
    match (a.payload.value(), b.payload.value()) {
        (Some(x), Some(y)) if x.is_nan() && y.is_nan() => {
            a.payload.set_value(0.0);
            b.payload.set_value(0.0);
        }
        _ => {}
    }
    a == b
}

/// The `.toml` files of a folder, sorted.
pub fn toml_files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files: Vec<std::path::PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    files
}

/// A diagnosis event of `kind` about `layers`.
pub fn diagnosis(step: u64, kind: sonograd::event::DiagnosisKind, layers: &[&str]) -> Event {
    Event::new(
        step,
        0,
        0.0,
        Payload::Diagnosis {
            diagnosis: kind,
            layers: layers.iter().map(|l| std::sync::Arc::from(*l)).collect(),
            reason: format!("{kind} (test)"),
        },
    )
}

// --- Recordings for `sonograd report` ----------------------------------------------------

/// Writes a recording of `steps` steps: three layers whose gradient norms grow, loss, lr;
/// from `nan_from` on (if given) fc1's gradient is NaN, with its `non_finite` event.
pub fn write_report_recording(path: &std::path::Path, steps: u64, nan_from: Option<u64>) {
    use std::io::Write;
    let mut out = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let layers = ["fc1", "fc2", "fc3"];
    writeln!(out, "{}", run_start(0, &layers).to_json_line()).unwrap();
    for s in 0..steps {
        let nan = nan_from.is_some_and(|n| s >= n);
        for (i, name) in layers.iter().enumerate() {
            let v = if nan && i == 0 {
                f64::NAN
            } else {
                10f64.powi(i as i32 - 1) * (1.0 + s as f64 * 0.1)
            };
            writeln!(out, "{}", grad(s, name, Some(i as u32), v).to_json_line()).unwrap();
        }
        if nan {
            writeln!(out, "{}", nan_grad(s, "fc1", 0).to_json_line()).unwrap();
        }
        writeln!(out, "{}", loss(s, 2.0 / (1.0 + s as f64)).to_json_line()).unwrap();
        writeln!(out, "{}", lr(s, 0.1).to_json_line()).unwrap();
    }
    out.flush().unwrap();
}

/// An attribute's value in an HTML text (`name="value"`, first occurrence).
pub fn html_attr<'a>(html: &'a str, name: &str) -> Option<&'a str> {
    let key = format!("{name}=\"");
    let start = html.find(&key)? + key.len();
    let len = html[start..].find('"')?;
    Some(&html[start..start + len])
}

/// Runs, checks the clean failure and that the `error:` line contains every needle.
pub fn fails_with(args: &[&str], needles: &[&str]) -> CliOutput {
    let out = run_cli(args);
    assert_clean_error(&out, args);
    let line = error_line(&out);
    for n in needles {
        assert!(
            line.contains(n),
            "sonograd {args:?}: expected {n:?} in the error line:\n{}",
            out.stderr
        );
    }
    out
}

// --- Events stamped with the step as their time (the render and live synth tests) -------

/// The shipped default mapping.
pub fn default_mapping() -> Mapping {
    load("default.toml")
}

/// Grad-norm events of layers `fc0`, `fc1`, ... (one per norm) for one step, at `step` s.
pub fn grad_step(step: u64, norms: &[f64]) -> Vec<Event> {
    norms
        .iter()
        .enumerate()
        .map(|(i, v)| {
            Event::new(
                step,
                0,
                step as f64,
                Payload::GradNorm {
                    layer: Layer::new(format!("fc{i}"), i as u32),
                    value: *v,
                },
            )
        })
        .collect()
}

/// A total-norm event at `step` s.
pub fn total_norm(step: u64, value: f64) -> Event {
    Event::new(step, 0, step as f64, Payload::TotalNorm { value })
}

/// A NaN-gradient event in layer `fc0`, at `step` s.
pub fn nan_event(step: u64) -> Event {
    let mut e = nan_grad(step, "fc0", 0);
    e.time = step as f64;
    e
}

// --- Recordings routed to the outputs ----------------------------------------------------

/// A shipped mapping (config/NAME) with `from` replaced by `to`.
pub fn config_with(name: &str, from: &str, to: &str) -> Mapping {
    let path = format!("{}/config/{name}", env!("CARGO_MANIFEST_DIR"));
    let src = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    assert!(src.contains(from), "{name} has no {from:?}");
    mapping::parse_str(&src.replace(from, to), name).unwrap_or_else(|d| panic!("{d}"))
}

/// Writes a small recording: `steps` steps of a 3-layer run whose gradient norms rise
/// (layer i: 10^(step/steps·4 − 2 + i/2)), a falling loss and an epoch end in the middle.
pub fn write_recording(path: &std::path::Path, steps: u64) {
    use std::io::Write;
    let mut f = std::fs::File::create(path).unwrap();
    let layers = ["fc1", "fc2", "fc3"];
    let mut lines = vec![run_start(0, &layers)];
    for step in 0..steps {
        let t = step as f64 * 0.1;
        for (i, l) in layers.iter().enumerate() {
            let value = 10f64.powf(step as f64 / steps as f64 * 4.0 - 2.0 + i as f64 / 2.0);
            let mut e = grad(step, l, Some(i as u32), value);
            e.time = t;
            lines.push(e);
        }
        let mut e = loss(step, 3.0 - 2.5 * step as f64 / steps as f64);
        e.time = t;
        lines.push(e);
        if step == steps / 2 {
            let mut e = epoch_end(step, 0);
            e.time = t;
            lines.push(e);
        }
    }
    for e in lines {
        writeln!(f, "{}", e.to_json_line()).unwrap();
    }
}

/// Replays a recording through a router with the mapping, the clock being `step_secs` per
/// step (a deterministic step clock), and returns the messages.
pub fn replay(path: &std::path::Path, mapping: &Mapping, step_secs: f64) -> Vec<Message> {
    let mut router = Router::new(mapping);
    let mut out = Vec::new();
    let mut now = 0.0;
    for e in sonograd::source::replay::Recording::open(path).unwrap() {
        let e = e.unwrap();
        now = e.step as f64 * step_secs;
        router.route(now, &e, &mut out);
        router.tick(now, &mut out);
    }
    router.finish(now + 1.0, &mut out);
    out
}
