//! Replay of a JSON-lines recording (`sonograd replay FILE`).
//!
//! Reads events line by line (constant memory for any length). A malformed line is an error
//! naming the file, the line and the field; an unfinished last line (a run killed mid-write)
//! is reported and skipped, so a killed run's recording still replays.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use std::collections::VecDeque;

use super::alarm_fill::AlarmFill;
use crate::event::Event;

/// A recording that cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// The file cannot be opened or read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// A line is not a valid event.
    #[error("{path}:{line}: {message}")]
    Malformed {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        message: String,
    },
}

/// Reads events from a recording, one line at a time.
pub struct Recording<R> {
    path: PathBuf,
    lines: std::io::Lines<BufReader<R>>,
    line: usize,
    truncated_tail: Option<usize>,
    pending: Option<String>,
    alarms: AlarmFill,
    ready: VecDeque<Event>,
}

impl Recording<File> {
    /// Opens a recording file.
    pub fn open(path: &Path) -> Result<Self, ReplayError> {
        let file = File::open(path).map_err(|source| ReplayError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        // Whether the file ends with a newline tells a finished last line from a cut one.
        Ok(Self::from_reader(path, file))
    }
}

impl<R: Read> Recording<R> {
    /// Reads a recording from any reader; `path` only names it in messages.
    pub fn from_reader(path: &Path, reader: R) -> Self {
        Recording {
            path: path.to_path_buf(),
            lines: BufReader::new(reader).lines(),
            line: 0,
            truncated_tail: None,
            pending: None,
            alarms: AlarmFill::default(),
            ready: VecDeque::new(),
        }
    }

    /// The events up to the first bad line; that line's error is left in `failure`.
    pub fn until_error<'a>(
        &'a mut self,
        failure: &'a mut Option<ReplayError>,
    ) -> impl Iterator<Item = Event> + 'a {
        std::iter::from_fn(move || match self.next()? {
            Ok(e) => Some(e),
            Err(e) => {
                *failure = Some(e);
                None
            }
        })
    }

    /// The 1-based line number of an unfinished last line that was skipped, if any.
    pub fn truncated_tail(&self) -> Option<usize> {
        self.truncated_tail
    }

    fn next_line(&mut self) -> Option<Result<String, ReplayError>> {
        if let Some(l) = self.pending.take() {
            return Some(Ok(l));
        }
        self.lines.next().map(|r| {
            r.map_err(|source| ReplayError::Io {
                path: self.path.clone(),
                source,
            })
        })
    }
}

impl<R: Read> Iterator for Recording<R> {
    type Item = Result<Event, ReplayError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(e) = self.ready.pop_front() {
                return Some(Ok(e));
            }
            let text = match self.next_line()? {
                Ok(t) => t,
                Err(e) => return Some(Err(e)),
            };
            self.line += 1;
            if text.trim().is_empty() {
                continue;
            }
            return Some(match Event::from_json_line(&text) {
                Ok(e) => {
                    // A NaN value that its writer left without an alarm gets one.
                    let ready = &mut self.ready;
                    self.alarms.push(e, &mut |e| ready.push_back(e));
                    continue;
                }
                Err(err) => {
                    // The last line of a killed run may be cut short: skip it, remember it.
                    match self.next_line() {
                        None if !text.trim_end().ends_with('}') => {
                            self.truncated_tail = Some(self.line);
                            return None;
                        }
                        Some(Ok(next)) => self.pending = Some(next),
                        _ => {}
                    }
                    Err(ReplayError::Malformed {
                        path: self.path.clone(),
                        line: self.line,
                        message: err.to_string(),
                    })
                }
            });
        }
    }
}

/// Whether a JSON-lines recording holds `diagnosis` events (a recording made with the
/// detector on), however the writer spaced its JSON. Reads the file once, in constant
/// memory; a file that cannot be read says no here (reading it for real reports why).
pub fn has_diagnoses(path: &Path) -> bool {
    match File::open(path) {
        Ok(file) => mentions_diagnosis(file, 1 << 20),
        Err(_) => false,
    }
}

