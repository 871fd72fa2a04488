//! Mapping file → [`Mapping`]: walks the spanned TOML tree, checks every key and value, and
//! collects every problem (with its position) instead of stopping at the first.

use std::collections::HashMap;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use toml::de::{DeTable, DeValue};
use toml::Spanned;

use super::diag::{did_you_mean, line_col, Diagnostic, Diagnostics};
use super::patches::{builtin_names, default_patch_name, voice_range, PatchRef};
use super::schema::*;
use crate::route::glob::Glob;
use crate::route::scale::{named_scale, parse_note_name, Scale, SCALE_NAMES};
use crate::synth::patch::Patch;

type Span = Range<usize>;
type Val<'i> = Spanned<DeValue<'i>>;

const TOP_KEYS: &[&str] = &["description", "outputs", "route", "diagnose"];
const DIAGNOSE_KEYS: &[&str] = &[
    "enabled",
    "history_steps",
    "exploding_factor",
    "exploding_steps",
    "vanishing_ratio",
    "vanishing_steps",
    "plateau_steps",
    "plateau_tolerance",
    "plateau_level",
    "oscillation_steps",
    "oscillation_correlation",
    "oscillation_factor",
    "dead_steps",
    "loss_spike_z",
    "loss_spike_factor",
    "stall_seconds",
    "rearm_steps",
];
const OUTPUT_KINDS: &[&str] = &["synth", "midi", "osc", "monitor"];
const SYNTH_KEYS: &[&str] = &["kind", "voices", "patch", "patches"];
const MIDI_KEYS: &[&str] = &["kind", "port", "virtual", "channel"];
const OSC_KEYS: &[&str] = &["kind", "host", "port", "protocol", "latency_ms"];
const MONITOR_KEYS: &[&str] = &["kind"];
const ROUTE_KEYS: &[&str] = &[
    "name",
    "output",
    "match",
    "transform",
    "scale",
    "to",
    "per_layer",
    "max_rate_hz",
    "coalesce",
    "send_on_change",
    "alarm",
];
const MATCH_KEYS: &[&str] = &["metric", "layer", "name", "when", "diagnosis"];
const TRANSFORM_KEYS: &[&str] = &[
    "domain",
    "learn",
    "percentiles",
    "warmup",
    "span",
    "curve",
    "curvature",
    "invert",
    "clamp",
    "smoothing",
];
const CURVES: &[&str] = &["linear", "log", "exp", "lincurve"];
const LEARN: &[&str] = &["minmax", "percentile", "warmup"];
const SCALE_KEYS: &[&str] = &[
    "root",
    "name",
    "semitones",
    "octaves",
    "bend",
    "layer_spread",
];
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
const PLACEHOLDERS: &[&str] = &["layer", "layer_index", "step", "value", "metric"];
const COALESCE: &[&str] = &["last", "max", "mean"];

/// Parses and validates mapping text; `file` names it in diagnostics and is taken as its path:
/// patch files the mapping names by a relative path are read from `file`'s folder.
pub fn parse_str(src: &str, file: &str) -> Result<Mapping, Diagnostics> {
    let mut cx = Cx {
        src,
        file,
        dir: Path::new(file)
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default(),
        patch_files: HashMap::new(),
        referenced: Vec::new(),
        diags: Vec::new(),
    };
    let doc = match DeTable::parse(src) {
        Ok(doc) => doc,
        Err(e) => {
            let at = e.span().map_or(0, |s| s.start);
            cx.err(
                at..at,
                "",
                format!("TOML syntax error: {}", e.message().trim()),
            );
            return Err(cx.finish());
        }
    };
    let mapping = cx.document(doc.get_ref(), doc.span());
    if cx.diags.is_empty() {
        Ok(mapping)
    } else {
        Err(cx.finish())
    }
}

struct Cx<'s> {
    src: &'s str,
    file: &'s str,
    /// The mapping file's folder: where relative patch paths start.
    dir: PathBuf,
    /// Patch files read so far (`None`: invalid, already reported).
    patch_files: HashMap<PathBuf, Option<Patch>>,
    /// The patch files named by the synth output being read, in file order.
    referenced: Vec<PathBuf>,
    diags: Vec<(usize, Diagnostic)>,
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

fn get<'a, 'i>(t: &'a DeTable<'i>, key: &str) -> Option<&'a Val<'i>> {
    t.iter()
        .find(|(k, _)| k.get_ref().as_ref() == key)
        .map(|(_, v)| v)
}

fn describe(v: &DeValue<'_>) -> String {
    match v {
        DeValue::String(s) => format!("the string {s:?}"),
        DeValue::Integer(i) => format!("the integer {}", i.as_str()),
        DeValue::Float(f) => format!("the number {}", f.as_str()),
        DeValue::Boolean(b) => format!("{b}"),
        other => format!("a {}", other.type_str()),
    }
}

