//! Direct scsynth mode: routed messages as scsynth server commands, no sclang needed.
//!
//! [`ScsynthVoices`] turns built-in synth messages and MIDI notes into commands for the
//! SynthDefs of `patches/supercollider/sonograd.scd` (compiled, embedded here):
//!
//! | message | commands |
//! | --- | --- |
//! | synth voice `v` pitch/amp/cutoff/pan | first `/s_new sonograd_voice 1000+v 0 0 PARAM VALUE`, then `/n_set 1000+v PARAM VALUE` (pitch is `freq`) |
//! | synth `trigger` | `/s_new sonograd_hit -1 0 0 amp VALUE` |
//! | MIDI note | `/s_new sonograd_note ID 0 0 freq HZ amp A sustain SECONDS pan P` (frees itself; IDs from 100000) |
//! | OSC message | sent as it is (a mapping may address scsynth itself) |
//! | end | `/n_set 1000+v gate 0` for every started voice (they release and free themselves) |
//!
//! CC and pitch bend messages have no scsynth meaning and are skipped. [`ScsynthOutput`]
//! plays them live over OSC; [`super::osc_score`] writes them into an NRT score.

use std::time::{Duration, Instant};

use crate::mapping::schema::{Mapping, OscProtocol, SynthParam};
use crate::message::{Action, Message};
use rosc::{OscPacket, OscType};

use super::osc::{OscClient, OscError};
use super::osc_packet::PacketBuilder;
use super::Output;

/// Node ID of synth voice 0; voice `v` is `VOICE_NODE_BASE + v`.
pub const VOICE_NODE_BASE: i32 = 1000;
/// First node ID of MIDI notes (they count up from here, wrapping before 1 000 000).
pub const NOTE_NODE_BASE: i32 = 100_000;
/// Most voices tracked (voice indices wrap around it).
pub const MAX_VOICES: u32 = 1024;

/// The compiled SynthDefs (name, `.scsyndef` bytes) the commands use.
pub const SYNTHDEFS: [(&str, &[u8]); 3] = [
    (
        "sonograd_voice",
        include_bytes!("../../patches/supercollider/sonograd_voice.scsyndef"),
    ),
    (
        "sonograd_note",
        include_bytes!("../../patches/supercollider/sonograd_note.scsyndef"),
    ),
    (
        "sonograd_hit",
        include_bytes!("../../patches/supercollider/sonograd_hit.scsyndef"),
    ),
];

/// Frequency in Hz of a MIDI note (A4 = 69 = 440 Hz).
pub fn note_hz(note: u8) -> f32 {
    440.0 * 2f32.powf((note as f32 - 69.0) / 12.0)
}

/// Translates routed messages into scsynth commands.
#[derive(Debug, Default)]
pub struct ScsynthVoices {
    started: Vec<bool>,
    next_note: i32,
    builder: PacketBuilder,
}

impl ScsynthVoices {
    /// Emits one `/d_recv` per SynthDef (send them before anything else).
    pub fn load_defs(&mut self, emit: &mut dyn FnMut(&OscPacket)) {
        for (_, bytes) in SYNTHDEFS {
            emit(
                self.builder
                    .command("/d_recv", [OscType::Blob(bytes.to_vec())]),
            );
        }
    }

