//! Controls in (issue: the controller half of the bridge): the mapping's `[[control]]`s
//! validated by `check`, sound controls replayed from a recording, and a paced `train` run
//! steered over OSC by liblo's `oscsend`, with `oscdump` seeing the feedback.

use crate::common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use sonograd::event::{Event, Payload};

const ROUTES: &str = r#"
[outputs.mon]
kind = "monitor"
[[route]]
name = "pitch"
output = "mon"
match = { metric = "loss" }
to = { param = "pitch" }
[[route]]
name = "norm"
output = "mon"
match = { metric = "total_norm" }
to = { param = "amp" }
"#;

#[test]
fn check_lists_controls_and_names_each_bad_key() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.toml");
    std::fs::write(
        &good,
        format!(
            "{ROUTES}[controls]\nosc = 9300\n[[control]]\ncc = 21\ntarget = \"lr\"\n\
             [[control]]\nnote = 36\ntarget = \"mute\"\nroute = \"pitch\"\nmode = \"toggle\"\n"
        ),
    )
    .unwrap();
    let out = common::run_cli(&["check", good.to_str().unwrap()]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(out.stdout.contains("2 controls"), "{}", out.stdout);
    assert!(out.stdout.contains("midi:cc:1:21"), "{}", out.stdout);
    assert!(out.stdout.contains("mute:pitch"), "{}", out.stdout);

    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        format!(
            "{ROUTES}[[control]]\ncc = 21\nnote = 3\ntarget = \"lr\"\n\
             [[control]]\ncc = 22\ntarget = \"speed\"\n\
             [[control]]\ncc = 23\ntarget = \"mute\"\nroute = \"pitchh\"\n\
             [[control]]\ncc = 24\nlsb = 24\ntarget = \"volume\"\n\
             [[control]]\ncc = 25\ntarget = \"stop\"\nrange = [0, 2]\n\
             [[control]]\ncc = 26\ntarget = \"checkpoint\"\n"
        ),
    )
    .unwrap();
    let out = common::run_cli(&["check", bad.to_str().unwrap()]);
    assert_ne!(out.code, Some(0));
    let e = &out.stderr;
    let line_of = |needle: &str| {
        let src = std::fs::read_to_string(&bad).unwrap();
        src.lines().position(|l| l.contains(needle)).unwrap() + 1
    };
    for (line, key) in [
        (line_of("note = 3"), "control[0].note"),
        (line_of("\"speed\""), "control[1].target"),
        (line_of("\"pitchh\""), "control[2].route"),
        (line_of("lsb = 24"), "control[3].lsb"),
        (line_of("range = [0, 2]"), "control[4].range"),
    ] {
        assert!(
            e.contains(&format!("bad.toml:{line}:")) && e.contains(key),
            "no error at line {line} for {key}:\n{e}"
        );
    }
    assert!(e.contains("did you mean `pitch`"), "{e}");
    assert!(e.contains("missing key `file`"), "{e}");
    assert!(!e.contains("panicked"), "{e}");
}

/// `replay --monitor --no-diagnose` of `events` through `mapping` (with `extra` flags).
fn replay_monitor(
    dir: &std::path::Path,
    events: &[Event],
    mapping: &std::path::Path,
    extra: &[&str],
) -> common::CliOutput {
    let rec = dir.join("run.jsonl");
    common::live::write_events(&rec, events);
    let mut args = vec![
        "replay",
        rec.to_str().unwrap(),
        "--mapping",
        mapping.to_str().unwrap(),
        "--monitor",
        "--no-diagnose",
    ];
    args.extend_from_slice(extra);
    common::run_cli(&args)
}

fn control(step: u64, target: &str, value: f64) -> Event {
    Event::new(
        step,
        0,
        0.0,
        Payload::Control {
            control: "pad".into(),
            source: "midi:note:1:36".into(),
            target: target.into(),
            value,
        },
    )
}

