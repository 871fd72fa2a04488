//! Scalars to events: each tag's values become the events its [`Target`] names, a
//! Lightning run's per-parameter norms are summed (in squares) into one norm per layer and
//! step, the `epoch` tag sets the epoch of the events that follow, and a NaN or Inf becomes a
//! `non_finite` event instead of a value.

use std::sync::Arc;

use super::scalars::Scalar;
use super::tags::Target;
use crate::event::{Event, Layer, NonFiniteKind, Payload, Quantity};

/// Turns one run's scalars, in file order, into events.
#[derive(Debug)]
pub(crate) struct Assembler {
    run: Option<Arc<str>>,
    epoch: u32,
    step: Option<u64>,
    wall_time: f64,
    /// Sums of squares of the current step's parameter norms, per layer, in first-seen order.
    params: Vec<(Arc<str>, f64)>,
}

impl Assembler {
    /// An assembler whose events carry the run tag `run`.
    pub(crate) fn new(run: Option<Arc<str>>) -> Self {
        Assembler {
            run,
            epoch: 0,
            step: None,
            wall_time: 0.0,
            params: Vec::new(),
        }
    }

    fn event(&self, step: u64, time: f64, payload: Payload) -> Event {
        let mut e = Event::new(step, self.epoch, time, payload);
        e.run = self.run.clone();
        e
    }

    /// Takes in one scalar and its target; appends the events it completes to `out`.
    pub(crate) fn push(&mut self, s: &Scalar, target: &Target, out: &mut Vec<Event>) {
        if self.step != Some(s.step) {
            self.flush(out);
            self.step = Some(s.step);
        }
        self.wall_time = s.wall_time;
        let (step, time, value) = (s.step, s.wall_time, s.value);
        let layer = unindexed;
        let payload = match target {
            Target::Ignored => return,
            Target::Epoch => {
                if value.is_finite() && value >= 0.0 && value < u32::MAX as f64 {
                    self.epoch = value as u32;
                }
                return;
            }
            Target::ParamGradNorm(l) => {
                match self.params.iter_mut().find(|(n, _)| n == l) {
                    Some((_, sum)) => *sum += value * value,
                    None => self.params.push((l.clone(), value * value)),
                }
                return;
            }
            _ if !value.is_finite() => non_finite(target, value),
            Target::Loss => Payload::Loss { value },
            Target::Lr => Payload::Lr { value },
            Target::TotalNorm => Payload::TotalNorm { value },
            Target::GradNorm(l) => Payload::GradNorm {
                layer: layer(l),
                value,
            },
            Target::WeightNorm(l) => Payload::WeightNorm {
                layer: layer(l),
                value,
            },
            Target::UpdateRatio(l) => Payload::UpdateRatio {
                layer: layer(l),
                value,
            },
            Target::Eval(name) => Payload::Eval {
                name: name.clone(),
                value,
            },
        };
        out.push(self.event(step, time, payload));
    }

    /// Emits the summed layer norms of the current step (call at the end of the input, or
    /// when a followed file has nothing more for now).
    pub(crate) fn flush(&mut self, out: &mut Vec<Event>) {
        let Some(step) = self.step else { return };
        for (name, sum) in std::mem::take(&mut self.params) {
            let value = sum.sqrt();
            let target = Target::GradNorm(name.clone());
            let payload = if value.is_finite() {
                Payload::GradNorm {
                    layer: Layer { name, index: None },
                    value,
                }
            } else {
                non_finite(&target, value)
            };
            out.push(self.event(step, self.wall_time, payload));
        }
    }
}

/// The `non_finite` payload for a NaN or Inf value of `target`.
fn non_finite(target: &Target, value: f64) -> Payload {
    let state = if value.is_nan() {
        NonFiniteKind::Nan
    } else {
        NonFiniteKind::Inf
    };
    let (layer, quantity) = match target {
        Target::GradNorm(l) | Target::ParamGradNorm(l) | Target::UpdateRatio(l) => {
            (Some(unindexed(l)), Quantity::Grad)
        }
        Target::WeightNorm(l) => (Some(unindexed(l)), Quantity::Weight),
        Target::TotalNorm => (None, Quantity::Grad),
        _ => (None, Quantity::Loss),
    };
    Payload::NonFinite {
        layer,
        quantity,
        state,
    }
}

fn unindexed(name: &Arc<str>) -> Layer {
    Layer {
        name: name.clone(),
        index: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(step: u64, value: f64) -> Scalar {
        Scalar {
            step,
            wall_time: step as f64,
            tag: 0,
            value,
        }
    }

    #[test]
    fn parameter_norms_sum_into_layers_per_step() {
        let mut a = Assembler::new(Some("r".into()));
        let mut out = Vec::new();
        let (w, b) = (
            Target::ParamGradNorm("fc1".into()),
            Target::ParamGradNorm("fc2".into()),
        );
        a.push(&s(3, 3.0), &w, &mut out);
        a.push(&s(3, 1.0), &b, &mut out);
        a.push(&s(3, 4.0), &w, &mut out);
        a.push(&s(3, 0.5), &Target::Loss, &mut out);
        a.push(&s(4, f64::NAN), &w, &mut out);
        a.push(&s(4, 2.0), &Target::Epoch, &mut out);
        a.push(&s(4, f64::INFINITY), &Target::Loss, &mut out);
        a.flush(&mut out);
        let got: Vec<String> = out
            .iter()
            .map(|e| format!("{} {} {}", e.step, e.epoch, e.to_json_line()))
            .collect();
        assert_eq!(out.len(), 5, "{got:#?}");
        assert_eq!(out[0].payload, Payload::Loss { value: 0.5 });
        assert_eq!(out[1].payload.value(), Some(5.0), "sqrt(3² + 4²)");
        assert_eq!(out[1].payload.layer().unwrap().name.as_ref(), "fc1");
        assert_eq!(out[2].payload.value(), Some(1.0));
        assert!(matches!(
            out[3].payload,
            Payload::NonFinite {
                quantity: Quantity::Loss,
                state: NonFiniteKind::Inf,
                ..
            }
        ));
        assert_eq!(out[3].epoch, 2);
        assert!(matches!(
            &out[4].payload,
            Payload::NonFinite { layer: Some(l), quantity: Quantity::Grad, state: NonFiniteKind::Nan } if &*l.name == "fc1"
        ));
        assert!(out.iter().all(|e| e.run.as_deref() == Some("r")));
    }
}
