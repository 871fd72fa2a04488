//! Replay pacing, step filtering and looping: pure functions of the events, no clocks.
//!
//! A [`Schedule`] says *when*, as an offset from the start of the replay, each event is due:
//! by the recorded wall clock divided by a speed (`--speed 4`), or a fixed time per step
//! (`--step-ms 20`). Long pauses in a recording (a run stopped overnight) are shortened to
//! `max_gap`. A [`StepRange`] keeps `--from-step`/`--to-step`. A [`LoopClock`] shifts the
//! times of each further pass (`--loop`) so the router's clock, which follows event times,
//! keeps moving forward.

use std::time::Duration;

use crate::event::{Event, Payload};

/// How fast a replay goes.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Pace {
    /// No waiting at all.
    AsFast,
    /// Recorded wall-clock time divided by this factor (`1` is real time).
    Speed(f64),
    /// This many milliseconds per optimizer step, whatever the recorded times.
    StepMs(f64),
}

/// A bad pacing flag.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PaceError {
    /// `--speed` not a positive finite number.
    #[error("--speed {0}: expected a number greater than 0, e.g. 4 or 0.5")]
    Speed(String),
    /// `--step-ms` not a non-negative finite number.
    #[error("--step-ms {0}: expected milliseconds per step, 0 or more, e.g. 20")]
    StepMs(String),
    /// Both flags given.
    #[error("--speed and --step-ms cannot be combined: pick one")]
    Both,
    /// `--from-step` after `--to-step`.
    #[error("--from-step {from} is after --to-step {to}")]
    Range {
        /// First step kept.
        from: u64,
        /// Last step kept.
        to: u64,
    },
}

impl Pace {
    /// The pace from the `--speed` and `--step-ms` flags (as typed; none: as fast as possible).
    pub fn from_flags(speed: Option<&str>, step_ms: Option<&str>) -> Result<Pace, PaceError> {
        match (speed, step_ms) {
            (Some(_), Some(_)) => Err(PaceError::Both),
            (Some(s), None) => match s.trim().parse::<f64>() {
                Ok(x) if x.is_finite() && x > 0.0 => Ok(Pace::Speed(x)),
                _ => Err(PaceError::Speed(s.to_string())),
            },
            (None, Some(s)) => match s.trim().parse::<f64>() {
                Ok(x) if x.is_finite() && x >= 0.0 => Ok(Pace::StepMs(x)),
                _ => Err(PaceError::StepMs(s.to_string())),
            },
            (None, None) => Ok(Pace::AsFast),
        }
    }
}

/// Default longest wait between two events, in replay time.
pub const DEFAULT_MAX_GAP: Duration = Duration::from_secs(5);

/// Computes when each event is due.
#[derive(Clone, Debug)]
pub struct Schedule {
    pace: Pace,
    max_gap: f64,
    last: Option<(f64, u64)>,
    offset: f64,
}

impl Schedule {
    /// A pacer; waits between events never exceed `max_gap`.
    pub fn new(pace: Pace, max_gap: Duration) -> Self {
        Schedule {
            pace,
            max_gap: max_gap.as_secs_f64(),
            last: None,
            offset: 0.0,
        }
    }

    /// When `event` is due, from the start of the replay. Never earlier than the previous
    /// event's (times going backwards, e.g. a second run in one file, add no wait).
    pub fn due(&mut self, event: &Event) -> Duration {
        let (time, step) = (event.time, event.step);
        if let Some((last_time, last_step)) = self.last {
            let wait = match self.pace {
                Pace::AsFast => 0.0,
                Pace::Speed(speed) => (time - last_time) / speed,
                Pace::StepMs(ms) => step.saturating_sub(last_step) as f64 * ms / 1000.0,
            };
            if wait.is_finite() && wait > 0.0 {
                self.offset += wait.min(self.max_gap);
            }
        }
        // Remember the furthest point reached, so going back and forth adds no wait twice.
        self.last = Some(match self.last {
            Some((t, s)) => (t.max(time), s.max(step)),
            None => (time, step),
        });
        Duration::from_secs_f64(self.offset)
    }
}

/// `--from-step` / `--to-step`, both inclusive. Run boundaries always pass, so routing knows
/// the layers and the run's end.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StepRange {
    /// First step kept.
    pub from: Option<u64>,
    /// Last step kept.
    pub to: Option<u64>,
}

impl StepRange {
    /// A checked range.
    pub fn new(from: Option<u64>, to: Option<u64>) -> Result<Self, PaceError> {
        if let (Some(from), Some(to)) = (from, to) {
            if from > to {
                return Err(PaceError::Range { from, to });
            }
        }
        Ok(StepRange { from, to })
    }

