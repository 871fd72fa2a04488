//! Report a recurring problem once, and count it.

use std::fmt::Display;

/// A problem that is printed the first time it happens and only counted afterwards.
#[derive(Debug, Default)]
pub(crate) struct WarnOnce {
    count: u64,
}

impl WarnOnce {
    /// Counts one occurrence; prints `what` (prefixed with `context`) on stderr the first time.
    pub(crate) fn hit(&mut self, context: &str, what: impl Display) {
        if self.count == 0 {
            eprintln!("warning: {context}: {what} (further occurrences are counted, not shown)");
        }
        self.count += 1;
    }

    /// How many times it happened.
    pub(crate) fn count(&self) -> u64 {
        self.count
    }

    /// Forgets earlier occurrences, so the next one is printed again (after a recovery).
    pub(crate) fn reset(&mut self) {
        self.count = 0;
    }
}
