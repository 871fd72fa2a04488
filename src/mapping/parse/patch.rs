//! Patch files (`patches/*.toml`), read by the same walker as mappings: the same checks of
//! keys and values, the same messages and positions.

use super::values::*;
use super::*;
use crate::synth::patch::{Envelope, Filter, Gate, Sweep, Wave};

const PATCH_KEYS: &[&str] = &[
    "name", "pitch", "gain", "glide_ms", "pan", "gate", "hold_ms", "noise", "osc", "envelope",
    "filter", "sweep",
];
const WAVE_KEYS: &[&str] = &["wave", "ratio", "index"];
const ENVELOPE_KEYS: &[&str] = &["attack_ms", "decay_ms", "sustain", "release_ms"];
const FILTER_KEYS: &[&str] = &["cutoff", "resonance"];
const SWEEP_KEYS: &[&str] = &["ratio", "ms"];

/// The waveforms, by their `wave` name (FM's ratio and index are read beside it).
#[derive(Clone, Copy, PartialEq)]
enum WaveName {
    Sine,
    Saw,
    Square,
    Triangle,
    Fm,
}

const WAVES: &[(&str, WaveName)] = &[
    ("sine", WaveName::Sine),
    ("saw", WaveName::Saw),
    ("square", WaveName::Square),
    ("triangle", WaveName::Triangle),
    ("fm", WaveName::Fm),
];

const GATES: &[(&str, Gate)] = &[
    ("hold", Gate::Hold),
    ("pitch", Gate::Pitch),
    ("trigger", Gate::Trigger),
];

/// The envelope of a patch without an `[envelope]` table, and each key's default within one.
const DEFAULT_ENVELOPE: Envelope = Envelope {
    attack_ms: 5.0,
    decay_ms: 0.0,
    sustain: 1.0,
    release_ms: 50.0,
};

/// Parses and validates patch text; `file` names it in diagnostics and gives the default name
/// (its stem).
pub(crate) fn parse_patch(src: &str, file: &str) -> Result<Patch, Diagnostics> {
    let mut cx = Cx::new(src, file);
    let Some(doc) = cx.toml(src) else {
        return Err(cx.finish());
    };
    let patch = cx.patch_doc(doc.get_ref(), file);
    if cx.diags.is_empty() {
        Ok(patch)
    } else {
        Err(cx.finish())
    }
}

