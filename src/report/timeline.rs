//! The report's time axis: where each step sounds in the rendered audio.
//!
//! The renderer plays each step at its position on the step clock
//! ([`crate::route::clock::StepPositions`]: a jump in the step counter lasts at most
//! `max_gap_steps` steps, a step that goes backwards plays one step on). [`Timeline`] uses
//! the same rule, so a step's *position* (audio time in steps) is where both pictures draw
//! it, and keeps a few knots to label the axis with step numbers again.

use crate::route::clock::StepPositions;

/// Most knots kept; past this, every other interior knot is dropped (labels get coarser).
const MAX_KNOTS: usize = 4096;

/// Step → audio position, as the renderer plays the steps.
#[derive(Clone, Debug)]
pub(crate) struct Timeline {
    positions: StepPositions,
    prev: Option<u64>,
    /// (position, step) points of a piecewise-linear map; collinear points are merged.
    knots: Vec<(u64, u64)>,
}

impl Timeline {
    /// An empty timeline; `max_gap_steps` as in the render options.
    pub(crate) fn new(max_gap_steps: u64) -> Self {
        Timeline {
            positions: StepPositions::new(max_gap_steps),
            prev: None,
            knots: Vec::new(),
        }
    }

    /// The position of an event's step; call it for every event, in recording order.
    pub(crate) fn position(&mut self, step: u64) -> u64 {
        if self.prev == Some(step) {
            return self.positions.last();
        }
        self.prev = Some(step);
        let pos = self.positions.position(step);
        self.add_knot(pos, step);
        pos
    }

    #[cfg(test)]
    /// Position of the last step seen (0 when none).
    pub(crate) fn last_position(&self) -> u64 {
        self.positions.last()
    }

    fn add_knot(&mut self, pos: u64, step: u64) {
        let n = self.knots.len();
        if n >= 2 {
            let (p0, s0) = self.knots[n - 2];
            let (p1, s1) = self.knots[n - 1];
            // Same slope (in i128, no overflow): extend the last segment instead.
            let lhs = (step as i128 - s1 as i128) * (p1 as i128 - p0 as i128);
            let rhs = (s1 as i128 - s0 as i128) * (pos as i128 - p1 as i128);
            if lhs == rhs && pos > p1 && p1 > p0 {
                self.knots[n - 1] = (pos, step);
                return;
            }
        }
        self.knots.push((pos, step));
        if self.knots.len() > MAX_KNOTS {
            let last = *self.knots.last().unwrap();
            let mut i = 0;
            self.knots.retain(|_| {
                i += 1;
                i % 2 == 1
            });
            if self.knots.last() != Some(&last) {
                self.knots.push(last);
            }
        }
    }

    /// The step (fractional) that sounds at `pos`; past the last step it goes on one step
    /// per position, so the audio's tail is labelled too.
    pub(crate) fn step_at(&self, pos: f64) -> f64 {
        let Some(&(p_first, s_first)) = self.knots.first() else {
            return pos;
        };
        if pos <= p_first as f64 || self.knots.len() == 1 {
            return s_first as f64 + (pos - p_first as f64);
        }
        let i = self.knots.partition_point(|&(p, _)| (p as f64) <= pos);
        if i >= self.knots.len() {
            let (p, s) = *self.knots.last().unwrap();
            return s as f64 + (pos - p as f64);
        }
        let (p0, s0) = self.knots[i - 1];
        let (p1, s1) = self.knots[i];
        let t = (pos - p0 as f64) / (p1 - p0) as f64;
        s0 as f64 + t * (s1 as f64 - s0 as f64)
    }

    #[cfg(test)]
    /// Knots kept (for tests and memory checks).
    pub(crate) fn knot_count(&self) -> usize {
        self.knots.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consecutive_steps_are_one_position_apart_from_the_first() {
        let mut t = Timeline::new(40);
        for (i, s) in (100..200u64).enumerate() {
            assert_eq!(t.position(s), i as u64);
            assert_eq!(t.position(s), i as u64, "a second event of the step");
        }
        assert_eq!(t.knot_count(), 2, "a straight line needs two knots");
        assert_eq!(t.step_at(0.0), 100.0);
        assert_eq!(t.step_at(50.5), 150.5);
        assert_eq!(
            t.step_at(120.0),
            220.0,
            "the tail goes on one step per position"
        );
    }

    #[test]
    fn long_gaps_are_capped_like_the_renderer() {
        let mut t = Timeline::new(40);
        assert_eq!(t.position(0), 0);
        assert_eq!(t.position(1), 1);
        assert_eq!(t.position(1_000_000), 41);
        assert_eq!(t.position(1_000_001), 42);
        assert_eq!(t.step_at(41.0), 1_000_000.0);
        assert_eq!(t.step_at(21.0), 500_000.5);
        // Logging every 100 steps: one segment of slope 100/40, whatever the length.
        let mut every = Timeline::new(40);
        for k in 0..10_000u64 {
            assert_eq!(every.position(k * 100), k * 40);
        }
        assert_eq!(every.knot_count(), 2);
        assert_eq!(every.step_at(400.0), 1000.0);
    }

    #[test]
    fn a_step_going_back_plays_one_step_on() {
        let mut t = Timeline::new(40);
        t.position(5);
        t.position(6);
        assert_eq!(t.position(3), 2);
        assert_eq!(t.position(4), 3);
        assert_eq!(t.step_at(2.0), 3.0);
    }

    #[test]
    fn knots_stay_bounded_on_an_irregular_recording() {
        let mut t = Timeline::new(40);
        let mut step = 0;
        for k in 0..100_000u64 {
            step += 1 + (k % 3) * 50;
            t.position(step);
        }
        assert!(t.knot_count() <= MAX_KNOTS + 1, "{}", t.knot_count());
        // The labels still end at the last step.
        assert_eq!(t.step_at(t.last_position() as f64), step as f64);
    }
}
