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
    /// Master volume, or a route muted or soloed.
    Changed,
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
                "volume" if value.is_finite() => self.volume = value.clamp(0.0, 1.0),
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

    /// Whether `msg` goes out; scales the synth's levels by the master volume.
    pub(crate) fn pass(&self, msg: &mut Message) -> bool {
        if self
            .blocked
            .get(msg.route as usize)
            .copied()
            .unwrap_or(false)
        {
            return false;
        }
        if self.volume != 1.0 {
            if let Action::Synth {
                param: SynthParam::Amp | SynthParam::Trigger,
                value,
                ..
            } = &mut msg.action
            {
                *value *= self.volume;
            }
        }
        true
    }
}
