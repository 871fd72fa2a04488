//! From a controller's message to a control's new value: which `[[control]]` it moves, and
//! where its mode, curve and range put the value. Pure state, no I/O.

use crate::mapping::controls::{ControlCurve, ControlDef, ControlMode, ControlSource, Controls};

use super::input::Input;

/// The OSC prefix every control answers to: `/sonograd/control/<name>`.
pub const OSC_PREFIX: &str = "/sonograd/control/";

/// A control's value changed (or a trigger fired: value 1).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Change {
    /// Index into the mapping's `[[control]]` list.
    pub index: usize,
    /// The new value, within the control's range.
    pub value: f64,
}

/// What one incoming message did.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Handled {
    /// A control moved.
    Change(Change),
    /// It belongs to a control but changes nothing (a release, a repeat, a bad argument).
    Ignored,
    /// No control listens to it.
    Unknown,
}

#[derive(Clone, Copy, Debug, Default)]
struct State {
    value: Option<f64>,
    /// 14-bit CC: the last MSB and LSB seen.
    msb: u8,
    lsb: u8,
    /// A button or key is down (edge detection for toggles and triggers).
    held: bool,
}

/// Every control's current value and the state of its controller.
#[derive(Clone, Debug)]
pub struct Bindings {
    defs: Vec<ControlDef>,
    state: Vec<State>,
}

impl Bindings {
    /// Bindings for a mapping's controls, each at its natural starting value (if any).
    pub fn new(controls: &Controls) -> Bindings {
        let defs = controls.list.clone();
        let state = defs
            .iter()
            .map(|d| State {
                value: d.target.initial().map(|v| clamp(d, v)),
                ..State::default()
            })
            .collect();
        Bindings { defs, state }
    }

    /// The controls, in mapping order.
    pub fn defs(&self) -> &[ControlDef] {
        &self.defs
    }

    /// A control's current value, when it has one.
    pub fn value(&self, index: usize) -> Option<f64> {
        self.state.get(index).and_then(|s| s.value)
    }

    /// Sets a control's value from elsewhere (clamped), e.g. the run's own learning rate.
    pub fn set(&mut self, index: usize, value: f64) {
        if let (Some(d), Some(s)) = (self.defs.get(index), self.state.get_mut(index)) {
            if value.is_finite() {
                s.value = Some(clamp(d, value));
            }
        }
    }

    /// Where the control's value sits between its range's ends, 0..1 (for feedback).
    pub fn position(&self, index: usize) -> Option<f64> {
        let d = self.defs.get(index)?;
        self.value(index).map(|v| to_position(d, v))
    }

    /// Applies one message from a controller.
    pub fn handle(&mut self, input: &Input) -> Handled {
        let Some((index, lsb)) = self.find(input) else {
            return Handled::Unknown;
        };
        let def = &self.defs[index];
        let state = &mut self.state[index];
        let trigger = def.target.is_trigger();
        // The message as a position 0..1 and whether it is a press (button down).
        let (position, press, release) = match *input {
            Input::Cc { value, .. } => {
                let position = match def.source {
                    ControlSource::Cc { lsb: Some(_), .. } => {
                        if lsb {
                            state.lsb = value;
                        } else {
                            state.msb = value;
                            state.lsb = 0;
                        }
                        f64::from(u16::from(state.msb) << 7 | u16::from(state.lsb)) / 16383.0
                    }
                    _ => f64::from(value) / 127.0,
                };
                let down = value >= 64;
                let press = down && !state.held;
                let release = !down && state.held;
                if !lsb {
                    state.held = down;
                }
                if def.mode == ControlMode::Relative && !trigger {
                    // An encoder: 65 is one tick up, 63 one down.
                    let ticks = f64::from(value) - 64.0;
                    let now = state.value.map_or(0.0, |v| to_position(def, v));
                    let u = (now + ticks / 128.0).clamp(0.0, 1.0);
                    return set(index, def, state, to_value(def, u));
                }
                (position, press, release)
            }
            Input::Note { velocity, .. } => {
                let down = velocity > 0;
                let press = down && !state.held;
                let release = !down && state.held;
                state.held = down;
                (f64::from(velocity) / 127.0, press, release)
            }
            Input::Program { program, .. } => (f64::from(program) / 127.0, true, false),
            Input::Osc { value, .. } => {
                // OSC carries the value itself, in the control's own units.
                if trigger {
                    return match value {
                        Some(v) if v < 0.5 => Handled::Ignored,
                        _ => fire(index),
                    };
                }
                let Some(v) = value.filter(|v| v.is_finite()) else {
                    return Handled::Ignored;
                };
                let v = match def.mode {
                    ControlMode::Toggle | ControlMode::Momentary => {
                        if v >= 0.5 {
                            def.range[1]
                        } else {
                            def.range[0]
                        }
                    }
                    _ => v,
                };
                return set(index, def, state, v);
            }
        };
        if trigger {
            return if press { fire(index) } else { Handled::Ignored };
        }
        match def.mode {
            ControlMode::Absolute | ControlMode::Relative => {
                if matches!(input, Input::Note { velocity: 0, .. }) {
                    return Handled::Ignored;
                }
                set(index, def, state, to_value(def, position))
            }
            ControlMode::Toggle => {
                if !press {
                    return Handled::Ignored;
                }
                let at_top = state.value.is_some_and(|v| v >= def.range[1]);
                let v = if at_top { def.range[0] } else { def.range[1] };
                set(index, def, state, v)
            }
            ControlMode::Momentary => {
                if press {
                    set(index, def, state, def.range[1])
                } else if release {
                    set(index, def, state, def.range[0])
                } else {
                    Handled::Ignored
                }
            }
        }
    }

