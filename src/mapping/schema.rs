//! Validated mapping types: what a mapping file means once [`super::parse_str`] accepted it.
//!
//! Every value here has passed validation; the router relies on that (ranges are ordered,
//! MIDI numbers are in range, output names resolve to indices, and so on).

use std::path::PathBuf;
use std::sync::Arc;

pub use crate::diagnose::Thresholds;
pub use crate::event::DiagnosisKind;
use crate::route::glob::Glob;
use crate::route::scale::Scale;
use crate::synth::patch::Patch;

/// Index of an output in [`Mapping::outputs`].
pub type OutputId = u32;
/// Index of a route in [`Mapping::routes`].
pub type RouteId = u32;

/// A whole validated mapping: named outputs and the routes that drive them.
#[derive(Clone, Debug, PartialEq)]
pub struct Mapping {
    /// Free text from the top-level `description` key.
    pub description: String,
    /// Outputs, sorted by name; routes refer to them by index.
    pub outputs: Vec<OutputDef>,
    /// Routes in file order.
    pub routes: Vec<Route>,
    /// The detector's thresholds (the `[diagnose]` table; defaults when absent).
    pub diagnose: Thresholds,
    /// Controls coming in (the `[controls]` table and `[[control]]` entries; none when
    /// absent). See `docs/controls.md`.
    pub controls: Controls,
}

impl Mapping {
    /// The output with the given name.
    pub fn output_by_name(&self, name: &str) -> Option<OutputId> {
        self.outputs
            .iter()
            .position(|o| &*o.name == name)
            .map(|i| i as OutputId)
    }

    /// The patches of every synth output's voices end to end, in output order: one per engine
    /// voice, in the layout of [`crate::synth::control::VoiceMap::from_mapping`].
    pub fn synth_patches(&self) -> Vec<Patch> {
        self.outputs
            .iter()
            .filter_map(|o| match &o.kind {
                OutputKind::Synth { patches, .. } => Some(patches.iter().cloned()),
                _ => None,
            })
            .flatten()
            .collect()
    }

    /// Every patch file the synth outputs read, once each, in output order.
    pub fn patch_files(&self) -> Vec<PathBuf> {
        let mut out: Vec<PathBuf> = Vec::new();
        for o in &self.outputs {
            if let OutputKind::Synth { patch_files, .. } = &o.kind {
                for f in patch_files {
                    if !out.contains(f) {
                        out.push(f.clone());
                    }
                }
            }
        }
        out
    }

    /// The route with the given name.
    pub fn route_by_name(&self, name: &str) -> Option<RouteId> {
        self.routes
            .iter()
            .position(|r| &*r.name == name)
            .map(|i| i as RouteId)
    }
}

pub use crate::mapping::controls::*;

/// One `[outputs.NAME]` table.
#[derive(Clone, Debug, PartialEq)]
pub struct OutputDef {
    /// The table's name.
    pub name: Arc<str>,
    /// What kind of output, with its settings.
    pub kind: OutputKind,
}

/// The kinds of output and their settings.
#[derive(Clone, Debug, PartialEq)]
pub enum OutputKind {
    /// The built-in synthesizer.
    Synth {
        /// Number of voices (`voices`, default 16); voice indices wrap around it.
        voices: u32,
        /// The patch of each voice, `voices` of them (`patch` and `patches`; see
        /// [`super::patches`] for the rules and the default).
        patches: Vec<Patch>,
        /// The patch files those patches were read from, as resolved paths (for
        /// [`super::watch`], which reloads the mapping when one of them changes).
        patch_files: Vec<PathBuf>,
    },
    /// A MIDI output port.
    Midi {
        /// Which port to open.
        port: MidiPort,
        /// Base channel, 1-16 (`channel`, default 1).
        channel: u8,
    },
    /// An OSC client.
    Osc {
        /// Host name or address (`host`, default `127.0.0.1`).
        host: String,
        /// Port number (`port`, required).
        port: u16,
        /// Transport (`protocol`, default udp).
        protocol: OscProtocol,
        /// Bundle latency in milliseconds (`latency_ms`, default 0: plain messages, no bundle).
        latency_ms: u32,
    },
    /// Readable lines on the terminal.
    Monitor,
}

