//! OSC over UDP: each datagram is an OSC message or bundle in the scheme of [`super::osc_scheme`].

use super::intake::Intake;
use super::osc_scheme::decode_osc_packet;

/// Decodes one datagram into the intake.
pub(crate) fn decode(bytes: &[u8], intake: &mut Intake) {
    decode_osc_packet(bytes, &mut |result| {
        intake.accept(result, bytes);
    });
}
