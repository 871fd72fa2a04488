//! What comes in from a controller, decoded: MIDI bytes (through midly's live events) and OSC
//! packets (through rosc) become [`Input`]s. Pure: no ports, no sockets.

use midly::live::LiveEvent;
use midly::MidiMessage;
use rosc::{OscPacket, OscType};

/// One message from a controller.
#[derive(Clone, Debug, PartialEq)]
pub enum Input {
    /// A control change: channel 1-16, controller, value 0-127.
    Cc {
        /// Channel 1-16.
        channel: u8,
        /// Controller number.
        cc: u8,
        /// 0-127.
        value: u8,
    },
    /// A note-on (velocity above 0) or note-off (velocity 0).
    Note {
        /// Channel 1-16.
        channel: u8,
        /// Note number.
        note: u8,
        /// 0 for note-off.
        velocity: u8,
    },
    /// A program change.
    Program {
        /// Channel 1-16.
        channel: u8,
        /// Program 0-127.
        program: u8,
    },
    /// An OSC message: its address and first numeric argument, if any.
    Osc {
        /// Address.
        addr: String,
        /// First argument as a number (float, double, int, long, true/false).
        value: Option<f64>,
    },
}

/// Why incoming bytes were not a control message.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum InputError {
    /// Not MIDI.
    #[error("malformed MIDI message: {0}")]
    Midi(String),
    /// Not OSC.
    #[error("malformed OSC packet: {0}")]
    Osc(String),
}

/// Decodes one MIDI message; `Ok(None)` for messages controls do not use (clock, sysex,
/// aftertouch, pitch bend).
pub fn decode_midi(bytes: &[u8]) -> Result<Option<Input>, InputError> {
    let event = LiveEvent::parse(bytes).map_err(|e| InputError::Midi(e.to_string()))?;
    let LiveEvent::Midi { channel, message } = event else {
        return Ok(None);
    };
    let channel = channel.as_int() + 1;
    Ok(match message {
        MidiMessage::Controller { controller, value } => Some(Input::Cc {
            channel,
            cc: controller.as_int(),
            value: value.as_int(),
        }),
        MidiMessage::NoteOn { key, vel } => Some(Input::Note {
            channel,
            note: key.as_int(),
            velocity: vel.as_int(),
        }),
        MidiMessage::NoteOff { key, .. } => Some(Input::Note {
            channel,
            note: key.as_int(),
            velocity: 0,
        }),
        MidiMessage::ProgramChange { program } => Some(Input::Program {
            channel,
            program: program.as_int(),
        }),
        _ => None,
    })
}

/// Deepest bundle nesting taken apart.
const MAX_DEPTH: usize = 8;

/// Decodes one OSC datagram (a message or a bundle) into its messages, in order.
pub fn decode_osc(bytes: &[u8], out: &mut Vec<Input>) -> Result<(), InputError> {
    let (_, packet) =
        rosc::decoder::decode_udp(bytes).map_err(|e| InputError::Osc(e.to_string()))?;
    flatten(packet, 0, out);
    Ok(())
}

fn flatten(packet: OscPacket, depth: usize, out: &mut Vec<Input>) {
    match packet {
        OscPacket::Message(m) => {
            let value = m.args.first().and_then(|a| match a {
                OscType::Float(f) => Some(f64::from(*f)),
                OscType::Double(d) => Some(*d),
                OscType::Int(i) => Some(f64::from(*i)),
                OscType::Long(l) => Some(*l as f64),
                OscType::Bool(b) => Some(if *b { 1.0 } else { 0.0 }),
                _ => None,
            });
            out.push(Input::Osc {
                addr: m.addr,
                value,
            });
        }
        OscPacket::Bundle(b) if depth < MAX_DEPTH => {
            for p in b.content {
                flatten(p, depth + 1, out);
            }
        }
        OscPacket::Bundle(_) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rosc::{encoder, OscMessage};

    #[test]
    fn midi_channel_messages_decode_with_channels_from_one() {
        assert_eq!(
            decode_midi(&[0xB0, 21, 100]).unwrap(),
            Some(Input::Cc {
                channel: 1,
                cc: 21,
                value: 100
            })
        );
        assert_eq!(
            decode_midi(&[0x9F, 36, 0]).unwrap(),
            Some(Input::Note {
                channel: 16,
                note: 36,
                velocity: 0
            })
        );
        assert_eq!(
            decode_midi(&[0x83, 36, 64]).unwrap(),
            Some(Input::Note {
                channel: 4,
                note: 36,
                velocity: 0
            })
        );
        assert_eq!(
            decode_midi(&[0xC1, 5]).unwrap(),
            Some(Input::Program {
                channel: 2,
                program: 5
            })
        );
        assert_eq!(decode_midi(&[0xF8]).unwrap(), None);
        assert_eq!(decode_midi(&[0xE0, 0, 64]).unwrap(), None);
        assert!(decode_midi(&[0xB0, 200]).is_err());
        assert!(decode_midi(&[]).is_err());
    }

    #[test]
    fn osc_messages_and_bundles_decode_and_garbage_is_an_error() {
        let msg = |addr: &str, args| {
            OscPacket::Message(OscMessage {
                addr: addr.into(),
                args,
            })
        };
        let bundle = OscPacket::Bundle(rosc::OscBundle {
            timetag: (0, 1).into(),
            content: vec![
                msg("/a", vec![OscType::Int(3)]),
                msg("/b", vec![OscType::String("x".into())]),
            ],
        });
        let mut out = Vec::new();
        decode_osc(
            &encoder::encode(&msg("/sonograd/control/lr", vec![OscType::Float(0.5)])).unwrap(),
            &mut out,
        )
        .unwrap();
        decode_osc(&encoder::encode(&bundle).unwrap(), &mut out).unwrap();
        assert_eq!(
            out,
            vec![
                Input::Osc {
                    addr: "/sonograd/control/lr".into(),
                    value: Some(0.5)
                },
                Input::Osc {
                    addr: "/a".into(),
                    value: Some(3.0)
                },
                Input::Osc {
                    addr: "/b".into(),
                    value: None
                },
            ]
        );
        assert!(decode_osc(b"not osc at all", &mut out).is_err());
        assert!(decode_osc(&[], &mut out).is_err());
    }
}
