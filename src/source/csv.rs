//! CSV import: the step/metric tables W&B and TensorBoard export, read as events.
//!
//! A column mapping (`--csv-columns`) says which column is what:
//! `step=Step,time=Wall time,loss=train/loss,lr=lr,grad_norm:fc1=grads/fc1,eval:accuracy=val/acc`.
//! Keys: `step` (required), `time` (Unix seconds, optional), `epoch` (optional), the
//! layerless kinds `loss`, `lr`, `total_norm`, the layer kinds `grad_norm:LAYER`,
//! `weight_norm:LAYER`, `update_ratio:LAYER`, and `eval:NAME`. Each row gives one event per
//! mapped metric column with a value; empty cells are skipped (W&B exports are sparse).
//! Cells may be quoted (RFC 4180); `NaN`, `inf`, `Infinity` are read as such.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use super::alarm_fill::AlarmFill;
use crate::event::{Event, Layer, Payload};

/// A bad mapping or a bad CSV file.
#[derive(Debug, thiserror::Error)]
pub enum CsvError {
    /// The `--csv-columns` text is wrong.
    #[error("--csv-columns: {0}")]
    Spec(String),
    /// The file cannot be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        source: io::Error,
    },
    /// A mapped column is not in the header.
    #[error("{path}: no column {column:?} (the header has: {available})")]
    MissingColumn {
        /// The file.
        path: PathBuf,
        /// The column asked for.
        column: String,
        /// The header's columns.
        available: String,
    },
    /// A cell cannot be read.
    #[error("{path}:{line}: column {column:?}: {message}")]
    Cell {
        /// The file.
        path: PathBuf,
        /// 1-based line number where the record starts.
        line: usize,
        /// The column.
        column: String,
        /// What is wrong.
        message: String,
    },
}

