//! `sonograd report`: a folder that shows a run at a glance and lets it be heard.
//!
//! One streaming pass over a recording renders `run.wav` (the built-in synth, as
//! `sonograd render`) and gathers the plotted series (`series`); then `norms.png`
//! (`norms_plot`) and `spectrogram.png` (`spectrogram`, streaming the WAV) are drawn on
//! one x geometry (`layout`), and `index.html` (`page`) plays the audio with a cursor over
//! both. Memory stays bounded whatever the recording's length. With several runs
//! ([`write_report_runs`]), those are of the first run, and `compare.png` (`compare_plot`)
//! overlays every run's curves ([`compare`]), one colour per run.

pub mod compare;
pub(crate) mod compare_plot;
pub(crate) mod downsample;
pub(crate) mod fonts;
pub(crate) mod layout;
pub(crate) mod markers;
pub(crate) mod norms_plot;
pub(crate) mod page;
pub(crate) mod series;
pub(crate) mod spectrogram;
pub(crate) mod timeline;

use std::path::{Path, PathBuf};

use crate::mapping::schema::Mapping;
use crate::pipeline::render::render_recording;
use crate::source::replay::ReplayError;
use crate::source::replay_paced::{PacedReplayError, ReplayInput};
use crate::synth::render::{RenderError, RenderOptions};

use layout::{XMap, NORMS_HEIGHT, SPECTROGRAM_HEIGHT, WIDTH};
use series::RunData;

