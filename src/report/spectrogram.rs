//! `spectrogram.png`: the rendered WAV's spectrum over time, on the same x geometry as
//! `norms.png`. The WAV is streamed in frames: one FFT per pixel column, so memory is a window
//! and the picture, whatever the audio's length.

use std::ops::Range;
use std::path::Path;
use std::sync::Arc;

use plotters::prelude::*;
use rustfft::num_complex::Complex;
use rustfft::{Fft, FftPlanner};

use super::fonts::{self, FAMILY};
use super::layout::{XMap, RIGHT, SPECTROGRAM_HEIGHT, WIDTH};
use super::norms_plot::short_number;
use super::series::RunData;

/// FFT window, frames (about 43 ms at 48 kHz: finer than a 50 ms step).
pub(crate) const WINDOW: usize = 2048;
/// Lowest frequency shown, Hz.
pub(crate) const F_MIN: f64 = 40.0;
/// Highest frequency shown, Hz (or half the sample rate, if lower).
pub(crate) const F_MAX: f64 = 16_000.0;
/// Dynamic range shown, dB below the loudest cell.
pub(crate) const RANGE_DB: f32 = 80.0;

/// Magnitudes in dB on a grid of time columns × log-frequency rows.
#[derive(Clone, Debug)]
#[cfg_attr(not(test), allow(dead_code))] // `frames` and `band` describe it to the tests
pub(crate) struct Spectrum {
    /// Frequency rows, 0 the lowest.
    pub rows: usize,
    /// dB values, column by column (`db[c * rows + r]`).
    pub db: Vec<f32>,
    /// Frames in the WAV.
    pub frames: u64,
    /// Lowest and highest frequency of the rows, Hz.
    pub band: (f64, f64),
}

impl Spectrum {
    /// The dB value of a cell.
    pub(crate) fn at(&self, column: usize, row: usize) -> f32 {
        self.db[column * self.rows + row]
    }

    /// The loudest cell.
    pub(crate) fn peak(&self) -> f32 {
        self.db.iter().copied().fold(f32::NEG_INFINITY, f32::max)
    }
}

/// Row → FFT bin ranges, for a log frequency axis.
fn row_bins(rows: usize, sample_rate: u32, band: (f64, f64)) -> Vec<Range<usize>> {
    let hz_per_bin = sample_rate as f64 / WINDOW as f64;
    let ratio = band.1 / band.0;
    (0..rows)
        .map(|r| {
            let f_lo = band.0 * ratio.powf(r as f64 / rows as f64);
            let f_hi = band.0 * ratio.powf((r + 1) as f64 / rows as f64);
            let lo = (f_lo / hz_per_bin).floor() as usize;
            let hi = ((f_hi / hz_per_bin).ceil() as usize).max(lo + 1);
            lo.min(WINDOW / 2)..hi.min(WINDOW / 2 + 1)
        })
        .collect()
}

/// One FFT a column, over the window centred on the column's middle.
struct Analyzer {
    fft: Arc<dyn Fft<f32>>,
    window: Vec<f32>,
    gain: f32,
    ring: Vec<f32>,
    head: usize,
    buf: Vec<Complex<f32>>,
    scratch: Vec<Complex<f32>>,
    rows: Vec<Range<usize>>,
}

impl Analyzer {
    fn new(rows: Vec<Range<usize>>) -> Self {
        let fft = FftPlanner::new().plan_fft_forward(WINDOW);
        let window: Vec<f32> = (0..WINDOW)
            .map(|i| {
                let x = std::f32::consts::PI * 2.0 * i as f32 / WINDOW as f32;
                0.5 - 0.5 * x.cos()
            })
            .collect();
        let gain = 2.0 / window.iter().sum::<f32>();
        let scratch = vec![Complex::default(); fft.get_inplace_scratch_len()];
        Analyzer {
            fft,
            window,
            gain,
            ring: vec![0.0; WINDOW],
            head: 0,
            buf: vec![Complex::default(); WINDOW],
            scratch,
            rows,
        }
    }

    fn push(&mut self, x: f32) {
        self.ring[self.head] = x;
        self.head = (self.head + 1) % WINDOW;
    }

