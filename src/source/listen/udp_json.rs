//! JSON lines over UDP: each datagram holds one or more JSON lines (`\n`-separated).

use super::decode::decode_json_datagram;
use super::intake::Intake;

/// Decodes one datagram into the intake.
pub fn decode(bytes: &[u8], intake: &mut Intake) {
    decode_json_datagram(bytes, &mut |result, raw| {
        intake.accept(result, raw);
    });
}
