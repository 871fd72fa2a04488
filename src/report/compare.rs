//! The curves of several runs for one overlay (`sonograd report A B ...`): each run's loss,
//! whole-model gradient norm and learning rate by step, downsampled like the report's other
//! series. A run without `total_norm` events gets its total from the layers' norms of each
//! step (their root sum of squares). An input that holds several runs (a TensorBoard folder)
//! gives one set of curves per run ([`CurveSet`]).

use std::sync::Arc;

use super::downsample::Downsampled;
use super::series::BINS;
use crate::event::{Event, Payload};

/// One run's curves, by step.
#[derive(Clone, Debug)]
pub struct RunCurves {
    /// The run's name (its path as given).
    pub name: String,
    /// Training loss.
    pub loss: Downsampled,
    /// Whole-model gradient norm (given, or from the layers).
    pub total_norm: Downsampled,
    /// Learning rate.
    pub lr: Downsampled,
    /// First and last step.
    pub steps: Option<(u64, u64)>,
    /// Events read.
    pub events: u64,
    has_total: bool,
    layer_step: Option<u64>,
    layer_squares: f64,
    from_layers: Downsampled,
}

impl RunCurves {
    /// No values yet.
    pub fn new(name: impl Into<String>) -> Self {
        RunCurves {
            name: name.into(),
            loss: Downsampled::new(BINS),
            total_norm: Downsampled::new(BINS),
            lr: Downsampled::new(BINS),
            steps: None,
            events: 0,
            has_total: false,
            layer_step: None,
            layer_squares: 0.0,
            from_layers: Downsampled::new(BINS),
        }
    }

    /// Takes in the run's next event.
    pub fn add(&mut self, e: &Event) {
        self.events += 1;
        self.steps = Some(match self.steps {
            Some((a, b)) => (a.min(e.step), b.max(e.step)),
            None => (e.step, e.step),
        });
        match &e.payload {
            Payload::Loss { value } => self.loss.push(e.step, *value),
            Payload::Lr { value } => self.lr.push(e.step, *value),
            Payload::TotalNorm { value } => {
                self.has_total = true;
                self.total_norm.push(e.step, *value);
            }
            Payload::GradNorm { value, .. } => {
                if self.layer_step != Some(e.step) {
                    self.end_layer_step();
                    self.layer_step = Some(e.step);
                }
                self.layer_squares += value * value;
            }
            _ => {}
        }
    }

    fn end_layer_step(&mut self) {
        if let Some(step) = self.layer_step.take() {
            self.from_layers.push(step, self.layer_squares.sqrt());
        }
        self.layer_squares = 0.0;
    }

    /// Ends the run: the total norm falls back on the layers' when none was given.
    pub fn finish(&mut self) {
        self.end_layer_step();
        if !self.has_total {
            self.total_norm = std::mem::replace(&mut self.from_layers, Downsampled::new(2));
        }
    }
}

/// The curves of every run of several inputs, by input and run tag.
#[derive(Clone, Debug, Default)]
pub struct CurveSet {
    entries: Vec<(usize, Option<Arc<str>>, RunCurves)>,
    last: usize,
}

impl CurveSet {
    /// Takes in an event of input number `input`, named `name`.
    pub fn add(&mut self, input: usize, name: &str, e: &Event) {
        let hit = |(i, r, _): &(usize, Option<Arc<str>>, RunCurves)| *i == input && *r == e.run;
        if !self.entries.get(self.last).is_some_and(hit) {
            self.last = match self.entries.iter().position(hit) {
                Some(i) => i,
                None => {
                    self.entries
                        .push((input, e.run.clone(), RunCurves::new(name)));
                    self.entries.len() - 1
                }
            };
        }
        self.entries[self.last].2.add(e);
    }

    /// Whether input number `input` gave any event.
    pub fn has_input(&self, input: usize) -> bool {
        self.entries.iter().any(|(i, _, _)| *i == input)
    }

    /// The finished curves in input order; a run of an input with several is named
    /// `INPUT/RUN`.
    pub fn finish(self) -> Vec<RunCurves> {
        let inputs: Vec<usize> = self.entries.iter().map(|(i, _, _)| *i).collect();
        self.entries
            .into_iter()
            .map(|(input, run, mut c)| {
                let several = inputs.iter().filter(|i| **i == input).count() > 1;
                if let Some(run) = run.filter(|r| several && &**r != ".") {
                    c.name = format!("{}/{run}", c.name.trim_end_matches('/'));
                }
                c.finish();
                c
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Layer;

    #[test]
    fn the_total_comes_from_the_layers_when_missing() {
        let mut c = RunCurves::new("a");
        for step in 0..4u64 {
            for (name, v) in [("fc1", 3.0), ("fc2", 4.0)] {
                let layer = Layer::new(name, 0);
                c.add(&Event::new(
                    step,
                    0,
                    0.0,
                    Payload::GradNorm { layer, value: v },
                ));
            }
            c.add(&Event::new(step, 0, 0.0, Payload::Loss { value: 1.0 }));
        }
        c.finish();
        let bins: Vec<f64> = c.total_norm.bins().map(|(_, b)| b.mean()).collect();
        assert_eq!(bins, [5.0; 4]);
        assert_eq!(c.steps, Some((0, 3)));
        let mut d = RunCurves::new("b");
        d.add(&Event::new(2, 0, 0.0, Payload::TotalNorm { value: 7.0 }));
        d.add(&Event::new(
            2,
            0,
            0.0,
            Payload::GradNorm {
                layer: Layer::new("x", 0),
                value: 1.0,
            },
        ));
        d.finish();
        assert_eq!(
            d.total_norm
                .bins()
                .map(|(_, b)| b.mean())
                .collect::<Vec<_>>(),
            [7.0]
        );
    }

    #[test]
    fn every_run_of_every_input_gets_its_curves() {
        let mut set = CurveSet::default();
        let ev = |run: Option<&str>, step| {
            let mut e = Event::new(step, 0, 0.0, Payload::Loss { value: 1.0 });
            e.run = run.map(Arc::from);
            e
        };
        for step in 0..3 {
            set.add(0, "a.jsonl", &ev(None, step));
            set.add(1, "runs", &ev(Some("lr_0.1"), step));
            set.add(1, "runs", &ev(Some("lr_1"), step + 10));
            set.add(2, "one", &ev(Some("."), step));
        }
        let got: Vec<(String, Option<(u64, u64)>)> = set
            .finish()
            .into_iter()
            .map(|c| (c.name, c.steps))
            .collect();
        assert_eq!(
            got,
            [
                ("a.jsonl".to_string(), Some((0, 2))),
                ("runs/lr_0.1".to_string(), Some((0, 2))),
                ("runs/lr_1".to_string(), Some((10, 12))),
                ("one".to_string(), Some((0, 2))),
            ]
        );
    }
}
