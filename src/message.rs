//! The router's output: one [`Message`] per thing an output should do.
//!
//! A message owns no strings: it carries indices into the [`Mapping`] (route, output) and a
//! shared layer name (`Arc<str>`, cloning it never allocates), so routing stays
//! allocation-free. An OSC output expands its address and arguments with [`expand_osc`] into
//! buffers it reuses.

use std::fmt::Write as _;
use std::sync::Arc;

use crate::mapping::schema::{
    AddrPart, ArgSource, Mapping, Metric, OscType, OutputId, RouteId, SynthParam, Target,
};

/// A layer as the router knows it: its index (from the event or assigned by first
/// appearance) and its name.
#[derive(Clone, Debug, PartialEq)]
pub struct LayerRef {
    /// 0-based position.
    pub index: u32,
    /// Name, shared with the event.
    pub name: Arc<str>,
}

/// One instruction for one output.
#[derive(Clone, Debug, PartialEq)]
pub struct Message {
    /// The router's clock when the message was made (seconds, as given to the router).
    pub time: f64,
    /// Training step of the (last) event behind the message.
    pub step: u64,
    /// Epoch of that event.
    pub epoch: u32,
    /// Route that made it (index into [`Mapping::routes`]).
    pub route: RouteId,
    /// Output it is for (index into [`Mapping::outputs`]).
    pub output: OutputId,
    /// Metric of the events behind it.
    pub metric: Metric,
    /// Layer, for events about one layer.
    pub layer: Option<LayerRef>,
    /// The event's value (coalesced when rate limited). NaN or ±Inf for non-finite alarms,
    /// the epoch number for `epoch_end`.
    pub raw: f64,
    /// The level in 0..1 the transform made of it (1 for non-finite alarms).
    pub level: f64,
    /// An alarm: never rate limited.
    pub alarm: bool,
    /// What to do.
    pub action: Action,
}

/// What the output should do. Every MIDI number is within its valid range.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Action {
    /// Set (or strike, for `trigger`) a parameter of a synth voice.
    Synth {
        /// Voice index, below the output's `voices`.
        voice: u32,
        /// Parameter.
        param: SynthParam,
        /// Value in the parameter's unit (Hz for pitch and cutoff, −1..1 for pan).
        value: f64,
        /// Stereo position of the voice for per-layer routes (layers spread over −1..1).
        pan: Option<f64>,
    },
    /// Play a MIDI note; the output sends the note-off after `length_ms`.
    Note {
        /// Channel 1-16.
        channel: u8,
        /// Note 0-127.
        note: u8,
        /// Velocity 1-127.
        velocity: u8,
        /// Length in milliseconds.
        length_ms: u32,
    },
    /// Send a control change.
    Cc {
        /// Channel 1-16.
        channel: u8,
        /// Controller 0-127.
        cc: u8,
        /// 0-127, or 0-16383 when `fine` (MSB on `cc`, LSB on `cc + 32`).
        value: u16,
        /// 14-bit controller pair.
        fine: bool,
    },
    /// Send a pitch bend.
    PitchBend {
        /// Channel 1-16.
        channel: u8,
        /// 0-16383, centre 8192.
        value: u16,
    },
    /// Send a program change (choose an instrument).
    Program {
        /// Channel 1-16.
        channel: u8,
        /// Program 0-127.
        program: u8,
    },
    /// Send an OSC message: address and arguments from the route's template
    /// (see [`expand_osc`]).
    Osc {
        /// The value for `{value}` and `f:value` (range or scale applied).
        value: f64,
    },
}

/// One expanded OSC argument.
#[derive(Clone, Debug, PartialEq)]
pub enum OscArg {
    /// `f`.
    Float(f32),
    /// `d`.
    Double(f64),
    /// `i`.
    Int(i32),
    /// `s`, shared.
    Str(Arc<str>),
    /// `s`, static.
    StaticStr(&'static str),
}

/// Writes the OSC address and arguments of an [`Action::Osc`] message into reused buffers
/// (cleared first). Returns false (buffers empty) when the message is not an OSC message of
/// `mapping`. Does not allocate once the buffers are large enough.
pub fn expand_osc(
    msg: &Message,
    mapping: &Mapping,
    addr: &mut String,
    args: &mut Vec<OscArg>,
) -> bool {
    addr.clear();
    args.clear();
    let (Action::Osc { value }, Some(route)) = (msg.action, mapping.routes.get(msg.route as usize))
    else {
        return false;
    };
    let Target::Osc(template) = &route.target else {
        return false;
    };
    for part in &template.address {
        let _ = match part {
            AddrPart::Text(t) => addr.write_str(t),
            AddrPart::Layer => addr.write_str(msg.layer.as_ref().map_or("_", |l| &l.name)),
            AddrPart::LayerIndex => match &msg.layer {
                Some(l) => write!(addr, "{}", l.index),
                None => addr.write_str("_"),
            },
            AddrPart::Step => write!(addr, "{}", msg.step),
            AddrPart::Value => write!(addr, "{value}"),
            AddrPart::Metric => addr.write_str(msg.metric.name()),
        };
    }
    for spec in &template.args {
        let layer_index = msg.layer.as_ref().map_or(-1, |l| l.index as i64);
        let number: f64 = match spec.source {
            ArgSource::Value => value,
            ArgSource::Level => msg.level,
            ArgSource::Raw => msg.raw,
            ArgSource::Step => msg.step as f64,
            ArgSource::Epoch => msg.epoch as f64,
            ArgSource::Layer | ArgSource::LayerIndex => layer_index as f64,
            ArgSource::Route => msg.route as f64,
            ArgSource::Metric => msg.metric.index() as f64,
            ArgSource::Time => msg.time,
        };
        args.push(match spec.ty {
            OscType::Float => OscArg::Float(number as f32),
            OscType::Double => OscArg::Double(number),
            OscType::Int => OscArg::Int(if number.is_finite() {
                number.round().clamp(i32::MIN as f64, i32::MAX as f64) as i32
            } else {
                0
            }),
            OscType::Str => match spec.source {
                ArgSource::Layer => match &msg.layer {
                    Some(l) => OscArg::Str(l.name.clone()),
                    None => OscArg::StaticStr(""),
                },
                ArgSource::Route => OscArg::Str(route.name.clone()),
                ArgSource::Metric => OscArg::StaticStr(msg.metric.name()),
                // The parser only accepts strings of layer, route and metric.
                _ => OscArg::StaticStr(""),
            },
        });
    }
    true
}
