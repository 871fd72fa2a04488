//! Routing through the CLI: `replay --mapping ... --monitor` prints the messages the shipped
//! mappings make of a hand-written recording (every number derived by hand below),
//! `sonograd check` accepts the shipped mappings and rejects the broken corpus, and a running
//! `train` reloads its mapping file live.

use crate::common;
use common::*;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::mpsc;
use std::time::{Duration, Instant};

fn manifest(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

/// A small recording: two layers, a quiet step 1 and a bad step 2.
///
/// The router's clock is the events' own time from the first event, so step 1 is at 0 s and
/// step 2 at 1 s: a full second apart, well past every `max_rate_hz = 20` window (0.05 s),
/// so nothing is rate limited.
const RECORDING: &str = r#"{"v":1,"step":0,"epoch":0,"time":1000.0,"kind":"run_start","model":"mlp 4-3-2","optimizer":"sgd","lr":0.1,"batch_size":4,"layers":["fc1","fc2"]}
{"v":1,"step":1,"epoch":0,"time":1000.0,"kind":"grad_norm","layer":"fc1","layer_index":0,"value":1.0}
{"v":1,"step":1,"epoch":0,"time":1000.0,"kind":"grad_norm","layer":"fc2","layer_index":1,"value":10.0}
{"v":1,"step":1,"epoch":0,"time":1000.0,"kind":"total_norm","value":50.0}
{"v":1,"step":1,"epoch":0,"time":1000.0,"kind":"loss","value":1.0}
{"v":1,"step":2,"epoch":0,"time":1001.0,"kind":"total_norm","value":2000.0}
{"v":1,"step":2,"epoch":0,"time":1001.0,"kind":"loss","value":0.1}
{"v":1,"step":2,"epoch":0,"time":1001.0,"kind":"non_finite","layer":"fc2","layer_index":1,"quantity":"grad","state":"nan"}
"#;

/// A monitor line: `TIME s step STEP ROUTE  ACTION  <- SOURCE` (the layout of
/// `monitor::write_line`; the numbers in `rest` are the hand-derived ones).
fn line(time: f64, step: u64, route: &str, rest: &str) -> String {
    format!("{time:>9.3}s step {step:>6} {route:<16} {rest}")
}

fn replay_monitor(mapping: &str, monitor: bool) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("hand.jsonl");
    std::fs::write(&file, RECORDING).unwrap();
    let mapping = manifest(mapping);
    let mut args = vec![
        "replay",
        file.to_str().unwrap(),
        "--quiet",
        "--mapping",
        mapping.to_str().unwrap(),
    ];
    if monitor {
        args.push("--monitor");
    }
    let out = run_ok(&args);
    out.stdout.lines().map(str::to_string).collect()
}

