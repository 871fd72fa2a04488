//! Routing on the consumer thread: events go through the [`Router`] of the current mapping,
//! and each message goes to its output. For now the one output that exists is the monitor:
//! messages for `monitor` outputs, or every message with `--monitor`, are printed as readable
//! lines. Saving the mapping file swaps in the new mapping (an invalid edit keeps the old one
//! and prints the problems).

use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::consume::EventConsumer;
use crate::event::Event;
use crate::mapping::schema::{Mapping, OutputKind};
use crate::mapping::watch::{MappingWatcher, Reload};
use crate::message::Message;
use crate::monitor;
use crate::route::Router;

/// Where monitor lines go.
pub type LineSink = Box<dyn Write + Send>;

/// Routes events and hands messages to outputs.
pub struct Dispatcher {
    path: PathBuf,
    mapping: Mapping,
    router: Router,
    watcher: Option<MappingWatcher>,
    out: Vec<Message>,
    monitor_all: bool,
    lines: LineSink,
    line: String,
    clock: Clock,
    routed: u64,
}

/// The router's clock: seconds since the first event, by the events' own wall-clock times,
/// so a replay routes exactly as the live run did.
#[derive(Default)]
struct Clock {
    origin: Option<f64>,
    last: f64,
    last_seen: Option<std::time::Instant>,
}

impl Clock {
    fn at(&mut self, event: &Event) -> f64 {
        let origin = *self.origin.get_or_insert(event.time);
        self.last = (event.time - origin).max(self.last);
        self.last_seen = Some(std::time::Instant::now());
        self.last
    }
    fn idle_now(&self) -> f64 {
        self.last + self.last_seen.map_or(0.0, |t| t.elapsed().as_secs_f64())
    }
}

impl Dispatcher {
    /// Routes with `mapping` (already validated, from `path`); `monitor_all` prints every
    /// message; `watch` reloads the file when it changes.
    pub fn new(
        path: &Path,
        mapping: Mapping,
        monitor_all: bool,
        watch: bool,
        lines: LineSink,
    ) -> io::Result<Self> {
        let watcher = if watch {
            Some(MappingWatcher::new(path).map_err(|e| io::Error::other(e.to_string()))?)
        } else {
            None
        };
        Ok(Dispatcher {
            path: path.to_path_buf(),
            router: Router::new(&mapping),
            mapping,
            watcher,
            out: Vec::with_capacity(256),
            monitor_all,
            lines,
            line: String::with_capacity(160),
            clock: Clock::default(),
            routed: 0,
        })
    }

    /// Messages routed so far.
    pub fn routed(&self) -> u64 {
        self.routed
    }

    /// Output kinds of the mapping that have no implementation yet (their messages are only
    /// shown with `--monitor`).
    pub fn silent_outputs(mapping: &Mapping) -> Vec<String> {
        mapping
            .outputs
            .iter()
            .filter(|o| !matches!(o.kind, OutputKind::Monitor))
            .map(|o| o.name.to_string())
            .collect()
    }

    fn deliver(&mut self) -> io::Result<()> {
        for msg in self.out.drain(..) {
            self.routed += 1;
            let to_monitor = self.monitor_all
                || matches!(
                    self.mapping
                        .outputs
                        .get(msg.output as usize)
                        .map(|o| &o.kind),
                    Some(OutputKind::Monitor)
                );
            if to_monitor {
                self.line.clear();
                let _ = monitor::write_line(&mut self.line, &msg, &self.mapping);
                self.line.push('\n');
                self.lines.write_all(self.line.as_bytes())?;
            }
        }
        Ok(())
    }

    fn check_reload(&mut self) -> io::Result<()> {
        let Some(reload) = self.watcher.as_ref().and_then(|w| w.try_recv()) else {
            return Ok(());
        };
        match reload {
            Reload::Applied(mapping) => {
                // Pending values of changed routes are dropped with them; outputs end the
                // notes of those routes once note-playing outputs exist.
                let changed = self.router.reload(&mapping);
                self.mapping = mapping;
                eprintln!(
                    "mapping {}: reloaded ({} routes changed)",
                    self.path.display(),
                    changed.len()
                );
            }
            Reload::Rejected(diags) => {
                eprintln!(
                    "mapping {}: edit rejected, keeping the previous mapping:\n{diags}",
                    self.path.display()
                );
            }
        }
        Ok(())
    }
}

impl EventConsumer for Dispatcher {
    fn event(&mut self, event: &Event) -> io::Result<()> {
        let now = self.clock.at(event);
        self.router.route(now, event, &mut self.out);
        self.router.tick(now, &mut self.out);
        self.deliver()
    }

    fn flush(&mut self) -> io::Result<()> {
        self.check_reload()?;
        self.lines.flush()
    }

    fn idle(&mut self) -> io::Result<()> {
        self.check_reload()?;
        let now = self.clock.idle_now();
        self.router.tick(now, &mut self.out);
        self.deliver()?;
        self.lines.flush()
    }

    fn finish(&mut self) -> io::Result<()> {
        let now = self.clock.idle_now();
        self.router.finish(now, &mut self.out);
        self.deliver()?;
        self.lines.flush()
    }
}
