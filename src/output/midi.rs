//! MIDI port output through midir.
//!
//! Opens a port by name substring or index, or creates a virtual port (ALSA or, with the
//! crate feature `jack`, JACK), and hands every MIDI message to a [`Scheduler`] thread that
//! sends it, schedules note-offs, keeps to the port's rate cap and ends every note on close.

use std::time::{Duration, Instant};

use crate::mapping::schema::{Mapping, MidiPort, OutputKind, RouteId};
use crate::message::Message;
use midir::{MidiOutput, MidiOutputConnection};

use super::midi_sched::{MidiSink, SchedConfig, SchedReport, Scheduler, StopHandle};
use super::midi_wire::{expand, Wire};
use super::warn::WarnOnce;
use super::{Output, OutputReport};

/// Client name sonograd shows to the MIDI system.
pub const CLIENT_NAME: &str = "sonograd";

/// Opening a MIDI output failed.
#[derive(Debug, thiserror::Error)]
pub enum MidiError {
    /// No MIDI system (no ALSA sequencer, no JACK server).
    #[error("cannot start a MIDI client: {0}")]
    Init(String),
    /// No port matches.
    #[error("no MIDI output port {wanted}; ports: {}", if available.is_empty() { "none".to_string() } else { available.join(", ") })]
    NoPort {
        /// What was asked for.
        wanted: String,
        /// What exists.
        available: Vec<String>,
    },
    /// The port exists but cannot be opened (or the virtual port cannot be made).
    #[error("cannot open MIDI port {port}: {message}")]
    Connect {
        /// Port.
        port: String,
        /// What midir said.
        message: String,
    },
    /// The mapping output is not a MIDI output.
    #[error("output {0} is not a MIDI output")]
    NotMidi(String),
}

/// Names of the MIDI output ports, in index order (for `sonograd ports`).
pub fn list_ports() -> Result<Vec<String>, MidiError> {
    let out = MidiOutput::new(CLIENT_NAME).map_err(|e| MidiError::Init(e.to_string()))?;
    Ok(out
        .ports()
        .iter()
        .map(|p| out.port_name(p).unwrap_or_else(|_| "?".into()))
        .collect())
}

/// Opens `port` and returns the connection and the port's name.
pub(crate) fn open_connection(
    port: &MidiPort,
) -> Result<(MidiOutputConnection, String), MidiError> {
    let out = MidiOutput::new(CLIENT_NAME).map_err(|e| MidiError::Init(e.to_string()))?;
    let ports = out.ports();
    let names: Vec<String> = ports
        .iter()
        .map(|p| out.port_name(p).unwrap_or_default())
        .collect();
    let (i, wanted) = match port {
        MidiPort::Virtual(name) => return connect_virtual(out, name),
        MidiPort::Index(i) => ((*i as usize), format!("#{i}")),
        MidiPort::NameContains(s) => (
            names
                .iter()
                .position(|n| n.contains(s.as_str()))
                .unwrap_or(usize::MAX),
            format!("containing {s:?}"),
        ),
    };
    let Some(p) = ports.get(i) else {
        return Err(MidiError::NoPort {
            wanted,
            available: names,
        });
    };
    let name = names[i].clone();
    let conn = out
        .connect(p, "sonograd-out")
        .map_err(|e| MidiError::Connect {
            port: name.clone(),
            message: e.to_string(),
        })?;
    Ok((conn, name))
}

#[cfg(unix)]
fn connect_virtual(
    out: MidiOutput,
    name: &str,
) -> Result<(MidiOutputConnection, String), MidiError> {
    use midir::os::unix::VirtualOutput;
    out.create_virtual(name)
        .map(|c| (c, format!("virtual {name}")))
        .map_err(|e| MidiError::Connect {
            port: format!("virtual {name}"),
            message: e.to_string(),
        })
}

#[cfg(not(unix))]
fn connect_virtual(
    _out: MidiOutput,
    name: &str,
) -> Result<(MidiOutputConnection, String), MidiError> {
    Err(MidiError::Connect {
        port: format!("virtual {name}"),
        message: "virtual ports need ALSA, JACK or CoreMIDI".into(),
    })
}

/// A midir connection that reopens the same port when it is lost.
struct PortSink {
    conn: Option<MidiOutputConnection>,
    port: MidiPort,
}

