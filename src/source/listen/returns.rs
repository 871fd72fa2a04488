//! Controls back to the senders (`docs/controls.md`, "Controls for a Python run").
//!
//! The UDP inputs learn the address each good event came from (the most recent
//! [`MAX_RETURNS`] distinct ones), and a `run_start` announcing `control_port` redirects its
//! sender to that port on the sender's host (stdin: on 127.0.0.1). [`ControlReturn::forward`]
//! sends a control event's JSON line, one datagram, to every address learned: from the
//! listening socket the sender sent to (so an unconnected client socket gets it from the
//! address it sends to), or for stdin announcements from an ephemeral loopback socket.
//!
//! Learning costs the receive threads one comparison per event while the sender does not
//! change, and a short lock when it does; forwarding never blocks (`MSG_DONTWAIT`) and
//! never panics: failures are counted.

use std::collections::VecDeque;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use socket2::{SockAddr, SockRef};

use crate::event::{Event, Payload};

/// Most distinct addresses controls go back to; the least recently heard is forgotten first.
pub const MAX_RETURNS: usize = 64;

/// The control targets a Python run applies, the only ones forwarded.
pub const CLIENT_TARGETS: &[&str] = &[
    "lr",
    "lr_scale",
    "momentum",
    "pause",
    "resume",
    "stop",
    "checkpoint",
];

/// Who an address was learned from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Key {
    /// Datagrams on UDP input `input` from `from`.
    Udp { input: usize, from: SocketAddr },
    /// A `run_start` on stdin announcing this port.
    Stdin { port: u16 },
}

#[derive(Clone, Copy, Debug)]
struct Entry {
    key: Key,
    /// Where controls go.
    to: SocketAddr,
}

#[derive(Debug, Default)]
struct Shared {
    /// Most recently heard at the back.
    entries: Mutex<VecDeque<Entry>>,
    /// Clones of the UDP inputs' sockets, by input index (`None`: the clone failed).
    sockets: Vec<Option<UdpSocket>>,
    /// The socket stdin announcements are answered from, made on first use.
    loopback: OnceLock<Option<UdpSocket>>,
    forwarded: AtomicU64,
    sent: AtomicU64,
    errors: AtomicU64,
    forgotten: AtomicU64,
}

