//! The event model: what every source emits and every output is driven by.
//!
//! Pure data, no I/O. An [`Event`] carries a training clock (`step`, `epoch`), a wall clock
//! (`time`, Unix seconds), an optional run/rank tag and one [`Payload`]. Its JSON-lines form
//! (one object per line, see `docs/events.md`) is the public format for recording, replay and
//! ingest; [`Event::to_json_line`] and [`Event::from_json_line`] are the two directions.
//!
//! ```
//! use sonograd_event::{Event, Payload};
//! let e = Event::new(12, 0, 1.5, Payload::Loss { value: 0.25 });
//! let line = e.to_json_line();
//! assert_eq!(line, r#"{"v":1,"step":12,"epoch":0,"time":1.5,"kind":"loss","value":0.25}"#);
//! assert_eq!(Event::from_json_line(&line).unwrap(), e);
//! ```

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

mod fast;

/// Version of the JSON-lines format written by this build. Readers accept this version and
/// older ones; a line with a newer version is rejected with a clear error.
pub const FORMAT_VERSION: u32 = 1;

/// One thing that happened during training.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Format version (see [`FORMAT_VERSION`]).
    #[serde(rename = "v")]
    pub version: u32,
    /// Optimizer step the event belongs to (0-based).
    pub step: u64,
    /// Epoch (0-based pass over the data) the step belongs to.
    #[serde(default)]
    pub epoch: u32,
    /// Wall-clock time in seconds since the Unix epoch.
    #[serde(default)]
    pub time: f64,
    /// Optional run tag, to tell several runs apart in one stream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run: Option<Arc<str>>,
    /// Optional rank of a distributed run's process.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rank: Option<u32>,
    /// What happened.
    #[serde(flatten)]
    pub payload: Payload,
}

/// A layer of the model, by name and (when known) by position.
///
/// The name is shared (`Arc<str>`), so cloning a layer reference never allocates.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Layer {
    /// Layer name as the model calls it, e.g. `fc1`.
    #[serde(rename = "layer")]
    pub name: Arc<str>,
    /// Position of the layer from the input (0-based), when the source knows it.
    #[serde(
        rename = "layer_index",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub index: Option<u32>,
}

impl Layer {
    /// A layer with a known position.
    pub fn new(name: impl Into<Arc<str>>, index: u32) -> Self {
        Layer {
            name: name.into(),
            index: Some(index),
        }
    }
}

/// Which quantity went non-finite.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Quantity {
    /// A gradient element of the layer.
    Grad,
    /// A weight (parameter) element of the layer.
    Weight,
    /// The training loss.
    Loss,
}

/// NaN and Inf are different states: an overflowing f32 norm of a finite gradient is neither.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NonFiniteKind {
    /// At least one element is NaN.
    Nan,
    /// No element is NaN, at least one is ±Inf.
    Inf,
}

/// Metadata of a run, sent once at its start.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RunInfo {
    /// Model description, e.g. `mlp 784-256-128-64-10`.
    #[serde(default)]
    pub model: String,
    /// Optimizer description, e.g. `sgd momentum=0.9`.
    #[serde(default)]
    pub optimizer: String,
    /// Initial learning rate.
    #[serde(default)]
    pub lr: f64,
    /// Batch size.
    #[serde(default)]
    pub batch_size: u32,
    /// Layer names in order from the input.
    #[serde(default)]
    pub layers: Vec<String>,
    /// Data set description.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub dataset: String,
    /// Planned number of steps, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub steps: Option<u64>,
    /// Random seed, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// Device the run trains on (`cpu`, `cuda:0`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub device: String,
    /// UDP port on the sender's host where the sender reads controls (`docs/controls.md`),
    /// when it is not the port it sends from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub control_port: Option<u16>,
}

/// How a run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EndReason {
    /// All planned steps ran.
    Completed,
    /// Stopped on the first non-finite value (`--halt-on-nonfinite`).
    NonFinite,
    /// Stopped by Ctrl-C or SIGTERM.
    Interrupted,
    /// Stopped by a person through a `stop` control (see `docs/controls.md`).
    Stopped,
}

