//! The Python client: its JSON lines against sonograd's parser (no torch needed), its UDP
//! sending against the real listener, and (when torch imports) the example training run.

use crate::common::listen as common;

use std::path::PathBuf;
use std::process::Command;

use sonograd::event::Event;

fn client_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("clients/python")
}

fn python() -> String {
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python3");
    if venv.exists() {
        venv.display().to_string()
    } else {
        "python3".into()
    }
}

fn run_python(code: &str) -> std::process::Output {
    Command::new(python())
        .args(["-c", code])
        .env("PYTHONPATH", client_dir())
        .output()
        .expect("python3 not found")
}

/// Whether the venv's Python imports `module`. When it does not, the test is skipped with a
/// note, or fails under CI (`crate::common::require`).
fn importable(module: &str) -> bool {
    let ok = Command::new(python())
        .args(["-c", &format!("import {module}")])
        .output()
        .is_ok_and(|o| o.status.success());
    crate::common::require(
        ok,
        &format!(
            "{module} does not import for {} (scripts/setup-python.sh)",
            python()
        ),
    )
}

/// `sonograd listen --udp` on a free port, recording to `rec` until one run ends; and the port.
fn recording_listener(rec: &std::path::Path) -> (common::Running, u16) {
    let listener = common::start(
        &[
            "--udp",
            "127.0.0.1:0",
            "--record",
            rec.to_str().unwrap(),
            "--runs-ending",
            "1",
        ],
        1,
    );
    let port = listener.addr("udp-json").port();
    (listener, port)
}

/// Runs a client example script against `sonograd listen --udp` and returns what the
/// listener recorded, and its stderr lines.
fn record_script(script: &str, args: &[&str]) -> (Vec<Event>, Vec<String>) {
    let dir = tempfile::tempdir().unwrap();
    let rec = dir.path().join("rec.jsonl");
    let (listener, port) = recording_listener(&rec);
    let out = Command::new(python())
        .arg(client_dir().join(script))
        .args(["--port", &port.to_string()])
        .args(args)
        .env("PYTHONPATH", client_dir())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines = listener.wait();
    let events = std::fs::read_to_string(&rec)
        .unwrap()
        .lines()
        .map(|l| Event::from_json_line(l).unwrap())
        .collect();
    (events, lines)
}

