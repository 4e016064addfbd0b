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