    /// The control a message belongs to, and whether it is a 14-bit pair's LSB.
    fn find(&self, input: &Input) -> Option<(usize, bool)> {
        self.defs.iter().enumerate().find_map(|(i, d)| {
            let hit = match (&d.source, input) {
                (
                    ControlSource::Cc { channel, cc, lsb },
                    Input::Cc {
                        channel: c, cc: n, ..
                    },
                ) if channel == c => {
                    if n == cc {
                        Some(false)
                    } else if Some(*n) == *lsb {
                        Some(true)
                    } else {
                        None
                    }
                }
                (
                    ControlSource::Note { channel, note },
                    Input::Note {
                        channel: c,
                        note: n,
                        ..
                    },
                ) => (channel == c && note == n).then_some(false),
                (ControlSource::Program { channel }, Input::Program { channel: c, .. }) => {
                    (channel == c).then_some(false)
                }
                (_, Input::Osc { addr, .. }) => {
                    let own = matches!(&d.source, ControlSource::Osc(a) if a == addr);
                    let named = addr.strip_prefix(OSC_PREFIX) == Some(&*d.name);
                    (own || named).then_some(false)
                }
                _ => None,
            };
            hit.map(|lsb| (i, lsb))
        })
    }
}

fn fire(index: usize) -> Handled {
    Handled::Change(Change { index, value: 1.0 })
}

fn set(index: usize, def: &ControlDef, state: &mut State, value: f64) -> Handled {
    let value = clamp(def, value);
    if state.value == Some(value) {
        return Handled::Ignored;
    }
    state.value = Some(value);
    Handled::Change(Change { index, value })
}

fn clamp(def: &ControlDef, v: f64) -> f64 {
    v.clamp(def.range[0], def.range[1])
}

/// The value at position `u` (0..1) of the control's range.
pub fn to_value(def: &ControlDef, u: f64) -> f64 {
    let [lo, hi] = def.range;
    let u = u.clamp(0.0, 1.0);
    match def.curve {
        ControlCurve::Linear => lo + (hi - lo) * u,
        ControlCurve::Log => lo * (hi / lo).powf(u),
        ControlCurve::Exp => lo + (hi - lo) * ((4.0 * u).exp() - 1.0) / (4f64.exp() - 1.0),
    }
}

