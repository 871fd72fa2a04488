//! Paced playback: hold a source so that each training step lasts `step_ms` of wall time.
//!
//! The source (trainer or replay) calls [`Pacer::wait_for_step`] before emitting a step's
//! events; it sleeps until that step's start. It never waits on the audio device.
//!
//! ```
//! use sonograd::synth::pace::Pacer;
//! let mut p = Pacer::new(1.0);
//! p.wait_for_step(0);
//! p.wait_for_step(2); // about 2 ms later
//! assert!(p.elapsed_ms() >= 2.0);
//! ```

use std::time::{Duration, Instant};

/// Step clock for paced mode. See the module docs.
#[derive(Clone, Debug)]
pub struct Pacer {
    step_ms: f64,
    start: Option<(Instant, u64)>,
}

impl Pacer {
    /// A pacer giving each step `step_ms` milliseconds.
    pub fn new(step_ms: f64) -> Pacer {
        Pacer {
            step_ms: step_ms.max(0.0),
            start: None,
        }
    }

    /// Sleeps until step `step` is due (the first step seen is due at once). Steps that go
    /// backwards or are already due return at once.
    pub fn wait_for_step(&mut self, step: u64) {
        let (t0, s0) = *self.start.get_or_insert((Instant::now(), step));
        let due =
            t0 + Duration::from_secs_f64(step.saturating_sub(s0) as f64 * self.step_ms * 1e-3);
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        }
    }

    /// Milliseconds since the first step.
    pub fn elapsed_ms(&self) -> f64 {
        self.start
            .map_or(0.0, |(t0, _)| t0.elapsed().as_secs_f64() * 1e3)
    }
}
