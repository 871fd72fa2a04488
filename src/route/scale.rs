//! Musical scales: quantising a level in 0..1 to a MIDI note, and note names.

/// A scale: a root note, the semitone offsets of one octave, and the octaves it spans.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Scale {
    /// MIDI note of the root.
    pub root: u8,
    /// Semitone offsets within an octave, ascending, starting at 0, all below 12.
    pub semitones: Vec<u8>,
    /// Lowest octave offset from the root (may be negative).
    pub octave_lo: i8,
    /// Number of octaves spanned (at least 1).
    pub octaves: u8,
    /// Within a note, the pitch leans off it by up to this many cents (0..=50), following the
    /// level, so a small change is heard without leaving the note (`bend`; 0: exact notes).
    pub bend_cents: u8,
    /// Scale degrees between the first and the last layer's registers (`layer_spread`, given
    /// in octaves): layer `i` of `n` plays `spread_degrees × i / (n − 1)` degrees higher.
    pub spread_degrees: u16,
}

/// Named scales accepted in `scale.name`.
pub const SCALE_NAMES: [&str; 7] = [
    "chromatic",
    "major",
    "minor",
    "pentatonic_major",
    "pentatonic_minor",
    "dorian",
    "whole_tone",
];

/// Semitones of a named scale.
pub fn named_scale(name: &str) -> Option<&'static [u8]> {
    Some(match name {
        "chromatic" => &[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11],
        "major" => &[0, 2, 4, 5, 7, 9, 11],
        "minor" => &[0, 2, 3, 5, 7, 8, 10],
        "pentatonic_major" => &[0, 2, 4, 7, 9],
        "pentatonic_minor" => &[0, 3, 5, 7, 10],
        "dorian" => &[0, 2, 3, 5, 7, 9, 10],
        "whole_tone" => &[0, 2, 4, 6, 8, 10],
        _ => return None,
    })
}

impl Scale {
    /// Number of notes the scale offers: every degree of every octave plus the top root.
    pub fn len(&self) -> usize {
        self.semitones.len() * self.octaves as usize + 1
    }

    /// A scale always has at least one note.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The `i`-th note from the bottom (clamped to the top note), as a MIDI note 0..=127.
    pub fn note(&self, i: usize) -> u8 {
        let i = i.min(self.len() - 1);
        let per = self.semitones.len();
        let octave = (i / per) as i32 + self.octave_lo as i32;
        let n = self.root as i32 + 12 * octave + self.semitones[i % per] as i32;
        n.clamp(0, 127) as u8
    }

    /// Quantises a level (clamped to 0..1; NaN counts as 0) to a note: level 0 is the
    /// lowest note, level 1 the highest, equal steps between.
    pub fn quantise(&self, level: f64) -> u8 {
        self.quantise_layer(level, None, 1)
    }

    /// [`Scale::quantise`] in the register of layer `layer` of `layers` (see
    /// [`Scale::spread_degrees`]; `None`: the first layer's).
    pub fn quantise_layer(&self, level: f64, layer: Option<u32>, layers: u32) -> u8 {
        let (i, _) = self.position(level);
        self.degree(i + self.layer_offset(layer, layers))
    }

    /// The pitch of a level as a fractional MIDI note: the note of
    /// [`Scale::quantise_layer`], leaning up to `bend_cents` off it towards the neighbouring
    /// note as the level nears the edge of the note's share of 0..1. Strictly increasing in
    /// the level while `bend_cents` > 0 (a note's neighbours are at least 100 cents away).
    pub fn pitch(&self, level: f64, layer: Option<u32>, layers: u32) -> f64 {
        let (i, frac) = self.position(level);
        let note = self.degree(i + self.layer_offset(layer, layers)) as f64;
        note + 2.0 * frac * self.bend_cents as f64 / 100.0
    }

    /// The nearest degree index (from the bottom of the range) of a level and how far off it
    /// the level lies, in degrees (-0.5..0.5).
    fn position(&self, level: f64) -> (usize, f64) {
        let level = if level.is_nan() {
            0.0
        } else {
            level.clamp(0.0, 1.0)
        };
        let x = level * (self.len() - 1) as f64;
        let i = x.round();
        (i as usize, x - i)
    }

    /// Degrees the register of layer `layer` of `layers` lies above the first layer's.
    fn layer_offset(&self, layer: Option<u32>, layers: u32) -> usize {
        match layer {
            Some(i) if layers > 1 && self.spread_degrees > 0 => {
                let f = i.min(layers - 1) as f64 / (layers - 1) as f64;
                (self.spread_degrees as f64 * f).round() as usize
            }
            _ => 0,
        }
    }

    /// The `i`-th degree from the bottom, past the top if need be, as a MIDI note 0..=127.
    fn degree(&self, i: usize) -> u8 {
        let per = self.semitones.len();
        let octave = (i / per) as i32 + self.octave_lo as i32;
        let n = self.root as i32 + 12 * octave + self.semitones[i % per] as i32;
        n.clamp(0, 127) as u8
    }
}