#[test]
fn the_clients_lines_parse_as_sonograd_events() {
    let out = run_python(
        r#"
import sonograd as s
print(s.event_line("grad_norm", 3, layer="fc1", layer_index=0, value=float("nan"), rank=1, run="a"))
print(s.event_line("loss", 4, value=float("inf")))
print(s.event_line("lr", 4, value=0.1, epoch=2))
print(s.event_line("non_finite", 5, quantity="grad", state="nan", layer="fc2"))
print(s.event_line("run_start", 0, model="m", layers=["fc1", "fc2"], lr=0.1))
print(s.event_line("run_end", 9, reason="completed", coalesced=0))
assert s.layer_of("encoder.layers.0.weight") == "encoder.layers.0"
assert s.layer_of("bias") == "bias"
d = s.pack_datagrams(["a" * 10] * 5, max_bytes=25)
assert d == [b"a" * 10 + b"\n" + b"a" * 10] * 2 + [b"a" * 10], d
"#,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let events: Vec<Event> = text
        .lines()
        .map(|l| Event::from_json_line(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect();
    assert_eq!(events.len(), 6);
    assert!(events[0].payload.value().unwrap().is_nan());
    assert_eq!(events[0].rank, Some(1));
    assert_eq!(events[1].payload.value(), Some(f64::INFINITY));
    assert_eq!(events[2].epoch, 2);
    assert_eq!(events[3].payload.layer().unwrap().name.as_ref(), "fc2");
    assert!(events.iter().all(|e| e.time > 1e9));
}

#[test]
fn the_clients_udp_sender_reaches_the_listener() {
    let dir = tempfile::tempdir().unwrap();
    let rec = dir.path().join("rec.jsonl");
    let (listener, port) = recording_listener(&rec);
    let out = run_python(&format!(
        r#"
import sonograd as s
u = s.UdpSender("127.0.0.1", {port})
lines = [s.event_line("grad_norm", i, layer="fc%d" % (i % 3), value=i * 0.5) for i in range(300)]
lines.append(s.event_line("run_end", 300, reason="completed", coalesced=0))
u.send_lines(lines)
assert u.dropped == 0
"#
    ));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines = listener.wait();
    let recorded = std::fs::read_to_string(&rec).unwrap();
    assert_eq!(recorded.lines().count(), 301, "{lines:#?}");
    assert_eq!(common::accounting(&lines)["bad"], 0);
}

#[test]
fn the_example_trains_and_is_recorded_when_torch_is_there() {
    if !importable("torch") {
        return;
    }
    let (events, lines) = record_script("example.py", &["--steps", "50", "--run", "py"]);
    let count = |kind: &str| events.iter().filter(|e| e.payload.kind() == kind).count();
    // 3 Linear layers x 50 steps, a loss, lr and total norm per step.
    assert_eq!(count("grad_norm"), 150, "{lines:#?}");
    assert_eq!(count("loss"), 50);
    assert_eq!(count("lr"), 50);
    assert_eq!(count("total_norm"), 50);
    assert_eq!(
        (count("run_start"), count("eval"), count("run_end")),
        (1, 1, 1)
    );
    assert!(events.iter().all(|e| e.run.as_deref() == Some("py")));
    let layers: std::collections::BTreeSet<String> = events
        .iter()
        .filter_map(|e| e.payload.layer().map(|l| l.name.to_string()))
        .collect();
    assert_eq!(layers.into_iter().collect::<Vec<_>>(), vec!["0", "2", "4"]);
}

/// The Lightning callback: a real `lightning` Trainer fits a small module with
/// `SonogradCallback` and `listen` records what it sent.
#[test]
fn the_lightning_example_trains_and_is_recorded_when_lightning_is_there() {
    if !importable("lightning.pytorch") {
        return;
    }
    let (events, lines) = record_script("example_lightning.py", &["--steps", "40", "--run", "pl"]);
    let count = |kind: &str| events.iter().filter(|e| e.payload.kind() == kind).count();
    // 3 Linear layers x 40 steps, and a loss, lr and total norm per step.
    assert_eq!(count("grad_norm"), 120, "{lines:#?}");
    assert_eq!(
        (count("loss"), count("lr"), count("total_norm")),
        (40, 40, 40)
    );
    assert_eq!((count("run_start"), count("run_end")), (1, 1));
    // 512 examples in batches of 32: 16 steps an epoch, so two epochs end within 40 steps.
    assert!(count("epoch_end") >= 2, "{}", count("epoch_end"));
    assert!(events.iter().all(|e| e.run.as_deref() == Some("pl")));
    let start = events
        .iter()
        .find_map(|e| match &e.payload {
            sonograd::event::Payload::RunStart { info } => Some(info.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(start.optimizer, "sgd");
    assert_eq!(start.lr, 0.1);
    assert_eq!(start.layers, ["net.0", "net.2", "net.4"]);
    // Steps are Lightning's global steps, 0 to 39, each with its loss.
    let steps: std::collections::BTreeSet<u64> = events
        .iter()
        .filter(|e| e.payload.kind() == "loss")
        .map(|e| e.step)
        .collect();
    assert_eq!(steps, (0..40).collect());
    assert!(events
        .iter()
        .filter(|e| e.payload.kind() == "loss")
        .all(|e| e.payload.value().unwrap().is_finite()));
}

/// The package is versioned with the crate: pyproject.toml and `sonograd.__version__` say
/// the crate's version.
#[test]
fn the_python_package_has_the_crates_version() {
    let quoted_after = |text: &str, key: &str| -> String {
        let line = text
            .lines()
            .find(|l| l.trim_start().starts_with(key))
            .unwrap_or_else(|| panic!("no {key} line"));
        line.split('"').nth(1).unwrap().to_string()
    };
    let pyproject = std::fs::read_to_string(client_dir().join("pyproject.toml")).unwrap();
    let init = std::fs::read_to_string(client_dir().join("sonograd/__init__.py")).unwrap();
    assert_eq!(
        quoted_after(&pyproject, "version ="),
        env!("CARGO_PKG_VERSION")
    );
    assert_eq!(
        quoted_after(&init, "__version__ ="),
        env!("CARGO_PKG_VERSION")
    );
}

/// A compact step datagram from the client, decoded by `listen`, gives the client's values.
#[test]
fn the_clients_compact_datagrams_reach_the_listener() {
    let dir = tempfile::tempdir().unwrap();
    let rec = dir.path().join("rec.jsonl");
    let (listener, port) = recording_listener(&rec);
    let out = run_python(&format!(
        r#"
import sonograd as s
u = s.UdpSender("127.0.0.1", {port})
layout = s.Layout(["fc1", "fc2"], run="c")
for step in range(5):
    for d in layout.pack(step, [step + 0.5, None if step == 2 else 2.0], loss=1.0 / (step + 1),
                         lr=0.1, total=3.0, rank=1):
        u.send(d)
u.send_lines([s.event_line("run_end", 5, reason="completed", coalesced=0, run="c", rank=1)])
assert u.dropped == 0
"#
    ));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines = listener.wait();
    let events: Vec<Event> = std::fs::read_to_string(&rec)
        .unwrap()
        .lines()
        .map(|l| Event::from_json_line(l).unwrap())
        .collect();
    let grads: Vec<(u64, String, f64)> = events
        .iter()
        .filter(|e| e.payload.kind() == "grad_norm")
        .map(|e| {
            let l = e.payload.layer().unwrap();
            (e.step, l.name.to_string(), e.payload.value().unwrap())
        })
        .collect();
    assert_eq!(grads.len(), 9, "{lines:#?}");
    assert!(grads.contains(&(3, "fc1".into(), 3.5)));
    assert!(!grads.iter().any(|(s, l, _)| *s == 2 && l == "fc2"));
    assert!(events
        .iter()
        .all(|e| e.rank == Some(1) && e.run.as_deref() == Some("c")));
    assert_eq!(common::accounting(&lines)["bad"], 0);
}
