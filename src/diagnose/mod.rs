//! The detector: watches the event stream and names training problems as `diagnosis`
//! events (exploding and vanishing gradients, the first non-finite value, a loss plateau,
//! oscillation, dead layers, loss spikes, stalls).
//!
//! Every rule judges a step against the run's own history (running medians and median
//! absolute deviations, not raw batch values) and has hysteresis: it fires when its
//! condition starts holding and re-arms only once a looser condition has failed for a while,
//! so mini-batch noise on a healthy run stays silent.
//!
//! Pure: no I/O, and no clock of its own: live callers pass the arrival time
//! ([`Detector::observe_live`], [`Detector::tick`]) for the `stall` rule, which never fires
//! on a replayed stream. [`Detector::observe`] takes each event in stream order and
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

pub(crate) mod thresholds;

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Instant;

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
            &mut cfg.history_steps,
            &mut cfg.exploding_steps,
            &mut cfg.vanishing_steps,
            &mut cfg.plateau_steps,
            &mut cfg.oscillation_steps,
            &mut cfg.dead_steps,
            &mut cfg.rearm_steps,
        ] {
            *w = (*w).clamp(1, MAX_WINDOW);
        }
        cfg.oscillation_steps = cfg.oscillation_steps.max(4);
        cfg.plateau_steps = cfg.plateau_steps.max(3);
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
        if let Some(i) = self.stream(event) {
            self.streams[i].observe(&self.cfg, event, out);
        }
    }

    /// As [`Detector::observe`] for a live stream, noting that the event arrived at `now`
    /// (the `stall` rule's clock).
    pub fn observe_live(&mut self, event: &Event, now: Instant, out: &mut Vec<Event>) {
        if let Some(i) = self.stream(event) {
            self.streams[i].observe(&self.cfg, event, out);
            self.streams[i].arrived(event, now);
        }
    }

    /// The wall clock moved on without events: says `stall` for every live stream that had
    /// been stepping and has sent no new step for `stall_seconds` (once per silence).
    pub fn tick(&mut self, now: Instant, out: &mut Vec<Event>) {
        if !self.cfg.enabled {
            return;
        }
        for s in &mut self.streams {
            s.tick(&self.cfg, now, out);
        }
    }

    /// The stream `event` belongs to (made on its first event), if it is diagnosed.
    fn stream(&mut self, event: &Event) -> Option<usize> {
        if !self.cfg.enabled {
            return None;
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
            None => return None,
        };
        Some(index)
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
    /// How many values were dropped off the front since the last `clear`: the position of
    /// `values[0]` in the series, for [`Sorted`].
    front: u64,
    /// Bumped by every `clear`, so that a [`Sorted`] mirror knows to start again.
    era: u32,
}

impl Window {
    fn new(cap: usize) -> Window {
        Window {
            values: VecDeque::with_capacity(cap.min(1024)),
            cap: cap.max(1),
            front: 0,
            era: 0,
        }
    }

    fn push(&mut self, v: f64) {
        if self.values.len() == self.cap {
            self.values.pop_front();
            self.front += 1;
        }
        self.values.push_back(v);
    }

    fn len(&self) -> usize {
        self.values.len()
    }

    /// Values `from..to` counted from the oldest kept.
    fn range(&self, from: usize, to: usize) -> impl Iterator<Item = f64> + Clone + '_ {
        self.values.range(from..to).copied()
    }

    /// The last `n` values, oldest first, if there are that many.
    fn last(&self, n: usize) -> Option<impl Iterator<Item = f64> + Clone + '_> {
        let len = self.values.len();
        (n <= len).then(|| self.values.range(len - n..).copied())
    }

    fn back(&self) -> Option<f64> {
        self.values.back().copied()
    }

    fn clear(&mut self) {
        self.values.clear();
        self.front = 0;
        self.era = self.era.wrapping_add(1);
    }
}

/// A sorted copy of a sliding range of a [`Window`], kept up to date step by step: as the
/// range slides, the values entering are inserted and those leaving removed (a binary search
/// and a short move each), instead of selecting medians afresh from the whole range every
/// step. The window must hold no NaN (the rules' windows hold finite values only).
#[derive(Debug, Clone, Default)]
struct Sorted {
    era: u32,
    /// The range mirrored, as positions in the series (see [`Window::front`]).
    lo: u64,
    hi: u64,
    /// The range's values oldest first, and sorted.
    order: VecDeque<f64>,
    sorted: Vec<f64>,
    valid: bool,
}