impl EndReason {
    /// Every reason, in the order of [`EndReason::NAMES`].
    pub const ALL: [EndReason; 4] = [
        EndReason::Completed,
        EndReason::NonFinite,
        EndReason::Interrupted,
        EndReason::Stopped,
    ];

    /// The JSON names, in the order of [`EndReason::ALL`].
    pub const NAMES: [&'static str; 4] = ["completed", "non_finite", "interrupted", "stopped"];

    /// The JSON name, e.g. `non_finite`.
    pub fn name(self) -> &'static str {
        Self::NAMES[self as usize]
    }

    /// Parses a JSON name.
    pub fn parse(name: &str) -> Option<EndReason> {
        Self::NAMES
            .iter()
            .position(|n| *n == name)
            .map(|i| Self::ALL[i])
    }
}

/// What a `diagnosis` event says is wrong with training (see `src/diagnose`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DiagnosisKind {
    /// The total gradient norm kept growing, beyond a factor within a few steps.
    Exploding,
    /// Early layers' gradient norms are orders of magnitude below the last layer's.
    Vanishing,
    /// The first NaN or Inf of the run (its layers are the ones that went first).
    NonFinite,
    /// The loss stopped improving.
    Plateau,
    /// The loss or gradient norm keeps flipping up and down around a level.
    Oscillation,
    /// A layer's gradient norm stayed exactly zero.
    DeadLayer,
    /// One step's loss far above its recent distribution.
    LossSpike,
    /// No step for a while from a live run that had been stepping.
    Stall,
}

impl DiagnosisKind {
    /// Every kind, in the order of [`DiagnosisKind::NAMES`].
    pub const ALL: [DiagnosisKind; 8] = [
        DiagnosisKind::Exploding,
        DiagnosisKind::Vanishing,
        DiagnosisKind::NonFinite,
        DiagnosisKind::Plateau,
        DiagnosisKind::Oscillation,
        DiagnosisKind::DeadLayer,
        DiagnosisKind::LossSpike,
        DiagnosisKind::Stall,
    ];

    /// The JSON (and mapping file) names, in the order of [`DiagnosisKind::ALL`].
    pub const NAMES: [&'static str; 8] = [
        "exploding",
        "vanishing",
        "non_finite",
        "plateau",
        "oscillation",
        "dead_layer",
        "loss_spike",
        "stall",
    ];

    /// The JSON name, e.g. `dead_layer`.
    pub fn name(self) -> &'static str {
        Self::NAMES[self as usize]
    }

    /// Parses a JSON name.
    pub fn parse(name: &str) -> Option<DiagnosisKind> {
        Self::NAMES
            .iter()
            .position(|n| *n == name)
            .map(|i| Self::ALL[i])
    }
}

impl fmt::Display for DiagnosisKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What an [`Event`] reports. The JSON form is tagged by `kind`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Payload {
    /// L2 norm of one layer's gradient (all its parameters together).
    GradNorm {
        /// The layer.
        #[serde(flatten)]
        layer: Layer,
        /// The norm.
        value: f64,
    },
    /// L2 norm of the whole model's gradient.
    TotalNorm {
        /// The norm.
        value: f64,
    },
    /// Training loss of the step's batch.
    Loss {
        /// The loss.
        value: f64,
    },
    /// Learning rate used by the step.
    Lr {
        /// The learning rate.
        value: f64,
    },
    /// L2 norm of one layer's weights (all its parameters), after the step.
    WeightNorm {
        /// The layer.
        #[serde(flatten)]
        layer: Layer,
        /// The norm.
        value: f64,
    },
    /// ‖update‖ / ‖weights‖ of one layer for the step.
    UpdateRatio {
        /// The layer.
        #[serde(flatten)]
        layer: Layer,
        /// The ratio.
        value: f64,
    },
    /// A NaN or Inf appeared.
    NonFinite {
        /// The layer, absent for the loss.
        #[serde(flatten, default)]
        layer: Option<Layer>,
        /// Which quantity.
        quantity: Quantity,
        /// NaN or Inf.
        state: NonFiniteKind,
    },
    /// An epoch ended (the event's `epoch` is the one that ended).
    EpochEnd,
    /// An evaluation metric, e.g. held-out accuracy.
    Eval {
        /// Metric name, e.g. `accuracy`.
        name: String,
        /// The value.
        value: f64,
    },
    /// A run started.
    RunStart {
        /// Its metadata.
        #[serde(flatten)]
        info: Box<RunInfo>,
    },
    /// A detector (sonograd's own, see `src/diagnose`, or a foreign trainer's) names a
    /// training problem.
    Diagnosis {
        /// What is wrong.
        diagnosis: DiagnosisKind,
        /// The layers concerned, input first; empty when it is about the whole model (total
        /// norm, loss).
        #[serde(default)]
        layers: Vec<Arc<str>>,
        /// A short human-readable reason, e.g. `total norm grew 1e3x in 5 steps`.
        #[serde(default)]
        reason: String,
    },
    /// A run ended.
    RunEnd {
        /// Why it ended.
        reason: EndReason,
        /// Events the monitor queue merged because its consumer fell behind.
        #[serde(default)]
        coalesced: u64,
    },
    /// A person acted: a control (a MIDI knob, an OSC message) was applied
    /// (see `docs/controls.md`).
    Control {
        /// The control's name in the mapping.
        control: Arc<str>,
        /// Where it came from, e.g. `midi:cc:1:21`, `osc:/sonograd/control/lr`.
        source: Arc<str>,
        /// What it acts on, e.g. `lr_scale`, `pause`, `volume`.
        target: Arc<str>,
        /// The value applied (triggers: 1).
        value: f64,
    },
}

