//! A short account of a run, gathered from its events: printed at the end of `train`,
//! `replay` and the demo.

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::path::PathBuf;
use std::sync::Arc;

use crate::diagnose::short;
use crate::event::{DiagnosisKind, EndReason, Event, NonFiniteKind, Payload, Quantity};
use crate::pipeline::consume::EventConsumer;
use crate::pipeline::Report;

/// Diagnoses listed one by one in the summary; later ones are only counted.
pub const MAX_LISTED: usize = 20;
/// Layers the summary keeps health figures for.
pub const MAX_LAYERS: usize = 4096;

/// One diagnosis as the summary lists it.
#[derive(Clone, Debug, PartialEq)]
pub struct DiagnosisNote {
    /// Step it is about.
    pub step: u64,
    /// What.
    pub kind: DiagnosisKind,
    /// Layers concerned.
    pub layers: Vec<Arc<str>>,
    /// Why.
    pub reason: String,
}

/// Health figures of one layer over the run.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LayerHealth {
    /// Layer name.
    pub name: Arc<str>,
    /// Diagnoses that named it.
    pub diagnoses: u32,
    /// Steps its gradient norm was exactly zero.
    pub zero_steps: u64,
    /// Steps its gradient norm (or a `non_finite` event) was NaN or Inf.
    pub non_finite_steps: u64,
    /// Sum of log10 of its finite positive gradient norms, and how many.
    log_sum: f64,
    log_count: u64,
    last_bad_step: Option<u64>,
}

impl LayerHealth {
    /// Geometric mean of its finite, positive gradient norms.
    pub fn typical_norm(&self) -> Option<f64> {
        (self.log_count > 0).then(|| 10f64.powf(self.log_sum / self.log_count as f64))
    }

    fn bad_steps(&self) -> u64 {
        self.zero_steps + self.non_finite_steps
    }

    /// Never non-finite, named by no diagnosis, and with some finite non-zero gradient.
    pub fn is_healthy(&self) -> bool {
        self.non_finite_steps == 0 && self.diagnoses == 0 && self.log_count > 0
    }
}

/// What a run did, in numbers.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RunSummary {
    /// Model and optimizer from `run_start`.
    pub title: String,
    /// Steps seen (highest step + 1).
    pub steps: u64,
    /// First and last finite loss.
    pub first_loss: Option<f64>,
    /// Last loss seen (may be NaN).
    pub last_loss: Option<f64>,
    /// Smallest and largest finite total gradient norm, with their steps.
    pub min_total_norm: Option<(u64, f64)>,
    /// Largest finite total gradient norm and its step.
    pub max_total_norm: Option<(u64, f64)>,
    /// First non-finite value: step, layer (or `loss`), quantity and kind.
    pub first_non_finite: Option<(u64, String, Quantity, NonFiniteKind)>,
    /// Steps on which something was non-finite.
    pub non_finite_steps: u64,
    /// Last held-out accuracy.
    pub accuracy: Option<f64>,
    /// How the run ended.
    pub end: Option<EndReason>,
    /// Events merged by the monitor queue.
    pub coalesced: u64,
    /// The first [`MAX_LISTED`] diagnoses, in stream order.
    pub diagnoses: Vec<DiagnosisNote>,
    /// All diagnoses, listed or not.
    pub diagnosis_count: u64,
    /// Per-layer health, in the order layers first appeared.
    pub layers: Vec<LayerHealth>,
    /// The recording the run was written to or read from, for the render/report hint.
    pub recording: Option<PathBuf>,
    /// The first [`MAX_LISTED`] controls a person applied: step, target and value.
    pub controls: Vec<(u64, Arc<str>, f64)>,
    /// All controls applied, listed or not.
    pub control_count: u64,
    layer_index: HashMap<Arc<str>, usize>,
    last_non_finite_step: Option<u64>,
}

impl RunSummary {
    fn layer(&mut self, name: &Arc<str>) -> Option<&mut LayerHealth> {
        let i = match self.layer_index.get(name) {
            Some(&i) => i,
            None if self.layers.len() < MAX_LAYERS => {
                self.layers.push(LayerHealth {
                    name: name.clone(),
                    ..LayerHealth::default()
                });
                self.layer_index.insert(name.clone(), self.layers.len() - 1);
                self.layers.len() - 1
            }
            None => return None,
        };
        Some(&mut self.layers[i])
    }

