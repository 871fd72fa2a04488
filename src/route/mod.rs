//! The router: events in, [`Message`]s out. Pure (no I/O) and deterministic: the caller
//! supplies the clock, so an offline render with a step clock gives the same messages every
//! time. Routing one event allocates nothing once every layer has been seen and `out` has
//! grown to its working size.
//!
//! ```
//! use sonograd::event::{Event, Layer, Payload};
//! use sonograd::mapping;
//! use sonograd::route::Router;
//! let m = mapping::parse_str(r#"
//!     [outputs.mon]
//!     kind = "monitor"
//!     [[route]]
//!     output = "mon"
//!     match = { metric = "loss" }
//!     transform = { domain = [0, 4] }
//!     to = { param = "amp" }
//! "#, "inline.toml").unwrap();
//! let mut router = Router::new(&m);
//! let mut out = Vec::new();
//! router.route(0.0, &Event::new(1, 0, 0.0, Payload::Loss { value: 1.0 }), &mut out);
//! assert_eq!(out.len(), 1);
//! assert_eq!(out[0].level, 0.25);
//! ```

pub mod clock;
pub(crate) mod glob;
pub(crate) mod layers;
pub(crate) mod rate;
pub mod scale;
pub(crate) mod target;
pub mod transform;

use crate::event::{Event, Layer, NonFiniteKind, Payload};
use crate::mapping::schema::{Mapping, Metric, OutputKind, Route, RouteId};
use crate::message::{Action, LayerRef, Message};
use layers::LayerInterner;
use rate::Pending;
use target::OutputInfo;
use transform::TransformState;

/// Per-layer routes ignore layers at or beyond this index (guards memory against a bad index).
pub const MAX_LAYERS: u32 = 4096;

/// State of one route for one layer (or for all layers of a route that is not per-layer).
#[derive(Clone, Debug)]
struct Slot {
    transform: TransformState,
    pending: Option<Pending>,
    last_sent_at: f64,
    last_key: Option<u64>,
}

impl Slot {
    fn new(route: &Route) -> Slot {
        Slot {
            transform: TransformState::new(&route.transform),
            pending: None,
            last_sent_at: f64::NEG_INFINITY,
            last_key: None,
        }
    }
}

/// Runtime of one route.
#[derive(Clone, Debug)]
struct RouteState {
    def: Route,
    out: OutputInfo,
    alarm: bool,
    slots: Vec<Slot>,
    /// Per layer index: 0 not yet checked, 1 matches, 2 does not.
    layer_match: Vec<u8>,
}

/// Events in, messages out. See the module docs.
#[derive(Clone, Debug)]
pub struct Router {
    routes: Vec<RouteState>,
    by_metric: [Vec<u32>; Metric::ALL.len()],
    layers: LayerInterner,
}

impl Router {
    /// A router for a validated mapping.
    pub fn new(mapping: &Mapping) -> Router {
        let mut router = Router {
            routes: Vec::new(),
            by_metric: Default::default(),
            layers: LayerInterner::new(),
        };
        router.install(mapping, Vec::new());
        router
    }

    fn install(&mut self, mapping: &Mapping, mut keep: Vec<Option<RouteState>>) {
        self.routes.clear();
        for list in &mut self.by_metric {
            list.clear();
        }
        for (i, def) in mapping.routes.iter().enumerate() {
            let out = match &mapping.outputs[def.output as usize].kind {
                OutputKind::Midi { channel, .. } => OutputInfo {
                    channel: *channel,
                    voices: 1,
                },
                OutputKind::Synth { voices, .. } => OutputInfo {
                    channel: 1,
                    voices: *voices,
                },
                _ => OutputInfo {
                    channel: 1,
                    voices: 1,
                },
            };
            let mut state = keep
                .get_mut(i)
                .and_then(Option::take)
                .unwrap_or_else(|| RouteState {
                    def: def.clone(),
                    out,
                    alarm: def.alarm
                        || matches!(def.matcher.metric, Metric::NonFinite | Metric::Diagnosis),
                    slots: if def.per_layer {
                        Vec::new()
                    } else {
                        vec![Slot::new(def)]
                    },
                    layer_match: Vec::new(),
                });
            // A kept route may drive an output whose settings (channel, voices) changed.
            state.out = out;
            self.by_metric[def.matcher.metric.index()].push(i as u32);
            self.routes.push(state);
        }
    }

    /// Switches to a new mapping, keeping layer indices and the state (smoothing, learned
    /// domains, rate windows) of every route whose name and definition are unchanged.
    ///
    /// Returns the ids, in the *old* mapping, of routes that changed or disappeared: outputs
    /// should end the notes those routes left sounding.
    pub fn reload(&mut self, mapping: &Mapping) -> Vec<RouteId> {
        let mut old: Vec<Option<RouteState>> = self.routes.drain(..).map(Some).collect();
        let mut keep: Vec<Option<RouteState>> = Vec::with_capacity(mapping.routes.len());
        for def in &mapping.routes {
            let found = old
                .iter_mut()
                .find(|s| s.as_ref().is_some_and(|s| s.def == *def))
                .and_then(Option::take);
            keep.push(found);
        }
        let changed: Vec<RouteId> = old
            .iter()
            .enumerate()
            .filter(|(_, s)| s.is_some())
            .map(|(i, _)| i as RouteId)
            .collect();
        // Kept states come from other positions: the output index may differ even when equal.
        self.install(mapping, keep);
        changed
    }

