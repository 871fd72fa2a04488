//! The control hub: listens to the mapping's MIDI and OSC inputs on threads of its own, turns
//! messages into control changes ([`super::binding`]), keeps each control to its rate, hands
//! every applied change to an [`Apply`] (the trainer, or `listen`'s forwarder) and sends the
//! new value back to the controllers ([`super::feedback`]).
//!
//! Nothing here can stop a run: a controller that vanishes, an unknown address or a
//! malformed packet is counted in the [`HubReport`] and the rest goes on.

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};

use crate::mapping::controls::{ControlDef, Controls};
use crate::mapping::parse::RECALL_ADDRESS;

use super::binding::{Bindings, Handled};
use super::feedback::Feedback;
use super::input::{decode_midi, decode_osc, Input};
use super::ControlError;

/// One applied control change.
#[derive(Clone, Debug, PartialEq)]
pub struct Applied {
    /// The control, as the mapping declares it.
    pub def: ControlDef,
    /// Where the change came from (`midi:cc:1:21`, `osc:/sonograd/control/lr`).
    pub source: Arc<str>,
    /// The new value (triggers: 1).
    pub value: f64,
    /// When the message that made it arrived.
    pub received: Instant,
}

/// Takes every applied change; called on the hub's thread, must not block for long.
pub trait Apply: Send {
    /// One change.
    fn apply(&mut self, change: Applied);
}

impl Apply for Sender<Applied> {
    fn apply(&mut self, change: Applied) {
        let _ = self.try_send(change);
    }
}

/// What the hub saw, for the end-of-run report.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HubReport {
    /// Messages received (MIDI messages, OSC messages).
    pub received: u64,
    /// Changes applied.
    pub applied: u64,
    /// Changes merged or dropped because a control was moving faster than its rate.
    pub rate_limited: u64,
    /// Messages no control listens to (an unknown OSC address, an unmapped CC).
    pub unknown: u64,
    /// Packets that were not MIDI or OSC.
    pub malformed: u64,
    /// Recall requests answered.
    pub recalls: u64,
    /// Feedback messages sent (MIDI and OSC).
    pub feedback_sent: u64,
}

impl std::fmt::Display for HubReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "controls: {} received, {} applied, {} rate-limited, {} unknown, {} malformed, {} feedback sent",
            self.received,
            self.applied,
            self.rate_limited,
            self.unknown,
            self.malformed,
            self.feedback_sent
        )
    }
}

/// What the input threads hand the hub.
enum Incoming {
    Midi(Vec<u8>, Instant),
    Osc(Vec<u8>, SocketAddr, Instant),
}

/// A running hub; [`ControlHub::finish`] stops it and reports.
pub struct ControlHub {
    stop: Arc<AtomicBool>,
    hub: Option<JoinHandle<HubReport>>,
    osc: Option<JoinHandle<()>>,
    osc_addr: Option<SocketAddr>,
    midi: Option<midir::MidiInputConnection<()>>,
    midi_port: Option<String>,
}

/// Most messages waiting between the input threads and the hub.
const QUEUE: usize = 4096;
/// How often the input threads look at the stop flag.
const POLL: Duration = Duration::from_millis(50);