impl Sorted {
    /// The values `from..to` of `w` (counted from the oldest kept), sorted.
    fn sync(&mut self, w: &Window, from: usize, to: usize) -> &[f64] {
        let (lo, hi) = (w.front + from as u64, w.front + to as u64);
        if !(self.valid && self.era == w.era && self.lo <= lo && lo <= self.hi && self.hi <= hi) {
            self.order.clear();
            self.order.extend(w.range(from, to));
            self.sorted.clear();
            self.sorted.extend(w.range(from, to));
            self.sorted.sort_unstable_by(f64::total_cmp);
            (self.era, self.lo, self.hi, self.valid) = (w.era, lo, hi, true);
            return &self.sorted;
        }
        for at in self.hi..hi {
            let v = w.values[(at - w.front) as usize];
            self.order.push_back(v);
            let i = self.sorted.partition_point(|x| x.total_cmp(&v).is_lt());
            self.sorted.insert(i, v);
        }
        self.hi = hi;
        while self.lo < lo {
            let v = self.order.pop_front().expect("the range holds its values");
            let i = self.sorted.partition_point(|x| x.total_cmp(&v).is_lt());
            self.sorted.remove(i);
            self.lo += 1;
        }
        &self.sorted
    }
}

/// [`median_mad`] of sorted values (no NaN), without selecting: the median from the middle,
/// and the median absolute deviation by merging the distances below and above it, which are
/// sorted already.
fn sorted_median_mad(s: &[f64]) -> Option<(f64, f64)> {
    let n = s.len();
    if n == 0 {
        return None;
    }
    let mid = n / 2;
    let m = if n % 2 == 1 {
        s[mid]
    } else {
        (s[mid - 1] + s[mid]) / 2.0
    };
    // Distances |v − m| rise walking down from the split and walking up from it (rounding is
    // monotone): take the smallest of the two fronts, mid + 1 times.
    let split = s.partition_point(|x| *x < m);
    let (mut down, mut up) = (split, split);
    let (mut lower, mut upper) = (0.0, 0.0);
    for _ in 0..=mid {
        let a = (down > 0).then(|| (s[down - 1] - m).abs());
        let b = (up < n).then(|| (s[up] - m).abs());
        let d = match (a, b) {
            (Some(a), Some(b)) if a <= b => {
                down -= 1;
                a
            }
            (Some(a), None) => {
                down -= 1;
                a
            }
            (_, Some(b)) => {
                up += 1;
                b
            }
            (None, None) => unreachable!("mid + 1 <= n distances"),
        };
        (lower, upper) = (upper, d);
    }
    let mad = if n % 2 == 1 {
        upper
    } else {
        (lower + upper) / 2.0
    };
    Some((m, mad))
}

/// [`quantile`] of sorted values.
fn sorted_quantile(s: &[f64], q: f64) -> Option<f64> {
    let k = ((s.len().checked_sub(1)?) as f64 * q).round() as usize;
    s.get(k).copied()
}

/// Median and median absolute deviation of `values` (`scratch` is reused).
fn median_mad(values: impl Iterator<Item = f64>, scratch: &mut Vec<f64>) -> Option<(f64, f64)> {
    scratch.clear();
    scratch.extend(values);
    if scratch.is_empty() {
        return None;
    }
    let m = median_in_place(scratch);
    for v in scratch.iter_mut() {
        *v = (*v - m).abs();
    }
    let mad = median_in_place(scratch);
    Some((m, mad))
}

fn median_in_place(v: &mut [f64]) -> f64 {
    let mid = v.len() / 2;
    let (_, &mut upper, _) = v.select_nth_unstable_by(mid, f64::total_cmp);
    if v.len() % 2 == 1 {
        upper
    } else {
        let lower = v[..mid].iter().copied().fold(f64::NEG_INFINITY, f64::max);
        (lower + upper) / 2.0
    }
}

/// Scale factor from a median absolute deviation to a standard deviation (normal data).
const MAD_TO_SD: f64 = 1.4826;

/// Fewest steps of history before the spread-based rules (exploding's spread test, loss
/// spikes) judge anything.
const MIN_HISTORY: usize = 20;