/// What a metric column becomes.
#[derive(Clone, Debug, PartialEq)]
pub enum MetricColumn {
    /// `loss`, `lr` or `total_norm`.
    Plain(&'static str),
    /// `grad_norm`, `weight_norm` or `update_ratio` of a layer.
    PerLayer(&'static str, String),
    /// An eval metric by name.
    Eval(String),
}

/// The parsed `--csv-columns` mapping.
#[derive(Clone, Debug, PartialEq)]
pub struct ColumnMap {
    /// Column of the step.
    pub step: String,
    /// Column of the wall-clock time, if any.
    pub time: Option<String>,
    /// Column of the epoch, if any.
    pub epoch: Option<String>,
    /// Metric columns, in the order given.
    pub metrics: Vec<(MetricColumn, String)>,
}

const PLAIN: [&str; 3] = ["loss", "lr", "total_norm"];
const PER_LAYER: [&str; 3] = ["grad_norm", "weight_norm", "update_ratio"];

impl ColumnMap {
    /// Parses `key=COLUMN,key=COLUMN,...` (see the module docs).
    pub fn parse(spec: &str) -> Result<ColumnMap, CsvError> {
        let err = |m: String| CsvError::Spec(m);
        let (mut step, mut time, mut epoch, mut metrics) = (None, None, None, Vec::new());
        for item in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (key, column) = item.split_once('=').ok_or_else(|| {
                err(format!(
                    "{item:?}: expected KEY=COLUMN, e.g. loss=train/loss"
                ))
            })?;
            let (key, column) = (key.trim(), column.trim().to_string());
            if column.is_empty() {
                return Err(err(format!("{item:?}: the column name is empty")));
            }
            let (kind, arg) = match key.split_once(':') {
                Some((k, a)) => (k, Some(a)),
                None => (key, None),
            };
            match (kind, arg) {
                ("step", None) => step = Some(column),
                ("time", None) => time = Some(column),
                ("epoch", None) => epoch = Some(column),
                (k, None) if PLAIN.contains(&k) => {
                    let k = PLAIN.iter().find(|p| **p == k).copied().unwrap_or("loss");
                    metrics.push((MetricColumn::Plain(k), column))
                }
                (k, Some(layer)) if PER_LAYER.contains(&k) && !layer.is_empty() => {
                    let k = PER_LAYER
                        .iter()
                        .find(|p| **p == k)
                        .copied()
                        .unwrap_or("grad_norm");
                    metrics.push((MetricColumn::PerLayer(k, layer.to_string()), column))
                }
                (k, None) if PER_LAYER.contains(&k) => {
                    return Err(err(format!("{key:?} needs a layer: {k}:LAYER=COLUMN")))
                }
                ("eval", Some(name)) if !name.is_empty() => {
                    metrics.push((MetricColumn::Eval(name.to_string()), column))
                }
                ("eval", _) => return Err(err(format!("{key:?} needs a name: eval:NAME=COLUMN"))),
                _ => {
                    return Err(err(format!(
                    "unknown key {key:?}; expected step, time, epoch, {}, {}:LAYER or eval:NAME",
                    PLAIN.join(", "),
                    PER_LAYER.join(":LAYER, ")
                )))
                }
            }
        }
        let step = step.ok_or_else(|| err("a step column is required: step=COLUMN".into()))?;
        if metrics.is_empty() {
            return Err(err(
                "no metric column given, e.g. loss=train/loss or grad_norm:fc1=grads/fc1".into(),
            ));
        }
        Ok(ColumnMap {
            step,
            time,
            epoch,
            metrics,
        })
    }
}

/// The file's read error as a [`CsvError`]: the OS's, or where the text is not CSV (bad
/// UTF-8) with its line.
fn read_error(path: &Path, e: csv::Error) -> CsvError {
    if e.is_io_error() {
        if let csv::ErrorKind::Io(source) = e.into_kind() {
            return CsvError::Io {
                path: path.to_path_buf(),
                source,
            };
        }
        unreachable!("is_io_error says it is one");
    }
    let line = e.position().map_or(0, |p| p.line() as usize);
    CsvError::Io {
        path: path.to_path_buf(),
        source: io::Error::new(io::ErrorKind::InvalidData, format!("line {line}: {e}")),
    }
}

/// Reads a number cell: decimal, exponent, `NaN`, `inf`, `Infinity` (any case).
pub fn parse_number(cell: &str) -> Option<f64> {
    let t = cell.trim();
    match t.to_ascii_lowercase().as_str() {
        "nan" => Some(f64::NAN),
        "inf" | "+inf" | "infinity" | "+infinity" => Some(f64::INFINITY),
        "-inf" | "-infinity" => Some(f64::NEG_INFINITY),
        _ => t.parse::<f64>().ok().filter(|x| x.is_finite()),
    }
}

/// Reads a step cell: a whole number ≥ 0 (`12` or `12.0`).
pub fn parse_step(cell: &str) -> Option<u64> {
    let t = cell.trim();
    t.parse::<u64>().ok().or_else(|| {
        t.parse::<f64>()
            .ok()
            .filter(|x| x.is_finite() && *x >= 0.0 && x.fract() == 0.0 && *x < 1.8e19)
            .map(|x| x as u64)
    })
}

/// The events of one CSV file, in row order.
pub struct CsvEvents<R> {
    path: PathBuf,
    reader: csv::Reader<R>,
    record: csv::StringRecord,
    step: usize,
    step_name: String,
    time: Option<usize>,
    epoch: Option<usize>,
    metrics: Vec<(MetricColumn, usize, String)>,
    pending: VecDeque<Event>,
    alarms: AlarmFill,
}

impl CsvEvents<File> {
    /// Opens a CSV file and checks its header against `columns`.
    pub fn open(path: &Path, columns: &ColumnMap) -> Result<Self, CsvError> {
        let file = File::open(path).map_err(|source| CsvError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_reader(path, file, columns)
    }
}

impl<R: Read> CsvEvents<R> {
    /// Reads CSV from any reader; `path` names it in messages.
    pub fn from_reader(path: &Path, reader: R, columns: &ColumnMap) -> Result<Self, CsvError> {
        // Records of any length (W&B rows may be short), cells as written (trimmed where
        // read), RFC 4180 quotes, a record's quoted cells may span lines.
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .from_reader(reader);
        let mut header = csv::StringRecord::new();
        if let Err(e) = reader.read_record(&mut header) {
            return Err(read_error(path, e));
        }
        let header: Vec<String> = header
            .iter()
            .map(|h| h.trim_start_matches('\u{feff}').trim().to_string())
            .collect();
        let find = |column: &str| {
            header
                .iter()
                .position(|h| h == column)
                .ok_or_else(|| CsvError::MissingColumn {
                    path: path.to_path_buf(),
                    column: column.to_string(),
                    available: header.join(", "),
                })
        };
        Ok(CsvEvents {
            path: path.to_path_buf(),
            record: csv::StringRecord::new(),
            step: find(&columns.step)?,
            step_name: columns.step.clone(),
            time: columns.time.as_deref().map(find).transpose()?,
            epoch: columns.epoch.as_deref().map(find).transpose()?,
            metrics: columns
                .metrics
                .iter()
                .map(|(m, c)| find(c).map(|i| (m.clone(), i, c.clone())))
                .collect::<Result<_, _>>()?,
            reader,
            pending: VecDeque::new(),
            alarms: AlarmFill::default(),
        })
    }

