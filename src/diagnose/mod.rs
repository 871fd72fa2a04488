//! The detector: watches the event stream and names training problems as `diagnosis`
//! events (exploding and vanishing gradients, the first non-finite value, a loss plateau,
//! oscillation, dead layers).
//!
//! Pure: no clocks, no I/O. [`Detector::observe`] takes each event in stream order and
//! appends the diagnoses it leads to. A step is judged when it is complete, that is when the
//! first event of a later step (or `run_end`) arrives, so a diagnosis carries the step it is
//! about and comes before the events of the next step. Streams are told apart by their
//! `run` and `rank` tags (several ranks on one `listen`), each with its own state. A stream
//! that carries `diagnosis` events of its own (a foreign trainer's, or a recording made with
//! the detector on) is left alone from its first such event on.
//!
//! ```
//! use sonograd::diagnose::{Detector, Thresholds};
//! use sonograd::event::{Event, Layer, Payload, DiagnosisKind};
//! let mut d = Detector::new(Thresholds::default());
//! let mut out = Vec::new();
//! for step in 0..30 {
//!     for (i, value) in [(0, 0.0), (1, 0.5)] {
//!         let layer = Layer::new(format!("fc{}", i + 1), i);
//!         d.observe(&Event::new(step, 0, 0.0, Payload::GradNorm { layer, value }), &mut out);
//!     }
//! }
//! let Payload::Diagnosis { diagnosis, layers, .. } = &out[0].payload else { panic!() };
//! assert_eq!((*diagnosis, out[0].step), (DiagnosisKind::DeadLayer, 19));
//! assert_eq!(layers[0].as_ref(), "fc1");
//! ```

pub mod thresholds;

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use crate::event::{DiagnosisKind, Event, NonFiniteKind, Payload, Quantity};
pub use thresholds::{Thresholds, MAX_WINDOW};

/// Most streams (distinct run/rank tags) diagnosed at once; later ones are not diagnosed.
pub const MAX_STREAMS: usize = 64;
/// Most layers tracked per stream; later ones are ignored.
pub const MAX_LAYERS: usize = 4096;

/// Watches events and emits diagnoses. See the module docs.
#[derive(Debug)]
pub struct Detector {
    cfg: Thresholds,
    streams: Vec<Stream>,
}

impl Detector {
    /// A detector with these thresholds (window lengths are clamped to 1..=[`MAX_WINDOW`]).
    pub fn new(mut cfg: Thresholds) -> Detector {
        for w in [
            &mut cfg.exploding_steps,
            &mut cfg.vanishing_steps,
            &mut cfg.plateau_steps,
            &mut cfg.oscillation_steps,
            &mut cfg.dead_steps,
            &mut cfg.rearm_steps,
        ] {
            *w = (*w).clamp(1, MAX_WINDOW);
        }
        cfg.oscillation_steps = cfg.oscillation_steps.max(2);
        Detector {
            cfg,
            streams: Vec::new(),
        }
    }

    /// The thresholds in use.
    pub fn thresholds(&self) -> &Thresholds {
        &self.cfg
    }

    /// Takes one event into account; appends the diagnoses it completes to `out`.
    pub fn observe(&mut self, event: &Event, out: &mut Vec<Event>) {
        if !self.cfg.enabled {
            return;
        }
        let found = self
            .streams
            .iter()
            .position(|s| s.run == event.run && s.rank == event.rank);
        let index = match found {
            Some(i) => i,
            None if self.streams.len() < MAX_STREAMS => {
                self.streams.push(Stream::new(event, &self.cfg));
                self.streams.len() - 1
            }
            None => return,
        };
        self.streams[index].observe(&self.cfg, event, out);
    }

    /// Judges every stream's unfinished step (end of input without `run_end`).
    pub fn finish(&mut self, out: &mut Vec<Event>) {
        for s in &mut self.streams {
            if !s.external {
                s.end_step(&self.cfg, out);
            }
        }
    }
}

/// An event iterator with the detector's diagnoses inserted, each right before the event
/// that completed it (and the last ones at the end): for offline paths such as `render`.
pub struct WithDiagnoses<I> {
    inner: I,
    detector: Detector,
    pending: VecDeque<Event>,
    held: Option<Event>,
    scratch: Vec<Event>,
    done: bool,
}

impl<I: Iterator<Item = Event>> WithDiagnoses<I> {
    /// Diagnoses `inner` with `detector`.
    pub fn new(inner: I, detector: Detector) -> Self {
        WithDiagnoses {
            inner,
            detector,
            pending: VecDeque::new(),
            held: None,
            scratch: Vec::new(),
            done: false,
        }
    }
}