    /// Emits the commands of one message (none for CC and pitch bend).
    pub fn translate(
        &mut self,
        msg: &Message,
        mapping: &Mapping,
        emit: &mut dyn FnMut(&OscPacket),
    ) {
        match msg.action {
            Action::Synth {
                voice,
                param: SynthParam::Trigger,
                value,
                ..
            } => {
                let _ = voice;
                emit(self.builder.command(
                    "/s_new",
                    [
                        OscType::String("sonograd_hit".into()),
                        OscType::Int(-1),
                        OscType::Int(0),
                        OscType::Int(0),
                        OscType::String("amp".into()),
                        OscType::Float(value as f32),
                    ],
                ));
            }
            Action::Synth {
                voice,
                param,
                value,
                pan,
            } => {
                let v = (voice % MAX_VOICES) as usize;
                if self.started.len() <= v {
                    self.started.resize(v + 1, false);
                }
                let id = VOICE_NODE_BASE + v as i32;
                let ctl = match param {
                    SynthParam::Pitch => "freq",
                    SynthParam::Amp => "amp",
                    SynthParam::Cutoff => "cutoff",
                    _ => "pan",
                };
                let mut args = Vec::with_capacity(10);
                if !self.started[v] {
                    self.started[v] = true;
                    args.extend([
                        OscType::String("sonograd_voice".into()),
                        OscType::Int(id),
                        OscType::Int(0),
                        OscType::Int(0),
                    ]);
                } else {
                    args.push(OscType::Int(id));
                }
                args.extend([OscType::String(ctl.into()), OscType::Float(value as f32)]);
                if let (Some(p), false) = (pan, param == SynthParam::Pan) {
                    args.extend([OscType::String("pan".into()), OscType::Float(p as f32)]);
                }
                let addr = if args.len() > 4 && matches!(args[0], OscType::String(_)) {
                    "/s_new"
                } else {
                    "/n_set"
                };
                emit(self.builder.command(addr, args));
            }
            Action::Note {
                channel,
                note,
                velocity,
                length_ms,
            } => {
                let id = NOTE_NODE_BASE + self.next_note;
                self.next_note = (self.next_note + 1) % 900_000;
                let pan = (channel.clamp(1, 16) as f32 - 1.0) / 7.5 - 1.0;
                emit(self.builder.command(
                    "/s_new",
                    [
                        OscType::String("sonograd_note".into()),
                        OscType::Int(id),
                        OscType::Int(0),
                        OscType::Int(0),
                        OscType::String("freq".into()),
                        OscType::Float(note_hz(note)),
                        OscType::String("amp".into()),
                        OscType::Float(velocity as f32 / 127.0 * 0.3),
                        OscType::String("sustain".into()),
                        OscType::Float(length_ms as f32 / 1000.0),
                        OscType::String("pan".into()),
                        OscType::Float(pan.clamp(-1.0, 1.0)),
                    ],
                ));
            }
            Action::Osc { .. } => {
                if let Some(p) = self.builder.build(msg, mapping) {
                    emit(p);
                }
            }
            Action::Cc { .. } | Action::PitchBend { .. } | Action::Program { .. } => {}
        }
    }

    /// Node ID the next MIDI note gets.
    pub fn next_note_id(&self) -> i32 {
        NOTE_NODE_BASE + self.next_note
    }

    /// Releases every started voice (`gate 0`; they free themselves).
    pub fn release_all(&mut self, emit: &mut dyn FnMut(&OscPacket)) {
        for v in 0..self.started.len() {
            if std::mem::take(&mut self.started[v]) {
                emit(self.builder.command(
                    "/n_set",
                    [
                        OscType::Int(VOICE_NODE_BASE + v as i32),
                        OscType::String("gate".into()),
                        OscType::Float(0.0),
                    ],
                ));
            }
        }
    }
}

/// Plays routed messages on a running scsynth (`--scsynth HOST:PORT`).
pub struct ScsynthOutput {
    client: Option<OscClient>,
    voices: ScsynthVoices,
}

impl ScsynthOutput {
    /// Connects to scsynth and loads the SynthDefs, waiting up to 2 s for its `/done`
    /// replies (UDP; a server that does not answer is reported and used anyway).
    pub fn open(
        host: &str,
        port: u16,
        protocol: OscProtocol,
        latency_ms: u32,
    ) -> Result<ScsynthOutput, OscError> {
        let mut client = OscClient::open(host, port, protocol, 0)?;
        let mut voices = ScsynthVoices::default();
        voices.load_defs(&mut |p| client.send(p));
        let until = Instant::now() + Duration::from_secs(2);
        let mut done = 0;
        while done < SYNTHDEFS.len() && Instant::now() < until {
            match client.recv(until.saturating_duration_since(Instant::now())) {
                Some(OscPacket::Message(m)) if m.addr == "/done" => done += 1,
                Some(_) => {}
                None if protocol == OscProtocol::Tcp => break,
                None => {}
            }
        }
        if done < SYNTHDEFS.len() && protocol == OscProtocol::Udp {
            eprintln!(
                "warning: scsynth {host}:{port} did not confirm the SynthDefs; playing anyway"
            );
        }
        client.set_latency(latency_ms);
        Ok(ScsynthOutput {
            client: Some(client),
            voices,
        })
    }

    /// Node ID the next MIDI note gets (for matching `/n_go` replies).
    pub fn next_note_id(&self) -> i32 {
        self.voices.next_note_id()
    }
}

impl Output for ScsynthOutput {
    fn send(&mut self, msg: &Message, mapping: &Mapping) {
        if let Some(c) = &mut self.client {
            self.voices.translate(msg, mapping, &mut |p| c.send(p));
        }
    }

    fn tick(&mut self) {
        if let Some(c) = &mut self.client {
            c.flush();
        }
    }

    fn close(&mut self) {
        if let Some(mut c) = self.client.take() {
            self.voices.release_all(&mut |p| c.send(p));
            c.drain(Duration::from_millis(500));
        }
    }
}

impl Drop for ScsynthOutput {
    fn drop(&mut self) {
        self.close();
    }
}