    /// The healthiest and the sickest layer, when at least two layers reported gradients.
    ///
    /// A layer is sicker the more diagnoses named it, then the more steps its norm was zero
    /// or non-finite, then the farther its typical norm lies from the median layer's (in
    /// orders of magnitude). Only a layer that never went non-finite and that no diagnosis
    /// named can be the healthiest: when there is none, the healthiest is `None`.
    pub fn healthiest_and_sickest(&self) -> Option<(Option<&LayerHealth>, &LayerHealth)> {
        let mut logs: Vec<f64> = self
            .layers
            .iter()
            .filter_map(|l| l.typical_norm().map(f64::log10))
            .collect();
        if self.layers.len() < 2 {
            return None;
        }
        logs.sort_by(f64::total_cmp);
        let median = logs.get(logs.len() / 2).copied().unwrap_or(0.0);
        let key = |l: &LayerHealth| {
            let distance = l
                .typical_norm()
                .map_or(f64::INFINITY, |n| (n.log10() - median).abs());
            (l.diagnoses, l.bad_steps(), distance)
        };
        let cmp = |a: &&LayerHealth, b: &&LayerHealth| {
            let (ka, kb) = (key(a), key(b));
            ka.0.cmp(&kb.0)
                .then(ka.1.cmp(&kb.1))
                .then(ka.2.total_cmp(&kb.2))
        };
        // Ties go to the earlier layer for both.
        let sickest = self.layers.iter().rev().max_by(|a, b| cmp(a, b))?;
        let healthiest = self
            .layers
            .iter()
            .filter(|l| l.is_healthy() && !std::ptr::eq(*l, sickest))
            .min_by(|a, b| cmp(a, b));
        Some((healthiest, sickest))
    }

    /// Takes one event into account.
    pub fn add(&mut self, e: &Event) {
        self.steps = self.steps.max(e.step + 1);
        match &e.payload {
            Payload::GradNorm { layer, value } => {
                let step = e.step;
                let value = *value;
                if let Some(l) = self.layer(&layer.name) {
                    if value == 0.0 {
                        l.zero_steps += 1;
                    } else if !value.is_finite() {
                        if l.last_bad_step != Some(step) {
                            l.non_finite_steps += 1;
                            l.last_bad_step = Some(step);
                        }
                    } else if value > 0.0 {
                        l.log_sum += value.log10();
                        l.log_count += 1;
                    }
                }
            }
            Payload::Diagnosis {
                diagnosis,
                layers,
                reason,
            } => {
                self.diagnosis_count += 1;
                if self.diagnoses.len() < MAX_LISTED {
                    self.diagnoses.push(DiagnosisNote {
                        step: e.step,
                        kind: *diagnosis,
                        layers: layers.clone(),
                        reason: reason.clone(),
                    });
                }
                for name in layers {
                    if let Some(l) = self.layer(name) {
                        l.diagnoses += 1;
                    }
                }
            }
            Payload::RunStart { info } => {
                self.title = format!(
                    "{} | {} | lr {} | batch {}",
                    info.model, info.optimizer, info.lr, info.batch_size
                )
            }
            Payload::Loss { value } => {
                if value.is_finite() && self.first_loss.is_none() {
                    self.first_loss = Some(*value);
                }
                self.last_loss = Some(*value);
            }
            Payload::TotalNorm { value } if value.is_finite() => {
                if self.max_total_norm.is_none_or(|(_, m)| *value > m) {
                    self.max_total_norm = Some((e.step, *value));
                }
                if self.min_total_norm.is_none_or(|(_, m)| *value < m) {
                    self.min_total_norm = Some((e.step, *value));
                }
            }
            Payload::NonFinite {
                layer,
                quantity,
                state,
            } => {
                if self.first_non_finite.is_none() {
                    let name = layer
                        .as_ref()
                        .map(|l| l.name.to_string())
                        .unwrap_or_else(|| "loss".into());
                    self.first_non_finite = Some((e.step, name, *quantity, *state));
                }
                if self.last_non_finite_step != Some(e.step) {
                    self.non_finite_steps += 1;
                    self.last_non_finite_step = Some(e.step);
                }
                if let Some(layer) = layer {
                    let step = e.step;
                    if let Some(l) = self.layer(&layer.name) {
                        if l.last_bad_step != Some(step) {
                            l.non_finite_steps += 1;
                            l.last_bad_step = Some(step);
                        }
                    }
                }
            }
            Payload::Eval { name, value } if name == "accuracy" => self.accuracy = Some(*value),
            Payload::RunEnd { reason, coalesced } => {
                self.end = Some(*reason);
                self.coalesced = *coalesced;
            }
            Payload::Control { target, value, .. } => {
                self.control_count += 1;
                if self.controls.len() < MAX_LISTED {
                    self.controls.push((e.step, target.clone(), *value));
                }
            }
            _ => {}
        }
    }
}

