//! Markers: the steps the report points at (non-finite values, diagnoses, controls a person
//! applied).
//!
//! [`marker`] turns one event into a marker, or none; [`MarkerList`] merges repeats (a
//! diverged run reports NaN at every step) into ranges and keeps at most a fixed number.

use crate::event::{Event, NonFiniteKind, Payload, Quantity};

/// What a marker shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum MarkerKind {
    /// A NaN or Inf appeared.
    NonFinite,
    /// A detector diagnosed a problem (exploding, vanishing, ...).
    Diagnosis,
    /// A person acted: a control was applied (a mark, an lr change, a pause).
    Control,
}

/// One event worth pointing at.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Marker {
    /// The step.
    pub step: u64,
    /// What kind of marker.
    pub kind: MarkerKind,
    /// What happened, in words (`NaN grad fc1`).
    pub label: String,
}

/// The marker an event makes, if any: non-finite values and diagnoses.
pub(crate) fn marker(event: &Event) -> Option<Marker> {
    let (kind, label) = match &event.payload {
        Payload::NonFinite {
            layer,
            quantity,
            state,
        } => {
            let state = match state {
                NonFiniteKind::Nan => "NaN",
                NonFiniteKind::Inf => "Inf",
            };
            let quantity = match quantity {
                Quantity::Grad => "grad",
                Quantity::Weight => "weight",
                Quantity::Loss => "loss",
            };
            let label = match layer {
                Some(l) => format!("{state} {quantity} {}", l.name),
                None => format!("{state} {quantity}"),
            };
            (MarkerKind::NonFinite, label)
        }
        Payload::Diagnosis {
            diagnosis, layers, ..
        } => {
            let label = if layers.is_empty() {
                diagnosis.to_string()
            } else {
                format!("{diagnosis} {}", layers.join(", "))
            };
            (MarkerKind::Diagnosis, label)
        }
        Payload::Control { target, value, .. } => {
            let label = if &**target == "mark" {
                "mark".to_string()
            } else {
                format!("{target} {value}")
            };
            (MarkerKind::Control, label)
        }
        _ => return None,
    };
    Some(Marker {
        step: event.step,
        kind,
        label,
    })
}

/// A marker that may cover several consecutive steps.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct MarkerRange {
    /// The marker at its first step.
    pub marker: Marker,
    /// Audio position of the first step.
    pub pos: u64,
    /// The last step it covers.
    pub last_step: u64,
    /// Audio position of the last step.
    pub last_pos: u64,
    /// How many events merged into it.
    pub count: u64,
}

/// Markers in order, repeats at consecutive steps merged, at most `capacity` kept.
#[derive(Clone, Debug)]
pub(crate) struct MarkerList {
    capacity: usize,
    ranges: Vec<MarkerRange>,
    /// Index in `ranges` of the open range of each label (few labels: one per layer/kind).
    open: Vec<(String, usize)>,
    dropped: u64,
}

impl MarkerList {
    /// An empty list that keeps at most `capacity` ranges.
    pub(crate) fn new(capacity: usize) -> Self {
        MarkerList {
            capacity,
            ranges: Vec::new(),
            open: Vec::new(),
            dropped: 0,
        }
    }

    /// Adds a marker found at audio position `pos`.
    pub(crate) fn add(&mut self, m: Marker, pos: u64) {
        if let Some(&(_, i)) = self.open.iter().find(|(l, _)| *l == m.label) {
            let r = &mut self.ranges[i];
            if m.step >= r.last_step && m.step <= r.last_step + 1 {
                r.last_step = m.step;
                r.last_pos = pos;
                r.count += 1;
                return;
            }
        }
        if self.ranges.len() >= self.capacity {
            self.dropped += 1;
            return;
        }
        let i = self.ranges.len();
        match self.open.iter_mut().find(|(l, _)| *l == m.label) {
            Some(slot) => slot.1 = i,
            None => self.open.push((m.label.clone(), i)),
        }
        self.ranges.push(MarkerRange {
            last_step: m.step,
            marker: m,
            pos,
            last_pos: pos,
            count: 1,
        });
    }