impl OutputKind {
    /// The `kind` string of the mapping file.
    pub fn name(&self) -> &'static str {
        match self {
            OutputKind::Synth { .. } => "synth",
            OutputKind::Midi { .. } => "midi",
            OutputKind::Osc { .. } => "osc",
            OutputKind::Monitor => "monitor",
        }
    }
}

/// Which MIDI port an output opens.
#[derive(Clone, Debug, PartialEq)]
pub enum MidiPort {
    /// The first port whose name contains this text (`port = "IAC"`).
    NameContains(String),
    /// The port at this position in the system's list (`port = 0`).
    Index(u32),
    /// A virtual port created under this name (`virtual = "sonograd"`).
    Virtual(String),
}

/// OSC transport.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OscProtocol {
    /// UDP datagrams.
    Udp,
    /// TCP stream (SLIP framed, OSC 1.1).
    Tcp,
}

/// One `[[route]]`.
#[derive(Clone, Debug, PartialEq)]
pub struct Route {
    /// Name shown by the monitor (`name`, default `route N`, N its 0-based position).
    pub name: Arc<str>,
    /// Index of the output it drives.
    pub output: OutputId,
    /// Which events it takes.
    pub matcher: Match,
    /// How a value becomes a level in 0..1.
    pub transform: Transform,
    /// Optional pitch quantisation.
    pub scale: Option<Scale>,
    /// What the level drives.
    pub target: Target,
    /// One voice / channel / pan position / address per layer.
    pub per_layer: bool,
    /// Rate limit; `None` sends every event.
    pub rate: Option<RateLimit>,
    /// Only send when the outgoing value differs from the last one sent.
    pub send_on_change: bool,
    /// An alarm route: never rate limited nor coalesced (non-finite routes always are).
    pub alarm: bool,
}

/// The metrics a route can match (event kinds).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Metric {
    /// `grad_norm`: one layer's gradient norm.
    GradNorm,
    /// `total_norm`: the whole model's gradient norm.
    TotalNorm,
    /// `loss`.
    Loss,
    /// `lr`: learning rate.
    Lr,
    /// `weight_norm`: one layer's weight norm.
    WeightNorm,
    /// `update_ratio`: one layer's update/weight ratio.
    UpdateRatio,
    /// `nonfinite`: a NaN or Inf appeared (event kind `non_finite`).
    NonFinite,
    /// `epoch_end`: an epoch ended; its value is the epoch number.
    EpochEnd,
    /// `eval`: an evaluation metric.
    Eval,
    /// `diagnosis`: the detector named a training problem (an alarm, like `nonfinite`).
    Diagnosis,
}

impl Metric {
    /// All metrics, in the order of [`Metric::index`].
    pub const ALL: [Metric; 10] = [
        Metric::GradNorm,
        Metric::TotalNorm,
        Metric::Loss,
        Metric::Lr,
        Metric::WeightNorm,
        Metric::UpdateRatio,
        Metric::NonFinite,
        Metric::EpochEnd,
        Metric::Eval,
        Metric::Diagnosis,
    ];

    /// The names accepted in `match.metric`, in the order of [`Metric::ALL`].
    pub const NAMES: [&'static str; 10] = [
        "grad_norm",
        "total_norm",
        "loss",
        "lr",
        "weight_norm",
        "update_ratio",
        "nonfinite",
        "epoch_end",
        "eval",
        "diagnosis",
    ];