    fn cell_error(&self, line: usize, column: &str, message: String) -> CsvError {
        CsvError::Cell {
            path: self.path.clone(),
            line,
            column: column.to_string(),
            message,
        }
    }

    fn row(&mut self, fields: &csv::StringRecord, line: usize) -> Result<(), CsvError> {
        let cell = |i: usize| fields.get(i).unwrap_or("");
        let step_text = cell(self.step);
        if step_text.trim().is_empty() {
            return Ok(()); // a row without a step carries nothing to place
        }
        let step = parse_step(step_text).ok_or_else(|| {
            self.cell_error(
                line,
                &self.step_name,
                format!("{step_text:?} is not a step (a whole number, 0 or more)"),
            )
        })?;
        let time = match self.time {
            Some(i) if !cell(i).trim().is_empty() => parse_number(cell(i))
                .filter(|t| t.is_finite())
                .ok_or_else(|| {
                    self.cell_error(
                        line,
                        "time",
                        format!("{:?} is not a time in seconds", cell(i)),
                    )
                })?,
            _ => 0.0,
        };
        let epoch = match self.epoch {
            Some(i) if !cell(i).trim().is_empty() => parse_step(cell(i))
                .and_then(|e| u32::try_from(e).ok())
                .ok_or_else(|| {
                    self.cell_error(line, "epoch", format!("{:?} is not an epoch", cell(i)))
                })?,
            _ => 0,
        };
        let mut row = Vec::with_capacity(self.metrics.len());
        for (metric, i, column) in &self.metrics {
            let text = cell(*i);
            if text.trim().is_empty() {
                continue;
            }
            let value = parse_number(text).ok_or_else(|| CsvError::Cell {
                path: self.path.clone(),
                line,
                column: column.clone(),
                message: format!("{text:?} is not a number"),
            })?;
            let payload = match metric {
                MetricColumn::Plain("lr") => Payload::Lr { value },
                MetricColumn::Plain("total_norm") => Payload::TotalNorm { value },
                MetricColumn::Plain(_) => Payload::Loss { value },
                MetricColumn::PerLayer(kind, layer) => {
                    let layer = Layer {
                        name: layer.as_str().into(),
                        index: None,
                    };
                    match *kind {
                        "weight_norm" => Payload::WeightNorm { layer, value },
                        "update_ratio" => Payload::UpdateRatio { layer, value },
                        _ => Payload::GradNorm { layer, value },
                    }
                }
                MetricColumn::Eval(name) => Payload::Eval {
                    name: name.clone(),
                    value,
                },
            };
            row.push(Event::new(step, epoch, time, payload));
        }
        // A NaN cell is a NaN value, and gets the alarm other sources send with one.
        let pending = &mut self.pending;
        for e in row {
            self.alarms.push(e, &mut |e| pending.push_back(e));
        }
        Ok(())
    }
}

impl<R: Read> Iterator for CsvEvents<R> {
    type Item = Result<Event, CsvError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(e) = self.pending.pop_front() {
                return Some(Ok(e));
            }
            match self.reader.read_record(&mut self.record) {
                Ok(true) => {}
                Ok(false) => return None,
                Err(e) => return Some(Err(read_error(&self.path, e))),
            }
            let fields = std::mem::take(&mut self.record);
            let line = fields.position().map_or(0, |p| p.line() as usize);
            if fields.iter().all(|f| f.trim().is_empty()) {
                self.record = fields;
                continue;
            }
            let row = self.row(&fields, line);
            self.record = fields;
            if let Err(e) = row {
                return Some(Err(e));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(csv: &str, spec: &str) -> Vec<Result<Event, String>> {
        let map = ColumnMap::parse(spec).unwrap();
        CsvEvents::from_reader(Path::new("t.csv"), csv.as_bytes(), &map)
            .unwrap()
            .map(|r| r.map_err(|e| e.to_string()))
            .collect()
    }

    #[test]
    fn the_column_mapping_parses_and_names_mistakes() {
        let m =
            ColumnMap::parse("step=Step,loss=train/loss,grad_norm:fc1=grads/fc1,eval:acc=val acc")
                .unwrap();
        assert_eq!(m.step, "Step");
        assert_eq!(
            m.metrics,
            vec![
                (MetricColumn::Plain("loss"), "train/loss".to_string()),
                (
                    MetricColumn::PerLayer("grad_norm", "fc1".into()),
                    "grads/fc1".into()
                ),
                (MetricColumn::Eval("acc".into()), "val acc".into()),
            ]
        );
        for (spec, needle) in [
            ("loss=l", "step column is required"),
            ("step=s", "no metric column"),
            ("step=s,wobble=w", "unknown key \"wobble\""),
            ("step=s,grad_norm=g", "needs a layer"),
            ("step=s,loss", "expected KEY=COLUMN"),
            ("step=s,loss=", "column name is empty"),
        ] {
            let err = ColumnMap::parse(spec).unwrap_err().to_string();
            assert!(
                err.starts_with("--csv-columns: ") && err.contains(needle),
                "{spec}: {err}"
            );
        }
    }

    #[test]
    fn a_wandb_style_export_becomes_events() {
        let csv = "\u{feff}Step,\"train/loss\",grads/fc1,_timestamp\n\
                   0,2.5,,1700000000.5\n\
                   1,,0.75,1700000001\n\
                   2,NaN,\"1.5\",1700000002\n";
        let got = events(
            csv,
            "step=Step,time=_timestamp,loss=train/loss,grad_norm:fc1=grads/fc1",
        );
        // The NaN loss is followed by its alarm, as other sources send it.
        assert_eq!(got.len(), 5, "{got:?}");
        let e0 = got[0].as_ref().unwrap();
        assert_eq!(
            (e0.step, e0.time, e0.payload.value()),
            (0, 1_700_000_000.5, Some(2.5))
        );
        let e1 = got[1].as_ref().unwrap();
        assert_eq!(e1.payload.kind(), "grad_norm");
        assert!(got[2].as_ref().unwrap().payload.value().unwrap().is_nan());
        assert_eq!(got[3].as_ref().unwrap().payload.kind(), "non_finite");
        assert_eq!(got[4].as_ref().unwrap().payload.value(), Some(1.5));
        let bad = events("Step,loss\n0,1\n1,\"1,5\"\n2,3\n", "step=Step,loss=loss");
        assert_eq!(bad.len(), 3);
        let msg = bad[1].as_ref().unwrap_err();
        assert!(msg.starts_with("t.csv:3: column \"loss\""), "{msg}");
        assert!(bad[2].is_ok(), "reading goes on after a bad row");
    }

    #[test]
    fn a_missing_column_lists_the_header() {
        let map = ColumnMap::parse("step=Step,loss=nope").unwrap();
        let err = CsvEvents::from_reader(Path::new("t.csv"), "Step,Value\n".as_bytes(), &map)
            .err()
            .unwrap()
            .to_string();
        assert_eq!(
            err,
            "t.csv: no column \"nope\" (the header has: Step, Value)"
        );
    }

    #[test]
    fn quoted_fields_may_span_lines_and_steps_may_be_floats() {
        let got = events(
            "step,loss,note\n1,\"0.5\",\"two\nlines\"\n2.0,oops\n3,2\n",
            "step=step,loss=loss",
        );
        assert_eq!(got.len(), 3, "{got:?}");
        assert_eq!(got[0].as_ref().unwrap().payload.value(), Some(0.5));
        // The bad cell's line is where its record starts, after the two-line record.
        let bad = got[1].as_ref().unwrap_err();
        assert!(bad.starts_with("t.csv:4: column \"loss\""), "{bad}");
        assert_eq!(got[2].as_ref().unwrap().step, 3);
        assert_eq!(parse_step("12.0"), Some(12));
        assert_eq!(parse_step("1.5"), None);
        assert_eq!(parse_step("-1"), None);
        assert_eq!(parse_number("1e400"), None);
    }
}