/// Frequency in Hz of a MIDI note (A4 = 69 = 440 Hz).
pub fn note_hz(note: f64) -> f64 {
    440.0 * ((note - 69.0) / 12.0).exp2()
}

/// Parses a note name like `C4`, `F#3`, `Bb2` or `C-1` (C4 = 60) into a MIDI note.
pub fn parse_note_name(name: &str) -> Option<u8> {
    let mut chars = name.chars();
    let letter = chars.next()?.to_ascii_uppercase();
    let base: i32 = match letter {
        'C' => 0,
        'D' => 2,
        'E' => 4,
        'F' => 5,
        'G' => 7,
        'A' => 9,
        'B' => 11,
        _ => return None,
    };
    let rest = chars.as_str();
    let (accidental, octave) = if let Some(r) = rest.strip_prefix('#') {
        (1, r)
    } else if let Some(r) = rest.strip_prefix('b') {
        (-1, r)
    } else {
        (0, rest)
    };
    let octave: i32 = octave.parse().ok()?;
    let n = (octave + 1) * 12 + base + accidental;
    (0..=127).contains(&n).then_some(n as u8)
}

/// The name of a MIDI note, e.g. `A4` for 69.
pub fn note_name(note: u8) -> (&'static str, i32) {
    const NAMES: [&str; 12] = [
        "C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B",
    ];
    (NAMES[note as usize % 12], note as i32 / 12 - 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn penta(root: u8, octaves: u8) -> Scale {
        Scale {
            root,
            semitones: vec![0, 2, 4, 7, 9],
            octave_lo: 0,
            octaves,
            bend_cents: 0,
            spread_degrees: 0,
        }
    }

    #[test]
    fn layer_registers_and_bend() {
        // Pentatonic from C1 (24) over 4 octaves, registers spread 3.6 octaves = 18 degrees:
        // four layers start 0, 6, 12 and 18 degrees up.
        let s = Scale {
            bend_cents: 30,
            spread_degrees: 18,
            ..penta(24, 4)
        };
        assert_eq!(s.len(), 21);
        // Level 0.5 is degree 10 = C3 (48) for the first layer; +6 degrees = D4 (62),
        // +12 = E5 (76), +18 = G6 (91).
        let mid: Vec<u8> = (0..4).map(|i| s.quantise_layer(0.5, Some(i), 4)).collect();
        assert_eq!(mid, [48, 62, 76, 91]);
        assert_eq!(s.quantise_layer(0.5, None, 4), 48);
        // Two layers: the second starts the whole spread up.
        assert_eq!(s.quantise_layer(0.0, Some(1), 2), 24 + 36 + 7);
        // Exactly on a note: no bend; a quarter of a degree above it: 15 cents sharp.
        assert_eq!(s.pitch(0.5, Some(0), 4), 48.0);
        let quarter = 0.5 + 0.25 / 20.0;
        assert!((s.pitch(quarter, Some(0), 4) - 48.15).abs() < 1e-9);
        // Strictly increasing across note boundaries, never more than 30 cents off a note.
        let mut last = f64::NEG_INFINITY;
        for k in 0..=2000 {
            let p = s.pitch(k as f64 / 2000.0, Some(2), 4);
            assert!(p > last || k == 0, "{k}: {p} after {last}");
            assert!((p - p.round()).abs() <= 0.3 + 1e-9, "{p}");
            last = p;
        }
    }

    #[test]
    fn note_names() {
        assert_eq!(parse_note_name("C4"), Some(60));
        assert_eq!(parse_note_name("A4"), Some(69));
        assert_eq!(parse_note_name("C3"), Some(48));
        assert_eq!(parse_note_name("F#3"), Some(54));
        assert_eq!(parse_note_name("Bb2"), Some(46));
        assert_eq!(parse_note_name("C-1"), Some(0));
        assert_eq!(parse_note_name("H2"), None);
        assert_eq!(parse_note_name("G9"), Some(127));
        assert_eq!(parse_note_name("A9"), None);
        assert_eq!(note_name(61), ("C#", 4));
    }

    #[test]
    fn pentatonic_two_octaves() {
        // 5 degrees x 2 octaves + top root = 11 notes: 48 50 52 55 57 60 62 64 67 69 72.
        let s = penta(48, 2);
        assert_eq!(s.len(), 11);
        assert_eq!(s.quantise(0.0), 48);
        assert_eq!(s.quantise(0.5), 60);
        assert_eq!(s.quantise(1.0), 72);
        assert_eq!(s.quantise(0.3), 55); // 0.3 * 10 = 3 -> 55
        assert_eq!(s.quantise(f64::NAN), 48);
        assert_eq!(s.quantise(7.0), 72);
    }

    #[test]
    fn hz() {
        assert!((note_hz(69.0) - 440.0).abs() < 1e-9);
        assert!((note_hz(57.0) - 220.0).abs() < 1e-9);
    }
}
