//! The MIDI sender thread: sends messages when they are due, paced by a per-port rate cap,
//! and makes sure every note it started is ended.
//!
//! Commands carry the time they were made; a note's off is due `length_ms` after its on.
//! The thread sleeps until the next message is due (the last 300 µs spinning), so messages
//! leave within microseconds of their time unless the rate cap holds them back. It tracks
//! every sounding note by channel and number (a note struck again while sounding is ended
//! first), and on close, on an [`EndRoutes`](Scheduler::end_routes) and when the port is
//! lost it ends them; at the end it sends all-notes-off (CC 123) on every channel it used.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::mapping::schema::RouteId;
use crossbeam_channel::{bounded, Receiver, RecvTimeoutError, Sender, TryRecvError, TrySendError};

use super::midi_wire::Wire;

/// Where the sender thread writes bytes: a midir connection, or a recorder in tests.
pub trait MidiSink: Send + 'static {
    /// Sends one complete MIDI message. An error means the port is gone.
    fn send(&mut self, bytes: &[u8]) -> Result<(), String>;

    /// Tries to reopen a lost port; true when it is back.
    fn reconnect(&mut self) -> bool {
        false
    }

    /// Waits until what was sent has left (called once before the sink is dropped).
    fn flush(&mut self) {}
}

/// Pacing and buffering of one port.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SchedConfig {
    /// Most messages a second (default 1000: a 3-byte message takes 0.96 ms on a 31.25 kbaud
    /// DIN cable).
    pub max_per_sec: u32,
    /// Messages that may go out back to back before the cap applies.
    pub burst: u32,
    /// Most messages waiting (in the command channel and behind the cap); beyond it new
    /// messages are dropped and counted (note-offs of sounding notes never are).
    pub backlog: usize,
    /// Ask for real-time (SCHED_FIFO) scheduling of the sender thread, as audio programs
    /// do; without the permission it stays a normal thread.
    pub realtime: bool,
}

impl Default for SchedConfig {
    fn default() -> Self {
        SchedConfig {
            max_per_sec: 1000,
            burst: 8,
            backlog: 4096,
            realtime: true,
        }
    }
}

/// What the sender thread did, returned by [`Scheduler::close`].
#[derive(Clone, Debug, Default)]
pub struct SchedReport {
    /// Messages sent.
    pub sent: u64,
    /// Messages dropped (backlog full or port lost).
    pub dropped: u64,
    /// Note-ons sent.
    pub notes_on: u64,
    /// Note-offs sent.
    pub notes_off: u64,
    /// Whether the thread got real-time scheduling.
    pub realtime: bool,
    /// Delay between each message's due time and its send, in microseconds, one bucket per
    /// microsecond up to 10 ms (later sends are counted in the last bucket).
    pub lateness_us: Vec<u32>,
}

impl SchedReport {
    /// The `q`-quantile (0..1) of the lateness in microseconds.
    pub fn lateness_quantile_us(&self, q: f64) -> u32 {
        let total: u64 = self.lateness_us.iter().map(|&c| c as u64).sum();
        let want = ((total as f64) * q).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (us, &c) in self.lateness_us.iter().enumerate() {
            seen += c as u64;
            if seen >= want {
                return us as u32;
            }
        }
        0
    }
}

/// Asks for SCHED_FIFO priority 20 for the calling thread; true when granted.
#[cfg(target_os = "linux")]
fn raise_priority() -> bool {
    let param = libc::sched_param { sched_priority: 20 };
    // SAFETY: plain system call on the current thread with a valid parameter.
    unsafe { libc::pthread_setschedparam(libc::pthread_self(), libc::SCHED_FIFO, &param) == 0 }
}

#[cfg(not(target_os = "linux"))]
fn raise_priority() -> bool {
    false
}

const LATENESS_BUCKETS: usize = 10_001;
const SPIN: Duration = Duration::from_micros(300);
const RECONNECT_EVERY: Duration = Duration::from_secs(1);

enum Cmd {
    Send {
        wire: Wire,
        route: RouteId,
        off_after: Option<Duration>,
        at: Instant,
    },
    EndRoutes(Vec<RouteId>),
    Close,
    /// Internal: the thread's wait ended with nothing received.
    Wake,
}

/// Handle to a sender thread.
pub struct Scheduler {
    tx: Sender<Cmd>,
    done: Receiver<()>,
    thread: Option<JoinHandle<SchedReport>>,
    dropped: u64,
}

