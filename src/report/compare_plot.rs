//! `compare.png`: several runs overlaid, one colour per run, on one step axis: the
//! whole-model gradient norm (log axis), the loss and the learning rate.

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;

use super::compare::RunCurves;
use super::downsample::Downsampled;
use super::fonts::{self, FAMILY};
use super::layout::{LEFT, RIGHT, WIDTH};
use super::norms_plot::short_number;

/// Height of `compare.png`, pixels.
pub(crate) const COMPARE_HEIGHT: u32 = 640;

/// The colour of the `i`th run: distinct, readable on white.
pub(crate) fn run_color(i: usize) -> RGBColor {
    const COLORS: [RGBColor; 8] = [
        RGBColor(31, 119, 180),
        RGBColor(214, 39, 40),
        RGBColor(44, 160, 44),
        RGBColor(148, 103, 189),
        RGBColor(255, 127, 14),
        RGBColor(23, 190, 207),
        RGBColor(140, 86, 75),
        RGBColor(227, 119, 194),
    ];
    COLORS[i % COLORS.len()]
}

fn err<E: std::fmt::Display>(e: E) -> String {
    e.to_string()
}

/// Draws the overlay of `runs` at `path`.
pub(crate) fn draw_compare(runs: &[RunCurves], path: &Path) -> Result<(), String> {
    fonts::register();
    let root = BitMapBackend::new(path, (WIDTH, COMPARE_HEIGHT)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let (top, rest) = root.split_vertically(COMPARE_HEIGHT * 45 / 100);
    let (mid, bottom) = rest.split_vertically(COMPARE_HEIGHT * 30 / 100);
    let first = runs
        .iter()
        .filter_map(|r| r.steps)
        .map(|s| s.0)
        .min()
        .unwrap_or(0);
    let last = runs
        .iter()
        .filter_map(|r| r.steps)
        .map(|s| s.1)
        .max()
        .unwrap_or(1);
    let x = first as f64..(last.max(first + 1)) as f64 + 1.0;
    panel(
        &top,
        "gradient L2 norm (whole model)",
        runs,
        |r| &r.total_norm,
        true,
        x.clone(),
        false,
    )?;
    panel(&mid, "loss", runs, |r| &r.loss, false, x.clone(), false)?;
    panel(&bottom, "learning rate", runs, |r| &r.lr, false, x, true)?;
    root.present().map_err(err)?;
    Ok(())
}

fn panel(
    area: &DrawingArea<BitMapBackend, Shift>,
    title: &str,
    runs: &[RunCurves],
    series: impl Fn(&RunCurves) -> &Downsampled,
    log: bool,
    x: std::ops::Range<f64>,
    x_labels: bool,
) -> Result<(), String> {
    let scale = |v: f64| {
        if log {
            (v > 0.0).then(|| v.log10())
        } else {
            Some(v)
        }
    };
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for r in runs {
        if let Some((a, b)) = series(r).range(log) {
            for v in [a, b].into_iter().filter_map(scale) {
                lo = lo.min(v);
                hi = hi.max(v);
            }
        }
    }
    if !lo.is_finite() {
        (lo, hi) = (0.0, 1.0);
    }
    let pad = if hi > lo { (hi - lo) * 0.06 } else { 0.5 };
    let mut chart = ChartBuilder::on(area)
        .caption(title, (FAMILY, 15))
        .margin_right(RIGHT)
        .margin_top(4)
        .y_label_area_size(LEFT)
        .x_label_area_size(if x_labels { 34 } else { 0 })
        .build_cartesian_2d(x, lo - pad..hi + pad)
        .map_err(err)?;
    let y_label = |y: &f64| short_number(if log { 10f64.powf(*y) } else { *y });
    let x_label = |s: &f64| format!("{}", s.round() as i64);
    let mut mesh = chart.configure_mesh();
    mesh.x_labels(12)
        .y_labels(6)
        .x_label_formatter(&x_label)
        .y_label_formatter(&y_label)
        .light_line_style(WHITE.mix(0.0))
        .bold_line_style(BLACK.mix(0.08))
        .label_style((FAMILY, 12));
    if x_labels {
        mesh.x_desc("step");
    }
    mesh.draw().map_err(err)?;
    for (i, run) in runs.iter().enumerate() {
        let color = run_color(i);
        let s = series(run);
        let half = (s.width() - 1) as f64 / 2.0;
        let points: Vec<(f64, f64)> = s
            .bins()
            .filter_map(|(p, b)| Some((p as f64 + half, scale(b.mean())?)))
            .collect();
        let drawn = chart
            .draw_series(LineSeries::new(points, color.stroke_width(2)))
            .map_err(err)?;
        drawn.label(run.name.clone()).legend(move |(x, y)| {
            PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
        });
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .label_font((FAMILY, 12))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.3))
        .draw()
        .map_err(err)?;
    Ok(())
}
