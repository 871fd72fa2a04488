//! OSC packets from routed messages, encoded into kept buffers.
//!
//! [`PacketBuilder`] expands an [`Action::Osc`](crate::message::Action::Osc) message into
//! a reused [`OscMessage`]; [`encode`] writes it, optionally wrapped in a one-message bundle
//! with a time tag, with `rosc::encoder::encode_into` into a buffer the caller keeps.
//! Numbers never allocate once the buffers have grown; string arguments do (one `String`
//! each).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::mapping::schema::Mapping;
use crate::message::{expand_osc, Message, OscArg};
use rosc::{encoder, OscMessage, OscPacket, OscTime, OscType};

/// Seconds between the NTP epoch (1900) and the Unix epoch (1970).
const NTP_UNIX_OFFSET: u64 = 2_208_988_800;

/// Expands messages into a reused OSC packet.
#[derive(Debug)]
pub struct PacketBuilder {
    addr: String,
    args: Vec<OscArg>,
    packet: OscPacket,
}

impl Default for PacketBuilder {
    fn default() -> Self {
        PacketBuilder {
            addr: String::with_capacity(64),
            args: Vec::with_capacity(8),
            packet: OscPacket::Message(OscMessage {
                addr: String::with_capacity(64),
                args: Vec::with_capacity(8),
            }),
        }
    }
}

impl PacketBuilder {
    /// The OSC packet (a message) of `msg`, or `None` when it is not an OSC message of
    /// `mapping`.
    pub fn build(&mut self, msg: &Message, mapping: &Mapping) -> Option<&OscPacket> {
        if !expand_osc(msg, mapping, &mut self.addr, &mut self.args) {
            return None;
        }
        let OscPacket::Message(m) = &mut self.packet else {
            unreachable!("the builder only holds a message")
        };
        m.addr.clear();
        m.addr.push_str(&self.addr);
        m.args.clear();
        m.args.extend(self.args.iter().map(|a| match a {
            OscArg::Float(f) => OscType::Float(*f),
            OscArg::Double(d) => OscType::Double(*d),
            OscArg::Int(i) => OscType::Int(*i),
            OscArg::Str(s) => OscType::String(s.to_string()),
            OscArg::StaticStr(s) => OscType::String((*s).to_string()),
        }));
        Some(&self.packet)
    }

    /// Fills the packet with a given address and arguments (for commands the outputs make
    /// themselves, such as scsynth's `/s_new`).
    pub fn command(&mut self, addr: &str, args: impl IntoIterator<Item = OscType>) -> &OscPacket {
        let OscPacket::Message(m) = &mut self.packet else {
            unreachable!("the builder only holds a message")
        };
        m.addr.clear();
        m.addr.push_str(addr);
        m.args.clear();
        m.args.extend(args);
        &self.packet
    }
}

/// Appends `packet` to `out`; with a time tag, wrapped in a bundle of that one packet.
/// Returns the number of bytes appended.
pub fn encode(packet: &OscPacket, timetag: Option<OscTime>, out: &mut Vec<u8>) -> usize {
    let start = out.len();
    match timetag {
        None => {
            let Ok(_) = encoder::encode_into(packet, out);
        }
        Some(t) => {
            out.extend_from_slice(b"#bundle\0");
            out.extend_from_slice(&t.seconds.to_be_bytes());
            out.extend_from_slice(&t.fractional.to_be_bytes());
            let size_at = out.len();
            out.extend_from_slice(&[0; 4]);
            let Ok(n) = encoder::encode_into(packet, out);
            out[size_at..size_at + 4].copy_from_slice(&(n as i32).to_be_bytes());
        }
    }
    out.len() - start
}

/// An OSC (NTP) time tag for a wall-clock time.
pub fn timetag_at(t: SystemTime) -> OscTime {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
    let secs = d.as_secs() + NTP_UNIX_OFFSET;
    OscTime {
        seconds: secs as u32,
        fractional: ((d.subsec_nanos() as u64) << 32).div_euclid(1_000_000_000) as u32,
    }
}

/// A time tag counting `seconds` from zero (the time base of scsynth NRT scores).
pub fn timetag_from_zero(seconds: f64) -> OscTime {
    let s = seconds.max(0.0);
    let whole = s.floor();
    let frac = ((s - whole) * 4_294_967_296.0).round().min(4_294_967_295.0);
    OscTime {
        seconds: whole.min(u32::MAX as f64) as u32,
        fractional: frac as u32,
    }
}

/// SLIP framing (RFC 1055, as OSC 1.1 streams use it): appends `packet` escaped and ended
/// by END. No END goes before the frame: liblo 0.31 (oscdump, many SLIP receivers built on
/// it) drops a bundle that follows an END, and END-terminated frames are valid SLIP.
pub fn slip_frame(packet: &[u8], out: &mut Vec<u8>) {
    const END: u8 = 0xC0;
    const ESC: u8 = 0xDB;
    for &b in packet {
        match b {
            END => out.extend_from_slice(&[ESC, 0xDC]),
            ESC => out.extend_from_slice(&[ESC, 0xDD]),
            b => out.push(b),
        }
    }
    out.push(END);
}

#[cfg(test)]
mod tests {
    use super::*;
    use rosc::decoder;

    #[test]
    fn bundle_round_trips_through_rosc() {
        let mut b = PacketBuilder::default();
        let p = b
            .command("/x", [OscType::Int(3), OscType::Float(0.5)])
            .clone();
        let mut buf = Vec::new();
        let tag = timetag_from_zero(1.25);
        encode(&p, Some(tag), &mut buf);
        let (_, decoded) = decoder::decode_udp(&buf).unwrap();
        let OscPacket::Bundle(bundle) = decoded else {
            panic!("not a bundle")
        };
        assert_eq!(bundle.timetag, OscTime::from((1, 1 << 30)));
        assert_eq!(bundle.content, vec![p]);
    }

    #[test]
    fn slip_escapes_end_and_esc() {
        let mut out = Vec::new();
        slip_frame(&[1, 0xC0, 2, 0xDB], &mut out);
        assert_eq!(out, [1, 0xDB, 0xDC, 2, 0xDB, 0xDD, 0xC0]);
    }

    #[test]
    fn unix_time_becomes_ntp() {
        let t = UNIX_EPOCH + Duration::from_millis(1500);
        let tag = timetag_at(t);
        assert_eq!(tag.seconds as u64, NTP_UNIX_OFFSET + 1);
        assert_eq!(tag.fractional, 1 << 31);
    }
}
