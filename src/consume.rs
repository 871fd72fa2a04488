//! The event consumer thread: drains the monitor queue into recorders, printers and (later)
//! the router, flushing whenever it has caught up.

use std::io;
use std::thread::JoinHandle;

use crate::event::Event;
use crate::queue::EventReceiver;

/// How often consumers hear from the thread when no events arrive.
pub const IDLE_TICK: std::time::Duration = std::time::Duration::from_millis(50);

/// Pause between batches of events; bounds the added latency.
const BATCH_PAUSE: std::time::Duration = std::time::Duration::from_millis(2);

/// Something that takes events on the consumer thread.
pub trait EventConsumer: Send {
    /// Handles one event.
    fn event(&mut self, event: &Event) -> io::Result<()>;
    /// Called when the queue is momentarily empty and at the end.
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
    /// Called about every [`IDLE_TICK`] while no events arrive.
    fn idle(&mut self) -> io::Result<()> {
        Ok(())
    }
    /// Called once after the last event.
    fn finish(&mut self) -> io::Result<()> {
        self.flush()
    }
}

/// What the consumer thread saw.
#[derive(Debug, Default)]
pub struct ConsumerReport {
    /// Events handled.
    pub events: u64,
    /// The first error a consumer returned (the consumer is then dropped, the others go on).
    pub errors: Vec<String>,
}

/// Runs `consumers` on their own thread until the queue closes.
pub fn spawn(
    rx: EventReceiver,
    consumers: Vec<Box<dyn EventConsumer>>,
) -> JoinHandle<ConsumerReport> {
    std::thread::Builder::new()
        .name("sonograd-events".into())
        .spawn(move || drain(rx, consumers))
        .expect("spawning the event thread")
}

/// Drains the queue into the consumers on the calling thread.
pub fn drain(rx: EventReceiver, mut consumers: Vec<Box<dyn EventConsumer>>) -> ConsumerReport {
    let mut report = ConsumerReport::default();
    let mut failed = vec![false; consumers.len()];
    let mut run = |consumers: &mut Vec<Box<dyn EventConsumer>>,
                   f: &mut dyn FnMut(&mut dyn EventConsumer) -> io::Result<()>,
                   report: &mut ConsumerReport| {
        for (c, dead) in consumers.iter_mut().zip(failed.iter_mut()) {
            if !*dead {
                if let Err(e) = f(c.as_mut()) {
                    *dead = true;
                    if e.kind() != io::ErrorKind::BrokenPipe {
                        report.errors.push(e.to_string());
                    }
                }
            }
        }
    };
    loop {
        let event = match rx.recv_timeout(IDLE_TICK) {
            Ok(event) => event,
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => {
                run(&mut consumers, &mut |c| c.idle(), &mut report);
                continue;
            }
            Err(crossbeam_channel::RecvTimeoutError::Disconnected) => break,
        };
        report.events += 1;
        run(&mut consumers, &mut |c| c.event(&event), &mut report);
        // Flush at least every few thousand events even if the producer never pauses.
        for event in rx.try_iter().take(4096) {
            report.events += 1;
            run(&mut consumers, &mut |c| c.event(&event), &mut report);
        }
        run(&mut consumers, &mut |c| c.flush(), &mut report);
        // Take events in batches: a consumer that sleeps between batches costs the producer
        // no wake-up per event (its sends stay plain writes into the queue).
        std::thread::sleep(BATCH_PAUSE);
    }
    run(&mut consumers, &mut |c| c.finish(), &mut report);
    report
}
