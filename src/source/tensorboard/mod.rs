//! TensorBoard event files as a source: what PyTorch's `SummaryWriter`, tensorboardX,
//! Lightning, Hugging Face, TensorFlow and Keras write, read back as events.
//!
//! A path is an `events.out.tfevents.*` file or a folder; every folder under it that holds
//! event files is one run (`discover`), tagged with its path relative to the folder given.
//! Records are framed and checked ([`framing`]), decoded ([`proto`]), their scalars read
//! (`scalars`), mapped by tag ([`tags`]) and turned into events (`events`). A replay
//! reads each run twice: once to find its tags ([`TensorBoard::scan`], which also ranks the
//! loss tags and checks a `--tags` map), then to play it ([`TensorBoard::events`]).
//! [`follow`] reads a folder that a running trainer keeps writing to.
//!
//! ```no_run
//! use sonograd::source::tensorboard::TensorBoard;
//! let tb = TensorBoard::scan("runs".as_ref(), None).unwrap();
//! for note in &tb.notes {
//!     eprintln!("warning: {note}");
//! }
//! for event in tb.events() {
//!     println!("{}", event.unwrap().to_json_line());
//! }
//! ```

pub(crate) mod discover;
pub(crate) mod events;
pub mod follow;
pub mod framing;
pub mod proto;
pub(crate) mod scalars;
pub mod tags;

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::event::Event;
use discover::RunFiles;
use events::Assembler;
use scalars::{Scalar, ScalarFile, TagTable};
use tags::{Origin, TagMap, TagMapError, Target};

/// Why event files cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum TbError {
    /// A file or folder cannot be read.
    #[error("{path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// A folder holds no event files.
    #[error("{path}: no TensorBoard event files (events.out.tfevents.*) in this folder or below")]
    NoEventFiles {
        /// The folder.
        path: PathBuf,
    },
    /// A file holds no valid record at all.
    #[error("{path}: offset 0: not a TensorBoard event file (no record with valid CRCs)")]
    NotEventFile {
        /// The file.
        path: PathBuf,
    },
    /// The `--tags` map is malformed.
    #[error(transparent)]
    TagMap(#[from] TagMapError),
    /// The `--tags` map names a tag that no run has.
    #[error("--tags: no run has the tag {tag:?} (tags found: {found})")]
    UnknownTag {
        /// The tag asked for.
        tag: String,
        /// The tags the runs have.
        found: String,
    },
}

/// Something worth a warning that did not stop the reading.
#[derive(Clone, Debug, PartialEq)]
pub enum Note {
    /// A damaged record was skipped.
    Corrupt {
        /// The file.
        path: PathBuf,
        /// Offset of the record.
        offset: u64,
        /// What was wrong.
        what: String,
    },
    /// The file ends inside a record (a run still writing, or cut off).
    Truncated {
        /// The file.
        path: PathBuf,
        /// Offset of the unfinished record.
        offset: u64,
        /// Its bytes present.
        bytes: usize,
    },
}

impl fmt::Display for Note {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Note::Corrupt { path, offset, what } => write!(
                f,
                "{}: offset {offset}: damaged record skipped ({what})",
                path.display()
            ),
            Note::Truncated {
                path,
                offset,
                bytes,
            } => write!(
                f,
                "{}: offset {offset}: unfinished last record skipped ({bytes} bytes; the run may still be writing)",
                path.display()
            ),
        }
    }
}

impl Note {
    /// Whether this is a damaged record (rather than an unfinished tail).
    pub fn is_corrupt(&self) -> bool {
        matches!(self, Note::Corrupt { .. })
    }
}

/// What a run holds under one tag.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TagInfo {
    /// Scalar values.
    pub values: u64,
    /// First and last step.
    pub steps: (u64, u64),
}

/// One run as the scan found it.
#[derive(Clone, Debug)]
pub struct RunScan {
    /// Its files.
    pub files: RunFiles,
    /// Its scalar tags.
    pub tags: BTreeMap<String, TagInfo>,
    /// What each tag becomes.
    pub targets: BTreeMap<String, (Target, Origin)>,
}

/// Event files found and scanned, ready to be played.
#[derive(Clone, Debug)]
pub struct TensorBoard {
    /// The path given.
    pub path: PathBuf,
    /// The runs, in path order.
    pub runs: Vec<RunScan>,
    /// Damaged records skipped and unfinished tails, in reading order.
    pub notes: Vec<Note>,
}