#[test]
fn default_mapping_on_the_monitor() {
    // config/default.toml, route by route:
    //
    // grad-pitch (per_layer, voice 0 + layer): a log curve over a domain anchored on the run:
    //   two decades centred on each layer's first norm until 10 have been seen. Then the
    //   pentatonic major scale from C1 (MIDI 24) over 4 octaves = 5*4+1 = 21 notes (0..20),
    //   each layer in its own register: layer i of n starts 18*i/(n-1) degrees up.
    //   The run_start declares 2 layers, so fc1 is panned to -1 and fc2 to +1.
    //   fc1 = 1:  its first norm, the middle of its domain: level 0.5; 0.5*20 = 10 -> note
    //             #10 = octave 2, degree 0: 24+24 = 48 (C3) = 440*2^(-21/12) = 130.813 Hz.
    //   fc2 = 10: its first norm too, level 0.5 -> note #10, plus 18 degrees for the second
    //             of two layers = #28 = octave 5, degree 3 (+7): 24+60+7 = 91 (G6)
    //             = 440*2^(22/12) = 1567.98 Hz, voice 0+1 = 1.
    // explosion (voice 13, only when total_norm > 100): total 50 at step 1 -> nothing.
    //   total 2000 at step 2: log curve over [1, 10000]: log10(2000)/4 = 3.30103/4 = 0.8253
    //   -> trigger (range [0, 1], linear) 0.825, shown to one decimal: 0.8. An alarm route.
    // loss-brightness (voice 15): log curve over [0.01, 10], smoothing 0.5, cutoff range
    //   [200, 4000] mapped exponentially: 200 * 20^level.
    //   loss 1:   level ln(1/0.01)/ln(1000) = 2/3; the first value passes the smoother
    //             unchanged; 200*20^(2/3) = 200*7.36806 = 1473.6 Hz.
    //   loss 0.1: level 1/3; smoothed 0.5*(2/3) + 0.5*(1/3) = 0.5; 200*20^0.5 = 894.4 Hz.
    // nan-alarm (voice 14): level 1 -> trigger 1.0; the raw value is NaN; always an alarm.
    //   Not per_layer, so no pan and no voice offset for fc2.
    // lr and the run_start itself route nowhere.
    // The time column is the step clock: an unpaced replay plays 50 ms a step, counted from
    // the run_start at step 0.
    let expected = vec![
        line(
            0.05,
            1,
            "grad-pitch",
            "synth voice 0 pitch 130.8 Hz pan -1.00  <- grad_norm fc1 = 1",
        ),
        line(
            0.05,
            1,
            "grad-pitch",
            "synth voice 1 pitch 1568.0 Hz pan +1.00  <- grad_norm fc2 = 10",
        ),
        line(
            0.05,
            1,
            "loss-brightness",
            "synth voice 15 cutoff 1473.6 Hz  <- loss = 1",
        ),
        line(
            0.1,
            2,
            "explosion",
            "synth voice 13 trigger 0.8  <- total_norm = 2000  ALARM",
        ),
        line(
            0.1,
            2,
            "loss-brightness",
            "synth voice 15 cutoff 894.4 Hz  <- loss = 0.1",
        ),
        line(
            0.1,
            2,
            "nan-alarm",
            "synth voice 14 trigger 1.0  <- nonfinite fc2 = NaN  ALARM",
        ),
        // The detector names the first non-finite value (fc2, step 2) when step 2 is
        // complete: the non_finite chord A4 + A#4 on voices 20 and 21 (raw: 1 layer named).
        line(
            0.1,
            2,
            "diag-non-finite",
            "synth voice 20 pitch 440.0 Hz  <- diagnosis fc2 = 1  ALARM",
        ),
        line(
            0.1,
            2,
            "diag-non-finite-2",
            "synth voice 21 pitch 466.2 Hz  <- diagnosis fc2 = 1  ALARM",
        ),
    ];
    assert_eq!(replay_monitor("config/default.toml", true), expected);
    // Without --monitor nothing shows: the default mapping has no monitor output.
    assert!(replay_monitor("config/default.toml", false).is_empty());
}

#[test]
fn alarms_only_mapping_on_the_monitor() {
    // config/alarms-only.toml: nothing from grad_norm, loss or a total_norm of 50 (not > 100).
    // Routes in file order: nan-alarm (synth voice 0), nan-print (terminal), explosion (synth
    // voice 1, alarm = true), explosion-print (terminal, alarm = true).
    // total 2000: log curve over [1, 10000] -> log10(2000)/4 = 0.825 -> trigger 0.8 on synth
    //   voice 1 and on the terminal (a monitor output counts one voice: voice 0).
    // NaN in fc2: level 1 -> trigger 1.0 on synth voice 0 and on the terminal.
    let explosion = "trigger 0.8  <- total_norm = 2000  ALARM";
    let nan = "trigger 1.0  <- nonfinite fc2 = NaN  ALARM";
    let all = vec![
        line(0.1, 2, "explosion", &format!("synth voice 1 {explosion}")),
        line(
            0.1,
            2,
            "explosion-print",
            &format!("terminal voice 0 {explosion}"),
        ),
        line(0.1, 2, "nan-alarm", &format!("synth voice 0 {nan}")),
        line(0.1, 2, "nan-print", &format!("terminal voice 0 {nan}")),
        // The detector's non_finite diagnosis of step 2 (fc2), printed by diagnosis-print.
        line(
            0.1,
            2,
            "diagnosis-print",
            "terminal voice 0 trigger 1.0  <- diagnosis fc2 = 1  ALARM",
        ),
    ];
    assert_eq!(replay_monitor("config/alarms-only.toml", true), all);
    // Without --monitor only the terminal (a monitor output) prints.
    let terminal: Vec<String> = all
        .iter()
        .filter(|l| l.contains("terminal"))
        .cloned()
        .collect();
    assert_eq!(replay_monitor("config/alarms-only.toml", false), terminal);
}

