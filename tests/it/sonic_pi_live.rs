//! Sonic Pi for real, headless: Debian's `sonic-pi-server` package is Sonic Pi 3.2's whole
//! back end without its Qt GUI (`dpkg -L sonic-pi-server`: the Ruby server
//! `/usr/lib/sonic-pi/app/server/ruby/bin/sonic-pi-server.rb`, the Erlang OSC scheduler
//! `pi_server.beam` that receives the cues on the cue port, and it boots scsynth itself,
//! finding the JACK server already running). The test plays the GUI's part over OSC, as the
//! GUI would: it listens on the GUI port, starts the cue port (`/cue-port-start`, which the
//! GUI sends at start-up: without it no external cue arrives), and sends
//! `patches/sonic-pi/sonograd.rb` as `/run-code`. Then `sonograd replay --mapping
//! config/sonic-pi.toml` plays it:
//! - Sonic Pi's own cue log (`/incoming/osc`, the GUI's Cues pane) holds every message the
//!   replay's `--monitor` shows, for every kind of cue: grad, loss, epoch, the NaN alarm, the
//!   explosion and the detector's diagnoses (`non_finite`, `loss_spike`);
//! - its live loops played them (their `/log/multi_message` lines: "synced ..." and the
//!   synth or sample they played), every loop at least once;
//! - `jack_capture` of its scsynth is silent before the replay and sounds during it.
//!
//! Everything is isolated per test: its own JACK dummy server, nine free ports,
//! `SONIC_PI_HOME` (logs, init file) and `TMPDIR` (Sonic Pi's pid store, whose processes the
//! test ends by id: `/exit` leaves the Erlang scheduler running).

use crate::common;
use crate::common::live::{self, OscText};

use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rosc::{OscMessage, OscPacket, OscType};

const SERVER: &str = "/usr/lib/sonic-pi/app/server/ruby/bin/sonic-pi-server.rb";

fn send(sock: &UdpSocket, port: u16, addr: &str, args: Vec<OscType>) {
    let p = OscPacket::Message(OscMessage {
        addr: addr.into(),
        args,
    });
    let _ = sock.send_to(&rosc::encoder::encode(&p).unwrap(), ("127.0.0.1", port));
}

fn collect(p: OscPacket, out: &mut Vec<OscMessage>) {
    match p {
        OscPacket::Message(m) => out.push(m),
        OscPacket::Bundle(b) => b.content.into_iter().for_each(|p| collect(p, out)),
    }
}

fn text(a: &OscType) -> String {
    match a {
        OscType::String(s) => s.clone(),
        OscType::Int(i) => i.to_string(),
        OscType::Float(f) => f.to_string(),
        other => format!("{other:?}"),
    }
}

/// A headless Sonic Pi server on `jack`, with the patch running; shut down on drop.
struct SonicPi {
    proc: Option<common::Proc>,
    lines: live::Lines,
    /// What the server sent to the GUI.
    gui: Arc<Mutex<Vec<OscMessage>>>,
    ctl: UdpSocket,
    server_port: u16,
    cue_port: u16,
    tmp: tempfile::TempDir,
}

