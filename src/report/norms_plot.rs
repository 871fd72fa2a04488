//! `norms.png`: per-layer gradient norms (log axis), loss and learning rate over the run, with
//! markers at non-finite steps and diagnoses. The x axis is the audio position, labelled in
//! steps, on the shared geometry of [`super::layout`].

use std::ops::Range;
use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;

use super::downsample::Downsampled;
use super::fonts::{self, FAMILY};
use super::layout::{XMap, NORMS_HEIGHT, RIGHT, WIDTH};
use super::markers::MarkerKind;
use super::series::RunData;

/// Colour of non-finite markers.
pub(crate) const NON_FINITE_COLOR: RGBColor = RGBColor(220, 30, 30);
/// Colour of diagnosis markers.
pub(crate) const DIAGNOSIS_COLOR: RGBColor = RGBColor(235, 140, 0);
/// Controls a person applied.
pub(crate) const CONTROL_COLOR: RGBColor = RGBColor(40, 120, 220);

/// One line of a panel.
struct Line<'a> {
    label: String,
    series: &'a Downsampled,
    color: RGBColor,
}

/// How a panel's values are scaled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Scale {
    /// Plain values.
    Linear,
    /// log10 of the values; values ≤ 0 are left out.
    Log,
}

impl Scale {
    fn apply(self, v: f64) -> Option<f64> {
        match self {
            Scale::Linear => Some(v),
            Scale::Log if v > 0.0 => Some(v.log10()),
            Scale::Log => None,
        }
    }

    fn label(self, y: f64) -> String {
        match self {
            Scale::Linear => short_number(y),
            Scale::Log => short_number(10f64.powf(y)),
        }
    }
}

/// A number in few characters: `0.25`, `316`, `1.5e-3`, `12000` → `1.2e4`.
pub(crate) fn short_number(v: f64) -> String {
    let a = v.abs();
    if a == 0.0 {
        "0".into()
    } else if (0.01..10_000.0).contains(&a) {
        // About three significant digits.
        let decimals = (2 - a.log10().floor() as i32).clamp(0, 4) as usize;
        let s = format!("{v:.decimals$}");
        if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            s
        }
    } else {
        let s = format!("{v:.1e}");
        s.replace(".0e", "e")
    }
}

/// Log for values spread over more than `ratio`, all positive; linear otherwise.
pub(crate) fn pick_scale(series: &[&Downsampled], ratio: f64) -> Scale {
    let mut lo = f64::INFINITY;
    let mut hi = f64::NEG_INFINITY;
    for s in series {
        if let Some((a, b)) = s.range(false) {
            lo = lo.min(a);
            hi = hi.max(b);
        }
    }
    if lo > 0.0 && hi / lo > ratio {
        Scale::Log
    } else {
        Scale::Linear
    }
}

fn err<E: std::fmt::Display>(e: E) -> String {
    e.to_string()
}

/// Palette for layers: distinct, readable on white.
fn layer_color(i: usize) -> RGBColor {
    const COLORS: [RGBColor; 10] = [
        RGBColor(31, 119, 180),
        RGBColor(44, 160, 44),
        RGBColor(148, 103, 189),
        RGBColor(140, 86, 75),
        RGBColor(227, 119, 194),
        RGBColor(23, 190, 207),
        RGBColor(188, 189, 34),
        RGBColor(127, 127, 127),
        RGBColor(255, 127, 14),
        RGBColor(57, 59, 121),
    ];
    COLORS[i % COLORS.len()]
}

