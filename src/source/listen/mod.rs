//! `sonograd listen`: events from a foreign training run, routed exactly as `train` routes
//! its own.
//!
//! Inputs (any combination):
//! * JSON lines on stdin (`stdin`),
//! * JSON lines over UDP, one or more lines per datagram, or one compact step datagram
//!   (`compact`) on the same socket (`udp_json`),
//! * OSC over UDP in the scheme documented in [`osc_scheme`] (`udp_osc`).
//!
//! UDP inputs bind 127.0.0.1 unless another address is given. Each input runs on its own
//! thread: it decodes ([`decode`], [`osc_scheme`]: pure), counts and warns about bad inputs
//! (`stats`) and hands good events over a bounded channel to [`Listener::run`], which
//! checks them ([`admit`]: bounded names, plausible clock), tallies senders ([`senders`])
//! and passes them to the caller's [`EventSender`] (the same never-blocking, coalescing
//! queue `train` feeds). Every datagram is thereby routed, counted as coalesced by the
//! queue, counted as bad, or counted by the kernel as dropped (read at the end from
//! `/proc/net/udp`).
//!
//! Controls go back the other way ([`returns`]): the inputs learn where good events come
//! from (and the `control_port` a `run_start` announces), and the [`ControlReturn`] of
//! [`Listener::control_return`] sends control events there.

pub mod admit;
pub(crate) mod compact;
pub mod decode;
pub(crate) mod intake;
pub mod osc_scheme;
pub mod returns;
pub mod senders;
pub(crate) mod stats;
pub(crate) mod stdin;
pub(crate) mod udp;
pub(crate) mod udp_json;
pub(crate) mod udp_osc;

use std::fmt;
use std::io::{BufReader, Read};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::event::{Event, Payload};
use crate::pipeline::queue::EventSender;

pub use decode::{BadInput, BadKind};
pub use intake::InputReport;
pub use returns::{ControlReturn, ReturnStats};
pub use senders::SenderFilter;

use admit::Admission;
use intake::Intake;
use senders::{SenderKey, SenderTally};
use stats::{BadCounts, Warner};

/// Default port of JSON lines over UDP.
pub const DEFAULT_UDP_PORT: u16 = 9107;
/// Default port of OSC over UDP.
pub const DEFAULT_OSC_PORT: u16 = 9108;
/// Default limit on a datagram's size (bytes); larger ones are counted and skipped.
pub const DEFAULT_MAX_DATAGRAM: usize = 32 * 1024;
/// Default limit on a stdin line's length (bytes).
pub const DEFAULT_MAX_LINE: usize = 64 * 1024;
/// Default receive buffer asked of the kernel per UDP socket (bytes).
pub const DEFAULT_RECV_BUFFER: usize = 16 << 20;
/// Events waiting between the input threads and the queue.
const HANDOVER_CAPACITY: usize = 16 * 1024;

/// What to listen to and the limits that keep memory bounded.
#[derive(Clone, Debug)]
pub struct ListenOptions {
    /// Read JSON lines from the process's stdin.
    pub stdin: bool,
    /// Receive JSON lines over UDP at this address.
    pub udp_json: Option<SocketAddr>,
    /// Receive OSC over UDP at this address.
    pub udp_osc: Option<SocketAddr>,
    /// Largest datagram accepted (bytes).
    pub max_datagram: usize,
    /// Longest stdin line accepted (bytes).
    pub max_line: usize,
    /// Receive buffer asked of the kernel per UDP socket (bytes).
    pub recv_buffer: usize,
    /// Most distinct layers, eval names, runs and ranks (each).
    pub max_series: usize,
    /// Stop once this many `run_end` events arrived (e.g. the number of ranks).
    pub stop_after_run_ends: Option<u64>,
    /// Print rate-limited warnings about bad inputs on stderr.
    pub warnings: bool,
}

impl Default for ListenOptions {
    fn default() -> Self {
        ListenOptions {
            stdin: false,
            udp_json: None,
            udp_osc: None,
            max_datagram: DEFAULT_MAX_DATAGRAM,
            max_line: DEFAULT_MAX_LINE,
            recv_buffer: DEFAULT_RECV_BUFFER,
            max_series: admit::DEFAULT_MAX_SERIES,
            stop_after_run_ends: None,
            warnings: true,
        }
    }
}