#[test]
fn check_rejects_every_broken_mapping() {
    // One `check` over the whole corpus (each start of the binary loads libtorch, ~0.5 s):
    // files are checked in order, each one's diagnostics printed as a block that names it,
    // and a file that passed would be reported as `FILE: ok` on stdout.
    let files = toml_files(&manifest("tests/mappings/broken"));
    assert!(files.len() >= 25);
    let names: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
    let mut args = vec!["check"];
    args.extend(names.iter().map(String::as_str));
    let out = run_cli(&args);
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
    assert!(
        out.stdout.trim().is_empty(),
        "some broken mappings passed:\n{}",
        out.stdout
    );
    let mut from = 0;
    for (i, (file, name)) in files.iter().zip(&names).enumerate() {
        let text = std::fs::read_to_string(file).unwrap();
        let expect = text
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("# expect: "))
            .unwrap_or_else(|| panic!("{name}: no `# expect:` line"));
        // This file's block: from its first `NAME:` to the next file's.
        let start = from
            + out.stderr[from..]
                .find(&format!("{name}:"))
                .unwrap_or_else(|| panic!("{name} is not named on stderr:\n{}", out.stderr));
        let end = names
            .get(i + 1)
            .and_then(|next| out.stderr[start..].find(&format!("{next}:")))
            .map_or(out.stderr.len(), |n| start + n);
        let block = &out.stderr[start..end];
        assert!(
            block.contains(expect),
            "{name}: expected {expect:?} in:\n{block}"
        );
        from = end;
    }
}

#[test]
fn check_accepts_every_shipped_mapping() {
    let files = toml_files(&manifest("config"));
    assert!(files.len() >= 5);
    let names: Vec<&str> = files.iter().map(|f| f.to_str().unwrap()).collect();
    let mut args = vec!["check"];
    args.extend(&names);
    let out = run_ok(&args);
    for name in &names {
        assert!(
            out.stdout.contains(&format!("{name}: ok")),
            "{name} not reported ok:\n{}",
            out.stdout
        );
    }
    // One bad file among good ones fails the whole check.
    let broken = manifest("tests/mappings/broken/04-syntax-error.toml");
    args.push(broken.to_str().unwrap());
    assert_eq!(run_cli(&args).code, Some(2));
}

/// The default mapping plus a monitor output that shows every loss under `route_name`.
fn live_mapping(route_name: &str) -> String {
    let base = std::fs::read_to_string(manifest("config/default.toml")).unwrap();
    format!(
        "{base}\n[outputs.term]\nkind = \"monitor\"\n\n[[route]]\nname = \"{route_name}\"\n\
         output = \"term\"\nmatch = {{ metric = \"loss\" }}\nto = {{ param = \"amp\" }}\n\
         max_rate_hz = 10\n"
    )
}

/// Replaces the file in one step (write elsewhere, rename), so no half-written state is seen.
fn replace(path: &Path, text: &str) {
    let tmp = path.with_extension("toml.new");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// Waits for a stderr line containing `needle`; returns it and how long it took.
fn expect_stderr(
    rx: &mpsc::Receiver<String>,
    needle: &str,
    since: Instant,
    limit: Duration,
    seen: &mut Vec<String>,
) -> Duration {
    loop {
        let left = limit.saturating_sub(since.elapsed());
        match rx.recv_timeout(left) {
            Ok(l) => {
                seen.push(l.clone());
                if l.contains(needle) {
                    return since.elapsed();
                }
            }
            Err(_) => panic!("no {needle:?} on stderr within {limit:?}; saw:\n{seen:#?}"),
        }
    }
}

fn wait_until(limit: Duration, what: &str, mut ok: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ok() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_running_train_reloads_its_mapping() {
    let dir = tempfile::tempdir().unwrap();
    let mapping = dir.path().join("live.toml");
    std::fs::write(&mapping, live_mapping("loss-term")).unwrap();
    let stdout_path = dir.path().join("stdout.txt");
    let mut child = sonograd(&[
        "train",
        "--steps",
        "100000",
        "--mapping",
        mapping.to_str().unwrap(),
        "--monitor",
        "--quiet",
    ])
    .stdout(std::fs::File::create(&stdout_path).unwrap())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let (tx, rx) = mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for l in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(l).is_err() {
                break;
            }
        }
    });
    let stdout = || std::fs::read_to_string(&stdout_path).unwrap_or_default();
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        // Started: the monitor shows the first mapping's routes.
        wait_until(Duration::from_secs(30), "monitor lines", || {
            stdout().contains("loss-term ")
        });
        std::thread::sleep(Duration::from_millis(200));
        let mut seen = Vec::new();

        // A valid edit: the loss route is renamed.
        replace(&mapping, &live_mapping("loss-term-v2"));
        let took = expect_stderr(
            &rx,
            "reloaded",
            Instant::now(),
            Duration::from_millis(1500),
            &mut seen,
        );
        eprintln!("reloaded after {took:?}");
        assert!(seen.last().unwrap().contains(mapping.to_str().unwrap()));
        wait_until(Duration::from_secs(5), "the renamed route", || {
            stdout().contains("loss-term-v2")
        });

        // An invalid edit: rejected, the previous mapping stays and the run goes on.
        replace(
            &mapping,
            &live_mapping("loss-term-v3").replace("metric = \"loss\"", "metric = \"los\""),
        );
        expect_stderr(
            &rx,
            "rejected",
            Instant::now(),
            Duration::from_millis(1500),
            &mut seen,
        );
        // The diagnostics follow, naming the problem.
        expect_stderr(
            &rx,
            "did you mean `loss`",
            Instant::now(),
            Duration::from_secs(2),
            &mut seen,
        );
        let before = stdout().len();
        wait_until(Duration::from_secs(5), "more monitor output", || {
            stdout().len() > before
        });
        assert!(child.try_wait().unwrap().is_none(), "the run stopped");
        assert!(!stdout().contains("loss-term-v3"));
        // After the switch, the old route name never shows again.
        let text = stdout();
        let switched = text.find("loss-term-v2").unwrap();
        assert!(
            !text[switched..].contains("loss-term "),
            "the old mapping routed after the reload"
        );
    }));
    let status = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let start = Instant::now();
    let code = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s.code();
        }
        if start.elapsed() > Duration::from_secs(20) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("no exit within 20 s of SIGINT");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
    assert_eq!(code, Some(130));
}