impl<I: Iterator<Item = Event>> Iterator for WithDiagnoses<I> {
    type Item = Event;

    fn next(&mut self) -> Option<Event> {
        if let Some(d) = self.pending.pop_front() {
            return Some(d);
        }
        if let Some(e) = self.held.take() {
            return Some(e);
        }
        if self.done {
            return None;
        }
        match self.inner.next() {
            Some(e) => {
                self.detector.observe(&e, &mut self.scratch);
                if self.scratch.is_empty() {
                    return Some(e);
                }
                self.pending.extend(self.scratch.drain(..));
                self.held = Some(e);
                self.pending.pop_front()
            }
            None => {
                self.done = true;
                self.detector.finish(&mut self.scratch);
                self.pending.extend(self.scratch.drain(..));
                self.pending.pop_front()
            }
        }
    }
}

/// A fixed-capacity window of the latest values.
#[derive(Debug, Clone)]
struct Window {
    values: VecDeque<f64>,
    cap: usize,
}

impl Window {
    fn new(cap: usize) -> Window {
        Window {
            values: VecDeque::with_capacity(cap.min(1024)),
            cap: cap.max(1),
        }
    }

    fn push(&mut self, v: f64) {
        if self.values.len() == self.cap {
            self.values.pop_front();
        }
        self.values.push_back(v);
    }

    /// The last `n` values, oldest first, if there are that many.
    fn last(&self, n: usize) -> Option<impl Iterator<Item = f64> + Clone + '_> {
        let len = self.values.len();
        (n <= len).then(|| self.values.range(len - n..).copied())
    }

    fn clear(&mut self) {
        self.values.clear();
    }
}

/// Fires once when its condition starts holding, then stays quiet until the condition has
/// been clear for `rearm` steps.
#[derive(Debug, Clone, Copy, Default)]
struct Latch {
    active: bool,
    clear_for: u32,
}

impl Latch {
    fn update(&mut self, holds: bool, rearm: u32) -> bool {
        if holds {
            self.clear_for = 0;
            let fire = !self.active;
            self.active = true;
            return fire;
        }
        if self.active {
            self.clear_for += 1;
            if self.clear_for >= rearm {
                *self = Latch::default();
            }
        }
        false
    }
}

#[derive(Debug, Clone)]
struct LayerTrack {
    name: Arc<str>,
    /// Position from the input: the event's `layer_index`, else the order first seen.
    order: u32,
    /// Norm reported for the step being gathered.
    grad: Option<f64>,
    /// Went non-finite (a `non_finite` event) in the step being gathered.
    non_finite: bool,
    history: Window,
    zero_run: u32,
}

#[derive(Debug, Clone, Copy)]
struct StepMeta {
    step: u64,
    epoch: u32,
    time: f64,
}

#[derive(Debug, Clone, Default)]
struct StepData {
    total: Option<f64>,
    loss: Option<f64>,
    loss_non_finite: Option<NonFiniteKind>,
    /// The first `non_finite` event's quantity and state.
    first_non_finite: Option<(Quantity, NonFiniteKind)>,
}

#[derive(Debug)]
struct Stream {
    run: Option<Arc<str>>,
    rank: Option<u32>,
    external: bool,
    meta: Option<StepMeta>,
    cur: StepData,
    layers: Vec<LayerTrack>,
    by_name: HashMap<Arc<str>, usize>,
    totals: Window,
    losses: Window,
    non_finite_done: bool,
    exploding: Latch,
    vanishing: Latch,
    vanish_run: u32,
    plateau: Latch,
    oscillation: Latch,
}

impl Stream {
    fn new(e: &Event, cfg: &Thresholds) -> Stream {
        let series = (cfg.exploding_steps.max(cfg.oscillation_steps) + 1) as usize;
        Stream {
            run: e.run.clone(),
            rank: e.rank,
            external: false,
            meta: None,
            cur: StepData::default(),
            layers: Vec::new(),
            by_name: HashMap::new(),
            totals: Window::new(series),
            losses: Window::new((2 * cfg.plateau_steps).max(cfg.oscillation_steps + 1) as usize),
            non_finite_done: false,
            exploding: Latch::default(),
            vanishing: Latch::default(),
            vanish_run: 0,
            plateau: Latch::default(),
            oscillation: Latch::default(),
        }
    }