/// Why listening could not start.
#[derive(Debug, thiserror::Error)]
pub enum ListenError {
    /// No input was chosen.
    #[error("nothing to listen to: give --stdin, --udp [ADDR] and/or --osc [ADDR]")]
    NoInput,
    /// An address flag could not be read.
    #[error("{flag}: {value:?} is not an address; expected PORT, HOST:PORT or IP:PORT (e.g. 9107, 127.0.0.1:9107, [::1]:9107)")]
    BadAddress {
        /// The flag, e.g. `--udp`.
        flag: String,
        /// What was given.
        value: String,
    },
    /// A socket could not be bound.
    #[error("{input}: cannot bind {addr}: {source}")]
    Bind {
        /// `udp-json` or `udp-osc`.
        input: &'static str,
        /// The address.
        addr: SocketAddr,
        /// What the OS said.
        source: std::io::Error,
    },
    /// A limit is out of range.
    #[error("{0}")]
    BadLimit(String),
}

/// Reads an address flag: `PORT` (on 127.0.0.1), `IP:PORT`, `[IPv6]:PORT` or `HOST:PORT`
/// (resolved, first address). `flag` only names the flag in the error.
pub fn parse_listen_addr(flag: &str, value: &str) -> Result<SocketAddr, ListenError> {
    let bad = || ListenError::BadAddress {
        flag: flag.to_string(),
        value: value.to_string(),
    };
    let value_t = value.trim();
    if let Ok(port) = value_t.parse::<u16>() {
        return Ok(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port));
    }
    if let Ok(addr) = value_t.parse::<SocketAddr>() {
        return Ok(addr);
    }
    if !value_t.contains(':') {
        return Err(bad());
    }
    use std::net::ToSocketAddrs;
    value_t
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .ok_or_else(bad)
}

/// The default address of an input: 127.0.0.1 and its port.
pub fn default_addr(port: u16) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port)
}

/// A bound input, as reported when listening starts.
#[derive(Clone, Debug, PartialEq)]
pub struct BoundInput {
    /// `udp-json`, `udp-osc` or `stdin`.
    pub kind: &'static str,
    /// The bound address (UDP).
    pub addr: Option<SocketAddr>,
    /// The receive buffer the kernel granted (UDP).
    pub recv_buffer: Option<usize>,
}

impl fmt::Display for BoundInput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.addr {
            Some(a) => write!(f, "{} {a}", self.kind),
            None => f.write_str(self.kind),
        }
    }
}

enum Source {
    Udp {
        socket: UdpSocket,
        decode: fn(&[u8], &mut Intake),
    },
    Reader(Box<dyn Read + Send>),
}

/// A listener with its sockets bound, ready to [`run`](Listener::run).
pub struct Listener {
    opts: ListenOptions,
    inputs: Vec<(BoundInput, Source)>,
    warn_out: Option<Box<dyn std::io::Write + Send>>,
    returns: ControlReturn,
    /// Events of [`Injector`]s.
    injected: (
        crossbeam_channel::Sender<Event>,
        crossbeam_channel::Receiver<Event>,
    ),
    last_step: Arc<std::sync::atomic::AtomicU64>,
}

/// Puts events of its own into a listener's stream (the controls a person applied), stamped
/// with the last step the listener has seen.
#[derive(Clone)]
pub struct Injector {
    tx: crossbeam_channel::Sender<Event>,
    last_step: Arc<std::sync::atomic::AtomicU64>,
}

impl Injector {
    /// The step of the latest event the listener passed on.
    pub fn last_step(&self) -> u64 {
        self.last_step.load(Ordering::Relaxed)
    }

    /// Adds `event` to the stream (dropped when the stream is full or over).
    pub fn send(&self, event: Event) -> bool {
        self.tx.try_send(event).is_ok()
    }
}

