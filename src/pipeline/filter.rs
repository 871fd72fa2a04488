//! Routing only some senders of a distributed job: a consumer wrapper that hands on the
//! events a [`SenderFilter`] accepts.

use std::io;

use crate::event::Event;
use crate::pipeline::consume::EventConsumer;
use crate::pipeline::Report;
use crate::source::listen::SenderFilter;

/// Hands only the events a [`SenderFilter`] accepts to the consumer it wraps (e.g. the
/// dispatcher, while the recorder still gets every event).
pub(crate) struct Filtered {
    inner: Box<dyn EventConsumer>,
    filter: SenderFilter,
}

impl Filtered {
    /// `inner` sees only what `filter` accepts.
    pub(crate) fn new(inner: Box<dyn EventConsumer>, filter: SenderFilter) -> Self {
        Filtered { inner, filter }
    }
}

impl EventConsumer for Filtered {
    fn event(&mut self, event: &Event) -> io::Result<()> {
        if self.filter.accepts(event) {
            self.inner.event(event)
        } else {
            Ok(())
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
    fn idle(&mut self) -> io::Result<()> {
        self.inner.idle()
    }
    fn finish(&mut self) -> io::Result<()> {
        self.inner.finish()
    }
    fn report(&mut self, report: &mut Report) {
        self.inner.report(report)
    }
}
