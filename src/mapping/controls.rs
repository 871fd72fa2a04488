//! Validated control types: the `[controls]` table and the `[[control]]` entries of a mapping
//! (see `docs/controls.md`), once the parser accepted them.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use super::schema::MidiPort;

/// Every control of a mapping and where they come in.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Controls {
    /// OSC in: the UDP address to bind (`[controls] osc`).
    pub osc: Option<SocketAddr>,
    /// MIDI in (`[controls] midi` or `midi_virtual`); feedback goes out on the output port of
    /// the same name.
    pub midi: Option<MidiPort>,
    /// Send value changes back to the controllers (`feedback`, default true).
    pub feedback: bool,
    /// Also send OSC feedback to this address (`feedback_osc`), e.g. a control surface's
    /// port.
    pub feedback_osc: Option<SocketAddr>,
    /// The mappings `mapping_next` and `mapping_prev` step through, as resolved paths.
    pub mappings: Vec<PathBuf>,
    /// The `[[control]]` entries, in file order.
    pub list: Vec<ControlDef>,
}

impl Controls {
    /// Whether anything listens for controls.
    pub fn listens(&self) -> bool {
        !self.list.is_empty() && (self.osc.is_some() || self.midi.is_some())
    }

    /// The control with the given name.
    pub fn by_name(&self, name: &str) -> Option<&ControlDef> {
        self.list.iter().find(|c| &*c.name == name)
    }
}

/// One `[[control]]`.
#[derive(Clone, Debug, PartialEq)]
pub struct ControlDef {
    /// Its name (`name`, default the target's name); OSC reaches it at
    /// `/sonograd/control/<name>`.
    pub name: Arc<str>,
    /// What moves it.
    pub source: ControlSource,
    /// What it acts on.
    pub target: ControlTarget,
    /// The values at the controller's two ends.
    pub range: [f64; 2],
    /// How the controller's position maps onto the range.
    pub curve: ControlCurve,
    /// How the controller's messages move the value.
    pub mode: ControlMode,
    /// At most this many changes applied per second (`max_rate_hz`, default 50).
    pub max_rate_hz: f64,
}

/// What moves a control.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ControlSource {
    /// A MIDI control change, 7-bit or (with `lsb`) 14-bit.
    Cc {
        /// Channel 1-16.
        channel: u8,
        /// Controller number (the MSB of a 14-bit pair).
        cc: u8,
        /// The LSB's controller number of a 14-bit pair.
        lsb: Option<u8>,
    },
    /// A MIDI note (on and off; velocity is the position).
    Note {
        /// Channel 1-16.
        channel: u8,
        /// Note number.
        note: u8,
    },
    /// MIDI program changes on a channel (program number is the position).
    Program {
        /// Channel 1-16.
        channel: u8,
    },
    /// An OSC address.
    Osc(String),
    /// Only `/sonograd/control/<name>`.
    Named,
}

impl fmt::Display for ControlSource {
    /// The `source` of a `control` event: `midi:cc:1:21`, `osc:/tr/stop`, ...
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ControlSource::Cc { channel, cc, .. } => write!(f, "midi:cc:{channel}:{cc}"),
            ControlSource::Note { channel, note } => write!(f, "midi:note:{channel}:{note}"),
            ControlSource::Program { channel } => write!(f, "midi:program:{channel}"),
            ControlSource::Osc(a) => write!(f, "osc:{a}"),
            ControlSource::Named => f.write_str("osc"),
        }
    }
}

/// What a control acts on.
#[derive(Clone, Debug, PartialEq)]
pub enum ControlTarget {
    /// The learning rate itself.
    Lr,
    /// A factor on the run's own learning rate.
    LrScale,
    /// Momentum (or Adam's beta1).
    Momentum,
    /// Weight decay.
    WeightDecay,
    /// 1 pauses, 0 resumes.
    Pause,
    /// Resumes.
    Resume,
    /// A clean end of the run.
    Stop,
    /// Saves the weights to this file (`{step}` filled in).
    Checkpoint {
        /// The file, as written in the mapping.
        file: String,
    },
    /// A bookmark.
    Mark,
    /// Master volume of the built-in synth, 0-1.
    Volume,
    /// 1 mutes the route.
    Mute {
        /// The route's name.
        route: Arc<str>,
    },
    /// 1 solos the route.
    Solo {
        /// The route's name.
        route: Arc<str>,
    },
    /// The next mapping of `[controls] mappings`.
    MappingNext,
    /// The previous mapping of `[controls] mappings`.
    MappingPrev,
}

