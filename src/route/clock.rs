//! The playback clock: the one time base that rate limits, coalescing, `send_on_change` and the
//! monitor's time column run on. Which clock a command uses is its [`PlaybackClock`]:
//!
//! - the **step clock** (`step_secs` a training step) for `render`, `--midi-file`,
//!   `--osc-score`, unpaced replay, `replay --step-ms` and `train --paced`: each step lasts the
//!   same playback time however fast the events came, so a dry run shows every step. Where
//!   each step plays is the one rule of [`StepPositions`]: a jump in the step counter lasts
//!   at most [`DEFAULT_MAX_GAP_STEPS`] steps, a step that goes backwards plays one step on;
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

/// Longest a jump in the step counter lasts on the step clock, in steps: a recording that
/// skips from step 10 to 10^9 (a resumed run, logging that restarts) does not play hours of
/// silence.
pub const DEFAULT_MAX_GAP_STEPS: u64 = 40;

/// Where each step plays on the step clock, in steps from the first (its *position*): one
/// rule for the router's clock, the rendered audio and the report's time axis.
///
/// - The first step is at 0; the events of one step share its position.
/// - A step after the last is `step - last` further on, but at most `max_gap` steps.
/// - A step before the last (a second run in one file, a looped replay, a run resumed from
///   a checkpoint) plays one step after the last: every step has a place of its own.
///
/// ```
/// use sonograd::route::clock::StepPositions;
/// let mut p = StepPositions::new(40);
/// assert_eq!([0, 1, 1, 1_000_000, 3].map(|s| p.position(s)), [0, 1, 1, 41, 42]);
/// ```
#[derive(Clone, Debug)]
pub struct StepPositions {
    max_gap: u64,
    prev: Option<u64>,
    pos: u64,
}

impl StepPositions {
    /// Positions with jumps capped at `max_gap` steps (at least 1).
    pub fn new(max_gap: u64) -> Self {
        StepPositions {
            max_gap: max_gap.max(1),
            prev: None,
            pos: 0,
        }
    }

    /// The position of an event's step; call it for every event, in stream order.
    pub fn position(&mut self, step: u64) -> u64 {
        match self.prev {
            Some(p) if p == step => return self.pos,
            Some(p) if step > p => self.pos += (step - p).min(self.max_gap),
            Some(_) => self.pos += 1,
            None => {}
        }
        self.prev = Some(step);
        self.pos
    }

    /// Whether a step has been seen.
    pub fn started(&self) -> bool {
        self.prev.is_some()
    }

    /// The position of the last step seen (0 before any).
    pub fn last(&self) -> u64 {
        self.pos
    }
}

/// The clock's state: seconds since the first event, never going back.
#[derive(Clone, Debug)]
pub struct Clock {
    kind: PlaybackClock,
    /// Time origin: the first event's recorded time (recorded clock).
    origin_time: Option<f64>,
    /// Where each step plays (step clock).
    positions: StepPositions,
    started: Option<Instant>,
    last: f64,
    last_seen: Option<Instant>,
}

impl Clock {
    /// A clock of the given kind, at 0 until the first event; a step clock caps jumps at
    /// [`DEFAULT_MAX_GAP_STEPS`].
    pub fn new(kind: PlaybackClock) -> Self {
        Clock::with_max_gap(kind, DEFAULT_MAX_GAP_STEPS)
    }

    /// As [`Clock::new`], with jumps in the step counter capped at `max_gap` steps.
    pub fn with_max_gap(kind: PlaybackClock, max_gap: u64) -> Self {
        Clock {
            kind,
            origin_time: None,
            positions: StepPositions::new(max_gap),
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
            PlaybackClock::Steps(secs) => self.positions.position(event.step) as f64 * secs,
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

    /// When the playback ends, after the last event: on the step clock, one step after the
    /// last step (its messages and audio get their whole step); on the others, now.
    pub fn end(&self) -> f64 {
        match self.kind {
            PlaybackClock::Steps(secs) if self.positions.started() => {
                (self.positions.last() + 1) as f64 * secs
            }
            PlaybackClock::Steps(_) => self.last,
            _ => self.idle_now(),
        }
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
        assert!(
            (c.end() - 0.5).abs() < 1e-12,
            "the last step lasts its whole step"
        );
    }

    #[test]
    fn step_clock_caps_a_jump_in_the_step_counter() {
        let mut c = Clock::with_max_gap(PlaybackClock::Steps(0.05), 40);
        assert_eq!(c.at(&ev(10, 0.0)), 0.0);
        assert!(
            (c.at(&ev(1_000_000_000, 0.0)) - 2.0).abs() < 1e-12,
            "40 steps, not years"
        );
        assert!((c.at(&ev(1_000_000_001, 0.0)) - 2.05).abs() < 1e-12);
        // Logging every 10 steps keeps its spacing.
        let mut every = Clock::new(PlaybackClock::Steps(0.05));
        every.at(&ev(0, 0.0));
        assert!((every.at(&ev(10, 0.0)) - 0.5).abs() < 1e-12);
    }

    #[test]
    fn positions_give_every_step_its_own_place() {
        let mut p = StepPositions::new(40);
        assert!(!p.started());
        assert_eq!(p.position(5), 0);
        assert_eq!(p.position(5), 0, "a second event of the step");
        assert_eq!(p.position(6), 1);
        assert_eq!(p.position(3), 2, "a step going back plays one step on");
        assert_eq!(p.position(4), 3);
        assert_eq!(p.position(100), 43);
        assert_eq!(p.last(), 43);
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