/// The metric names of the JSON form, in a stable order.
pub const KINDS: &[&str] = &[
    "grad_norm",
    "total_norm",
    "loss",
    "lr",
    "weight_norm",
    "update_ratio",
    "non_finite",
    "epoch_end",
    "eval",
    "run_start",
    "run_end",
    "diagnosis",
    "control",
];

impl Payload {
    /// The `kind` tag of the JSON form.
    pub fn kind(&self) -> &'static str {
        match self {
            Payload::GradNorm { .. } => "grad_norm",
            Payload::TotalNorm { .. } => "total_norm",
            Payload::Loss { .. } => "loss",
            Payload::Lr { .. } => "lr",
            Payload::WeightNorm { .. } => "weight_norm",
            Payload::UpdateRatio { .. } => "update_ratio",
            Payload::NonFinite { .. } => "non_finite",
            Payload::EpochEnd => "epoch_end",
            Payload::Eval { .. } => "eval",
            Payload::RunStart { .. } => "run_start",
            Payload::RunEnd { .. } => "run_end",
            Payload::Diagnosis { .. } => "diagnosis",
            Payload::Control { .. } => "control",
        }
    }

    /// The layer the payload is about, if any.
    pub fn layer(&self) -> Option<&Layer> {
        match self {
            Payload::GradNorm { layer, .. }
            | Payload::WeightNorm { layer, .. }
            | Payload::UpdateRatio { layer, .. } => Some(layer),
            Payload::NonFinite { layer, .. } => layer.as_ref(),
            _ => None,
        }
    }

    /// The payload's numeric value, if it has one.
    pub fn value(&self) -> Option<f64> {
        match self {
            Payload::GradNorm { value, .. }
            | Payload::TotalNorm { value }
            | Payload::Loss { value }
            | Payload::Lr { value }
            | Payload::WeightNorm { value, .. }
            | Payload::UpdateRatio { value, .. }
            | Payload::Eval { value, .. } => Some(*value),
            _ => None,
        }
    }

    /// Replaces the numeric value, if the payload has one.
    pub fn set_value(&mut self, number: f64) {
        match self {
            Payload::GradNorm { value, .. }
            | Payload::TotalNorm { value }
            | Payload::Loss { value }
            | Payload::Lr { value }
            | Payload::WeightNorm { value, .. }
            | Payload::UpdateRatio { value, .. }
            | Payload::Eval { value, .. } => *value = number,
            _ => {}
        }
    }

    /// Events that must never be dropped or merged: alarms and run boundaries.
    pub fn is_essential(&self) -> bool {
        matches!(
            self,
            Payload::NonFinite { .. }
                | Payload::EpochEnd
                | Payload::Eval { .. }
                | Payload::RunStart { .. }
                | Payload::RunEnd { .. }
                | Payload::Diagnosis { .. }
                | Payload::Control { .. }
        )
    }
}