    /// Forgets the run (a new `run_start`); a stream known to carry its own diagnoses stays so.
    fn reset(&mut self) {
        self.meta = None;
        self.cur = StepData::default();
        self.layers.clear();
        self.by_name.clear();
        self.totals.clear();
        self.losses.clear();
        self.non_finite_done = false;
        self.exploding = Latch::default();
        self.vanishing = Latch::default();
        self.vanish_run = 0;
        self.plateau = Latch::default();
        self.oscillation = Latch::default();
    }

    fn layer(&mut self, cfg: &Thresholds, name: &Arc<str>, index: Option<u32>) -> Option<usize> {
        if let Some(&i) = self.by_name.get(name) {
            return Some(i);
        }
        if self.layers.len() >= MAX_LAYERS {
            return None;
        }
        let i = self.layers.len();
        self.layers.push(LayerTrack {
            name: name.clone(),
            order: index.unwrap_or(i as u32),
            grad: None,
            non_finite: false,
            history: Window::new(cfg.exploding_steps as usize + 1),
            zero_run: 0,
        });
        self.by_name.insert(name.clone(), i);
        Some(i)
    }

    fn observe(&mut self, cfg: &Thresholds, e: &Event, out: &mut Vec<Event>) {
        if matches!(e.payload, Payload::Diagnosis { .. }) {
            // The stream diagnoses itself: stay out of its way from now on.
            self.external = true;
        }
        if self.external {
            return;
        }
        match &e.payload {
            Payload::RunStart { .. } => {
                self.end_step(cfg, out);
                self.reset();
                return;
            }
            Payload::RunEnd { .. } => {
                self.end_step(cfg, out);
                return;
            }
            _ => {}
        }
        if self.meta.is_some_and(|m| m.step != e.step) {
            self.end_step(cfg, out);
        }
        self.meta = Some(StepMeta {
            step: e.step,
            epoch: e.epoch,
            time: e.time,
        });
        match &e.payload {
            Payload::GradNorm { layer, value } => {
                if let Some(i) = self.layer(cfg, &layer.name, layer.index) {
                    self.layers[i].grad = Some(*value);
                }
            }
            Payload::TotalNorm { value } => self.cur.total = Some(*value),
            Payload::Loss { value } => self.cur.loss = Some(*value),
            Payload::NonFinite {
                layer,
                quantity,
                state,
            } => {
                self.cur.first_non_finite.get_or_insert((*quantity, *state));
                match layer {
                    Some(l) => {
                        if let Some(i) = self.layer(cfg, &l.name, l.index) {
                            self.layers[i].non_finite = true;
                        }
                    }
                    None => {
                        self.cur.loss_non_finite.get_or_insert(*state);
                    }
                }
            }
            _ => {}
        }
    }

    fn diagnosis(
        &self,
        meta: StepMeta,
        diagnosis: DiagnosisKind,
        layers: Vec<Arc<str>>,
        reason: String,
    ) -> Event {
        let mut e = Event::new(
            meta.step,
            meta.epoch,
            meta.time,
            Payload::Diagnosis {
                diagnosis,
                layers,
                reason,
            },
        );
        e.run = self.run.clone();
        e.rank = self.rank;
        e
    }

    /// Layer positions in order from the input.
    fn ordered(&self) -> Vec<usize> {
        let mut order: Vec<usize> = (0..self.layers.len()).collect();
        order.sort_by_key(|&i| (self.layers[i].order, i));
        order
    }

