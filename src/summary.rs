//! A short account of a run, gathered from its events: printed at the end of `train`,
//! `replay` and the demo.

use std::fmt;
use std::io;
use std::sync::{Arc, Mutex};

use crate::consume::EventConsumer;
use crate::event::{EndReason, Event, NonFiniteKind, Payload, Quantity};

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
    last_non_finite_step: Option<u64>,
}

impl RunSummary {
    /// Takes one event into account.
    pub fn add(&mut self, e: &Event) {
        self.steps = self.steps.max(e.step + 1);
        match &e.payload {
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
            }
            Payload::Eval { name, value } if name == "accuracy" => self.accuracy = Some(*value),
            Payload::RunEnd { reason, coalesced } => {
                self.end = Some(*reason);
                self.coalesced = *coalesced;
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
        if self.coalesced > 0 {
            writeln!(
                f,
                "  {} events coalesced (the consumer fell behind)",
                self.coalesced
            )?;
        }
        Ok(())
    }
}

/// A consumer that fills a shared summary.
pub struct SummaryCollector(pub Arc<Mutex<RunSummary>>);

impl EventConsumer for SummaryCollector {
    fn event(&mut self, event: &Event) -> io::Result<()> {
        if let Ok(mut s) = self.0.lock() {
            s.add(event);
        }
        Ok(())
    }
}