    /// The mapping-file name.
    pub fn name(self) -> &'static str {
        Self::NAMES[self.index()]
    }

    /// Position in [`Metric::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }

    /// Parses a mapping-file name (`non_finite` is accepted as well as `nonfinite`).
    pub fn parse(name: &str) -> Option<Metric> {
        if name == "non_finite" {
            return Some(Metric::NonFinite);
        }
        Self::NAMES
            .iter()
            .position(|n| *n == name)
            .map(|i| Self::ALL[i])
    }

    /// The metric an event payload belongs to, if routes can match it at all.
    pub fn of(payload: &crate::event::Payload) -> Option<Metric> {
        use crate::event::Payload as P;
        Some(match payload {
            P::GradNorm { .. } => Metric::GradNorm,
            P::TotalNorm { .. } => Metric::TotalNorm,
            P::Loss { .. } => Metric::Loss,
            P::Lr { .. } => Metric::Lr,
            P::WeightNorm { .. } => Metric::WeightNorm,
            P::UpdateRatio { .. } => Metric::UpdateRatio,
            P::NonFinite { .. } => Metric::NonFinite,
            P::EpochEnd => Metric::EpochEnd,
            P::Eval { .. } => Metric::Eval,
            P::Diagnosis { .. } => Metric::Diagnosis,
            P::RunStart { .. } | P::RunEnd { .. } | P::Control { .. } => return None,
        })
    }
}

/// The `match` table.
#[derive(Clone, Debug, PartialEq)]
pub struct Match {
    /// Event kind.
    pub metric: Metric,
    /// Layer name glob (`layer`, default: any layer, and events without a layer).
    pub layer: Option<Glob>,
    /// Eval metric name glob (`name`, eval only).
    pub name: Option<Glob>,
    /// Condition on the event's value (`when`).
    pub when: Option<Condition>,
    /// Which diagnoses (`diagnosis`, diagnosis only; default: all of them).
    pub diagnosis: Option<DiagnosisKind>,
}

/// A `when` condition: `value OP number`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Condition {
    /// Comparison.
    pub op: CmpOp,
    /// Right-hand side.
    pub rhs: f64,
}

impl Condition {
    /// Whether `value` satisfies the condition (never for NaN).
    pub fn holds(&self, value: f64) -> bool {
        match self.op {
            CmpOp::Gt => value > self.rhs,
            CmpOp::Ge => value >= self.rhs,
            CmpOp::Lt => value < self.rhs,
            CmpOp::Le => value <= self.rhs,
            CmpOp::Eq => value == self.rhs,
            CmpOp::Ne => !value.is_nan() && value != self.rhs,
        }
    }
}

/// Comparison operators of `when`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CmpOp {
    /// `>`
    Gt,
    /// `>=`
    Ge,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `==`
    Eq,
    /// `!=`
    Ne,
}

/// The `transform` table: value → level in 0..1.
#[derive(Clone, Debug, PartialEq)]
pub struct Transform {
    /// Input domain.
    pub domain: Domain,
    /// Shape of the map.
    pub curve: Curve,
    /// `1 - level` (after the curve and clamp).
    pub invert: bool,
    /// Clamp the level to 0..1 (default true).
    pub clamp: bool,
    /// One-pole smoothing coefficient in 0..1 (0: none).
    pub smoothing: f64,
}

impl Default for Transform {
    fn default() -> Self {
        Transform {
            domain: Domain::Fixed { lo: 0.0, hi: 1.0 },
            curve: Curve::Linear,
            invert: false,
            clamp: true,
            smoothing: 0.0,
        }
    }
}

/// Input domain of a transform.
#[derive(Clone, Debug, PartialEq)]
pub enum Domain {
    /// `domain = [lo, hi]`.
    Fixed {
        /// Value mapped to level 0.
        lo: f64,
        /// Value mapped to level 1.
        hi: f64,
    },
    /// `domain = "learned"`: learned per layer from the values seen.
    Learned {
        /// How.
        learn: Learn,
        /// Events per layer before the route sounds (and, for percentiles, the window size).
        warmup: u32,
    },
}

