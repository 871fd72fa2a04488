//! Which reader a path needs, and its events: a JSON-lines recording, a CSV export (with a
//! column map) or TensorBoard event files (a folder, or a file named `*tfevents*`). Shared by
//! `replay`, `render` and `report`, so that each takes any readable source.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::csv::{ColumnMap, CsvError, CsvEvents};
use super::replay::Recording;
use super::replay_paced::{PacedReplayError, ReplayInput};
use super::tensorboard::discover::is_event_file;
use super::tensorboard::tags::TagMap;
use super::tensorboard::{TbEvents, TensorBoard};
use crate::event::Event;

/// Whether `path` is read as TensorBoard event files: a folder, or a file whose name says so.
pub fn is_tensorboard(path: &Path) -> bool {
    path.is_dir()
        || path
            .file_name()
            .is_some_and(|n| is_event_file(&n.to_string_lossy()))
}

/// Picks the reader for `path`: CSV when `csv_columns` is given (or the name ends in `.csv`),
/// TensorBoard for a folder or an event file (scanned now, with `tags`), JSON lines otherwise.
pub fn detect(
    path: &Path,
    csv_columns: Option<&ColumnMap>,
    tags: Option<&TagMap>,
) -> Result<ReplayInput, PacedReplayError> {
    let csv_name = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("csv"));
    match csv_columns {
        Some(columns) if !is_tensorboard(path) || csv_name => Ok(ReplayInput::Csv {
            path: path.to_path_buf(),
            columns: columns.clone(),
        }),
        None if csv_name => Err(CsvError::Spec(format!(
            "{}: a CSV file needs --csv-columns, e.g. step=Step,loss=train/loss",
            path.display()
        ))
        .into()),
        _ if is_tensorboard(path) => Ok(ReplayInput::TensorBoard(Arc::new(TensorBoard::scan(
            path, tags,
        )?))),
        _ => Ok(ReplayInput::JsonLines(path.to_path_buf())),
    }
}

impl ReplayInput {
    /// The file or folder read.
    pub fn path(&self) -> PathBuf {
        match self {
            ReplayInput::JsonLines(p) | ReplayInput::Csv { path: p, .. } => p.clone(),
            ReplayInput::TensorBoard(tb) => tb.path.clone(),
        }
    }

    /// Opens the input for one pass over its events.
    pub fn open(&self) -> Result<InputEvents<'_>, PacedReplayError> {
        Ok(match self {
            ReplayInput::JsonLines(p) => InputEvents::Json(Recording::open(p)?),
            ReplayInput::Csv { path, columns } => InputEvents::Csv(CsvEvents::open(path, columns)?),
            ReplayInput::TensorBoard(tb) => InputEvents::Tb(Box::new(tb.events())),
        })
    }
}

/// One pass over an input's events.
pub enum InputEvents<'a> {
    /// A JSON-lines recording.
    Json(Recording<File>),
    /// A CSV export.
    Csv(CsvEvents<File>),
    /// Event files.
    Tb(Box<TbEvents<'a>>),
}

impl<'a> InputEvents<'a> {
    /// The 1-based line of a recording's unfinished last line that was skipped, if any.
    pub fn truncated_tail(&self) -> Option<usize> {
        match self {
            InputEvents::Json(r) => r.truncated_tail(),
            _ => None,
        }
    }

    /// The events up to the first error; that error is left in `failure`.
    pub fn until_error<'b>(
        &'b mut self,
        failure: &'b mut Option<PacedReplayError>,
    ) -> impl Iterator<Item = Event> + use<'a, 'b>
    where
        'a: 'b,
    {
        std::iter::from_fn(move || match self.next()? {
            Ok(e) => Some(e),
            Err(e) => {
                *failure = Some(e);
                None
            }
        })
    }
}

impl Iterator for InputEvents<'_> {
    type Item = Result<Event, PacedReplayError>;

    fn next(&mut self) -> Option<Self::Item> {
        match self {
            InputEvents::Json(r) => r.next().map(|r| r.map_err(Into::into)),
            InputEvents::Csv(c) => c.next().map(|r| r.map_err(Into::into)),
            InputEvents::Tb(t) => t.next().map(|r| r.map_err(Into::into)),
        }
    }
}
