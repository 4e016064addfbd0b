//! PNG plots (plotters, bitmap backend, embedded DejaVu font: no system fonts
//! or display needed).

use std::{path::Path, sync::Once};

use plotters::prelude::*;

use crate::{dataset::format_ts, forecast::Forecast};

/// What went wrong while drawing.
#[derive(Debug, thiserror::Error)]
#[error("{path}: cannot draw plot: {message}")]
pub struct PlotError {
    /// Output file.
    pub path: std::path::PathBuf,
    /// Backend message.
    pub message: String,
}

const FONT: &str = "sans-serif";
static FONT_INIT: Once = Once::new();

fn init_font() {
    FONT_INIT.call_once(|| {
        // The embedded font is valid; if registration ever failed, plotters
        // would report a font error at draw time, which we surface.
        let _ = plotters::style::register_font(FONT, FontStyle::Normal, dejavu::sans::regular());
        let _ = plotters::style::register_font(FONT, FontStyle::Bold, dejavu::sans::bold());
    });
}

fn err(path: &Path, e: impl std::fmt::Display) -> PlotError {
    PlotError {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

fn range(vals: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) = vals
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
            (a.min(v), b.max(v))
        });
    if !lo.is_finite() {
        return (0.0, 1.0);
    }
    let pad = ((hi - lo) * 0.05).max(1e-9);
    (lo - pad, hi + pad)
}

/// Actual vs forecast with the band; actual points outside the band in red.
/// `x` is drawn in days since the first timestamp, labelled with dates.
pub fn forecast_plot(
    path: &Path,
    title: &str,
    y_label: &str,
    actual: &[f64],
    forecast: &Forecast,
) -> Result<(), PlotError> {
    init_font();
    let ts = &forecast.timestamps;
    if ts.is_empty() {
        return Err(err(path, "no points to plot"));
    }
    let t0 = ts[0];
    let xs: Vec<f64> = ts.iter().map(|&t| (t - t0) as f64 / 86_400.0).collect();
    let x_max = xs.last().copied().unwrap_or(1.0).max(1e-6);
    let (y_lo, y_hi) = range(
        actual
            .iter()
            .chain(&forecast.lower)
            .chain(&forecast.upper)
            .copied(),
    );
    let root = BitMapBackend::new(path, (1400, 600)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(path, e))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, (FONT, 24))
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..x_max, y_lo..y_hi)
        .map_err(|e| err(path, e))?;
    chart
        .configure_mesh()
        .x_desc("time (UTC)")
        .y_desc(y_label)
        .x_label_formatter(&|x| format_ts(t0 + (x * 86_400.0) as i64)[..16].to_string())
        .x_labels(8)
        .label_style((FONT, 13))
        .draw()
        .map_err(|e| err(path, e))?;
    let band: Vec<(f64, f64)> = xs
        .iter()
        .zip(&forecast.upper)
        .map(|(&x, &u)| (x, u))
        .chain(xs.iter().zip(&forecast.lower).rev().map(|(&x, &l)| (x, l)))
        .collect();
    chart
        .draw_series(std::iter::once(Polygon::new(band, BLUE.mix(0.18).filled())))
        .map_err(|e| err(path, e))?
        .label("prediction band")
        .legend(|(x, y)| Rectangle::new([(x, y - 5), (x + 18, y + 5)], BLUE.mix(0.18).filled()));
    chart
        .draw_series(LineSeries::new(
            xs.iter().zip(&forecast.yhat).map(|(&x, &y)| (x, y)),
            BLUE.stroke_width(2),
        ))
        .map_err(|e| err(path, e))?
        .label("forecast (yhat)")
        .legend(|(x, y)| PathElement::new([(x, y), (x + 18, y)], BLUE.stroke_width(2)));
    chart
        .draw_series(LineSeries::new(
            xs.iter().zip(actual).map(|(&x, &y)| (x, y)),
            BLACK.stroke_width(1),
        ))
        .map_err(|e| err(path, e))?
        .label("actual")
        .legend(|(x, y)| PathElement::new([(x, y), (x + 18, y)], BLACK));
    let outside = xs
        .iter()
        .zip(actual)
        .enumerate()
        .filter(|(i, (_, &a))| a < forecast.lower[*i] || a > forecast.upper[*i])
        .map(|(_, (&x, &a))| Circle::new((x, a), 3, RED.filled()));
    chart
        .draw_series(outside)
        .map_err(|e| err(path, e))?
        .label("outside band")
        .legend(|(x, y)| Circle::new((x + 9, y), 3, RED.filled()));
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font((FONT, 14))
        .position(SeriesLabelPosition::UpperRight)
        .draw()
        .map_err(|e| err(path, e))?;
    root.present().map_err(|e| err(path, e))
}

/// One panel of a multi-panel line plot.
pub struct Panel {
    /// Panel title.
    pub title: String,
    /// X axis description.
    pub x_desc: String,
    /// X values.
    pub xs: Vec<f64>,
    /// Y values.
    pub ys: Vec<f64>,
}