/// What a listener saw, for the summary at the end.
#[derive(Clone, Debug, Default)]
pub struct ListenReport {
    /// Per input.
    pub inputs: Vec<InputReport>,
    /// Events handed to the queue.
    pub events: u64,
    /// Events the queue merged because its consumer fell behind (read when listening ended).
    pub coalesced: u64,
    /// Bad inputs per category (non-zero ones, in report order).
    pub bad: Vec<(BadKind, u64)>,
    /// Events whose missing or implausible time was replaced by the receive time.
    pub restamped: u64,
    /// Events per sender (run, rank).
    pub senders: Vec<(SenderKey, u64)>,
    /// Events from senders past the tally's limit.
    pub other_senders: u64,
    /// How long listening lasted.
    pub elapsed: Duration,
    /// Why it ended.
    pub ended_by: EndedBy,
    /// Controls sent back to the senders (read when listening ended).
    pub returns: ReturnStats,
}

/// Why listening ended.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum EndedBy {
    /// The stop flag (Ctrl-C, SIGTERM).
    #[default]
    Stop,
    /// Every input ended (stdin closed and no UDP input).
    InputsClosed,
    /// The requested number of `run_end` events arrived.
    RunEnds,
}

impl ListenReport {
    /// All bad inputs.
    pub fn bad_total(&self) -> u64 {
        self.bad.iter().map(|(_, n)| n).sum()
    }

    /// Datagrams the kernel dropped, over all UDP inputs.
    pub fn kernel_drops(&self) -> u64 {
        self.inputs.iter().filter_map(|i| i.kernel_drops).sum()
    }

    /// Bad inputs of `kind`.
    pub fn bad_of(&self, kind: BadKind) -> u64 {
        self.bad
            .iter()
            .find(|(k, _)| *k == kind)
            .map_or(0, |(_, n)| *n)
    }
}

impl fmt::Display for ListenReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "listen: {} events in {:.1} s ({} coalesced by the queue, {} bad inputs, {} dropped by the kernel)",
            self.events,
            self.elapsed.as_secs_f64(),
            self.coalesced,
            self.bad_total(),
            self.kernel_drops()
        )?;
        for i in &self.inputs {
            write!(
                f,
                "  {}: {} received, {} events, {} bad",
                i.label, i.units, i.events, i.bad
            )?;
            if let Some(d) = i.kernel_drops {
                write!(f, ", {d} dropped by the kernel")?;
            }
            if let Some(b) = i.recv_buffer {
                write!(f, " (receive buffer {} KiB)", b / 1024)?;
            }
            writeln!(f)?;
        }
        if !self.bad.is_empty() {
            let parts: Vec<String> = self.bad.iter().map(|(k, n)| format!("{k} {n}")).collect();
            writeln!(f, "  bad inputs: {}", parts.join(", "))?;
        }
        if self.restamped > 0 {
            writeln!(
                f,
                "  {} events had no plausible time and got the receive time",
                self.restamped
            )?;
        }
        if self.senders.len() > 1 || self.other_senders > 0 {
            let parts: Vec<String> = self
                .senders
                .iter()
                .map(|(k, n)| format!("{} {n}", senders::describe(k)))
                .collect();
            write!(f, "  senders: {}", parts.join(", "))?;
            if self.other_senders > 0 {
                write!(f, ", others {}", self.other_senders)?;
            }
            writeln!(f)?;
        }
        let r = &self.returns;
        if r.forwarded > 0 || r.errors > 0 {
            writeln!(
                f,
                "  controls to the senders: {} forwarded, {} datagrams sent, {} not sent, {} addresses",
                r.forwarded, r.sent, r.errors, r.destinations
            )?;
        }
        Ok(())
    }
}

