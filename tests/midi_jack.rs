//! Live MIDI through midir's JACK backend (`cargo test --features jack`): `jack_midi_dump`
//! receives every note on and off of a routed run, and a process killed with SIGINT
//! mid-note leaves no note on.
#![cfg(feature = "jack")]

#[path = "it/common/mod.rs"]
mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sonograd::mapping::schema::MidiPort;
use sonograd::output::midi::MidiOut;
use sonograd::output::midi_sched::SchedConfig;
use sonograd::output::midi_wire::Wire;
use sonograd::output::Output;

/// The MIDI bytes of each `jack_midi_dump` line ("   123: 90 3c 64 note on ...").
fn parse(lines: &[String]) -> Vec<Vec<u8>> {
    lines
        .iter()
        .filter_map(|l| {
            let (_, rest) = l.split_once(':')?;
            let bytes: Vec<u8> = rest
                .split_whitespace()
                .map_while(|t| {
                    if t.len() == 2 {
                        u8::from_str_radix(t, 16).ok()
                    } else {
                        None
                    }
                })
                .collect();
            (!bytes.is_empty()).then_some(bytes)
        })
        .collect()
}

fn connect(from: &str) -> bool {
    common::wait_for(Duration::from_secs(5), || {
        Command::new("jack_connect")
            .args([from, "midi-monitor:input"])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    })
}

/// Every note on has a later note off, and each used channel got all-notes-off at the end.
fn assert_no_stuck_notes(events: &[Vec<u8>]) {
    let mut on = std::collections::HashMap::<(u8, u8), i32>::new();
    for e in events {
        match e[0] & 0xF0 {
            0x90 if e[2] > 0 => *on.entry((e[0] & 0x0F, e[1])).or_default() += 1,
            0x80 | 0x90 => *on.entry((e[0] & 0x0F, e[1])).or_default() -= 1,
            _ => {}
        }
        let count = on.get(&(e[0] & 0x0F, e[1])).copied().unwrap_or(0);
        assert!(
            (0..=1).contains(&count),
            "note {e:02x?} doubled or ended twice"
        );
    }
    let stuck: Vec<_> = on.iter().filter(|(_, &c)| c != 0).collect();
    assert!(stuck.is_empty(), "notes left on: {stuck:?}");
    for ch in on.keys().map(|k| k.0) {
        assert!(
            events.contains(&vec![0xB0 | ch, 123, 0]),
            "no all-notes-off on channel {}",
            ch + 1
        );
    }
}