/// Why a report could not be written.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// The recording cannot be read, or a line of it is malformed (file and line named).
    #[error(transparent)]
    Recording(#[from] ReplayError),
    /// A CSV export or TensorBoard event files cannot be read (file and line or offset named).
    #[error(transparent)]
    Input(#[from] PacedReplayError),
    /// The recording has no events.
    #[error("{path}: the recording has no events")]
    Empty {
        /// The recording.
        path: PathBuf,
    },
    /// The output folder cannot be created.
    #[error("cannot create the report folder {path}: {source}")]
    CreateDir {
        /// The folder.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A file of the report cannot be written.
    #[error("cannot write {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Rendering the audio failed.
    #[error("rendering the audio: {0}")]
    Render(#[from] RenderError),
    /// Drawing a picture failed.
    #[error("drawing {path}: {message}")]
    Draw {
        /// The picture.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
}

/// What a report contains.
#[derive(Clone, Debug, PartialEq)]
pub struct ReportSummary {
    /// Events read.
    pub events: u64,
    /// First and last step.
    pub steps: (u64, u64),
    /// Marker rows listed.
    pub markers: usize,
    /// Audio length, seconds.
    pub seconds: f64,
    /// Audio frames written.
    pub frames: u64,
    /// The plot area's x pixel range in both pictures.
    pub plot_x: (i32, i32),
    /// The 1-based line of an unfinished last line that was skipped, if any.
    pub truncated_tail: Option<usize>,
}

/// The files of a report folder.
pub const FILES: [&str; 4] = ["index.html", "norms.png", "spectrogram.png", "run.wav"];

/// Writes a report of `recording` into `dir` (created if missing): `run.wav` rendered through
/// `mapping` with `opts`, `norms.png`, `spectrogram.png` and `index.html`.
pub fn write_report(
    recording: &Path,
    mapping: &Mapping,
    opts: &RenderOptions,
    dir: &Path,
) -> Result<ReportSummary, ReportError> {
    write_report_runs(
        &[ReplayInput::JsonLines(recording.to_path_buf())],
        mapping,
        opts,
        dir,
    )
}

/// Writes a report of `runs` (any inputs; at least one) into `dir`: the audio and the
/// norms and spectrogram pictures of the first run, and with two runs or more `compare.png`,
/// their curves overlaid.
pub fn write_report_runs(
    runs: &[ReplayInput],
    mapping: &Mapping,
    opts: &RenderOptions,
    dir: &Path,
) -> Result<ReportSummary, ReportError> {
    let Some(first) = runs.first() else {
        return Err(ReportError::Empty {
            path: dir.to_path_buf(),
        });
    };
    let recording = first.path();
    let recording = recording.as_path();
    let mut reader = first.open()?;
    std::fs::create_dir_all(dir).map_err(|source| ReportError::CreateDir {
        path: dir.to_path_buf(),
        source,
    })?;
    let wav = dir.join("run.wav");

    // One pass: the renderer consumes the events, the series see each on the way.
    let mut data = RunData::new(opts.max_gap_steps);
    let mut curves = compare::CurveSet::default();
    let first_name = recording.display().to_string();
    let mut failure = None;
    let events = reader.until_error(&mut failure).inspect(|e| {
        data.add(e);
        curves.add(0, &first_name, e);
    });
    let rendered = render_recording(events, mapping, opts, &wav);
    let cleanup = |e: ReportError| {
        let _ = std::fs::remove_file(&wav);
        e
    };
    if let Some(e) = failure {
        return Err(cleanup(e.into()));
    }
    let rendered = rendered.map_err(|e| cleanup(e.into()))?;
    let Some(steps) = data.steps else {
        return Err(cleanup(ReportError::Empty {
            path: recording.to_path_buf(),
        }));
    };

    let seconds = rendered.frames as f64 / opts.sample_rate as f64;
    let xmap = XMap::new(seconds * 1000.0 / opts.step_ms);

    let norms = dir.join("norms.png");
    let xa = norms_plot::draw_norms(&data, &xmap, &norms).map_err(|message| ReportError::Draw {
        path: norms.clone(),
        message,
    })?;
    let spec_path = dir.join("spectrogram.png");
    let xb = spectrogram::draw_spectrogram(&wav, &data, &xmap, &spec_path).map_err(|e| {
        ReportError::Draw {
            path: spec_path.clone(),
            message: e.to_string(),
        }
    })?;
    if xa != xb || xa != (xmap.x0..xmap.x1) {
        return Err(ReportError::Draw {
            path: spec_path,
            message: format!(
                "the plot areas do not line up: norms {xa:?}, spectrogram {xb:?}, expected {}..{}",
                xmap.x0, xmap.x1
            ),
        });
    }

    let title = recording
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| recording.display().to_string());
    let summary = format!(
        "steps {}–{} · {} events · {} ms a step · {:.1} s of audio",
        steps.0, steps.1, data.events, opts.step_ms, seconds
    );
    let names: Vec<String>;
    for (i, run) in runs.iter().enumerate().skip(1) {
        let name = run.path().display().to_string();
        for e in run.open()? {
            curves.add(i, &name, &e?);
        }
        if !curves.has_input(i) {
            return Err(ReportError::Empty { path: run.path() });
        }
    }
    let curves = curves.finish();
    let compare = if curves.len() > 1 {
        let path = dir.join("compare.png");
        compare_plot::draw_compare(&curves, &path).map_err(|message| ReportError::Draw {
            path: path.clone(),
            message,
        })?;
        names = curves.iter().map(|c| c.name.clone()).collect();
        Some((names.as_slice(), compare_plot::COMPARE_HEIGHT))
    } else {
        None
    };
    let markers = data.markers.ranges();
    let html = page::render_page(&page::Page {
        title: &title,
        summary,
        x0: xa.start,
        x1: xa.end,
        width: WIDTH,
        norms_height: NORMS_HEIGHT,
        spectrogram_height: SPECTROGRAM_HEIGHT,
        seconds,
        step_ms: opts.step_ms,
        markers,
        dropped_markers: data.markers.dropped(),
        compare,
    });
    let index = dir.join("index.html");
    std::fs::write(&index, html).map_err(|source| ReportError::Write {
        path: index.clone(),
        source,
    })?;
    Ok(ReportSummary {
        events: data.events,
        steps,
        markers: markers.len(),
        seconds,
        frames: rendered.frames,
        plot_x: (xa.start, xa.end),
        truncated_tail: reader.truncated_tail(),
    })
}
