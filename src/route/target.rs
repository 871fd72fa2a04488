//! Level → [`Action`]: ranges, scales, voices, channels and pan spread.

use crate::mapping::schema::{NoteSource, Route, SynthParam, Target, VelocitySource};
use crate::message::Action;
use crate::route::scale::note_hz;

/// What a route needs to know about its output.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct OutputInfo {
    /// MIDI base channel 1-16 (1 for other outputs).
    pub channel: u8,
    /// Synth voices (at least 1).
    pub voices: u32,
}

/// Stereo position of layer `i` of `n`: spread evenly from −1 (first) to 1 (last).
pub(crate) fn layer_pan(i: u32, n: u32) -> f64 {
    if n <= 1 {
        0.0
    } else {
        let p = -1.0 + 2.0 * i.min(n - 1) as f64 / (n - 1) as f64;
        p.clamp(-1.0, 1.0)
    }
}

fn channel(base: u8, per_layer_offset: u32) -> u8 {
    ((base.clamp(1, 16) as u32 - 1 + per_layer_offset % 16) % 16 + 1) as u8
}

fn lerp(range: [f64; 2], t: f64) -> f64 {
    range[0] + (range[1] - range[0]) * t
}

/// Maps a level onto the route's target. `layer` is the layer index for per-layer routes
/// (`None` otherwise), `layers` the number of layers known (for the pan spread).
///
/// A non-finite level is treated as 0. MIDI numbers are always within their valid ranges,
/// whatever the level; synth and OSC values stay inside their `range` when the level is in
/// 0..1 (it is unless the transform has `clamp = false`).
pub(crate) fn action(
    route: &Route,
    out: OutputInfo,
    layer: Option<u32>,
    layers: u32,
    level: f64,
) -> Action {
    let level = if level.is_finite() { level } else { 0.0 };
    let unit = level.clamp(0.0, 1.0);
    let offset = layer.unwrap_or(0);
    match &route.target {
        Target::Synth {
            param,
            voice,
            range,
        } => {
            let value = match (param, &route.scale) {
                (SynthParam::Pitch, Some(scale)) => {
                    note_hz(scale.pitch(unit, layer, layers.max(offset + 1)))
                }
                (p, _) if p.exponential() && range[0] > 0.0 && range[1] > 0.0 => {
                    range[0] * (range[1] / range[0]).powf(level)
                }
                _ => lerp(*range, level),
            };
            Action::Synth {
                voice: voice.wrapping_add(offset) % out.voices.max(1),
                param: *param,
                value,
                pan: layer.map(|i| layer_pan(i, layers.max(i + 1))),
            }
        }
        Target::Note {
            note,
            velocity,
            length_ms,
            channel: ch,
        } => {
            let note = match (note, &route.scale) {
                (NoteSource::Fixed(n), _) => (*n).min(127),
                (NoteSource::Value { .. }, Some(scale)) => {
                    scale.quantise_layer(unit, layer, layers.max(offset + 1))
                }
                (NoteSource::Value { range }, None) => {
                    let (lo, hi) = (range[0] as f64, range[1] as f64);
                    (lo + (hi - lo) * unit).round().clamp(0.0, 127.0) as u8
                }
            };
            let velocity = match velocity {
                VelocitySource::Fixed(v) => (*v).clamp(1, 127),
                VelocitySource::Value => (1.0 + 126.0 * unit).round() as u8,
            };
            Action::Note {
                channel: channel(ch.unwrap_or(out.channel), offset),
                note,
                velocity,
                length_ms: *length_ms,
            }
        }
        Target::Cc {
            cc,
            fine,
            channel: ch,
        } => {
            let max = if *fine { 16383.0 } else { 127.0 };
            Action::Cc {
                channel: channel(ch.unwrap_or(out.channel), offset),
                cc: (*cc).min(127),
                value: (unit * max).round() as u16,
                fine: *fine,
            }
        }
        Target::PitchBend { channel: ch } => Action::PitchBend {
            channel: channel(ch.unwrap_or(out.channel), offset),
            value: (unit * 16383.0).round() as u16,
        },
        Target::Program {
            program,
            channel: ch,
        } => Action::Program {
            channel: channel(ch.unwrap_or(out.channel), offset),
            program: match program {
                NoteSource::Fixed(p) => (*p).min(127),
                NoteSource::Value { range } => {
                    let (lo, hi) = (range[0] as f64, range[1] as f64);
                    (lo + (hi - lo) * unit).round().clamp(0.0, 127.0) as u8
                }
            },
        },
        Target::Osc(t) => Action::Osc {
            value: match &route.scale {
                Some(scale) => scale.pitch(unit, layer, layers.max(offset + 1)),
                None => lerp(t.range, level),
            },
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pan_spread_and_channels() {
        assert_eq!(layer_pan(0, 1), 0.0);
        assert_eq!(layer_pan(0, 3), -1.0);
        assert_eq!(layer_pan(1, 3), 0.0);
        assert_eq!(layer_pan(2, 3), 1.0);
        assert_eq!(channel(1, 0), 1);
        assert_eq!(channel(3, 2), 5);
        assert_eq!(channel(16, 1), 1);
        assert_eq!(channel(0, 0), 1);
    }
}