impl Listener {
    /// Binds the UDP sockets the options name (stdin is opened when running).
    pub fn bind(opts: ListenOptions) -> Result<Listener, ListenError> {
        if !opts.stdin && opts.udp_json.is_none() && opts.udp_osc.is_none() {
            return Err(ListenError::NoInput);
        }
        if opts.max_datagram == 0 || opts.max_datagram > 65_535 {
            return Err(ListenError::BadLimit(format!(
                "--max-datagram {} is out of range: 1 to 65535 bytes",
                opts.max_datagram
            )));
        }
        if opts.max_line == 0 || opts.max_series == 0 {
            return Err(ListenError::BadLimit(
                "--max-line and --max-series must be at least 1".into(),
            ));
        }
        let mut inputs = Vec::new();
        for (kind, addr, decode) in [
            (
                "udp-json",
                opts.udp_json,
                udp_json::decode as fn(&[u8], &mut Intake),
            ),
            ("udp-osc", opts.udp_osc, udp_osc::decode),
        ] {
            let Some(addr) = addr else { continue };
            let (socket, granted) =
                udp::bind(addr, opts.recv_buffer).map_err(|source| ListenError::Bind {
                    input: kind,
                    addr,
                    source,
                })?;
            let bound = BoundInput {
                kind,
                addr: socket.local_addr().ok(),
                recv_buffer: Some(granted),
            };
            inputs.push((bound, Source::Udp { socket, decode }));
        }
        if opts.stdin {
            inputs.push((
                BoundInput {
                    kind: "stdin",
                    addr: None,
                    recv_buffer: None,
                },
                Source::Reader(Box::new(std::io::stdin())),
            ));
        }
        let sockets = inputs
            .iter()
            .map(|(_, source)| match source {
                Source::Udp { socket, .. } => socket.try_clone().ok(),
                Source::Reader(_) => None,
            })
            .collect();
        Ok(Listener {
            opts,
            inputs,
            warn_out: None,
            returns: ControlReturn::new(sockets),
            injected: crossbeam_channel::bounded::<Event>(1024),
            last_step: Arc::default(),
        })
    }

    /// Sends warnings to `out` instead of stderr.
    pub fn warn_to(&mut self, out: Box<dyn std::io::Write + Send>) {
        self.warn_out = Some(out);
    }

    /// A handle that adds events to this listener's stream; it stops taking them when the
    /// listener's run ends.
    pub fn injector(&self) -> Injector {
        Injector {
            tx: self.injected.0.clone(),
            last_step: self.last_step.clone(),
        }
    }

    /// The handle that sends controls back to the runs sending here (`docs/controls.md`);
    /// clone it before [`run`](Listener::run) and call [`ControlReturn::forward`] from any
    /// thread while it runs.
    pub fn control_return(&self) -> ControlReturn {
        self.returns.clone()
    }

    /// The inputs, with the addresses actually bound (port 0 picks a free one).
    pub fn inputs(&self) -> Vec<BoundInput> {
        self.inputs.iter().map(|(b, _)| b.clone()).collect()
    }

