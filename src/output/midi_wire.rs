//! MIDI channel messages as bytes, and what each routed action turns into.

use midly::live::LiveEvent;
use midly::{MidiMessage, PitchBend};

use crate::message::Action;

/// One MIDI channel message. Channels are 0-based here (0-15), as on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Wire {
    /// Note off (sent as `0x80 note 0`).
    NoteOff {
        /// Channel 0-15.
        ch: u8,
        /// Note 0-127.
        note: u8,
    },
    /// Note on, velocity 1-127.
    NoteOn {
        /// Channel 0-15.
        ch: u8,
        /// Note 0-127.
        note: u8,
        /// Velocity 1-127.
        vel: u8,
    },
    /// Control change.
    Cc {
        /// Channel 0-15.
        ch: u8,
        /// Controller 0-127.
        cc: u8,
        /// Value 0-127.
        value: u8,
    },
    /// Pitch bend, 0-16383 (centre 8192).
    Bend {
        /// Channel 0-15.
        ch: u8,
        /// 14-bit value.
        value: u16,
    },
    /// Program change (a two-byte message).
    Program {
        /// Channel 0-15.
        ch: u8,
        /// Program 0-127.
        program: u8,
    },
}

/// Controller number of "all notes off".
pub const ALL_NOTES_OFF: u8 = 123;

impl Wire {
    /// The message as midly's live event.
    pub fn live(self) -> LiveEvent<'static> {
        let (ch, message) = match self {
            Wire::NoteOff { ch, note } => (
                ch,
                MidiMessage::NoteOff {
                    key: note.into(),
                    vel: 0.into(),
                },
            ),
            Wire::NoteOn { ch, note, vel } => (
                ch,
                MidiMessage::NoteOn {
                    key: note.into(),
                    vel: vel.into(),
                },
            ),
            Wire::Cc { ch, cc, value } => (
                ch,
                MidiMessage::Controller {
                    controller: cc.into(),
                    value: value.into(),
                },
            ),
            Wire::Bend { ch, value } => (
                ch,
                MidiMessage::PitchBend {
                    bend: PitchBend(value.into()),
                },
            ),
            Wire::Program { ch, program } => (
                ch,
                MidiMessage::ProgramChange {
                    program: program.into(),
                },
            ),
        };
        LiveEvent::Midi {
            channel: ch.into(),
            message,
        }
    }

    /// The bytes of the message, padded to three: send `bytes()[..size()]`.
    pub fn bytes(self) -> [u8; 3] {
        let mut buf = [0u8; 3];
        // A channel message is at most three bytes: writing it into three cannot fail.
        let _ = self.live().write_std(&mut buf[..]);
        buf
    }

    /// How many of [`Wire::bytes`] make the message (2 for a program change, else 3).
    pub fn size(self) -> usize {
        match self {
            Wire::Program { .. } => 2,
            _ => 3,
        }
    }

    /// Channel 0-15.
    pub fn channel(self) -> u8 {
        match self {
            Wire::NoteOff { ch, .. }
            | Wire::NoteOn { ch, .. }
            | Wire::Cc { ch, .. }
            | Wire::Bend { ch, .. }
            | Wire::Program { ch, .. } => ch,
        }
    }

    /// "All notes off" on a channel.
    pub fn all_notes_off(ch: u8) -> Wire {
        Wire::Cc {
            ch,
            cc: ALL_NOTES_OFF,
            value: 0,
        }
    }
}

/// What one action sends: up to two messages now, and for notes a note-off after
/// `off_after_ms`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Expanded {
    /// Messages to send now, in order (`now[..count]`).
    pub now: [Wire; 2],
    /// How many of `now` are used.
    pub count: usize,
    /// A note's length in milliseconds (its note-off is due then).
    pub off_after_ms: Option<u32>,
}

impl Expanded {
    /// The messages to send now.
    pub fn immediate(&self) -> &[Wire] {
        &self.now[..self.count]
    }
}

/// The MIDI messages of a MIDI action (channels converted to 0-15; 14-bit controllers as
/// MSB on `cc` then LSB on `cc + 32`), or `None` for non-MIDI actions.
pub fn expand(action: &Action) -> Option<Expanded> {
    let ch = |c: u8| c.clamp(1, 16) - 1;
    let one = |w: Wire| Expanded {
        now: [w, w],
        count: 1,
        off_after_ms: None,
    };
    Some(match *action {
        Action::Note {
            channel,
            note,
            velocity,
            length_ms,
        } => Expanded {
            off_after_ms: Some(length_ms),
            ..one(Wire::NoteOn {
                ch: ch(channel),
                note: note.min(127),
                vel: velocity.clamp(1, 127),
            })
        },
        Action::Cc {
            channel,
            cc,
            value,
            fine: false,
        } => one(Wire::Cc {
            ch: ch(channel),
            cc: cc.min(127),
            value: value.min(127) as u8,
        }),
        Action::Cc {
            channel,
            cc,
            value,
            fine: true,
        } => {
            let v = value.min(16383);
            Expanded {
                now: [
                    Wire::Cc {
                        ch: ch(channel),
                        cc: cc.min(31),
                        value: (v >> 7) as u8,
                    },
                    Wire::Cc {
                        ch: ch(channel),
                        cc: cc.min(31) + 32,
                        value: (v & 0x7F) as u8,
                    },
                ],
                count: 2,
                off_after_ms: None,
            }
        }
        Action::PitchBend { channel, value } => one(Wire::Bend {
            ch: ch(channel),
            value: value.min(16383),
        }),
        Action::Program { channel, program } => one(Wire::Program {
            ch: ch(channel),
            program: program.min(127),
        }),
        Action::Synth { .. } | Action::Osc { .. } => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fourteen_bit_cc_is_msb_then_lsb() {
        let e = expand(&Action::Cc {
            channel: 16,
            cc: 1,
            value: 0x1234,
            fine: true,
        })
        .unwrap();
        assert_eq!(e.immediate().len(), 2);
        assert_eq!(e.now[0].bytes(), [0xBF, 1, (0x1234u16 >> 7) as u8]);
        assert_eq!(e.now[1].bytes(), [0xBF, 33, 0x34]);
    }

    #[test]
    fn bend_is_lsb_first() {
        let e = expand(&Action::PitchBend {
            channel: 1,
            value: 8192,
        })
        .unwrap();
        assert_eq!(e.immediate()[0].bytes(), [0xE0, 0, 64]);
    }

    #[test]
    fn program_change_is_two_bytes() {
        let e = expand(&Action::Program {
            channel: 3,
            program: 19,
        })
        .unwrap();
        let w = e.immediate()[0];
        assert_eq!(&w.bytes()[..w.size()], [0xC2, 19]);
        assert_eq!(e.off_after_ms, None);
    }

    #[test]
    fn note_has_an_off() {
        let e = expand(&Action::Note {
            channel: 10,
            note: 49,
            velocity: 127,
            length_ms: 500,
        })
        .unwrap();
        assert_eq!(e.immediate()[0].bytes(), [0x99, 49, 127]);
        assert_eq!(e.off_after_ms, Some(500));
    }
}
