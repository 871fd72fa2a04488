//! A fast path for reading the common JSON lines: the per-step metrics (`grad_norm`,
//! `weight_norm`, `update_ratio`, `total_norm`, `loss`, `lr`) as plain objects of numbers and
//! strings without escapes. Parsing those through `serde_json::Value` (a map of owned keys,
//! then serde's buffering for the tagged, flattened enum) was most of a replay's reading time.
//!
//! [`parse`] reads such a line in one pass with no allocation but the layer name, and gives up
//! (`None`) on anything else: another kind, an unknown or repeated key, an escape, a nested
//! value, `null`, a number in an unusual form, a non-finite value written as a string, a
//! version this build does not read. The caller then takes the general path, which also makes
//! every error message. So on the lines it accepts it gives exactly what the general path
//! gives (numbers go through serde_json's own number parser); the tests check that.

use std::sync::Arc;

use crate::{Event, Layer, Payload, FORMAT_VERSION};

/// A JSON value the fast path reads: a string without escapes, or a number's text.
#[derive(Clone, Copy)]
enum Val<'a> {
    Str(&'a str),
    Num(&'a str),
}

struct Cursor<'a> {
    text: &'a str,
    at: usize,
}

impl<'a> Cursor<'a> {
    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.at).copied()
    }

    fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.at += 1;
        }
    }

    fn eat(&mut self, c: u8) -> Option<()> {
        (self.peek()? == c).then(|| self.at += 1)
    }

    /// A string without escapes or control characters (anything else: `None`).
    fn string(&mut self) -> Option<&'a str> {
        self.eat(b'"')?;
        let start = self.at;
        let bytes = self.text.as_bytes();
        loop {
            match *bytes.get(self.at)? {
                b'"' => break,
                b'\\' | 0..=0x1f => return None,
                _ => self.at += 1,
            }
        }
        let s = &self.text[start..self.at];
        self.at += 1;
        Some(s)
    }

    fn value(&mut self) -> Option<Val<'a>> {
        match self.peek()? {
            b'"' => self.string().map(Val::Str),
            b'-' | b'0'..=b'9' => {
                let start = self.at;
                while let Some(b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E') = self.peek() {
                    self.at += 1;
                }
                Some(Val::Num(&self.text[start..self.at]))
            }
            _ => None,
        }
    }
}

/// A whole number as JSON writes one (digits, no sign, no leading zero), if it fits a u64.
fn whole(v: Val) -> Option<u64> {
    let Val::Num(t) = v else { return None };
    if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) || (t.len() > 1 && t.starts_with('0'))
    {
        return None;
    }
    t.parse().ok()
}

fn small(v: Val) -> Option<u32> {
    whole(v)?.try_into().ok()
}

/// A number, through serde_json's parser (the general path's digits-to-f64 conversion).
fn number(v: Val) -> Option<f64> {
    let Val::Num(t) = v else { return None };
    serde_json::from_str::<f64>(t).ok()
}

const KEYS: [&str; 10] = [
    "v",
    "step",
    "epoch",
    "time",
    "run",
    "rank",
    "kind",
    "value",
    "layer",
    "layer_index",
];

