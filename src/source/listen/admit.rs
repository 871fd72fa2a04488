//! The listener's last check before an event enters the queue: bounds on how many distinct
//! names arrive (each layer, eval name, run and rank costs router and queue state) and a
//! plausible wall clock (the router's clock follows event times).

use std::collections::HashSet;
use std::sync::Arc;

use crate::event::{Event, Payload};

use super::decode::{BadInput, BadKind};

/// Default limit on distinct layers, eval names, runs and ranks (each).
pub const DEFAULT_MAX_SERIES: usize = 1024;

/// Times further than this from the receive time are replaced by it (seconds; one day).
pub const CLOCK_TOLERANCE: f64 = 86_400.0;

/// Admission state.
#[derive(Debug)]
pub struct Admission {
    max: usize,
    layers: HashSet<Arc<str>>,
    evals: HashSet<String>,
    runs: HashSet<Arc<str>>,
    ranks: HashSet<u32>,
    restamped: u64,
}

impl Admission {
    /// Admits at most `max_series` distinct names of each sort.
    pub fn new(max_series: usize) -> Self {
        Admission {
            max: max_series,
            layers: HashSet::new(),
            evals: HashSet::new(),
            runs: HashSet::new(),
            ranks: HashSet::new(),
            restamped: 0,
        }
    }

    /// Events whose time was missing or implausible and got the receive time.
    pub fn restamped(&self) -> u64 {
        self.restamped
    }

    /// Checks `event` received at `now` (Unix seconds): a missing (0) or implausible time is
    /// replaced by `now`; a new name past the limits is refused.
    pub fn admit(&mut self, event: &mut Event, now: f64) -> Result<(), BadInput> {
        let plausible = (now - event.time).abs() <= CLOCK_TOLERANCE; // false for NaN
        if !plausible {
            event.time = now;
            self.restamped += 1;
        }
        if let Some(run) = &event.run {
            check(&mut self.runs, run, self.max, "run")?;
        }
        if let Some(rank) = event.rank {
            if !self.ranks.contains(&rank) {
                if self.ranks.len() >= self.max {
                    return Err(full("rank", &rank.to_string(), self.max));
                }
                self.ranks.insert(rank);
            }
        }
        if let Some(layer) = event.payload.layer() {
            check(&mut self.layers, &layer.name, self.max, "layer")?;
        }
        if let Payload::Diagnosis { layers, .. } = &event.payload {
            for name in layers {
                check(&mut self.layers, name, self.max, "layer")?;
            }
        }
        if let Payload::Eval { name, .. } = &event.payload {
            if !self.evals.contains(name) {
                if self.evals.len() >= self.max {
                    return Err(full("eval name", name, self.max));
                }
                self.evals.insert(name.clone());
            }
        }
        Ok(())
    }
}

fn check(
    set: &mut HashSet<Arc<str>>,
    name: &Arc<str>,
    max: usize,
    what: &str,
) -> Result<(), BadInput> {
    if set.contains(name) {
        return Ok(());
    }
    if set.len() >= max {
        return Err(full(what, name, max));
    }
    set.insert(name.clone());
    Ok(())
}

fn full(what: &str, name: &str, max: usize) -> BadInput {
    BadInput::new(
        BadKind::TooManySeries,
        format!("new {what} {name:?} refused: {max} distinct {what}s already seen (--max-series)"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Layer;

    fn grad(layer: &str, time: f64) -> Event {
        Event::new(
            1,
            0,
            time,
            Payload::GradNorm {
                layer: Layer {
                    name: layer.into(),
                    index: None,
                },
                value: 1.0,
            },
        )
    }

    #[test]
    fn distinct_names_are_bounded_and_known_ones_pass() {
        let mut a = Admission::new(2);
        assert!(a.admit(&mut grad("a", 100.0), 100.0).is_ok());
        assert!(a.admit(&mut grad("b", 100.0), 100.0).is_ok());
        let err = a.admit(&mut grad("c", 100.0), 100.0).unwrap_err();
        assert_eq!(err.kind, BadKind::TooManySeries);
        assert!(a.admit(&mut grad("a", 100.0), 100.0).is_ok());
        let mut ranked = grad("a", 100.0);
        for rank in 0..2 {
            ranked.rank = Some(rank);
            assert!(a.admit(&mut ranked, 100.0).is_ok());
        }
        ranked.rank = Some(9);
        assert!(a.admit(&mut ranked, 100.0).is_err());
    }

    #[test]
    fn missing_and_absurd_times_get_the_receive_time() {
        let mut a = Admission::new(8);
        let now = 1_800_000_000.0;
        for (time, kept) in [
            (0.0, false),
            (1e300, false),
            (-5.0, false),
            (now - 3.0, true),
        ] {
            let mut e = grad("a", time);
            a.admit(&mut e, now).unwrap();
            assert_eq!(e.time, if kept { time } else { now }, "{time}");
        }
        assert_eq!(a.restamped(), 3);
    }
}
