//! Paced playback: hold a source so that each training step lasts `step_ms` of wall time.
//!
//! The source (trainer or replay) calls [`StepPacer::wait_for_step`] before emitting a step's
//! events; it sleeps until that step's start. It never waits on the audio device.
//!
//! ```
//! use sonograd::source::step_pace::StepPacer;
//! let mut p = StepPacer::new(1.0);
//! p.wait_for_step(0);
//! p.wait_for_step(2); // about 2 ms later
//! assert!(p.elapsed_ms() >= 2.0);
//! ```

use std::time::{Duration, Instant};

/// Step clock for paced mode. See the module docs.
#[derive(Clone, Debug)]
pub struct StepPacer {
    step_ms: f64,
    start: Option<(Instant, u64)>,
}

impl StepPacer {
    /// A pacer giving each step `step_ms` milliseconds.
    pub fn new(step_ms: f64) -> StepPacer {
        StepPacer {
            step_ms: step_ms.max(0.0),
            start: None,
        }
    }

    /// Sleeps until step `step` is due (the first step seen is due at once). Steps that go
    /// backwards or are already due return at once. A step more than a whole step late (the
    /// run was paused or stalled) starts the clock again from itself, so the steps after it
    /// keep the pace instead of rushing to catch up.
    pub fn wait_for_step(&mut self, step: u64) {
        let due = self.due(step);
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        }
    }

    /// When step `step` is due, by the rules of [`StepPacer::wait_for_step`] (which sleeps
    /// until then; a caller that wants to do something while it waits uses this).
    pub fn due(&mut self, step: u64) -> Instant {
        let (t0, s0) = *self.start.get_or_insert((Instant::now(), step));
        let due =
            t0 + Duration::from_secs_f64(step.saturating_sub(s0) as f64 * self.step_ms * 1e-3);
        let now = Instant::now();
        if now > due && now - due > Duration::from_secs_f64(self.step_ms * 1e-3) {
            self.start = Some((now, step));
            return now;
        }
        due
    }

    /// Milliseconds since the first step.
    pub fn elapsed_ms(&self) -> f64 {
        self.start
            .map_or(0.0, |(t0, _)| t0.elapsed().as_secs_f64() * 1e3)
    }
}

/// An event sink that holds the source to the step clock: the first event of each new step
/// waits until that step is due, then everything goes on to `inner` (which never blocks).
pub struct PacedSink<'a> {
    inner: &'a mut dyn crate::source::EventSink,
    pacer: StepPacer,
    last_step: Option<u64>,
}

impl<'a> PacedSink<'a> {
    /// Paces `inner` at `step_ms` milliseconds a step.
    pub fn new(inner: &'a mut dyn crate::source::EventSink, step_ms: f64) -> Self {
        PacedSink {
            inner,
            pacer: StepPacer::new(step_ms),
            last_step: None,
        }
    }
}

impl crate::source::EventSink for PacedSink<'_> {
    fn emit(&mut self, event: crate::event::Event) {
        if self.last_step.is_none_or(|s| event.step > s) {
            self.last_step = Some(event.step);
            self.pacer.wait_for_step(event.step);
        }
        self.inner.emit(event)
    }

    fn coalesced(&self) -> u64 {
        self.inner.coalesced()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Event, Payload};
    use crate::source::EventSink;

    fn loss(step: u64) -> Event {
        Event::new(step, 0, 0.0, Payload::Loss { value: 1.0 })
    }

    #[test]
    fn paced_sink_holds_each_new_step_to_the_clock() {
        let mut got: Vec<Event> = Vec::new();
        let t0 = std::time::Instant::now();
        {
            let mut sink = PacedSink::new(&mut got, 20.0);
            for step in 0..5 {
                sink.emit(loss(step));
                sink.emit(loss(step)); // same step: no wait
            }
        }
        let ms = t0.elapsed().as_secs_f64() * 1e3;
        assert_eq!(got.len(), 10);
        assert!(ms >= 80.0, "5 steps at 20 ms took only {ms:.1} ms");
        assert!(ms < 400.0, "5 steps at 20 ms took {ms:.1} ms");
    }

    #[test]
    fn after_a_pause_the_steps_keep_the_pace_instead_of_rushing() {
        let mut p = StepPacer::new(20.0);
        p.wait_for_step(0);
        p.wait_for_step(1);
        // Paused for ten steps' worth.
        std::thread::sleep(Duration::from_millis(200));
        let t = Instant::now();
        p.wait_for_step(2);
        for step in 3..7 {
            p.wait_for_step(step);
        }
        let ms = t.elapsed().as_secs_f64() * 1e3;
        assert!(
            ms >= 75.0,
            "4 steps at 20 ms after a pause took only {ms:.1} ms"
        );
    }
}
