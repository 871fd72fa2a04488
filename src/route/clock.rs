//! The playback clock: the one time base that rate limits, coalescing, `send_on_change` and the
//! monitor's time column run on. Which clock a command uses is its [`PlaybackClock`]:
//!
//! - the **step clock** (`step_secs` a training step) for `render`, `--midi-file`,
//!   `--osc-score`, unpaced replay, `replay --step-ms` and `train --paced`: each step lasts the
//!   same playback time however fast the events came, so a dry run shows every step;
//! - the **recorded clock**, the events' own wall-clock times divided by a speed, for
//!   `replay --speed X` and live `train` (speed 1: the trainer stamps each event as it emits it);
//! - the **wall clock** as events arrive, for `listen` (a foreign sender's clock may be off).
//!
//! ```
//! use sonograd::event::{Event, Payload};
//! use sonograd::route::clock::{Clock, PlaybackClock};
//! let mut clock = Clock::new(PlaybackClock::Steps(0.05));
//! // Two steps recorded a millisecond apart are still 50 ms apart in playback.
//! assert_eq!(clock.at(&Event::new(10, 0, 100.000, Payload::Loss { value: 1.0 })), 0.0);
//! let t = clock.at(&Event::new(11, 0, 100.001, Payload::Loss { value: 1.0 }));
//! assert!((t - 0.05).abs() < 1e-12);
//! ```

use std::time::Instant;

use crate::event::Event;

/// Which clock a playback runs on.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum PlaybackClock {
    /// This many seconds of playback a training step.
    Steps(f64),
    /// The events' recorded wall-clock times, sped up by this factor.
    Recorded(f64),
    /// The wall clock, as events reach the router.
    Wall,
}

impl Default for PlaybackClock {
    /// The recorded clock at real speed.
    fn default() -> Self {
        PlaybackClock::Recorded(1.0)
    }
}

/// The clock's state: seconds since the first event, never going back.
#[derive(Clone, Debug)]
pub struct Clock {
    kind: PlaybackClock,
    /// Time origin: the first event's recorded time (recorded clock).
    origin_time: Option<f64>,
    /// Step origin and the playback time it stands at (step clock); moved when the steps
    /// start again (a looped replay, a second run).
    origin_step: Option<(u64, f64)>,
    last_step: u64,
    started: Option<Instant>,
    last: f64,
    last_seen: Option<Instant>,
}

impl Clock {
    /// A clock of the given kind, at 0 until the first event.
    pub fn new(kind: PlaybackClock) -> Self {
        Clock {
            kind,
            origin_time: None,
            origin_step: None,
            last_step: 0,
            started: None,
            last: 0.0,
            last_seen: None,
        }
    }

    /// Which clock this is.
    pub fn kind(&self) -> PlaybackClock {
        self.kind
    }

    /// The playback time of `event`, in seconds since the first event.
    pub fn at(&mut self, event: &Event) -> f64 {
        let now = Instant::now();
        let t = match self.kind {
            PlaybackClock::Steps(secs) => {
                let (step0, t0) = match self.origin_step {
                    Some(o) if event.step >= self.last_step => o,
                    // The first event, or the steps start again: go on from here.
                    Some(_) => (event.step, self.last + secs),
                    None => (event.step, 0.0),
                };
                self.origin_step = Some((step0, t0));
                self.last_step = event.step;
                t0 + (event.step - step0) as f64 * secs
            }
            PlaybackClock::Recorded(speed) => {
                let origin = *self.origin_time.get_or_insert(event.time);
                (event.time - origin) / speed
            }
            PlaybackClock::Wall => now
                .duration_since(*self.started.get_or_insert(now))
                .as_secs_f64(),
        };
        if t.is_finite() {
            self.last = t.max(self.last);
        }
        self.last_seen = Some(now);
        self.last
    }

    /// The time now, between events: the last event's time plus the wall time since it, so
    /// rate windows still close while a paced or live source waits.
    pub fn idle_now(&self) -> f64 {
        match self.kind {
            PlaybackClock::Wall => self
                .started
                .map_or(0.0, |s| s.elapsed().as_secs_f64())
                .max(self.last),
            _ => self.last + self.last_seen.map_or(0.0, |t| t.elapsed().as_secs_f64()),
        }
    }

    /// The time of the last event.
    pub fn last(&self) -> f64 {
        self.last
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Payload;

    fn ev(step: u64, time: f64) -> Event {
        Event::new(step, 0, time, Payload::Loss { value: 1.0 })
    }

    #[test]
    fn step_clock_ignores_recorded_times_and_survives_a_loop() {
        let mut c = Clock::new(PlaybackClock::Steps(0.1));
        assert_eq!(c.at(&ev(5, 9.0)), 0.0);
        assert!((c.at(&ev(5, 9.5)) - 0.0).abs() < 1e-12);
        assert!((c.at(&ev(7, 9.5001)) - 0.2).abs() < 1e-12);
        // Looped back to step 5: one step later than the last, not back in time.
        assert!((c.at(&ev(5, 9.6)) - 0.3).abs() < 1e-12);
        assert!((c.at(&ev(6, 9.7)) - 0.4).abs() < 1e-12);
    }

    #[test]
    fn recorded_clock_divides_by_the_speed() {
        let mut c = Clock::new(PlaybackClock::Recorded(2.0));
        assert_eq!(c.at(&ev(0, 100.0)), 0.0);
        assert!((c.at(&ev(1, 101.0)) - 0.5).abs() < 1e-12);
        // Never back in time, even if a recorded time does.
        assert!((c.at(&ev(2, 100.5)) - 0.5).abs() < 1e-12);
    }

    #[test]
    fn wall_clock_counts_from_the_first_event() {
        let mut c = Clock::new(PlaybackClock::Wall);
        assert_eq!(c.at(&ev(0, 0.0)), 0.0);
        std::thread::sleep(std::time::Duration::from_millis(20));
        let t = c.at(&ev(1, 0.0));
        assert!(t >= 0.019, "{t}");
        assert!(c.idle_now() >= t);
    }
}
