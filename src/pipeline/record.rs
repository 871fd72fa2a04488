//! Recording events to a JSON-lines file (`--record run.jsonl`).
//!
//! Lines are written through a buffer that is flushed whenever the consumer has caught up
//! with the queue, and on drop: a run that is interrupted, panics elsewhere or is killed
//! leaves a readable file, minus at most its last line.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::event::Event;
use crate::pipeline::consume::EventConsumer;
use crate::pipeline::Report;

/// Writes each event as one JSON line.
pub struct Recorder {
    path: PathBuf,
    out: BufWriter<File>,
    line: Vec<u8>,
    written: u64,
}

impl Recorder {
    /// Creates (or truncates) the file.
    pub fn create(path: &Path) -> io::Result<Recorder> {
        let file = File::create(path)
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
        Ok(Recorder {
            path: path.to_path_buf(),
            out: BufWriter::with_capacity(64 * 1024, file),
            line: Vec::with_capacity(256),
            written: 0,
        })
    }

    /// The file written to.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Events written so far.
    pub fn written(&self) -> u64 {
        self.written
    }
}

impl EventConsumer for Recorder {
    fn event(&mut self, event: &Event) -> io::Result<()> {
        self.line.clear();
        event.write_json_line(&mut self.line);
        self.line.push(b'\n');
        self.out.write_all(&self.line)?;
        self.written += 1;
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }

    fn report(&mut self, report: &mut Report) {
        report.recorded = Some((self.path.clone(), self.written));
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        let _ = self.out.flush();
    }
}