/// The scan of [`has_diagnoses`], `chunk` bytes a read: the word `"diagnosis"` is searched
/// for across each chunk's whole lines at once (SIMD), and only a line that has it is parsed.
fn mentions_diagnosis(mut input: impl Read, chunk: usize) -> bool {
    /// Only the field this check needs.
    #[derive(serde::Deserialize)]
    struct Kind {
        kind: Option<String>,
    }
    let finder = memchr::memmem::Finder::new(b"\"diagnosis\"");
    let is_diagnosis = |line: &[u8]| {
        serde_json::from_slice::<Kind>(line).is_ok_and(|k| k.kind.as_deref() == Some("diagnosis"))
    };
    let mut buf = vec![0u8; chunk.max(64)];
    // Bytes at the front of `buf` kept from the last read: a line not yet ended.
    let mut kept = 0;
    loop {
        if kept == buf.len() {
            // One line longer than the buffer: make room.
            buf.resize(2 * buf.len(), 0);
        }
        let n = match input.read(&mut buf[kept..]) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => return false,
        };
        let filled = kept + n;
        // Whole lines, or everything at the end of the file.
        let whole = if n == 0 {
            filled
        } else {
            memchr::memrchr(b'\n', &buf[..filled]).map_or(0, |i| i + 1)
        };
        let text = &buf[..whole];
        let mut from = 0;
        for at in finder.find_iter(text) {
            if at < from {
                continue;
            }
            let start = memchr::memrchr(b'\n', &text[..at]).map_or(0, |i| i + 1);
            let end = memchr::memchr(b'\n', &text[at..]).map_or(text.len(), |i| at + i);
            if is_diagnosis(&text[start..end]) {
                return true;
            }
            from = end;
        }
        if n == 0 {
            return false;
        }
        buf.copy_within(whole..filled, 0);
        kept = filled - whole;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Payload;

    fn read(text: &str) -> (Vec<Result<Event, ReplayError>>, Option<usize>) {
        let mut r = Recording::from_reader(Path::new("r.jsonl"), text.as_bytes());
        let items: Vec<_> = r.by_ref().collect();
        (items, r.truncated_tail())
    }

    #[test]
    fn reads_events_and_skips_blank_lines() {
        let a = Event::new(0, 0, 1.0, Payload::Loss { value: 2.0 }).to_json_line();
        let b = Event::new(1, 0, 2.0, Payload::Loss { value: 1.5 }).to_json_line();
        let (items, cut) = read(&format!("{a}\n\n{b}\n"));
        assert_eq!(items.len(), 2);
        assert_eq!(items[1].as_ref().unwrap().step, 1);
        assert_eq!(cut, None);
    }

    #[test]
    fn a_cut_last_line_is_skipped_and_reported() {
        let a = Event::new(0, 0, 1.0, Payload::Loss { value: 2.0 }).to_json_line();
        let (items, cut) = read(&format!("{a}\n{}", &a[..a.len() / 2]));
        assert_eq!(items.len(), 1);
        assert!(items[0].is_ok());
        assert_eq!(cut, Some(2));
    }

    #[test]
    fn a_bad_line_in_the_middle_names_file_line_and_field() {
        let a = Event::new(0, 0, 1.0, Payload::Loss { value: 2.0 }).to_json_line();
        let (items, _) = read(&format!(
            "{a}\n{{\"v\":1,\"step\":1,\"kind\":\"loss\",\"value\":\"x\"}}\n{a}\n"
        ));
        assert_eq!(items.len(), 3);
        let err = items[1].as_ref().unwrap_err().to_string();
        assert!(
            err.starts_with("r.jsonl:2: ") && err.contains("value"),
            "{err}"
        );
        assert!(items[2].is_ok());
    }

    #[test]
    fn diagnoses_are_found_however_the_json_is_spaced() {
        let dir = std::env::temp_dir().join(format!("sonograd-hasdiag-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let cases = [
            (r#"{"kind":"diagnosis","step":3}"#, true),
            (r#"{"kind": "diagnosis", "step": 3}"#, true),
            (r#"{ "step": 3, "kind" : "diagnosis" }"#, true),
            (r#"{"kind": "step", "note": "diagnosis"}"#, false),
            (r#"{"kind": "step", "step": 3}"#, false),
        ];
        for (i, (line, want)) in cases.iter().enumerate() {
            let path = dir.join(format!("{i}.jsonl"));
            std::fs::write(&path, format!("{{\"kind\": \"step\"}}\n{line}\n")).unwrap();
            assert_eq!(has_diagnoses(&path), *want, "{line}");
        }
        assert!(!has_diagnoses(&dir.join("missing.jsonl")));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_diagnosis_is_found_across_reads_and_at_an_unended_end() {
        // Lines that mention the word but are not diagnoses.
        let filler = "{\"kind\": \"loss\", \"note\": \"diagnosis\"}\n".repeat(40);
        let hit = r#"{"step": 9, "kind": "diagnosis", "diagnosis": "stall"}"#;
        for chunk in [64, 100, 333, 4096] {
            for text in [
                format!("{filler}{hit}\n{filler}"),
                format!("{filler}{hit}"),
                format!("{hit}\n{filler}"),
            ] {
                assert!(mentions_diagnosis(text.as_bytes(), chunk), "chunk {chunk}");
            }
            assert!(
                !mentions_diagnosis(filler.as_bytes(), chunk),
                "chunk {chunk}"
            );
            // A line longer than the buffer.
            let long = format!(r#"{{"kind": "diagnosis", "pad": "{}"}}"#, "x".repeat(1000));
            assert!(mentions_diagnosis(long.as_bytes(), chunk));
        }
    }
}
