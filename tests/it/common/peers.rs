//! The tests' real peers (jackd, scsynth, oscdump, fluidsynth, chromium, the venv's Python):
//! finding them, skipping or failing without them, running them, and the locks that keep
//! tests of one process from sharing what must not be shared.

use std::io::{BufRead, BufReader};
use std::net::UdpSocket;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Whether a program is on the PATH.
pub fn have(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Whether a missing peer fails the test instead of skipping it: when the environment
/// variable `CI` is set (to anything but empty, `0` or `false`), or `SONOGRAD_REQUIRE_PEERS=1`
/// (`scripts/test.sh`, which installs every peer, sets it).
pub fn peers_required() -> bool {
    let ci = std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "0" && v != "false");
    ci || std::env::var("SONOGRAD_REQUIRE_PEERS").is_ok_and(|v| v == "1")
}

/// The one place a test decides about a missing peer: true when `available`; otherwise
/// fails the test under CI ([`peers_required`]) and elsewhere prints `SKIPPED: what` and
/// returns false (the test then returns).
pub fn require(available: bool, what: &str) -> bool {
    if available {
        return true;
    }
    assert!(
        !peers_required(),
        "{what}: a peer is missing and CI (or SONOGRAD_REQUIRE_PEERS=1) is set, so this fails \
         (bash scripts/test.sh installs every peer)"
    );
    eprintln!("SKIPPED: {what} (bash scripts/test.sh installs every peer; under CI this fails)");
    false
}

/// [`require`] for programs on the PATH: `if !require_peers(&["jackd"]) { return; }`.
pub fn require_peers(programs: &[&str]) -> bool {
    let missing: Vec<&str> = programs.iter().copied().filter(|p| !have(p)).collect();
    require(
        missing.is_empty(),
        &format!("`{}` not installed", missing.join("`, `")),
    )
}

/// Takes a lock even when a test that held it panicked.
pub fn lock(m: &'static Mutex<()>) -> MutexGuard<'static, ()> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Held by tests that open MIDI schedulers in this process: `stop_all_notes` ends the notes
/// of every scheduler of the process, so its test must not see another test's.
pub static MIDI_SCHEDULERS: Mutex<()> = Mutex::new(());

/// A UDP port that is free right now.
pub fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A child process ended on drop: SIGTERM first (jackd and scsynth then remove their
/// shared-memory registrations; SIGKILLed servers leave them behind, and JACK refuses a
/// ninth server), SIGKILL after two seconds.
pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = Command::new("kill")
                .args(["-TERM", &self.0.id().to_string()])
                .status();
            let gone = wait_for(Duration::from_secs(2), || {
                matches!(self.0.try_wait(), Ok(Some(_)))
            });
            if !gone {
                let _ = self.0.kill();
            }
        }
        let _ = self.0.wait();
    }
}

/// Waits until `f` is true or `timeout` passes; returns the last value of `f`.
pub fn wait_for(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let until = Instant::now() + timeout;
    loop {
        if f() {
            return true;
        }
        if Instant::now() >= until {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A JACK dummy server (48 kHz, 256 frames) named `sonograd-TAG`, stopped on drop.
///
/// Each test uses its own tag, so tests of one process run their servers side by side.
/// Children find the server through [`Jack::command`]; nothing is set in this process's
/// environment (tests run as threads: see [`Jack::set_process_env`] for in-process clients).
/// The name is fixed per tag on purpose: JACK keeps at most 8 servers in its shared registry
/// and reclaims the entry of a dead server only when a server of the same name starts, so
/// names that change every run (a pid) fill the registry ("Too many servers already
/// active") after a few killed runs.
pub struct Jack {
    pub name: String,
    pub server: Proc,
}

impl Jack {
    pub fn start(tag: &str) -> Jack {
        let name = format!("sonograd-{tag}");
        let server = Proc(
            Command::new("jackd")
                .args(["-n", &name, "-r", "-d", "dummy", "-r", "48000", "-p", "256"])
                .env("JACK_NO_AUDIO_RESERVATION", "1")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start jackd"),
        );
        let jack = Jack { name, server };
        let ok = jack
            .command("jack_wait")
            .args(["-s", &jack.name, "-w", "-t", "10"])
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "the JACK dummy server {} did not start", jack.name);
        jack
    }

    /// `program` as a client of this server.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut cmd = Command::new(program);
        cmd.env("JACK_DEFAULT_SERVER", &self.name)
            .env("JACK_NO_START_SERVER", "1");
        cmd
    }

    /// Makes this server the default of in-process JACK clients (cpal, midir). Only for
    /// test binaries whose JACK tests run one at a time: the environment is the process's.
    pub fn set_process_env(&self) {
        std::env::set_var("JACK_DEFAULT_SERVER", &self.name);
        std::env::set_var("JACK_NO_START_SERVER", "1");
        std::env::set_var("JACK_NO_AUDIO_RESERVATION", "1");
    }
}

/// Starts `oscdump -L URL` and collects its lines.
pub fn oscdump(url: &str) -> (Proc, Arc<Mutex<Vec<String>>>) {
    let mut child = Command::new("oscdump")
        .args(["-L", url])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let lines = Arc::new(Mutex::new(Vec::new()));
    let out = child.stdout.take().unwrap();
    let sink = lines.clone();
    std::thread::spawn(move || {
        for l in BufReader::new(out).lines().map_while(Result::ok) {
            sink.lock().unwrap().push(l);
        }
    });
    (Proc(child), lines)
}
