//! Following a folder of event files that a running trainer keeps writing
//! (`sonograd listen --tensorboard DIR`): each poll reads what the files gained since the last
//! one, picks up new files and new run folders, and resolves the tags again when new ones
//! appear (what was already played stays as it was).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::discover::discover;
use super::events::Assembler;
use super::scalars::{Scalar, ScalarFile, TagTable};
use super::tags::{self, TagMap, Target};
use super::{Note, TbError};
use crate::event::Event;

/// One followed run.
struct Followed {
    files: Vec<ScalarFile>,
    table: TagTable,
    targets: Vec<Target>,
    assembler: Assembler,
}

/// A folder (or one file) being followed.
pub struct Follower {
    root: PathBuf,
    map: Option<TagMap>,
    runs: BTreeMap<PathBuf, Followed>,
    scalars: Vec<Scalar>,
}

impl Follower {
    /// Follows `root`, which must exist (it may hold no event files yet).
    pub fn new(root: &Path, map: Option<TagMap>) -> Result<Self, TbError> {
        std::fs::metadata(root).map_err(|source| TbError::Io {
            path: root.to_path_buf(),
            source,
        })?;
        Ok(Follower {
            root: root.to_path_buf(),
            map,
            runs: BTreeMap::new(),
            scalars: Vec::new(),
        })
    }

    /// The runs found so far, by name.
    pub fn run_names(&self) -> Vec<String> {
        self.runs
            .keys()
            .map(|d| {
                let rel = d.strip_prefix(&self.root).unwrap_or(d);
                let s = rel.display().to_string();
                if s.is_empty() {
                    ".".into()
                } else {
                    s
                }
            })
            .collect()
    }

    /// Reads everything new: appends the events to `out` and damaged records to `notes`;
    /// returns the number of events appended.
    pub fn poll(&mut self, out: &mut Vec<Event>, notes: &mut Vec<Note>) -> Result<usize, TbError> {
        let before = out.len();
        for found in discover(&self.root)? {
            let run = self
                .runs
                .entry(found.dir.clone())
                .or_insert_with(|| Followed {
                    files: Vec::new(),
                    table: TagTable::default(),
                    targets: Vec::new(),
                    assembler: Assembler::new(found.name.as_deref().map(Arc::from)),
                });
            for path in &found.files {
                if !run.files.iter().any(|f| f.path() == path) {
                    run.files.push(ScalarFile::open(path)?);
                }
            }
        }
        for run in self.runs.values_mut() {
            for file in &mut run.files {
                while file.read_more(&mut run.table, &mut self.scalars, notes)? > 0 {
                    if run.table.names().len() > run.targets.len() {
                        // New tags: rank them with the old ones.
                        let resolved = tags::resolve(
                            run.table.names().iter().map(|n| n.as_ref()),
                            self.map.as_ref(),
                        );
                        run.targets = run
                            .table
                            .names()
                            .iter()
                            .map(|n| resolved[n.as_ref()].0.clone())
                            .collect();
                    }
                    for s in self.scalars.drain(..) {
                        run.assembler.push(&s, &run.targets[s.tag as usize], out);
                    }
                }
            }
            run.assembler.flush(out);
        }
        Ok(out.len() - before)
    }
}

/// What [`follow`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FollowReport {
    /// Events handed on.
    pub events: u64,
    /// Polls made.
    pub polls: u64,
    /// Damaged records skipped.
    pub corrupt: u64,
    /// The runs found, by name.
    pub runs: Vec<String>,
}

/// Polls `follower` every `every` until `stop` is set, handing each event to `sink`, each
/// damaged record to `note` and each newly found run's name to `new_run`.
pub fn follow(
    follower: &mut Follower,
    every: std::time::Duration,
    sink: &mut dyn FnMut(Event),
    note: &mut dyn FnMut(&Note),
    new_run: &mut dyn FnMut(&str),
    stop: &std::sync::atomic::AtomicBool,
) -> Result<FollowReport, TbError> {
    use std::sync::atomic::Ordering;
    let mut report = FollowReport::default();
    let mut events = Vec::new();
    let mut notes = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        let started = std::time::Instant::now();
        follower.poll(&mut events, &mut notes)?;
        report.polls += 1;
        for name in follower.run_names() {
            if !report.runs.contains(&name) {
                new_run(&name);
                report.runs.push(name);
            }
        }
        for n in notes.drain(..) {
            report.corrupt += u64::from(n.is_corrupt());
            note(&n);
        }
        report.events += events.len() as u64;
        for e in events.drain(..) {
            sink(e);
        }
        let next = started + every;
        while !stop.load(Ordering::Relaxed) {
            let now = std::time::Instant::now();
            if now >= next {
                break;
            }
            std::thread::sleep((next - now).min(std::time::Duration::from_millis(20)));
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::tensorboard::framing::frame;
    use crate::source::tensorboard::proto;
    use prost::Message;
    use std::io::Write;

    fn record(step: i64, tag: &str, value: f32) -> Vec<u8> {
        let e = proto::Event {
            wall_time: step as f64,
            step,
            file_version: None,
            summary: Some(proto::Summary {
                value: vec![proto::SummaryValue {
                    tag: tag.into(),
                    simple_value: Some(value),
                    tensor: None,
                    metadata: None,
                }],
            }),
        };
        let mut out = Vec::new();
        frame(&e.encode_to_vec(), &mut out);
        out
    }

    #[test]
    fn growing_files_and_new_runs_are_followed() {
        let d = tempfile::tempdir().unwrap();
        let a = d.path().join("a");
        std::fs::create_dir(&a).unwrap();
        let path = a.join("events.out.tfevents.1.h");
        let mut f = std::fs::File::create(&path).unwrap();
        let mut fol = Follower::new(d.path(), None).unwrap();
        let (mut out, mut notes) = (Vec::new(), Vec::new());
        assert_eq!(fol.poll(&mut out, &mut notes).unwrap(), 0);
        let r = record(0, "loss", 2.0);
        f.write_all(&r[..r.len() - 5]).unwrap();
        f.flush().unwrap();
        assert_eq!(
            fol.poll(&mut out, &mut notes).unwrap(),
            0,
            "half a record waits"
        );
        f.write_all(&r[r.len() - 5..]).unwrap();
        f.write_all(&record(1, "loss", 1.5)).unwrap();
        assert_eq!(fol.poll(&mut out, &mut notes).unwrap(), 2);
        let b = d.path().join("b/x");
        std::fs::create_dir_all(&b).unwrap();
        std::fs::write(
            b.join("events.out.tfevents.2.h"),
            record(5, "grad_norm/fc1", 0.5),
        )
        .unwrap();
        assert_eq!(fol.poll(&mut out, &mut notes).unwrap(), 1);
        let got: Vec<(Option<&str>, u64, &str, Option<f64>)> = out
            .iter()
            .map(|e| {
                (
                    e.run.as_deref(),
                    e.step,
                    e.payload.kind(),
                    e.payload.value(),
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                (Some("a"), 0, "loss", Some(2.0)),
                (Some("a"), 1, "loss", Some(1.5)),
                (Some("b/x"), 5, "grad_norm", Some(0.5)),
            ]
        );
        assert!(notes.is_empty());
        assert_eq!(fol.run_names(), ["a", "b/x"]);
    }
}