/// The event on `line`, if it is one of the simple kinds; `None`: take the general path.
pub(crate) fn parse(line: &str) -> Option<Event> {
    let mut c = Cursor { text: line, at: 0 };
    let mut vals: [Option<Val>; KEYS.len()] = [None; KEYS.len()];
    c.ws();
    c.eat(b'{')?;
    loop {
        c.ws();
        let key = c.string()?;
        c.ws();
        c.eat(b':')?;
        c.ws();
        let val = c.value()?;
        let slot = vals.get_mut(KEYS.iter().position(|k| *k == key)?)?;
        if slot.replace(val).is_some() {
            return None;
        }
        c.ws();
        match c.peek()? {
            b',' => c.at += 1,
            b'}' => {
                c.at += 1;
                break;
            }
            _ => return None,
        }
    }
    c.ws();
    if c.at != line.len() {
        return None;
    }
    let [v, step, epoch, time, run, rank, kind, value, layer, layer_index] = vals;
    let version = small(v?)?;
    if version > FORMAT_VERSION {
        return None;
    }
    let Val::Str(kind) = kind? else { return None };
    let value = number(value?)?;
    let layered = matches!(kind, "grad_norm" | "weight_norm" | "update_ratio");
    let layer = if layered {
        let Val::Str(name) = layer? else { return None };
        let index = match layer_index {
            Some(i) => Some(small(i)?),
            None => None,
        };
        Some(Layer {
            name: Arc::from(name),
            index,
        })
    } else if layer.is_some() || layer_index.is_some() {
        return None;
    } else {
        None
    };
    let payload = match (kind, layer) {
        ("grad_norm", Some(layer)) => Payload::GradNorm { layer, value },
        ("weight_norm", Some(layer)) => Payload::WeightNorm { layer, value },
        ("update_ratio", Some(layer)) => Payload::UpdateRatio { layer, value },
        ("total_norm", None) => Payload::TotalNorm { value },
        ("loss", None) => Payload::Loss { value },
        ("lr", None) => Payload::Lr { value },
        _ => return None,
    };
    Some(Event {
        version,
        step: whole(step?)?,
        epoch: match epoch {
            Some(e) => small(e)?,
            None => 0,
        },
        time: match time {
            Some(t) => number(t)?,
            None => 0.0,
        },
        run: match run {
            Some(Val::Str(r)) => Some(Arc::from(r)),
            Some(Val::Num(_)) => return None,
            None => None,
        },
        rank: match rank {
            Some(r) => Some(small(r)?),
            None => None,
        },
        payload,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The general path alone.
    fn slow(line: &str) -> Result<Event, crate::ParseError> {
        let value: serde_json::Value =
            serde_json::from_str(line).map_err(|e| crate::ParseError::Json(e.to_string()))?;
        Event::from_json_value(value)
    }

    /// Same event, and the same bits in every number.
    fn same(a: &Event, b: &Event) -> bool {
        a == b
            && a.time.to_bits() == b.time.to_bits()
            && a.payload.value().map(f64::to_bits) == b.payload.value().map(f64::to_bits)
    }

    fn check(line: &str) -> bool {
        let fast = parse(line);
        if let Some(f) = &fast {
            let s = slow(line).unwrap_or_else(|e| panic!("fast read {line}, slow failed: {e}"));
            assert!(same(f, &s), "{line}: {f:?} vs {s:?}");
        }
        fast.is_some()
    }

    #[test]
    fn common_lines_take_the_fast_path_and_agree() {
        for line in [
            r#"{"v":1,"step":12,"epoch":0,"time":1.5,"kind":"loss","value":0.25}"#,
            r#"{"v": 1, "step": 0, "kind": "grad_norm", "layer": "fc1", "layer_index": 0, "value": 1.0}"#,
            r#"{"v":1,"step":5,"kind":"grad_norm","layer":"conv1","value":3}"#,
            r#"  {"kind":"total_norm","value":-0,"step":7,"v":1}  "#,
            r#"{"v":1,"step":7,"kind":"lr","value":1e-3,"run":"a","rank":3,"time":1700000000.125}"#,
            r#"{"v":0,"step":18446744073709551615,"kind":"weight_norm","layer":"ü","value":2.5E+2}"#,
            r#"{"v":1,"step":1,"kind":"update_ratio","layer":"x","value":0.30000000000000004}"#,
            "{\"v\":1,\t\"step\":2,\r\n\"kind\":\"loss\",\"value\":123456789012345678901234567890}",
        ] {
            assert!(check(line), "slow path for {line}");
        }
    }

    #[test]
    fn anything_else_takes_the_general_path() {
        for line in [
            r#"{"v":2,"step":1,"kind":"loss","value":1}"#,
            r#"{"v":1,"step":1,"kind":"loss","value":"NaN"}"#,
            r#"{"v":1,"step":1.0,"kind":"loss","value":1}"#,
            r#"{"v":1,"step":01,"kind":"loss","value":1}"#,
            r#"{"v":1,"step":-1,"kind":"loss","value":1}"#,
            r#"{"v":1,"step":1,"kind":"loss","value":1,"value":2}"#,
            r#"{"v":1,"step":1,"kind":"loss","value":1,"extra":2}"#,
            r#"{"v":1,"step":1,"kind":"loss","value":1,"layer":"fc1"}"#,
            r#"{"v":1,"step":1,"kind":"grad_norm","value":1}"#,
            r#"{"v":1,"step":1,"kind":"grad_norm","layer":"f\"c","value":1}"#,
            r#"{"v":1,"step":1,"kind":"grad_norm","layer":"fc","layer_index":null,"value":1}"#,
            r#"{"v":1,"step":1,"kind":"grad_norm","layer":"fc","layer_index":4294967296,"value":1}"#,
            r#"{"v":1,"step":1,"kind":"loss","value":1,"run":null}"#,
            r#"{"v":1,"step":1,"kind":"loss","value":1} x"#,
            r#"{"v":1,"step":1,"kind":"loss","value":1"#,
            r#"{"v":1,"step":1,"kind":"loss","value":1e999}"#,
            r#"{"v":1,"step":1,"kind":"loss","value":1.}"#,
            r#"{"v":1,"step":1,"kind":"epoch_end"}"#,
            r#"{"v":1,"step":1,"kind":"eval","name":"acc","value":1}"#,
            r#"{"step":1,"kind":"loss","value":1}"#,
            r#"{}"#,
            "",
        ] {
            assert!(!check(line), "fast path for {line}");
        }
    }

    #[test]
    fn numbers_agree_bit_for_bit() {
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        for i in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let v = f64::from_bits(x);
            let text = match i % 4 {
                0 if v.is_finite() => format!("{v}"),
                1 if v.is_finite() => format!("{v:e}"),
                2 => format!("{}.{:03}e{}", x % 1000, x % 997, (x % 40) as i64 - 20),
                _ => format!("{}", (x >> 11) as f64 * 1e-9),
            };
            let line =
                format!(r#"{{"v":1,"step":{i},"time":{text},"kind":"loss","value":{text}}}"#);
            check(&line);
        }
    }
}
