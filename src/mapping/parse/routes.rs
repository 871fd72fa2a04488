//! `[[route]]` and its `match`.

use super::values::*;
use super::*;

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
const COALESCE: &[(&str, Coalesce)] = &[
    ("last", Coalesce::Last),
    ("max", Coalesce::Max),
    ("mean", Coalesce::Mean),
];

impl Cx<'_> {
    pub(super) fn route(
        &mut self,
        v: &Val<'_>,
        path: &str,
        index: usize,
        outputs: &[OutputDef],
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
            None => Some(defaults::COALESCE),
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
                coalesce: coalesce.unwrap_or(defaults::COALESCE),
            }),
            send_on_change,
            alarm,
        })
    }

    pub(super) fn matcher(&mut self, v: &Val<'_>, path: &str) -> Option<Match> {
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
                        self.choice(
                            m,
                            &join(path, "metric"),
                            "metric",
                            &named(&Metric::NAMES, &Metric::ALL),
                        );
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
                    &named(&DiagnosisKind::NAMES, &DiagnosisKind::ALL),
                )
                .map(Some)
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
}