/// The steps of a route's messages in `replay --monitor` output.
fn steps_of(stdout: &str, route: &str) -> Vec<u64> {
    stdout
        .lines()
        .filter(|l| l.contains(&format!("route {route} ")) || l.contains(&format!(" {route} ")))
        .filter_map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            let i = w.iter().position(|x| *x == "step")?;
            w.get(i + 1)?.parse().ok()
        })
        .collect()
}

#[test]
fn a_replayed_mute_and_solo_silence_exactly_their_steps() {
    let dir = tempfile::tempdir().unwrap();
    let mapping = dir.path().join("m.toml");
    std::fs::write(&mapping, ROUTES).unwrap();
    let mut events = Vec::new();
    for step in 0..40 {
        match step {
            10 => events.push(control(step, "mute:pitch", 1.0)),
            20 => events.push(control(step, "mute:pitch", 0.0)),
            25 => events.push(control(step, "solo:pitch", 1.0)),
            30 => events.push(control(step, "solo:pitch", 0.0)),
            _ => {}
        }
        events.push(common::loss(step, 1.0 / (1.0 + step as f64)));
        events.push(common::total(step, 1.0 + step as f64));
    }
    let out = replay_monitor(dir.path(), &events, &mapping, &[]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    // The summary says when a person acted.
    assert!(
        out.stderr.contains(
            "controls applied: 4 (step 10 mute:pitch 1, step 20 mute:pitch 0, step 25 solo:pitch 1, step 30 solo:pitch 0)"
        ),
        "{}",
        out.stderr
    );
    let pitch = steps_of(&out.stdout, "pitch");
    let norm = steps_of(&out.stdout, "norm");
    let want_pitch: Vec<u64> = (0..40).filter(|s| !(10..20).contains(s)).collect();
    let want_norm: Vec<u64> = (0..40).filter(|s| !(25..30).contains(s)).collect();
    assert_eq!(pitch, want_pitch, "{}", out.stdout);
    assert_eq!(norm, want_norm, "{}", out.stdout);
}

/// A mapping of [`ROUTES`] and `controls` whose OSC feedback goes to a running `oscdump`:
/// the folder, the mapping file, the dump and its lines.
fn with_feedback(controls: &str) -> (tempfile::TempDir, std::path::PathBuf, Dumped) {
    let dir = tempfile::tempdir().unwrap();
    let dump_port = common::free_udp_port();
    let dump = common::oscdump(&dump_port.to_string());
    let mapping = dir.path().join("m.toml");
    std::fs::write(
        &mapping,
        format!("{ROUTES}[controls]\nfeedback_osc = {dump_port}\n{controls}"),
    )
    .unwrap();
    (dir, mapping, dump)
}

type Dumped = (common::Proc, std::sync::Arc<std::sync::Mutex<Vec<String>>>);

fn oscsend(addr: &str, path: &str, args: &[&str]) {
    let (host, port) = addr.rsplit_once(':').unwrap();
    let status = Command::new("oscsend")
        .args([host, port, path])
        .args(args)
        .status()
        .unwrap();
    assert!(status.success());
}

#[cfg(feature = "train")]
#[test]
fn oscsend_steers_a_paced_training_run_and_oscdump_sees_the_feedback() {
    use std::io::{BufRead, BufReader};
    if !common::require_peers(&["oscsend", "oscdump"]) {
        return;
    }
    let ckpt = tempfile::tempdir().unwrap();
    let (dir, mapping, (_dump, dumped)) = with_feedback(&format!(
        "[[control]]\ntarget = \"lr_scale\"\n[[control]]\ntarget = \"pause\"\n\
         [[control]]\nosc = \"/tr/stop\"\ntarget = \"stop\"\n[[control]]\ntarget = \"mark\"\n\
         [[control]]\ntarget = \"checkpoint\"\nfile = \"{}/step-{{step}}.safetensors\"\n",
        ckpt.path().display()
    ));
    let rec = dir.path().join("run.jsonl");
    let mut child = common::sonograd(&[
        "train",
        "--steps",
        "2000",
        "--paced",
        "--step-ms",
        "20",
        "--data",
        "spirals",
        "--hidden",
        "16",
        "--lr",
        "0.1",
        "--mapping",
        mapping.to_str().unwrap(),
        "--record",
        rec.to_str().unwrap(),
        "--control-osc",
        "127.0.0.1:0",
        "-q",
    ])
    .stdout(Stdio::null())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut addr = String::new();
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(60) {
        let mut line = String::new();
        if stderr.read_line(&mut line).unwrap() == 0 {
            break;
        }
        if let Some(a) = line.trim().strip_prefix("controls: OSC on ") {
            addr = a.to_string();
            break;
        }
    }
    assert!(!addr.is_empty(), "train never said where it takes controls");
    std::thread::spawn(move || for _ in stderr.lines() {});
    std::thread::sleep(Duration::from_millis(600));
    oscsend(&addr, "/sonograd/control/lr_scale", &["f", "0.25"]);
    std::thread::sleep(Duration::from_millis(400));
    oscsend(&addr, "/sonograd/control/pause", &["f", "1"]);
    std::thread::sleep(Duration::from_millis(800));
    oscsend(&addr, "/sonograd/control/mark", &[]);
    oscsend(&addr, "/no/such/address", &["f", "1"]);
    oscsend(&addr, "/sonograd/control/pause", &["f", "0"]);
    std::thread::sleep(Duration::from_millis(400));
    oscsend(&addr, "/sonograd/control/checkpoint", &[]);
    std::thread::sleep(Duration::from_millis(200));
    oscsend(&addr, "/tr/stop", &[]);
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "train did not stop");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status:?}");

    let events: Vec<Event> = std::fs::read_to_string(&rec)
        .unwrap()
        .lines()
        .map(|l| Event::from_json_line(l).unwrap())
        .collect();
    let controls: Vec<(&str, f64, u64, f64)> = events
        .iter()
        .filter_map(|e| match &e.payload {
            Payload::Control { target, value, .. } => Some((&**target, *value, e.step, e.time)),
            _ => None,
        })
        .collect();
    let targets: Vec<(&str, f64)> = controls.iter().map(|c| (c.0, c.1)).collect();
    assert_eq!(
        targets,
        [
            ("lr_scale", 0.25),
            ("pause", 1.0),
            ("mark", 1.0),
            ("pause", 0.0),
            ("checkpoint", 1.0),
            ("stop", 1.0)
        ],
        "{controls:?}"
    );
    // The learning rate changes at the very step the control is applied.
    let scale_step = controls[0].2;
    for e in &events {
        if let Payload::Lr { value } = e.payload {
            let want = if e.step < scale_step { 0.1 } else { 0.025 };
            assert!(
                (value - want).abs() < 1e-12,
                "step {}: lr {value}, control at step {scale_step}",
                e.step
            );
        }
    }
    // While paused no step runs: nothing but controls between the pause and the resume.
    // The checkpoint holds the weights of the step it was asked at.
    let saved = ckpt
        .path()
        .join(format!("step-{}.safetensors", controls[4].2));
    let bytes = std::fs::read(&saved).unwrap_or_else(|e| panic!("{}: {e}", saved.display()));
    let header = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let meta = String::from_utf8_lossy(&bytes[8..8 + header]);
    assert!(meta.contains("F32") && bytes.len() > 8 + header, "{meta}");
    let (paused_at, resumed_at) = (controls[1].3, controls[3].3);
    assert!(resumed_at - paused_at > 0.6, "{paused_at} {resumed_at}");
    let during: Vec<&Event> = events
        .iter()
        .filter(|e| e.time > paused_at && e.time < resumed_at)
        .filter(|e| !matches!(e.payload, Payload::Control { .. }))
        .collect();
    assert!(during.is_empty(), "stepped while paused: {during:?}");
    assert_eq!(controls[1].2, controls[3].2, "the step did not stay put");
    // A clean end: `run_end` says stopped, long before the planned 2000 steps.
    let end = events.last().unwrap();
    assert!(
        matches!(
            end.payload,
            Payload::RunEnd {
                reason: sonograd::event::EndReason::Stopped,
                ..
            }
        ),
        "{end:?}"
    );
    assert!(end.step < 1000, "{}", end.step);
    // Feedback: the values as they changed, at start (recall) and after each change.
    let deadline = Instant::now() + Duration::from_secs(5);
    let want = [
        "/sonograd/control/lr_scale f 0.25",
        "/sonograd/control/pause f 1",
    ];
    loop {
        let got = dumped.lock().unwrap().clone();
        let seen = |w: &str| {
            got.iter()
                .any(|l| l.contains(w) || l.replace("0000", "").contains(w))
        };
        if want.iter().all(|w| seen(w)) && seen("/sonograd/control/lr_scale f 1") {
            break;
        }
        assert!(Instant::now() < deadline, "oscdump saw only {got:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn listen_answers_recall_sends_feedback_and_counts_bad_packets() {
    if !common::require_peers(&["oscsend", "oscdump"]) {
        return;
    }
    let (_dir, mapping, (_dump, dumped)) = with_feedback(
        "[[control]]\ntarget = \"volume\"\n\
         [[control]]\nosc = \"/surface/mute\"\ntarget = \"mute\"\nroute = \"norm\"\n",
    );
    let control = format!("127.0.0.1:{}", common::free_udp_port());
    let listener = common::listen::start(
        &[
            "--udp",
            "127.0.0.1:0",
            "--mapping",
            mapping.to_str().unwrap(),
            "--control-osc",
            &control,
        ],
        1,
    );
    let seen_after = |from: usize, want: &str| {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let got = dumped.lock().unwrap().clone();
            if got.iter().skip(from).any(|l| l.contains(want)) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "oscdump never saw {want:?}: {got:?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    let seen = |want: &str| seen_after(0, want);
    // At start every value goes out; recall sends them again.
    seen("/sonograd/control/volume f 1.0");
    seen("/surface/mute f 0.0");
    let before = dumped.lock().unwrap().len();
    oscsend(&control, "/sonograd/control/recall", &[]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while dumped.lock().unwrap().len() < before + 2 {
        assert!(Instant::now() < deadline, "recall went unanswered");
        std::thread::sleep(Duration::from_millis(50));
    }
    // A change goes back out; values are clamped to the range.
    oscsend(&control, "/sonograd/control/volume", &["f", "0.25"]);
    seen("/sonograd/control/volume f 0.25");
    let before = dumped.lock().unwrap().len();
    oscsend(&control, "/sonograd/control/volume", &["f", "7.5"]);
    seen_after(before, "/sonograd/control/volume f 1.0");
    oscsend(&control, "/surface/mute", &["f", "1"]);
    seen("/surface/mute f 1.0");
    // Nonsense is counted, not fatal.
    oscsend(&control, "/no/such/control", &["f", "1"]);
    let garbage = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    garbage.send_to(b"not OSC at all", &control).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let lines = listener.stop();
    let summary = lines
        .iter()
        .find(|l| l.contains("controls:") && l.contains("applied"))
        .unwrap_or_else(|| panic!("no controls summary: {lines:?}"));
    assert!(summary.contains(" 3 applied"), "{summary}");
    assert!(summary.contains(" 1 unknown"), "{summary}");
    assert!(summary.contains(" 1 malformed"), "{summary}");
}

#[test]
fn learn_writes_the_control_for_the_next_osc_message_keeping_comments() {
    if !common::require_peers(&["oscsend"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mapping = dir.path().join("m.toml");
    let original = format!("# my mapping, hand-tuned\n{ROUTES}# the end\n");
    std::fs::write(&mapping, &original).unwrap();
    let port = common::free_udp_port();
    let control = format!("127.0.0.1:{port}");
    let child = common::sonograd(&[
        "learn",
        mapping.to_str().unwrap(),
        "mute",
        "--route",
        "norm",
        "--control-osc",
        &control,
        "--timeout",
        "20",
    ])
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    // Keep knocking until learn listens (it says so on stderr, but a datagram is cheap).
    let out = {
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut child = child;
        loop {
            oscsend(&control, "/surface/button/3", &["f", "1"]);
            if let Some(_s) = child.try_wait().unwrap() {
                break child.wait_with_output().unwrap();
            }
            assert!(Instant::now() < deadline, "learn never finished");
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&mapping).unwrap();
    assert!(text.starts_with(&original), "{text}");
    let m = sonograd::mapping::check(&mapping).unwrap();
    let c = &m.controls.list[0];
    assert_eq!(
        c.source,
        sonograd::mapping::controls::ControlSource::Osc("/surface/button/3".into())
    );
    assert_eq!(c.target.event_name(), "mute:norm");
    // A target that does not fit leaves the file alone and says why.
    let out = common::run_cli(&[
        "learn",
        mapping.to_str().unwrap(),
        "mute",
        "--route",
        "nope",
        "--control-osc",
        &control,
        "--timeout",
        "0.5",
    ]);
    assert_eq!(out.code, Some(2));
    assert!(out.stderr.contains("nothing arrived"), "{}", out.stderr);
    assert_eq!(std::fs::read_to_string(&mapping).unwrap(), text);
}

#[test]
fn a_replayed_mapping_switch_changes_the_routes_at_its_step() {
    let dir = tempfile::tempdir().unwrap();
    let second = dir.path().join("second.toml");
    std::fs::write(
        &second,
        "[outputs.mon]\nkind = \"monitor\"\n[[route]]\nname = \"other\"\noutput = \"mon\"\n\
         match = { metric = \"loss\" }\nto = { param = \"amp\" }\n",
    )
    .unwrap();
    let first = dir.path().join("first.toml");
    std::fs::write(
        &first,
        format!(
            "{ROUTES}[controls]\nmappings = [\"first.toml\", \"second.toml\"]\n\
             [[control]]\nnote = 40\ntarget = \"mapping_next\"\n"
        ),
    )
    .unwrap();
    let mut events = Vec::new();
    for step in 0..30 {
        if step == 10 || step == 20 {
            events.push(control(step, "mapping_next", 1.0));
        }
        events.push(common::loss(step, 1.0 / (1.0 + step as f64)));
    }
    let out = replay_monitor(dir.path(), &events, &first, &["--no-reload", "-q"]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    // first (pitch) for 0-9, second (other) for 10-19, and round to first again from 20.
    let pitch = steps_of(&out.stdout, "pitch");
    let other = steps_of(&out.stdout, "other");
    let want_pitch: Vec<u64> = (0..10).chain(20..30).collect();
    assert_eq!(pitch, want_pitch, "{}", out.stdout);
    assert_eq!(other, (10..20).collect::<Vec<u64>>(), "{}", out.stdout);
}

/// A `volume` control in a recording is the built-in synth's master gain in a render: the
/// audio falls silent from its step and comes back at half the level.
#[test]
fn a_replayed_volume_control_is_the_master_gain_of_a_render() {
    let dir = tempfile::tempdir().unwrap();
    let mut events = vec![common::run_start(0, &["fc1", "fc2", "fc3"])];
    for step in 0..300u64 {
        match step {
            100 => events.push(control(step, "volume", 0.0)),
            200 => events.push(control(step, "volume", 0.5)),
            _ => {}
        }
        for (i, name) in ["fc1", "fc2", "fc3"].iter().enumerate() {
            events.push(common::grad(
                step,
                name,
                Some(i as u32),
                0.1 * (i + 1) as f64,
            ));
        }
        events.push(common::total(step, 0.4));
        events.push(common::loss(step, 1.0));
    }
    let rec = dir.path().join("run.jsonl");
    common::live::write_events(&rec, &events);
    // The default sound without the detector: steady norms would be a plateau alarm.
    let mapping = dir.path().join("m.toml");
    let default =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config/default.toml"));
    std::fs::write(
        &mapping,
        default.unwrap() + "\n[diagnose]\nenabled = false\n",
    )
    .unwrap();
    let wav = dir.path().join("run.wav");
    let out = common::run_cli(&[
        "render",
        rec.to_str().unwrap(),
        "-o",
        wav.to_str().unwrap(),
        "--mapping",
        mapping.to_str().unwrap(),
    ]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let (sr, l, r) = common::audio::read_wav(&wav);
    let x = common::audio::mono(&l, &r);
    let span = |a: u64, b: u64| {
        let at = |s: u64| (s as f64 * 0.05 * sr as f64) as usize;
        common::audio::rms(&x[at(a)..at(b)])
    };
    let (full, muted, half) = (span(20, 95), span(105, 195), span(210, 295));
    assert!(full > 0.01, "the run sounds: rms {full}");
    assert!(
        muted < full * 1e-3,
        "silent at volume 0: {muted} against {full}"
    );
    let ratio = half / full;
    assert!(
        (0.4..0.6).contains(&ratio),
        "half the level at 0.5: {ratio}"
    );
}

/// `listen --tensorboard` takes controls too: a sound control sent over OSC is applied and
/// recorded as a `control` event, and the run's files are left alone.
#[test]
fn listen_tensorboard_takes_sound_controls() {
    if !common::require_peers(&["oscsend"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    std::fs::create_dir(&logs).unwrap();
    let port = common::free_udp_port();
    let mapping = dir.path().join("m.toml");
    std::fs::write(
        &mapping,
        format!(
            "{ROUTES}[controls]\nosc = {port}\n[[control]]\nname = \"vol\"\ntarget = \"volume\"\n"
        ),
    )
    .unwrap();
    let rec = dir.path().join("run.jsonl");
    let mut cmd = common::sonograd(&[
        "listen",
        "--tensorboard",
        logs.to_str().unwrap(),
        "--mapping",
        mapping.to_str().unwrap(),
        "--record",
        rec.to_str().unwrap(),
    ]);
    cmd.env("SONOGRAD_NO_AUDIO", "1");
    let (mut listen, lines) = common::live::spawn_lines(cmd);
    assert!(
        lines.wait(Duration::from_secs(20), |l| l
            .starts_with("listening: tensorboard")),
        "{:?}",
        lines.snapshot()
    );
    let control = format!("127.0.0.1:{port}");
    oscsend(&control, "/sonograd/control/vol", &["f", "0.25"]);
    std::thread::sleep(Duration::from_millis(500));
    // SAFETY: signalling our own child process by its id.
    unsafe {
        libc::kill(listen.0.id() as i32, libc::SIGTERM);
    }
    assert!(listen.0.wait().unwrap().success(), "{:?}", lines.snapshot());
    let text = std::fs::read_to_string(&rec).unwrap();
    let controls: Vec<Event> = text
        .lines()
        .map(|l| Event::from_json_line(l).unwrap())
        .filter(|e| matches!(e.payload, Payload::Control { .. }))
        .collect();
    assert_eq!(controls.len(), 1, "{text}");
    match &controls[0].payload {
        Payload::Control { target, value, .. } => {
            assert_eq!(&**target, "volume");
            assert!((value - 0.25).abs() < 1e-6, "{value}");
        }
        _ => unreachable!(),
    }
    let stderr = lines.snapshot().join("\n");
    assert!(stderr.contains("controls applied: 1"), "{stderr}");
}