/// Exploding: the growth must also be this many robust standard deviations of the run's
/// own log total norm (once [`MIN_HISTORY`] steps are known).
const EXPLODING_SPREAD: f64 = 4.0;

/// Loss spike: the jump must be at least this fraction of the run's starting loss.
const SPIKE_JUMP: f64 = 0.25;

/// The `q` quantile (0..=1, nearest rank) of `values` (`scratch` is reused). The rules use
/// [`sorted_quantile`]; this is what the tests hold it to.
#[cfg(test)]
fn quantile(values: impl Iterator<Item = f64>, q: f64, scratch: &mut Vec<f64>) -> Option<f64> {
    scratch.clear();
    scratch.extend(values);
    if scratch.is_empty() {
        return None;
    }
    let k = ((scratch.len() - 1) as f64 * q).round() as usize;
    let (_, &mut v, _) = scratch.select_nth_unstable_by(k, f64::total_cmp);
    Some(v)
}

/// Fires when its condition starts holding, then stays quiet while it goes on holding (a
/// looser `stay` test: the hysteresis band), and re-arms once `stay` has failed for
/// `rearm` steps in a row.
#[derive(Debug, Clone, Copy, Default)]
struct Latch {
    active: bool,
    clear_for: u32,
}

impl Latch {
    fn update(&mut self, enter: bool, stay: bool, rearm: u32) -> bool {
        if !self.active {
            if enter {
                *self = Latch {
                    active: true,
                    clear_for: 0,
                };
                return true;
            }
            return false;
        }
        if stay || enter {
            self.clear_for = 0;
        } else {
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
    /// ln of its finite positive norms, one a step (aligned with the total norm's).
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
    /// A layer-less gradient alarm (the total norm's).
    total_non_finite: bool,
    /// The first `non_finite` event's quantity and state.
    first_non_finite: Option<(Quantity, NonFiniteKind)>,
}

/// Live streams only: when steps arrived, for the `stall` rule.
#[derive(Debug, Clone, Copy, Default)]
struct Pace {
    /// Arrival of the latest new step, and that step with its event time.
    last: Option<(Instant, u64, f64)>,
    /// Distinct steps seen arriving.
    steps: u32,
    /// The run ended (`run_end`): silence is expected.
    ended: bool,
    /// A stall was said and no step came since.
    stalled: bool,
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
    /// ln of the total norm, one a step.
    totals: Window,
    /// ln of the positive finite losses, one a step.
    log_losses: Window,
    losses: Window,
    /// Median of the first finite losses: the run's starting level.
    start_losses: Vec<f64>,
    start_loss: Option<f64>,
    scratch: Vec<f64>,
    /// Sorted mirrors of the ranges the rules take medians of, every step: the totals
    /// before the newest `exploding_steps`, the losses before the newest two, and the
    /// plateau's oldest and newest thirds.
    explode_base: Sorted,
    spike_prior: Sorted,
    plateau_old: Sorted,
    plateau_new: Sorted,
    non_finite_done: bool,
    exploding: Latch,
    /// Median of ln total norm before the explosion being heard.
    exploding_base: f64,
    vanishing: Latch,
    vanish_run: u32,
    plateau: Latch,
    oscillation: Latch,
    oscillation_run: u32,
    spike: Latch,
    pace: Pace,
}

/// Steps whose losses make up the run's starting level.
const START_STEPS: usize = 10;

impl Stream {
    fn new(e: &Event, cfg: &Thresholds) -> Stream {
        let series = (cfg.history_steps + cfg.exploding_steps)
            .max(cfg.oscillation_steps)
            .max(cfg.plateau_steps) as usize
            + 1;
        Stream {
            run: e.run.clone(),
            rank: e.rank,
            external: false,
            meta: None,
            cur: StepData::default(),
            layers: Vec::new(),
            by_name: HashMap::new(),
            totals: Window::new(series),
            log_losses: Window::new(series),
            losses: Window::new(series),
            start_losses: Vec::with_capacity(START_STEPS),
            start_loss: None,
            scratch: Vec::with_capacity(series),
            explode_base: Sorted::default(),
            spike_prior: Sorted::default(),
            plateau_old: Sorted::default(),
            plateau_new: Sorted::default(),
            non_finite_done: false,
            exploding: Latch::default(),
            exploding_base: 0.0,
            vanishing: Latch::default(),
            vanish_run: 0,
            plateau: Latch::default(),
            oscillation: Latch::default(),
            oscillation_run: 0,
            spike: Latch::default(),
            pace: Pace::default(),
        }
    }

    /// Forgets the run (a new `run_start`); a stream known to carry its own diagnoses stays so.
    fn reset(&mut self) {
        self.meta = None;
        self.cur = StepData::default();
        self.layers.clear();
        self.by_name.clear();
        self.totals.clear();
        self.log_losses.clear();
        self.losses.clear();
        self.start_losses.clear();
        self.start_loss = None;
        self.non_finite_done = false;
        self.exploding = Latch::default();
        self.vanishing = Latch::default();
        self.vanish_run = 0;
        self.plateau = Latch::default();
        self.oscillation = Latch::default();
        self.oscillation_run = 0;
        self.spike = Latch::default();
        self.pace = Pace::default();
    }

    fn layer(&mut self, name: &Arc<str>, index: Option<u32>) -> Option<usize> {
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
            history: Window::new(self.totals.cap),
            zero_run: 0,
        });
        self.by_name.insert(name.clone(), i);
        Some(i)
    }

