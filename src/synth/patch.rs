//! Patches: instrument definitions read from TOML (`patches/*.toml`).
//!
//! A patch says how one voice sounds: oscillator, envelope, optional low-pass filter and noise
//! layer, gain, glide, stereo position, and how control messages play it (`gate`). Files are
//! validated like mappings: unknown keys and out-of-range values are rejected with
//! `file:line:column` diagnostics. The shipped patches are compiled in ([`Patch::builtin`]).
//!
//! ```
//! use sonograd::synth::patch::Patch;
//! let p = Patch::parse("name = \"beep\"\n[osc]\nwave = \"square\"\n", "beep.toml").unwrap();
//! assert_eq!(&*p.name, "beep");
//! assert!(Patch::parse("nmae = \"x\"\n", "bad.toml").unwrap_err().to_string().starts_with("bad.toml:1:1"));
//! ```

use std::path::Path;
use std::sync::Arc;

use crate::mapping::{Diagnostic, Diagnostics};

/// Oscillator waveform.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Wave {
    /// Pure sine.
    Sine,
    /// Band-limited sawtooth.
    Saw,
    /// Band-limited square.
    Square,
    /// Band-limited triangle.
    Triangle,
    /// Two-operator FM: a sine modulator at `ratio` × pitch with modulation `index`.
    Fm {
        /// Modulator frequency / carrier frequency.
        ratio: f32,
        /// Modulation index (peak frequency deviation / modulator frequency).
        index: f32,
    },
}

/// When a voice sounds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Gate {
    /// Any control message opens the gate; it closes `hold_ms` after the last message.
    Hold,
    /// Every pitch (and trigger) message strikes the envelope: one note per step.
    Pitch,
    /// Only trigger messages strike (alarms).
    Trigger,
}

/// ADSR envelope (linear attack, exponential decay and release).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Envelope {
    /// Attack time, ms.
    pub attack_ms: f32,
    /// Decay time to the sustain level, ms (time constant ×5).
    pub decay_ms: f32,
    /// Sustain level 0..1.
    pub sustain: f32,
    /// Release time, ms (time constant ×5).
    pub release_ms: f32,
}

/// Resonant low-pass filter.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Filter {
    /// Cutoff in Hz until a `cutoff` message sets it.
    pub cutoff_hz: f32,
    /// Resonance 0..0.99 (0: Q 0.707, 0.99: Q ≈ 10).
    pub resonance: f32,
}

impl Filter {
    /// The filter Q for the resonance.
    pub fn q(&self) -> f32 {
        0.707 * 10f32.powf(self.resonance * 1.15)
    }
}

/// Exponential pitch sweep at every strike: starts at `ratio` × pitch and settles in `ms`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sweep {
    /// Start ratio (>1 falls like a kick drum, <1 rises).
    pub ratio: f32,
    /// Time constant ×5, ms.
    pub ms: f32,
}

/// A validated patch.
#[derive(Clone, Debug, PartialEq)]
pub struct Patch {
    /// Name (`name`, defaults to the file stem).
    pub name: Arc<str>,
    /// Oscillator.
    pub wave: Wave,
    /// Pitch in Hz until a `pitch` message sets it.
    pub pitch_hz: f32,
    /// Envelope.
    pub envelope: Envelope,
    /// Optional low-pass filter.
    pub filter: Option<Filter>,
    /// White-noise layer level 0..1 (before the filter); 0: none.
    pub noise: f32,
    /// Output gain 0..1.
    pub gain: f32,
    /// Glide time of pitch and cutoff changes, ms (time constant ×5; 0: jump).
    pub glide_ms: f32,
    /// Stereo position −1..1 until a pan value sets it.
    pub pan: f32,
    /// How messages play the voice.
    pub gate: Gate,
    /// For `gate = "hold"`: release after this many ms without a message (0: never).
    pub hold_ms: f32,
    /// Optional pitch sweep at each strike.
    pub sweep: Option<Sweep>,
}

/// The patches shipped in `patches/`, compiled in: (file name, text).
pub const BUILTIN: [(&str, &str); 9] = [
    ("sine.toml", include_str!("../../patches/sine.toml")),
    (
        "tone-triangle.toml",
        include_str!("../../patches/tone-triangle.toml"),
    ),
    (
        "tone-square.toml",
        include_str!("../../patches/tone-square.toml"),
    ),
    ("tone-fm.toml", include_str!("../../patches/tone-fm.toml")),
    (
        "tone-sine.toml",
        include_str!("../../patches/tone-sine.toml"),
    ),
    ("pluck.toml", include_str!("../../patches/pluck.toml")),
    ("drone.toml", include_str!("../../patches/drone.toml")),
    ("alarm.toml", include_str!("../../patches/alarm.toml")),
    (
        "explosion.toml",
        include_str!("../../patches/explosion.toml"),
    ),
];

impl Patch {
    /// Parses and validates patch text; `file` names it in diagnostics and gives the default
    /// name (its stem).
    pub fn parse(src: &str, file: &str) -> Result<Patch, Diagnostics> {
        crate::mapping::parse::parse_patch(src, file)
    }

    /// Reads and validates a patch file.
    pub fn load(path: impl AsRef<Path>) -> Result<Patch, Diagnostics> {
        let path = path.as_ref();
        let name = path.display().to_string();
        match std::fs::read_to_string(path) {
            Ok(src) => Patch::parse(&src, &name),
            Err(e) => Err(Diagnostics(vec![Diagnostic {
                file: name,
                line: 1,
                column: 1,
                path: String::new(),
                message: format!("cannot read the patch file: {e}"),
            }])),
        }
    }

    /// A shipped patch by name (`sine`, `pluck`, `drone`, `alarm`, `explosion`).
    pub fn builtin(name: &str) -> Option<Patch> {
        BUILTIN
            .iter()
            .find(|(file, _)| file.strip_suffix(".toml") == Some(name))
            .map(|(file, src)| Patch::parse(src, file).expect("shipped patches are valid"))
    }
}
