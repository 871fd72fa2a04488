//! The controls that act on the sound rather than on training: master volume, mute and solo
//! of routes (see `docs/controls.md`). The dispatcher applies them to every message from the
//! `control` events in the stream, so a replay of a recording does what the person did.

use std::sync::Arc;

use crate::mapping::schema::{Mapping, SynthParam};
use crate::message::{Action, Message};

/// Master volume and the routes muted or soloed.
#[derive(Clone, Debug)]
pub(crate) struct SoundControls {
    volume: f64,
    muted: Vec<Arc<str>>,
    soloed: Vec<Arc<str>>,
    /// Per route of the mapping: whether its messages are held back.
    blocked: Vec<bool>,
}

/// What a `control` event asks of the sound.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum SoundChange {
    /// Nothing for the sound.
    None,
    /// A route muted or soloed.
    Changed,
    /// The master volume.
    Volume,
    /// The next (`1`) or previous (`-1`) mapping of `[controls] mappings`.
    Mapping(i32),
}

impl SoundControls {
    pub(crate) fn new(mapping: &Mapping) -> SoundControls {
        let mut s = SoundControls {
            volume: 1.0,
            muted: Vec::new(),
            soloed: Vec::new(),
            blocked: Vec::new(),
        };
        s.rewire(mapping);
        s
    }

    /// Applies a `control` event's target and value.
    pub(crate) fn apply(&mut self, target: &str, value: f64, mapping: &Mapping) -> SoundChange {
        let on = value >= 0.5;
        let set = |list: &mut Vec<Arc<str>>, route: &str| {
            list.retain(|r| &**r != route);
            if on {
                list.push(Arc::from(route));
            }
        };
        match target.split_once(':') {
            Some(("mute", route)) => set(&mut self.muted, route),
            Some(("solo", route)) => set(&mut self.soloed, route),
            _ => match target {
                "volume" if value.is_finite() => {
                    self.volume = value.clamp(0.0, 1.0);
                    return SoundChange::Volume;
                }
                "mapping_next" => return SoundChange::Mapping(1),
                "mapping_prev" => return SoundChange::Mapping(-1),
                _ => return SoundChange::None,
            },
        }
        self.rewire(mapping);
        SoundChange::Changed
    }

    /// Recomputes which routes are held back, for `mapping` (after a change or a reload).
    pub(crate) fn rewire(&mut self, mapping: &Mapping) {
        self.blocked = mapping
            .routes
            .iter()
            .map(|r| {
                self.muted.contains(&r.name)
                    || (!self.soloed.is_empty() && !self.soloed.contains(&r.name))
            })
            .collect();
    }

    /// Whether `msg` goes out (its route is neither muted nor left out by a solo).
    pub(crate) fn pass(&self, msg: &Message) -> bool {
        !self
            .blocked
            .get(msg.route as usize)
            .copied()
            .unwrap_or(false)
    }

    /// The master volume (0..1).
    pub(crate) fn volume(&self) -> f64 {
        self.volume
    }

    /// `msg` with its synth level scaled by the master volume, for outputs without a gain
    /// of their own; `None` when it goes out as it is.
    pub(crate) fn scaled(&self, msg: &Message) -> Option<Message> {
        if self.volume == 1.0 {
            return None;
        }
        let Action::Synth {
            param: SynthParam::Amp | SynthParam::Trigger,
            ..
        } = msg.action
        else {
            return None;
        };
        let mut m = msg.clone();
        if let Action::Synth { value, .. } = &mut m.action {
            *value *= self.volume;
        }
        Some(m)
    }
}