    /// The spectrum of the last `WINDOW` frames pushed, one dB value per row, appended to `out`.
    fn column(&mut self, out: &mut Vec<f32>) {
        for i in 0..WINDOW {
            let x = self.ring[(self.head + i) % WINDOW];
            self.buf[i] = Complex::new(x * self.window[i], 0.0);
        }
        self.fft
            .process_with_scratch(&mut self.buf, &mut self.scratch);
        for r in &self.rows {
            let m = self.buf[r.clone()]
                .iter()
                .map(|c| c.norm())
                .fold(0.0f32, f32::max)
                * self.gain;
            out.push(20.0 * m.max(1e-10).log10());
        }
    }
}

/// Why a WAV could not be analysed.
pub(crate) type WavError = hound::Error;

/// Reads one frame (channels averaged); `None` past the end.
fn read_frame<R: std::io::Read>(
    reader: &mut hound::WavReader<R>,
    channels: usize,
    int_scale: Option<f32>,
) -> Result<Option<f32>, hound::Error> {
    let mut sum = 0.0f32;
    for _ in 0..channels {
        let x = match int_scale {
            None => reader.samples::<f32>().next().transpose()?,
            Some(scale) => reader
                .samples::<i32>()
                .next()
                .transpose()?
                .map(|v| v as f32 * scale),
        };
        match x {
            Some(x) => sum += x,
            None => return Ok(None),
        }
    }
    Ok(Some(sum / channels as f32))
}

/// Computes the spectrum of a WAV file on `columns` × `rows` cells, streaming it: only the
/// frames under some column's window are read (the reader seeks over the rest).
pub(crate) fn compute(wav: &Path, columns: usize, rows: usize) -> Result<Spectrum, WavError> {
    let mut reader = hound::WavReader::open(wav)?;
    let spec = reader.spec();
    let channels = spec.channels.max(1) as usize;
    let frames = reader.duration() as u64;
    let int_scale = match spec.sample_format {
        hound::SampleFormat::Float => None,
        hound::SampleFormat::Int => {
            Some(1.0 / (1u64 << (spec.bits_per_sample.clamp(1, 32) - 1)) as f32)
        }
    };
    let band = (F_MIN, F_MAX.min(spec.sample_rate as f64 / 2.0));
    let mut an = Analyzer::new(row_bins(rows, spec.sample_rate, band));
    let mut db = Vec::with_capacity(columns * rows);
    // Frames pushed so far: the window of column c holds frames end-WINDOW..end, where
    // column c is centred on frame (c + ½)·frames/columns.
    let mut pushed: u64 = 0;
    for c in 0..columns {
        let end = ((c as f64 + 0.5) * frames as f64 / columns as f64) as u64 + (WINDOW / 2) as u64;
        let start = end.saturating_sub(WINDOW as u64);
        if start > pushed {
            // Frames no window covers: skip them.
            if start < frames {
                reader.seek(start as u32)?;
            }
            pushed = start;
        }
        while pushed < end {
            let x = if pushed < frames {
                read_frame(&mut reader, channels, int_scale)?.unwrap_or(0.0)
            } else {
                0.0
            };
            an.push(x);
            pushed += 1;
        }
        an.column(&mut db);
    }
    Ok(Spectrum {
        rows,
        db,
        frames,
        band,
    })
}

/// Why the spectrogram could not be drawn.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SpectrogramError {
    /// The WAV could not be read.
    #[error("cannot read the WAV: {0}")]
    Wav(#[from] hound::Error),
    /// Drawing or writing the picture failed.
    #[error("{0}")]
    Draw(String),
}

fn err<E: std::fmt::Display>(e: E) -> SpectrogramError {
    SpectrogramError::Draw(e.to_string())
}