/// Panels stacked vertically, one line each (used for model components).
pub fn panels_plot(path: &Path, title: &str, panels: &[Panel]) -> Result<(), PlotError> {
    init_font();
    if panels.is_empty() {
        return Err(err(path, "no panels"));
    }
    let h = 60 + 280 * panels.len() as u32;
    let root = BitMapBackend::new(path, (1200, h)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(path, e))?;
    let root = root.titled(title, (FONT, 24)).map_err(|e| err(path, e))?;
    let areas = root.split_evenly((panels.len(), 1));
    for (area, p) in areas.iter().zip(panels) {
        let (x_lo, x_hi) = range(p.xs.iter().copied());
        let (y_lo, y_hi) = range(p.ys.iter().copied());
        let mut chart = ChartBuilder::on(area)
            .caption(&p.title, (FONT, 18))
            .margin(10)
            .x_label_area_size(40)
            .y_label_area_size(70)
            .build_cartesian_2d(x_lo..x_hi, y_lo..y_hi)
            .map_err(|e| err(path, e))?;
        chart
            .configure_mesh()
            .x_desc(p.x_desc.as_str())
            .label_style((FONT, 13))
            .draw()
            .map_err(|e| err(path, e))?;
        chart
            .draw_series(LineSeries::new(
                p.xs.iter().zip(&p.ys).map(|(&x, &y)| (x, y)),
                BLUE.stroke_width(2),
            ))
            .map_err(|e| err(path, e))?;
    }
    root.present().map_err(|e| err(path, e))
}

/// A named line for [`lines_plot`].
pub struct Line {
    /// Legend text.
    pub name: String,
    /// Points.
    pub points: Vec<(f64, f64)>,
    /// Colour.
    pub color: RGBColor,
}

/// Several lines on one chart (ROC, precision–recall, threshold analysis).
/// `diagonal` draws the chance line y = x.
pub fn lines_plot(
    path: &Path,
    title: &str,
    axes: (&str, &str),
    x_range: (f64, f64),
    y_range: (f64, f64),
    lines: &[Line],
    diagonal: bool,
) -> Result<(), PlotError> {
    init_font();
    let root = BitMapBackend::new(path, (900, 700)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(path, e))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, (FONT, 22))
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(60)
        .build_cartesian_2d(x_range.0..x_range.1, y_range.0..y_range.1)
        .map_err(|e| err(path, e))?;
    chart
        .configure_mesh()
        .x_desc(axes.0)
        .y_desc(axes.1)
        .label_style((FONT, 13))
        .draw()
        .map_err(|e| err(path, e))?;
    if diagonal {
        chart
            .draw_series(LineSeries::new([(0.0, 0.0), (1.0, 1.0)], BLACK.mix(0.4)))
            .map_err(|e| err(path, e))?
            .label("chance")
            .legend(|(x, y)| PathElement::new([(x, y), (x + 18, y)], BLACK.mix(0.4)));
    }
    for l in lines {
        let c = l.color;
        chart
            .draw_series(LineSeries::new(l.points.iter().copied(), c.stroke_width(2)))
            .map_err(|e| err(path, e))?
            .label(l.name.as_str())
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 18, y)], c.stroke_width(2)));
        if l.points.len() <= 30 {
            chart
                .draw_series(l.points.iter().map(|&p| Circle::new(p, 3, c.filled())))
                .map_err(|e| err(path, e))?;
        }
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font((FONT, 14))
        .position(SeriesLabelPosition::LowerRight)
        .draw()
        .map_err(|e| err(path, e))?;
    root.present().map_err(|e| err(path, e))
}

/// A 2×2 confusion matrix with counts and shares.
pub fn confusion_plot(
    path: &Path,
    title: &str,
    tp: u64,
    fp: u64,
    tn: u64,
    fn_: u64,
) -> Result<(), PlotError> {
    init_font();
    let root = BitMapBackend::new(path, (700, 620)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(path, e))?;
    let total = (tp + fp + tn + fn_).max(1) as f64;
    let cells = [
        (0, 0, "TN", tn, GREEN.mix(0.35)),
        (1, 0, "FP", fp, RED.mix(0.35)),
        (0, 1, "FN", fn_, RED.mix(0.35)),
        (1, 1, "TP", tp, GREEN.mix(0.35)),
    ];
    root.draw(&Text::new(title, (30, 20), (FONT, 22).into_font()))
        .map_err(|e| err(path, e))?;
    root.draw(&Text::new(
        "predicted: normal        predicted: anomaly",
        (190, 70),
        (FONT, 16).into_font(),
    ))
    .map_err(|e| err(path, e))?;
    for (col, row, name, count, color) in cells {
        let x0 = 150 + col * 260;
        let y0 = 100 + row * 240;
        root.draw(&Rectangle::new(
            [(x0, y0), (x0 + 250, y0 + 230)],
            color.filled(),
        ))
        .map_err(|e| err(path, e))?;
        let text = format!("{name}: {count}");
        root.draw(&Text::new(text, (x0 + 60, y0 + 90), (FONT, 28).into_font()))
            .map_err(|e| err(path, e))?;
        let share = format!("{:.2} % of points", 100.0 * count as f64 / total);
        root.draw(&Text::new(
            share,
            (x0 + 50, y0 + 135),
            (FONT, 16).into_font(),
        ))
        .map_err(|e| err(path, e))?;
    }
    root.draw(&Text::new(
        "actual: normal",
        (10, 210),
        (FONT, 16).into_font(),
    ))
    .map_err(|e| err(path, e))?;
    root.draw(&Text::new(
        "actual: anomaly",
        (10, 450),
        (FONT, 16).into_font(),
    ))
    .map_err(|e| err(path, e))?;
    root.present().map_err(|e| err(path, e))
}

