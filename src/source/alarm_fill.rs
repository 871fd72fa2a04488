//! `non_finite` alarms for streams whose writer sends a NaN or Inf value but no alarm.
//!
//! sonograd's own writers (the trainer, the Python client's datagrams, the TensorBoard
//! reader) follow a non-finite metric with a `non_finite` event, and mappings route alarms
//! from those (`metric = "nonfinite"`). A JSON-lines recording or stream written by another
//! program, or a CSV export, may hold `"value": NaN` alone. [`AlarmFill`] makes the alarm
//! right after such a metric and drops a writer's own alarm for the same sender, step,
//! layer and quantity, so a stream that already has its alarms comes out unchanged.

use std::collections::HashMap;
use std::sync::Arc;

use crate::event::{Event, Layer, NonFiniteKind, Payload, Quantity};

/// Senders remembered at once; past that the memory starts afresh (a flood of made-up
/// senders cannot grow it, and the worst it costs is one repeated alarm).
const MAX_SENDERS: usize = 4096;
/// Alarms remembered for one sender's step; past that, further ones are not remembered.
const MAX_KEYS: usize = 1024;

/// One sender: its run and rank.
type Sender = (Option<Arc<str>>, Option<u32>);

/// What one sender has alarmed in its current step.
#[derive(Default)]
struct StepAlarms {
    step: u64,
    /// Layer (none: loss or total norm) and quantity of each alarm made here.
    made: Vec<(Option<Arc<str>>, Quantity)>,
    /// Same, for the writer's own alarms that were let through.
    seen: Vec<(Option<Arc<str>>, Quantity)>,
}

/// Fills in the `non_finite` alarms a stream leaves out (see the module's comment).
#[derive(Default)]
pub struct AlarmFill {
    senders: HashMap<Sender, StepAlarms>,
}

impl AlarmFill {
    /// Passes `event` on through `out`, with an alarm after it when its value is NaN or Inf
    /// and nothing has alarmed it yet; a writer's own alarm for something already alarmed
    /// here is dropped.
    pub fn push(&mut self, event: Event, out: &mut impl FnMut(Event)) {
        let Some((layer, quantity, value)) = alarmable(&event.payload) else {
            if let Payload::NonFinite {
                layer, quantity, ..
            } = &event.payload
            {
                let key = (layer.as_ref().map(|l| l.name.clone()), *quantity);
                let step = self.step_of(&event);
                if step.made.contains(&key) {
                    return;
                }
                if step.seen.len() < MAX_KEYS {
                    step.seen.push(key);
                }
            }
            out(event);
            return;
        };
        if value.is_finite() {
            out(event);
            return;
        }
        let state = if value.is_nan() {
            NonFiniteKind::Nan
        } else {
            NonFiniteKind::Inf
        };
        let layer = layer.cloned();
        let key = (layer.as_ref().map(|l| l.name.clone()), quantity);
        let step = self.step_of(&event);
        let alarmed = step.made.contains(&key) || step.seen.contains(&key);
        // A total norm's alarm says nothing more when a layer's gradient has alarmed.
        let total_after_layers = matches!(event.payload, Payload::TotalNorm { .. })
            && step
                .made
                .iter()
                .chain(&step.seen)
                .any(|(l, q)| l.is_some() && *q == Quantity::Grad);
        if alarmed || total_after_layers {
            out(event);
            return;
        }
        if step.made.len() < MAX_KEYS {
            step.made.push(key);
        }
        let mut alarm = Event::new(
            event.step,
            event.epoch,
            event.time,
            Payload::NonFinite {
                layer,
                quantity,
                state,
            },
        );
        alarm.run = event.run.clone();
        alarm.rank = event.rank;
        out(event);
        out(alarm);
    }

    /// The alarms of `event`'s sender in `event`'s step (a new step starts afresh).
    fn step_of(&mut self, event: &Event) -> &mut StepAlarms {
        let sender = (event.run.clone(), event.rank);
        if self.senders.len() >= MAX_SENDERS && !self.senders.contains_key(&sender) {
            self.senders.clear();
        }
        let step = self.senders.entry(sender).or_default();
        if step.step != event.step {
            step.step = event.step;
            step.made.clear();
            step.seen.clear();
        }
        step
    }
}