/// The names of the targets in the mapping file, and as the `target` of `control` events.
pub const TARGET_NAMES: &[&str] = &[
    "lr",
    "lr_scale",
    "momentum",
    "weight_decay",
    "pause",
    "resume",
    "stop",
    "checkpoint",
    "mark",
    "volume",
    "mute",
    "solo",
    "mapping_next",
    "mapping_prev",
];

impl ControlTarget {
    /// The target's name (`mute` and `solo` without their route).
    pub fn name(&self) -> &'static str {
        match self {
            ControlTarget::Lr => "lr",
            ControlTarget::LrScale => "lr_scale",
            ControlTarget::Momentum => "momentum",
            ControlTarget::WeightDecay => "weight_decay",
            ControlTarget::Pause => "pause",
            ControlTarget::Resume => "resume",
            ControlTarget::Stop => "stop",
            ControlTarget::Checkpoint { .. } => "checkpoint",
            ControlTarget::Mark => "mark",
            ControlTarget::Volume => "volume",
            ControlTarget::Mute { .. } => "mute",
            ControlTarget::Solo { .. } => "solo",
            ControlTarget::MappingNext => "mapping_next",
            ControlTarget::MappingPrev => "mapping_prev",
        }
    }

    /// The `target` of a `control` event: the name, and for `mute` and `solo` the route
    /// after a colon (`mute:layer pitches`).
    pub fn event_name(&self) -> String {
        match self {
            ControlTarget::Mute { route } | ControlTarget::Solo { route } => {
                format!("{}:{route}", self.name())
            }
            other => other.name().to_string(),
        }
    }

    /// A trigger fires once per press and has no value of its own.
    pub fn is_trigger(&self) -> bool {
        matches!(
            self,
            ControlTarget::Resume
                | ControlTarget::Stop
                | ControlTarget::Checkpoint { .. }
                | ControlTarget::Mark
                | ControlTarget::MappingNext
                | ControlTarget::MappingPrev
        )
    }

    /// Whether the trainer (or a Python client) applies it, rather than the sound.
    pub fn is_training(&self) -> bool {
        matches!(
            self,
            ControlTarget::Lr
                | ControlTarget::LrScale
                | ControlTarget::Momentum
                | ControlTarget::WeightDecay
                | ControlTarget::Pause
                | ControlTarget::Resume
                | ControlTarget::Stop
                | ControlTarget::Checkpoint { .. }
        )
    }

    /// The range when the mapping gives none, with the curve that suits it.
    pub fn default_range(&self) -> ([f64; 2], ControlCurve) {
        match self {
            ControlTarget::Lr => ([1e-5, 1.0], ControlCurve::Log),
            ControlTarget::LrScale => ([0.01, 2.0], ControlCurve::Linear),
            ControlTarget::Momentum => ([0.0, 0.99], ControlCurve::Linear),
            ControlTarget::WeightDecay => ([0.0, 0.1], ControlCurve::Linear),
            _ => ([0.0, 1.0], ControlCurve::Linear),
        }
    }

    /// The value before any controller moved it, where there is a natural one.
    pub fn initial(&self) -> Option<f64> {
        match self {
            ControlTarget::LrScale | ControlTarget::Volume => Some(1.0),
            ControlTarget::Pause | ControlTarget::Mute { .. } | ControlTarget::Solo { .. } => {
                Some(0.0)
            }
            _ => None,
        }
    }
}

/// How a controller's position (0..1) maps onto a control's range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ControlCurve {
    /// Straight line.
    Linear,
    /// Equal steps are equal ratios (the range must be positive).
    Log,
    /// Slow at the bottom, fast at the top: `(e^(4u) - 1) / (e^4 - 1)`.
    Exp,
}

/// How a controller's messages move a control.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ControlMode {
    /// The position is the value.
    Absolute,
    /// An endless encoder: each tick moves 1/128 of the range (two's complement around 64).
    Relative,
    /// Each press flips between the range's ends.
    Toggle,
    /// The top of the range while held, the bottom when released.
    Momentary,
}