impl fmt::Display for RunSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.title.is_empty() {
            writeln!(f, "run: {}", self.title)?;
        }
        write!(f, "  steps {}", self.steps)?;
        if let (Some(a), Some(b)) = (self.first_loss, self.last_loss) {
            write!(f, ", loss {a:.4} -> {b:.4}")?;
        }
        if let Some(acc) = self.accuracy {
            write!(f, ", held-out accuracy {:.1}%", acc * 100.0)?;
        }
        writeln!(f)?;
        if let (Some((s0, lo)), Some((s1, hi))) = (self.min_total_norm, self.max_total_norm) {
            writeln!(
                f,
                "  total gradient norm: min {lo:.4} (step {s0}), max {hi:.4e} (step {s1})"
            )?;
        }
        match &self.first_non_finite {
            Some((step, layer, q, k)) => writeln!(
                f,
                "  first non-finite: step {step}, {layer} {} is {}; {} steps non-finite",
                match q {
                    Quantity::Grad => "gradient",
                    Quantity::Weight => "weight",
                    Quantity::Loss => "value",
                },
                match k {
                    NonFiniteKind::Nan => "NaN",
                    NonFiniteKind::Inf => "Inf",
                },
                self.non_finite_steps
            )?,
            None => writeln!(f, "  finite throughout")?,
        }
        if self.diagnosis_count == 0 {
            writeln!(f, "  no diagnosis")?;
        } else {
            writeln!(f, "  diagnoses: {}", self.diagnosis_count)?;
            for d in &self.diagnoses {
                write!(f, "    step {} {}", d.step, d.kind)?;
                if !d.layers.is_empty() {
                    write!(f, " [{}]", d.layers.join(", "))?;
                }
                writeln!(f, ": {}", d.reason)?;
            }
            let unlisted = self.diagnosis_count - self.diagnoses.len() as u64;
            if unlisted > 0 {
                writeln!(f, "    ... and {unlisted} more")?;
            }
        }
        if self.control_count > 0 {
            let listed: Vec<String> = self
                .controls
                .iter()
                .map(|(step, target, value)| format!("step {step} {target} {value}"))
                .collect();
            let more = self.control_count - self.controls.len() as u64;
            let more = if more > 0 {
                format!(", ... and {more} more")
            } else {
                String::new()
            };
            writeln!(
                f,
                "  controls applied: {} ({}{more})",
                self.control_count,
                listed.join(", ")
            )?;
        }
        match self.healthiest_and_sickest() {
            Some((Some(healthy), sick)) => writeln!(
                f,
                "  healthiest layer: {} ({}); sickest layer: {} ({})",
                healthy.name,
                Health(healthy),
                sick.name,
                Health(sick)
            )?,
            Some((None, sick)) => writeln!(
                f,
                "  healthiest layer: none (every layer went non-finite or was diagnosed); \
                 sickest layer: {} ({})",
                sick.name,
                Health(sick)
            )?,
            None => {}
        }
        if self.coalesced > 0 {
            writeln!(
                f,
                "  {} events coalesced (the consumer fell behind)",
                self.coalesced
            )?;
        }
        if let Some(path) = &self.recording {
            let stem = path
                .file_stem()
                .map_or("run".into(), |s| s.to_string_lossy());
            let stem = stem.trim_end_matches(".events");
            writeln!(
                f,
                "  hear it: sonograd render {} -o {stem}.wav; plot it: sonograd report {} -o {stem}-report",
                path.display(),
                path.display()
            )?;
        }
        Ok(())
    }
}

/// A layer's health in a few words.
struct Health<'a>(&'a LayerHealth);

impl fmt::Display for Health<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let l = self.0;
        match l.diagnoses {
            0 => write!(f, "no diagnosis")?,
            1 => write!(f, "1 diagnosis")?,
            n => write!(f, "{n} diagnoses")?,
        }
        if l.zero_steps > 0 {
            write!(f, ", {} steps at zero", l.zero_steps)?;
        }
        if l.non_finite_steps > 0 {
            write!(f, ", {} steps non-finite", l.non_finite_steps)?;
        }
        match l.typical_norm() {
            Some(n) => write!(f, ", typical gradient norm {}", short(n)),
            None => write!(f, ", no finite non-zero gradient"),
        }
    }
}

/// Gathers the [`RunSummary`] on the consumer thread; it reaches the run's report at the end.
#[derive(Default)]
pub struct SummaryCollector(pub RunSummary);

impl EventConsumer for SummaryCollector {
    fn event(&mut self, event: &Event) -> io::Result<()> {
        self.0.add(event);
        Ok(())
    }