/// Ends every note of a [`Scheduler`] from another thread (a Ctrl-C handler).
#[derive(Clone)]
pub struct StopHandle {
    tx: Sender<Cmd>,
    done: Receiver<()>,
}

impl StopHandle {
    /// Asks the sender thread to end all notes and stop, and waits up to `timeout` for it.
    /// True when it has finished.
    pub fn stop(&self, timeout: Duration) -> bool {
        let _ = self.tx.send_timeout(Cmd::Close, timeout);
        matches!(
            self.done.recv_timeout(timeout),
            Err(RecvTimeoutError::Disconnected)
        )
    }

    /// Whether the sender thread has finished (closed, or its port lost).
    pub fn is_finished(&self) -> bool {
        matches!(
            self.done.try_recv(),
            Err(crossbeam_channel::TryRecvError::Disconnected)
        )
    }
}

/// Stop handles of every scheduler that may still sound, for a last-resort stop: a second
/// Ctrl-C exits at once, but first ends every note through [`stop_all_notes`].
static OPEN_SCHEDULERS: std::sync::Mutex<Vec<StopHandle>> = std::sync::Mutex::new(Vec::new());

/// Ends the notes of every MIDI scheduler still running (from any thread; e.g. a signal
/// handler's thread before `exit`), waiting up to `timeout` for each. Returns how many
/// schedulers were stopped.
pub fn stop_all_notes(timeout: Duration) -> usize {
    let handles = match OPEN_SCHEDULERS.lock() {
        Ok(mut list) => std::mem::take(&mut *list),
        Err(poisoned) => std::mem::take(&mut *poisoned.into_inner()),
    };
    handles
        .iter()
        .filter(|h| !h.is_finished())
        .filter(|h| h.stop(timeout))
        .count()
}

fn register(handle: StopHandle) {
    let mut list = OPEN_SCHEDULERS
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    list.retain(|h| !h.is_finished());
    list.push(handle);
}

impl Scheduler {
    /// Starts the sender thread over `sink`.
    pub fn spawn(sink: Box<dyn MidiSink>, config: SchedConfig, name: &str) -> Scheduler {
        let (tx, rx) = bounded(config.backlog.max(1));
        let (done_tx, done) = bounded::<()>(0);
        let label = name.to_string();
        let thread = std::thread::Builder::new()
            .name("sonograd-midi".into())
            .spawn(move || {
                let mut s = Sender_::new(sink, config, label);
                s.report.realtime = config.realtime && raise_priority();
                s.run(&rx);
                drop(done_tx);
                s.report
            })
            .expect("cannot start the MIDI sender thread");
        register(StopHandle {
            tx: tx.clone(),
            done: done.clone(),
        });
        Scheduler {
            tx,
            done,
            thread: Some(thread),
            dropped: 0,
        }
    }

    /// Queues one message made now (`at`), from route `route`; `off_after` makes it a note
    /// whose off is due that long after `at`. False when it was dropped (backlog full).
    pub fn send(
        &mut self,
        wire: Wire,
        route: RouteId,
        off_after: Option<Duration>,
        at: Instant,
    ) -> bool {
        match self.tx.try_send(Cmd::Send {
            wire,
            route,
            off_after,
            at,
        }) {
            Ok(()) => true,
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.dropped += 1;
                false
            }
        }
    }

    /// Ends the sounding notes of these routes now.
    pub fn end_routes(&mut self, routes: &[RouteId]) {
        let _ = self.tx.send(Cmd::EndRoutes(routes.to_vec()));
    }

    /// A handle that can end all notes from another thread.
    pub fn stop_handle(&self) -> StopHandle {
        StopHandle {
            tx: self.tx.clone(),
            done: self.done.clone(),
        }
    }

    /// Ends every sounding note, sends all-notes-off on the channels used, stops the thread
    /// and reports. Later calls return an empty report.
    pub fn close(&mut self) -> SchedReport {
        let Some(thread) = self.thread.take() else {
            return SchedReport::default();
        };
        let _ = self.tx.send(Cmd::Close);
        let mut report = thread.join().unwrap_or_default();
        report.dropped += self.dropped;
        report
    }
}

impl Drop for Scheduler {
    fn drop(&mut self) {
        self.close();
    }
}

#[derive(Clone, Copy)]
struct Sounding {
    route: RouteId,
    gen: u32,
}