impl ControlHub {
    /// Opens the inputs `controls` names and starts the hub. `osc` overrides the mapping's
    /// `[controls] osc` address. Fails when the OSC port cannot be bound; a MIDI input that
    /// cannot open is a warning.
    pub fn start(
        controls: &Controls,
        osc: Option<SocketAddr>,
        apply: Box<dyn Apply>,
    ) -> Result<ControlHub, ControlError> {
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, rx) = crossbeam_channel::bounded::<Incoming>(QUEUE);
        let mut hub = ControlHub {
            stop: stop.clone(),
            hub: None,
            osc: None,
            osc_addr: None,
            midi: None,
            midi_port: None,
        };
        let mut socket_for_feedback = None;
        if let Some(addr) = osc.or(controls.osc) {
            let socket =
                UdpSocket::bind(addr).map_err(|source| ControlError::Bind { addr, source })?;
            socket
                .set_read_timeout(Some(POLL))
                .map_err(|source| ControlError::Bind { addr, source })?;
            hub.osc_addr = socket.local_addr().ok();
            socket_for_feedback = socket.try_clone().ok();
            let tx = tx.clone();
            let stop = stop.clone();
            hub.osc = Some(
                std::thread::Builder::new()
                    .name("sonograd-control-osc".into())
                    .spawn(move || receive_osc(socket, tx, &stop))
                    .map_err(ControlError::Thread)?,
            );
        }
        if let Some(port) = &controls.midi {
            // Like an output port the mapping names: a controller that is not there (or no
            // MIDI system at all, on a server) is a warning, and OSC controls still work.
            let tx = tx.clone();
            match super::midi_in::connect(port, move |bytes| {
                let _ = tx.try_send(Incoming::Midi(bytes.to_vec(), Instant::now()));
            }) {
                Ok((conn, name)) => {
                    hub.midi = Some(conn);
                    hub.midi_port = Some(name);
                }
                Err(e) => eprintln!("warning: {e}; MIDI controls are off"),
            }
        }
        drop(tx);
        let feedback = Feedback::open(controls, socket_for_feedback, hub.midi.is_some());
        let bindings = Bindings::new(controls);
        let stop2 = stop.clone();
        hub.hub = Some(
            std::thread::Builder::new()
                .name("sonograd-controls".into())
                .spawn(move || run(bindings, rx, apply, feedback, &stop2))
                .map_err(ControlError::Thread)?,
        );
        Ok(hub)
    }

    /// The OSC address the hub listens on (the port actually bound).
    pub fn osc_addr(&self) -> Option<SocketAddr> {
        self.osc_addr
    }

    /// The MIDI input port connected to.
    pub fn midi_port(&self) -> Option<&str> {
        self.midi_port.as_deref()
    }

    /// Stops listening and reports.
    pub fn finish(mut self) -> HubReport {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(conn) = self.midi.take() {
            conn.close();
        }
        if let Some(h) = self.osc.take() {
            let _ = h.join();
        }
        self.hub
            .take()
            .and_then(|h| h.join().ok())
            .unwrap_or_default()
    }
}

