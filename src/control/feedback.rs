//! Feedback: a control's value sent back to the controllers whenever it changes, so motorised
//! faders, LED rings and OSC surfaces show the truth (also on request: recall).
//!
//! MIDI goes out as the same CC (14-bit: MSB and LSB) or note on the output port of the same
//! name as the input; OSC goes to every address that sent controls, and to
//! `[controls] feedback_osc`, as `/sonograd/control/<name> f VALUE` (or the control's own
//! address).

use std::net::{SocketAddr, UdpSocket};

use midir::MidiOutputConnection;
use midly::live::LiveEvent;
use midly::num::{u4, u7};
use midly::MidiMessage;
use rosc::{OscMessage, OscPacket, OscType};

use crate::mapping::controls::{ControlSource, Controls};
use crate::mapping::schema::MidiPort;

use super::binding::{Bindings, OSC_PREFIX};

/// Most OSC peers remembered (the latest win).
const MAX_PEERS: usize = 16;

/// Where feedback goes.
pub struct Feedback {
    enabled: bool,
    midi: Option<MidiOutputConnection>,
    socket: Option<UdpSocket>,
    peers: Vec<SocketAddr>,
    fixed: Option<SocketAddr>,
    buf: Vec<u8>,
}

impl Feedback {
    /// Opens the feedback MIDI port when the MIDI input is open (`midi_in`; a failure is a
    /// warning: controls still work without feedback) and takes the OSC socket to send from.
    pub fn open(controls: &Controls, socket: Option<UdpSocket>, midi_in: bool) -> Feedback {
        let enabled = controls.feedback;
        let midi = match (&controls.midi, enabled && midi_in) {
            (Some(port), true) => match open_midi(port) {
                Ok(c) => Some(c),
                Err(e) => {
                    eprintln!("warning: controls: no MIDI feedback: {e}");
                    None
                }
            },
            _ => None,
        };
        let socket = match (socket, controls.feedback_osc) {
            (Some(s), _) => Some(s),
            (None, Some(_)) => UdpSocket::bind("127.0.0.1:0").ok(),
            (None, None) => None,
        };
        Feedback {
            enabled,
            midi,
            socket,
            peers: Vec::new(),
            fixed: controls.feedback_osc,
            buf: Vec::with_capacity(16),
        }
    }

    /// Remembers an OSC sender, to send it feedback.
    pub fn heard_from(&mut self, from: SocketAddr) {
        if !self.peers.contains(&from) {
            if self.peers.len() == MAX_PEERS {
                self.peers.remove(0);
            }
            self.peers.push(from);
        }
    }

    /// Sends control `index`'s value to every controller (OSC: also to `to`); returns how
    /// many messages went out.
    pub fn send(&mut self, bindings: &Bindings, index: usize, to: Option<SocketAddr>) -> u64 {
        if !self.enabled {
            return 0;
        }
        let def = &bindings.defs()[index];
        if def.target.is_trigger() {
            return 0;
        }
        let (Some(value), Some(u)) = (bindings.value(index), bindings.position(index)) else {
            return 0;
        };
        let mut sent = 0;
        if let Some(conn) = &mut self.midi {
            let mut out = |buf: &mut Vec<u8>, channel: u8, message: MidiMessage| {
                buf.clear();
                let ev = LiveEvent::Midi {
                    channel: u4::new(channel - 1),
                    message,
                };
                if ev.write_std(&mut *buf).is_ok() && conn.send(buf).is_ok() {
                    sent += 1;
                }
            };
            match def.source {
                ControlSource::Cc { channel, cc, lsb } => match lsb {
                    Some(lsb) => {
                        let v = (u * 16383.0).round() as u16;
                        out(&mut self.buf, channel, cc_message(cc, (v >> 7) as u8));
                        out(&mut self.buf, channel, cc_message(lsb, (v & 127) as u8));
                    }
                    None => out(
                        &mut self.buf,
                        channel,
                        cc_message(cc, (u * 127.0).round() as u8),
                    ),
                },
                ControlSource::Note { channel, note } => {
                    let key = u7::new(note);
                    let message = if u >= 0.5 {
                        MidiMessage::NoteOn {
                            key,
                            vel: u7::new(127),
                        }
                    } else {
                        MidiMessage::NoteOff {
                            key,
                            vel: u7::new(0),
                        }
                    };
                    out(&mut self.buf, channel, message);
                }
                _ => {}
            }
        }
        if let Some(socket) = &self.socket {
            let addr = match &def.source {
                ControlSource::Osc(a) => a.clone(),
                _ => format!("{OSC_PREFIX}{}", def.name),
            };
            let packet = OscPacket::Message(OscMessage {
                addr,
                args: vec![OscType::Float(value as f32)],
            });
            if let Ok(bytes) = rosc::encoder::encode(&packet) {
                let mut targets: Vec<SocketAddr> = self.peers.clone();
                targets.extend(self.fixed);
                targets.extend(to);
                targets.sort();
                targets.dedup();
                for t in targets {
                    if socket.send_to(&bytes, t).is_ok() {
                        sent += 1;
                    }
                }
            }
        }
        sent
    }

    /// Sends every value that is known, to every controller (OSC: also to `to`).
    pub fn recall(&mut self, bindings: &Bindings, to: Option<SocketAddr>) -> u64 {
        (0..bindings.defs().len())
            .map(|i| self.send(bindings, i, to))
            .sum()
    }
}

fn cc_message(cc: u8, value: u8) -> MidiMessage {
    MidiMessage::Controller {
        controller: u7::new(cc),
        value: u7::new(value.min(127)),
    }
}

/// The output port for feedback: the virtual one of the same name, or the existing port
/// whose name contains the same text.
fn open_midi(port: &MidiPort) -> Result<MidiOutputConnection, String> {
    crate::output::midi::open_connection(port)
        .map(|(c, _)| c)
        .map_err(|e| e.to_string())
}