    /// Judges the gathered step and starts afresh.
    fn end_step(&mut self, cfg: &Thresholds, out: &mut Vec<Event>) {
        let Some(meta) = self.meta.take() else {
            return;
        };
        let cur = std::mem::take(&mut self.cur);
        let order = self.ordered();

        // The first non-finite value, and which layers went first.
        if !self.non_finite_done {
            let layers: Vec<usize> = order
                .iter()
                .copied()
                .filter(|&i| {
                    let l = &self.layers[i];
                    l.non_finite || l.grad.is_some_and(|v| !v.is_finite())
                })
                .collect();
            let loss_bad =
                cur.loss_non_finite.is_some() || cur.loss.is_some_and(|v| !v.is_finite());
            let total_bad = cur.total.is_some_and(|v| !v.is_finite());
            if !layers.is_empty() || loss_bad || total_bad {
                self.non_finite_done = true;
                let state = match cur.first_non_finite {
                    Some((_, NonFiniteKind::Nan)) => "NaN",
                    Some((_, NonFiniteKind::Inf)) => "Inf",
                    None => {
                        let v = layers
                            .iter()
                            .filter_map(|&i| self.layers[i].grad)
                            .chain(cur.loss)
                            .chain(cur.total)
                            .find(|v| !v.is_finite())
                            .unwrap_or(f64::NAN);
                        if v.is_nan() {
                            "NaN"
                        } else {
                            "Inf"
                        }
                    }
                };
                let what = match cur.first_non_finite {
                    Some((Quantity::Weight, _)) => "weight",
                    Some((Quantity::Loss, _)) => "loss",
                    _ if layers.is_empty() && loss_bad => "loss",
                    _ if layers.is_empty() => "total gradient norm",
                    _ => "gradient",
                };
                let names: Vec<Arc<str>> = layers
                    .iter()
                    .map(|&i| self.layers[i].name.clone())
                    .collect();
                let reason = if names.is_empty() {
                    format!("first non-finite value: {what} is {state}")
                } else {
                    format!(
                        "first non-finite value: {} {what} is {state}",
                        names.join(", ")
                    )
                };
                out.push(self.diagnosis(meta, DiagnosisKind::NonFinite, names, reason));
            }
        }

        // Dead layers: a norm of exactly zero, step after step.
        let mut dead = Vec::new();
        for &i in &order {
            let l = &mut self.layers[i];
            match l.grad {
                Some(0.0) => {
                    l.zero_run = l.zero_run.saturating_add(1);
                    if l.zero_run == cfg.dead_steps {
                        dead.push(l.name.clone());
                    }
                }
                Some(_) => l.zero_run = 0,
                None => {}
            }
        }
        if !dead.is_empty() {
            let reason = format!(
                "gradient norm exactly 0 for {} steps (no signal reaches {})",
                cfg.dead_steps,
                if dead.len() == 1 { "it" } else { "them" }
            );
            out.push(self.diagnosis(meta, DiagnosisKind::DeadLayer, dead, reason));
        }

        // Vanishing: early layers' norms orders of magnitude below the last layer's.
        let reported: Vec<usize> = order
            .iter()
            .copied()
            .filter(|&i| self.layers[i].grad.is_some_and(|v| v.is_finite()))
            .collect();
        let mut vanishing = Vec::new();
        let mut worst = f64::INFINITY;
        if let (Some(&first), Some(&last)) = (reported.first(), reported.last()) {
            let top = self.layers[last].grad.unwrap_or(0.0);
            let low = self.layers[first].grad.unwrap_or(0.0);
            if first != last && top > 0.0 && low > 0.0 && low < cfg.vanishing_ratio * top {
                for &i in &reported[..reported.len() - 1] {
                    let v = self.layers[i].grad.unwrap_or(0.0);
                    if v > 0.0 && v < cfg.vanishing_ratio * top {
                        vanishing.push(i);
                        worst = worst.min(v / top);
                    }
                }
            }
        }
        self.vanish_run = if vanishing.is_empty() {
            0
        } else {
            self.vanish_run.saturating_add(1)
        };
        let holds = self.vanish_run >= cfg.vanishing_steps;
        if self.vanishing.update(holds, cfg.rearm_steps) {
            let last = *reported.last().expect("vanishing needs two layers");
            let names: Vec<Arc<str>> = vanishing
                .iter()
                .map(|&i| self.layers[i].name.clone())
                .collect();
            let reason = format!(
                "gradient norm of {} down to {} of {}'s for {} steps",
                names.join(", "),
                short(worst),
                self.layers[last].name,
                cfg.vanishing_steps
            );
            out.push(self.diagnosis(meta, DiagnosisKind::Vanishing, names, reason));
        }

        // The total norm: as sent, else from the layers'.
        let total = cur.total.or_else(|| {
            (!reported.is_empty()).then(|| {
                reported
                    .iter()
                    .map(|&i| self.layers[i].grad.unwrap_or(0.0).powi(2))
                    .sum::<f64>()
                    .sqrt()
            })
        });
        for &i in &order {
            let l = &mut self.layers[i];
            if let Some(v) = l.grad.filter(|v| v.is_finite()) {
                l.history.push(v);
            }
            l.grad = None;
            l.non_finite = false;
        }
        if let Some(t) = total.filter(|t| t.is_finite()) {
            self.totals.push(t);
        }
        if let Some(loss) = cur.loss.filter(|l| l.is_finite()) {
            self.losses.push(loss);
        }

        // Exploding: sustained growth of the total norm.
        let n = cfg.exploding_steps as usize;
        let mut explosion = None;
        if let Some(w) = self.totals.last(n + 1) {
            let w: Vec<f64> = w.collect();
            let (a, b) = (w[0], w[n]);
            let ups = w.windows(2).filter(|p| p[1] > p[0]).count();
            let peak = w.iter().all(|&v| v <= b);
            if a > 0.0 && b / a >= cfg.exploding_factor && ups + 1 >= n && peak {
                explosion = Some((a, b));
            }
        }
        if self.exploding.update(explosion.is_some(), cfg.rearm_steps) {
            let (a, b) = explosion.expect("fired on a growth");
            let names: Vec<Arc<str>> = order
                .iter()
                .filter_map(|&i| {
                    let l = &self.layers[i];
                    let mut h = l.history.last(n + 1)?;
                    let first = h.next()?;
                    let last = h.last()?;
                    (first > 0.0 && last / first >= cfg.exploding_factor).then(|| l.name.clone())
                })
                .collect();
            let reason = format!(
                "total norm grew {}x in {n} steps ({} -> {})",
                short(b / a),
                short(a),
                short(b)
            );
            out.push(self.diagnosis(meta, DiagnosisKind::Exploding, names, reason));
        }

        // Oscillation: the total norm or the loss flipping up and down around a level.
        let m = cfg.oscillation_steps as usize;
        let found = [("total norm", &self.totals), ("loss", &self.losses)]
            .into_iter()
            .find_map(|(what, w)| {
                let (flips, factor) = oscillation(w.last(m + 1)?)?;
                let enough = flips as f64 >= cfg.oscillation_flips * (m - 1) as f64;
                (enough && factor >= cfg.oscillation_factor).then_some((what, flips, factor))
            });
        if self.oscillation.update(found.is_some(), cfg.rearm_steps) {
            let (what, flips, factor) = found.expect("fired on an oscillation");
            let reason = format!(
                "{what} reversed direction on {flips} of {} steps, by {}x a step",
                m - 1,
                short(factor)
            );
            out.push(self.diagnosis(meta, DiagnosisKind::Oscillation, Vec::new(), reason));
        }

        // Plateau: the loss stopped moving.
        let p = cfg.plateau_steps as usize;
        let mut plateau = None;
        if let Some(w) = self.losses.last(2 * p) {
            let w: Vec<f64> = w.collect();
            let before = w[..p].iter().sum::<f64>() / p as f64;
            let now = w[p..].iter().sum::<f64>() / p as f64;
            if before.abs() > 0.0 && (before - now).abs() < cfg.plateau_tolerance * before.abs() {
                plateau = Some((before, now));
            }
        }
        if self.plateau.update(plateau.is_some(), cfg.rearm_steps) {
            let (before, now) = plateau.expect("fired on a plateau");
            let reason = format!(
                "mean loss {} over the last {p} steps, {} over the {p} before (less than {}% change)",
                short(now),
                short(before),
                short(cfg.plateau_tolerance * 100.0)
            );
            out.push(self.diagnosis(meta, DiagnosisKind::Plateau, Vec::new(), reason));
        }
    }
}