/// The thread's state.
struct Sender_ {
    sink: Box<dyn MidiSink>,
    config: SchedConfig,
    name: String,
    queue: VecDeque<(Wire, Instant)>,
    sounding: Vec<Option<Sounding>>,
    offs: BinaryHeap<Reverse<(Instant, u32, u16)>>,
    gen: u32,
    used: u16,
    tokens: f64,
    refilled: Instant,
    lost: Option<Instant>,
    report: SchedReport,
}

impl Sender_ {
    fn new(sink: Box<dyn MidiSink>, config: SchedConfig, name: String) -> Self {
        Sender_ {
            sink,
            config,
            name,
            queue: VecDeque::with_capacity(256),
            sounding: vec![None; 16 * 128],
            offs: BinaryHeap::with_capacity(256),
            gen: 0,
            used: 0,
            tokens: config.burst.max(1) as f64,
            refilled: Instant::now(),
            lost: None,
            report: SchedReport {
                lateness_us: vec![0; LATENESS_BUCKETS],
                ..SchedReport::default()
            },
        }
    }

    fn run(&mut self, rx: &Receiver<Cmd>) {
        loop {
            let now = Instant::now();
            self.due_offs(now);
            self.pump(now);
            self.try_reconnect(now);
            let cmd = match self.next_wake() {
                None => rx.recv().ok(),
                Some(wake) => match wake.checked_duration_since(Instant::now()) {
                    Some(d) if d > SPIN => match rx.recv_deadline(wake - SPIN) {
                        Ok(c) => Some(c),
                        Err(RecvTimeoutError::Timeout) => continue,
                        Err(RecvTimeoutError::Disconnected) => None,
                    },
                    _ => loop {
                        match rx.try_recv() {
                            Ok(c) => break Some(c),
                            Err(TryRecvError::Disconnected) => break None,
                            Err(TryRecvError::Empty) if Instant::now() >= wake => {
                                break Some(Cmd::Wake)
                            }
                            Err(TryRecvError::Empty) => std::hint::spin_loop(),
                        }
                    },
                },
            };
            match cmd {
                Some(Cmd::Send {
                    wire,
                    route,
                    off_after,
                    at,
                }) => self.accept(wire, route, off_after, at),
                Some(Cmd::EndRoutes(routes)) => self.end_where(|s| routes.contains(&s.route)),
                Some(Cmd::Wake) => {}
                Some(Cmd::Close) | None => break,
            }
        }
        self.shutdown();
    }

    fn accept(&mut self, wire: Wire, route: RouteId, off_after: Option<Duration>, at: Instant) {
        if self.lost.is_some() || self.queue.len() >= self.config.backlog {
            self.report.dropped += 1;
            return;
        }
        if let (Wire::NoteOn { ch, note, .. }, Some(len)) = (wire, off_after) {
            let idx = ch as usize * 128 + note as usize;
            if self.sounding[idx].take().is_some() {
                self.queue.push_back((Wire::NoteOff { ch, note }, at));
            }
            self.gen = self.gen.wrapping_add(1);
            self.sounding[idx] = Some(Sounding {
                route,
                gen: self.gen,
            });
            self.offs.push(Reverse((at + len, self.gen, idx as u16)));
        }
        self.used |= 1 << wire.channel();
        self.queue.push_back((wire, at));
    }

    /// Queues the offs of notes whose time has come.
    fn due_offs(&mut self, now: Instant) {
        while let Some(&Reverse((t, gen, idx))) = self.offs.peek() {
            if t > now {
                break;
            }
            self.offs.pop();
            let i = idx as usize;
            if self.sounding[i].is_some_and(|s| s.gen == gen) {
                self.sounding[i] = None;
                let (ch, note) = ((i / 128) as u8, (i % 128) as u8);
                self.queue.push_back((Wire::NoteOff { ch, note }, t));
            }
        }
    }

    /// Ends the sounding notes that satisfy `which` (their offs are queued now).
    fn end_where(&mut self, which: impl Fn(&Sounding) -> bool) {
        let now = Instant::now();
        for i in 0..self.sounding.len() {
            if self.sounding[i].as_ref().is_some_and(&which) {
                self.sounding[i] = None;
                let (ch, note) = ((i / 128) as u8, (i % 128) as u8);
                self.queue.push_back((Wire::NoteOff { ch, note }, now));
            }
        }
    }