/// The position (0..1) of a value in the control's range: the inverse of [`to_value`].
pub fn to_position(def: &ControlDef, v: f64) -> f64 {
    let [lo, hi] = def.range;
    let v = v.clamp(lo, hi);
    let u = match def.curve {
        ControlCurve::Linear => (v - lo) / (hi - lo),
        ControlCurve::Log => (v / lo).ln() / (hi / lo).ln(),
        ControlCurve::Exp => ((v - lo) / (hi - lo) * (4f64.exp() - 1.0) + 1.0).ln() / 4.0,
    };
    u.clamp(0.0, 1.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mapping::parse_str;

    fn bindings(controls: &str) -> Bindings {
        let src = format!(
            r#"
[outputs.s]
kind = "synth"
[[route]]
name = "pitches"
output = "s"
match = {{ metric = "loss" }}
to = {{ param = "pitch" }}
{controls}"#
        );
        let m = parse_str(&src, "t.toml").unwrap_or_else(|d| panic!("{d}"));
        Bindings::new(&m.controls)
    }

    fn cc(channel: u8, cc: u8, value: u8) -> Input {
        Input::Cc { channel, cc, value }
    }

    fn note(note: u8, velocity: u8) -> Input {
        Input::Note {
            channel: 1,
            note,
            velocity,
        }
    }

    fn value(h: Handled) -> f64 {
        match h {
            Handled::Change(c) => c.value,
            other => panic!("expected a change, got {other:?}"),
        }
    }

    #[test]
    fn an_absolute_cc_spans_the_range_on_its_curve() {
        let mut b = bindings(
            "[[control]]\ncc = 21\ntarget = \"lr\"\nrange = [0.001, 1.0]\ncurve = \"log\"\n\
             [[control]]\ncc = 22\nchannel = 2\ntarget = \"volume\"\n",
        );
        assert!((value(b.handle(&cc(1, 21, 0))) - 0.001).abs() < 1e-12);
        assert!((value(b.handle(&cc(1, 21, 127))) - 1.0).abs() < 1e-12);
        // Half way on a log curve is the geometric mean.
        let mid = value(b.handle(&cc(1, 21, 64)));
        assert!((mid / (0.001f64 * 1.0).sqrt() - 1.0).abs() < 0.03, "{mid}");
        assert_eq!(value(b.handle(&cc(2, 22, 0))), 0.0);
        // Same number, other channel: nobody listens.
        assert_eq!(b.handle(&cc(3, 22, 10)), Handled::Unknown);
        assert_eq!(b.handle(&cc(1, 99, 10)), Handled::Unknown);
        // The same value again changes nothing.
        assert_eq!(b.handle(&cc(2, 22, 0)), Handled::Ignored);
    }

    #[test]
    fn a_14_bit_cc_combines_msb_and_lsb() {
        let mut b = bindings("[[control]]\ncc = 7\nlsb = 39\ntarget = \"volume\"\n");
        b.handle(&cc(1, 7, 64));
        let v = value(b.handle(&cc(1, 39, 1)));
        assert!((v - (64.0 * 128.0 + 1.0) / 16383.0).abs() < 1e-12, "{v}");
        assert_eq!(value(b.handle(&cc(1, 7, 127))), 127.0 * 128.0 / 16383.0);
        assert_eq!(value(b.handle(&cc(1, 39, 127))), 1.0);
    }

    #[test]
    fn relative_toggle_and_momentary_modes() {
        let mut b = bindings(
            "[[control]]\ncc = 1\ntarget = \"lr_scale\"\nrange = [0.0, 1.28]\nmode = \"relative\"\n\
             [[control]]\nnote = 36\ntarget = \"pause\"\nmode = \"toggle\"\n\
             [[control]]\ncc = 2\ntarget = \"mute\"\nroute = \"pitches\"\nmode = \"momentary\"\n",
        );
        // lr_scale starts at 1.0; +3 ticks of 1/128 of 1.28 each.
        let up = value(b.handle(&cc(1, 1, 67)));
        assert!((up - 1.03).abs() < 1e-9, "{up}");
        let down = value(b.handle(&cc(1, 1, 62)));
        assert!((down - 1.01).abs() < 1e-9, "{down}");
        // Clamped at the top.
        assert_eq!(value(b.handle(&cc(1, 1, 127))), 1.28);
        // Toggle: press flips, release does nothing.
        assert_eq!(value(b.handle(&note(36, 100))), 1.0);
        assert_eq!(b.handle(&note(36, 0)), Handled::Ignored);
        assert_eq!(value(b.handle(&note(36, 90))), 0.0);
        // Momentary: high while held.
        assert_eq!(value(b.handle(&cc(1, 2, 127))), 1.0);
        assert_eq!(b.handle(&cc(1, 2, 120)), Handled::Ignored);
        assert_eq!(value(b.handle(&cc(1, 2, 0))), 0.0);
    }

    #[test]
    fn triggers_fire_on_presses_only_and_osc_carries_values() {
        let mut b = bindings(
            "[[control]]\ncc = 5\ntarget = \"stop\"\n\
             [[control]]\nosc = \"/tr/scale\"\ntarget = \"lr_scale\"\n",
        );
        assert_eq!(value(b.handle(&cc(1, 5, 127))), 1.0);
        assert_eq!(b.handle(&cc(1, 5, 127)), Handled::Ignored);
        assert_eq!(b.handle(&cc(1, 5, 0)), Handled::Ignored);
        assert_eq!(value(b.handle(&cc(1, 5, 100))), 1.0);
        let osc = |addr: &str, value| Input::Osc {
            addr: addr.into(),
            value,
        };
        assert_eq!(value(b.handle(&osc("/sonograd/control/stop", None))), 1.0);
        assert_eq!(
            b.handle(&osc("/sonograd/control/stop", Some(0.0))),
            Handled::Ignored
        );
        assert_eq!(value(b.handle(&osc("/tr/scale", Some(0.5)))), 0.5);
        // Clamped to the range, by name too.
        assert_eq!(
            value(b.handle(&osc("/sonograd/control/lr_scale", Some(50.0)))),
            2.0
        );
        assert_eq!(
            b.handle(&osc("/sonograd/control/lr_scale", Some(f64::NAN))),
            Handled::Ignored
        );
        assert_eq!(
            b.handle(&osc("/sonograd/control/nothing", Some(1.0))),
            Handled::Unknown
        );
    }

    #[test]
    fn positions_invert_values_on_every_curve() {
        let b = bindings(
            "[[control]]\ncc = 1\ntarget = \"lr\"\n\
             [[control]]\ncc = 2\ntarget = \"volume\"\ncurve = \"exp\"\n\
             [[control]]\ncc = 3\ntarget = \"momentum\"\n",
        );
        for def in b.defs() {
            for k in 0..=20 {
                let u = k as f64 / 20.0;
                let back = to_position(def, to_value(def, u));
                assert!((back - u).abs() < 1e-9, "{}: {u} -> {back}", def.name);
            }
        }
    }
}