    /// Notes when a live event arrived (for `stall`).
    fn arrived(&mut self, e: &Event, now: Instant) {
        if self.external {
            return;
        }
        match &e.payload {
            Payload::RunStart { .. } => {
                self.pace = Pace::default();
                return;
            }
            Payload::RunEnd { .. } => {
                self.pace.ended = true;
                return;
            }
            _ => {}
        }
        let new_step = self.pace.last.is_none_or(|(_, step, _)| step != e.step);
        if new_step {
            self.pace.last = Some((now, e.step, e.time));
            self.pace.steps = self.pace.steps.saturating_add(1);
            self.pace.stalled = false;
        }
    }

    /// Says `stall` when a stepping run has sent no new step for `stall_seconds`.
    fn tick(&mut self, cfg: &Thresholds, now: Instant, out: &mut Vec<Event>) {
        let p = self.pace;
        let Some((at, step, time)) = p.last else {
            return;
        };
        if self.external || p.ended || p.stalled || p.steps < STALL_MIN_STEPS {
            return;
        }
        let quiet = now.saturating_duration_since(at).as_secs_f64();
        if quiet < cfg.stall_seconds {
            return;
        }
        self.pace.stalled = true;
        let meta = StepMeta {
            step,
            epoch: self.meta.map_or(0, |m| m.epoch),
            time: time + quiet,
        };
        let reason = format!(
            "no step for {} s after step {step} (the run had been stepping)",
            short(quiet)
        );
        out.push(self.diagnosis(meta, DiagnosisKind::Stall, Vec::new(), reason));
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
                if let Some(i) = self.layer(&layer.name, layer.index) {
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
                        if let Some(i) = self.layer(&l.name, l.index) {
                            self.layers[i].non_finite = true;
                        }
                    }
                    None if *quantity == Quantity::Loss => {
                        self.cur.loss_non_finite.get_or_insert(*state);
                    }
                    None => self.cur.total_non_finite = true,
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
        self.non_finite(meta, &cur, &order, out);
        self.dead(cfg, meta, &order, out);
        let reported: Vec<usize> = order
            .iter()
            .copied()
            .filter(|&i| self.layers[i].grad.is_some_and(|v| v.is_finite()))
            .collect();
        self.vanishing(cfg, meta, &reported, out);

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
        let total_ok = total.filter(|t| t.is_finite() && *t > 0.0);
        for &i in &order {
            let l = &mut self.layers[i];
            // Layer histories stay aligned with the total's: one value per kept total.
            if total_ok.is_some() {
                let v = l.grad.filter(|v| v.is_finite() && *v > 0.0);
                l.history.push(v.map_or(f64::NAN, f64::ln));
            }
            l.grad = None;
            l.non_finite = false;
        }
        if let Some(t) = total_ok {
            self.totals.push(t.ln());
        }
        let loss = cur.loss.filter(|l| l.is_finite());
        if let Some(loss) = loss {
            if self.start_losses.len() < START_STEPS {
                self.start_losses.push(loss);
                let mut s = self.start_losses.clone();
                self.start_loss = Some(median_in_place(&mut s));
            }
        }

        let exploding = self.exploding(cfg, meta, total_ok.is_some(), total.is_some(), out);
        self.loss_spike(cfg, meta, loss, exploding, out);
        if let Some(loss) = loss {
            self.losses.push(loss);
            if loss > 0.0 {
                self.log_losses.push(loss.ln());
            }
        }
        if total_ok.is_some() || loss.is_some() {
            self.oscillation(cfg, meta, out);
        }
        if loss.is_some() {
            self.plateau(cfg, meta, out);
        }
    }