    /// Sends queued messages as far as the rate cap allows.
    fn pump(&mut self, now: Instant) {
        let rate = self.config.max_per_sec.max(1) as f64;
        let burst = self.config.burst.max(1) as f64;
        self.tokens =
            (self.tokens + now.duration_since(self.refilled).as_secs_f64() * rate).min(burst);
        self.refilled = now;
        while self.tokens >= 1.0 {
            let Some((wire, due)) = self.queue.pop_front() else {
                break;
            };
            self.tokens -= 1.0;
            self.emit(wire, due);
            if self.lost.is_some() {
                break;
            }
        }
    }

    fn emit(&mut self, wire: Wire, due: Instant) {
        match self.sink.send(&wire.bytes()[..wire.size()]) {
            Ok(()) => {
                let late = Instant::now().saturating_duration_since(due).as_micros();
                self.report.lateness_us[(late as usize).min(LATENESS_BUCKETS - 1)] += 1;
                self.report.sent += 1;
                match wire {
                    Wire::NoteOn { .. } => self.report.notes_on += 1,
                    Wire::NoteOff { .. } => self.report.notes_off += 1,
                    _ => {}
                }
            }
            Err(e) => {
                eprintln!("warning: MIDI {}: port lost ({e}); its notes are dropped, retrying every second", self.name);
                self.report.dropped += 1 + self.queue.len() as u64;
                self.queue.clear();
                self.sounding.iter_mut().for_each(|s| *s = None);
                self.offs.clear();
                self.lost = Some(Instant::now() + RECONNECT_EVERY);
            }
        }
    }

    fn try_reconnect(&mut self, now: Instant) {
        let Some(at) = self.lost else { return };
        if now < at {
            return;
        }
        if self.sink.reconnect() {
            eprintln!("MIDI {}: port back; sending all-notes-off", self.name);
            self.lost = None;
            // Notes that were sounding when the port went away may hang on the device.
            self.all_notes_off();
        } else {
            self.lost = Some(now + RECONNECT_EVERY);
        }
    }

    fn next_wake(&self) -> Option<Instant> {
        let off = self.offs.peek().map(|r| r.0 .0);
        let queued = (!self.queue.is_empty()).then(|| {
            let need = (1.0 - self.tokens).max(0.0) / self.config.max_per_sec.max(1) as f64;
            self.refilled + Duration::from_secs_f64(need)
        });
        [off, queued, self.lost].into_iter().flatten().min()
    }

    fn all_notes_off(&mut self) {
        for ch in 0..16u8 {
            if self.used & (1 << ch) != 0 {
                self.queue
                    .push_back((Wire::all_notes_off(ch), Instant::now()));
            }
        }
        self.drain_paced();
    }

    /// Sends the whole queue, keeping to the rate cap.
    fn drain_paced(&mut self) {
        while !self.queue.is_empty() && self.lost.is_none() {
            let now = Instant::now();
            self.pump(now);
            if let Some(w) = self.next_wake() {
                if let Some(d) = w.checked_duration_since(Instant::now()) {
                    std::thread::sleep(d);
                }
            }
        }
    }