impl SonicPi {
    fn start(jack: &common::Jack) -> SonicPi {
        let tmp = tempfile::tempdir().unwrap();
        let gui_sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        let gui_port = gui_sock.local_addr().unwrap().port();
        // server, (gui), scsynth, scsynth send, cues, erlang, midi out, midi in, websocket.
        let ports: Vec<u16> = (0..7).map(|_| common::free_udp_port()).collect();
        let (server_port, scsynth, cue_port) = (ports[0], ports[1], ports[2]);
        let gui = Arc::new(Mutex::new(Vec::new()));
        let sink = gui.clone();
        gui_sock
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 65536];
            loop {
                match gui_sock.recv(&mut buf) {
                    Ok(n) => {
                        if let Ok((_, p)) = rosc::decoder::decode_udp(&buf[..n]) {
                            let mut got = Vec::new();
                            collect(p, &mut got);
                            sink.lock().unwrap_or_else(|e| e.into_inner()).extend(got);
                        }
                    }
                    Err(_) => {
                        // The test is over when nobody else holds the log.
                        if Arc::strong_count(&sink) == 1 {
                            return;
                        }
                    }
                }
            }
        });
        let home = tmp.path().join("home");
        std::fs::create_dir_all(&home).unwrap();
        let mut cmd = jack.command("ruby");
        cmd.arg(SERVER)
            .arg("-u")
            .args(
                [
                    server_port,
                    gui_port,
                    scsynth,
                    scsynth,
                    cue_port,
                    ports[3],
                    ports[4],
                    ports[5],
                    ports[6],
                ]
                .map(|p| p.to_string()),
            )
            .env("SONIC_PI_HOME", &home)
            .env("TMPDIR", tmp.path());
        let (proc, lines) = live::spawn_lines(cmd);
        let sp = SonicPi {
            proc: Some(proc),
            lines,
            gui,
            ctl: UdpSocket::bind("127.0.0.1:0").unwrap(),
            server_port,
            cue_port,
            tmp,
        };
        let up = sp.lines.wait(Duration::from_secs(90), |l| {
            l.contains("Sonic Pi Server successfully booted")
        });
        assert!(up, "sonic-pi-server did not boot:\n{}", sp.lines.tail(40));
        sp
    }

    fn gui(&self) -> Vec<OscMessage> {
        self.gui.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// `/log/info` lines and `/log/multi_message` texts, for failure messages.
    fn log_tail(&self) -> String {
        let g = self.gui();
        let lines: Vec<String> = g
            .iter()
            .map(|m| {
                format!(
                    "{} {}",
                    m.addr,
                    m.args.iter().map(text).collect::<Vec<_>>().join(" | ")
                )
            })
            .collect();
        format!(
            "server:\n{}\nGUI messages:\n{}",
            self.lines.tail(20),
            lines[lines.len().saturating_sub(30)..].join("\n")
        )
    }

    /// Sends code as the GUI's Run button does and waits until `loops` live loops wait on
    /// their cues (a run of live loops never completes).
    fn run_code(&self, code: &str, loops: usize) {
        send(
            &self.ctl,
            self.server_port,
            "/run-code",
            vec![OscType::Int(0), OscType::String(code.into())],
        );
        let waiting = || {
            self.gui()
                .iter()
                .filter(|m| m.addr == "/log/multi_message")
                .flat_map(|m| m.args.iter())
                .filter_map(|a| match a {
                    OscType::String(s) if s.starts_with("sync \"/osc*/trigger/") => Some(s.clone()),
                    _ => None,
                })
                .collect::<std::collections::BTreeSet<_>>()
                .len()
        };
        let ready = common::wait_for(Duration::from_secs(30), || waiting() >= loops);
        let errors: Vec<_> = self
            .gui()
            .into_iter()
            .filter(|m| m.addr == "/error" || m.addr == "/syntax_error")
            .collect();
        assert!(errors.is_empty(), "errors running the code: {errors:?}");
        assert!(
            ready,
            "{} of {loops} live loops wait on their cues:\n{}",
            waiting(),
            self.log_tail()
        );
    }

    /// The cue log: (address without "/osc:HOST:PORT", arguments) of each external OSC cue.
    fn cues(&self) -> Vec<OscText> {
        self.gui()
            .iter()
            .filter(|m| m.addr == "/incoming/osc")
            .filter_map(|m| {
                let (OscType::String(addr), OscType::String(args)) =
                    (m.args.get(2)?, m.args.get(3)?)
                else {
                    return None;
                };
                let rest = addr.strip_prefix("/osc:")?;
                let addr = &rest[rest.find('/')?..];
                // Ruby's inspect of the arguments: `[1, 60.0]`, `["fc2", 116]`.
                let inner = args.trim_start_matches('[').trim_end_matches(']');
                let args = if inner.is_empty() {
                    vec![]
                } else {
                    inner
                        .split(", ")
                        .map(|w| w.trim_matches('"').to_string())
                        .collect()
                };
                Some((addr.to_string(), args))
            })
            .collect()
    }

    /// How many times a live loop synced on a cue (its `/log/multi_message` lines).
    fn played(&self, cue: &str) -> usize {
        let synced = format!("synced \"/osc*{cue}\"");
        self.gui()
            .iter()
            .filter(|m| m.addr == "/log/multi_message")
            .filter(|m| {
                m.args
                    .iter()
                    .any(|a| matches!(a, OscType::String(s) if s.starts_with(&synced)))
            })
            .count()
    }
}