impl Drop for ControlHub {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn receive_osc(socket: UdpSocket, tx: Sender<Incoming>, stop: &AtomicBool) {
    let mut buf = vec![0u8; 65_536];
    while !stop.load(Ordering::Relaxed) {
        match socket.recv_from(&mut buf) {
            Ok((n, from)) => {
                if tx
                    .try_send(Incoming::Osc(buf[..n].to_vec(), from, Instant::now()))
                    .is_err()
                    && tx.is_empty()
                {
                    return;
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock
                        | std::io::ErrorKind::TimedOut
                        | std::io::ErrorKind::Interrupted
                        | std::io::ErrorKind::ConnectionRefused
                ) => {}
            Err(_) => std::thread::sleep(POLL),
        }
    }
}

/// A control's rate limit: when it last applied a change, and the change waiting for its
/// turn.
#[derive(Clone, Default)]
struct Limit {
    last: Option<Instant>,
    pending: Option<(f64, Arc<str>, Instant)>,
}

fn run(
    mut bindings: Bindings,
    rx: Receiver<Incoming>,
    mut apply: Box<dyn Apply>,
    mut feedback: Feedback,
    stop: &AtomicBool,
) -> HubReport {
    let mut report = HubReport::default();
    let mut limits = vec![Limit::default(); bindings.defs().len()];
    let mut inputs: Vec<(Input, Option<SocketAddr>, Instant)> = Vec::new();
    let mut osc: Vec<Input> = Vec::new();
    report.feedback_sent += feedback.recall(&bindings, None);
    loop {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        // Wake for the next pending change, or to look at the stop flag.
        let now = Instant::now();
        let wait = limits
            .iter()
            .zip(bindings.defs())
            .filter_map(|(l, d)| {
                l.pending.as_ref()?;
                Some(due(l, d).saturating_duration_since(now))
            })
            .min()
            .unwrap_or(POLL)
            .min(POLL);
        match rx.recv_timeout(wait) {
            Ok(Incoming::Midi(bytes, at)) => {
                report.received += 1;
                match decode_midi(&bytes) {
                    Ok(Some(input)) => {
                        inputs.push((input, None, at));
                    }
                    Ok(None) => {}
                    Err(_) => report.malformed += 1,
                }
            }
            Ok(Incoming::Osc(bytes, from, at)) => {
                if decode_osc(&bytes, &mut osc).is_err() {
                    report.malformed += 1;
                }
                report.received += osc.len().max(1) as u64;
                inputs.extend(osc.drain(..).map(|i| (i, Some(from), at)));
                feedback.heard_from(from);
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => {
                if limits.iter().all(|l| l.pending.is_none()) {
                    std::thread::sleep(POLL);
                }
            }
        }
        for (input, from, at) in inputs.drain(..) {
            if let Input::Osc { addr, .. } = &input {
                if addr == RECALL_ADDRESS {
                    report.recalls += 1;
                    report.feedback_sent += feedback.recall(&bindings, from);
                    continue;
                }
            }
            let source: Arc<str> = Arc::from(source_of(&input));
            match bindings.handle(&input) {
                Handled::Change(change) => {
                    let def = &bindings.defs()[change.index];
                    let limit = &mut limits[change.index];
                    let ready = limit.last.is_none_or(|_| Instant::now() >= due(limit, def));
                    if ready && limit.pending.is_none() {
                        limit.last = Some(Instant::now());
                        report.applied += 1;
                        apply.apply(Applied {
                            def: def.clone(),
                            source,
                            value: change.value,
                            received: at,
                        });
                        report.feedback_sent += feedback.send(&bindings, change.index, from);
                    } else {
                        report.rate_limited += 1;
                        // Triggers fire once: a press that comes too soon is dropped.
                        // Otherwise the latest value wins when the control's turn comes.
                        if !def.target.is_trigger() {
                            limit.pending = Some((change.value, source, at));
                        }
                    }
                }
                Handled::Ignored => {}
                Handled::Unknown => report.unknown += 1,
            }
        }
        // Changes whose turn has come.
        let now = Instant::now();
        for (i, limit) in limits.iter_mut().enumerate() {
            let def = &bindings.defs()[i];
            if limit.pending.is_some() && now >= due(limit, def) {
                let (value, source, at) = limit.pending.take().expect("checked");
                limit.last = Some(now);
                report.applied += 1;
                apply.apply(Applied {
                    def: def.clone(),
                    source,
                    value,
                    received: at,
                });
                report.feedback_sent += feedback.send(&bindings, i, None);
            }
        }
    }
    report
}

/// When a control may apply its next change.
fn due(limit: &Limit, def: &ControlDef) -> Instant {
    let interval = Duration::from_secs_f64(1.0 / def.max_rate_hz);
    limit.last.map_or_else(Instant::now, |t| t + interval)
}

/// The `source` of a `control` event for a message.
fn source_of(input: &Input) -> String {
    match input {
        Input::Cc { channel, cc, .. } => format!("midi:cc:{channel}:{cc}"),
        Input::Note { channel, note, .. } => format!("midi:note:{channel}:{note}"),
        Input::Program { channel, .. } => format!("midi:program:{channel}"),
        Input::Osc { addr, .. } => format!("osc:{addr}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rosc::{OscMessage, OscPacket, OscType};

    fn controls(rate: f64) -> Controls {
        let src = format!(
            "[outputs.m]\nkind = \"monitor\"\n[[route]]\noutput = \"m\"\nmatch = {{ metric = \"loss\" }}\n\
             to = {{ param = \"pitch\" }}\n[[control]]\ntarget = \"volume\"\nmax_rate_hz = {rate}\n"
        );
        crate::mapping::parse_str(&src, "t.toml").unwrap().controls
    }

    fn send(to: SocketAddr, value: f32) {
        let packet = OscPacket::Message(OscMessage {
            addr: "/sonograd/control/volume".into(),
            args: vec![OscType::Float(value)],
        });
        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
        s.send_to(&rosc::encoder::encode(&packet).unwrap(), to)
            .unwrap();
    }

    #[test]
    fn a_flood_is_held_to_the_rate_and_the_last_value_wins() {
        let (tx, rx) = crossbeam_channel::unbounded::<Applied>();
        let hub = ControlHub::start(
            &controls(10.0),
            Some("127.0.0.1:0".parse().unwrap()),
            Box::new(tx),
        )
        .unwrap();
        let to = hub.osc_addr().unwrap();
        let started = Instant::now();
        for i in 0..200 {
            send(to, i as f32 / 400.0);
        }
        send(to, 0.75);
        let flood = started.elapsed();
        std::thread::sleep(Duration::from_millis(400));
        let report = hub.finish();
        let applied: Vec<f64> = rx.try_iter().map(|a| a.value).collect();
        // At 10 Hz: the first at once, then one per 100 ms of the flood, then the last.
        let most = 2 + (flood.as_secs_f64() * 10.0).ceil() as usize;
        assert!(
            applied.len() <= most,
            "{} applied in {flood:?}",
            applied.len()
        );
        assert_eq!(applied.last(), Some(&0.75), "{applied:?}");
        assert_eq!(report.applied as usize, applied.len());
        assert!(report.rate_limited >= 150, "{report:?}");
        assert_eq!(report.received, 201);
    }
}
