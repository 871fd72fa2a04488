//! Pure decoding of JSON-lines input: bytes in, an [`Event`] or a categorised [`BadInput`] out.
//!
//! Nothing here does I/O, keeps state or panics on any input (fuzzed in `tests/fuzz.rs`).
//! The categories ([`BadKind`]) are what `listen` counts and reports.

use std::fmt;

use crate::event::{Event, ParseError, FORMAT_VERSION, KINDS};
use serde_json::Value;

use super::osc_scheme::{MAX_DIAGNOSIS_LAYERS, MAX_REASON_LEN};

/// Longest layer, eval or run name accepted, in bytes.
pub const MAX_NAME_LEN: usize = 256;

/// Longest example text kept in a [`BadInput`], in characters.
const EXAMPLE_LEN: usize = 120;

/// Why an input was not turned into an event. The order is the report's order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum BadKind {
    /// Bytes that are not UTF-8.
    NotUtf8,
    /// Not JSON at all (syntax error, truncated line).
    NotJson,
    /// A JSON number too large for a 64-bit float (`1e400`).
    NumberOutOfRange,
    /// JSON, but not an object (`[1,2]`, `42`, `"x"`).
    NotAnObject,
    /// No `v` field.
    MissingVersion,
    /// A `v` newer than this build reads.
    NewerVersion,
    /// A `kind` sonograd does not know (`"wobble"`).
    UnknownKind,
    /// A field the kind needs is absent (`grad_norm` without `layer`).
    MissingField,
    /// A field of the wrong JSON type (`"step":"ten"`, `"step":1.5`).
    WrongType,
    /// A field of the right type with a value out of range (`"step":-1`, `"state":"maybe"`).
    BadValue,
    /// A `value` string that is not a number nor `NaN`/`Infinity` (`"value":"lots"`).
    NonNumericValue,
    /// A layer, eval or run name longer than [`MAX_NAME_LEN`].
    NameTooLong,
    /// An empty datagram.
    Empty,
    /// A stdin line longer than the limit (skipped up to its newline).
    LineTooLong,
    /// A datagram longer than the limit (the kernel cut it, or it exceeds `--max-datagram`).
    DatagramTooLarge,
    /// A datagram that is not an OSC packet.
    NotOsc,
    /// OSC bundles nested deeper than the limit.
    OscTooDeep,
    /// An OSC address outside the `/sonograd/<kind>` scheme.
    UnknownOscAddress,
    /// An OSC message with too few arguments, or an odd number of named ones.
    OscArgCount,
    /// An OSC argument of the wrong type (a float step, an int layer name).
    OscArgType,
    /// A new layer, eval or run name after the limit on distinct names was reached.
    TooManySeries,
    /// A compact step datagram that is truncated or inconsistent (see `compact`).
    BadCompact,
    /// A sharded step some of whose ranks' datagrams never arrived (given up).
    IncompleteShards,
}

impl BadKind {
    /// Every category, in report order.
    pub const ALL: [BadKind; 23] = [
        BadKind::NotUtf8,
        BadKind::NotJson,
        BadKind::NumberOutOfRange,
        BadKind::NotAnObject,
        BadKind::MissingVersion,
        BadKind::NewerVersion,
        BadKind::UnknownKind,
        BadKind::MissingField,
        BadKind::WrongType,
        BadKind::BadValue,
        BadKind::NonNumericValue,
        BadKind::NameTooLong,
        BadKind::Empty,
        BadKind::LineTooLong,
        BadKind::DatagramTooLarge,
        BadKind::NotOsc,
        BadKind::OscTooDeep,
        BadKind::UnknownOscAddress,
        BadKind::OscArgCount,
        BadKind::OscArgType,
        BadKind::TooManySeries,
        BadKind::BadCompact,
        BadKind::IncompleteShards,
    ];

    /// Position in [`BadKind::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }

    /// Short snake_case name used in reports.
    pub fn name(self) -> &'static str {
        match self {
            BadKind::NotUtf8 => "not_utf8",
            BadKind::NotJson => "not_json",
            BadKind::NumberOutOfRange => "number_out_of_range",
            BadKind::NotAnObject => "not_an_object",
            BadKind::MissingVersion => "missing_version",
            BadKind::NewerVersion => "newer_version",
            BadKind::UnknownKind => "unknown_kind",
            BadKind::MissingField => "missing_field",
            BadKind::WrongType => "wrong_type",
            BadKind::BadValue => "bad_value",
            BadKind::NonNumericValue => "non_numeric_value",
            BadKind::NameTooLong => "name_too_long",
            BadKind::Empty => "empty",
            BadKind::LineTooLong => "line_too_long",
            BadKind::DatagramTooLarge => "datagram_too_large",
            BadKind::NotOsc => "not_osc",
            BadKind::OscTooDeep => "osc_too_deep",
            BadKind::UnknownOscAddress => "unknown_osc_address",
            BadKind::OscArgCount => "osc_arg_count",
            BadKind::OscArgType => "osc_arg_type",
            BadKind::TooManySeries => "too_many_series",
            BadKind::BadCompact => "bad_compact",
            BadKind::IncompleteShards => "incomplete_shards",
        }
    }
}

impl fmt::Display for BadKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One input that was not an event: its category and a readable explanation.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("{kind}: {detail}")]
pub struct BadInput {
    /// The category counted.
    pub kind: BadKind,
    /// What is wrong, naming the field where there is one.
    pub detail: String,
}

impl BadInput {
    /// A bad input of `kind`.
    pub fn new(kind: BadKind, detail: impl Into<String>) -> Self {
        BadInput {
            kind,
            detail: detail.into(),
        }
    }
}