impl Drop for SonicPi {
    fn drop(&mut self) {
        send(&self.ctl, self.server_port, "/exit", vec![OscType::Int(0)]);
        if let Some(p) = self.proc.as_mut() {
            common::wait_for(Duration::from_secs(5), || {
                p.0.try_wait().is_ok_and(|s| s.is_some())
            });
        }
        // The processes Sonic Pi started (scsynth, the Erlang scheduler, osmid), by id.
        let store: PathBuf = self.tmp.path().join("sonic-pi-pids");
        if let Ok(dir) = std::fs::read_dir(&store) {
            for e in dir.flatten() {
                if let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() {
                    let _ = Command::new("kill")
                        .args(["-TERM", &pid.to_string()])
                        .stderr(std::process::Stdio::null())
                        .status();
                }
            }
        }
        self.proc.take();
    }
}

/// Replays `rec` paced through `mapping` with `--monitor`; the monitor's OSC messages.
fn replay(rec: &Path, mapping: &Path) -> Vec<OscText> {
    let out = common::run_ok(&[
        "replay",
        rec.to_str().unwrap(),
        "--mapping",
        mapping.to_str().unwrap(),
        "--monitor",
        "--quiet",
        "--step-ms",
        &live::STEP_MS.to_string(),
    ]);
    live::monitor_osc(&out.stdout)
}

fn patch() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("patches/sonic-pi/sonograd.rb");
    std::fs::read_to_string(path).unwrap()
}