#[test]
fn notes_reach_jack_and_sigint_leaves_none_on() {
    if !common::require_peers(&["jackd", "jack_midi_dump", "jack_connect", "jack_wait"]) {
        return;
    }
    let _one = JACK_TESTS.lock().unwrap_or_else(|e| e.into_inner());
    let jack = common::Jack::start("outputs-midi");
    // midir's JACK client runs in this process; the one test of this binary that uses JACK.
    jack.set_process_env();
    let (_dump, lines) = collect_lines(jack.command("jack_midi_dump"));

    // 1. A routed run through config/daw-midi.toml on a virtual port.
    let mapping = common::config_with(
        "daw-midi.toml",
        "virtual = \"sonograd\"",
        "virtual = \"sonograd-live\"",
    );
    let dir = tempfile::tempdir().unwrap();
    let rec = dir.path().join("run.jsonl");
    common::write_recording(&rec, 12);
    let msgs = common::replay(&rec, &mapping, 0.2);
    let notes = msgs
        .iter()
        .filter(|m| matches!(m.action, sonograd::message::Action::Note { .. }))
        .count();
    assert!(notes >= 12, "the replay plays notes ({notes})");
    let mut out = MidiOut::open_port(
        &MidiPort::Virtual("sonograd-live".into()),
        SchedConfig::default(),
    )
    .unwrap();
    assert!(
        connect("sonograd:sonograd-live"),
        "cannot connect the virtual port to jack_midi_dump"
    );
    for (i, m) in msgs.iter().enumerate() {
        out.send(m, &mapping);
        if i % 8 == 0 {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    // A program change is a two-byte message: it must reach JACK as exactly that.
    assert!(out.scheduler_send(Wire::Program { ch: 4, program: 42 }, None, Instant::now()));
    std::thread::sleep(Duration::from_millis(100));
    let report = out.finish();
    assert_eq!(report.dropped, 0);
    assert_eq!(report.notes_on as usize, notes);
    std::thread::sleep(Duration::from_millis(300));
    let events = parse(&lines.lock().unwrap());
    if std::env::var_os("DUMP").is_some() {
        eprintln!("{events:02x?}");
    }
    let ons = events.iter().filter(|e| e[0] & 0xF0 == 0x90).count();
    let offs = events.iter().filter(|e| e[0] & 0xF0 == 0x80).count();
    assert_eq!(ons, notes, "every note on arrived");
    assert_eq!(offs, notes, "every note off arrived");
    assert_eq!(
        events.len() as u64,
        report.sent,
        "jack_midi_dump got every message sent"
    );
    assert_no_stuck_notes(&events);
    assert!(
        events.contains(&vec![0xC4, 42]),
        "program change missing: {events:02x?}"
    );
    let seen = lines.lock().unwrap().len();

    // 2. A process killed with SIGINT in the middle of a 30 s note: this test binary
    //    again, running `hold_process` below.
    let mut hold = common::Proc(
        Command::new(std::env::current_exe().unwrap())
            .args(["hold_process", "--exact", "--nocapture", "--test-threads=1"])
            .env("SONOGRAD_HOLD", "sonograd-hold")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut hold_out = BufReader::new(hold.0.stdout.take().unwrap());
    let mut line = String::new();
    // libtest prints "test hold_process ... " before the test's own output.
    while !line.trim_end().ends_with("READY") {
        line.clear();
        assert!(
            hold_out.read_line(&mut line).unwrap() > 0,
            "the hold process ended before READY"
        );
    }
    assert!(connect("sonograd:sonograd-hold"));
    std::thread::sleep(Duration::from_millis(100));
    writeln!(hold.0.stdin.as_mut().unwrap()).unwrap();
    line.clear();
    hold_out.read_line(&mut line).unwrap();
    assert!(line.trim_end().ends_with("PLAYING"), "{line:?}");
    let on_arrived = common::wait_for(Duration::from_secs(3), || {
        parse(&lines.lock().unwrap()[seen..])
            .iter()
            .any(|e| e[0] == 0x92)
    });
    assert!(on_arrived, "the held note started");
    let pid = hold.0.id().to_string();
    assert!(Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .unwrap()
        .success());
    let status = hold.0.wait().unwrap();
    assert_eq!(
        status.code(),
        Some(130),
        "the example exits through its Ctrl-C handler"
    );
    std::thread::sleep(Duration::from_millis(300));
    let events = parse(&lines.lock().unwrap()[seen..]);
    assert_eq!(
        events,
        vec![vec![0x92, 67, 90], vec![0x82, 67, 0], vec![0xB2, 123, 0]]
    );
}

/// The process the SIGINT test kills (does nothing unless `SONOGRAD_HOLD` names a port):
/// creates the virtual port, prints `READY`, waits for a line on stdin, starts a 30 s note,
/// prints `PLAYING` and waits. Its Ctrl-C handler ends the note through the stop handle.
#[test]
fn hold_process() {
    let Some(name) = std::env::var_os("SONOGRAD_HOLD") else {
        return;
    };
    let port = MidiPort::Virtual(name.to_string_lossy().into_owned());
    let mut out = MidiOut::open_port(&port, SchedConfig::default()).unwrap();
    // What sonograd's second Ctrl-C does: end the notes of every open scheduler, then exit.
    ctrlc::set_handler(move || {
        let ended = sonograd::output::midi_sched::stop_all_notes(Duration::from_secs(2));
        eprintln!("interrupted: notes ended on {ended} port(s)");
        std::process::exit(if ended == 1 { 130 } else { 3 });
    })
    .unwrap();
    println!("READY");
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line).unwrap();
    out.scheduler_send(
        Wire::NoteOn {
            ch: 2,
            note: 67,
            vel: 90,
        },
        Some(Duration::from_secs(30)),
        Instant::now(),
    );
    println!("PLAYING");
    std::thread::sleep(Duration::from_secs(60));
    out.finish();
}

/// Both tests of this binary use JACK from this process (the environment is the process's):
/// one at a time.
static JACK_TESTS: Mutex<()> = Mutex::new(());

/// Controls in over JACK MIDI: a midir sender in this process plays a controller into the
/// virtual input port of a running `sonograd listen`; the recording shows the control
/// events and `jack_midi_dump` gets the feedback on the port of the same name.
#[test]
fn a_jack_midi_controller_moves_controls_and_gets_feedback() {
    if !common::require_peers(&["jackd", "jack_midi_dump", "jack_connect", "jack_lsp"]) {
        return;
    }
    let _one = JACK_TESTS.lock().unwrap_or_else(|e| e.into_inner());
    let jack = common::Jack::start("controls-midi");
    jack.set_process_env();
    let listen = ControlledListen::start(
        &jack,
        "[controls]\nmidi_virtual = \"sonograd-ctl\"\n\
         [[control]]\ncc = 21\ntarget = \"lr_scale\"\nrange = [0.0, 2.0]\n\
         [[control]]\ncc = 7\nlsb = 39\nchannel = 2\ntarget = \"volume\"\n\
         [[control]]\nnote = 36\ntarget = \"pause\"\nmode = \"toggle\"\n",
    );
    // The feedback port: the output port of that name.
    let (_dump, lines) = collect_lines(jack.command("jack_midi_dump"));
    let ports = || {
        let out = jack.command("jack_lsp").output().unwrap();
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| l.ends_with(":sonograd-ctl"))
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    assert!(common::wait_for(Duration::from_secs(5), || ports().len()
        == 2
        && connect_any(&ports())));

    // The controller: a JACK MIDI client in this process.
    let out = midir::MidiOutput::new("test-controller").unwrap();
    let port = out
        .ports()
        .into_iter()
        .find(|p| out.port_name(p).is_ok_and(|n| n.ends_with(":sonograd-ctl")))
        .expect("the virtual input port is there");
    let mut conn = out.connect(&port, "knobs").unwrap();
    std::thread::sleep(Duration::from_millis(200));
    for msg in [
        &[0xB0, 21, 127][..], // lr_scale to the top: 2.0
        &[0xB1, 7, 64],       // volume MSB (channel 2) ...
        &[0xB1, 39, 1],       // ... and LSB: 8193 / 16383
        &[0x90, 36, 100],     // pad down: pause on
        &[0x80, 36, 0],       // pad up
        &[0xB0, 99, 1],       // an unmapped CC: counted, ignored
    ] {
        conn.send(msg).unwrap();
        std::thread::sleep(Duration::from_millis(60));
    }
    std::thread::sleep(Duration::from_millis(300));
    conn.close();
    let stderr = listen.stderr.clone();
    let events = listen.stop();
    let controls: Vec<(String, String, f64)> = events
        .iter()
        .filter_map(|e| match &e.payload {
            sonograd::event::Payload::Control {
                source,
                target,
                value,
                ..
            } => Some((source.to_string(), target.to_string(), *value)),
            _ => None,
        })
        .collect();
    let volume = 8193.0 / 16383.0;
    let want = [
        ("midi:cc:1:21", "lr_scale", 2.0),
        ("midi:cc:2:7", "volume", 64.0 * 128.0 / 16383.0),
        ("midi:cc:2:39", "volume", volume),
        ("midi:note:1:36", "pause", 1.0),
    ];
    assert_eq!(controls.len(), want.len(), "{controls:?}");
    for (got, want) in controls.iter().zip(want) {
        assert_eq!((got.0.as_str(), got.1.as_str()), (want.0, want.1));
        assert!((got.2 - want.2).abs() < 1e-9, "{got:?} vs {want:?}");
    }
    let summary = stderr.lock().unwrap().join("\n");
    assert!(summary.contains(" 1 unknown"), "{summary}");
    // Feedback on the port of the same name: the same CC numbers with the new positions.
    let fed = parse(&lines.lock().unwrap());
    for want in [
        vec![0xB0, 21, 127],
        vec![0xB1, 7, 64],
        vec![0xB1, 39, 1],
        vec![0x90, 36, 127],
    ] {
        assert!(fed.contains(&want), "no feedback {want:02x?} in {fed:02x?}");
    }
}

/// Connects the first of `ports` that is an output to `jack_midi_dump`.
fn connect_any(ports: &[String]) -> bool {
    ports.iter().any(|p| {
        Command::new("jack_connect")
            .args([p.as_str(), "midi-monitor:input"])
            .env("JACK_NO_START_SERVER", "1")
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    })
}

/// Starts `cmd` and collects its stdout lines.
fn collect_lines(mut cmd: Command) -> (common::Proc, Arc<Mutex<Vec<String>>>) {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let lines = collect(child.stdout.take().unwrap());
    (common::Proc(child), lines)
}

/// The lines of `from`, as they come, read on a thread of their own.
fn collect(from: impl std::io::Read + Send + 'static) -> Arc<Mutex<Vec<String>>> {
    let lines = Arc::new(Mutex::new(Vec::<String>::new()));
    let sink = lines.clone();
    std::thread::spawn(move || {
        for l in BufReader::new(from).lines().map_while(Result::ok) {
            sink.lock().unwrap().push(l);
        }
    });
    lines
}

/// A `sonograd listen` (UDP on a free port, no audio) with the controls of a mapping whose
/// text ends with `controls`, recording to `rec`, started under `jack` once its MIDI input
/// is open.
struct ControlledListen {
    proc: common::Proc,
    stderr: Arc<Mutex<Vec<String>>>,
    rec: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl ControlledListen {
    fn start(jack: &common::Jack, controls: &str) -> ControlledListen {
        let dir = tempfile::tempdir().unwrap();
        let mapping = dir.path().join("m.toml");
        std::fs::write(
            &mapping,
            format!(
                "[outputs.mon]\nkind = \"monitor\"\n[[route]]\noutput = \"mon\"\n\
                 match = {{ metric = \"loss\" }}\nto = {{ param = \"pitch\" }}\n{controls}"
            ),
        )
        .unwrap();
        let rec = dir.path().join("run.jsonl");
        let mut proc = common::Proc(
            jack.command(env!("CARGO_BIN_EXE_sonograd"))
                .args([
                    "listen",
                    "--udp",
                    "127.0.0.1:0",
                    "--no-diagnose",
                    "--mapping",
                ])
                .arg(&mapping)
                .arg("--record")
                .arg(&rec)
                .env("SONOGRAD_NO_AUDIO", "1")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap(),
        );
        let stderr = collect(proc.0.stderr.take().unwrap());
        let listen = ControlledListen {
            proc,
            stderr,
            rec,
            _dir: dir,
        };
        assert!(
            common::wait_for(Duration::from_secs(20), || listen
                .line("controls: MIDI in on")
                .is_some()
                && listen.line("listening: udp-json").is_some()),
            "listen did not start: {:?}",
            listen.stderr.lock().unwrap()
        );
        listen
    }

    /// The first stderr line starting with `prefix`.
    fn line(&self, prefix: &str) -> Option<String> {
        self.stderr
            .lock()
            .unwrap()
            .iter()
            .find(|l| l.starts_with(prefix))
            .cloned()
    }

    /// Where the JSON-lines input listens.
    fn udp(&self) -> std::net::SocketAddr {
        let line = self.line("listening: udp-json").unwrap();
        line.split_whitespace().nth(2).unwrap().parse().unwrap()
    }

    /// Stops it with SIGTERM (a clean stop) and returns the events it recorded.
    fn stop(mut self) -> Vec<sonograd::event::Event> {
        let pid = self.proc.0.id().to_string();
        assert!(Command::new("kill").arg(&pid).status().unwrap().success());
        assert!(
            self.proc.0.wait().unwrap().success(),
            "{:?}",
            self.stderr.lock().unwrap()
        );
        std::fs::read_to_string(&self.rec)
            .unwrap()
            .lines()
            .map(|l| sonograd::event::Event::from_json_line(l).unwrap())
            .collect()
    }
}

/// A JACK MIDI client in this process, connected to the input port ending in `:port`.
fn controller(client: &str, port: &str) -> midir::MidiOutputConnection {
    let out = midir::MidiOutput::new(client).unwrap();
    let target = out
        .ports()
        .into_iter()
        .find(|p| {
            out.port_name(p)
                .is_ok_and(|n| n.ends_with(&format!(":{port}")))
        })
        .unwrap_or_else(|| panic!("no input port {port}"));
    let conn = out.connect(&target, "knobs").unwrap();
    // Let JACK make the connection before the first message.
    std::thread::sleep(Duration::from_millis(200));
    conn
}

/// The names of the JACK ports now.
fn jack_ports(jack: &common::Jack) -> Vec<String> {
    let out = jack.command("jack_lsp").output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

/// A controller that disappears mid-run (its JACK client closes) leaves the run alone:
/// `listen` goes on taking the run's events, a controller that comes back is heard again,
/// and the run ends cleanly with every event recorded.
#[test]
fn a_controller_that_disappears_mid_run_leaves_the_run_alone() {
    if !common::require_peers(&["jackd", "jack_lsp"]) {
        return;
    }
    let _one = JACK_TESTS.lock().unwrap_or_else(|e| e.into_inner());
    let jack = common::Jack::start("controls-gone");
    jack.set_process_env();
    let listen = ControlledListen::start(
        &jack,
        "[controls]\nmidi_virtual = \"sonograd-gone\"\n\
         [[control]]\ncc = 21\ntarget = \"lr_scale\"\nrange = [0.0, 2.0]\n",
    );
    let addr = listen.udp();
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let send_steps = |steps: std::ops::Range<u64>| {
        for s in steps {
            let line = format!(
                "{{\"v\":1,\"step\":{s},\"kind\":\"loss\",\"value\":{}}}\n",
                1.0 / (1.0 + s as f64)
            );
            udp.send_to(line.as_bytes(), addr).unwrap();
            std::thread::sleep(Duration::from_millis(4));
        }
    };
    send_steps(0..50);
    let mut first = controller("first-controller", "sonograd-gone");
    first.send(&[0xB0, 21, 64]).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    // Unplugged: the client and its port leave JACK.
    drop(first);
    assert!(
        common::wait_for(Duration::from_secs(5), || !jack_ports(&jack)
            .iter()
            .any(|p| p.starts_with("first-controller"))),
        "the first controller is still there"
    );
    send_steps(50..100);
    // Plugged in again (a new client): heard again.
    let mut second = controller("second-controller", "sonograd-gone");
    second.send(&[0xB0, 21, 127]).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    send_steps(100..150);
    drop(second);
    std::thread::sleep(Duration::from_millis(300));
    let events = listen.stop();
    let losses: Vec<u64> = events
        .iter()
        .filter(|e| matches!(e.payload, sonograd::event::Payload::Loss { .. }))
        .map(|e| e.step)
        .collect();
    assert_eq!(losses, (0..150).collect::<Vec<_>>(), "every step recorded");
    let controls: Vec<(u64, f64)> = events
        .iter()
        .filter_map(|e| match &e.payload {
            sonograd::event::Payload::Control { value, .. } => Some((e.step, *value)),
            _ => None,
        })
        .collect();
    assert_eq!(controls.len(), 2, "{controls:?}");
    assert!(
        (controls[0].1 - 2.0 * 64.0 / 127.0).abs() < 1e-9,
        "{controls:?}"
    );
    assert!((controls[1].1 - 2.0).abs() < 1e-9, "{controls:?}");
    // Stamped with the step the run had reached when each came.
    assert!((45..=55).contains(&controls[0].0), "{controls:?}");
    assert!((95..=105).contains(&controls[1].0), "{controls:?}");
}

/// MIDI learn over JACK MIDI: `sonograd learn` opens the mapping's MIDI input, takes the next
/// CC a controller sends and writes the `[[control]]` for it, keeping the file's comments.
#[test]
fn learn_writes_the_control_for_the_next_midi_cc() {
    if !common::require_peers(&["jackd", "jack_lsp"]) {
        return;
    }
    let _one = JACK_TESTS.lock().unwrap_or_else(|e| e.into_inner());
    let jack = common::Jack::start("controls-learn");
    jack.set_process_env();
    let dir = tempfile::tempdir().unwrap();
    let mapping = dir.path().join("m.toml");
    let original =
        "# my controller\n[outputs.mon]\nkind = \"monitor\"\n[[route]]\noutput = \"mon\"\n\
                    match = { metric = \"loss\" }\nto = { param = \"pitch\" }\n\
                    [controls]\nmidi_virtual = \"sonograd-learn\"\n# the end\n";
    std::fs::write(&mapping, original).unwrap();
    let mut learn = common::Proc(
        jack.command(env!("CARGO_BIN_EXE_sonograd"))
            .args(["learn"])
            .arg(&mapping)
            .args(["lr_scale", "--timeout", "20"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let stderr = collect(learn.0.stderr.take().unwrap());
    let stdout = collect(learn.0.stdout.take().unwrap());
    assert!(
        common::wait_for(Duration::from_secs(20), || jack_ports(&jack)
            .iter()
            .any(|p| p.ends_with(":sonograd-learn"))),
        "learn opened no MIDI input: {:?}",
        stderr.lock().unwrap()
    );
    let mut knob = controller("learn-controller", "sonograd-learn");
    // CC 74 on channel 3.
    let deadline = Instant::now() + Duration::from_secs(20);
    while learn.0.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "learn never finished");
        knob.send(&[0xB2, 74, 90]).unwrap();
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        learn.0.wait().unwrap().success(),
        "{:?}",
        stderr.lock().unwrap()
    );
    let text = std::fs::read_to_string(&mapping).unwrap();
    assert!(
        text.starts_with(original),
        "the file's own lines stay: {text}"
    );
    let mapping = sonograd::mapping::check(&mapping).unwrap_or_else(|d| panic!("{d}\n{text}"));
    let c = &mapping.controls.list[0];
    assert_eq!(
        c.source,
        sonograd::mapping::controls::ControlSource::Cc {
            channel: 3,
            cc: 74,
            lsb: None
        },
        "{text}"
    );
    assert_eq!(
        c.target,
        sonograd::mapping::controls::ControlTarget::LrScale
    );
    assert!(
        stdout.lock().unwrap().iter().any(|l| l.contains("added")),
        "{:?}",
        stdout.lock().unwrap()
    );
}
