//! The input threads' side of the listener: decoded events go into the listener's hand-over
//! channel, bad inputs are counted and warned about.

use std::net::SocketAddr;
use std::sync::Arc;

use crate::event::Event;
use crossbeam_channel::Sender;

use super::super::alarm_fill::AlarmFill;
use super::compact::{self, ShardCombiner};
use super::decode::{excerpt, BadInput, BadKind};
use super::returns::Learner;
use super::stats::{BadCounts, Warner};

/// What one input saw.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct InputReport {
    /// E.g. `udp-json 127.0.0.1:9107`, `stdin`.
    pub label: String,
    /// Datagrams (UDP) or lines (stdin) received.
    pub units: u64,
    /// Events decoded and handed on.
    pub events: u64,
    /// Bad inputs (datagrams, lines or OSC messages) counted.
    pub bad: u64,
    /// Datagrams the kernel dropped for this socket (full receive buffer); UDP on Linux only.
    pub kernel_drops: Option<u64>,
    /// Receive buffer size the kernel granted, for UDP inputs.
    pub recv_buffer: Option<usize>,
    /// Read errors from the OS (the input goes on after each).
    pub io_errors: u64,
}

/// One input thread's handle on the listener.
pub(crate) struct Intake {
    tx: Sender<Event>,
    bad: Arc<BadCounts>,
    warner: Arc<Warner>,
    shards: ShardCombiner,
    /// Learns where controls go back to (`None`: not asked).
    learner: Option<Learner>,
    /// Alarms for NaN values their writer sent without one.
    alarms: AlarmFill,
    /// The events of the input being accepted (kept for its capacity).
    filled: Vec<Event>,
    /// Where the datagram being decoded came from (UDP; `None` for stdin).
    pub peer: Option<SocketAddr>,
    /// Running report of this input.
    pub report: InputReport,
}

impl Intake {
    /// An intake labelled `label` feeding `tx`.
    pub(crate) fn new(
        label: String,
        tx: Sender<Event>,
        bad: Arc<BadCounts>,
        warner: Arc<Warner>,
    ) -> Self {
        Intake {
            tx,
            bad,
            warner,
            shards: ShardCombiner::default(),
            learner: None,
            alarms: AlarmFill::default(),
            filled: Vec::new(),
            peer: None,
            report: InputReport {
                label,
                ..InputReport::default()
            },
        }
    }

    /// Lets this input learn where controls go back to: each good event's [`Self::peer`]
    /// and the `control_port` a `run_start` announces.
    pub(crate) fn learn_returns(&mut self, learner: Learner) {
        self.learner = Some(learner);
    }

    /// Hands a decoded event on, or counts and warns about a bad input (`raw` is the bytes
    /// it came from). Waits while the hand-over channel is full (the listener drains it
    /// without blocking, so this is brief); returns false once the listener is gone.
    pub(crate) fn accept(&mut self, result: Result<Event, BadInput>, raw: &[u8]) -> bool {
        match result {
            Ok(event) => {
                let mut filled = std::mem::take(&mut self.filled);
                self.alarms.push(event, &mut |e| filled.push(e));
                let mut alive = true;
                for event in filled.drain(..) {
                    if !alive {
                        continue;
                    }
                    self.report.events += 1;
                    if let Some(learner) = &mut self.learner {
                        learner.saw(&event, self.peer);
                    }
                    alive = self.tx.send(event).is_ok();
                }
                self.filled = filled;
                alive
            }
            Err(bad) => {
                self.reject(&bad, raw);
                true
            }
        }
    }

    /// Decodes a compact step datagram and hands its events on; a sharded step's events
    /// once every rank's datagrams for it arrived.
    pub(crate) fn accept_compact(&mut self, raw: &[u8]) {
        let part = match compact::decode(raw) {
            Ok(part) => part,
            Err(bad) => return self.reject(&bad, raw),
        };
        let events = if part.world == 0 {
            compact::events(part)
        } else {
            match self.shards.add(part) {
                Ok((events, given_up)) => {
                    self.give_up(given_up, raw);
                    events
                }
                Err(bad) => return self.reject(&bad, raw),
            }
        };
        for event in events {
            if !self.accept(Ok(event), raw) {
                return;
            }
        }
    }

    /// Counts the sharded steps still incomplete when the input ends.
    pub(crate) fn finish(&mut self) {
        let n = self.shards.finish();
        self.give_up(n, b"");
    }

    fn give_up(&mut self, steps: u64, raw: &[u8]) {
        for _ in 0..steps {
            let bad = BadInput::new(
                BadKind::IncompleteShards,
                "a sharded step was given up: not every rank's datagrams for it arrived",
            );
            self.reject(&bad, raw);
        }
    }

    /// Counts and warns about one bad input.
    pub(crate) fn reject(&mut self, bad: &BadInput, raw: &[u8]) {
        self.report.bad += 1;
        self.bad.add(bad.kind);
        self.warner.warn(&self.report.label, bad, &excerpt(raw));
    }

    /// Counts an input over the size limit.
    pub(crate) fn reject_oversized(&mut self, len: usize, limit: usize, raw: &[u8]) {
        let kind = if self.report.label.starts_with("stdin") {
            BadKind::LineTooLong
        } else {
            BadKind::DatagramTooLarge
        };
        let what = if kind == BadKind::LineTooLong {
            "line"
        } else {
            "datagram"
        };
        let bad = BadInput::new(
            kind,
            format!("{what} of at least {len} bytes is over the limit of {limit}"),
        );
        self.reject(&bad, raw);
    }

    /// Notes an OS read error.
    pub(crate) fn note_io_error(&mut self, e: &std::io::Error) {
        self.report.io_errors += 1;
        if self.report.io_errors == 1 {
            eprintln!("warning: {}: read error: {e} (going on)", self.report.label);
        }
    }
}