    /// The kept ranges, in order of their first step.
    pub(crate) fn ranges(&self) -> &[MarkerRange] {
        &self.ranges
    }

    /// Markers that did not fit.
    pub(crate) fn dropped(&self) -> u64 {
        self.dropped
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Layer;

    fn nan_grad(step: u64, layer: &str) -> Event {
        Event::new(
            step,
            0,
            0.0,
            Payload::NonFinite {
                layer: Some(Layer::new(layer, 0)),
                quantity: Quantity::Grad,
                state: NonFiniteKind::Nan,
            },
        )
    }

    #[test]
    fn non_finite_events_make_markers_and_others_do_not() {
        let m = marker(&nan_grad(7, "fc1")).unwrap();
        assert_eq!(m.step, 7);
        assert_eq!(m.kind, MarkerKind::NonFinite);
        assert_eq!(m.label, "NaN grad fc1");
        let inf_loss = Event::new(
            3,
            0,
            0.0,
            Payload::NonFinite {
                layer: None,
                quantity: Quantity::Loss,
                state: NonFiniteKind::Inf,
            },
        );
        assert_eq!(marker(&inf_loss).unwrap().label, "Inf loss");
        assert!(marker(&Event::new(1, 0, 0.0, Payload::Loss { value: f64::NAN })).is_none());
    }

    #[test]
    fn diagnoses_make_markers_naming_kind_and_layers() {
        use crate::event::DiagnosisKind;
        let diag = |layers: Vec<std::sync::Arc<str>>| {
            Event::new(
                19,
                0,
                0.0,
                Payload::Diagnosis {
                    diagnosis: DiagnosisKind::Vanishing,
                    layers,
                    reason: "first layer 1e-3 of the last".into(),
                },
            )
        };
        let m = marker(&diag(vec!["fc1".into(), "fc2".into()])).unwrap();
        assert_eq!((m.step, m.kind), (19, MarkerKind::Diagnosis));
        assert_eq!(m.label, "vanishing fc1, fc2");
        assert_eq!(marker(&diag(Vec::new())).unwrap().label, "vanishing");
    }

    #[test]
    fn controls_make_markers_so_the_report_shows_when_a_person_acted() {
        let control = |target: &str, value| {
            Event::new(
                42,
                0,
                0.0,
                Payload::Control {
                    control: "k".into(),
                    source: "osc".into(),
                    target: target.into(),
                    value,
                },
            )
        };
        let m = marker(&control("lr_scale", 0.5)).unwrap();
        assert_eq!(
            (m.step, m.kind, m.label.as_str()),
            (42, MarkerKind::Control, "lr_scale 0.5")
        );
        assert_eq!(marker(&control("mark", 1.0)).unwrap().label, "mark");
    }

    #[test]
    fn repeats_at_consecutive_steps_merge_per_label() {
        let mut list = MarkerList::new(10);
        for step in 10..20 {
            for layer in ["fc1", "fc2"] {
                list.add(marker(&nan_grad(step, layer)).unwrap(), step - 10);
            }
        }
        // A later, separate outbreak of fc1 is a new range.
        list.add(marker(&nan_grad(40, "fc1")).unwrap(), 30);
        let r = list.ranges();
        assert_eq!(r.len(), 3);
        assert_eq!((r[0].marker.step, r[0].last_step, r[0].count), (10, 19, 10));
        assert_eq!(r[1].marker.label, "NaN grad fc2");
        assert_eq!((r[2].marker.step, r[2].pos, r[2].last_pos), (40, 30, 30));
    }

    #[test]
    fn the_list_is_bounded() {
        let mut list = MarkerList::new(3);
        for step in (0..100).step_by(5) {
            list.add(marker(&nan_grad(step, "fc1")).unwrap(), step);
        }
        assert_eq!(list.ranges().len(), 3);
        assert_eq!(list.dropped(), 17);
    }
}