/// Why a JSON line could not be read as an event.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ParseError {
    /// Not JSON, or JSON of the wrong shape; the message names the field.
    #[error("{0}")]
    Json(String),
    /// Written by a newer sonograd.
    #[error("format version {found} is newer than this sonograd reads (up to {FORMAT_VERSION})")]
    Version {
        /// The version the line carries.
        found: u32,
    },
}

impl Event {
    /// An event of the current format version, without run or rank tag.
    pub fn new(step: u64, epoch: u32, time: f64, payload: Payload) -> Self {
        Event {
            version: FORMAT_VERSION,
            step,
            epoch,
            time,
            run: None,
            rank: None,
            payload,
        }
    }

    /// The JSON-lines form, without the trailing newline.
    pub fn to_json_line(&self) -> String {
        let mut out = Vec::with_capacity(128);
        self.write_json_line(&mut out);
        String::from_utf8(out).expect("serde_json writes UTF-8")
    }

    /// Appends the JSON-lines form (without newline) to `out`: no allocation once `out` is
    /// large enough.
    pub fn write_json_line(&self, out: &mut Vec<u8>) {
        serde_json::to_writer(out, &WireEvent(self)).expect("writing JSON to memory cannot fail");
    }

    /// Reads one JSON line. Non-finite numbers may be written as the strings `"NaN"`,
    /// `"Infinity"` and `"-Infinity"` (JSON has no literal for them).
    pub fn from_json_line(line: &str) -> Result<Event, ParseError> {
        // The per-step metrics in their plain form, without building a `Value` (see `fast`).
        if let Some(e) = fast::parse(line) {
            return Ok(e);
        }
        let value = json_value(line).map_err(|e| ParseError::Json(e.to_string()))?;
        Self::from_json_value(value)
    }

    /// Reads one already-parsed JSON object.
    pub fn from_json_value(mut value: serde_json::Value) -> Result<Event, ParseError> {
        let obj = value
            .as_object_mut()
            .ok_or_else(|| ParseError::Json("expected a JSON object".into()))?;
        match obj.get("v") {
            None => {
                return Err(ParseError::Json(
                    "missing field `v` (format version)".into(),
                ))
            }
            Some(v) => match v.as_u64() {
                Some(found) if found > u64::from(FORMAT_VERSION) => {
                    return Err(ParseError::Version {
                        found: found.min(u32::MAX as u64) as u32,
                    })
                }
                Some(_) => {}
                None => return Err(ParseError::Json("field `v` must be a whole number".into())),
            },
        }
        let mut non_finite = None;
        if let Some(v) = obj.get_mut("value") {
            if let Some(text) = v.as_str() {
                let number = match text {
                    "NaN" | "nan" => f64::NAN,
                    "Infinity" | "inf" | "+Infinity" => f64::INFINITY,
                    "-Infinity" | "-inf" => f64::NEG_INFINITY,
                    other => {
                        return Err(ParseError::Json(format!(
                            "field `value`: expected a number, found the string {other:?}"
                        )))
                    }
                };
                // JSON has no NaN literal: parse with a stand-in, then put the real value back.
                *v = serde_json::Value::from(0.0);
                non_finite = Some(number);
            }
        }
        let mut event: Event =
            serde_json::from_value(value).map_err(|e| ParseError::Json(describe_serde(e)))?;
        if let Some(number) = non_finite {
            event.payload.set_value(number);
        }
        Ok(event)
    }
}

/// Parses one line of JSON, reading the bare `NaN`, `Infinity` and `-Infinity` that Python's
/// `json.dumps` writes for non-finite floats (not JSON) as the strings this format uses. A
/// line that is still not JSON gives its original error.
pub fn json_value(line: &str) -> Result<serde_json::Value, serde_json::Error> {
    match serde_json::from_str(line) {
        Ok(v) => Ok(v),
        Err(e) => match quote_bare_non_finite(line) {
            Some(quoted) => serde_json::from_str(&quoted).map_err(|_| e),
            None => Err(e),
        },
    }
}