    /// The first non-finite value, and which layers went first.
    fn non_finite(
        &mut self,
        meta: StepMeta,
        cur: &StepData,
        order: &[usize],
        out: &mut Vec<Event>,
    ) {
        if self.non_finite_done {
            return;
        }
        let layers: Vec<usize> = order
            .iter()
            .copied()
            .filter(|&i| {
                let l = &self.layers[i];
                l.non_finite || l.grad.is_some_and(|v| !v.is_finite())
            })
            .collect();
        let loss_bad = cur.loss_non_finite.is_some() || cur.loss.is_some_and(|v| !v.is_finite());
        let total_bad = cur.total_non_finite || cur.total.is_some_and(|v| !v.is_finite());
        if layers.is_empty() && !loss_bad && !total_bad {
            return;
        }
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

    /// Dead layers: a norm of exactly zero, step after step (any non-zero norm re-arms).
    fn dead(&mut self, cfg: &Thresholds, meta: StepMeta, order: &[usize], out: &mut Vec<Event>) {
        let mut dead = Vec::new();
        for &i in order {
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
    }

    /// Vanishing: early layers' norms orders of magnitude below the last layer's, step after
    /// step; quiet again once the first layer is back above twice the ratio.
    fn vanishing(
        &mut self,
        cfg: &Thresholds,
        meta: StepMeta,
        reported: &[usize],
        out: &mut Vec<Event>,
    ) {
        let mut vanishing = Vec::new();
        let mut worst = f64::INFINITY;
        let mut first_ratio = None;
        if let (Some(&first), Some(&last)) = (reported.first(), reported.last()) {
            let top = self.layers[last].grad.unwrap_or(0.0);
            let low = self.layers[first].grad.unwrap_or(0.0);
            if first != last && top > 0.0 && low > 0.0 {
                first_ratio = Some(low / top);
            }
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
        let enter = self.vanish_run >= cfg.vanishing_steps;
        let stay = first_ratio.is_none_or(|r| r < 2.0 * cfg.vanishing_ratio);
        if self.vanishing.update(enter, stay, cfg.rearm_steps) {
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
    }

    /// Exploding: the last `exploding_steps` total norms all lie `exploding_factor` above the
    /// running median of the history before them (and far outside its spread), the newest
    /// highest. Quiet again once the norm is back within the square root of the factor of the
    /// pre-explosion median for `rearm_steps`. Returns whether an explosion is being heard.
    fn exploding(
        &mut self,
        cfg: &Thresholds,
        meta: StepMeta,
        pushed: bool,
        reported: bool,
        out: &mut Vec<Event>,
    ) -> bool {
        let k = cfg.exploding_steps as usize;
        let lf = cfg.exploding_factor.ln();
        let n = self.totals.len();
        let mut enter = None;
        if pushed && n > k {
            let from = n.saturating_sub(k + cfg.history_steps as usize);
            let base = self.explode_base.sync(&self.totals, from, n - k);
            let base_len = n - k - from;
            let base_max = base.last().copied().unwrap_or(f64::NEG_INFINITY);
            if let Some((m, mad)) = sorted_median_mad(base) {
                let spread = MAD_TO_SD * mad;
                let mut recent = self.totals.range(n - k, n);
                let newest = self.totals.back().expect("n > k values");
                let high = recent.clone().all(|x| {
                    x - m >= lf && (base_len < MIN_HISTORY || x - m >= EXPLODING_SPREAD * spread)
                });
                let peak = recent.all(|x| x <= newest) && newest > base_max;
                if high && peak {
                    enter = Some((m, newest));
                }
            }
        }
        let stay = match self.totals.back() {
            // Gone non-finite (or missing): the explosion is not over.
            _ if !pushed => reported,
            Some(x) => x - self.exploding_base >= lf / 2.0,
            None => false,
        };
        let fired = self
            .exploding
            .update(enter.is_some(), stay, cfg.rearm_steps);
        if fired {
            let (m, newest) = enter.expect("fired on a growth");
            self.exploding_base = m;
            let from = n.saturating_sub(k + cfg.history_steps as usize);
            let mut names = Vec::new();
            for i in self.ordered() {
                let l = &self.layers[i];
                let h = &l.history;
                if h.len() != n {
                    continue;
                }
                let base = h.range(from, n - k).filter(|v| v.is_finite());
                let Some((lm, _)) = median_mad(base, &mut self.scratch) else {
                    continue;
                };
                let grown = h.range(n - k, n).all(|x| x.is_finite() && x - lm >= lf);
                if grown {
                    names.push(l.name.clone());
                }
            }
            let reason = format!(
                "total norm {}x its running median for {k} steps ({} -> {})",
                short((newest - m).exp()),
                short(m.exp()),
                short(newest.exp())
            );
            out.push(self.diagnosis(meta, DiagnosisKind::Exploding, names, reason));
        }
        self.exploding.active
    }

    /// Loss spike: the loss jumps far above its recent distribution. Judged on the median
    /// of the last three steps' losses (two of three steps high: one hard mini-batch is not
    /// a spike), against the `history_steps` before them: at least `loss_spike_z` robust
    /// standard deviations above their median, `loss_spike_factor` times their top 1 %, and
    /// by a quarter of the run's starting loss (a run sitting near zero has a scale too).
    /// Not said during an explosion (that is the explosion's loss).
    fn loss_spike(
        &mut self,
        cfg: &Thresholds,
        meta: StepMeta,
        loss: Option<f64>,
        exploding: bool,
        out: &mut Vec<Event>,
    ) {
        let Some(loss) = loss else {
            return;
        };
        let n = self.losses.len();
        if n < MIN_HISTORY + 2 {
            return;
        }
        let mut last3 = [loss, 0.0, 0.0];
        for (slot, v) in last3[1..].iter_mut().zip(self.losses.range(n - 2, n)) {
            *slot = v;
        }
        last3.sort_by(f64::total_cmp);
        let level = last3[1];
        let from = n.saturating_sub(2 + cfg.history_steps as usize);
        let prior = self.spike_prior.sync(&self.losses, from, n - 2);
        let Some(top) = sorted_quantile(prior, 0.99) else {
            return;
        };
        let Some((m, mad)) = sorted_median_mad(prior) else {
            return;
        };
        let start = self.start_loss.unwrap_or(0.0).abs();
        let spread = (MAD_TO_SD * mad).max(f64::MIN_POSITIVE);
        let z = (level - m) / spread;
        let enter = !exploding
            && z >= cfg.loss_spike_z
            && level >= cfg.loss_spike_factor * top
            && level - m >= SPIKE_JUMP * start;
        let stay = level >= top;
        if self.spike.update(enter, stay, cfg.rearm_steps) {
            let reason = format!(
                "loss up to {} (median of the last 3 steps): {}x its running median {}, \
                 {}x the top 1% of the {} steps before ({} robust sd above)",
                short(level),
                short(level / m.max(f64::MIN_POSITIVE)),
                short(m),
                short(level / top.max(f64::MIN_POSITIVE)),
                n - 2 - from,
                short(z)
            );
            out.push(self.diagnosis(meta, DiagnosisKind::LossSpike, Vec::new(), reason));
        }
    }

    /// Oscillation: a period-2 alternation standing out of the noise in the log total norm
    /// (else the log loss): strong lag-1 anti-correlation after removing the window's linear
    /// trend, with a swing of at least `oscillation_factor`, for a quarter window in a row.
    fn oscillation(&mut self, cfg: &Thresholds, meta: StepMeta, out: &mut Vec<Event>) {
        let m = cfg.oscillation_steps as usize;
        let mut best: Option<(&str, f64, f64)> = None;
        for (what, w) in [("total norm", &self.totals), ("loss", &self.log_losses)] {
            let Some(values) = w.last(m) else { continue };
            let Some((r1, factor)) = alternation(values, &mut self.scratch) else {
                continue;
            };
            if best.is_none_or(|b| -r1 > -b.1) {
                best = Some((what, r1, factor));
            }
        }
        let holds = best.is_some_and(|(_, r1, factor)| {
            -r1 >= cfg.oscillation_correlation && factor >= cfg.oscillation_factor
        });
        self.oscillation_run = if holds {
            self.oscillation_run.saturating_add(1)
        } else {
            0
        };
        let enter = self.oscillation_run as usize >= (m / 4).max(1);
        let stay = best.is_some_and(|(_, r1, _)| -r1 >= cfg.oscillation_correlation / 2.0);
        if self.oscillation.update(enter, stay, cfg.rearm_steps) {
            let (what, r1, factor) = best.expect("fired on an oscillation");
            let reason = format!(
                "{what} alternates up and down step by step over {m} steps \
                 (lag-1 correlation {}, swing {}x)",
                short(r1),
                short(factor)
            );
            out.push(self.diagnosis(meta, DiagnosisKind::Oscillation, Vec::new(), reason));
        }
    }

    /// Plateau: the median loss of the window's newest third is within `plateau_tolerance`
    /// of its oldest third's while the loss is still well above zero (`plateau_level` of the
    /// start). Said once; again only after the trend has moved (by twice the tolerance) for
    /// `rearm_steps`.
    fn plateau(&mut self, cfg: &Thresholds, meta: StepMeta, out: &mut Vec<Event>) {
        let p = cfg.plateau_steps as usize;
        let third = (p / 3).max(1);
        let Some(_) = self.losses.last(p.max(3)) else {
            return;
        };
        let n = self.losses.len();
        let from = n - p.max(3);
        let old = sorted_median_mad(self.plateau_old.sync(&self.losses, from, from + third));
        let new = sorted_median_mad(self.plateau_new.sync(&self.losses, n - third, n));
        let (Some((old, _)), Some((new, _))) = (old, new) else {
            return;
        };
        if old.abs() <= 0.0 {
            return;
        }
        let change = (new - old).abs() / old.abs();
        let high = self
            .start_loss
            .is_none_or(|s| new.abs() >= cfg.plateau_level * s.abs());
        let enter = change < cfg.plateau_tolerance && high;
        let stay = change < 2.0 * cfg.plateau_tolerance;
        if self.plateau.update(enter, stay, cfg.rearm_steps) {
            let reason = format!(
                "median loss {} over the last {third} steps, {} {} steps before \
                 (less than {}% change)",
                short(new),
                short(old),
                p - third,
                short(cfg.plateau_tolerance * 100.0)
            );
            out.push(self.diagnosis(meta, DiagnosisKind::Plateau, Vec::new(), reason));
        }
    }
}

/// Steps a live run must have sent before its silence counts as a stall.
const STALL_MIN_STEPS: u32 = 3;

/// Lag-1 autocorrelation of a series' residuals from its least-squares line, and the
/// factor of its period-2 swing (`exp` of twice the mean alternating residual).
fn alternation(values: impl Iterator<Item = f64>, scratch: &mut Vec<f64>) -> Option<(f64, f64)> {
    scratch.clear();
    scratch.extend(values);
    let n = scratch.len();
    if n < 4 || scratch.iter().any(|v| !v.is_finite()) {
        return None;
    }
    let nf = n as f64;
    let tm = (nf - 1.0) / 2.0;
    let xm = scratch.iter().sum::<f64>() / nf;
    let (mut sxy, mut sxx) = (0.0, 0.0);
    for (i, &x) in scratch.iter().enumerate() {
        let t = i as f64 - tm;
        sxy += t * (x - xm);
        sxx += t * t;
    }
    let slope = sxy / sxx;
    for (i, x) in scratch.iter_mut().enumerate() {
        *x -= xm + slope * (i as f64 - tm);
    }
    let var: f64 = scratch.iter().map(|r| r * r).sum();
    if var <= 1e-24 {
        return None;
    }
    let cov: f64 = scratch.windows(2).map(|p| p[0] * p[1]).sum();
    let alt: f64 = scratch
        .iter()
        .enumerate()
        .map(|(i, r)| if i % 2 == 0 { *r } else { -*r })
        .sum::<f64>()
        / nf;
    Some((cov / var, (2.0 * alt.abs()).exp()))
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