    /// Routes one event at time `now` (seconds on the caller's clock), appending messages to
    /// `out`. Non-finite values of ordinary metrics produce nothing (non-finite alarms come as
    /// `non_finite` events); run starts declare the layer order.
    pub fn route(&mut self, now: f64, event: &Event, out: &mut Vec<Message>) {
        let Some(metric) = Metric::of(&event.payload) else {
            if let Payload::RunStart { info } = &event.payload {
                self.layers.declare(&info.layers);
            }
            return;
        };
        let (raw, level_override) = match &event.payload {
            Payload::NonFinite { state, .. } => {
                let raw = match state {
                    NonFiniteKind::Nan => f64::NAN,
                    NonFiniteKind::Inf => f64::INFINITY,
                };
                (raw, Some(1.0))
            }
            Payload::EpochEnd => (event.epoch as f64, None),
            // A diagnosis strikes at full level; its raw value is its layer count.
            Payload::Diagnosis { layers, .. } => (layers.len() as f64, Some(1.0)),
            p => (p.value().unwrap_or(f64::NAN), None),
        };
        let (diagnosis, diagnosed) = match &event.payload {
            Payload::Diagnosis {
                diagnosis, layers, ..
            } => (Some(*diagnosis), layers.as_slice()),
            _ => (None, &[][..]),
        };
        // A diagnosis is placed (per-layer voice, pan) by the first layer it names.
        let layer = match diagnosed.first() {
            Some(name) => {
                let l = Layer {
                    name: name.clone(),
                    index: None,
                };
                Some(LayerRef {
                    index: self.layers.index(&l),
                    name: l.name,
                })
            }
            None => event.payload.layer().map(|l| LayerRef {
                index: self.layers.index(l),
                name: l.name.clone(),
            }),
        };
        let layers = self.layers.count();
        let ids = &self.by_metric[metric.index()];
        for &id in ids {
            let rs = &mut self.routes[id as usize];
            let m = &rs.def.matcher;
            if let Some(kind) = m.diagnosis {
                if diagnosis != Some(kind) {
                    continue;
                }
            }
            if let (Some(glob), Some(_)) = (&m.layer, diagnosis) {
                // A diagnosis matches when any of its layers does.
                if !diagnosed.iter().any(|name| glob.matches(name)) {
                    continue;
                }
            } else if let Some(glob) = &m.layer {
                let Some(l) = &layer else { continue };
                let i = l.index as usize;
                if i >= MAX_LAYERS as usize {
                    if !glob.matches(&l.name) {
                        continue;
                    }
                } else {
                    if rs.layer_match.len() <= i {
                        rs.layer_match.resize(i + 1, 0);
                    }
                    if rs.layer_match[i] == 0 {
                        rs.layer_match[i] = if glob.matches(&l.name) { 1 } else { 2 };
                    }
                    if rs.layer_match[i] != 1 {
                        continue;
                    }
                }
            }
            if let Some(name_glob) = &m.name {
                match &event.payload {
                    Payload::Eval { name, .. } if name_glob.matches(name) => {}
                    _ => continue,
                }
            }
            if let Some(cond) = &m.when {
                if !cond.holds(raw) {
                    continue;
                }
            }
            let slot_index = match (&layer, rs.def.per_layer) {
                (_, false) => 0,
                (Some(l), true) if l.index < MAX_LAYERS => {
                    let i = l.index as usize;
                    while rs.slots.len() <= i {
                        rs.slots.push(Slot::new(&rs.def));
                    }
                    i
                }
                (Some(_), true) => continue,
                (None, true) => {
                    if rs.slots.is_empty() {
                        rs.slots.push(Slot::new(&rs.def));
                    }
                    0
                }
            };
            let slot = &mut rs.slots[slot_index];
            let level = match level_override {
                Some(l) => l,
                None => match slot.transform.apply(&rs.def.transform, raw) {
                    Some(l) => l,
                    None => continue,
                },
            };
            let rate = if rs.alarm { None } else { rs.def.rate };
            let per_layer_index = if rs.def.per_layer {
                layer.as_ref().map(|l| l.index)
            } else {
                None
            };
            // Without a rate limit, or with its window open and nothing held back, the value
            // goes out now; otherwise it is merged into what waits for the window.
            let send_now = match rate {
                None => true,
                Some(rate) => {
                    let slot = &mut rs.slots[slot_index];
                    let open = window_passed(now, slot.last_sent_at, rate.max_hz);
                    match (&mut slot.pending, open) {
                        (None, true) => true,
                        (Some(p), _) => {
                            p.merge(
                                rate.coalesce,
                                level,
                                raw,
                                event.step,
                                event.epoch,
                                layer.clone(),
                            );
                            if open {
                                flush(rs, id, slot_index, now, metric, layers, out);
                            }
                            false
                        }
                        (None, false) => {
                            slot.pending = Some(Pending {
                                level,
                                raw,
                                count: 1,
                                step: event.step,
                                epoch: event.epoch,
                                layer: layer.clone(),
                            });
                            false
                        }
                    }
                }
            };
            if send_now {
                emit(
                    rs,
                    id,
                    slot_index,
                    now,
                    event.step,
                    event.epoch,
                    metric,
                    &layer,
                    raw,
                    level,
                    per_layer_index,
                    layers,
                    out,
                );
            }
        }
    }