/// How a learned domain is learned.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Learn {
    /// Running minimum and maximum of all values seen.
    MinMax,
    /// The given percentiles of the last `warmup` values, refreshed every `warmup` events.
    Percentile {
        /// Low percentile, 0..100.
        lo: f64,
        /// High percentile, 0..100.
        hi: f64,
    },
    /// Anchored on the run's own start: `[m / √span, m · √span]`, `m` the median of the first
    /// `warmup` positive values, then held for the rest of the run (until then: centred on the
    /// first positive value). A rising value keeps rising in level; values outside clamp.
    Warmup {
        /// Top of the domain over its bottom (100: two decades), above 1.
        span: f64,
    },
}

/// Curve shapes.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Curve {
    /// Straight line.
    Linear,
    /// Equal ratios give equal steps (domain must be positive).
    Log,
    /// `(e^(c·u) − 1) / (e^c − 1)` with the given curvature `c` (default 4).
    Exp(f64),
    /// SuperCollider's `lincurve`: same formula, any curvature, 0 is linear.
    LinCurve(f64),
}

/// Rate limit of a route.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RateLimit {
    /// At most this many messages per second per layer.
    pub max_hz: f64,
    /// How values that arrive too soon are merged.
    pub coalesce: Coalesce,
}

/// How rate-limited values are merged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Coalesce {
    /// Keep the latest.
    Last,
    /// Keep the largest.
    Max,
    /// Average them.
    Mean,
}

/// What a route drives: exactly one target.
#[derive(Clone, Debug, PartialEq)]
pub enum Target {
    /// A parameter of a voice of the built-in synth.
    Synth {
        /// Which parameter.
        param: SynthParam,
        /// Voice index (per-layer routes add the layer index).
        voice: u32,
        /// Output range in the parameter's unit.
        range: [f64; 2],
    },
    /// A MIDI note.
    Note {
        /// Fixed note or note from the level.
        note: NoteSource,
        /// Fixed velocity or velocity from the level.
        velocity: VelocitySource,
        /// Note length in milliseconds.
        length_ms: u32,
        /// Channel override (1-16), else the output's.
        channel: Option<u8>,
    },
    /// A MIDI control change.
    Cc {
        /// Controller number (0-127; 0-31 for 14-bit).
        cc: u8,
        /// 14-bit: MSB on `cc`, LSB on `cc + 32`.
        fine: bool,
        /// Channel override (1-16).
        channel: Option<u8>,
    },
    /// MIDI pitch bend (14-bit, centre 8192).
    PitchBend {
        /// Channel override (1-16).
        channel: Option<u8>,
    },
    /// MIDI program change: a fixed program, or one from the level over `range`.
    Program {
        /// Fixed program or program from the level.
        program: NoteSource,
        /// Channel override (1-16).
        channel: Option<u8>,
    },
    /// An OSC message.
    Osc(OscTemplate),
}

impl Target {
    /// Short name used in diagnostics and the monitor.
    pub fn kind_name(&self) -> &'static str {
        match self {
            Target::Synth { .. } => "synth parameter",
            Target::Note { .. } => "MIDI note",
            Target::Cc { .. } => "MIDI CC",
            Target::PitchBend { .. } => "MIDI pitch bend",
            Target::Program { .. } => "MIDI program change",
            Target::Osc(_) => "OSC message",
        }
    }
}

/// Built-in synth voice parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SynthParam {
    /// Frequency in Hz.
    Pitch,
    /// Amplitude 0..1.
    Amp,
    /// Filter cutoff in Hz.
    Cutoff,
    /// Stereo position −1..1.
    Pan,
    /// Strike the voice; the value is the strike's amplitude.
    Trigger,
}

