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
        let level = if level.is_nan() {
            0.0
        } else {
            level.clamp(0.0, 1.0)
        };
        let top = (self.len() - 1) as f64;
        self.note((level * top).round() as usize)
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