    /// Receives until `stop` is set, every input has ended, or the requested number of
    /// `run_end` events arrived; hands every good event to `sink`. Never panics on input.
    pub fn run(self, sink: &mut EventSender, stop: &AtomicBool) -> ListenReport {
        let started = Instant::now();
        let bad = Arc::new(BadCounts::default());
        let warner = Arc::new(Warner::new(
            self.warn_out.unwrap_or_else(|| Box::new(std::io::stderr())),
            self.opts.warnings,
            stats::WARN_INTERVAL,
        ));
        let (tx, rx) = crossbeam_channel::bounded::<Event>(HANDOVER_CAPACITY);
        let injected = self.injected.1;
        let last_step = self.last_step;
        let done = Arc::new(AtomicBool::new(false));
        let mut udp_threads: Vec<JoinHandle<InputReport>> = Vec::new();
        let mut reader_threads: Vec<JoinHandle<InputReport>> = Vec::new();
        // The input threads check `stop` too, through a flag this function can share.
        let stop_seen = Arc::new(AtomicBool::new(false));
        for (index, (bound, source)) in self.inputs.into_iter().enumerate() {
            let mut intake =
                Intake::new(bound.to_string(), tx.clone(), bad.clone(), warner.clone());
            intake.report.recv_buffer = bound.recv_buffer;
            let udp = matches!(source, Source::Udp { .. });
            intake.learn_returns(self.returns.learner(udp.then_some(index)));
            let done = done.clone();
            let stop_seen = stop_seen.clone();
            let max_datagram = self.opts.max_datagram;
            let max_line = self.opts.max_line;
            let name = format!("sonograd-{}", bound.kind);
            let spawned = match source {
                Source::Udp { socket, decode } => std::thread::Builder::new()
                    .name(name)
                    .spawn(move || {
                        udp::receive(socket, max_datagram, &mut intake, decode, &done, &stop_seen)
                    })
                    .map(|h| udp_threads.push(h)),
                Source::Reader(reader) => std::thread::Builder::new()
                    .name(name)
                    .spawn(move || {
                        stdin::receive(BufReader::new(reader), max_line, &mut intake, &done)
                    })
                    .map(|h| reader_threads.push(h)),
            };
            if let Err(e) = spawned {
                eprintln!("warning: cannot start the {} input: {e}", bound.kind);
            }
        }
        drop(tx);

        let mut admission = Admission::new(self.opts.max_series);
        let mut tally = SenderTally::default();
        let mut events = 0u64;
        let mut ended_by = EndedBy::Stop;
        let mut forward = |mut event: Event, sink: &mut EventSender| -> bool {
            if let Err(b) = admission.admit(&mut event, unix_now()) {
                bad.add(b.kind);
                warner.warn("listen", &b, &event.to_json_line());
                return false;
            }
            let is_end = matches!(event.payload, Payload::RunEnd { .. });
            tally.add(&event);
            if !matches!(event.payload, Payload::Control { .. }) {
                last_step.fetch_max(event.step, Ordering::Relaxed);
            }
            sink.send(event);
            events += 1;
            is_end
        };
        let mut run_ends = 0u64;
        loop {
            if stop.load(Ordering::Relaxed) {
                break;
            }
            // Injected events (controls) come on a channel of their own, so that an injector
            // alive does not keep the listener from seeing its inputs close.
            let got = crossbeam_channel::select! {
                recv(rx) -> msg => msg.map_err(|_| ()),
                recv(injected) -> msg => match msg {
                    Ok(event) => {
                        forward(event, sink);
                        continue;
                    }
                    Err(_) => continue,
                },
                default(Duration::from_millis(50)) => continue,
            };
            match got {
                Ok(event) => {
                    if forward(event, sink) {
                        run_ends += 1;
                    }
                    if self.opts.stop_after_run_ends.is_some_and(|n| run_ends >= n) {
                        ended_by = EndedBy::RunEnds;
                        break;
                    }
                }
                Err(()) => {
                    ended_by = EndedBy::InputsClosed;
                    break;
                }
            }
        }
        // Wind down: the UDP threads read what is queued in their sockets and stop; keep
        // draining meanwhile so none waits on a full hand-over channel.
        done.store(true, Ordering::Relaxed);
        stop_seen.store(true, Ordering::Relaxed);
        while !udp_threads.iter().all(|h| h.is_finished()) {
            for event in rx.try_iter() {
                forward(event, sink);
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        for event in rx.try_iter() {
            forward(event, sink);
        }
        let mut inputs: Vec<InputReport> = udp_threads
            .into_iter()
            .filter_map(|h| h.join().ok())
            .collect();
        // A reader blocked on a terminal cannot be interrupted: report it only if it ended.
        for h in reader_threads {
            if h.is_finished() {
                if let Ok(r) = h.join() {
                    inputs.push(r);
                }
            }
        }
        for event in rx.try_iter().chain(injected.try_iter()) {
            forward(event, sink);
        }
        let (senders, other_senders) = tally.into_parts();
        ListenReport {
            inputs,
            events,
            coalesced: sink.coalesced(),
            bad: bad.snapshot(),
            restamped: admission.restamped(),
            senders,
            other_senders,
            elapsed: started.elapsed(),
            ended_by,
            returns: self.returns.stats(),
        }
    }
}

/// Binds and runs a listener: the one call `sonograd listen` needs.
pub fn listen(
    opts: ListenOptions,
    sink: &mut EventSender,
    stop: &AtomicBool,
) -> Result<ListenReport, ListenError> {
    Ok(Listener::bind(opts)?.run(sink, stop))
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_default_to_loopback() {
        assert_eq!(
            parse_listen_addr("--udp", "9000").unwrap(),
            "127.0.0.1:9000".parse().unwrap()
        );
        assert_eq!(
            parse_listen_addr("--udp", "0.0.0.0:9000").unwrap(),
            "0.0.0.0:9000".parse().unwrap()
        );
        assert_eq!(
            parse_listen_addr("--osc", "[::1]:9").unwrap(),
            "[::1]:9".parse().unwrap()
        );
        let err = parse_listen_addr("--osc", "nine").unwrap_err().to_string();
        assert!(
            err.starts_with("--osc: \"nine\" is not an address"),
            "{err}"
        );
        assert!(parse_listen_addr("--udp", "70000").is_err());
    }

    /// A control forwarded while a real listener runs reaches a client that sent to it, from
    /// the listener's address, and the port a `run_start` announces.
    #[test]
    fn controls_go_back_to_the_runs_sending_here() {
        use crate::pipeline::queue::event_queue;
        let opts = ListenOptions {
            udp_json: Some(default_addr(0)),
            warnings: false,
            ..ListenOptions::default()
        };
        let listener = Listener::bind(opts).unwrap();
        let at = listener.inputs()[0].addr.unwrap();
        let returns = listener.control_return();
        let stop = Arc::new(AtomicBool::new(false));
        let (mut tx, rx, _) = event_queue(1024);
        let running = {
            let stop = stop.clone();
            std::thread::spawn(move || listener.run(&mut tx, &stop))
        };
        let timeout = Some(Duration::from_secs(5));
        let client = UdpSocket::bind("127.0.0.1:0").unwrap();
        client.set_read_timeout(timeout).unwrap();
        let other = UdpSocket::bind("127.0.0.1:0").unwrap();
        let controls = UdpSocket::bind("127.0.0.1:0").unwrap();
        controls.set_read_timeout(timeout).unwrap();
        let port = controls.local_addr().unwrap().port();
        client
            .send_to(br#"{"v":1,"step":0,"epoch":0,"time":1767312000.0,"kind":"run_start","model":"mlp"}"#, at)
            .unwrap();
        let announce = format!(
            r#"{{"v":1,"step":0,"epoch":0,"time":1767312000.0,"kind":"run_start","control_port":{port}}}"#
        );
        other.send_to(announce.as_bytes(), at).unwrap();
        // A bad datagram teaches nothing.
        let stranger = UdpSocket::bind("127.0.0.1:0").unwrap();
        stranger.send_to(b"not json", at).unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        while returns.addresses().len() < 2 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        let control = Event::new(
            3,
            0,
            1767312001.0,
            Payload::Control {
                control: "lr knob".into(),
                source: "midi:cc:1:21".into(),
                target: "lr_scale".into(),
                value: 0.5,
            },
        );
        assert_eq!(returns.forward(&control), 2, "{:?}", returns.addresses());
        let mut buf = [0u8; 1024];
        let (n, from) = client.recv_from(&mut buf).unwrap();
        assert_eq!(from, at);
        let line = std::str::from_utf8(&buf[..n]).unwrap();
        assert_eq!(Event::from_json_line(line).unwrap(), control);
        let (n, _) = controls.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..n], control.to_json_line().as_bytes());
        stop.store(true, Ordering::Relaxed);
        let report = running.join().unwrap();
        assert_eq!(report.events, 2);
        assert_eq!(report.returns.sent, 2);
        assert_eq!(report.returns.destinations, 2);
        assert!(report
            .to_string()
            .contains("controls to the senders: 1 forwarded"));
        drop(rx);
    }

    #[test]
    fn no_input_and_bad_limits_are_refused() {
        assert!(matches!(
            Listener::bind(ListenOptions::default()),
            Err(ListenError::NoInput)
        ));
        let opts = ListenOptions {
            stdin: true,
            max_datagram: 100_000,
            ..ListenOptions::default()
        };
        let err = Listener::bind(opts).err().unwrap().to_string();
        assert!(err.contains("--max-datagram 100000"), "{err}");
    }
}