#[test]
fn sonic_pi_server_plays_the_live_loops_headless() {
    if !common::require_peers(&["ruby", "jackd", "jack_wait", "jack_capture", "scsynth"])
        || !common::require(
            Path::new(SERVER).exists(),
            "`sonic-pi-server` not installed",
        )
    {
        return;
    }
    let jack = common::Jack::start("sonic-pi");
    let sp = SonicPi::start(&jack);
    // Five loops for the cues, eight for the diagnoses.
    sp.run_code(&patch(), 13);
    // Start the cue port and probe until a cue is logged: the server forwards
    // /cue-port-start to its Erlang scheduler over UDP, which may not listen yet on a busy
    // machine, so it is sent again with every probe (starting it twice is harmless).
    let probe = UdpSocket::bind("127.0.0.1:0").unwrap();
    let open = common::wait_for(Duration::from_secs(30), || {
        send(
            &sp.ctl,
            sp.server_port,
            "/cue-port-start",
            vec![OscType::Int(0)],
        );
        std::thread::sleep(Duration::from_millis(100));
        send(&probe, sp.cue_port, "/sonograd/probe", vec![]);
        std::thread::sleep(Duration::from_millis(200));
        sp.cues().iter().any(|(a, _)| a == "/sonograd/probe")
    });
    assert!(open, "no cue arrived on the cue port:\n{}", sp.log_tail());
    let probes = sp.cues().len();

    let dir = tempfile::tempdir().unwrap();
    let mapping = live::mapping_file(
        dir.path(),
        "sonic-pi.toml",
        "port = 4560",
        &format!("port = {}", sp.cue_port),
    );
    let rec = dir.path().join("run.jsonl");
    live::write_two_halves(&rec);
    let wav = dir.path().join("sonic-pi.wav");
    let replay_secs = live::STEPS as f64 * live::STEP_MS / 1000.0;
    let cap = live::capture(&jack, &wav, replay_secs + 4.0);
    let cap_started = Instant::now();
    // 1.5 s of the capture before the replay: Sonic Pi must be silent then (the window
    // ends 0.6 s early: a busy machine may start the capture that much late).
    std::thread::sleep(Duration::from_millis(1500));
    let offset = cap_started.elapsed().as_secs_f64();
    let sent = replay(&rec, &mapping);
    for addr in [
        "/trigger/grad",
        "/trigger/loss",
        "/trigger/epoch",
        "/trigger/alarm",
        "/trigger/explosion",
        "/trigger/diagnosis/non_finite",
        "/trigger/diagnosis/loss_spike",
    ] {
        assert!(
            sent.iter().any(|(a, _)| a == addr),
            "the replay sent no {addr}: {:?}",
            sent.iter()
                .map(|(a, _)| a)
                .collect::<std::collections::BTreeSet<_>>()
        );
    }
    common::wait_for(Duration::from_secs(15), || {
        sp.cues().len() >= probes + sent.len()
    });
    let cues: Vec<OscText> = sp
        .cues()
        .into_iter()
        .filter(|(a, _)| a != "/sonograd/probe")
        .collect();
    let problems = live::compare_by_address(&sent, &cues);
    assert!(
        problems.is_empty(),
        "Sonic Pi's cue log differs from the monitor:\n{}\n{}",
        problems.join("\n"),
        sp.log_tail()
    );

    // Its live loops played them: each loop synced at least once; the grad loop (12 cues a
    // second at most) on most of its cues.
    common::wait_for(Duration::from_secs(10), || {
        sp.played("/trigger/diagnosis/non_finite") > 0
    });
    let kinds: std::collections::BTreeSet<&str> = sent.iter().map(|(a, _)| a.as_str()).collect();
    for cue in &kinds {
        assert!(
            sp.played(cue) > 0,
            "no live loop played {cue}:\n{}",
            sp.log_tail()
        );
    }
    let grads = sent.iter().filter(|(a, _)| a == "/trigger/grad").count();
    let played = sp.played("/trigger/grad");
    assert!(
        played * 2 >= grads,
        "the grad loop played {played} of {grads} cues"
    );
    let said = |needle: &str| {
        sp.gui().iter().any(|m| {
            m.addr == "/log/multi_message"
                && m.args
                    .iter()
                    .any(|a| matches!(a, OscType::String(s) if s.contains(needle)))
        })
    };
    assert!(
        said(&format!(
            "sonograd: non-finite value in fc2 at step {}",
            live::NAN_STEP
        )),
        "no alarm in the log:\n{}",
        sp.log_tail()
    );
    assert!(
        said("sonograd: diagnosis loss_spike"),
        "no loss_spike in the log:\n{}",
        sp.log_tail()
    );

    live::finish_capture(cap, &wav, Duration::from_secs(20));
    let (sr, l, r) = common::read_wav(&wav);
    let x = common::mono(&l, &r);
    let before = common::rms(live::seconds(&x, sr, 0.1, offset - 0.6));
    let during = common::rms(live::seconds(&x, sr, offset + 0.5, offset + replay_secs));
    assert!(
        during > 0.01 && during > 20.0 * before,
        "captured audio: rms {before:.2e} before the replay, {during:.2e} during it"
    );

    // Every diagnosis kind, each its own chord (the recording carries its diagnoses).
    let rec = dir.path().join("diagnoses.jsonl");
    let last = live::write_diagnoses(&rec);
    let before_cues = sp.cues().len();
    let wav = dir.path().join("diagnoses.wav");
    let cap = live::capture(&jack, &wav, last as f64 * live::STEP_MS / 1000.0 + 2.0);
    let sent = replay(&rec, &mapping);
    common::wait_for(Duration::from_secs(15), || {
        sp.cues().len() >= before_cues + sent.len()
    });
    let cues = sp.cues().split_off(before_cues);
    let problems = live::compare_by_address(&sent, &cues);
    assert!(
        problems.is_empty(),
        "Sonic Pi's cue log differs from the monitor:\n{}\n{}",
        problems.join("\n"),
        sp.log_tail()
    );
    for (i, (kind, _)) in live::CHORDS.iter().enumerate() {
        let line = format!(
            "sonograd: diagnosis {} in fc2 at step {}",
            kind.name(),
            live::diagnosis_step(i)
        );
        let ok = common::wait_for(Duration::from_secs(5), || said(&line));
        assert!(ok, "no {line:?} in the log:\n{}", sp.log_tail());
    }
    live::finish_capture(cap, &wav, Duration::from_secs(20));
    let (sr, l, r) = common::read_wav(&wav);
    live::assert_chords(&common::mono(&l, &r), sr);
}