/// Draws `norms.png` at `path`; returns the plot area's x pixel range (the same for every panel).
pub(crate) fn draw_norms(data: &RunData, xmap: &XMap, path: &Path) -> Result<Range<i32>, String> {
    fonts::register();
    let root = BitMapBackend::new(path, (WIDTH, NORMS_HEIGHT)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let (top, rest) = root.split_vertically(NORMS_HEIGHT * 55 / 100);
    let (mid, bottom) = rest.split_vertically(NORMS_HEIGHT * 20 / 100);

    let mut grads: Vec<Line> = data
        .layers
        .iter()
        .enumerate()
        .map(|(i, l)| Line {
            label: l.name.to_string(),
            series: &l.norms,
            color: layer_color(i),
        })
        .collect();
    if !data.total_norm.is_empty() {
        grads.push(Line {
            label: "total".into(),
            series: &data.total_norm,
            color: BLACK,
        });
    }
    let grad_scale = if grads.is_empty() {
        Scale::Log
    } else {
        // Norms are drawn on a log axis whenever they are positive.
        let all: Vec<&Downsampled> = grads.iter().map(|l| l.series).collect();
        match pick_scale(&all, 1.0) {
            Scale::Log => Scale::Log,
            Scale::Linear if all.iter().any(|s| s.range(true).is_some()) => Scale::Log,
            Scale::Linear => Scale::Linear,
        }
    };
    let title = match data.hidden_layers {
        0 => "gradient L2 norm per layer".to_string(),
        n => format!("gradient L2 norm per layer ({n} events of further layers not drawn)"),
    };
    let a = draw_panel(&top, &title, &grads, grad_scale, data, xmap, false)?;
    let loss = [Line {
        label: "loss".into(),
        series: &data.loss,
        color: RGBColor(200, 60, 20),
    }];
    let b = draw_panel(
        &mid,
        "loss",
        &loss,
        pick_scale(&[&data.loss], 10.0),
        data,
        xmap,
        false,
    )?;
    let lr = [Line {
        label: "lr".into(),
        series: &data.lr,
        color: RGBColor(20, 120, 60),
    }];
    let c = draw_panel(
        &bottom,
        "learning rate",
        &lr,
        pick_scale(&[&data.lr], 100.0),
        data,
        xmap,
        true,
    )?;
    debug_assert!(a == b && b == c, "panels must share the x pixel range");
    root.present().map_err(err)?;
    Ok(a)
}

/// One panel: its lines, the markers, a legend; returns the plot area's x pixel range.
fn draw_panel(
    area: &DrawingArea<BitMapBackend, Shift>,
    title: &str,
    lines: &[Line],
    scale: Scale,
    data: &RunData,
    xmap: &XMap,
    x_labels: bool,
) -> Result<Range<i32>, String> {
    let mut lo = f64::INFINITY;
    let mut hi = f64::NEG_INFINITY;
    for l in lines {
        if let Some((a, b)) = l.series.range(scale == Scale::Log) {
            for v in [a, b] {
                if let Some(t) = scale.apply(v) {
                    lo = lo.min(t);
                    hi = hi.max(t);
                }
            }
        }
    }
    let empty = !lo.is_finite();
    if empty {
        (lo, hi) = (0.0, 1.0);
    }
    let pad = if hi > lo {
        (hi - lo) * 0.06
    } else if scale == Scale::Linear && lo != 0.0 {
        lo.abs() * 0.5
    } else {
        0.5
    };
    let (lo, hi) = (lo - pad, hi + pad);

    let mut chart = ChartBuilder::on(area)
        .caption(title, (FAMILY, 15))
        .margin_right(RIGHT)
        .margin_top(4)
        .y_label_area_size(xmap.x0 as u32)
        .x_label_area_size(if x_labels { 34 } else { 0 })
        .build_cartesian_2d(0f64..xmap.span, lo..hi)
        .map_err(err)?;
    let step_label = |p: &f64| format!("{}", data.timeline.step_at(*p).round() as i64);
    let value_label = |y: &f64| scale.label(*y);
    let mut mesh = chart.configure_mesh();
    mesh.x_labels(12)
        .y_labels(6)
        .x_label_formatter(&step_label)
        .y_label_formatter(&value_label)
        .light_line_style(WHITE.mix(0.0))
        .bold_line_style(BLACK.mix(0.08))
        .label_style((FAMILY, 12));
    if x_labels {
        mesh.x_desc("step");
    }
    mesh.draw().map_err(err)?;

    // Markers under the lines.
    for r in data.markers.ranges() {
        let color = match r.marker.kind {
            MarkerKind::NonFinite => NON_FINITE_COLOR,
            MarkerKind::Diagnosis => DIAGNOSIS_COLOR,
            MarkerKind::Control => CONTROL_COLOR,
        };
        let (a, b) = (r.pos as f64, r.last_pos as f64 + 1.0);
        chart
            .draw_series(std::iter::once(Rectangle::new(
                [(a, lo), (b, hi)],
                color.mix(0.18).filled(),
            )))
            .map_err(err)?;
        chart
            .draw_series(std::iter::once(PathElement::new(
                vec![(a, lo), (a, hi)],
                color.stroke_width(2),
            )))
            .map_err(err)?;
    }

    for line in lines {
        let color = line.color;
        let width = line.series.width();
        let center = |p: u64| p as f64 + (width - 1) as f64 / 2.0;
        // The spread inside each bin, as a faint vertical stroke.
        if width > 1 {
            chart
                .draw_series(line.series.bins().filter_map(|(p, b)| {
                    let (a, z) = (scale.apply(b.min)?, scale.apply(b.max)?);
                    Some(PathElement::new(
                        vec![(center(p), a), (center(p), z)],
                        color.mix(0.35),
                    ))
                }))
                .map_err(err)?;
        }
        // The means, a polyline broken at gaps.
        let mut runs: Vec<Vec<(f64, f64)>> = Vec::new();
        let mut prev: Option<u64> = None;
        for (p, b) in line.series.bins() {
            let Some(y) = scale.apply(b.mean()) else {
                prev = None;
                continue;
            };
            if prev.is_none_or(|q| p > q + width) || runs.is_empty() {
                runs.push(Vec::new());
            }
            runs.last_mut().unwrap().push((center(p), y));
            prev = Some(p);
        }
        let mut first = true;
        for run in runs {
            let style = color.stroke_width(2);
            let series = if run.len() == 1 {
                // A lone point would be invisible as a line.
                let (x, y) = run[0];
                let w = xmap.span / xmap.columns() as f64 * 2.0;
                LineSeries::new(vec![(x - w, y), (x + w, y)], style)
            } else {
                LineSeries::new(run, style)
            };
            let drawn = chart.draw_series(series).map_err(err)?;
            if first {
                drawn.label(line.label.clone()).legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
                });
                first = false;
            }
        }
    }
    if empty {
        let grey = BLACK.mix(0.5);
        let style = TextStyle::from((FAMILY, 14).into_font()).color(&grey);
        chart
            .draw_series(std::iter::once(Text::new(
                "no values in the recording",
                (xmap.span * 0.4, 0.5),
                style,
            )))
            .map_err(err)?;
    } else if lines.len() > 1 {
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .label_font((FAMILY, 12))
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK.mix(0.3))
            .draw()
            .map_err(err)?;
    }
    Ok(chart.plotting_area().get_pixel_range().0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_numbers() {
        assert_eq!(short_number(0.25), "0.25");
        assert_eq!(short_number(2.0), "2");
        assert_eq!(short_number(0.001), "1e-3");
        assert_eq!(short_number(12_000.0), "1.2e4");
        assert_eq!(short_number(0.0), "0");
        assert_eq!(short_number(3162.278), "3162");
        assert_eq!(short_number(316.228), "316");
        assert_eq!(short_number(0.0316), "0.0316");
        assert_eq!(short_number(1.0), "1");
    }

    #[test]
    fn scale_choice() {
        let mut a = Downsampled::new(8);
        a.push(0, 1.0);
        a.push(1, 500.0);
        assert_eq!(pick_scale(&[&a], 10.0), Scale::Log);
        assert_eq!(pick_scale(&[&a], 1000.0), Scale::Linear);
        a.push(2, -1.0);
        assert_eq!(
            pick_scale(&[&a], 10.0),
            Scale::Linear,
            "a negative value: linear"
        );
        assert_eq!(Scale::Log.apply(100.0), Some(2.0));
        assert_eq!(Scale::Log.apply(0.0), None);
    }
}