/// Sign flips of the step-to-step changes and the mean change factor of a positive series.
fn oscillation(values: impl Iterator<Item = f64> + Clone) -> Option<(usize, f64)> {
    let mut logs = Vec::new();
    for v in values {
        if !(v > 0.0 && v.is_finite()) {
            return None;
        }
        logs.push(v.ln());
    }
    let diffs: Vec<f64> = logs.windows(2).map(|p| p[1] - p[0]).collect();
    if diffs.len() < 2 {
        return None;
    }
    let flips = diffs.windows(2).filter(|d| d[0] * d[1] < 0.0).count();
    let mean = diffs.iter().map(|d| d.abs()).sum::<f64>() / diffs.len() as f64;
    Some((flips, mean.exp()))
}

/// A number in a few characters: `0.0123`, `4.2e-7`, `1.3e5`.
pub fn short(v: f64) -> String {
    let a = v.abs();
    if v == 0.0 {
        "0".into()
    } else if (1e-3..1e4).contains(&a) {
        let decimals = (3 - a.log10().floor() as i32).clamp(0, 6) as usize;
        let s = format!("{v:.decimals$}");
        if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            s
        }
    } else if v.is_finite() {
        format!("{v:.1e}")
    } else {
        format!("{v}")
    }
}

#[cfg(test)]
mod tests;
