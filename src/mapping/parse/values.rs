//! Reading one value: typed getters that report what they expected, key checks.

use super::*;

/// `names[i]` paired with `values[i]`: the options of [`Cx::choice`] for a type that keeps its
/// names and values in two lists.
pub(super) fn named<T: Copy>(names: &[&'static str], values: &[T]) -> Vec<(&'static str, T)> {
    names.iter().copied().zip(values.iter().copied()).collect()
}

pub(super) fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

pub(super) fn get<'a, 'i>(t: &'a DeTable<'i>, key: &str) -> Option<&'a Val<'i>> {
    t.iter()
        .find(|(k, _)| k.get_ref().as_ref() == key)
        .map(|(_, v)| v)
}

pub(super) fn describe(v: &DeValue<'_>) -> String {
    match v {
        DeValue::String(s) => format!("the string {s:?}"),
        DeValue::Integer(i) => format!("the integer {}", i.as_str()),
        DeValue::Float(f) => format!("the number {}", f.as_str()),
        DeValue::Boolean(b) => format!("{b}"),
        other => format!("a {}", other.type_str()),
    }
}

pub(super) fn list(names: &[&str]) -> String {
    names
        .iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

impl Cx<'_> {
    /// Reports keys not in `allowed`; `known` are keys valid elsewhere in this kind of table
    /// (used for the suggestion and a better message).
    pub(super) fn keys(
        &mut self,
        t: &DeTable<'_>,
        path: &str,
        allowed: &[&str],
        known: &[&str],
        whose: &str,
    ) {
        for (k, _) in t.iter() {
            let key = k.get_ref().as_ref();
            if allowed.contains(&key) {
                continue;
            }
            let msg = if known.contains(&key) {
                format!(
                    "key `{key}` does not apply to {whose} (it expects {})",
                    list(allowed)
                )
            } else {
                let candidates: Vec<&str> = allowed.iter().chain(known.iter()).copied().collect();
                let hint = did_you_mean(key, &candidates);
                if hint.is_empty() {
                    format!("unknown key `{key}`, expected one of {}", list(allowed))
                } else {
                    format!("unknown key `{key}`{hint}")
                }
            };
            self.err(k.span(), path, msg);
        }
    }

    pub(super) fn type_err(&mut self, v: &Val<'_>, path: &str, expected: &str) {
        let msg = format!("expected {expected}, found {}", describe(v.get_ref()));
        self.err(v.span(), path, msg);
    }

    pub(super) fn table<'a, 'i>(&mut self, v: &'a Val<'i>, path: &str) -> Option<&'a DeTable<'i>> {
        match v.get_ref() {
            DeValue::Table(t) => Some(t),
            _ => {
                self.type_err(v, path, "a table");
                None
            }
        }
    }

    pub(super) fn string<'a>(&mut self, v: &'a Val<'_>, path: &str) -> Option<&'a str> {
        match v.get_ref() {
            DeValue::String(s) => Some(s.as_ref()),
            _ => {
                self.type_err(v, path, "a string");
                None
            }
        }
    }

    pub(super) fn boolean(&mut self, v: &Val<'_>, path: &str) -> Option<bool> {
        match v.get_ref() {
            DeValue::Boolean(b) => Some(*b),
            _ => {
                self.type_err(v, path, "true or false");
                None
            }
        }
    }

    pub(super) fn number_of(v: &DeValue<'_>) -> Option<f64> {
        match v {
            DeValue::Integer(i) => i64::from_str_radix(i.as_str(), i.radix())
                .ok()
                .map(|n| n as f64),
            DeValue::Float(f) => f.as_str().parse::<f64>().ok(),
            _ => None,
        }
    }

    /// A finite number in `lo..=hi`.
    pub(super) fn number(
        &mut self,
        v: &Val<'_>,
        path: &str,
        lo: f64,
        hi: f64,
        expected: &str,
    ) -> Option<f64> {
        match Self::number_of(v.get_ref()) {
            Some(n) if n.is_finite() && n >= lo && n <= hi => Some(n),
            Some(n) => {
                self.err(v.span(), path, format!("expected {expected}, found {n}"));
                None
            }
            None => {
                self.type_err(v, path, expected);
                None
            }
        }
    }

    /// A whole number in `lo..=hi`.
    pub(super) fn integer(
        &mut self,
        v: &Val<'_>,
        path: &str,
        lo: i64,
        hi: i64,
        expected: &str,
    ) -> Option<i64> {
        match v.get_ref() {
            DeValue::Integer(i) => match i64::from_str_radix(i.as_str(), i.radix()) {
                Ok(n) if n >= lo && n <= hi => Some(n),
                _ => {
                    self.err(
                        v.span(),
                        path,
                        format!("expected {expected}, found {}", i.as_str()),
                    );
                    None
                }
            },
            _ => {
                self.type_err(v, path, expected);
                None
            }
        }
    }

    /// A string naming one of `options`, as that option's value.
    pub(super) fn choice<T: Copy>(
        &mut self,
        v: &Val<'_>,
        path: &str,
        what: &str,
        options: &[(&str, T)],
    ) -> Option<T> {
        let s = self.string(v, path)?;
        if let Some((_, value)) = options.iter().find(|(n, _)| *n == s) {
            return Some(*value);
        }
        let names: Vec<&str> = options.iter().map(|(n, _)| *n).collect();
        let names = names.as_slice();
        let hint = did_you_mean(s, names);
        let msg = if hint.is_empty() {
            format!("unknown {what} `{s}`, expected one of {}", list(names))
        } else {
            format!(
                "unknown {what} `{s}`{hint} (expected one of {})",
                list(names)
            )
        };
        self.err(v.span(), path, msg);
        None
    }

    /// `[a, b]` of finite numbers.
    /// The target's `range = [lo, hi]` of two MIDI numbers 0-127, lo below hi (`what` names
    /// them in the error), or `default` when it is absent.
    pub(super) fn midi_range(
        &mut self,
        t: &DeTable<'_>,
        path: &str,
        what: &str,
        default: [u8; 2],
    ) -> Option<[u8; 2]> {
        let Some(r) = get(t, "range") else {
            return Some(default);
        };
        match self.pair(r, &join(path, "range"))? {
            [lo, hi]
                if lo.fract() == 0.0
                    && hi.fract() == 0.0
                    && (0.0..=127.0).contains(&lo)
                    && (0.0..=127.0).contains(&hi)
                    && lo < hi =>
            {
                Some([lo as u8, hi as u8])
            }
            [lo, hi] => {
                self.err(
                    r.span(),
                    &join(path, "range"),
                    format!(
                        "expected two {what} 0-127, the first below the second, found [{lo}, {hi}]"
                    ),
                );
                None
            }
        }
    }

    /// A `range` beside a fixed `key` (not `"value"`) is an error.
    pub(super) fn range_only_with_value(
        &mut self,
        t: &DeTable<'_>,
        path: &str,
        key: &str,
        source: Option<NoteSource>,
    ) {
        if let (Some(NoteSource::Fixed(_)), Some(r)) = (source, get(t, "range")) {
            self.err(
                r.span(),
                &join(path, "range"),
                format!("`range` applies only to `{key} = \"value\"`"),
            );
        }
    }

    pub(super) fn pair(&mut self, v: &Val<'_>, path: &str) -> Option<[f64; 2]> {
        let expected = "a pair of numbers like [0.0, 1.0]";
        let DeValue::Array(items) = v.get_ref() else {
            self.type_err(v, path, expected);
            return None;
        };
        let nums: Vec<Option<f64>> = items.iter().map(|i| Self::number_of(i.get_ref())).collect();
        match nums.as_slice() {
            [Some(a), Some(b)] if a.is_finite() && b.is_finite() => Some([*a, *b]),
            _ => {
                self.err(
                    v.span(),
                    path,
                    format!("expected {expected}, found {} items", items.len()),
                );
                None
            }
        }
    }

    pub(super) fn missing(&mut self, span: Span, path: &str, key: &str, what: &str) {
        self.err(span, path, format!("missing key `{key}` ({what})"));
    }
}
