//! Runs `sonograd listen` as a real process.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// `sonograd listen`, ready for more arguments.
pub fn listen_command() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sonograd"));
    cmd.arg("listen").env("SONOGRAD_NO_AUDIO", "1");
    cmd
}

/// A running listener.
pub struct Running {
    pub child: Child,
    pub addrs: Vec<(String, SocketAddr)>,
    stderr: mpsc::Receiver<String>,
    pub lines: Vec<String>,
}

/// Starts the example with `args`, waits for its `listening:` lines (one per input).
pub fn start(args: &[&str], inputs: usize) -> Running {
    let mut child = listen_command()
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut running = Running {
        child,
        addrs: Vec::new(),
        stderr: rx,
        lines: Vec::new(),
    };
    while running
        .lines
        .iter()
        .filter(|l| l.starts_with("listening: "))
        .count()
        < inputs
    {
        let line = running
            .stderr
            .recv_timeout(Duration::from_secs(30))
            .expect("listener did not start");
        if let Some(rest) = line.strip_prefix("listening: ") {
            let mut parts = rest.split_whitespace();
            let kind = parts.next().unwrap().to_string();
            if let Some(addr) = parts.next() {
                running.addrs.push((kind, addr.parse().unwrap()));
            }
        }
        running.lines.push(line);
    }
    running
}

impl Running {
    /// The address of input `kind` (`udp-json`, `udp-osc`).
    pub fn addr(&self, kind: &str) -> SocketAddr {
        self.addrs.iter().find(|(k, _)| k == kind).unwrap().1
    }

    /// Asks for a clean stop (SIGTERM), waits, returns all stderr lines.
    pub fn stop(self) -> Vec<String> {
        // SAFETY: signalling our own child process by its id.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        self.wait()
    }

    /// Waits for exit (at most 60 s), returns all stderr lines.
    pub fn wait(mut self) -> Vec<String> {
        drop(self.child.stdin.take());
        for _ in 0..600 {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(status.success(), "listener failed: {status}");
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        if self.child.try_wait().unwrap().is_none() {
            let _ = self.child.kill();
            panic!("listener did not stop; stderr so far: {:?}", self.lines);
        }
        while let Ok(l) = self.stderr.recv_timeout(Duration::from_secs(2)) {
            self.lines.push(l);
        }
        self.lines
    }
}

/// The numbers of the `accounting:` line.
pub fn accounting(lines: &[String]) -> std::collections::HashMap<String, u64> {
    let line = lines
        .iter()
        .find(|l| l.starts_with("accounting: "))
        .unwrap_or_else(|| panic!("no accounting line in {lines:?}"));
    line["accounting: ".len()..]
        .split_whitespace()
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap();
            (k.to_string(), v.parse().unwrap())
        })
        .collect()
}

/// The `bad inputs:` summary as category -> count.
pub fn bad_counts(lines: &[String]) -> std::collections::HashMap<String, u64> {
    lines
        .iter()
        .find_map(|l| l.trim().strip_prefix("bad inputs: "))
        .map(|rest| {
            rest.split(", ")
                .map(|kv| {
                    let (k, v) = kv.rsplit_once(' ').unwrap();
                    (k.to_string(), v.parse().unwrap())
                })
                .collect()
        })
        .unwrap_or_default()
}
