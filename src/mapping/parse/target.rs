//! A route's `to`: the synth parameter, MIDI message or OSC address it drives.

use super::values::*;
use super::*;

const TARGET_SELECTORS: &[&str] = &["param", "note", "cc", "pitch_bend", "program", "address"];
const SYNTH_TARGET_KEYS: &[&str] = &["param", "voice", "range"];
const NOTE_KEYS: &[&str] = &["note", "velocity", "length_ms", "channel", "range"];
const CC_KEYS: &[&str] = &["cc", "14bit", "channel"];
const BEND_KEYS: &[&str] = &["pitch_bend", "channel"];
const PROGRAM_KEYS: &[&str] = &["program", "channel", "range"];
const OSC_TARGET_KEYS: &[&str] = &["address", "args", "range"];
const ALL_TARGET_KEYS: &[&str] = &[
    "param",
    "voice",
    "range",
    "note",
    "velocity",
    "length_ms",
    "channel",
    "cc",
    "14bit",
    "pitch_bend",
    "program",
    "address",
    "args",
];

impl Cx<'_> {
    pub(super) fn target(
        &mut self,
        v: &Val<'_>,
        path: &str,
        out: Option<&OutputKind>,
        outputs: &[OutputDef],
        output: Option<usize>,
    ) -> Option<Target> {
        let t = self.table(v, path)?;
        let present: Vec<&str> = TARGET_SELECTORS
            .iter()
            .copied()
            .filter(|k| get(t, k).is_some())
            .collect();
        let selector = match present.as_slice() {
            [] => {
                self.keys(
                    t,
                    path,
                    TARGET_SELECTORS,
                    ALL_TARGET_KEYS,
                    "`to` without a target key",
                );
                self.err(v.span(), path, "missing target: expected one of `param` (synth), `note`, `cc`, `pitch_bend`, `program` (MIDI) or `address` (OSC)");
                return None;
            }
            [one] => *one,
            [a, b, ..] => {
                let span = get(t, b).map_or(v.span(), |x| x.span());
                self.err(
                    span,
                    path,
                    format!("`{a}` and `{b}` both given: a route drives exactly one target"),
                );
                return None;
            }
        };
        let (allowed, whose) = match selector {
            "param" => (SYNTH_TARGET_KEYS, "a synth target"),
            "note" => (NOTE_KEYS, "a MIDI note target"),
            "cc" => (CC_KEYS, "a MIDI CC target"),
            "pitch_bend" => (BEND_KEYS, "a pitch-bend target"),
            "program" => (PROGRAM_KEYS, "a program-change target"),
            _ => (OSC_TARGET_KEYS, "an OSC target"),
        };
        self.keys(t, path, allowed, ALL_TARGET_KEYS, whose);
        // Target and output must fit together (monitor outputs take anything).
        let wants = match selector {
            "param" => "synth",
            "address" => "osc",
            _ => "midi",
        };
        if let (Some(kind), Some(o)) = (out, output) {
            if kind.name() != wants && !matches!(kind, OutputKind::Monitor) {
                let sel = get(t, selector).map_or(v.span(), |x| x.span());
                self.err(
                    sel,
                    path,
                    format!(
                        "`{selector}` needs a {wants} output, but output `{}` is {}",
                        outputs[o].name,
                        kind.name()
                    ),
                );
            }
        }
        let channel = |cx: &mut Self| -> Result<Option<u8>, ()> {
            match get(t, "channel") {
                Some(c) => cx
                    .integer(c, &join(path, "channel"), 1, 16, "a MIDI channel 1-16")
                    .map(|c| Some(c as u8))
                    .ok_or(()),
                None => Ok(None),
            }
        };
        match selector {
            "param" => {
                let param = self.choice(
                    get(t, "param")?,
                    &join(path, "param"),
                    "synth parameter",
                    &named(&SynthParam::NAMES, &SynthParam::ALL),
                );
                let voices = match out {
                    Some(OutputKind::Synth { voices, .. }) => *voices as i64,
                    _ => 256,
                };
                let voice = match get(t, "voice") {
                    Some(x) => self.integer(
                        x,
                        &join(path, "voice"),
                        0,
                        voices - 1,
                        &format!("a voice index 0-{}", voices - 1),
                    ),
                    None => Some(0),
                };
                let param = param?;
                let range = match get(t, "range") {
                    Some(r) => {
                        let [lo, hi] = self.pair(r, &join(path, "range"))?;
                        let [dlo, dhi] = match param {
                            SynthParam::Pitch | SynthParam::Cutoff => [1.0, 20_000.0],
                            SynthParam::Amp | SynthParam::Trigger => [0.0, 1.0],
                            SynthParam::Pan => [-1.0, 1.0],
                        };
                        if lo == hi || lo < dlo || hi < dlo || lo > dhi || hi > dhi {
                            self.err(r.span(), &join(path, "range"), format!("expected two different values within {dlo}..{dhi} for `{}`, found [{lo}, {hi}]", param.name()));
                            return None;
                        }
                        [lo, hi]
                    }
                    None => param.default_range(),
                };
                Some(Target::Synth {
                    param,
                    voice: voice? as u32,
                    range,
                })
            }
            "note" => {
                let n = get(t, "note")?;
                let note = match n.get_ref() {
                    DeValue::String(s) if s.as_ref() == "value" => self
                        .midi_range(t, path, "MIDI notes", [36, 96])
                        .map(|range| NoteSource::Value { range }),
                    DeValue::String(s) => match parse_note_name(s) {
                        Some(n) => Some(NoteSource::Fixed(n)),
                        None => {
                            self.err(n.span(), &join(path, "note"), format!("expected \"value\" (note from the level), a note number 0-127 or a note name like \"C4\", found {s:?}"));
                            None
                        }
                    },
                    _ => self
                        .integer(
                            n,
                            &join(path, "note"),
                            0,
                            127,
                            "\"value\" or a MIDI note 0-127",
                        )
                        .map(|n| NoteSource::Fixed(n as u8)),
                };
                self.range_only_with_value(t, path, "note", note);
                let velocity = match get(t, "velocity") {
                    None => Some(VelocitySource::Fixed(100)),
                    Some(x) => match x.get_ref() {
                        DeValue::String(s) if s.as_ref() == "value" => Some(VelocitySource::Value),
                        _ => self
                            .integer(
                                x,
                                &join(path, "velocity"),
                                1,
                                127,
                                "a velocity 1-127 or \"value\"",
                            )
                            .map(|v| VelocitySource::Fixed(v as u8)),
                    },
                };
                let length_ms = match get(t, "length_ms") {
                    Some(x) => self.integer(
                        x,
                        &join(path, "length_ms"),
                        1,
                        60_000,
                        "a note length 1-60000 ms",
                    ),
                    None => Some(250),
                };
                let channel = channel(self);
                Some(Target::Note {
                    note: note?,
                    velocity: velocity?,
                    length_ms: length_ms? as u32,
                    channel: channel.ok()?,
                })
            }
            "cc" => {
                let fine = match get(t, "14bit") {
                    Some(b) => self.boolean(b, &join(path, "14bit")),
                    None => Some(false),
                };
                let (hi, expected) = if fine == Some(true) {
                    (
                        31,
                        "a controller 0-31 (a 14-bit pair uses `cc` and `cc + 32`)",
                    )
                } else {
                    (127, "a controller number 0-127")
                };
                let cc = self.integer(get(t, "cc")?, &join(path, "cc"), 0, hi, expected);
                let channel = channel(self);
                Some(Target::Cc {
                    cc: cc? as u8,
                    fine: fine?,
                    channel: channel.ok()?,
                })
            }
            "pitch_bend" => {
                let b = get(t, "pitch_bend")?;
                if self.boolean(b, &join(path, "pitch_bend")) == Some(false) {
                    self.err(
                        b.span(),
                        &join(path, "pitch_bend"),
                        "expected `pitch_bend = true` (leave the key out for another target)",
                    );
                    return None;
                }
                let channel = channel(self);
                Some(Target::PitchBend {
                    channel: channel.ok()?,
                })
            }
            "program" => {
                let p = get(t, "program")?;
                let program = match p.get_ref() {
                    DeValue::String(s) if s.as_ref() == "value" => self
                        .midi_range(t, path, "programs", [0, 127])
                        .map(|range| NoteSource::Value { range }),
                    _ => self
                        .integer(
                            p,
                            &join(path, "program"),
                            0,
                            127,
                            "\"value\" or a program number 0-127",
                        )
                        .map(|n| NoteSource::Fixed(n as u8)),
                };
                self.range_only_with_value(t, path, "program", program);
                let channel = channel(self);
                Some(Target::Program {
                    program: program?,
                    channel: channel.ok()?,
                })
            }
            _ => {
                let a = get(t, "address")?;
                let address =
                    self.string(a, &join(path, "address"))
                        .and_then(|s| match parse_address(s) {
                            Ok(parts) => Some(parts),
                            Err(e) => {
                                self.err(a.span(), &join(path, "address"), e);
                                None
                            }
                        });
                let args = match get(t, "args") {
                    None => Some(vec![OscArgSpec {
                        ty: OscType::Float,
                        source: ArgSource::Value,
                    }]),
                    Some(x) => match x.get_ref() {
                        DeValue::Array(items) => {
                            let mut specs = Vec::new();
                            let mut good = true;
                            for (i, item) in items.iter().enumerate() {
                                let p = format!("{}[{i}]", join(path, "args"));
                                match self.string(item, &p).map(parse_arg) {
                                    Some(Ok(spec)) => specs.push(spec),
                                    Some(Err(e)) => {
                                        self.err(item.span(), &p, e);
                                        good = false;
                                    }
                                    None => good = false,
                                }
                            }
                            good.then_some(specs)
                        }
                        _ => {
                            self.type_err(
                                x,
                                &join(path, "args"),
                                "a list of typed arguments like [\"f:value\", \"i:step\"]",
                            );
                            None
                        }
                    },
                };
                let range = match get(t, "range") {
                    Some(r) => self.pair(r, &join(path, "range")),
                    None => Some([0.0, 1.0]),
                };
                Some(Target::Osc(OscTemplate {
                    address: address?,
                    args: args?,
                    range: range?,
                }))
            }
        }
    }
}
