//! `[controls]` (where controls come in) and `[[control]]` (what each one does).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use super::values::*;
use super::*;

const CONTROLS_KEYS: &[&str] = &[
    "osc",
    "midi",
    "midi_virtual",
    "feedback",
    "feedback_osc",
    "mappings",
];
const CONTROL_KEYS: &[&str] = &[
    "name",
    "cc",
    "lsb",
    "channel",
    "note",
    "program",
    "osc",
    "target",
    "route",
    "file",
    "range",
    "curve",
    "mode",
    "max_rate_hz",
];
const SOURCE_KEYS: &[&str] = &["cc", "note", "program", "osc"];

/// The targets by name; `mute`, `solo` and `checkpoint` get their `route` or `file` after.
#[derive(Clone, Copy)]
enum TargetName {
    Plain(fn() -> ControlTarget),
    Mute,
    Solo,
    Checkpoint,
}

const TARGETS: &[(&str, TargetName)] = &[
    ("lr", TargetName::Plain(|| ControlTarget::Lr)),
    ("lr_scale", TargetName::Plain(|| ControlTarget::LrScale)),
    ("momentum", TargetName::Plain(|| ControlTarget::Momentum)),
    (
        "weight_decay",
        TargetName::Plain(|| ControlTarget::WeightDecay),
    ),
    ("pause", TargetName::Plain(|| ControlTarget::Pause)),
    ("resume", TargetName::Plain(|| ControlTarget::Resume)),
    ("stop", TargetName::Plain(|| ControlTarget::Stop)),
    ("checkpoint", TargetName::Checkpoint),
    ("mark", TargetName::Plain(|| ControlTarget::Mark)),
    ("volume", TargetName::Plain(|| ControlTarget::Volume)),
    ("mute", TargetName::Mute),
    ("solo", TargetName::Solo),
    (
        "mapping_next",
        TargetName::Plain(|| ControlTarget::MappingNext),
    ),
    (
        "mapping_prev",
        TargetName::Plain(|| ControlTarget::MappingPrev),
    ),
];
const CURVES: &[(&str, ControlCurve)] = &[
    ("linear", ControlCurve::Linear),
    ("log", ControlCurve::Log),
    ("exp", ControlCurve::Exp),
];
const MODES: &[(&str, ControlMode)] = &[
    ("absolute", ControlMode::Absolute),
    ("relative", ControlMode::Relative),
    ("toggle", ControlMode::Toggle),
    ("momentary", ControlMode::Momentary),
];
/// `max_rate_hz` when none is given.
const DEFAULT_RATE_HZ: f64 = 50.0;
/// The OSC address that asks for every value back.
pub const RECALL_ADDRESS: &str = "/sonograd/control/recall";