/// Program changes: a fixed program and one from the level, shown by `--monitor` and written
/// to `--midi-file` as MIDI program-change events on their channels.
#[test]
fn program_change_routes_reach_the_monitor_and_the_midi_file() {
    let dir = tempfile::tempdir().unwrap();
    let mapping = dir.path().join("programs.toml");
    std::fs::write(
        &mapping,
        r#"
[outputs.screen]
kind = "monitor"

[[route]]
name = "loss-program"
output = "screen"
match = { metric = "loss" }
transform = { domain = [0, 4] }
to = { program = "value", range = [0, 8], channel = 2 }

[[route]]
name = "alarm-program"
output = "screen"
match = { metric = "total_norm", when = "value > 100" }
to = { program = 19, channel = 10 }
"#,
    )
    .unwrap();
    let rec = dir.path().join("run.jsonl");
    let lines: Vec<String> = [(0, 4.0, 1.0), (1, 2.0, 5.0), (2, 0.0, 500.0)]
        .iter()
        .flat_map(|&(s, l, t)| [loss(s, l), total(s, t)])
        .map(|e| e.to_json_line())
        .collect();
    std::fs::write(&rec, lines.join("\n") + "\n").unwrap();
    let mid = dir.path().join("run.mid");
    let out = run_ok(&[
        "replay",
        rec.to_str().unwrap(),
        "--mapping",
        mapping.to_str().unwrap(),
        "--no-diagnose",
        "--midi-file",
        mid.to_str().unwrap(),
    ]);
    let shown: Vec<&str> = out
        .stdout
        .lines()
        .filter(|l| l.contains("program"))
        .collect();
    assert_eq!(shown.len(), 4, "{}", out.stdout);
    for (want, line) in [
        "ch 2 program 8",
        "ch 2 program 4",
        "ch 2 program 0",
        "ch 10 program 19",
    ]
    .iter()
    .zip(&shown)
    {
        assert!(line.contains(want), "expected {want:?} in {line:?}");
    }
    // The .mid holds the same program changes, 0-based channels on the wire.
    let bytes = std::fs::read(&mid).unwrap();
    let smf = midly::Smf::parse(&bytes).unwrap();
    let mut programs: Vec<(u8, u8)> = smf
        .tracks
        .iter()
        .flatten()
        .filter_map(|e| match e.kind {
            midly::TrackEventKind::Midi {
                channel,
                message: midly::MidiMessage::ProgramChange { program },
            } => Some((channel.as_int(), program.as_int())),
            _ => None,
        })
        .collect();
    programs.sort();
    assert_eq!(programs, [(1, 0), (1, 4), (1, 8), (9, 19)]);
}