impl SynthParam {
    /// The names accepted in `to.param`.
    pub const NAMES: [&'static str; 5] = ["pitch", "amp", "cutoff", "pan", "trigger"];

    /// Every parameter, in the order of [`SynthParam::NAMES`].
    pub const ALL: [SynthParam; 5] = [
        SynthParam::Pitch,
        SynthParam::Amp,
        SynthParam::Cutoff,
        SynthParam::Pan,
        SynthParam::Trigger,
    ];

    /// The mapping-file name.
    pub fn name(self) -> &'static str {
        Self::NAMES[self as usize]
    }

    /// Default `range` for the parameter.
    pub fn default_range(self) -> [f64; 2] {
        match self {
            SynthParam::Pitch => [110.0, 880.0],
            SynthParam::Amp => [0.0, 0.5],
            SynthParam::Cutoff => [200.0, 8000.0],
            SynthParam::Pan => [-1.0, 1.0],
            SynthParam::Trigger => [0.0, 1.0],
        }
    }

    /// Whether levels map exponentially onto the range (frequencies do).
    pub fn exponential(self) -> bool {
        matches!(self, SynthParam::Pitch | SynthParam::Cutoff)
    }

    /// Unit suffix for the monitor.
    pub fn unit(self) -> &'static str {
        match self {
            SynthParam::Pitch | SynthParam::Cutoff => " Hz",
            _ => "",
        }
    }
}

/// Where a MIDI note number comes from.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum NoteSource {
    /// Always this note.
    Fixed(u8),
    /// From the level, through the scale or over `range`.
    Value {
        /// Note range when there is no scale.
        range: [u8; 2],
    },
}

/// Where a MIDI velocity comes from.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum VelocitySource {
    /// Always this velocity (1-127).
    Fixed(u8),
    /// From the level, 1..=127.
    Value,
}

/// An OSC address template with typed arguments.
#[derive(Clone, Debug, PartialEq)]
pub struct OscTemplate {
    /// The address split into literal text and placeholders.
    pub address: Vec<AddrPart>,
    /// Typed arguments.
    pub args: Vec<OscArgSpec>,
    /// Range the level is mapped onto for `value` (ignored with a scale: MIDI note numbers).
    pub range: [f64; 2],
}

/// A piece of an OSC address template.
#[derive(Clone, Debug, PartialEq)]
pub enum AddrPart {
    /// Literal text.
    Text(String),
    /// `{layer}`: layer name (`_` without a layer).
    Layer,
    /// `{layer_index}`.
    LayerIndex,
    /// `{step}`.
    Step,
    /// `{value}`: the output value.
    Value,
    /// `{metric}`.
    Metric,
}

/// One typed OSC argument `"TYPE:SOURCE"`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OscArgSpec {
    /// OSC type tag.
    pub ty: OscType,
    /// Where the argument's value comes from.
    pub source: ArgSource,
}

/// OSC argument types.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OscType {
    /// `f`: float32.
    Float,
    /// `d`: float64.
    Double,
    /// `i`: int32.
    Int,
    /// `s`: string.
    Str,
}

/// Argument sources.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArgSource {
    /// The output value (range or scale applied).
    Value,
    /// The level 0..1.
    Level,
    /// The event's own value.
    Raw,
    /// Training step.
    Step,
    /// Epoch.
    Epoch,
    /// Layer name (string) or index (number).
    Layer,
    /// Layer index.
    LayerIndex,
    /// Route name.
    Route,
    /// Metric name.
    Metric,
    /// Time in seconds (the router's clock).
    Time,
}

impl ArgSource {
    /// The names accepted after the colon.
    pub const NAMES: [&'static str; 10] = [
        "value",
        "level",
        "raw",
        "step",
        "epoch",
        "layer",
        "layer_index",
        "route",
        "metric",
        "time",
    ];

    /// Parses a source name.
    pub fn parse(s: &str) -> Option<ArgSource> {
        use ArgSource::*;
        const ALL: [ArgSource; 10] = [
            Value, Level, Raw, Step, Epoch, Layer, LayerIndex, Route, Metric, Time,
        ];
        Self::NAMES.iter().position(|n| *n == s).map(|i| ALL[i])
    }
}
