//! Live reload: watches a mapping file and re-validates it whenever its content changes, or
//! the content of a patch file its synth outputs read (`patch = "sounds/bell.toml"`).
//!
//! Uses the platform's file notifications (via `notify`, watching the file's folder so that
//! editors that save by renaming are seen too) and falls back to polling when they are not
//! available. Patch files outside the mapping's folder are looked at on the periodic recheck
//! (every second with notifications). Every change yields one [`Reload`]: the new mapping, or
//! the diagnostics that keep the old one in place.
//!
//! ```no_run
//! use sonograd::mapping::watch::{MappingWatcher, Reload};
//! let watcher = MappingWatcher::new("config/default.toml").unwrap();
//! // In the output loop, between events:
//! match watcher.try_recv() {
//!     Some(Reload::Applied(mapping)) => { /* router.reload(&mapping) */ }
//!     Some(Reload::Rejected(diags)) => eprintln!("{diags}"),
//!     None => {}
//! }
//! ```

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use notify::{RecommendedWatcher, RecursiveMode, Watcher};

use super::{parse_str, Diagnostics, Mapping};

/// The outcome of one change of the watched file.
#[derive(Clone, Debug, PartialEq)]
pub enum Reload {
    /// The new content is valid: switch to it.
    Applied(Box<Mapping>),
    /// The new content is invalid: keep the old mapping, show these.
    Rejected(Diagnostics),
}

/// Why a watcher could not start.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
}

/// Watches one mapping file; see the module docs. Stops when dropped.
pub struct MappingWatcher {
    rx: Receiver<Reload>,
    stop: Arc<AtomicBool>,
    _native: Option<RecommendedWatcher>,
    polling: bool,
}

/// How often the worker looks at the file when notifications are not available.
pub const POLL_INTERVAL: Duration = Duration::from_millis(100);
/// How often it looks anyway when they are (a safety net for missed notifications).
const NATIVE_RECHECK: Duration = Duration::from_millis(1000);
/// Wait after a notification, so that a save written in pieces is read whole.
const SETTLE: Duration = Duration::from_millis(20);
/// Gap between the two reads that must agree before a change counts.
const STABLE: Duration = Duration::from_millis(15);

impl MappingWatcher {
    /// Watches `path` with file notifications, or by polling if they cannot be set up.
    pub fn new(path: impl AsRef<Path>) -> Result<MappingWatcher, WatchError> {
        Self::start(path.as_ref(), false, POLL_INTERVAL)
    }

    /// Watches `path` by polling every `interval` (no notifications).
    pub fn polling(
        path: impl AsRef<Path>,
        interval: Duration,
    ) -> Result<MappingWatcher, WatchError> {
        Self::start(path.as_ref(), true, interval)
    }

    fn start(
        path: &Path,
        force_poll: bool,
        interval: Duration,
    ) -> Result<MappingWatcher, WatchError> {
        let path = path.to_path_buf();
        let initial = std::fs::read(&path).map_err(|source| WatchError::Io {
            path: path.clone(),
            source,
        })?;
        // The patch files the mapping reads now; the caller has validated it already.
        let text = String::from_utf8_lossy(&initial).into_owned();
        let patch_files = parse_str(&text, &path.display().to_string())
            .map(|m| m.patch_files())
            .unwrap_or_default();
        let (tx, rx) = mpsc::channel();
        let (wake_tx, wake_rx) = mpsc::channel::<()>();
        let native = if force_poll {
            None
        } else {
            native_watcher(&path, wake_tx)
        };
        let polling = native.is_none();
        let stop = Arc::new(AtomicBool::new(false));
        let mut worker = Worker {
            path,
            patch_files,
            last: Vec::new(),
            tx,
            stop: stop.clone(),
            period: if polling { interval } else { NATIVE_RECHECK },
            settle: if polling { Duration::ZERO } else { SETTLE },
        };
        worker.last = worker.fingerprint(&initial);
        thread::Builder::new()
            .name("sonograd-mapping-watch".into())
            .spawn(move || worker.run(wake_rx))
            .map_err(|source| WatchError::Io {
                path: PathBuf::from("<thread>"),
                source,
            })?;
        Ok(MappingWatcher {
            rx,
            stop,
            _native: native,
            polling,
        })
    }

    /// Whether the watcher fell back to (or was asked for) polling.
    pub fn is_polling(&self) -> bool {
        self.polling
    }

    /// The next reload, if one is ready.
    pub fn try_recv(&self) -> Option<Reload> {
        self.rx.try_recv().ok()
    }

    /// Waits up to `timeout` for the next reload.
    pub fn recv_timeout(&self, timeout: Duration) -> Option<Reload> {
        self.rx.recv_timeout(timeout).ok()
    }
}

impl Drop for MappingWatcher {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn native_watcher(path: &Path, wake: Sender<()>) -> Option<RecommendedWatcher> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let mut w = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
        if res.is_ok() {
            let _ = wake.send(());
        }
    })
    .ok()?;
    w.watch(&dir, RecursiveMode::NonRecursive).ok()?;
    Some(w)
}

struct Worker {
    path: PathBuf,
    /// The patch files of the mapping last applied.
    patch_files: Vec<PathBuf>,
    /// The last [`Worker::snapshot`] fingerprint acted on.
    last: Vec<u8>,
    tx: Sender<Reload>,
    stop: Arc<AtomicBool>,
    period: Duration,
    settle: Duration,
}

impl Worker {
    /// The mapping's bytes and a fingerprint of them together with every patch file's
    /// bytes (a missing patch file counts as empty); `None` while the mapping is unreadable.
    fn snapshot(&self) -> Option<(Vec<u8>, Vec<u8>)> {
        let text = std::fs::read(&self.path).ok()?;
        let print = self.fingerprint(&text);
        Some((text, print))
    }

    /// The mapping text `text` followed by every patch file's length and bytes.
    fn fingerprint(&self, text: &[u8]) -> Vec<u8> {
        let mut print = text.to_vec();
        for f in &self.patch_files {
            let bytes = std::fs::read(f).unwrap_or_default();
            print.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
            print.extend_from_slice(&bytes);
        }
        print
    }

    fn run(mut self, wake: Receiver<()>) {
        loop {
            match wake.recv_timeout(self.period) {
                Ok(()) => {
                    thread::sleep(self.settle);
                    while wake.try_recv().is_ok() {}
                }
                Err(RecvTimeoutError::Timeout) => {}
                // Polling mode: no notifier, the sender is gone from the start.
                Err(RecvTimeoutError::Disconnected) => thread::sleep(self.period),
            }
            if self.stop.load(Ordering::Relaxed) {
                return;
            }
            let Some((mut raw, mut print)) = self.snapshot() else {
                continue;
            };
            if print == self.last {
                continue;
            }
            // A save may be caught half-written (truncated, then filled): act only once two
            // reads a moment apart agree.
            for _ in 0..10 {
                thread::sleep(STABLE);
                match self.snapshot() {
                    Some((_, again)) if again == print => break,
                    Some(again) => (raw, print) = again,
                    None => {}
                }
            }
            let text = String::from_utf8_lossy(&raw).into_owned();
            self.last = print;
            let reload = match parse_str(&text, &self.path.display().to_string()) {
                Ok(m) => {
                    let files = m.patch_files();
                    if files != self.patch_files {
                        // Watch the new set from what is there now.
                        self.patch_files = files;
                        self.last = self.fingerprint(&raw);
                    }
                    Reload::Applied(Box::new(m))
                }
                Err(d) => Reload::Rejected(d),
            };
            if self.tx.send(reload).is_err() {
                return;
            }
        }
    }
}
