//! Counting bad inputs by category and warning about them without flooding the terminal.

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::decode::{BadInput, BadKind};

/// Shortest time between two warnings of the same category.
pub(crate) const WARN_INTERVAL: Duration = Duration::from_secs(5);

/// Counts of bad inputs per [`BadKind`], shared by the input threads.
#[derive(Debug, Default)]
pub(crate) struct BadCounts {
    counts: [AtomicU64; BadKind::ALL.len()],
}

impl BadCounts {
    /// Counts one bad input.
    pub(crate) fn add(&self, kind: BadKind) {
        self.counts[kind.index()].fetch_add(1, Ordering::Relaxed);
    }

    /// Bad inputs of `kind` so far.
    pub(crate) fn get(&self, kind: BadKind) -> u64 {
        self.counts[kind.index()].load(Ordering::Relaxed)
    }

    #[cfg(test)]
    /// All bad inputs so far.
    pub(crate) fn total(&self) -> u64 {
        BadKind::ALL.iter().map(|&k| self.get(k)).sum()
    }

    /// The non-zero counts, in report order.
    pub(crate) fn snapshot(&self) -> Vec<(BadKind, u64)> {
        BadKind::ALL
            .iter()
            .map(|&k| (k, self.get(k)))
            .filter(|&(_, n)| n > 0)
            .collect()
    }
}

/// Per-category warning state.
#[derive(Default, Clone, Copy)]
struct Slot {
    last: Option<Instant>,
    suppressed: u64,
}

/// Prints a warning per category at most every [`WARN_INTERVAL`], with one example and the
/// number of similar inputs held back since the last warning.
pub(crate) struct Warner {
    out: Mutex<(Box<dyn Write + Send>, [Slot; BadKind::ALL.len()])>,
    interval: Duration,
    enabled: bool,
}

impl Warner {
    /// Warnings go to `out`; `enabled: false` only counts.
    pub(crate) fn new(out: Box<dyn Write + Send>, enabled: bool, interval: Duration) -> Self {
        Warner {
            out: Mutex::new((out, [Slot::default(); BadKind::ALL.len()])),
            interval,
            enabled,
        }
    }

    /// Reports one bad input from `input` (e.g. `udp-json 127.0.0.1:9107`) with the raw
    /// `example` it came from; returns whether a line was printed.
    pub(crate) fn warn(&self, input: &str, bad: &BadInput, example: &str) -> bool {
        if !self.enabled {
            return false;
        }
        let Ok(mut guard) = self.out.lock() else {
            return false;
        };
        let (out, slots) = &mut *guard;
        let slot = &mut slots[bad.kind.index()];
        let now = Instant::now();
        if slot
            .last
            .is_some_and(|t| now.duration_since(t) < self.interval)
        {
            slot.suppressed += 1;
            return false;
        }
        let more = if slot.suppressed > 0 {
            format!(
                " ({} more {} since the last warning)",
                slot.suppressed, bad.kind
            )
        } else {
            String::new()
        };
        slot.last = Some(now);
        slot.suppressed = 0;
        let _ = writeln!(out, "warning: {input}: {bad}{more}; input: {example}");
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);
    impl Write for Shared {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn warnings_are_rate_limited_per_category() {
        let buf = Shared::default();
        let w = Warner::new(Box::new(buf.clone()), true, Duration::from_secs(3600));
        let a = BadInput::new(BadKind::NotJson, "x");
        let b = BadInput::new(BadKind::Empty, "y");
        assert!(w.warn("stdin", &a, "garbage"));
        for _ in 0..1000 {
            assert!(!w.warn("stdin", &a, "garbage"));
        }
        assert!(w.warn("stdin", &b, ""));
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        assert_eq!(text.lines().count(), 2, "{text}");
        assert!(text.contains("not_json: x; input: garbage"), "{text}");
    }

    #[test]
    fn the_summary_after_an_interval_counts_what_was_held_back() {
        let buf = Shared::default();
        let w = Warner::new(Box::new(buf.clone()), true, Duration::from_millis(1));
        let a = BadInput::new(BadKind::NotJson, "x");
        w.warn("stdin", &a, "1");
        let w2 = &w;
        // Within the interval: held back; after it: printed with the count.
        if let Ok(mut g) = w2.out.lock() {
            g.1[BadKind::NotJson.index()].last = Some(Instant::now() + Duration::from_millis(50));
        }
        assert!(!w.warn("stdin", &a, "2"));
        std::thread::sleep(Duration::from_millis(100));
        assert!(w.warn("stdin", &a, "3"));
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        assert!(
            text.contains("(1 more not_json since the last warning)"),
            "{text}"
        );
    }

    #[test]
    fn counts_add_up() {
        let c = BadCounts::default();
        c.add(BadKind::NotOsc);
        c.add(BadKind::NotOsc);
        c.add(BadKind::Empty);
        assert_eq!(c.total(), 3);
        assert_eq!(
            c.snapshot(),
            vec![(BadKind::Empty, 1), (BadKind::NotOsc, 2)]
        );
    }
}