    /// Whether `event` is replayed.
    pub fn keeps(&self, event: &Event) -> bool {
        if matches!(
            event.payload,
            Payload::RunStart { .. } | Payload::RunEnd { .. }
        ) {
            return true;
        }
        self.from.is_none_or(|f| event.step >= f) && self.to.is_none_or(|t| event.step <= t)
    }
}

/// Shifts event times on each pass of a looping replay.
#[derive(Clone, Debug, Default)]
pub struct LoopClock {
    pass: u64,
    first: Option<f64>,
    last: f64,
    shift: f64,
}

/// Pause between two passes, in recorded seconds.
const LOOP_GAP: f64 = 1.0;

impl LoopClock {
    /// Call with each event of a pass, before using it: applies the current shift.
    pub fn apply(&mut self, event: &mut Event) {
        if self.pass == 0 {
            let first = *self.first.get_or_insert(event.time);
            self.last = self.last.max(event.time).max(first);
        }
        event.time += self.shift;
    }

    /// Call when a pass ended: the next pass runs after this one on the clock.
    pub fn next_pass(&mut self) {
        self.pass += 1;
        let span = self.last - self.first.unwrap_or(self.last);
        self.shift = self.pass as f64 * (span + LOOP_GAP);
    }

    /// Passes completed.
    pub fn passes(&self) -> u64 {
        self.pass
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(step: u64, time: f64) -> Event {
        Event::new(step, 0, time, Payload::Loss { value: 1.0 })
    }

    fn secs(d: Duration) -> f64 {
        (d.as_secs_f64() * 1e6).round() / 1e6
    }

    #[test]
    fn speed_divides_recorded_time() {
        let mut p = Schedule::new(Pace::Speed(4.0), DEFAULT_MAX_GAP);
        let due: Vec<f64> = [(0, 100.0), (1, 102.0), (2, 101.0), (3, 106.0)]
            .iter()
            .map(|&(s, t)| secs(p.due(&ev(s, t))))
            .collect();
        // 100 -> 0, 102 -> 0.5, back in time -> no wait, 106 -> 0.5 + 1.0.
        assert_eq!(due, vec![0.0, 0.5, 0.5, 1.5]);
    }

    #[test]
    fn step_ms_ignores_times_and_gaps_are_capped() {
        let mut p = Schedule::new(Pace::StepMs(20.0), Duration::from_millis(100));
        let due: Vec<f64> = [(10, 5.0), (10, 0.0), (11, 0.0), (100, 0.0)]
            .iter()
            .map(|&(s, t)| secs(p.due(&ev(s, t))))
            .collect();
        assert_eq!(due, vec![0.0, 0.0, 0.02, 0.12]);
        let mut fast = Schedule::new(Pace::AsFast, DEFAULT_MAX_GAP);
        assert_eq!(fast.due(&ev(0, 0.0)), Duration::ZERO);
        assert_eq!(fast.due(&ev(9, 1e9)), Duration::ZERO);
    }

    #[test]
    fn flags_are_checked() {
        assert_eq!(Pace::from_flags(Some("4"), None), Ok(Pace::Speed(4.0)));
        assert_eq!(Pace::from_flags(None, Some("20")), Ok(Pace::StepMs(20.0)));
        assert_eq!(Pace::from_flags(None, None), Ok(Pace::AsFast));
        for bad in ["0", "-1", "fast", "NaN", "inf"] {
            let err = Pace::from_flags(Some(bad), None).unwrap_err().to_string();
            assert!(err.starts_with(&format!("--speed {bad}:")), "{err}");
        }
        assert!(Pace::from_flags(None, Some("-3")).is_err());
        assert_eq!(Pace::from_flags(Some("1"), Some("1")), Err(PaceError::Both));
        assert!(StepRange::new(Some(5), Some(4)).is_err());
    }

    #[test]
    fn the_step_range_keeps_run_boundaries() {
        let r = StepRange::new(Some(10), Some(20)).unwrap();
        assert!(!r.keeps(&ev(9, 0.0)));
        assert!(r.keeps(&ev(10, 0.0)) && r.keeps(&ev(20, 0.0)));
        assert!(!r.keeps(&ev(21, 0.0)));
        let start = Event::new(
            0,
            0,
            0.0,
            Payload::RunStart {
                info: Box::default(),
            },
        );
        assert!(r.keeps(&start));
        assert!(StepRange::default().keeps(&ev(u64::MAX, 0.0)));
    }

    #[test]
    fn each_loop_pass_runs_later_on_the_clock() {
        let mut clock = LoopClock::default();
        let mut times = Vec::new();
        for _ in 0..3 {
            for t in [100.0, 101.0, 110.0] {
                let mut e = ev(0, t);
                clock.apply(&mut e);
                times.push(e.time);
            }
            clock.next_pass();
        }
        assert_eq!(
            times,
            vec![100.0, 101.0, 110.0, 111.0, 112.0, 121.0, 122.0, 123.0, 132.0]
        );
        assert_eq!(clock.passes(), 3);
    }
}