/// The layer, quantity and value of a metric whose non-finite value is an alarm.
/// The update ratio is left out: it is NaN whenever its layer's gradient or weight is,
/// and those alarm already.
fn alarmable(payload: &Payload) -> Option<(Option<&Layer>, Quantity, f64)> {
    match payload {
        Payload::GradNorm { layer, value } => Some((Some(layer), Quantity::Grad, *value)),
        Payload::WeightNorm { layer, value } => Some((Some(layer), Quantity::Weight, *value)),
        Payload::TotalNorm { value } => Some((None, Quantity::Grad, *value)),
        Payload::Loss { value } => Some((None, Quantity::Loss, *value)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grad(step: u64, name: &str, value: f64) -> Event {
        Event::new(
            step,
            0,
            step as f64,
            Payload::GradNorm {
                layer: Layer {
                    name: name.into(),
                    index: Some(0),
                },
                value,
            },
        )
    }

    fn alarm(step: u64, name: Option<&str>, quantity: Quantity, state: NonFiniteKind) -> Event {
        Event::new(
            step,
            0,
            step as f64,
            Payload::NonFinite {
                layer: name.map(|n| Layer {
                    name: n.into(),
                    index: Some(0),
                }),
                quantity,
                state,
            },
        )
    }

    fn scalar(step: u64, payload: Payload) -> Event {
        Event::new(step, 0, step as f64, payload)
    }

    fn fill(events: Vec<Event>) -> Vec<Event> {
        let mut f = AlarmFill::default();
        let mut out = Vec::new();
        for e in events {
            f.push(e, &mut |e| out.push(e));
        }
        out
    }

    #[test]
    fn a_nan_value_alone_gets_its_alarm_right_after_it() {
        let out = fill(vec![
            grad(3, "fc1", 1.0),
            grad(3, "fc2", f64::NAN),
            scalar(
                3,
                Payload::Loss {
                    value: f64::INFINITY,
                },
            ),
        ]);
        let want = [
            grad(3, "fc1", 1.0),
            grad(3, "fc2", f64::NAN),
            alarm(3, Some("fc2"), Quantity::Grad, NonFiniteKind::Nan),
            scalar(
                3,
                Payload::Loss {
                    value: f64::INFINITY,
                },
            ),
            alarm(3, None, Quantity::Loss, NonFiniteKind::Inf),
        ];
        // Debug text, since NaN equals nothing.
        assert_eq!(format!("{out:?}"), format!("{want:?}"));
        let kinds: Vec<&str> = out.iter().map(|e| e.payload.kind()).collect();
        assert_eq!(
            kinds,
            ["grad_norm", "grad_norm", "non_finite", "loss", "non_finite"]
        );
        assert!(matches!(
            &out[2].payload,
            Payload::NonFinite { layer: Some(l), quantity: Quantity::Grad, state: NonFiniteKind::Nan }
                if &*l.name == "fc2" && l.index == Some(0)
        ));
        assert!(matches!(
            &out[4].payload,
            Payload::NonFinite {
                layer: None,
                quantity: Quantity::Loss,
                state: NonFiniteKind::Inf
            }
        ));
        assert_eq!((out[2].step, out[2].time), (3, 3.0));
    }

    #[test]
    fn a_stream_with_its_own_alarms_comes_out_unchanged() {
        // The trainer's order: the metric, then its alarm; the total norm has none.
        let own = vec![
            grad(5, "fc1", f64::NAN),
            alarm(5, Some("fc1"), Quantity::Grad, NonFiniteKind::Nan),
            scalar(5, Payload::TotalNorm { value: f64::NAN }),
            scalar(5, Payload::Loss { value: f64::NAN }),
            alarm(5, None, Quantity::Loss, NonFiniteKind::Nan),
            grad(6, "fc1", f64::NAN),
            alarm(6, Some("fc1"), Quantity::Grad, NonFiniteKind::Nan),
        ];
        let out = fill(own.clone());
        assert_eq!(out.len(), own.len());
        for (a, b) in out.iter().zip(&own) {
            assert_eq!(format!("{a:?}"), format!("{b:?}"));
        }
        // A writer that sends its alarm first gets no second one either.
        let first = vec![
            alarm(7, Some("fc1"), Quantity::Grad, NonFiniteKind::Inf),
            grad(7, "fc1", f64::INFINITY),
        ];
        assert_eq!(fill(first).len(), 2);
    }

    #[test]
    fn each_step_and_each_sender_alarms_again() {
        let mut other = grad(1, "fc1", f64::NAN);
        other.rank = Some(1);
        let out = fill(vec![
            grad(1, "fc1", f64::NAN),
            other,
            grad(1, "fc1", f64::NAN), // the same value again in the same step: one alarm
            grad(2, "fc1", f64::NAN),
        ]);
        let alarms: Vec<(u64, Option<u32>)> = out
            .iter()
            .filter(|e| e.payload.kind() == "non_finite")
            .map(|e| (e.step, e.rank))
            .collect();
        assert_eq!(alarms, [(1, None), (1, Some(1)), (2, None)]);
    }

    #[test]
    fn a_flood_of_senders_and_layers_keeps_memory_bounded() {
        let mut f = AlarmFill::default();
        let mut alarms = 0;
        for i in 0..3 * MAX_SENDERS as u32 {
            let mut e = grad(1, &format!("l{i}"), f64::NAN);
            e.rank = Some(i);
            f.push(e, &mut |e| {
                alarms += usize::from(e.payload.kind() == "non_finite")
            });
            let mut e = grad(1, &format!("l{i}"), f64::NAN);
            e.rank = Some(0);
            f.push(e, &mut |e| {
                alarms += usize::from(e.payload.kind() == "non_finite")
            });
        }
        // Every new layer and sender alarms (the first two pushes are one: rank 0, `l0`).
        assert_eq!(alarms, 6 * MAX_SENDERS - 1);
        assert!(f.senders.len() <= MAX_SENDERS);
        assert!(f
            .senders
            .values()
            .all(|s| s.made.len() <= MAX_KEYS && s.seen.len() <= MAX_KEYS));
    }

    #[test]
    fn a_total_norm_alone_alarms_but_not_after_a_layer() {
        let out = fill(vec![scalar(1, Payload::TotalNorm { value: f64::NAN })]);
        assert!(matches!(
            &out[1].payload,
            Payload::NonFinite {
                layer: None,
                quantity: Quantity::Grad,
                ..
            }
        ));
        let out = fill(vec![
            grad(1, "fc1", f64::NAN),
            scalar(1, Payload::TotalNorm { value: f64::NAN }),
        ]);
        assert_eq!(out.len(), 3);
        // Finite values, and kinds that never alarm, pass untouched.
        let out = fill(vec![
            grad(1, "fc1", 2.0),
            scalar(1, Payload::Lr { value: f64::NAN }),
            scalar(
                1,
                Payload::WeightNorm {
                    layer: Layer {
                        name: "fc1".into(),
                        index: None,
                    },
                    value: f64::NEG_INFINITY,
                },
            ),
        ]);
        assert_eq!(out.len(), 4);
        assert!(matches!(
            &out[3].payload,
            Payload::NonFinite {
                quantity: Quantity::Weight,
                state: NonFiniteKind::Inf,
                ..
            }
        ));
    }
}