impl Cx<'_> {
    fn patch_doc(&mut self, t: &DeTable<'_>, file: &str) -> Patch {
        self.keys(t, "", PATCH_KEYS, &[], "a patch");
        let stem = Path::new(file)
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("patch");
        let name: Arc<str> = get(t, "name")
            .and_then(|n| self.string(n, "name"))
            .unwrap_or(stem)
            .into();
        let wave = match get(t, "osc").and_then(|o| self.table(o, "osc").map(|t| (o, t))) {
            None => Wave::Sine,
            Some((o, osc)) => self.wave(o, osc),
        };
        let envelope = match get(t, "envelope").and_then(|e| self.table(e, "envelope")) {
            None => DEFAULT_ENVELOPE,
            Some(e) => {
                self.keys(e, "envelope", ENVELOPE_KEYS, &[], "`envelope`");
                let d = DEFAULT_ENVELOPE;
                Envelope {
                    attack_ms: self.num_or(e, "envelope", "attack_ms", 0.0, 10_000.0, d.attack_ms),
                    decay_ms: self.num_or(e, "envelope", "decay_ms", 0.0, 60_000.0, d.decay_ms),
                    sustain: self.num_or(e, "envelope", "sustain", 0.0, 1.0, d.sustain),
                    release_ms: self.num_or(
                        e,
                        "envelope",
                        "release_ms",
                        0.0,
                        60_000.0,
                        d.release_ms,
                    ),
                }
            }
        };
        let filter = get(t, "filter").and_then(|v| {
            let f = self.table(v, "filter")?;
            self.keys(f, "filter", FILTER_KEYS, &[], "`filter`");
            Some(Filter {
                cutoff_hz: self.required_num(v, f, "filter", "cutoff", 20.0, 20_000.0, "in Hz"),
                resonance: self.num_or(f, "filter", "resonance", 0.0, 0.99, 0.0),
            })
        });
        let sweep = get(t, "sweep").and_then(|v| {
            let s = self.table(v, "sweep")?;
            self.keys(s, "sweep", SWEEP_KEYS, &[], "`sweep`");
            Some(Sweep {
                ratio: self.required_num(v, s, "sweep", "ratio", 0.05, 20.0, "the start ratio"),
                ms: self.required_num(v, s, "sweep", "ms", 0.1, 10_000.0, "in ms"),
            })
        });
        let gate = get(t, "gate")
            .and_then(|g| self.choice(g, "gate", "gate", GATES))
            .unwrap_or(Gate::Hold);
        Patch {
            name,
            wave,
            pitch_hz: self.num_or(t, "", "pitch", 1.0, 20_000.0, 220.0),
            envelope,
            filter,
            noise: self.num_or(t, "", "noise", 0.0, 1.0, 0.0),
            gain: self.num_or(t, "", "gain", 0.0, 1.0, 0.2),
            glide_ms: self.num_or(t, "", "glide_ms", 0.0, 60_000.0, 0.0),
            pan: self.num_or(t, "", "pan", -1.0, 1.0, 0.0),
            gate,
            hold_ms: self.num_or(t, "", "hold_ms", 0.0, 3_600_000.0, 250.0),
            sweep,
        }
    }

    fn wave(&mut self, v: &Val<'_>, osc: &DeTable<'_>) -> Wave {
        self.keys(osc, "osc", WAVE_KEYS, &[], "`osc`");
        let Some(w) = get(osc, "wave") else {
            self.missing(v.span(), "osc", "wave", "the waveform, e.g. \"sine\"");
            return Wave::Sine;
        };
        let name = self.choice(w, "osc.wave", "wave", WAVES);
        if name == Some(WaveName::Fm) {
            return Wave::Fm {
                ratio: self.num_or(osc, "osc", "ratio", 0.01, 32.0, 2.0),
                index: self.num_or(osc, "osc", "index", 0.0, 50.0, 1.0),
            };
        }
        for key in ["ratio", "index"] {
            if let Some(k) = get(osc, key) {
                self.err(
                    k.span(),
                    &join("osc", key),
                    "only `wave = \"fm\"` takes `ratio` and `index`",
                );
            }
        }
        match name {
            Some(WaveName::Saw) => Wave::Saw,
            Some(WaveName::Square) => Wave::Square,
            Some(WaveName::Triangle) => Wave::Triangle,
            _ => Wave::Sine,
        }
    }

    /// `t.key`, a number in `lo..=hi`, or `default` when absent (or invalid, reported).
    fn num_or(
        &mut self,
        t: &DeTable<'_>,
        path: &str,
        key: &str,
        lo: f64,
        hi: f64,
        default: f32,
    ) -> f32 {
        match get(t, key) {
            None => default,
            Some(v) => self
                .number(
                    v,
                    &join(path, key),
                    lo,
                    hi,
                    &format!("a number in {lo}..={hi}"),
                )
                .map_or(default, |x| x as f32),
        }
    }

    /// `t.key`, a number in `lo..=hi` that must be given (`what` says what it is).
    #[allow(clippy::too_many_arguments)]
    fn required_num(
        &mut self,
        v: &Val<'_>,
        t: &DeTable<'_>,
        path: &str,
        key: &str,
        lo: f64,
        hi: f64,
        what: &str,
    ) -> f32 {
        if get(t, key).is_none() {
            self.missing(
                v.span(),
                path,
                key,
                &format!("a number in {lo}..={hi}, {what}"),
            );
            return lo as f32;
        }
        self.num_or(t, path, key, lo, hi, lo as f32)
    }
}