impl Cx<'_> {
    /// The `[controls]` table (when present) and the `[[control]]` array (when present).
    pub(super) fn controls(
        &mut self,
        table: Option<&Val<'_>>,
        entries: Option<&Val<'_>>,
        routes: &[Route],
    ) -> Controls {
        let mut controls = Controls {
            feedback: true,
            ..Controls::default()
        };
        if let Some(v) = table {
            self.controls_table(v, &mut controls);
        }
        let Some(v) = entries else {
            return controls;
        };
        let DeValue::Array(items) = v.get_ref() else {
            self.type_err(v, "control", "an array of tables (`[[control]]`)");
            return controls;
        };
        let mut spans: Vec<(Arc<str>, ControlSource, Span)> = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let path = format!("control[{i}]");
            let Some(c) = self.control(item, &path, routes) else {
                continue;
            };
            if let Some((_, _, _)) = spans.iter().find(|(n, _, _)| *n == c.name) {
                self.err(
                    item.span(),
                    &path,
                    format!(
                        "control name `{}` is used twice (give one a `name`)",
                        c.name
                    ),
                );
            } else if c.source != ControlSource::Named
                && spans.iter().any(|(_, s, _)| same_input(s, &c.source))
            {
                self.err(
                    item.span(),
                    &path,
                    format!("another control already listens to {}", c.source),
                );
            }
            spans.push((c.name.clone(), c.source.clone(), item.span()));
            controls.list.push(c);
        }
        if controls.list.iter().any(|c| {
            matches!(
                c.target,
                ControlTarget::MappingNext | ControlTarget::MappingPrev
            )
        }) && controls.mappings.is_empty()
        {
            self.err(
                v.span(),
                "controls.mappings",
                "`mapping_next` and `mapping_prev` need `[controls] mappings = [\"a.toml\", ...]`",
            );
        }
        controls
    }

    fn controls_table(&mut self, v: &Val<'_>, controls: &mut Controls) {
        let path = "controls";
        let Some(t) = self.table(v, path) else {
            return;
        };
        self.keys(t, path, CONTROLS_KEYS, &[], "`[controls]`");
        if let Some(o) = get(t, "osc") {
            controls.osc = self.osc_in(o, &join(path, "osc"));
        }
        if let Some(o) = get(t, "feedback_osc") {
            controls.feedback_osc = self.osc_in(o, &join(path, "feedback_osc"));
        }
        match (get(t, "midi"), get(t, "midi_virtual")) {
            (Some(_), Some(virt)) => self.err(
                virt.span(),
                &join(path, "midi_virtual"),
                "give either `midi` (an existing port) or `midi_virtual` (a port to create), not both",
            ),
            (Some(p), None) => controls.midi = self.midi_port(p, &join(path, "midi")),
            (None, Some(virt)) => {
                controls.midi = match self.string(virt, &join(path, "midi_virtual")) {
                    Some("") => {
                        self.err(
                            virt.span(),
                            &join(path, "midi_virtual"),
                            "expected a port name, found an empty string",
                        );
                        None
                    }
                    Some(s) => Some(MidiPort::Virtual(s.to_string())),
                    None => None,
                }
            }
            (None, None) => {}
        }
        if let Some(b) = get(t, "feedback") {
            if let Some(b) = self.boolean(b, &join(path, "feedback")) {
                controls.feedback = b;
            }
        }
        if let Some(m) = get(t, "mappings") {
            let mpath = join(path, "mappings");
            match m.get_ref() {
                DeValue::Array(items) => {
                    for item in items {
                        let Some(name) = self.string(item, &mpath) else {
                            continue;
                        };
                        let file = self.dir.join(name);
                        if let Err(e) = std::fs::metadata(&file) {
                            self.err(
                                item.span(),
                                &mpath,
                                format!("cannot read the mapping {}: {e}", file.display()),
                            );
                        } else {
                            controls.mappings.push(file);
                        }
                    }
                }
                _ => self.type_err(m, &mpath, "a list of mapping files"),
            }
        }
    }

    /// `osc = 9123`, `osc = "0.0.0.0:9123"` or `osc = ":9123"` (127.0.0.1).
    fn osc_in(&mut self, v: &Val<'_>, path: &str) -> Option<SocketAddr> {
        let local = |port: u16| SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port);
        match v.get_ref() {
            DeValue::Integer(_) => self
                .integer(v, path, 1, 65535, "a UDP port 1-65535")
                .map(|p| local(p as u16)),
            DeValue::String(s) => {
                let parsed = match s.strip_prefix(':') {
                    Some(port) => port.parse::<u16>().ok().filter(|p| *p > 0).map(local),
                    None => s.parse::<SocketAddr>().ok(),
                };
                if parsed.is_none() {
                    self.err(
                        v.span(),
                        path,
                        format!("expected a port like 9123 or an address like \"127.0.0.1:9123\", found {s:?}"),
                    );
                }
                parsed
            }
            _ => {
                self.type_err(
                    v,
                    path,
                    "a UDP port like 9123 or an address like \"127.0.0.1:9123\"",
                );
                None
            }
        }
    }

    /// A MIDI port by the text its name contains, or by position.
    pub(super) fn midi_port(&mut self, p: &Val<'_>, path: &str) -> Option<MidiPort> {
        match p.get_ref() {
            DeValue::String(s) if !s.is_empty() => Some(MidiPort::NameContains(s.to_string())),
            DeValue::Integer(_) => self
                .integer(p, path, 0, 1023, "a port name or index")
                .map(|i| MidiPort::Index(i as u32)),
            _ => {
                self.type_err(p, path, "a port name (text it contains) or an index");
                None
            }
        }
    }

    fn control(&mut self, v: &Val<'_>, path: &str, routes: &[Route]) -> Option<ControlDef> {
        let t = self.table(v, path)?;
        self.keys(t, path, CONTROL_KEYS, &[], "a control");
        let mut ok = true;
        let source = self.control_source(t, path, &mut ok);
        let target = match get(t, "target") {
            None => {
                self.missing(
                    v.span(),
                    path,
                    "target",
                    &format!("one of {}", list(TARGET_NAMES)),
                );
                None
            }
            Some(tv) => self
                .choice(tv, &join(path, "target"), "control target", TARGETS)
                .and_then(|name| self.control_target(t, path, v, name, routes)),
        };
        let names_route = get(t, "target")
            .and_then(|v| match v.get_ref() {
                DeValue::String(s) => Some(s.as_ref() == "mute" || s.as_ref() == "solo"),
                _ => None,
            })
            .unwrap_or(false);
        if !names_route {
            if let Some(r) = get(t, "route") {
                self.err(
                    r.span(),
                    &join(path, "route"),
                    "`route` applies only to `target = \"mute\"` or `\"solo\"`",
                );
            }
        }
        let names_file = get(t, "target").is_some_and(
            |v| matches!(v.get_ref(), DeValue::String(s) if s.as_ref() == "checkpoint"),
        );
        if !names_file {
            if let Some(f) = get(t, "file") {
                self.err(
                    f.span(),
                    &join(path, "file"),
                    "`file` applies only to `target = \"checkpoint\"`",
                );
            }
        }
        let target = target?;
        let (default_range, default_curve) = target.default_range();
        let mode = match get(t, "mode") {
            Some(m) => self.choice(m, &join(path, "mode"), "mode", MODES),
            None => Some(ControlMode::Absolute),
        };
        let curve = match get(t, "curve") {
            Some(c) => self.choice(c, &join(path, "curve"), "curve", CURVES),
            None => Some(default_curve),
        };
        if target.is_trigger() {
            for key in ["range", "curve", "mode"] {
                if let Some(k) = get(t, key) {
                    self.err(
                        k.span(),
                        &join(path, key),
                        format!(
                            "`{key}` does not apply to `{}`, which fires once per press",
                            target.name()
                        ),
                    );
                    ok = false;
                }
            }
        }
        let range = match get(t, "range") {
            Some(r) => match self.pair(r, &join(path, "range"))? {
                [lo, hi] if lo < hi => Some([lo, hi]),
                [lo, hi] => {
                    self.err(
                        r.span(),
                        &join(path, "range"),
                        format!("expected the low end below the high end, found [{lo}, {hi}]"),
                    );
                    None
                }
            },
            None => Some(default_range),
        };
        if let (Some([lo, _]), Some(ControlCurve::Log)) = (range, curve) {
            if lo <= 0.0 {
                let at = get(t, "range")
                    .or(get(t, "curve"))
                    .map_or(v.span(), |x| x.span());
                self.err(
                    at,
                    &join(path, "range"),
                    format!("a `log` curve needs a positive range, found low end {lo}"),
                );
                ok = false;
            }
        }
        let max_rate_hz = match get(t, "max_rate_hz") {
            Some(r) => self.number(
                r,
                &join(path, "max_rate_hz"),
                0.001,
                10_000.0,
                "a rate in Hz, 0.001-10000",
            ),
            None => Some(DEFAULT_RATE_HZ),
        };
        let name: Option<Arc<str>> = match get(t, "name") {
            Some(n) => match self.string(n, &join(path, "name")) {
                Some(s) if is_osc_name(s) && s != "recall" => Some(Arc::from(s)),
                Some(s) => {
                    self.err(
                        n.span(),
                        &join(path, "name"),
                        format!("expected a name of letters, digits, `_`, `-` and `.` (it becomes /sonograd/control/<name>), other than `recall`, found {s:?}"),
                    );
                    None
                }
                None => None,
            },
            None => Some(Arc::from(match &target {
                ControlTarget::Mute { route } | ControlTarget::Solo { route } => {
                    let clean: String = route
                        .chars()
                        .map(|c| if is_osc_name_char(c) { c } else { '_' })
                        .collect();
                    format!("{}_{clean}", target.name())
                }
                other => other.name().to_string(),
            })),
        };
        if !ok {
            return None;
        }
        Some(ControlDef {
            name: name?,
            source: source?,
            target,
            range: range?,
            curve: curve?,
            mode: mode?,
            max_rate_hz: max_rate_hz?,
        })
    }

    fn control_source(
        &mut self,
        t: &DeTable<'_>,
        path: &str,
        ok: &mut bool,
    ) -> Option<ControlSource> {
        let given: Vec<&str> = SOURCE_KEYS
            .iter()
            .copied()
            .filter(|k| get(t, k).is_some())
            .collect();
        if given.len() > 1 {
            let second = get(t, given[1]).expect("present");
            self.err(
                second.span(),
                &join(path, given[1]),
                format!(
                    "a control has one source: give one of {}, not {}",
                    list(SOURCE_KEYS),
                    list(&given)
                ),
            );
            return None;
        }
        let midi = matches!(given.first(), Some(&("cc" | "note" | "program")));
        let channel = match get(t, "channel") {
            Some(c) if !midi => {
                self.err(
                    c.span(),
                    &join(path, "channel"),
                    "`channel` applies only to MIDI sources (`cc`, `note`, `program`)",
                );
                None
            }
            c => self.channel(c, &join(path, "channel"), ok),
        }
        .unwrap_or(1);
        if let Some(l) = get(t, "lsb") {
            if given.first() != Some(&"cc") {
                self.err(l.span(), &join(path, "lsb"), "`lsb` applies only to `cc`");
                return None;
            }
        }
        let number = |cx: &mut Self, key: &str| {
            let v = get(t, key).expect("present");
            cx.integer(v, &join(path, key), 0, 127, "a MIDI number 0-127")
                .map(|n| n as u8)
        };
        Some(match given.first() {
            None => ControlSource::Named,
            Some(&"cc") => {
                let cc = number(self, "cc")?;
                let lsb = match get(t, "lsb") {
                    Some(_) => {
                        let lsb = number(self, "lsb")?;
                        if lsb == cc {
                            let l = get(t, "lsb").expect("present");
                            self.err(
                                l.span(),
                                &join(path, "lsb"),
                                "the LSB needs a controller number of its own, not the MSB's",
                            );
                            return None;
                        }
                        Some(lsb)
                    }
                    None => None,
                };
                ControlSource::Cc { channel, cc, lsb }
            }
            Some(&"note") => ControlSource::Note {
                channel,
                note: number(self, "note")?,
            },
            Some(&"program") => {
                let v = get(t, "program").expect("present");
                match self.boolean(v, &join(path, "program"))? {
                    true => ControlSource::Program { channel },
                    false => {
                        self.err(
                            v.span(),
                            &join(path, "program"),
                            "`program = true` listens to program changes; leave it out otherwise",
                        );
                        return None;
                    }
                }
            }
            Some(_) => {
                let v = get(t, "osc").expect("present");
                let addr = self.string(v, &join(path, "osc"))?;
                if !addr.starts_with('/')
                    || addr.len() < 2
                    || addr.contains([' ', '#', '*', ',', '?', '[', ']', '{', '}'])
                {
                    self.err(
                        v.span(),
                        &join(path, "osc"),
                        format!("expected an OSC address like \"/tr/stop\", found {addr:?}"),
                    );
                    return None;
                }
                if addr == RECALL_ADDRESS {
                    self.err(
                        v.span(),
                        &join(path, "osc"),
                        format!("{RECALL_ADDRESS} is taken: it asks for every value back"),
                    );
                    return None;
                }
                ControlSource::Osc(addr.to_string())
            }
        })
    }

    fn control_target(
        &mut self,
        t: &DeTable<'_>,
        path: &str,
        v: &Val<'_>,
        name: TargetName,
        routes: &[Route],
    ) -> Option<ControlTarget> {
        match name {
            TargetName::Plain(make) => Some(make()),
            TargetName::Checkpoint => match get(t, "file") {
                None => {
                    self.missing(
                        v.span(),
                        path,
                        "file",
                        "where to save, e.g. \"checkpoints/step-{step}.safetensors\"",
                    );
                    None
                }
                Some(f) => match self.string(f, &join(path, "file"))? {
                    "" => {
                        self.err(
                            f.span(),
                            &join(path, "file"),
                            "expected a file name, found an empty string",
                        );
                        None
                    }
                    s => Some(ControlTarget::Checkpoint {
                        file: s.to_string(),
                    }),
                },
            },
            TargetName::Mute | TargetName::Solo => {
                let Some(r) = get(t, "route") else {
                    self.missing(v.span(), path, "route", "the name of the route it acts on");
                    return None;
                };
                let s = self.string(r, &join(path, "route"))?;
                let Some(route) = routes.iter().find(|x| &*x.name == s) else {
                    let names: Vec<&str> = routes.iter().map(|x| &*x.name).collect();
                    let hint = did_you_mean(s, &names);
                    self.err(
                        r.span(),
                        &join(path, "route"),
                        format!("unknown route `{s}`{hint} (routes: {})", list(&names)),
                    );
                    return None;
                };
                let route = route.name.clone();
                Some(if matches!(name, TargetName::Mute) {
                    ControlTarget::Mute { route }
                } else {
                    ControlTarget::Solo { route }
                })
            }
        }
    }
}

/// Two sources that the same incoming message would move.
fn same_input(a: &ControlSource, b: &ControlSource) -> bool {
    use ControlSource as S;
    let ccs = |s: &ControlSource| match s {
        S::Cc { channel, cc, lsb } => Some((*channel, *cc, *lsb)),
        _ => None,
    };
    match (ccs(a), ccs(b)) {
        (Some((ca, a, la)), Some((cb, b, lb))) => {
            ca == cb && (a == b || Some(a) == lb || la == Some(b) || (la.is_some() && la == lb))
        }
        _ => a == b,
    }
}

fn is_osc_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')
}

/// A control name that fits in `/sonograd/control/<name>`.
fn is_osc_name(s: &str) -> bool {
    !s.is_empty() && s.chars().all(is_osc_name_char)
}
