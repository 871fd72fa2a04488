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

use serde::Deserialize;
use toml::Spanned;

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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPatch {
    name: Option<String>,
    pitch: Option<Spanned<f64>>,
    gain: Option<Spanned<f64>>,
    glide_ms: Option<Spanned<f64>>,
    pan: Option<Spanned<f64>>,
    gate: Option<Spanned<String>>,
    hold_ms: Option<Spanned<f64>>,
    noise: Option<Spanned<f64>>,
    osc: Option<RawOsc>,
    envelope: Option<RawEnvelope>,
    filter: Option<RawFilter>,
    sweep: Option<RawSweep>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOsc {
    wave: Spanned<String>,
    ratio: Option<Spanned<f64>>,
    index: Option<Spanned<f64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEnvelope {
    attack_ms: Option<Spanned<f64>>,
    decay_ms: Option<Spanned<f64>>,
    sustain: Option<Spanned<f64>>,
    release_ms: Option<Spanned<f64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFilter {
    cutoff: Spanned<f64>,
    resonance: Option<Spanned<f64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSweep {
    ratio: Spanned<f64>,
    ms: Spanned<f64>,
}

struct Cx<'a> {
    src: &'a str,
    file: &'a str,
    diags: Vec<Diagnostic>,
}

impl Cx<'_> {
    fn err(&mut self, at: usize, path: &str, message: String) {
        let (line, column) = line_col(self.src, at);
        self.diags.push(Diagnostic {
            file: self.file.to_string(),
            line,
            column,
            path: path.to_string(),
            message,
        });
    }

    /// The value, checked against `lo..=hi`, or `default` when absent.
    fn num(&mut self, v: &Option<Spanned<f64>>, path: &str, lo: f64, hi: f64, default: f64) -> f32 {
        match v {
            None => default as f32,
            Some(s) => {
                let x = *s.get_ref();
                if !(lo..=hi).contains(&x) {
                    self.err(
                        s.span().start,
                        path,
                        format!("expected a number in {lo}..={hi}, found {x}"),
                    );
                    default as f32
                } else {
                    x as f32
                }
            }
        }
    }
}

/// 1-based line and column (in characters) of byte offset `at`.
fn line_col(src: &str, at: usize) -> (usize, usize) {
    let at = at.min(src.len());
    let before = &src[..at];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

impl Patch {
    /// Parses and validates patch text; `file` names it in diagnostics and gives the default
    /// name (its stem).
    pub fn parse(src: &str, file: &str) -> Result<Patch, Diagnostics> {
        let mut cx = Cx {
            src,
            file,
            diags: Vec::new(),
        };
        let raw: RawPatch = match toml::from_str(src) {
            Ok(r) => r,
            Err(e) => {
                let at = e.span().map_or(0, |s| s.start);
                cx.err(at, "", e.message().trim().to_string());
                return Err(Diagnostics(cx.diags));
            }
        };
        let stem = Path::new(file)
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("patch");
        let name: Arc<str> = raw.name.as_deref().unwrap_or(stem).into();
        let wave = match &raw.osc {
            None => Wave::Sine,
            Some(o) => {
                let at = o.wave.span().start;
                let w = match o.wave.get_ref().as_str() {
                    "sine" => Wave::Sine,
                    "saw" => Wave::Saw,
                    "square" => Wave::Square,
                    "triangle" => Wave::Triangle,
                    "fm" => Wave::Fm {
                        ratio: cx.num(&o.ratio, "osc.ratio", 0.01, 32.0, 2.0),
                        index: cx.num(&o.index, "osc.index", 0.0, 50.0, 1.0),
                    },
                    other => {
                        cx.err(
                            at,
                            "osc.wave",
                            format!("unknown wave {other:?}; expected one of `sine`, `saw`, `square`, `triangle`, `fm`"),
                        );
                        Wave::Sine
                    }
                };
                if !matches!(w, Wave::Fm { .. }) {
                    for (k, v) in [("osc.ratio", &o.ratio), ("osc.index", &o.index)] {
                        if let Some(v) = v {
                            cx.err(
                                v.span().start,
                                k,
                                "only `wave = \"fm\"` takes `ratio` and `index`".into(),
                            );
                        }
                    }
                }
                w
            }
        };
        let envelope = match &raw.envelope {
            None => Envelope {
                attack_ms: 5.0,
                decay_ms: 0.0,
                sustain: 1.0,
                release_ms: 50.0,
            },
            Some(e) => Envelope {
                attack_ms: cx.num(&e.attack_ms, "envelope.attack_ms", 0.0, 10_000.0, 5.0),
                decay_ms: cx.num(&e.decay_ms, "envelope.decay_ms", 0.0, 60_000.0, 0.0),
                sustain: cx.num(&e.sustain, "envelope.sustain", 0.0, 1.0, 1.0),
                release_ms: cx.num(&e.release_ms, "envelope.release_ms", 0.0, 60_000.0, 50.0),
            },
        };
        let filter = raw.filter.as_ref().map(|f| Filter {
            cutoff_hz: cx.num(
                &Some(f.cutoff.clone()),
                "filter.cutoff",
                20.0,
                20_000.0,
                1000.0,
            ),
            resonance: cx.num(&f.resonance, "filter.resonance", 0.0, 0.99, 0.0),
        });
        let sweep = raw.sweep.as_ref().map(|s| Sweep {
            ratio: cx.num(&Some(s.ratio.clone()), "sweep.ratio", 0.05, 20.0, 1.0),
            ms: cx.num(&Some(s.ms.clone()), "sweep.ms", 0.1, 10_000.0, 50.0),
        });
        let gate = match &raw.gate {
            None => Gate::Hold,
            Some(g) => match g.get_ref().as_str() {
                "hold" => Gate::Hold,
                "pitch" => Gate::Pitch,
                "trigger" => Gate::Trigger,
                other => {
                    cx.err(
                        g.span().start,
                        "gate",
                        format!("unknown gate {other:?}; expected `hold`, `pitch` or `trigger`"),
                    );
                    Gate::Hold
                }
            },
        };
        let patch = Patch {
            name,
            wave,
            pitch_hz: cx.num(&raw.pitch, "pitch", 1.0, 20_000.0, 220.0),
            envelope,
            filter,
            noise: cx.num(&raw.noise, "noise", 0.0, 1.0, 0.0),
            gain: cx.num(&raw.gain, "gain", 0.0, 1.0, 0.2),
            glide_ms: cx.num(&raw.glide_ms, "glide_ms", 0.0, 60_000.0, 0.0),
            pan: cx.num(&raw.pan, "pan", -1.0, 1.0, 0.0),
            gate,
            hold_ms: cx.num(&raw.hold_ms, "hold_ms", 0.0, 3_600_000.0, 250.0),
            sweep,
        };
        if cx.diags.is_empty() {
            Ok(patch)
        } else {
            cx.diags.sort_by_key(|d| (d.line, d.column));
            Err(Diagnostics(cx.diags))
        }
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