    /// Releases merged values whose rate window has passed by `now`.
    pub fn tick(&mut self, now: f64, out: &mut Vec<Message>) {
        for id in 0..self.routes.len() {
            let rs = &self.routes[id];
            let Some(rate) = rs.def.rate else { continue };
            let metric = rs.def.matcher.metric;
            for s in 0..rs.slots.len() {
                let slot = &self.routes[id].slots[s];
                if slot.pending.is_some() && window_passed(now, slot.last_sent_at, rate.max_hz) {
                    flush(
                        &mut self.routes[id],
                        id as u32,
                        s,
                        now,
                        metric,
                        self.layers.count(),
                        out,
                    );
                }
            }
        }
    }

    /// Releases every merged value (end of the run).
    pub fn finish(&mut self, now: f64, out: &mut Vec<Message>) {
        let layers = self.layers.count();
        for id in 0..self.routes.len() {
            let metric = self.routes[id].def.matcher.metric;
            for s in 0..self.routes[id].slots.len() {
                if self.routes[id].slots[s].pending.is_some() {
                    flush(&mut self.routes[id], id as u32, s, now, metric, layers, out);
                }
            }
        }
    }
}

fn flush(
    rs: &mut RouteState,
    id: u32,
    s: usize,
    now: f64,
    metric: Metric,
    layers: u32,
    out: &mut Vec<Message>,
) {
    let Some(p) = rs.slots[s].pending.take() else {
        return;
    };
    let per_layer_index = if rs.def.per_layer {
        p.layer.as_ref().map(|l| l.index)
    } else {
        None
    };
    emit(
        rs,
        id,
        s,
        now,
        p.step,
        p.epoch,
        metric,
        &p.layer,
        p.raw,
        p.level,
        per_layer_index,
        layers,
        out,
    );
}

/// A key that is equal for messages that would sound the same (for `send_on_change`).
fn change_key(action: &Action) -> u64 {
    match *action {
        Action::Synth { voice, value, .. } => value.to_bits() ^ (voice as u64).rotate_left(53),
        Action::Note {
            channel,
            note,
            velocity,
            ..
        } => (channel as u64) << 16 | (note as u64) << 8 | velocity as u64,
        Action::Cc { channel, value, .. } => (channel as u64) << 16 | value as u64,
        Action::PitchBend { channel, value } => (channel as u64) << 16 | value as u64,
        Action::Program { channel, program } => (channel as u64) << 16 | program as u64,
        Action::Osc { value } => value.to_bits(),
    }
}

#[allow(clippy::too_many_arguments)]
fn emit(
    rs: &mut RouteState,
    id: u32,
    s: usize,
    now: f64,
    step: u64,
    epoch: u32,
    metric: Metric,
    layer: &Option<LayerRef>,
    raw: f64,
    level: f64,
    per_layer_index: Option<u32>,
    layers: u32,
    out: &mut Vec<Message>,
) {
    let action = target::action(&rs.def, rs.out, per_layer_index, layers, level);
    let slot = &mut rs.slots[s];
    if rs.def.send_on_change && !rs.alarm {
        let key = change_key(&action);
        if slot.last_key == Some(key) {
            return;
        }
        slot.last_key = Some(key);
    }
    slot.last_sent_at = now;
    out.push(Message {
        time: now,
        step,
        epoch,
        route: id,
        output: rs.def.output,
        metric,
        layer: layer.clone(),
        raw,
        level,
        alarm: rs.alarm,
        action,
    });
}

/// Whether a rate window of `1 / max_hz` seconds has passed since `last`. A nanosecond of
/// slack keeps clocks built from sums of step times (50 ms steps at 20 Hz) from missing a
/// window by a rounding error.
fn window_passed(now: f64, last: f64, max_hz: f64) -> bool {
    now - last >= 1.0 / max_hz - 1e-9
}

#[cfg(test)]
mod window_tests {
    use super::window_passed;

    #[test]
    fn a_window_built_from_summed_steps_is_not_missed_by_rounding() {
        // Step times accumulated the way an offline render does: 0.05 added up.
        let (mut last, mut now) = (0.0f64, 0.0f64);
        for _ in 0..4 {
            now += 0.05;
        }
        for _ in 0..3 {
            last += 0.05;
        }
        assert!(
            now - last < 0.05,
            "the sums really do round below 50 ms here"
        );
        assert!(window_passed(now, last, 20.0));
        assert!(!window_passed(0.049, 0.0, 20.0));
    }
}
