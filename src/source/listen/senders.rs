//! Telling senders (ranks and runs of a distributed job) apart: a filter that routes only
//! some of them, and a bounded tally of events per sender for the report.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::event::Event;

/// Which senders' events pass: all when both lists are empty; otherwise the event's run must
/// be in `runs` (when given) and its rank in `ranks` (when given).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SenderFilter {
    /// Run tags to keep.
    pub runs: Vec<String>,
    /// Ranks to keep.
    pub ranks: Vec<u32>,
}

impl SenderFilter {
    /// Whether the filter lets everything through.
    pub fn is_all(&self) -> bool {
        self.runs.is_empty() && self.ranks.is_empty()
    }

    /// Whether `event` passes.
    pub fn accepts(&self, event: &Event) -> bool {
        let run_ok = self.runs.is_empty()
            || event
                .run
                .as_deref()
                .is_some_and(|r| self.runs.iter().any(|w| w == r));
        let rank_ok = self.ranks.is_empty() || event.rank.is_some_and(|r| self.ranks.contains(&r));
        run_ok && rank_ok
    }
}

/// A sender: run tag and rank, either absent.
pub type SenderKey = (Option<Arc<str>>, Option<u32>);

/// Events per sender, for at most a fixed number of senders (the rest are lumped together).
#[derive(Debug, Default)]
pub struct SenderTally {
    counts: BTreeMap<SenderKey, u64>,
    others: u64,
}

/// Most senders tallied one by one.
pub const MAX_TALLIED: usize = 256;

impl SenderTally {
    /// Counts one event.
    pub fn add(&mut self, event: &Event) {
        let key = (event.run.clone(), event.rank);
        if let Some(n) = self.counts.get_mut(&key) {
            *n += 1;
        } else if self.counts.len() < MAX_TALLIED {
            self.counts.insert(key, 1);
        } else {
            self.others += 1;
        }
    }

    /// Per-sender counts, and the count of events from senders past the limit.
    pub fn into_parts(self) -> (Vec<(SenderKey, u64)>, u64) {
        (self.counts.into_iter().collect(), self.others)
    }
}

/// `run=a,rank=1`, `rank=0`, or `untagged`.
pub fn describe(key: &SenderKey) -> String {
    match key {
        (None, None) => "untagged".into(),
        (Some(run), None) => format!("run={run}"),
        (None, Some(rank)) => format!("rank={rank}"),
        (Some(run), Some(rank)) => format!("run={run},rank={rank}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Payload;

    fn ev(run: Option<&str>, rank: Option<u32>) -> Event {
        let mut e = Event::new(0, 0, 0.0, Payload::Loss { value: 1.0 });
        e.run = run.map(Into::into);
        e.rank = rank;
        e
    }

    #[test]
    fn the_filter_keeps_chosen_ranks_and_runs() {
        let all = SenderFilter::default();
        assert!(all.accepts(&ev(None, None)) && all.is_all());
        let f = SenderFilter {
            runs: vec!["a".into()],
            ranks: vec![0],
        };
        assert!(f.accepts(&ev(Some("a"), Some(0))));
        assert!(!f.accepts(&ev(Some("a"), Some(1))));
        assert!(!f.accepts(&ev(Some("b"), Some(0))));
        assert!(!f.accepts(&ev(None, Some(0))));
    }

    #[test]
    fn the_tally_is_bounded() {
        let mut t = SenderTally::default();
        for rank in 0..(MAX_TALLIED as u32 + 10) {
            t.add(&ev(None, Some(rank)));
        }
        t.add(&ev(None, Some(0)));
        let (counts, others) = t.into_parts();
        assert_eq!(counts.len(), MAX_TALLIED);
        assert_eq!(others, 10);
        assert_eq!(counts[0], ((None, Some(0)), 2));
    }
}
