//! The bounded hand-over between a source (the trainer's thread) and the event consumer.
//!
//! Sending never blocks: when the consumer falls behind and the channel is full, ordinary
//! events wait in a small side buffer where a newer value of the same kind and layer replaces
//! the older one (counted as coalesced); essential events (alarms, run and epoch boundaries)
//! are kept in order and never merged. The side buffer holds at most one ordinary event per
//! kind and layer, so nothing grows without bound.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crossbeam_channel::{Receiver, Sender, TrySendError};

use crate::event::Event;

/// Default channel capacity in events.
pub const DEFAULT_CAPACITY: usize = 8192;

/// Most essential events kept waiting before further ones are counted as dropped.
const MAX_WAITING_ESSENTIAL: usize = 65_536;

/// Counters shared by both ends.
#[derive(Debug, Default)]
pub struct QueueStats {
    coalesced: AtomicU64,
    dropped: AtomicU64,
}

impl QueueStats {
    /// Events replaced by a newer value of the same kind and layer.
    pub fn coalesced(&self) -> u64 {
        self.coalesced.load(Ordering::Relaxed)
    }
    /// Essential events lost because even the side buffer was full (never seen in practice).
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

/// The producing end; owned by the source's thread.
pub struct EventSender {
    tx: Option<Sender<Event>>,
    waiting: Vec<Event>,
    stats: Arc<QueueStats>,
}

/// The consuming end.
pub type EventReceiver = Receiver<Event>;

/// A queue of `capacity` events.
pub fn event_queue(capacity: usize) -> (EventSender, EventReceiver, Arc<QueueStats>) {
    let (tx, rx) = crossbeam_channel::bounded(capacity.max(1));
    let stats = Arc::new(QueueStats::default());
    (
        EventSender {
            tx: Some(tx),
            waiting: Vec::new(),
            stats: stats.clone(),
        },
        rx,
        stats,
    )
}

/// Whether `b` is a newer value of the same series as `a`: same kind, layer and sender.
fn same_series(a: &Event, b: &Event) -> bool {
    a.payload.kind() == b.payload.kind()
        && a.payload.layer().map(|l| &l.name) == b.payload.layer().map(|l| &l.name)
        && a.rank == b.rank
        && a.run == b.run
}

impl EventSender {
    /// Hands an event over without ever blocking.
    pub fn send(&mut self, event: Event) {
        if !self.waiting.is_empty() {
            self.drain_waiting();
        }
        let Some(tx) = &self.tx else { return };
        if self.waiting.is_empty() {
            match tx.try_send(event) {
                Ok(()) => {}
                Err(TrySendError::Full(e)) => self.wait(e),
                Err(TrySendError::Disconnected(_)) => self.tx = None,
            }
        } else {
            self.wait(event);
        }
    }

    fn wait(&mut self, event: Event) {
        if !event.payload.is_essential() {
            if let Some(old) = self.waiting.iter_mut().find(|w| same_series(w, &event)) {
                *old = event;
                self.stats.coalesced.fetch_add(1, Ordering::Relaxed);
                return;
            }
        } else if self.waiting.len() >= MAX_WAITING_ESSENTIAL {
            self.stats.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        self.waiting.push(event);
    }

    fn drain_waiting(&mut self) {
        let Some(tx) = &self.tx else { return };
        let mut sent = 0;
        for e in &self.waiting {
            match tx.try_send(e.clone()) {
                Ok(()) => sent += 1,
                Err(_) => break,
            }
        }
        self.waiting.drain(..sent);
    }

    /// Events merged so far.
    pub fn coalesced(&self) -> u64 {
        self.stats.coalesced()
    }

    /// A second producing end into the same queue, for another thread (the consumer ends
    /// when every end is closed or dropped).
    pub fn another(&self) -> EventSender {
        EventSender {
            tx: self.tx.clone(),
            waiting: Vec::new(),
            stats: self.stats.clone(),
        }
    }

    /// Delivers whatever waits (blocking: use at the end of a run) and closes the queue.
    pub fn close(mut self) {
        if let Some(tx) = self.tx.take() {
            for e in self.waiting.drain(..) {
                if tx.send(e).is_err() {
                    break;
                }
            }
        }
    }
}

impl Drop for EventSender {
    fn drop(&mut self) {
        // On an early exit (a panic elsewhere) still hand over what waits, without blocking.
        if let Some(tx) = self.tx.take() {
            for e in self.waiting.drain(..) {
                if tx.try_send(e).is_err() {
                    break;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Layer, NonFiniteKind, Payload, Quantity};

    fn grad(step: u64, layer: u32, value: f64) -> Event {
        Event::new(
            step,
            0,
            0.0,
            Payload::GradNorm {
                layer: Layer::new(format!("fc{layer}"), layer),
                value,
            },
        )
    }

    #[test]
    fn a_full_queue_coalesces_ordinary_events_and_keeps_alarms() {
        let (mut tx, rx, stats) = event_queue(4);
        for step in 0..100 {
            for layer in 0..2 {
                tx.send(grad(step, layer, step as f64));
            }
            if step == 50 {
                tx.send(Event::new(
                    step,
                    0,
                    0.0,
                    Payload::NonFinite {
                        layer: None,
                        quantity: Quantity::Loss,
                        state: NonFiniteKind::Nan,
                    },
                ));
            }
        }
        // Nothing was consumed: 4 in the channel, the rest merged or waiting.
        assert!(
            tx.waiting.len() <= 3,
            "side buffer must stay bounded: {}",
            tx.waiting.len()
        );
        let coalesced = stats.coalesced();
        // `close` blocks until what waits is handed over: read on another thread.
        let reader = std::thread::spawn(move || rx.iter().collect::<Vec<Event>>());
        tx.close();
        let got = reader.join().unwrap();
        assert_eq!(
            got.len() as u64 + coalesced,
            201,
            "every event is delivered or counted"
        );
        assert_eq!(
            got.iter()
                .filter(|e| e.payload.kind() == "non_finite")
                .count(),
            1
        );
        // The latest value of each series arrives.
        for layer in 0..2 {
            let last = got
                .iter()
                .rev()
                .find(|e| e.payload.layer().and_then(|l| l.index) == Some(layer))
                .unwrap();
            assert_eq!(last.step, 99);
        }
    }

    #[test]
    fn a_consumer_that_keeps_up_loses_nothing() {
        let (mut tx, rx, stats) = event_queue(16);
        let consumer = std::thread::spawn(move || rx.iter().count());
        for step in 0..10_000 {
            tx.send(grad(step, 0, 1.0));
            if step % 64 == 0 {
                std::thread::yield_now();
            }
        }
        tx.close();
        let received = consumer.join().unwrap();
        assert_eq!(received as u64 + stats.coalesced(), 10_000);
    }

    #[test]
    fn ranks_are_separate_series() {
        let (mut tx, rx, stats) = event_queue(1);
        tx.send(grad(0, 0, 0.0)); // fills the channel
        for rank in 0..3 {
            let mut e = grad(1, 0, rank as f64);
            e.rank = Some(rank);
            tx.send(e);
        }
        assert_eq!(
            stats.coalesced(),
            0,
            "one value per rank must wait, none merged"
        );
        let reader = std::thread::spawn(move || rx.iter().count());
        tx.close();
        assert_eq!(reader.join().unwrap(), 4);
    }

    #[test]
    fn sending_after_the_consumer_left_is_harmless() {
        let (mut tx, rx, _) = event_queue(2);
        drop(rx);
        for step in 0..10 {
            tx.send(grad(step, 0, 1.0));
        }
        tx.close();
    }
}