    /// Close: only note-offs stay queued, every sounding note is ended, then CC 123.
    fn shutdown(&mut self) {
        self.queue
            .retain(|(w, _)| matches!(w, Wire::NoteOff { .. }));
        self.offs.clear();
        self.end_where(|_| true);
        if self.lost.is_none() {
            self.all_notes_off();
            self.sink.flush();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// Messages with the time they were sent.
    type Log = Arc<Mutex<Vec<([u8; 3], Instant)>>>;

    #[derive(Clone, Default)]
    struct Recorder(Log);

    impl MidiSink for Recorder {
        fn send(&mut self, bytes: &[u8]) -> Result<(), String> {
            let mut b = [0; 3];
            b.copy_from_slice(bytes);
            self.0.lock().unwrap().push((b, Instant::now()));
            Ok(())
        }
    }

    fn on(note: u8) -> Wire {
        Wire::NoteOn {
            ch: 0,
            note,
            vel: 100,
        }
    }

    #[test]
    fn notes_end_on_time_and_close_ends_the_rest() {
        let rec = Recorder::default();
        let mut s = Scheduler::spawn(Box::new(rec.clone()), SchedConfig::default(), "test");
        let t0 = Instant::now();
        s.send(on(60), 0, Some(Duration::from_millis(20)), t0);
        s.send(on(62), 1, Some(Duration::from_secs(60)), t0);
        std::thread::sleep(Duration::from_millis(60));
        let report = s.close();
        let got = rec.0.lock().unwrap().clone();
        let bytes: Vec<[u8; 3]> = got.iter().map(|g| g.0).collect();
        assert_eq!(
            bytes,
            vec![
                [0x90, 60, 100],
                [0x90, 62, 100],
                [0x80, 60, 0],
                [0x80, 62, 0],
                [0xB0, 123, 0]
            ]
        );
        let off_at = got[2].1.duration_since(t0);
        assert!(
            off_at >= Duration::from_millis(20) && off_at < Duration::from_millis(40),
            "{off_at:?}"
        );
        assert_eq!((report.notes_on, report.notes_off), (2, 2));
    }

    #[test]
    fn restrike_ends_the_sounding_note_first_and_end_routes_ends_its_notes() {
        let rec = Recorder::default();
        let mut s = Scheduler::spawn(Box::new(rec.clone()), SchedConfig::default(), "test");
        let t = Instant::now();
        s.send(on(60), 3, Some(Duration::from_secs(60)), t);
        s.send(on(60), 3, Some(Duration::from_secs(60)), t);
        s.send(on(64), 4, Some(Duration::from_secs(60)), t);
        s.end_routes(&[3]);
        std::thread::sleep(Duration::from_millis(30));
        let before_close: Vec<[u8; 3]> = rec.0.lock().unwrap().iter().map(|g| g.0).collect();
        assert_eq!(
            before_close,
            vec![
                [0x90, 60, 100],
                [0x80, 60, 0],
                [0x90, 60, 100],
                [0x90, 64, 100],
                [0x80, 60, 0]
            ]
        );
        s.close();
        let all: Vec<[u8; 3]> = rec.0.lock().unwrap().iter().map(|g| g.0).collect();
        assert_eq!(&all[5..], &[[0x80, 64, 0], [0xB0, 123, 0]]);
    }

    #[test]
    fn rate_cap_spaces_messages() {
        let rec = Recorder::default();
        let config = SchedConfig {
            max_per_sec: 200,
            burst: 1,
            backlog: 100,
            realtime: false,
        };
        let mut s = Scheduler::spawn(Box::new(rec.clone()), config, "test");
        let t = Instant::now();
        for v in 0..11 {
            s.send(
                Wire::Cc {
                    ch: 1,
                    cc: 7,
                    value: v,
                },
                0,
                None,
                t,
            );
        }
        // Wait for the paced CCs (about 50 ms; longer on a loaded machine) before closing.
        let waited = Instant::now();
        while rec.0.lock().unwrap().len() < 11 && waited.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(10));
        }
        s.close();
        let got = rec.0.lock().unwrap().clone();
        assert_eq!(got.len(), 12, "11 CCs and one all-notes-off");
        let span = got[10].1.duration_since(got[0].1);
        assert!(
            span >= Duration::from_millis(45),
            "10 gaps of 5 ms, got {span:?}"
        );
    }

    struct Flaky {
        rec: Recorder,
        fail_after: usize,
        back: bool,
    }

    impl MidiSink for Flaky {
        fn send(&mut self, bytes: &[u8]) -> Result<(), String> {
            if self.rec.0.lock().unwrap().len() >= self.fail_after && !self.back {
                return Err("gone".into());
            }
            self.rec.send(bytes)
        }
        fn reconnect(&mut self) -> bool {
            self.back = true;
            true
        }
    }

    #[test]
    fn lost_port_drops_notes_and_sends_all_notes_off_when_back() {
        let rec = Recorder::default();
        let sink = Flaky {
            rec: rec.clone(),
            fail_after: 1,
            back: false,
        };
        let mut s = Scheduler::spawn(Box::new(sink), SchedConfig::default(), "test");
        let t = Instant::now();
        s.send(on(60), 0, Some(Duration::from_secs(60)), t);
        s.send(on(61), 0, Some(Duration::from_secs(60)), t);
        std::thread::sleep(Duration::from_millis(1300));
        let report = s.close();
        let all: Vec<[u8; 3]> = rec.0.lock().unwrap().iter().map(|g| g.0).collect();
        // The first note went out, the port died on the second; when it came back the
        // channel got all-notes-off, and close sent another.
        assert_eq!(all, vec![[0x90, 60, 100], [0xB0, 123, 0], [0xB0, 123, 0]]);
        assert!(report.dropped >= 1);
    }
}
