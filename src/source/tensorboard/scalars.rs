//! The scalar values of one event file, read as it is now and again as it grows: TF1
//! `simple_value`s and TF2 one-element float or double tensors (the scalars plugin's form).
//! Damaged records are noted with the file and offset and skipped.

use std::collections::HashMap;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::framing::{Framing, Next};
use super::proto::decode_event;
use super::{Note, TbError};

/// Bytes read from a file at a time.
const CHUNK: usize = 1 << 20;

/// One scalar value.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Scalar {
    /// The global step (a negative one is read as 0).
    pub step: u64,
    /// Seconds since the Unix epoch.
    pub wall_time: f64,
    /// The tag, as an index into the run's [`TagTable`].
    pub tag: u32,
    /// The value.
    pub value: f64,
}

/// A run's tags, each stored once; scalars name them by index.
#[derive(Clone, Debug, Default)]
pub(crate) struct TagTable {
    names: Vec<Arc<str>>,
    index: HashMap<Arc<str>, u32>,
}

impl TagTable {
    /// The index of `tag`, added if new.
    pub(crate) fn intern(&mut self, tag: &str) -> u32 {
        if let Some(i) = self.index.get(tag) {
            return *i;
        }
        let i = self.names.len() as u32;
        let name: Arc<str> = tag.into();
        self.names.push(name.clone());
        self.index.insert(name, i);
        i
    }

    /// The tag at `index`.
    pub(crate) fn name(&self, index: u32) -> &Arc<str> {
        &self.names[index as usize]
    }

    /// Every tag, in the order first seen.
    pub(crate) fn names(&self) -> &[Arc<str>] {
        &self.names
    }
}

/// One event file being read.
pub(crate) struct ScalarFile {
    path: PathBuf,
    file: File,
    framing: Framing,
    /// Per tag of this file: whether its values are scalars (TF2 names the plugin only on a
    /// tag's first value in a file).
    plugin_ok: HashMap<String, bool>,
    /// Records read whole with matching CRCs.
    pub records: u64,
    /// Records skipped as damaged.
    pub corrupt: u64,
}

impl ScalarFile {
    /// Opens an event file at its start.
    pub(crate) fn open(path: &Path) -> Result<Self, TbError> {
        let file = File::open(path).map_err(|source| TbError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(ScalarFile {
            path: path.to_path_buf(),
            file,
            framing: Framing::new(),
            plugin_ok: HashMap::new(),
            records: 0,
            corrupt: 0,
        })
    }

    /// The file.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Reads the next chunk of the file and appends the scalars of the whole records in it to
    /// `out`; damaged records go to `notes`. Returns the bytes read: 0 at the end of the file
    /// as it is now (read again later to follow a file that grows).
    pub(crate) fn read_more(
        &mut self,
        tags: &mut TagTable,
        out: &mut Vec<Scalar>,
        notes: &mut Vec<Note>,
    ) -> Result<usize, TbError> {
        let spare = self.framing.spare(CHUNK);
        let read = loop {
            match self.file.read(spare) {
                Ok(n) => break n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(source) => {
                    self.framing.commit(CHUNK, 0);
                    return Err(TbError::Io {
                        path: self.path.clone(),
                        source,
                    });
                }
            }
        };
        self.framing.commit(CHUNK, read);
        loop {
            match self.framing.next_record() {
                Next::NeedMore => break,
                Next::Corrupt { offset, what } => {
                    self.corrupt += 1;
                    notes.push(Note::Corrupt {
                        path: self.path.clone(),
                        offset,
                        what: what.to_string(),
                    });
                }
                Next::Record { offset, data } => match decode_event(data) {
                    Ok(event) => {
                        self.records += 1;
                        let Some(summary) = event.summary else {
                            continue;
                        };
                        let step = event.step.max(0) as u64;
                        for v in &summary.value {
                            if let Some(p) = v.plugin() {
                                if !self.plugin_ok.contains_key(&v.tag) {
                                    self.plugin_ok.insert(v.tag.clone(), p == "scalars");
                                }
                            }
                            let value = match (v.simple_value, &v.tensor) {
                                (Some(x), _) => x as f64,
                                (None, Some(t)) => {
                                    if self.plugin_ok.get(&v.tag) == Some(&false) {
                                        continue;
                                    }
                                    match t.scalar() {
                                        Some(x) => x,
                                        None => continue,
                                    }
                                }
                                (None, None) => continue,
                            };
                            out.push(Scalar {
                                step,
                                wall_time: event.wall_time,
                                tag: tags.intern(&v.tag),
                                value,
                            });
                        }
                    }
                    Err(e) => {
                        self.corrupt += 1;
                        notes.push(Note::Corrupt {
                            path: self.path.clone(),
                            offset,
                            what: format!("not an Event message ({e})"),
                        });
                    }
                },
            }
        }
        Ok(read)
    }

    /// The offset and length of an unfinished last record, if bytes are left over.
    pub(crate) fn unfinished_tail(&self) -> Option<(u64, usize)> {
        (self.framing.pending() > 0).then(|| (self.framing.offset(), self.framing.pending()))
    }

    /// An error if nothing in the file was an event record (it is not an event file).
    pub(crate) fn check_is_event_file(&self) -> Result<(), TbError> {
        if self.records == 0 && (self.corrupt > 0 || self.framing.pending() > 0) {
            return Err(TbError::NotEventFile {
                path: self.path.clone(),
            });
        }
        Ok(())
    }
}
