//! The event consumer thread: drains the monitor queue into the detector, recorders,
//! printers and the router, flushing whenever it has caught up.

use std::io;
use std::thread::JoinHandle;

use crate::diagnose::Detector;
use crate::event::Event;
use crate::pipeline::queue::EventReceiver;
use crate::pipeline::Report;

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
    /// Adds what it gathered to the run's report, once, after [`EventConsumer::finish`]
    /// (also for a consumer that failed and was dropped from the stream).
    fn report(&mut self, _report: &mut Report) {}
}

/// The consumers of one stream, with the detector in front of them: every event goes to
/// each consumer, and every diagnosis the detector draws from it goes to each consumer
/// before the event that completed it. A consumer that fails is dropped; the others go on.
pub struct Consumers {
    list: Vec<Box<dyn EventConsumer>>,
    failed: Vec<bool>,
    detector: Option<Detector>,
    /// A live stream: events are stamped with their arrival time and the clock ticks the
    /// detector (its `stall` rule); never for replayed input.
    live: bool,
    diagnoses: Vec<Event>,
    report: Report,
}

impl From<Vec<Box<dyn EventConsumer>>> for Consumers {
    fn from(list: Vec<Box<dyn EventConsumer>>) -> Self {
        Consumers::new(list, None)
    }
}

impl Consumers {
    /// `list` fed in order, after `detector` when there is one.
    pub fn new(list: Vec<Box<dyn EventConsumer>>, detector: Option<Detector>) -> Self {
        Consumers {
            failed: vec![false; list.len()],
            list,
            detector,
            live: false,
            diagnoses: Vec::new(),
            report: Report::default(),
        }
    }

    /// Turns the detector off (a stream known to carry its own diagnoses).
    pub fn without_detector(mut self) -> Self {
        self.detector = None;
        self
    }

    /// Marks the stream as live (a trainer or a listener, not a recording): the detector
    /// learns when events arrive and hears the clock, so it can say `stall`.
    pub fn live(mut self) -> Self {
        self.live = true;
        self
    }

    /// Whether a detector runs in front of the consumers.
    pub fn diagnosing(&self) -> bool {
        self.detector.is_some()
    }

    fn each(&mut self, f: &mut dyn FnMut(&mut dyn EventConsumer) -> io::Result<()>) {
        for (c, dead) in self.list.iter_mut().zip(self.failed.iter_mut()) {
            if !*dead {
                if let Err(e) = f(c.as_mut()) {
                    *dead = true;
                    if e.kind() != io::ErrorKind::BrokenPipe {
                        self.report.errors.push(e.to_string());
                    }
                }
            }
        }
    }

    fn send_diagnoses(&mut self) {
        let mut pending = std::mem::take(&mut self.diagnoses);
        for d in pending.drain(..) {
            self.report.diagnoses += 1;
            self.each(&mut |c| c.event(&d));
        }
        self.diagnoses = pending;
    }

    /// Handles one event.
    pub fn event(&mut self, event: &Event) {
        self.report.events += 1;
        if let Some(d) = &mut self.detector {
            if self.live {
                d.observe_live(event, std::time::Instant::now(), &mut self.diagnoses);
            } else {
                d.observe(event, &mut self.diagnoses);
            }
            self.send_diagnoses();
        }
        self.each(&mut |c| c.event(event));
    }

    /// Lets a live detector hear the clock (stalls).
    fn tick(&mut self) {
        if let (true, Some(d)) = (self.live, &mut self.detector) {
            d.tick(std::time::Instant::now(), &mut self.diagnoses);
            self.send_diagnoses();
        }
    }

    /// The queue is momentarily empty.
    pub fn flush(&mut self) {
        self.tick();
        self.each(&mut |c| c.flush());
    }

    /// No events for a while.
    pub fn idle(&mut self) {
        self.tick();
        self.each(&mut |c| c.idle());
    }

    /// The stream ended: judges the detector's last step, finishes every consumer and
    /// gathers their reports.
    pub fn finish(mut self) -> Report {
        if let Some(d) = &mut self.detector {
            d.finish(&mut self.diagnoses);
            self.send_diagnoses();
        }
        self.each(&mut |c| c.finish());
        for c in self.list.iter_mut() {
            c.report(&mut self.report);
        }
        self.report
    }
}

/// Runs `consumers` on their own thread until the queue closes.
pub fn spawn(rx: EventReceiver, consumers: impl Into<Consumers>) -> JoinHandle<Report> {
    let consumers = consumers.into();
    std::thread::Builder::new()
        .name("sonograd-events".into())
        .spawn(move || drain(rx, consumers))
        .expect("spawning the event thread")
}

/// Drains the queue into the consumers on the calling thread.
pub fn drain(rx: EventReceiver, consumers: impl Into<Consumers>) -> Report {
    let mut consumers = consumers.into();
    loop {
        let event = match rx.recv_timeout(IDLE_TICK) {
            Ok(event) => event,
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => {
                consumers.idle();
                continue;
            }
            Err(crossbeam_channel::RecvTimeoutError::Disconnected) => break,
        };
        consumers.event(&event);
        // Flush at least every few thousand events even if the producer never pauses.
        for event in rx.try_iter().take(4096) {
            consumers.event(&event);
        }
        consumers.flush();
        // Take events in batches: a consumer that sleeps between batches costs the producer
        // no wake-up per event (its sends stay plain writes into the queue).
        std::thread::sleep(BATCH_PAUSE);
    }
    consumers.finish()
}