/// Draws `spectrogram.png` of `wav` at `path`; returns the plot area's x pixel range.
pub(crate) fn draw_spectrogram(
    wav: &Path,
    data: &RunData,
    xmap: &XMap,
    path: &Path,
) -> Result<Range<i32>, SpectrogramError> {
    fonts::register();
    // Only the header, to know the band before the axes are drawn.
    let spec = hound::WavReader::open(wav)?.spec();
    let band = (F_MIN, F_MAX.min(spec.sample_rate as f64 / 2.0));
    let root = BitMapBackend::new(path, (WIDTH, SPECTROGRAM_HEIGHT)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let mut chart = ChartBuilder::on(&root)
        .caption("spectrogram of run.wav", (FAMILY, 15))
        .margin_right(RIGHT)
        .margin_top(4)
        .y_label_area_size(xmap.x0 as u32)
        .x_label_area_size(34)
        .build_cartesian_2d(0f64..xmap.span, band.0.log10()..band.1.log10())
        .map_err(err)?;
    let (xr, yr) = chart.plotting_area().get_pixel_range();
    let columns = xr.len();
    let rows = yr.len();
    let s = compute(wav, columns, rows)?;
    // The colour scale's top: the loudest cell, but never below -60 dBFS, so that silence
    // stays dark.
    let top = s.peak().max(-60.0);
    for (c, px) in xr.clone().enumerate() {
        for r in 0..rows {
            let py = yr.end - 1 - r as i32;
            let v = ((s.at(c, r) - (top - RANGE_DB)) / RANGE_DB).clamp(0.0, 1.0);
            root.draw_pixel((px, py), &ViridisRGB::get_color(v))
                .map_err(err)?;
        }
    }
    let step_label = |p: &f64| format!("{}", data.timeline.step_at(*p).round() as i64);
    let hz_label = |y: &f64| short_number(10f64.powf(*y));
    chart
        .configure_mesh()
        .disable_x_mesh()
        .disable_y_mesh()
        .x_labels(12)
        .y_labels(6)
        .x_label_formatter(&step_label)
        .y_label_formatter(&hz_label)
        .x_desc("step")
        .y_desc("Hz")
        .label_style((FAMILY, 12))
        .draw()
        .map_err(err)?;
    root.present().map_err(err)?;
    Ok(xr)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_sine(path: &Path, hz: f64, seconds: f64, rate: u32) {
        let spec = hound::WavSpec {
            channels: 2,
            sample_rate: rate,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let mut w = hound::WavWriter::create(path, spec).unwrap();
        let n = (seconds * rate as f64) as usize;
        for i in 0..n {
            let t = i as f64 / rate as f64;
            // Sound only in the second half.
            let x = if t >= seconds / 2.0 {
                (2.0 * std::f64::consts::PI * hz * t).sin() * 0.5
            } else {
                0.0
            };
            let v = (x * 32767.0) as i16;
            w.write_sample(v).unwrap();
            w.write_sample(v).unwrap();
        }
        w.finalize().unwrap();
    }

    #[test]
    fn a_sine_shows_at_its_frequency_and_time() {
        let dir = tempfile::tempdir().unwrap();
        let wav = dir.path().join("sine.wav");
        write_sine(&wav, 1000.0, 2.0, 48_000);
        let s = compute(&wav, 40, 60).unwrap();
        assert_eq!(s.db.len(), 40 * 60);
        assert_eq!(s.frames, 96_000);
        let bins = row_bins(60, 48_000, s.band);
        let hz_per_bin = 48_000.0 / WINDOW as f64;
        let row_1k = bins
            .iter()
            .position(|b| {
                (b.start as f64 * hz_per_bin) <= 1000.0 && 1000.0 < (b.end as f64 * hz_per_bin)
            })
            .unwrap();
        // Late columns: the 1 kHz row is loud (a 0.5 sine is about -6 dB) and far above a
        // row two octaves away; early columns are silent.
        let late = 35;
        assert!(
            (s.at(late, row_1k) - (-6.0)).abs() < 3.0,
            "{}",
            s.at(late, row_1k)
        );
        let far = bins
            .iter()
            .position(|b| b.start as f64 * hz_per_bin >= 4000.0)
            .unwrap();
        assert!(s.at(late, far) < s.at(late, row_1k) - 40.0);
        assert!(s.at(5, row_1k) < -150.0, "{}", s.at(5, row_1k));
        assert!((s.peak() - s.at(late, row_1k)).abs() < 2.0);
    }

    #[test]
    fn a_tiny_wav_still_fills_every_column() {
        let dir = tempfile::tempdir().unwrap();
        let wav = dir.path().join("tiny.wav");
        write_sine(&wav, 440.0, 0.01, 8_000);
        let s = compute(&wav, 300, 20).unwrap();
        assert_eq!(s.db.len(), 300 * 20);
        assert!(s.db.iter().all(|v| v.is_finite()));
    }
}