/// Data for [`overview_plot`].
pub struct Overview<'a> {
    /// All timestamps.
    pub timestamps: &'a [i64],
    /// All values.
    pub values: &'a [f64],
    /// Index of the first scored point.
    pub first_scored: usize,
    /// Forecast for the scored points.
    pub yhat: &'a [f64],
    /// Scaled band, lower edge, for the scored points.
    pub lower: &'a [f64],
    /// Scaled band, upper edge, for the scored points.
    pub upper: &'a [f64],
    /// Flags for the scored points.
    pub flags: &'a [bool],
    /// Ground truth per point (all points).
    pub labels: Option<&'a [bool]>,
}

/// The series with its scaled band, true anomalies (orange) and detections (red).
pub fn overview_plot(
    path: &Path,
    title: &str,
    y_label: &str,
    o: &Overview,
) -> Result<(), PlotError> {
    init_font();
    let ts = o.timestamps;
    if ts.is_empty() {
        return Err(err(path, "no points to plot"));
    }
    let t0 = ts[0];
    let x = |t: i64| (t - t0) as f64 / 86_400.0;
    let x_max = x(ts[ts.len() - 1]).max(1e-6);
    let (y_lo, y_hi) = range(o.values.iter().chain(o.lower).chain(o.upper).copied());
    let root = BitMapBackend::new(path, (1500, 600)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(path, e))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, (FONT, 22))
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..x_max, y_lo..y_hi)
        .map_err(|e| err(path, e))?;
    chart
        .configure_mesh()
        .x_desc("time (UTC)")
        .y_desc(y_label)
        .x_label_formatter(&|v| format_ts(t0 + (v * 86_400.0) as i64)[..16].to_string())
        .x_labels(8)
        .label_style((FONT, 13))
        .draw()
        .map_err(|e| err(path, e))?;
    let scored = &ts[o.first_scored..];
    let band: Vec<(f64, f64)> = scored
        .iter()
        .zip(o.upper)
        .map(|(&t, &u)| (x(t), u))
        .chain(scored.iter().zip(o.lower).rev().map(|(&t, &l)| (x(t), l)))
        .collect();
    chart
        .draw_series(std::iter::once(Polygon::new(band, BLUE.mix(0.15).filled())))
        .map_err(|e| err(path, e))?
        .label("scaled band (threshold)")
        .legend(|(x, y)| Rectangle::new([(x, y - 5), (x + 18, y + 5)], BLUE.mix(0.15).filled()));
    chart
        .draw_series(LineSeries::new(
            scored.iter().zip(o.yhat).map(|(&t, &y)| (x(t), y)),
            BLUE,
        ))
        .map_err(|e| err(path, e))?
        .label("forecast")
        .legend(|(x, y)| PathElement::new([(x, y), (x + 18, y)], BLUE));
    chart
        .draw_series(LineSeries::new(
            ts.iter().zip(o.values).map(|(&t, &v)| (x(t), v)),
            BLACK,
        ))
        .map_err(|e| err(path, e))?
        .label("actual")
        .legend(|(x, y)| PathElement::new([(x, y), (x + 18, y)], BLACK));
    if let Some(labels) = o.labels {
        let orange = RGBColor(255, 140, 0);
        chart
            .draw_series(
                ts.iter()
                    .zip(o.values)
                    .zip(labels)
                    .filter(|(_, &l)| l)
                    .map(|((&t, &v), _)| Circle::new((x(t), v), 5, orange.stroke_width(2))),
            )
            .map_err(|e| err(path, e))?
            .label("labelled anomaly")
            .legend(move |(x, y)| Circle::new((x + 9, y), 5, orange.stroke_width(2)));
    }
    chart
        .draw_series(
            scored
                .iter()
                .zip(&o.values[o.first_scored..])
                .zip(o.flags)
                .filter(|(_, &f)| f)
                .map(|((&t, &v), _)| Circle::new((x(t), v), 3, RED.filled())),
        )
        .map_err(|e| err(path, e))?
        .label("detected")
        .legend(|(x, y)| Circle::new((x + 9, y), 3, RED.filled()));
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font((FONT, 14))
        .position(SeriesLabelPosition::UpperRight)
        .draw()
        .map_err(|e| err(path, e))?;
    root.present().map_err(|e| err(path, e))
}
