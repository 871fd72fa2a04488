//! Mapping file → [`Mapping`]: walks the spanned TOML tree, checks every key and value, and
//! collects every problem (with its position) instead of stopping at the first.

mod controls;
mod diagnose;
mod outputs;
mod patch;
mod routes;
mod scale;
mod target;
mod templates;
mod transform;
mod values;

use values::get;

/// The defaults of the mapping format that more than one place needs, written once.
mod defaults {
    use crate::mapping::schema::{Coalesce, OscProtocol};

    /// `voices` of a synth output.
    pub(super) const VOICES: u32 = 16;
    /// `host` of an OSC output.
    pub(super) const OSC_HOST: &str = "127.0.0.1";
    /// `protocol` of an OSC output.
    pub(super) const OSC_PROTOCOL: OscProtocol = OscProtocol::Udp;
    /// `latency_ms` of an OSC output.
    pub(super) const OSC_LATENCY_MS: u32 = 0;
    /// A route's `coalesce`.
    pub(super) const COALESCE: Coalesce = Coalesce::Last;
}

use std::collections::HashMap;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use toml::de::{DeTable, DeValue};
use toml::Spanned;

use super::patches::{builtin_names, default_patch_name, voice_range, PatchRef};
use super::problems::{did_you_mean, line_col, Diagnostic, Diagnostics};
use super::schema::*;
use crate::route::glob::Glob;
use crate::route::scale::{named_scale, parse_note_name, Scale, SCALE_NAMES};
use crate::synth::patch::Patch;

type Span = Range<usize>;
type Val<'i> = Spanned<DeValue<'i>>;

pub use templates::{parse_address, parse_arg, parse_condition};

const TOP_KEYS: &[&str] = &[
    "description",
    "outputs",
    "route",
    "diagnose",
    "controls",
    "control",
];

pub use controls::RECALL_ADDRESS;

/// Parses and validates mapping text; `file` names it in diagnostics and is taken as its path:
/// patch files the mapping names by a relative path are read from `file`'s folder.
pub fn parse_str(src: &str, file: &str) -> Result<Mapping, Diagnostics> {
    let mut cx = Cx::new(src, file);
    let Some(doc) = cx.toml(src) else {
        return Err(cx.finish());
    };
    let mapping = cx.document(doc.get_ref(), doc.span());
    if cx.diags.is_empty() {
        Ok(mapping)
    } else {
        Err(cx.finish())
    }
}

pub(crate) use patch::parse_patch;

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

impl<'s> Cx<'s> {
    fn new(src: &'s str, file: &'s str) -> Cx<'s> {
        Cx {
            src,
            file,
            dir: Path::new(file)
                .parent()
                .map(Path::to_path_buf)
                .unwrap_or_default(),
            patch_files: HashMap::new(),
            referenced: Vec::new(),
            diags: Vec::new(),
        }
    }

    /// The TOML tree of `src`, or `None` after reporting its syntax error.
    fn toml<'i>(&mut self, src: &'i str) -> Option<Spanned<DeTable<'i>>> {
        match DeTable::parse(src) {
            Ok(doc) => Some(doc),
            Err(e) => {
                let at = e.span().map_or(0, |s| s.start);
                self.err(
                    at..at,
                    "",
                    format!("TOML syntax error: {}", e.message().trim()),
                );
                None
            }
        }
    }

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
                            outputs.push(OutputDef {
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
        let routes: Vec<Route> = routes.into_iter().map(|r| r.0).collect();
        let controls = self.controls(get(doc, "controls"), get(doc, "control"), &routes);
        Mapping {
            description: description.to_string(),
            outputs,
            routes,
            diagnose,
            controls,
        }
    }
}