/// A short printable excerpt of raw input for warnings: lossy UTF-8, control characters
/// escaped, cut to about 120 characters.
pub fn excerpt(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(EXAMPLE_LEN * 4)]);
    let mut out = String::new();
    for (i, c) in text.chars().enumerate() {
        if i >= EXAMPLE_LEN {
            out.push('…');
            break;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// Decodes one JSON line (without its newline; surrounding whitespace and `\r` are ignored).
pub fn decode_json_line(bytes: &[u8]) -> Result<Event, BadInput> {
    let text = std::str::from_utf8(bytes)
        .map_err(|e| BadInput::new(BadKind::NotUtf8, format!("invalid UTF-8 ({e})")))?;
    let value: Value = crate::event::json_value(text.trim()).map_err(|e| {
        let message = e.to_string();
        if message.contains("number out of range") {
            BadInput::new(BadKind::NumberOutOfRange, message)
        } else {
            BadInput::new(BadKind::NotJson, message)
        }
    })?;
    decode_json_value(value)
}

/// Decodes one parsed JSON value.
pub fn decode_json_value(value: Value) -> Result<Event, BadInput> {
    let obj = value.as_object().ok_or_else(|| {
        BadInput::new(
            BadKind::NotAnObject,
            format!("expected a JSON object, found {}", json_type(&value)),
        )
    })?;
    match obj.get("v") {
        None => {
            return Err(BadInput::new(
                BadKind::MissingVersion,
                "missing field `v` (format version)",
            ))
        }
        Some(v) => match v.as_u64() {
            Some(found) if found > u64::from(FORMAT_VERSION) => {
                return Err(BadInput::new(
                    BadKind::NewerVersion,
                    format!("format version {found} is newer than this sonograd reads (up to {FORMAT_VERSION})"),
                ))
            }
            Some(_) => {}
            None => {
                return Err(BadInput::new(
                    BadKind::WrongType,
                    format!("field `v` must be a whole number, found {}", json_type(v)),
                ))
            }
        },
    }
    match obj.get("kind") {
        None => return Err(BadInput::new(BadKind::MissingField, "missing field `kind`")),
        Some(Value::String(kind)) if !KINDS.contains(&kind.as_str()) => {
            return Err(BadInput::new(
                BadKind::UnknownKind,
                format!(
                    "unknown kind {:?}, expected one of {}",
                    excerpt(kind.as_bytes()),
                    KINDS.join(", ")
                ),
            ))
        }
        Some(Value::String(_)) => {}
        Some(other) => {
            return Err(BadInput::new(
                BadKind::WrongType,
                format!("field `kind` must be a string, found {}", json_type(other)),
            ))
        }
    }
    for field in ["layer", "name", "run"] {
        if let Some(Value::String(s)) = obj.get(field) {
            if s.len() > MAX_NAME_LEN {
                return Err(BadInput::new(
                    BadKind::NameTooLong,
                    format!(
                        "field `{field}` is {} bytes long, at most {MAX_NAME_LEN} are accepted",
                        s.len()
                    ),
                ));
            }
        }
    }
    if let Some(Value::String(s)) = obj.get("reason") {
        if s.len() > MAX_REASON_LEN {
            return Err(BadInput::new(
                BadKind::NameTooLong,
                format!(
                    "field `reason` is {} bytes long, at most {MAX_REASON_LEN} are accepted",
                    s.len()
                ),
            ));
        }
    }
    if let Some(Value::Array(layers)) = obj.get("layers") {
        if layers.len() > MAX_DIAGNOSIS_LAYERS {
            return Err(BadInput::new(
                BadKind::BadValue,
                format!(
                    "field `layers` names {} layers, at most {MAX_DIAGNOSIS_LAYERS} are accepted",
                    layers.len()
                ),
            ));
        }
        for l in layers {
            if let Value::String(s) = l {
                if s.len() > MAX_NAME_LEN {
                    return Err(BadInput::new(
                        BadKind::NameTooLong,
                        format!(
                            "a name in `layers` is {} bytes long, at most {MAX_NAME_LEN} are accepted",
                            s.len()
                        ),
                    ));
                }
            }
        }
    }
    Event::from_json_value(value).map_err(classify_parse_error)
}

/// Sorts the main crate's parse errors into categories by their (stable, tested) wording.
fn classify_parse_error(e: ParseError) -> BadInput {
    match e {
        ParseError::Version { .. } => BadInput::new(BadKind::NewerVersion, e.to_string()),
        ParseError::Json(message) => {
            let kind = if message.contains("missing field") {
                BadKind::MissingField
            } else if message.contains("expected a number, found the string") {
                BadKind::NonNumericValue
            } else if message.contains("invalid type") {
                BadKind::WrongType
            } else {
                BadKind::BadValue
            };
            BadInput::new(kind, message)
        }
    }
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Receives each decoded line of a datagram with the raw bytes it came from.
pub type LineSink<'a> = dyn FnMut(Result<Event, BadInput>, &[u8]) + 'a;

/// Decodes a datagram of one or more JSON lines, calling `out` once per non-blank line.
/// An empty datagram is one [`BadKind::Empty`].
pub fn decode_json_datagram(bytes: &[u8], out: &mut LineSink<'_>) {
    if bytes.iter().all(|b| b.is_ascii_whitespace()) {
        out(Err(BadInput::new(BadKind::Empty, "empty datagram")), bytes);
        return;
    }
    for line in bytes.split(|&b| b == b'\n') {
        if line.iter().all(|b| b.is_ascii_whitespace()) {
            continue;
        }
        out(decode_json_line(line), line);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Payload;

    fn kind_of(line: &str) -> BadKind {
        decode_json_line(line.as_bytes()).expect_err(line).kind
    }

    #[test]
    fn good_lines_decode() {
        let line = [
            &br#" {"v":1,"step":5,"kind":"loss","value":"NaN","rank":3}"#[..],
            b"\r",
        ]
        .concat();
        let e = decode_json_line(&line).unwrap();
        assert!(matches!(e.payload, Payload::Loss { value } if value.is_nan()));
        assert_eq!(e.rank, Some(3));
        // Python's json.dumps: bare NaN and -Infinity, and a word in a string left alone.
        let e = decode_json_line(br#"{"v": 1, "step": 2, "kind": "loss", "value": -Infinity}"#)
            .unwrap();
        assert!(matches!(e.payload, Payload::Loss { value } if value == f64::NEG_INFINITY));
        let e =
            decode_json_line(br#"{"v":1,"step":2,"kind":"grad_norm","layer":"NaN","value":NaN}"#)
                .unwrap();
        assert!(
            matches!(&e.payload, Payload::GradNorm { layer, value } if &*layer.name == "NaN" && value.is_nan())
        );
        assert_eq!(
            kind_of(r#"{"v":1,"step":2,"kind":"loss","value":nan}"#),
            BadKind::NotJson
        );
    }

    #[test]
    fn bad_lines_are_categorised() {
        let cases: &[(&[u8], BadKind)] = &[
            (b"\xff\xfe", BadKind::NotUtf8),
            (b"{\"v\":1,", BadKind::NotJson),
            (
                br#"{"v":1,"step":1,"kind":"loss","value":1e400}"#,
                BadKind::NumberOutOfRange,
            ),
            (b"[1,2]", BadKind::NotAnObject),
            (
                br#"{"step":1,"kind":"loss","value":1}"#,
                BadKind::MissingVersion,
            ),
            (
                br#"{"v":2,"step":1,"kind":"loss","value":1}"#,
                BadKind::NewerVersion,
            ),
            (
                br#"{"v":1,"step":1,"kind":"wobble","value":1}"#,
                BadKind::UnknownKind,
            ),
            (
                br#"{"v":1,"step":1,"kind":"grad_norm","value":1}"#,
                BadKind::MissingField,
            ),
            (
                br#"{"v":1,"step":"1","kind":"loss","value":1}"#,
                BadKind::WrongType,
            ),
            (
                br#"{"v":1,"step":-1,"kind":"loss","value":1}"#,
                BadKind::BadValue,
            ),
            (
                br#"{"v":1,"step":1,"kind":"loss","value":"lots"}"#,
                BadKind::NonNumericValue,
            ),
        ];
        for (input, kind) in cases {
            let got = decode_json_line(input).expect_err("bad input accepted");
            assert_eq!(got.kind, *kind, "{}: {got}", excerpt(input));
        }
        let long = format!(
            r#"{{"v":1,"step":1,"kind":"grad_norm","layer":"{}","value":1}}"#,
            "x".repeat(MAX_NAME_LEN + 1)
        );
        assert_eq!(kind_of(&long), BadKind::NameTooLong);
    }

    #[test]
    fn a_datagram_of_several_lines_yields_each() {
        let mut got = Vec::new();
        decode_json_datagram(
            b"{\"v\":1,\"step\":1,\"kind\":\"loss\",\"value\":1}\n\nbad\n{\"v\":1,\"step\":2,\"kind\":\"lr\",\"value\":0.1}",
            &mut |r, _| got.push(r.map(|e| e.step).map_err(|b| b.kind)),
        );
        assert_eq!(got, vec![Ok(1), Err(BadKind::NotJson), Ok(2)]);
        let mut empty = Vec::new();
        decode_json_datagram(b"  \n", &mut |r, _| empty.push(r.is_err()));
        assert_eq!(empty, vec![true]);
    }

    #[test]
    fn excerpts_are_short_and_printable() {
        let e = excerpt(&[b'a'; 1000]);
        assert!(e.chars().count() <= EXAMPLE_LEN + 1 && e.ends_with('…'));
        assert_eq!(excerpt(b"a\nb"), "a\\nb");
    }

    #[test]
    fn every_category_has_a_distinct_name_and_index() {
        for (i, k) in BadKind::ALL.iter().enumerate() {
            assert_eq!(k.index(), i);
        }
        let mut names: Vec<_> = BadKind::ALL.iter().map(|k| k.name()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), BadKind::ALL.len());
    }
}