/// `line` with each bare `NaN`, `Infinity` and `-Infinity` outside a string put in quotes;
/// `None` when it has none.
fn quote_bare_non_finite(line: &str) -> Option<String> {
    const WORDS: [&str; 3] = ["-Infinity", "Infinity", "NaN"];
    let bytes = line.as_bytes();
    let mut out = String::with_capacity(line.len() + 8);
    let (mut in_string, mut escaped, mut found) = (false, false, false);
    let (mut i, mut copied) = (0, 0);
    while i < bytes.len() {
        let b = bytes[i];
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            i += 1;
            continue;
        }
        if b == b'"' {
            in_string = true;
            i += 1;
            continue;
        }
        if let Some(word) = WORDS.iter().find(|w| bytes[i..].starts_with(w.as_bytes())) {
            out.push_str(&line[copied..i]);
            out.push('"');
            out.push_str(word);
            out.push('"');
            i += word.len();
            copied = i;
            found = true;
            continue;
        }
        i += 1;
    }
    if !found {
        return None;
    }
    out.push_str(&line[copied..]);
    Some(out)
}

fn describe_serde(e: serde_json::Error) -> String {
    let text = e.to_string();
    // serde_json appends " at line 1 column N" for string input only; values carry none.
    text.replace("unknown variant", "unknown kind")
}

/// Serialises an event, writing non-finite values as strings (JSON has no NaN literal).
struct WireEvent<'a>(&'a Event);

impl Serialize for WireEvent<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.0.payload.value() {
            Some(v) if !v.is_finite() => {
                let mut value = serde_json::to_value(self.0).map_err(serde::ser::Error::custom)?;
                let text = if v.is_nan() {
                    "NaN"
                } else if v > 0.0 {
                    "Infinity"
                } else {
                    "-Infinity"
                };
                value["value"] = serde_json::Value::String(text.into());
                value.serialize(serializer)
            }
            _ => self.0.serialize(serializer),
        }
    }
}

impl fmt::Display for Event {
    /// A short readable line: `step 12 grad_norm fc1 0.531`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "step {:>6} ", self.step)?;
        match &self.payload {
            Payload::GradNorm { layer, value }
            | Payload::WeightNorm { layer, value }
            | Payload::UpdateRatio { layer, value } => {
                write!(f, "{:<12} {:<8} {}", self.payload.kind(), layer.name, value)
            }
            Payload::NonFinite {
                layer,
                quantity,
                state,
            } => write!(
                f,
                "{:<12} {:<8} {:?} {:?}",
                "non_finite",
                layer.as_ref().map(|l| &*l.name).unwrap_or("-"),
                quantity,
                state
            ),
            Payload::Eval { name, value } => write!(f, "{:<12} {:<8} {}", "eval", name, value),
            Payload::RunStart { info } => write!(
                f,
                "{:<12} {} | {} | lr {} | batch {} | layers {}",
                "run_start",
                info.model,
                info.optimizer,
                info.lr,
                info.batch_size,
                info.layers.join(",")
            ),
            Payload::RunEnd { reason, coalesced } => {
                write!(f, "{:<12} {:?} (coalesced {coalesced})", "run_end", reason)
            }
            Payload::EpochEnd => write!(f, "epoch_end    epoch {}", self.epoch),
            Payload::Diagnosis {
                diagnosis,
                layers,
                reason,
            } => {
                write!(f, "{:<12} {:<8} ", "diagnosis", diagnosis.name())?;
                if !layers.is_empty() {
                    write!(f, "[{}] ", layers.join(","))?;
                }
                f.write_str(reason)
            }
            Payload::Control {
                control,
                source,
                target,
                value,
            } => write!(
                f,
                "{:<12} {:<8} {value} ({control}, from {source})",
                "control", target
            ),
            other => write!(
                f,
                "{:<12} {:<8} {}",
                other.kind(),
                "",
                other.value().unwrap_or(0.0)
            ),
        }
    }
}

/// Where events go: the monitor queue, or a vector in tests and tools.
pub trait EventSink {
    /// Takes one event; must not block.
    fn emit(&mut self, event: Event);
    /// Events merged so far because the consumer fell behind.
    fn coalesced(&self) -> u64 {
        0
    }
}