    fn report(&mut self, report: &mut Report) {
        report.summary = std::mem::take(&mut self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Layer;

    fn grad(step: u64, i: u32, value: f64) -> Event {
        Event::new(
            step,
            0,
            0.0,
            Payload::GradNorm {
                layer: Layer::new(format!("fc{}", i + 1), i),
                value,
            },
        )
    }

    fn diagnosis(step: u64, kind: DiagnosisKind, layers: &[&str], reason: &str) -> Event {
        Event::new(
            step,
            0,
            0.0,
            Payload::Diagnosis {
                diagnosis: kind,
                layers: layers.iter().map(|l| Arc::from(*l)).collect(),
                reason: reason.into(),
            },
        )
    }

    #[test]
    fn diagnoses_and_layer_health_are_summarised() {
        let mut s = RunSummary::default();
        for step in 0..30 {
            s.add(&grad(step, 0, 0.0)); // dead
            s.add(&grad(step, 1, 0.5)); // the typical layer
            s.add(&grad(step, 2, 0.05)); // an order of magnitude off, but no diagnosis
        }
        s.add(&diagnosis(
            19,
            DiagnosisKind::DeadLayer,
            &["fc1"],
            "gradient norm exactly 0 for 20 steps",
        ));
        s.add(&diagnosis(25, DiagnosisKind::Plateau, &[], "flat"));
        s.recording = Some(PathBuf::from("runs/dead.jsonl"));
        let (healthy, sick) = s.healthiest_and_sickest().unwrap();
        assert_eq!((&*healthy.unwrap().name, &*sick.name), ("fc2", "fc1"));
        assert_eq!((sick.diagnoses, sick.zero_steps), (1, 30));
        assert_eq!(s.diagnosis_count, 2);
        let text = s.to_string();
        for needle in [
            "  diagnoses: 2\n",
            "    step 19 dead_layer [fc1]: gradient norm exactly 0 for 20 steps\n",
            "    step 25 plateau: flat\n",
            "healthiest layer: fc2 (no diagnosis, typical gradient norm 0.5)",
            "sickest layer: fc1 (1 diagnosis, 30 steps at zero, no finite non-zero gradient)",
            "sonograd render runs/dead.jsonl -o dead.wav",
            "sonograd report runs/dead.jsonl -o dead-report",
        ] {
            assert!(text.contains(needle), "{needle:?} not in\n{text}");
        }
    }

    #[test]
    fn a_quiet_run_says_so_and_long_lists_are_cut() {
        let mut s = RunSummary::default();
        s.add(&grad(0, 0, 1.0));
        assert!(s.to_string().contains("  no diagnosis\n"));
        // One layer: no healthiest/sickest comparison.
        assert!(s.healthiest_and_sickest().is_none());
        for step in 0..(MAX_LISTED as u64 + 5) {
            s.add(&diagnosis(step, DiagnosisKind::Oscillation, &[], "wobble"));
        }
        assert_eq!(s.diagnoses.len(), MAX_LISTED);
        assert!(s.to_string().contains("    ... and 5 more\n"));
    }

    #[test]
    fn non_finite_layers_count_as_sick() {
        let mut s = RunSummary::default();
        for step in 0..10 {
            s.add(&grad(step, 0, 1.0));
            s.add(&grad(step, 1, if step > 6 { f64::NAN } else { 1.0 }));
        }
        let (healthy, sick) = s.healthiest_and_sickest().unwrap();
        assert_eq!((&*healthy.unwrap().name, &*sick.name), ("fc1", "fc2"));
        assert_eq!(sick.non_finite_steps, 3);
    }

    #[test]
    fn a_layer_that_went_non_finite_is_never_the_healthiest() {
        // Every layer NaN from step 7 (the seed's lr 1.0 run): fc3 went NaN on fewer steps
        // than the others, but it went NaN all the same, so no layer is healthy.
        let mut s = RunSummary::default();
        for step in 0..20 {
            for (i, from) in [(0, 7), (1, 7), (2, 9)] {
                s.add(&grad(step, i, if step >= from { f64::NAN } else { 0.3 }));
            }
        }
        let (healthy, sick) = s.healthiest_and_sickest().unwrap();
        assert!(healthy.is_none(), "{healthy:?}");
        assert_eq!(&*sick.name, "fc1");
        let text = s.to_string();
        assert!(
            text.contains("healthiest layer: none (every layer went non-finite or was diagnosed); sickest layer: fc1 (no diagnosis, 13 steps non-finite"),
            "{text}"
        );
        // One layer that stayed finite is the healthiest, however few its steps.
        s.add(&grad(20, 3, 0.2));
        let (healthy, _) = s.healthiest_and_sickest().unwrap();
        assert_eq!(healthy.map(|l| &*l.name), Some("fc4"));
        // A layer a diagnosis named is not healthy either.
        s.add(&diagnosis(20, DiagnosisKind::Exploding, &["fc4"], "grew"));
        assert!(s.healthiest_and_sickest().unwrap().0.is_none());
    }
}