fn list(names: &[&str]) -> String {
    names
        .iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

impl<'s> Cx<'s> {
    fn err(&mut self, span: Span, path: &str, message: impl Into<String>) {
        let (line, column) = line_col(self.src, span.start);
        self.diags.push((
            span.start,
            Diagnostic {
                file: self.file.to_string(),
                line,
                column,
                path: path.to_string(),
                message: message.into(),
            },
        ));
    }

    fn finish(mut self) -> Diagnostics {
        self.diags.sort_by_key(|(at, _)| *at);
        Diagnostics(self.diags.into_iter().map(|(_, d)| d).collect())
    }

    /// Reports keys not in `allowed`; `known` are keys valid elsewhere in this kind of table
    /// (used for the suggestion and a better message).
    fn keys(&mut self, t: &DeTable<'_>, path: &str, allowed: &[&str], known: &[&str], whose: &str) {
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

    fn type_err(&mut self, v: &Val<'_>, path: &str, expected: &str) {
        let msg = format!("expected {expected}, found {}", describe(v.get_ref()));
        self.err(v.span(), path, msg);
    }

    fn table<'a, 'i>(&mut self, v: &'a Val<'i>, path: &str) -> Option<&'a DeTable<'i>> {
        match v.get_ref() {
            DeValue::Table(t) => Some(t),
            _ => {
                self.type_err(v, path, "a table");
                None
            }
        }
    }

    fn string<'a>(&mut self, v: &'a Val<'_>, path: &str) -> Option<&'a str> {
        match v.get_ref() {
            DeValue::String(s) => Some(s.as_ref()),
            _ => {
                self.type_err(v, path, "a string");
                None
            }
        }
    }

    fn boolean(&mut self, v: &Val<'_>, path: &str) -> Option<bool> {
        match v.get_ref() {
            DeValue::Boolean(b) => Some(*b),
            _ => {
                self.type_err(v, path, "true or false");
                None
            }
        }
    }

    fn number_of(v: &DeValue<'_>) -> Option<f64> {
        match v {
            DeValue::Integer(i) => i64::from_str_radix(i.as_str(), i.radix())
                .ok()
                .map(|n| n as f64),
            DeValue::Float(f) => f.as_str().parse::<f64>().ok(),
            _ => None,
        }
    }

    /// A finite number in `lo..=hi`.
    fn number(&mut self, v: &Val<'_>, path: &str, lo: f64, hi: f64, expected: &str) -> Option<f64> {
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
    fn integer(
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

    /// A string from `names`, as its index.
    fn choice(&mut self, v: &Val<'_>, path: &str, what: &str, names: &[&str]) -> Option<usize> {
        let s = self.string(v, path)?;
        if let Some(i) = names.iter().position(|n| *n == s) {
            return Some(i);
        }
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
    fn midi_range(
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
    fn range_only_with_value(
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

    fn pair(&mut self, v: &Val<'_>, path: &str) -> Option<[f64; 2]> {
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

    fn missing(&mut self, span: Span, path: &str, key: &str, what: &str) {
        self.err(span, path, format!("missing key `{key}` ({what})"));
    }

    // ---------------------------------------------------------------- document

    fn document(&mut self, doc: &DeTable<'_>, span: Span) -> Mapping {
        self.keys(doc, "", TOP_KEYS, &[], "the top level");
        let description = get(doc, "description")
            .and_then(|v| self.string(v, "description"))
            .unwrap_or("");
        let mut outputs = Vec::new();
        let mut declared: Vec<&str> = Vec::new();
        match get(doc, "outputs") {
            None => self.missing(
                span.start..span.start,
                "",
                "outputs",
                "at least one `[outputs.NAME]` table",
            ),
            Some(v) => {
                if let Some(t) = self.table(v, "outputs") {
                    if t.is_empty() {
                        self.err(
                            v.span(),
                            "outputs",
                            "expected at least one `[outputs.NAME]` table",
                        );
                    }
                    for (k, v) in t.iter() {
                        let name = k.get_ref().as_ref();
                        let path = format!("outputs.{name}");
                        declared.push(name);
                        if let Some(kind) = self.output(v, &path) {
                            outputs.push(Output {
                                name: Arc::from(name),
                                kind,
                            });
                        }
                    }
                }
            }
        }
        outputs.sort_by(|a, b| a.name.cmp(&b.name));
        let mut routes = Vec::new();
        match get(doc, "route") {
            None => self.missing(
                span.start..span.start,
                "",
                "route",
                "at least one `[[route]]` table",
            ),
            Some(v) => match v.get_ref() {
                DeValue::Array(items) => {
                    if items.is_empty() {
                        self.err(v.span(), "route", "expected at least one `[[route]]`");
                    }
                    for (i, item) in items.iter().enumerate() {
                        let path = format!("route[{i}]");
                        if let Some(r) = self.route(item, &path, i, &outputs, &declared) {
                            routes.push((r, item.span()));
                        }
                    }
                }
                _ => self.type_err(v, "route", "an array of tables (`[[route]]`)"),
            },
        }
        for i in 0..routes.len() {
            if let Some(j) = (0..i).find(|&j| routes[j].0.name == routes[i].0.name) {
                let msg = format!(
                    "route name `{}` is already used by route[{j}]",
                    routes[i].0.name
                );
                let span = routes[i].1.clone();
                self.err(span, "route", msg);
            }
        }
        let diagnose = match get(doc, "diagnose") {
            Some(v) => self.diagnose(v, "diagnose"),
            None => Thresholds::default(),
        };
        Mapping {
            description: description.to_string(),
            outputs,
            routes: routes.into_iter().map(|r| r.0).collect(),
            diagnose,
        }
    }

    // ---------------------------------------------------------------- diagnose

    /// The `[diagnose]` table: the detector's thresholds over their defaults.
    fn diagnose(&mut self, v: &Val<'_>, path: &str) -> Thresholds {
        let mut cfg = Thresholds::default();
        let Some(t) = self.table(v, path) else {
            return cfg;
        };
        self.keys(t, path, DIAGNOSE_KEYS, &[], "`[diagnose]`");
        if let Some(b) = get(t, "enabled").and_then(|b| self.boolean(b, &join(path, "enabled"))) {
            cfg.enabled = b;
        }
        let max = crate::diagnose::MAX_WINDOW as i64;
        let steps: [(&str, i64, &mut u32); 7] = [
            ("history_steps", 1, &mut cfg.history_steps),
            ("exploding_steps", 1, &mut cfg.exploding_steps),
            ("vanishing_steps", 1, &mut cfg.vanishing_steps),
            ("plateau_steps", 3, &mut cfg.plateau_steps),
            ("oscillation_steps", 4, &mut cfg.oscillation_steps),
            ("dead_steps", 1, &mut cfg.dead_steps),
            ("rearm_steps", 1, &mut cfg.rearm_steps),
        ];
        for (key, lo, field) in steps {
            if let Some(n) = get(t, key).and_then(|n| {
                self.integer(
                    n,
                    &join(path, key),
                    lo,
                    max,
                    &format!("a number of steps {lo}-{max}"),
                )
            }) {
                *field = n as u32;
            }
        }
        let numbers: [(&str, f64, f64, &str, &mut f64); 9] = [
            (
                "exploding_factor",
                1.0,
                1e12,
                "a growth factor of at least 1, e.g. 10",
                &mut cfg.exploding_factor,
            ),
            (
                "vanishing_ratio",
                f64::MIN_POSITIVE,
                1.0,
                "a ratio above 0 and at most 1, e.g. 0.01",
                &mut cfg.vanishing_ratio,
            ),
            (
                "plateau_tolerance",
                0.0,
                1.0,
                "a fraction 0-1, e.g. 0.01",
                &mut cfg.plateau_tolerance,
            ),
            (
                "plateau_level",
                0.0,
                1e6,
                "a fraction of the starting loss, e.g. 0.5",
                &mut cfg.plateau_level,
            ),
            (
                "oscillation_correlation",
                0.0,
                1.0,
                "a correlation 0-1, e.g. 0.6",
                &mut cfg.oscillation_correlation,
            ),
            (
                "loss_spike_z",
                0.0,
                1e6,
                "a number of robust standard deviations, e.g. 6",
                &mut cfg.loss_spike_z,
            ),
            (
                "loss_spike_factor",
                1.0,
                1e12,
                "a factor of at least 1, e.g. 2",
                &mut cfg.loss_spike_factor,
            ),
            (
                "stall_seconds",
                0.001,
                86_400.0,
                "seconds 0.001-86400, e.g. 10",
                &mut cfg.stall_seconds,
            ),
            (
                "oscillation_factor",
                1.0,
                1e6,
                "a change factor of at least 1, e.g. 2",
                &mut cfg.oscillation_factor,
            ),
        ];
        for (key, lo, hi, expected, field) in numbers {
            if let Some(n) =
                get(t, key).and_then(|n| self.number(n, &join(path, key), lo, hi, expected))
            {
                *field = n;
            }
        }
        cfg
    }

    // ---------------------------------------------------------------- outputs

    fn output(&mut self, v: &Val<'_>, path: &str) -> Option<OutputKind> {
        let t = self.table(v, path)?;
        let all: Vec<&str> = [SYNTH_KEYS, MIDI_KEYS, OSC_KEYS]
            .concat()
            .into_iter()
            .filter(|k| *k != "kind")
            .collect();
        let Some(kind_v) = get(t, "kind") else {
            self.keys(
                t,
                path,
                &[&["kind"], all.as_slice()].concat(),
                &[],
                "an output",
            );
            self.missing(
                v.span(),
                path,
                "kind",
                "one of `synth`, `midi`, `osc`, `monitor`",
            );
            return None;
        };
        let kind = self.choice(kind_v, &join(path, "kind"), "output kind", OUTPUT_KINDS);
        let Some(kind) = kind else {
            self.keys(
                t,
                path,
                &[&["kind"], all.as_slice()].concat(),
                &[],
                "an output",
            );
            return None;
        };
        let allowed = [SYNTH_KEYS, MIDI_KEYS, OSC_KEYS, MONITOR_KEYS][kind];
        let whose = format!("a {} output", OUTPUT_KINDS[kind]);
        self.keys(t, path, allowed, &all, &whose);
        let mut ok = true;
        let out = match kind {
            0 => {
                let voices = match get(t, "voices") {
                    Some(v) => {
                        self.integer(v, &join(path, "voices"), 1, 256, "a voice count 1-256")
                    }
                    None => Some(16),
                };
                let voices = voices.map(|v| v as u32);
                let patches = self.voice_patches(t, path, voices);
                OutputKind::Synth {
                    voices: voices.unwrap_or(16),
                    patches,
                    patch_files: std::mem::take(&mut self.referenced),
                }
            }
            1 => {
                let channel = self
                    .channel(get(t, "channel"), &join(path, "channel"), &mut ok)
                    .unwrap_or(1);
                let port = match (get(t, "port"), get(t, "virtual")) {
                    (Some(p), Some(virt)) => {
                        let _ = p;
                        self.err(
                            virt.span(),
                            &join(path, "virtual"),
                            "give either `port` (an existing port) or `virtual` (a port to create), not both",
                        );
                        None
                    }
                    (Some(p), None) => match p.get_ref() {
                        DeValue::String(s) if !s.is_empty() => {
                            Some(MidiPort::NameContains(s.to_string()))
                        }
                        DeValue::Integer(_) => self
                            .integer(p, &join(path, "port"), 0, 1023, "a port name or index")
                            .map(|i| MidiPort::Index(i as u32)),
                        _ => {
                            self.type_err(
                                p,
                                &join(path, "port"),
                                "a port name (text it contains) or an index",
                            );
                            None
                        }
                    },
                    (None, Some(virt)) => self
                        .string(virt, &join(path, "virtual"))
                        .map(|s| MidiPort::Virtual(s.to_string())),
                    (None, None) => Some(MidiPort::Index(0)),
                };
                OutputKind::Midi {
                    port: port.unwrap_or(MidiPort::Index(0)),
                    channel,
                }
            }
            2 => {
                let host = match get(t, "host") {
                    Some(h) => match self.string(h, &join(path, "host")) {
                        Some("") => {
                            self.err(
                                h.span(),
                                &join(path, "host"),
                                "expected a host name or address, found an empty string",
                            );
                            None
                        }
                        other => other,
                    },
                    None => Some("127.0.0.1"),
                };
                let port = match get(t, "port") {
                    Some(p) => {
                        self.integer(p, &join(path, "port"), 1, 65535, "a port number 1-65535")
                    }
                    None => {
                        self.missing(v.span(), path, "port", "the OSC port number, e.g. 57120");
                        None
                    }
                };
                let protocol = match get(t, "protocol") {
                    Some(p) => self.choice(p, &join(path, "protocol"), "protocol", &["udp", "tcp"]),
                    None => Some(0),
                };
                let latency_ms = match get(t, "latency_ms") {
                    Some(l) => self.integer(
                        l,
                        &join(path, "latency_ms"),
                        0,
                        10_000,
                        "a latency 0-10000 ms",
                    ),
                    None => Some(0),
                };
                OutputKind::Osc {
                    host: host.unwrap_or("127.0.0.1").to_string(),
                    port: port.unwrap_or(1) as u16,
                    protocol: if protocol == Some(1) {
                        OscProtocol::Tcp
                    } else {
                        OscProtocol::Udp
                    },
                    latency_ms: latency_ms.unwrap_or(0) as u32,
                }
            }
            _ => OutputKind::Monitor,
        };
        Some(out)
    }

    /// The patch of every voice of a synth output from its `patch` and `patches` keys (see
    /// [`super::patches`]); `voices` is `None` when the count itself was invalid (then voice
    /// indices are not checked against it). The patch files it names are left in `referenced`.
    fn voice_patches(&mut self, t: &DeTable<'_>, path: &str, voices: Option<u32>) -> Vec<Patch> {
        self.referenced.clear();
        let count = voices.unwrap_or(16);
        let which = |(a, b): (u32, u32)| {
            if a == b {
                format!("voice {a}")
            } else {
                format!("voices {a}-{b}")
            }
        };
        let fallback = get(t, "patch").and_then(|v| self.patch(v, &join(path, "patch")));
        let mut chosen: Vec<Option<Patch>> = vec![None; count as usize];
        if let Some(pv) = get(t, "patches") {
            let ppath = join(path, "patches");
            if let Some(pt) = self.table(pv, &ppath) {
                // Entries so far: (first, last, key, line).
                let mut taken: Vec<(u32, u32, String, usize)> = Vec::new();
                // In file order (the table itself is sorted by key), so that the later of two
                // overlapping entries is the one reported.
                let mut entries: Vec<_> = pt.iter().collect();
                entries.sort_by_key(|(k, _)| k.span().start);
                for (k, v) in entries {
                    let key = k.get_ref().as_ref();
                    let kpath = join(&ppath, key);
                    let mut range = match voice_range(key) {
                        Ok(r) => Some(r),
                        Err(msg) => {
                            self.err(k.span(), &kpath, msg);
                            None
                        }
                    };
                    if let (Some((a, b)), Some(n)) = (range, voices) {
                        if b >= n {
                            let which = which((a, b));
                            self.err(
                                k.span(),
                                &kpath,
                                format!(
                                    "{which} out of range: this output has {n} voices (0-{})",
                                    n - 1
                                ),
                            );
                            range = None;
                        }
                    }
                    if let Some((a, b)) = range {
                        if let Some((x, y, other, line)) =
                            taken.iter().find(|(x, y, _, _)| a <= *y && *x <= b)
                        {
                            let msg = format!(
                                "{} overlap{} the entry {other:?} (line {line}): {} would have two patches",
                                which((a, b)),
                                if a == b { "s" } else { "" },
                                which((a.max(*x), b.min(*y)))
                            );
                            self.err(k.span(), &kpath, msg);
                            range = None;
                        } else {
                            let line = line_col(self.src, k.span().start).0;
                            taken.push((a, b, key.to_string(), line));
                        }
                    }
                    let patch = self.patch(v, &kpath);
                    // (With an invalid `voices`, already reported, indices are unchecked.)
                    if let (Some((a, b)), Some(p)) = (range, patch) {
                        let last = (b as usize).min(chosen.len() - 1);
                        for slot in chosen.iter_mut().take(last + 1).skip(a as usize) {
                            *slot = Some(p.clone());
                        }
                    }
                }
            }
        }
        chosen
            .into_iter()
            .enumerate()
            .map(|(v, p)| {
                p.or_else(|| fallback.clone()).unwrap_or_else(|| {
                    Patch::builtin(default_patch_name(v as u32)).expect("shipped patch")
                })
            })
            .collect()
    }

    /// A patch value: a built-in name or a patch file (read and validated; its problems are
    /// reported here, each naming the patch file's own line).
    fn patch(&mut self, v: &Val<'_>, path: &str) -> Option<Patch> {
        let names = builtin_names();
        let expected = format!(
            "a patch: a built-in name ({}) or a path to a patch file ending in `.toml`",
            list(&names)
        );
        let DeValue::String(s) = v.get_ref() else {
            self.type_err(v, path, &expected);
            return None;
        };
        match PatchRef::classify(s) {
            PatchRef::Builtin(name) => {
                let found = Patch::builtin(name);
                if found.is_none() {
                    let hint = did_you_mean(name, &names);
                    let msg = if name.is_empty() {
                        format!("expected {expected}, found an empty string")
                    } else {
                        format!(
                            "unknown patch `{name}`{hint} (built-in patches: {}; a patch file is a path ending in `.toml`)",
                            list(&names)
                        )
                    };
                    self.err(v.span(), path, msg);
                }
                found
            }
            PatchRef::File(rel) => {
                let full = self.dir.join(rel);
                if !self.referenced.contains(&full) {
                    self.referenced.push(full.clone());
                }
                if let Some(known) = self.patch_files.get(&full) {
                    let known = known.clone();
                    if known.is_none() {
                        self.err(
                            v.span(),
                            path,
                            format!(
                                "patch file `{}` is invalid (reported above)",
                                full.display()
                            ),
                        );
                    }
                    return known;
                }
                let shown = full.display().to_string();
                let loaded = match std::fs::read_to_string(&full) {
                    Err(e) => {
                        let msg = if e.kind() == std::io::ErrorKind::NotFound {
                            format!(
                                "patch file `{shown}` not found (a relative path starts at the mapping file's folder; built-in patches: {})",
                                list(&names)
                            )
                        } else {
                            format!("cannot read the patch file `{shown}`: {e}")
                        };
                        self.err(v.span(), path, msg);
                        None
                    }
                    Ok(text) => match Patch::parse(&text, &shown) {
                        Ok(p) => Some(p),
                        Err(diags) => {
                            for d in diags.iter() {
                                self.err(v.span(), path, format!("in patch file {d}"));
                            }
                            None
                        }
                    },
                };
                self.patch_files.insert(full, loaded.clone());
                loaded
            }
        }
    }

    fn channel(&mut self, v: Option<&Val<'_>>, path: &str, ok: &mut bool) -> Option<u8> {
        let v = v?;
        let c = self.integer(v, path, 1, 16, "a MIDI channel 1-16");
        if c.is_none() {
            *ok = false;
        }
        c.map(|c| c as u8)
    }

    // ---------------------------------------------------------------- routes

    fn route(
        &mut self,
        v: &Val<'_>,
        path: &str,
        index: usize,
        outputs: &[Output],
        declared: &[&str],
    ) -> Option<Route> {
        let t = self.table(v, path)?;
        self.keys(t, path, ROUTE_KEYS, &[], "a route");
        let name: Arc<str> = match get(t, "name") {
            Some(n) => match self.string(n, &join(path, "name")) {
                Some("") => {
                    self.err(
                        n.span(),
                        &join(path, "name"),
                        "expected a name, found an empty string",
                    );
                    None
                }
                Some(s) => Some(Arc::from(s)),
                None => None,
            },
            None => None,
        }
        .unwrap_or_else(|| Arc::from(format!("route {index}")));
        let output = match get(t, "output") {
            None => {
                self.missing(
                    v.span(),
                    path,
                    "output",
                    "the name of an `[outputs.NAME]` table",
                );
                None
            }
            Some(o) => {
                let names: Vec<&str> = outputs.iter().map(|o| &*o.name).collect();
                match self.string(o, &join(path, "output")) {
                    Some(s) => match names.iter().position(|n| *n == s) {
                        Some(i) => Some(i),
                        // Declared but broken: already reported there.
                        None if declared.contains(&s) => None,
                        None => {
                            let hint = did_you_mean(s, &names);
                            let defined = if names.is_empty() {
                                "none".to_string()
                            } else {
                                list(&names)
                            };
                            self.err(
                                o.span(),
                                &join(path, "output"),
                                format!("unknown output `{s}`{hint} (defined: {defined})"),
                            );
                            None
                        }
                    },
                    None => None,
                }
            }
        };
        let matcher = match get(t, "match") {
            None => {
                self.missing(
                    v.span(),
                    path,
                    "match",
                    "a table like `{ metric = \"grad_norm\" }`",
                );
                None
            }
            Some(m) => self.matcher(m, &join(path, "match")),
        };
        let transform = match get(t, "transform") {
            None => Some(Transform::default()),
            Some(tr) => self.transform(tr, &join(path, "transform")),
        };
        let scale = match get(t, "scale") {
            None => Some(None),
            Some(s) => self.scale(s, &join(path, "scale")).map(Some),
        };
        let out_kind = output.map(|i| &outputs[i].kind);
        let target = match get(t, "to") {
            None => {
                self.missing(
                    v.span(),
                    path,
                    "to",
                    "the target, e.g. `{ param = \"pitch\" }`",
                );
                None
            }
            Some(to) => self.target(to, &join(path, "to"), out_kind, outputs, output),
        };
        let flag = |cx: &mut Self, key: &str| {
            get(t, key)
                .and_then(|b| cx.boolean(b, &join(path, key)))
                .unwrap_or(false)
        };
        let per_layer = flag(self, "per_layer");
        let send_on_change = flag(self, "send_on_change");
        let alarm = flag(self, "alarm");
        let max_hz = get(t, "max_rate_hz").and_then(|r| {
            self.number(
                r,
                &join(path, "max_rate_hz"),
                1e-3,
                10_000.0,
                "a rate in Hz, 0.001-10000",
            )
        });
        let coalesce = match get(t, "coalesce") {
            Some(c) => {
                if get(t, "max_rate_hz").is_none() {
                    self.err(
                        c.span(),
                        &join(path, "coalesce"),
                        "`coalesce` needs `max_rate_hz` (it merges values that come faster than that)",
                    );
                }
                self.choice(c, &join(path, "coalesce"), "coalesce mode", COALESCE)
            }
            None => Some(0),
        };
        // Cross-checks that need several parts.
        if let (Some(Some(scale_v)), Some(target)) = (get(t, "scale").map(Some), &target) {
            let applies = match target {
                Target::Synth { param, .. } => *param == SynthParam::Pitch,
                Target::Note { note, .. } => matches!(note, NoteSource::Value { .. }),
                Target::Osc(_) => true,
                _ => false,
            };
            if !applies {
                self.err(scale_v.span(), &join(path, "scale"), format!("a scale applies only to `param = \"pitch\"`, `note = \"value\"` and OSC targets, not to a {}", target.kind_name()));
            }
            if let Some(t) = scale_v.get_ref().as_table() {
                if let (Some(b), Target::Note { .. }) = (t.get("bend"), target) {
                    self.err(b.span(), &join(path, "scale.bend"), "`bend` needs a target that takes fractional notes (`param = \"pitch\"` or OSC); a MIDI note is a whole note");
                }
                if let (Some(x), false) = (t.get("layer_spread"), per_layer) {
                    self.err(x.span(), &join(path, "scale.layer_spread"), "`layer_spread` gives each layer its own register: it needs `per_layer = true`");
                }
            }
        }
        Some(Route {
            name,
            output: output? as OutputId,
            matcher: matcher?,
            transform: transform?,
            scale: scale?,
            target: target?,
            per_layer,
            rate: max_hz.map(|max_hz| RateLimit {
                max_hz,
                coalesce: [Coalesce::Last, Coalesce::Max, Coalesce::Mean][coalesce.unwrap_or(0)],
            }),
            send_on_change,
            alarm,
        })
    }

    fn matcher(&mut self, v: &Val<'_>, path: &str) -> Option<Match> {
        let t = self.table(v, path)?;
        self.keys(t, path, MATCH_KEYS, &[], "`match`");
        let metric = match get(t, "metric") {
            None => {
                self.missing(
                    v.span(),
                    path,
                    "metric",
                    &format!("one of {}", list(&Metric::NAMES)),
                );
                None
            }
            Some(m) => {
                let s = self.string(m, &join(path, "metric"))?;
                match Metric::parse(s) {
                    Some(metric) => Some(metric),
                    None => {
                        self.choice(m, &join(path, "metric"), "metric", &Metric::NAMES);
                        None
                    }
                }
            }
        };
        let layer = get(t, "layer")
            .and_then(|l| self.string(l, &join(path, "layer")))
            .map(Glob::new);
        let name = match get(t, "name") {
            Some(n) => {
                if metric.is_some_and(|m| m != Metric::Eval) {
                    self.err(
                        n.span(),
                        &join(path, "name"),
                        "`name` matches eval metric names; it applies only to `metric = \"eval\"`",
                    );
                }
                self.string(n, &join(path, "name")).map(Glob::new)
            }
            None => None,
        };
        let diagnosis = match get(t, "diagnosis") {
            Some(d) => {
                if metric.is_some_and(|m| m != Metric::Diagnosis) {
                    self.err(
                        d.span(),
                        &join(path, "diagnosis"),
                        "`diagnosis` picks a diagnosis kind; it applies only to `metric = \"diagnosis\"`",
                    );
                }
                self.choice(
                    d,
                    &join(path, "diagnosis"),
                    "diagnosis",
                    &DiagnosisKind::NAMES,
                )
                .map(|i| Some(DiagnosisKind::ALL[i]))
            }
            None => Some(None),
        };
        if let (Some(l), Some(m)) = (get(t, "layer"), metric) {
            if matches!(
                m,
                Metric::TotalNorm | Metric::Loss | Metric::Lr | Metric::EpochEnd | Metric::Eval
            ) {
                self.err(
                    l.span(),
                    &join(path, "layer"),
                    format!(
                        "`{}` events have no layer, so `layer` would never match",
                        m.name()
                    ),
                );
            }
        }
        let when = match get(t, "when") {
            Some(w) => {
                let s = self.string(w, &join(path, "when"))?;
                match parse_condition(s) {
                    Ok(c) => Some(c),
                    Err(e) => {
                        self.err(w.span(), &join(path, "when"), e);
                        return None;
                    }
                }
            }
            None => None,
        };
        if let (Some(w), Some(m)) = (get(t, "when"), metric) {
            if matches!(m, Metric::NonFinite | Metric::Diagnosis) {
                self.err(
                    w.span(),
                    &join(path, "when"),
                    format!("`{}` events have no value to compare", m.name()),
                );
            }
        }
        Some(Match {
            metric: metric?,
            layer,
            name,
            when,
            diagnosis: diagnosis?,
        })
    }

    fn transform(&mut self, v: &Val<'_>, path: &str) -> Option<Transform> {
        let t = self.table(v, path)?;
        self.keys(t, path, TRANSFORM_KEYS, &[], "`transform`");
        let mut ok = true;
        let mut fail = |_: ()| ok = false;
        let curve_name = match get(t, "curve") {
            Some(c) => self
                .choice(c, &join(path, "curve"), "curve", CURVES)
                .or_else(|| {
                    fail(());
                    None
                }),
            None => Some(0),
        };
        let curvature = match get(t, "curvature") {
            Some(c) => {
                if matches!(curve_name, Some(0) | Some(1)) {
                    self.err(
                        c.span(),
                        &join(path, "curvature"),
                        "`curvature` applies only to `curve = \"exp\"` or `\"lincurve\"`",
                    );
                    ok = false;
                }
                let n = self.number(
                    c,
                    &join(path, "curvature"),
                    -50.0,
                    50.0,
                    "a curvature between -50 and 50",
                );
                if n.is_none() {
                    ok = false;
                }
                n
            }
            None => {
                if curve_name == Some(3) {
                    self.missing(
                        v.span(),
                        path,
                        "curvature",
                        "`lincurve` needs a curvature, e.g. -4 or 4",
                    );
                    ok = false;
                }
                None
            }
        };
        let curve = match curve_name.unwrap_or(0) {
            0 => Curve::Linear,
            1 => Curve::Log,
            2 => Curve::Exp(curvature.unwrap_or(4.0)),
            _ => Curve::LinCurve(curvature.unwrap_or(0.0)),
        };
        let learned_keys = ["learn", "percentiles", "warmup", "span"];
        let domain = match get(t, "domain") {
            None => Some(Domain::Fixed { lo: 0.0, hi: 1.0 }),
            Some(d) => match d.get_ref() {
                DeValue::String(s) if s.as_ref() == "learned" => {
                    let learn = match get(t, "learn") {
                        Some(l) => self.choice(l, &join(path, "learn"), "learn mode", LEARN),
                        None => Some(0),
                    };
                    let warmup = match get(t, "warmup") {
                        Some(w) => self.integer(
                            w,
                            &join(path, "warmup"),
                            1,
                            100_000,
                            "a number of events 1-100000",
                        ),
                        None => Some(20),
                    };
                    let percentiles = match get(t, "percentiles") {
                        Some(p) => {
                            if learn != Some(1) {
                                self.err(
                                    p.span(),
                                    &join(path, "percentiles"),
                                    "`percentiles` applies only to `learn = \"percentile\"`",
                                );
                            }
                            match self.pair(p, &join(path, "percentiles")) {
                                Some([a, b])
                                    if (0.0..=100.0).contains(&a)
                                        && (0.0..=100.0).contains(&b)
                                        && a < b =>
                                {
                                    Some([a, b])
                                }
                                Some(_) => {
                                    self.err(
                                        p.span(),
                                        &join(path, "percentiles"),
                                        "expected two percentiles 0-100, the first below the second",
                                    );
                                    None
                                }
                                None => None,
                            }
                        }
                        None => Some([5.0, 95.0]),
                    };
                    let span = match get(t, "span") {
                        Some(x) => {
                            if learn != Some(2) {
                                self.err(
                                    x.span(),
                                    &join(path, "span"),
                                    "`span` applies only to `learn = \"warmup\"`",
                                );
                            }
                            self.number(
                                x,
                                &join(path, "span"),
                                1.0001,
                                1e12,
                                "a ratio above 1 (the domain's top over its bottom, e.g. 100: two decades)",
                            )
                        }
                        None => Some(100.0),
                    };
                    match (learn, warmup, percentiles) {
                        (Some(0), Some(w), _) => Some(Domain::Learned {
                            learn: Learn::MinMax,
                            warmup: w as u32,
                        }),
                        (Some(2), Some(w), _) => span.map(|span| Domain::Learned {
                            learn: Learn::Warmup { span },
                            warmup: w as u32,
                        }),
                        (Some(_), Some(w), Some([lo, hi])) => Some(Domain::Learned {
                            learn: Learn::Percentile { lo, hi },
                            warmup: w as u32,
                        }),
                        _ => None,
                    }
                }
                DeValue::String(s) => {
                    let hint = did_you_mean(s, &["learned"]);
                    self.err(
                        d.span(),
                        &join(path, "domain"),
                        format!("expected `[lo, hi]` or \"learned\", found the string {s:?}{hint}"),
                    );
                    None
                }
                _ => {
                    match self.pair(d, &join(path, "domain")) {
                        Some([lo, hi]) if lo < hi => {
                            if curve_name == Some(1) && lo <= 0.0 {
                                self.err(
                                d.span(),
                                &join(path, "domain"),
                                format!("a `log` curve needs a positive domain, found lower bound {lo}"),
                            );
                                None
                            } else {
                                Some(Domain::Fixed { lo, hi })
                            }
                        }
                        Some([lo, hi]) => {
                            self.err(d.span(), &join(path, "domain"), format!("expected `[lo, hi]` with lo below hi, found [{lo}, {hi}] (use `invert = true` to turn it around)"));
                            None
                        }
                        None => None,
                    }
                }
            },
        };
        if !matches!(domain, Some(Domain::Learned { .. }))
            && get(t, "domain").is_none_or(|d| !d.get_ref().is_str())
        {
            for k in learned_keys {
                if let Some(x) = get(t, k) {
                    self.err(
                        x.span(),
                        &join(path, k),
                        format!("`{k}` applies only to `domain = \"learned\"`"),
                    );
                    ok = false;
                }
            }
        }
        let invert = get(t, "invert").and_then(|b| self.boolean(b, &join(path, "invert")));
        let clamp = get(t, "clamp").map_or(Some(true), |b| self.boolean(b, &join(path, "clamp")));
        let smoothing = match get(t, "smoothing") {
            Some(s) => self.number(
                s,
                &join(path, "smoothing"),
                0.0,
                0.999,
                "a smoothing coefficient from 0 (none) below 1",
            ),
            None => Some(0.0),
        };
        if !ok {
            return None;
        }
        Some(Transform {
            domain: domain?,
            curve,
            invert: invert.unwrap_or(false),
            clamp: clamp?,
            smoothing: smoothing?,
        })
    }

    fn scale(&mut self, v: &Val<'_>, path: &str) -> Option<Scale> {
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
                .choice(n, &join(path, "name"), "scale", &SCALE_NAMES)
                .and_then(|i| named_scale(SCALE_NAMES[i]))
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

    fn target(
        &mut self,
        v: &Val<'_>,
        path: &str,
        out: Option<&OutputKind>,
        outputs: &[Output],
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
                    &SynthParam::NAMES,
                );
                let param = param.map(|i| {
                    [
                        SynthParam::Pitch,
                        SynthParam::Amp,
                        SynthParam::Cutoff,
                        SynthParam::Pan,
                        SynthParam::Trigger,
                    ][i]
                });
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

/// Parses a `when` condition: `value OP number` with OP one of `>`, `>=`, `<`, `<=`, `==`, `!=`.
pub fn parse_condition(s: &str) -> Result<Condition, String> {
    let expected = "expected a condition like \"value > 10\" (operators > >= < <= == !=)";
    let rest = s.trim();
    let Some(rest) = rest.strip_prefix("value") else {
        let word: String = rest
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        let hint = did_you_mean(&word, &["value"]);
        return Err(format!("{expected}, found {s:?}{hint}"));
    };
    let rest = rest.trim_start();
    let ops = [
        (">=", CmpOp::Ge),
        ("<=", CmpOp::Le),
        ("==", CmpOp::Eq),
        ("!=", CmpOp::Ne),
        (">", CmpOp::Gt),
        ("<", CmpOp::Lt),
    ];
    let Some((op, rhs)) = ops
        .iter()
        .find_map(|(t, op)| rest.strip_prefix(t).map(|r| (*op, r)))
    else {
        return Err(format!("{expected}, found {s:?}"));
    };
    match rhs.trim().parse::<f64>() {
        Ok(rhs) if rhs.is_finite() => Ok(Condition { op, rhs }),
        _ => Err(format!(
            "{expected}: `{}` is not a finite number",
            rhs.trim()
        )),
    }
}

/// Parses an OSC address template with `{layer}`, `{layer_index}`, `{step}`, `{value}` and
/// `{metric}` placeholders.
pub fn parse_address(s: &str) -> Result<Vec<AddrPart>, String> {
    if !s.starts_with('/') {
        return Err(format!("an OSC address starts with `/`, found {s:?}"));
    }
    let mut parts = Vec::new();
    let mut rest = s;
    while let Some(open) = rest.find('{') {
        if open > 0 {
            parts.push(AddrPart::Text(rest[..open].to_string()));
        }
        let Some(close) = rest[open..].find('}') else {
            return Err(format!("unclosed `{{` in address {s:?}"));
        };
        let name = &rest[open + 1..open + close];
        parts.push(match name {
            "layer" => AddrPart::Layer,
            "layer_index" => AddrPart::LayerIndex,
            "step" => AddrPart::Step,
            "value" => AddrPart::Value,
            "metric" => AddrPart::Metric,
            other => {
                let hint = did_you_mean(other, PLACEHOLDERS);
                return Err(format!(
                    "unknown placeholder `{{{other}}}`{hint} (expected one of {})",
                    list(PLACEHOLDERS)
                ));
            }
        });
        rest = &rest[open + close + 1..];
    }
    if rest.contains('}') {
        return Err(format!("unmatched `}}` in address {s:?}"));
    }
    if !rest.is_empty() {
        parts.push(AddrPart::Text(rest.to_string()));
    }
    if s.contains(' ') {
        return Err(format!("an OSC address has no spaces, found {s:?}"));
    }
    Ok(parts)
}

/// Parses one typed OSC argument `"TYPE:SOURCE"`.
pub fn parse_arg(s: &str) -> Result<OscArgSpec, String> {
    let Some((ty, source)) = s.split_once(':') else {
        return Err(format!(
            "expected a typed argument like \"f:value\" (TYPE:SOURCE), found {s:?}"
        ));
    };
    let ty = match ty {
        "f" => OscType::Float,
        "d" => OscType::Double,
        "i" => OscType::Int,
        "s" => OscType::Str,
        other => {
            return Err(format!(
                "unknown OSC type `{other}`, expected `f`, `d`, `i` or `s`"
            ))
        }
    };
    let Some(src) = ArgSource::parse(source) else {
        let hint = did_you_mean(source, &ArgSource::NAMES);
        return Err(format!(
            "unknown argument source `{source}`{hint} (expected one of {})",
            list(&ArgSource::NAMES)
        ));
    };
    if ty == OscType::Str && !matches!(src, ArgSource::Layer | ArgSource::Route | ArgSource::Metric)
    {
        return Err(format!(
            "a string argument takes `layer`, `route` or `metric`, not `{source}`"
        ));
    }
    Ok(OscArgSpec { ty, source: src })
}