impl MidiSink for PortSink {
    fn send(&mut self, bytes: &[u8]) -> Result<(), String> {
        let Some(c) = &mut self.conn else {
            return Err("not connected".into());
        };
        c.send(bytes).map_err(|e| {
            self.conn = None;
            e.to_string()
        })
    }

    fn flush(&mut self) {
        // midir's JACK backend hands messages to the JACK thread through a ring buffer read
        // once a period; closing the port before then loses the last ones (the final
        // note-offs and all-notes-off). ALSA sends at once; the wait is harmless there.
        std::thread::sleep(std::time::Duration::from_millis(60));
    }

    fn reconnect(&mut self) -> bool {
        // A virtual port is ours: recreating it under the same name is the best we can do.
        match open_connection(&self.port) {
            Ok((c, _)) => {
                self.conn = Some(c);
                true
            }
            Err(_) => false,
        }
    }
}

/// A `midi` output of a mapping.
pub struct MidiOut {
    sched: Scheduler,
    name: String,
    closed: bool,
    unsent: WarnOnce,
    /// What the sender thread did, from the close until reported.
    closing: Option<SchedReport>,
}

impl MidiOut {
    /// Opens the port of a `midi` output with the given pacing.
    pub fn open(
        kind: &OutputKind,
        output_name: &str,
        config: SchedConfig,
    ) -> Result<MidiOut, MidiError> {
        let OutputKind::Midi { port, .. } = kind else {
            return Err(MidiError::NotMidi(output_name.to_string()));
        };
        Self::open_port(port, config)
    }

    /// Opens a port directly (`--midi-virtual NAME` makes a [`MidiPort::Virtual`]).
    pub fn open_port(port: &MidiPort, config: SchedConfig) -> Result<MidiOut, MidiError> {
        let (conn, name) = open_connection(port)?;
        let sink = PortSink {
            conn: Some(conn),
            port: port.clone(),
        };
        Ok(Self::with_sink(Box::new(sink), config, &name))
    }

    /// An output over any sink (tests, benches).
    pub fn with_sink(sink: Box<dyn MidiSink>, config: SchedConfig, name: &str) -> MidiOut {
        MidiOut {
            sched: Scheduler::spawn(sink, config, name),
            name: name.to_string(),
            closed: false,
            closing: None,
            unsent: WarnOnce::default(),
        }
    }

    /// The port's name.
    pub fn port_name(&self) -> &str {
        &self.name
    }

    /// A handle that ends all notes from another thread: call its `stop` from a Ctrl-C
    /// handler before the process exits.
    pub fn stop_handle(&self) -> StopHandle {
        self.sched.stop_handle()
    }

    /// Queues one raw message (route 0); `off_after` makes it a note ending that long after
    /// `at`. False when the backlog is full.
    pub fn scheduler_send(&mut self, wire: Wire, off_after: Option<Duration>, at: Instant) -> bool {
        !self.closed && self.sched.send(wire, 0, off_after, at)
    }

    /// Closes and reports what the sender thread did (an empty report when already closed).
    pub fn finish(&mut self) -> SchedReport {
        self.closed = true;
        self.sched.close()
    }
}

impl Output for MidiOut {
    fn send(&mut self, msg: &Message, _mapping: &Mapping) {
        if self.closed {
            return;
        }
        let Some(e) = expand(&msg.action) else {
            return;
        };
        let now = Instant::now();
        let off = e.off_after_ms.map(|ms| Duration::from_millis(ms as u64));
        for (i, &w) in e.immediate().iter().enumerate() {
            let off_after = if i == 0 { off } else { None };
            if !self.sched.send(w, msg.route, off_after, now) {
                self.unsent.hit(
                    &format!("MIDI {}", self.name),
                    "sender backlog full, dropping messages",
                );
            }
        }
    }

    fn end_routes(&mut self, routes: &[RouteId]) {
        if !self.closed {
            self.sched.end_routes(routes);
        }
    }

    fn close(&mut self) {
        if !self.closed {
            self.closing = Some(self.finish());
        }
    }

    fn report(&mut self) -> Option<OutputReport> {
        self.closing.take().map(|report| OutputReport::Midi {
            port: self.name.clone(),
            report,
        })
    }
}