impl TensorBoard {
    /// Finds the runs at `path` and reads each once for its tags; resolves them against the
    /// conventions and `map`. A tag in `map` that no run has is an error.
    pub fn scan(path: &Path, map: Option<&TagMap>) -> Result<TensorBoard, TbError> {
        let mut runs = Vec::new();
        let mut notes = Vec::new();
        let mut buf = Vec::new();
        for files in discover::discover_some(path)? {
            let mut table = TagTable::default();
            let mut info: Vec<TagInfo> = Vec::new();
            for file in &files.files {
                let mut reader = ScalarFile::open(file)?;
                while reader.read_more(&mut table, &mut buf, &mut notes)? > 0 {
                    for s in buf.drain(..) {
                        let i = s.tag as usize;
                        if i >= info.len() {
                            info.resize(
                                i + 1,
                                TagInfo {
                                    values: 0,
                                    steps: (u64::MAX, 0),
                                },
                            );
                        }
                        let t = &mut info[i];
                        t.values += 1;
                        t.steps = (t.steps.0.min(s.step), t.steps.1.max(s.step));
                    }
                }
                reader.check_is_event_file()?;
                if let Some((offset, bytes)) = reader.unfinished_tail() {
                    notes.push(Note::Truncated {
                        path: file.clone(),
                        offset,
                        bytes,
                    });
                }
            }
            let tags: BTreeMap<String, TagInfo> = table
                .names()
                .iter()
                .zip(&info)
                .map(|(n, i)| (n.to_string(), *i))
                .collect();
            let targets = tags::resolve(tags.keys().map(String::as_str), map);
            runs.push(RunScan {
                files,
                tags,
                targets,
            });
        }
        if let Some(map) = map {
            for (tag, _) in &map.entries {
                if !runs.iter().any(|r| r.tags.contains_key(tag)) {
                    let mut found: Vec<&str> = runs
                        .iter()
                        .flat_map(|r| r.tags.keys().map(String::as_str))
                        .collect();
                    found.sort_unstable();
                    found.dedup();
                    return Err(TbError::UnknownTag {
                        tag: tag.clone(),
                        found: if found.is_empty() {
                            "none".into()
                        } else {
                            found.join(", ")
                        },
                    });
                }
            }
        }
        Ok(TensorBoard {
            path: path.to_path_buf(),
            runs,
            notes,
        })
    }

    /// Scalar values in all runs.
    pub fn values(&self) -> u64 {
        self.runs
            .iter()
            .flat_map(|r| r.tags.values())
            .map(|t| t.values)
            .sum()
    }

    /// The events of every run, one run after the other.
    pub fn events(&self) -> TbEvents<'_> {
        TbEvents {
            tb: self,
            run: 0,
            file: 0,
            reader: None,
            table: TagTable::default(),
            targets: Vec::new(),
            assembler: Assembler::new(None),
            scalars: Vec::new(),
            out: Vec::new(),
            ready: VecDeque::new(),
            notes: Vec::new(),
        }
    }

    /// A table of each run's tags, their values and steps, and what they become (for
    /// `--list-tags`).
    pub fn tag_listing(&self) -> String {
        use std::fmt::Write;
        let mut s = String::new();
        for run in &self.runs {
            let name = run.files.name.as_deref().unwrap_or("");
            let _ = writeln!(
                s,
                "{} ({} file{})",
                if name.is_empty() {
                    run.files.files[0].display().to_string()
                } else {
                    format!("run {name}")
                },
                run.files.files.len(),
                if run.files.files.len() == 1 { "" } else { "s" }
            );
            if run.tags.is_empty() {
                let _ = writeln!(s, "  no scalar tags");
            }
            let width = run
                .tags
                .keys()
                .map(|t| t.chars().count())
                .max()
                .unwrap_or(0);
            for (tag, info) in &run.tags {
                let (target, origin) = &run.targets[tag];
                let from = match origin {
                    Origin::Map => "  (--tags)",
                    Origin::Convention => "",
                };
                let _ = writeln!(
                    s,
                    "  {tag:<width$}  {:>7} values, steps {}–{}  -> {target}{from}",
                    info.values, info.steps.0, info.steps.1
                );
            }
        }
        s
    }
}

/// The events of a scanned [`TensorBoard`] (see [`TensorBoard::events`]).
pub struct TbEvents<'a> {
    tb: &'a TensorBoard,
    run: usize,
    file: usize,
    reader: Option<ScalarFile>,
    table: TagTable,
    targets: Vec<Target>,
    assembler: Assembler,
    scalars: Vec<Scalar>,
    out: Vec<Event>,
    ready: VecDeque<Event>,
    notes: Vec<Note>,
}

impl TbEvents<'_> {
    /// Reads on until events are ready or the input ends; false at the end.
    fn fill(&mut self) -> Result<bool, TbError> {
        while self.ready.is_empty() {
            let Some(run) = self.tb.runs.get(self.run) else {
                return Ok(false);
            };
            if self.reader.is_none() {
                if self.file == 0 {
                    self.table = TagTable::default();
                    self.targets.clear();
                    self.assembler = Assembler::new(run.files.name.as_deref().map(Arc::from));
                }
                match run.files.files.get(self.file) {
                    Some(path) => self.reader = Some(ScalarFile::open(path)?),
                    None => {
                        self.assembler.flush(&mut self.out);
                        self.ready.extend(self.out.drain(..));
                        self.run += 1;
                        self.file = 0;
                        continue;
                    }
                }
            }
            let Some(reader) = self.reader.as_mut() else {
                continue;
            };
            let read = reader.read_more(&mut self.table, &mut self.scalars, &mut self.notes)?;
            self.notes.clear(); // the scan reported them
            if read == 0 {
                self.reader = None;
                self.file += 1;
            }
            for s in self.scalars.drain(..) {
                let i = s.tag as usize;
                while self.targets.len() <= i {
                    let name = self.table.name(self.targets.len() as u32);
                    let target = run
                        .targets
                        .get(name.as_ref())
                        .map_or(Target::Ignored, |(t, _)| t.clone());
                    self.targets.push(target);
                }
                self.assembler.push(&s, &self.targets[i], &mut self.out);
            }
            self.ready.extend(self.out.drain(..));
        }
        Ok(true)
    }
}

impl Iterator for TbEvents<'_> {
    type Item = Result<Event, TbError>;

    fn next(&mut self) -> Option<Self::Item> {
        match self.fill() {
            Ok(true) => self.ready.pop_front().map(Ok),
            Ok(false) => None,
            Err(e) => {
                // Stop after an error: the runs after it are not read.
                self.run = self.tb.runs.len();
                self.reader = None;
                Some(Err(e))
            }
        }
    }
}
