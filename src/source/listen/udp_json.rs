//! JSON lines over UDP: each datagram holds one or more JSON lines (`\n`-separated), or is
//! one compact step datagram ([`super::compact`], told apart by its first byte, NUL).

use super::compact;
use super::decode::decode_json_datagram;
use super::intake::Intake;

/// Decodes one datagram into the intake.
pub(crate) fn decode(bytes: &[u8], intake: &mut Intake) {
    if compact::is_compact(bytes) {
        intake.accept_compact(bytes);
        return;
    }
    decode_json_datagram(bytes, &mut |result, raw| {
        intake.accept(result, raw);
    });
}
