//! A route's `scale`: snapping levels to the notes of a scale.

use super::values::*;
use super::*;

const SCALE_KEYS: &[&str] = &[
    "root",
    "name",
    "semitones",
    "octaves",
    "bend",
    "layer_spread",
];

impl Cx<'_> {
    pub(super) fn scale(&mut self, v: &Val<'_>, path: &str) -> Option<Scale> {
        let t = self.table(v, path)?;
        self.keys(t, path, SCALE_KEYS, &[], "`scale`");
        let root = match get(t, "root") {
            None => Some(60),
            Some(r) => match r.get_ref() {
                DeValue::String(s) => match parse_note_name(s) {
                    Some(n) => Some(n),
                    None => {
                        self.err(
                            r.span(),
                            &join(path, "root"),
                            format!("expected a note name like \"C3\" or \"F#4\", found {s:?}"),
                        );
                        None
                    }
                },
                _ => self
                    .integer(
                        r,
                        &join(path, "root"),
                        0,
                        127,
                        "a MIDI note 0-127 or a note name like \"C3\"",
                    )
                    .map(|n| n as u8),
            },
        };
        let semitones: Option<Vec<u8>> = match (get(t, "name"), get(t, "semitones")) {
            (Some(_), Some(s)) => {
                self.err(
                    s.span(),
                    &join(path, "semitones"),
                    "give either `name` or `semitones`, not both",
                );
                None
            }
            (Some(n), None) => self
                .choice(
                    n,
                    &join(path, "name"),
                    "scale",
                    &named(&SCALE_NAMES, &SCALE_NAMES),
                )
                .and_then(named_scale)
                .map(|s| s.to_vec()),
            (None, Some(s)) => {
                let expected = "a list of semitones 0-11 starting at 0, ascending, like [0, 3, 7]";
                match s.get_ref() {
                    DeValue::Array(items) => {
                        let nums: Option<Vec<i64>> = items
                            .iter()
                            .map(|i| match i.get_ref() {
                                DeValue::Integer(n) => {
                                    i64::from_str_radix(n.as_str(), n.radix()).ok()
                                }
                                _ => None,
                            })
                            .collect();
                        match nums {
                            Some(n)
                                if !n.is_empty()
                                    && n[0] == 0
                                    && n.windows(2).all(|w| w[0] < w[1])
                                    && n.iter().all(|x| (0..12).contains(x)) =>
                            {
                                Some(n.into_iter().map(|x| x as u8).collect())
                            }
                            _ => {
                                self.err(
                                    s.span(),
                                    &join(path, "semitones"),
                                    format!("expected {expected}"),
                                );
                                None
                            }
                        }
                    }
                    _ => {
                        self.type_err(s, &join(path, "semitones"), expected);
                        None
                    }
                }
            }
            (None, None) => Some(named_scale("pentatonic_major").unwrap_or(&[0]).to_vec()),
        };
        let octaves = match get(t, "octaves") {
            None => Some((0, 2)),
            Some(o) => match o.get_ref() {
                DeValue::Array(_) => match self.pair(o, &join(path, "octaves")) {
                    Some([lo, hi])
                        if lo.fract() == 0.0
                            && hi.fract() == 0.0
                            && lo < hi
                            && lo >= -5.0
                            && hi <= 10.0 =>
                    {
                        Some((lo as i8, (hi - lo) as u8))
                    }
                    Some(_) => {
                        self.err(o.span(), &join(path, "octaves"), "expected `[lo, hi]` whole octave offsets from the root, lo below hi, within -5..10");
                        None
                    }
                    None => None,
                },
                _ => self
                    .integer(
                        o,
                        &join(path, "octaves"),
                        1,
                        10,
                        "a number of octaves 1-10, or `[lo, hi]` offsets",
                    )
                    .map(|n| (0, n as u8)),
            },
        };
        let bend = match get(t, "bend") {
            Some(b) => self
                .integer(
                    b,
                    &join(path, "bend"),
                    0,
                    50,
                    "a number of cents 0-50 (how far the pitch may lean off its note)",
                )
                .map(|n| n as u8),
            None => Some(0),
        };
        let layer_spread = match get(t, "layer_spread") {
            Some(x) => self.number(
                x,
                &join(path, "layer_spread"),
                0.0,
                8.0,
                "a number of octaves 0-8 (how far apart the first and last layer's registers start)",
            ),
            None => Some(0.0),
        };
        let (octave_lo, octaves) = octaves?;
        let semitones = semitones?;
        let spread_degrees = (layer_spread? * semitones.len() as f64).round() as u16;
        Some(Scale {
            root: root?,
            semitones,
            octave_lo,
            octaves,
            bend_cents: bend?,
            spread_degrees,
        })
    }
}