impl EventSink for Vec<Event> {
    fn emit(&mut self, event: Event) {
        self.push(event)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pythons_bare_non_finite_literals_are_read() {
        // What `json.dumps({"value": float("nan")})` and friends write.
        for (text, want) in [
            ("NaN", f64::NAN),
            ("Infinity", f64::INFINITY),
            ("-Infinity", f64::NEG_INFINITY),
        ] {
            let line = format!(
                r#"{{"v": 1, "step": 3, "kind": "grad_norm", "layer": "fc1", "value": {text}}}"#
            );
            let e = Event::from_json_line(&line).unwrap_or_else(|e| panic!("{line}: {e}"));
            let got = e.payload.value().unwrap();
            assert!(
                got.to_bits() == want.to_bits() || (got.is_nan() && want.is_nan()),
                "{line}"
            );
        }
        // A word inside a string stays as it is; a bare word elsewhere is still an error.
        let named = r#"{"v": 1, "step": 0, "kind": "run_start", "model": "NaN net", "lr": 0.1}"#;
        assert!(Event::from_json_line(named).is_ok());
        let bad = r#"{"v": 1, "step": 0, "kind": "loss", "value": nan}"#;
        assert!(Event::from_json_line(bad).is_err());
        // Not JSON, with bytes beyond ASCII outside any string: an error, not a panic.
        assert!(Event::from_json_line("{\"v\": 1, é NaN}").is_err());
    }

    fn layer(i: u32) -> Layer {
        Layer::new(format!("fc{}", i + 1), i)
    }

    fn samples() -> Vec<Event> {
        let payloads = vec![
            Payload::GradNorm {
                layer: layer(0),
                value: 0.5,
            },
            Payload::TotalNorm { value: 1.25 },
            Payload::Loss { value: 2.3 },
            Payload::Lr { value: 0.1 },
            Payload::WeightNorm {
                layer: layer(2),
                value: 12.0,
            },
            Payload::UpdateRatio {
                layer: layer(3),
                value: 1e-3,
            },
            Payload::NonFinite {
                layer: Some(layer(1)),
                quantity: Quantity::Grad,
                state: NonFiniteKind::Nan,
            },
            Payload::NonFinite {
                layer: None,
                quantity: Quantity::Loss,
                state: NonFiniteKind::Inf,
            },
            Payload::EpochEnd,
            Payload::Eval {
                name: "accuracy".into(),
                value: 0.9,
            },
            Payload::RunStart {
                info: Box::new(RunInfo {
                    model: "mlp 784-256-128-64-10".into(),
                    optimizer: "sgd".into(),
                    lr: 0.1,
                    batch_size: 20,
                    layers: vec!["fc1".into(), "fc2".into()],
                    dataset: "digits".into(),
                    steps: Some(200),
                    seed: Some(7),
                    device: "cpu".into(),
                    control_port: None,
                }),
            },
            Payload::RunEnd {
                reason: EndReason::Completed,
                coalesced: 3,
            },
            Payload::Diagnosis {
                diagnosis: DiagnosisKind::Exploding,
                layers: vec!["fc1".into(), "fc2".into()],
                reason: "total norm grew 1e3x in 5 steps".into(),
            },
            Payload::Diagnosis {
                diagnosis: DiagnosisKind::Plateau,
                layers: vec![],
                reason: "loss".into(),
            },
            Payload::Control {
                control: "lr knob".into(),
                source: "midi:cc:1:21".into(),
                target: "lr_scale".into(),
                value: 0.5,
            },
        ];
        payloads
            .into_iter()
            .enumerate()
            .map(|(i, p)| Event::new(i as u64, 1, 1_700_000_000.25 + i as f64, p))
            .collect()
    }

    #[test]
    fn every_kind_round_trips_through_json() {
        let events = samples();
        let kinds: Vec<&str> = events.iter().map(|e| e.payload.kind()).collect();
        for kind in KINDS {
            assert!(kinds.contains(kind), "sample set misses {kind}");
        }
        for e in events {
            let line = e.to_json_line();
            assert!(!line.contains('\n'));
            let back = Event::from_json_line(&line).unwrap_or_else(|err| panic!("{line}: {err}"));
            assert_eq!(back, e, "{line}");
            let value: serde_json::Value = serde_json::from_str(&line).unwrap();
            assert_eq!(value["kind"], e.payload.kind());
            assert_eq!(value["v"], FORMAT_VERSION);
        }
    }

    #[test]
    fn diagnosis_has_the_documented_json_form() {
        let e = Event::new(
            40,
            0,
            0.0,
            Payload::Diagnosis {
                diagnosis: DiagnosisKind::DeadLayer,
                layers: vec!["fc1".into(), "fc2".into()],
                reason: "gradient norm exactly 0 for 20 steps".into(),
            },
        );
        assert_eq!(
            e.to_json_line(),
            r#"{"v":1,"step":40,"epoch":0,"time":0.0,"kind":"diagnosis","diagnosis":"dead_layer","layers":["fc1","fc2"],"reason":"gradient norm exactly 0 for 20 steps"}"#
        );
        // Every kind's name round-trips, and a foreign line may leave out layers and reason.
        for kind in DiagnosisKind::ALL {
            let line = format!(r#"{{"v":1,"step":3,"kind":"diagnosis","diagnosis":"{kind}"}}"#);
            let back = Event::from_json_line(&line).unwrap();
            assert_eq!(
                back.payload,
                Payload::Diagnosis {
                    diagnosis: kind,
                    layers: vec![],
                    reason: String::new()
                }
            );
            assert_eq!(DiagnosisKind::parse(kind.name()), Some(kind));
        }
        let err = Event::from_json_line(r#"{"v":1,"step":3,"kind":"diagnosis","diagnosis":"sad"}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("sad"), "{err}");
        assert!(Event::from_json_line(r#"{"v":1,"step":3,"kind":"diagnosis"}"#).is_err());
    }

    #[test]
    fn run_and_rank_tags_round_trip() {
        let mut e = Event::new(3, 0, 2.0, Payload::Loss { value: 1.0 });
        e.run = Some("baseline".into());
        e.rank = Some(2);
        let line = e.to_json_line();
        assert!(line.contains(r#""run":"baseline""#) && line.contains(r#""rank":2"#));
        assert_eq!(Event::from_json_line(&line).unwrap(), e);
    }

    #[test]
    fn non_finite_values_are_written_as_strings_and_read_back() {
        for v in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            let e = Event::new(1, 0, 0.0, Payload::TotalNorm { value: v });
            let line = e.to_json_line();
            assert!(
                serde_json::from_str::<serde_json::Value>(&line).is_ok(),
                "{line}"
            );
            let back = Event::from_json_line(&line).unwrap();
            let got = back.payload.value().unwrap();
            assert!(
                got.is_nan() == v.is_nan() && (v.is_nan() || got == v),
                "{line}"
            );
        }
    }

    #[test]
    fn a_minimal_foreign_line_is_accepted() {
        let e = Event::from_json_line(
            r#"{"v":1,"step":5,"kind":"grad_norm","layer":"conv1","value":3}"#,
        )
        .unwrap();
        assert_eq!(e.step, 5);
        assert_eq!(e.payload.layer().unwrap().name.as_ref(), "conv1");
        assert_eq!(e.payload.layer().unwrap().index, None);
        assert_eq!(e.payload.value(), Some(3.0));
    }

    #[test]
    fn bad_lines_name_what_is_wrong() {
        let cases = [
            ("not json", "expected"),
            ("[1,2]", "expected a JSON object"),
            (r#"{"step":1,"kind":"loss","value":1}"#, "`v`"),
            (r#"{"v":9,"step":1,"kind":"loss","value":1}"#, "version 9"),
            (r#"{"v":1,"step":1,"kind":"loss"}"#, "value"),
            (r#"{"v":1,"step":1,"kind":"wobble","value":1}"#, "wobble"),
            (r#"{"v":1,"step":-1,"kind":"loss","value":1}"#, "-1"),
            (r#"{"v":1,"step":1,"kind":"loss","value":"lots"}"#, "lots"),
            (r#"{"v":1,"step":1,"kind":"grad_norm","value":1}"#, "layer"),
        ];
        for (line, needle) in cases {
            let err = Event::from_json_line(line).expect_err(line).to_string();
            assert!(err.contains(needle), "{line}: {err}");
        }
    }
}