impl Shared {
    fn entries(&self) -> MutexGuard<'_, VecDeque<Entry>> {
        // A panic elsewhere while holding the lock leaves a usable list: take it.
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Moves `key`'s entry to the back (most recent), making it with `to` if new; `redirect`
    /// replaces the destination of an existing entry.
    fn touch(&self, key: Key, to: SocketAddr, redirect: bool) {
        let mut entries = self.entries();
        let entry = match entries.iter().position(|e| e.key == key) {
            Some(i) => {
                let mut e = entries.remove(i).unwrap_or(Entry { key, to });
                if redirect {
                    e.to = to;
                }
                e
            }
            None => Entry { key, to },
        };
        entries.push_back(entry);
        while entries.len() > MAX_RETURNS {
            entries.pop_front();
            self.forgotten.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// What forwarding did, for the report.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReturnStats {
    /// Addresses controls go to now.
    pub destinations: usize,
    /// Control events forwarded (each to every destination).
    pub forwarded: u64,
    /// Datagrams sent.
    pub sent: u64,
    /// Datagrams that could not be sent (full buffer, unreachable, no socket).
    pub errors: u64,
    /// Addresses forgotten to keep at most [`MAX_RETURNS`].
    pub forgotten: u64,
}

/// Sends controls back to the runs that send to a [`super::Listener`]; cloneable, usable
/// from any thread, before, during and after the listener runs.
#[derive(Clone, Debug)]
pub struct ControlReturn {
    shared: Arc<Shared>,
}

impl ControlReturn {
    /// A return over the UDP inputs' sockets (clones of them; `None` where cloning failed).
    pub(crate) fn new(sockets: Vec<Option<UdpSocket>>) -> Self {
        ControlReturn {
            shared: Arc::new(Shared {
                sockets,
                ..Shared::default()
            }),
        }
    }

    /// Sends `event`'s JSON line as one datagram to every address learned, if it is a
    /// control whose target a Python run applies ([`CLIENT_TARGETS`]); returns how many
    /// datagrams went out. Never blocks, never panics; failures are counted in
    /// [`ReturnStats::errors`].
    pub fn forward(&self, event: &Event) -> usize {
        let Payload::Control { target, .. } = &event.payload else {
            return 0;
        };
        if !CLIENT_TARGETS.contains(&&**target) {
            return 0;
        }
        let destinations = self.destinations();
        if destinations.is_empty() {
            return 0;
        }
        self.shared.forwarded.fetch_add(1, Ordering::Relaxed);
        let line = event.to_json_line();
        let mut sent = 0;
        for (via, to) in destinations {
            let socket = match via {
                Some(i) => self.shared.sockets.get(i).and_then(Option::as_ref),
                None => self.loopback(),
            };
            let ok = socket.is_some_and(|s| send_now(s, line.as_bytes(), to).is_ok());
            if ok {
                sent += 1;
            } else {
                self.shared.errors.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.shared.sent.fetch_add(sent as u64, Ordering::Relaxed);
        sent
    }

    /// The addresses controls go to now, most recently heard last.
    pub fn addresses(&self) -> Vec<SocketAddr> {
        self.destinations().into_iter().map(|(_, to)| to).collect()
    }

    /// What forwarding did so far.
    pub fn stats(&self) -> ReturnStats {
        let s = &self.shared;
        ReturnStats {
            destinations: self.destinations().len(),
            forwarded: s.forwarded.load(Ordering::Relaxed),
            sent: s.sent.load(Ordering::Relaxed),
            errors: s.errors.load(Ordering::Relaxed),
            forgotten: s.forgotten.load(Ordering::Relaxed),
        }
    }

    /// A learner for UDP input `input` (`None`: stdin).
    pub(crate) fn learner(&self, input: Option<usize>) -> Learner {
        Learner {
            shared: self.shared.clone(),
            input,
            last: None,
        }
    }

    /// Distinct destinations and the socket each is sent from (`None`: the loopback one).
    fn destinations(&self) -> Vec<(Option<usize>, SocketAddr)> {
        let entries = self.shared.entries();
        let mut out: Vec<(Option<usize>, SocketAddr)> = Vec::with_capacity(entries.len());
        for e in entries.iter() {
            let via = match e.key {
                Key::Udp { input, .. } => Some(input),
                Key::Stdin { .. } => None,
            };
            if !out.iter().any(|(_, to)| *to == e.to) {
                out.push((via, e.to));
            }
        }
        out
    }

    fn loopback(&self) -> Option<&UdpSocket> {
        self.shared
            .loopback
            .get_or_init(|| UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).ok())
            .as_ref()
    }
}

/// Sends without waiting for room in the socket's buffer: the listening socket stays in
/// blocking mode for its receive loop, so the flag is given per call.
fn send_now(socket: &UdpSocket, data: &[u8], to: SocketAddr) -> io::Result<usize> {
    #[cfg(unix)]
    let flags = libc::MSG_DONTWAIT;
    #[cfg(not(unix))]
    let flags = 0;
    SockRef::from(socket).send_to_with_flags(data, &SockAddr::from(to), flags)
}

/// One input thread's side: notes where good events come from and what port `run_start`
/// announces.
#[derive(Debug)]
pub(crate) struct Learner {
    shared: Arc<Shared>,
    /// The UDP input's index; `None` for stdin.
    input: Option<usize>,
    /// The sender of the previous event, so a steady sender costs one comparison.
    last: Option<SocketAddr>,
}

impl Learner {
    /// A good event came from `from` (UDP; `None`: stdin, nothing to learn).
    pub(crate) fn heard(&mut self, from: Option<SocketAddr>) {
        let (Some(input), Some(from)) = (self.input, from) else {
            return;
        };
        if self.last == Some(from) {
            return;
        }
        self.last = Some(from);
        self.shared.touch(Key::Udp { input, from }, from, false);
    }

    /// A `run_start` from `from` (stdin: `None`) announced `port`: controls for its sender
    /// go to that port on its host (stdin: on 127.0.0.1). Port 0 announces nothing.
    pub(crate) fn announced(&mut self, from: Option<SocketAddr>, port: u16) {
        if port == 0 {
            return;
        }
        match (self.input, from) {
            (Some(input), Some(from)) => {
                self.last = Some(from);
                let to = SocketAddr::new(from.ip(), port);
                self.shared.touch(Key::Udp { input, from }, to, true);
            }
            (None, _) => {
                let to = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port);
                self.shared.touch(Key::Stdin { port }, to, true);
            }
            (Some(_), None) => {}
        }
    }

    /// Looks at a good event from `from`: learns the sender, and its `control_port`.
    pub(crate) fn saw(&mut self, event: &Event, from: Option<SocketAddr>) {
        if let Payload::RunStart { info } = &event.payload {
            if let Some(port) = info.control_port {
                self.announced(from, port);
                return;
            }
        }
        self.heard(from);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::RunInfo;
    use std::time::Duration;

    fn control(target: &str, value: f64) -> Event {
        Event::new(
            12,
            0,
            1_700_000_000.5,
            Payload::Control {
                control: "lr knob".into(),
                source: "osc:/sonograd/control/lr".into(),
                target: target.into(),
                value,
            },
        )
    }

    fn run_start(control_port: Option<u16>) -> Event {
        Event::new(
            0,
            0,
            1_700_000_000.0,
            Payload::RunStart {
                info: Box::new(RunInfo {
                    control_port,
                    ..RunInfo::default()
                }),
            },
        )
    }

    fn client() -> UdpSocket {
        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s
    }

    fn listening() -> (UdpSocket, ControlReturn) {
        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
        let r = ControlReturn::new(vec![Some(s.try_clone().unwrap())]);
        (s, r)
    }

    fn receive(s: &UdpSocket) -> (Event, SocketAddr) {
        let mut buf = [0u8; 2048];
        let (n, from) = s.recv_from(&mut buf).unwrap();
        let line = std::str::from_utf8(&buf[..n]).unwrap();
        (Event::from_json_line(line).unwrap(), from)
    }

    #[test]
    fn a_control_goes_back_to_the_sender_from_the_address_it_sends_to() {
        let (listen, returns) = listening();
        let a = client();
        let mut learner = returns.learner(Some(0));
        learner.saw(&run_start(None), Some(a.local_addr().unwrap()));
        let sent = returns.forward(&control("lr_scale", 0.5));
        assert_eq!(sent, 1);
        let (event, from) = receive(&a);
        assert_eq!(event, control("lr_scale", 0.5));
        assert_eq!(from, listen.local_addr().unwrap());
        let stats = returns.stats();
        assert_eq!((stats.destinations, stats.forwarded, stats.sent), (1, 1, 1));
        assert_eq!(stats.errors, 0);
    }

    #[test]
    fn only_training_controls_are_forwarded() {
        let (_listen, returns) = listening();
        let a = client();
        returns
            .learner(Some(0))
            .heard(Some(a.local_addr().unwrap()));
        assert_eq!(returns.forward(&control("volume", 0.5)), 0);
        assert_eq!(returns.forward(&control("mark", 1.0)), 0);
        assert_eq!(returns.forward(&run_start(None)), 0);
        for target in CLIENT_TARGETS {
            assert_eq!(returns.forward(&control(target, 1.0)), 1, "{target}");
            let (event, _) = receive(&a);
            assert_eq!(event, control(target, 1.0));
        }
    }

    #[test]
    fn an_announced_control_port_replaces_the_source_address() {
        let (_listen, returns) = listening();
        let sender = client();
        let controls = client();
        let port = controls.local_addr().unwrap().port();
        let mut learner = returns.learner(Some(0));
        let from = Some(sender.local_addr().unwrap());
        learner.saw(&run_start(Some(port)), from);
        // Later events from the same sender keep the announced port.
        learner.last = None;
        learner.saw(&control("lr", 0.1), from);
        assert_eq!(returns.addresses(), vec![controls.local_addr().unwrap()]);
        assert_eq!(returns.forward(&control("stop", 1.0)), 1);
        assert_eq!(receive(&controls).0, control("stop", 1.0));
        sender.set_nonblocking(true).unwrap();
        let mut buf = [0u8; 64];
        assert!(sender.recv(&mut buf).is_err(), "the source port got it too");
    }

    #[test]
    fn a_stdin_announcement_is_answered_on_loopback() {
        let returns = ControlReturn::new(vec![]);
        let controls = client();
        let port = controls.local_addr().unwrap().port();
        let mut learner = returns.learner(None);
        learner.heard(None);
        assert!(returns.addresses().is_empty());
        learner.saw(&run_start(Some(port)), None);
        learner.saw(&run_start(Some(port)), None);
        assert_eq!(returns.addresses(), vec![controls.local_addr().unwrap()]);
        assert_eq!(returns.forward(&control("pause", 1.0)), 1);
        assert_eq!(receive(&controls).0, control("pause", 1.0));
        learner.announced(None, 0);
        assert_eq!(returns.addresses().len(), 1);
    }

    #[test]
    fn the_most_recent_senders_are_kept() {
        let (_listen, returns) = listening();
        let mut learner = returns.learner(Some(0));
        let addr = |p: u16| SocketAddr::from(([127, 0, 0, 1], p));
        for p in 0..(MAX_RETURNS as u16 + 10) {
            learner.heard(Some(addr(1000 + p)));
        }
        // The first sender speaks again: it becomes the most recent.
        learner.heard(Some(addr(1000 + 20)));
        let kept = returns.addresses();
        assert_eq!(kept.len(), MAX_RETURNS);
        assert_eq!(kept.last(), Some(&addr(1020)));
        assert!(!kept.contains(&addr(1000 + 9)) && kept.contains(&addr(1000 + 10)));
        assert_eq!(returns.stats().forgotten, 10);
    }

    #[test]
    fn failures_are_counted_not_raised() {
        // No socket for the input (its clone failed), and an address of the wrong family.
        let returns = ControlReturn::new(vec![None]);
        let mut learner = returns.learner(Some(0));
        learner.heard(Some("127.0.0.1:9".parse().unwrap()));
        assert_eq!(returns.forward(&control("lr", 0.1)), 0);
        let (_listen, v4) = listening();
        v4.learner(Some(0)).heard(Some("[::1]:9".parse().unwrap()));
        assert_eq!(v4.forward(&control("lr", 0.1)), 0);
        assert_eq!(returns.stats().errors + v4.stats().errors, 2);
        // An input index without a socket.
        let (_l, r) = listening();
        r.learner(Some(3))
            .heard(Some("127.0.0.1:9".parse().unwrap()));
        assert_eq!(r.forward(&control("lr", 0.1)), 0);
        assert_eq!(r.stats().errors, 1);
    }
}
