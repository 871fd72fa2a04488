//! What the report draws, gathered from a recording in one streaming pass: per-layer gradient
//! norms, total norm, loss and learning rate (each downsampled to a fixed number of bins),
//! markers, and the step → audio position timeline.

use std::sync::Arc;

use super::downsample::Downsampled;
use super::markers::{marker, MarkerList};
use super::timeline::Timeline;
use crate::event::{Event, Payload};

/// Bins per series: about two per pixel column of the pictures.
pub(crate) const BINS: usize = 2048;
/// Layers drawn at most; more are counted in [`RunData::hidden_layers`].
pub(crate) const MAX_LAYERS: usize = 64;
/// Marker ranges kept at most.
pub(crate) const MAX_MARKERS: usize = 1000;

/// One layer's gradient norms.
#[derive(Clone, Debug)]
pub(crate) struct LayerSeries {
    /// The layer's name.
    pub name: Arc<str>,
    /// Its position from the input, when the recording says.
    pub index: Option<u32>,
    /// The norms by audio position.
    pub norms: Downsampled,
}

/// Everything the report shows, with memory bounded whatever the recording's length.
#[derive(Clone, Debug)]
pub(crate) struct RunData {
    /// Step → audio position.
    pub timeline: Timeline,
    /// Gradient norms per layer, in the model's order (by index, then first appearance).
    pub layers: Vec<LayerSeries>,
    /// Whole-model gradient norm.
    pub total_norm: Downsampled,
    /// Training loss.
    pub loss: Downsampled,
    /// Learning rate.
    pub lr: Downsampled,
    /// Non-finite values and diagnoses.
    pub markers: MarkerList,
    /// Events read.
    pub events: u64,
    /// First and last step seen.
    pub steps: Option<(u64, u64)>,
    /// Layers beyond [`MAX_LAYERS`] that are not drawn.
    pub hidden_layers: u64,
}

impl RunData {
    /// Empty data; `max_gap_steps` as in the render options.
    pub(crate) fn new(max_gap_steps: u64) -> Self {
        RunData {
            timeline: Timeline::new(max_gap_steps),
            layers: Vec::new(),
            total_norm: Downsampled::new(BINS),
            loss: Downsampled::new(BINS),
            lr: Downsampled::new(BINS),
            markers: MarkerList::new(MAX_MARKERS),
            events: 0,
            steps: None,
            hidden_layers: 0,
        }
    }

    /// Takes in the next event of the recording.
    pub(crate) fn add(&mut self, e: &Event) {
        self.events += 1;
        let pos = self.timeline.position(e.step);
        self.steps = Some(match self.steps {
            Some((first, last)) => (first.min(e.step), last.max(e.step)),
            None => (e.step, e.step),
        });
        if let Some(m) = marker(e) {
            self.markers.add(m, pos);
        }
        match &e.payload {
            Payload::GradNorm { layer, value } => {
                let i = match self.layers.iter().position(|l| l.name == layer.name) {
                    Some(i) => i,
                    None if self.layers.len() >= MAX_LAYERS => {
                        self.hidden_layers += 1;
                        return;
                    }
                    None => {
                        self.layers.push(LayerSeries {
                            name: layer.name.clone(),
                            index: layer.index,
                            norms: Downsampled::new(BINS),
                        });
                        // Keep the model's order: layers with an index first, by index.
                        self.layers
                            .sort_by_key(|l| (l.index.is_none(), l.index.unwrap_or(0)));
                        self.layers
                            .iter()
                            .position(|l| l.name == layer.name)
                            .unwrap()
                    }
                };
                self.layers[i].norms.push(pos, *value);
            }
            Payload::TotalNorm { value } => self.total_norm.push(pos, *value),
            Payload::Loss { value } => self.loss.push(pos, *value),
            Payload::Lr { value } => self.lr.push(pos, *value),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Layer, NonFiniteKind, Quantity};

    fn grad(step: u64, name: &str, index: Option<u32>, value: f64) -> Event {
        let layer = Layer {
            name: name.into(),
            index,
        };
        Event::new(step, 0, 0.0, Payload::GradNorm { layer, value })
    }

    #[test]
    fn extracts_each_series_at_its_position() {
        let mut d = RunData::new(40);
        for step in 5..15u64 {
            d.add(&grad(step, "fc2", Some(1), step as f64));
            d.add(&grad(step, "fc1", Some(0), 2.0 * step as f64));
            d.add(&Event::new(
                step,
                0,
                0.0,
                Payload::Loss {
                    value: 1.0 / step as f64,
                },
            ));
            d.add(&Event::new(step, 0, 0.0, Payload::Lr { value: 0.1 }));
        }
        d.add(&Event::new(
            9,
            0,
            0.0,
            Payload::NonFinite {
                layer: None,
                quantity: Quantity::Loss,
                state: NonFiniteKind::Nan,
            },
        ));
        assert_eq!(d.events, 41);
        assert_eq!(d.steps, Some((5, 14)));
        let names: Vec<&str> = d.layers.iter().map(|l| &*l.name).collect();
        assert_eq!(names, ["fc1", "fc2"], "ordered by layer index");
        let fc1: Vec<(u64, f64)> = d.layers[0].norms.bins().map(|(p, b)| (p, b.max)).collect();
        assert_eq!(fc1[0], (0, 10.0));
        assert_eq!(fc1[9], (9, 28.0));
        assert_eq!(d.loss.range(true), Some((1.0 / 14.0, 0.2)));
        assert_eq!(d.lr.range(false), Some((0.1, 0.1)));
        assert!(d.total_norm.is_empty());
        // Step 9 again after step 14 plays one step on, as the renderer plays it.
        let m = &d.markers.ranges()[0];
        assert_eq!(
            (m.marker.step, m.pos, m.marker.label.as_str()),
            (9, 10, "NaN loss")
        );
    }

    #[test]
    fn memory_is_bounded_for_a_long_recording() {
        let mut d = RunData::new(40);
        for step in 0..200_000u64 {
            d.add(&grad(step, "fc1", Some(0), 1.0 + (step % 7) as f64));
        }
        assert!(d.layers[0].norms.bins().count() <= BINS);
        assert_eq!(d.timeline.knot_count(), 2);
        assert_eq!(d.timeline.last_position(), 199_999);
    }

    #[test]
    fn too_many_layers_are_counted_not_kept() {
        let mut d = RunData::new(40);
        for i in 0..(MAX_LAYERS as u32 + 5) {
            d.add(&grad(0, &format!("l{i}"), Some(i), 1.0));
        }
        assert_eq!(d.layers.len(), MAX_LAYERS);
        assert_eq!(d.hidden_layers, 5);
    }
}
