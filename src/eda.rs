//! Exploratory summary of a CPU series: size, range, step, gaps, spread, and
//! the hourly and weekday profiles that seasonality will have to learn.

use std::fmt::Write as _;

use chrono::{DateTime, Datelike, Timelike};
use serde::Serialize;

use crate::dataset::{format_ts, Series};

/// Summary statistics of a series.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// Samples.
    pub rows: usize,
    /// First timestamp (Unix seconds).
    pub start: i64,
    /// Last timestamp (Unix seconds).
    pub end: i64,
    /// Median step in seconds.
    pub step_seconds: i64,
    /// Number of gaps.
    pub gaps: usize,
    /// Mean value.
    pub mean: f64,
    /// Standard deviation.
    pub sd: f64,
    /// Minimum value.
    pub min: f64,
    /// Maximum value.
    pub max: f64,
    /// Mean per hour of day (UTC), index 0–23; NaN where no data.
    pub hourly: Vec<f64>,
    /// Mean per weekday, Monday first; NaN where no data.
    pub weekday: Vec<f64>,
}

/// Computes the summary.
pub fn summarize(s: &Series) -> Summary {
    let n = s.len().max(1) as f64;
    let mean = s.values.iter().sum::<f64>() / n;
    let var = s.values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
    let mut hourly = [(0.0, 0usize); 24];
    let mut weekday = [(0.0, 0usize); 7];
    for (&ts, &v) in s.timestamps.iter().zip(&s.values) {
        if let Some(d) = DateTime::from_timestamp(ts, 0) {
            let h = &mut hourly[d.hour() as usize];
            h.0 += v;
            h.1 += 1;
            let w = &mut weekday[d.weekday().num_days_from_monday() as usize];
            w.0 += v;
            w.1 += 1;
        }
    }
    let avg = |(sum, c): &(f64, usize)| if *c > 0 { sum / *c as f64 } else { f64::NAN };
    Summary {
        rows: s.len(),
        start: s.timestamps.first().copied().unwrap_or(0),
        end: s.timestamps.last().copied().unwrap_or(0),
        step_seconds: s.step_seconds(),
        gaps: s.report.gaps.len(),
        mean,
        sd: var.sqrt(),
        min: s.values.iter().copied().fold(f64::INFINITY, f64::min),
        max: s.values.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        hourly: hourly.iter().map(avg).collect(),
        weekday: weekday.iter().map(avg).collect(),
    }
}

/// Formats a duration in seconds as "40m", "5m", "1h30m", "2d".
pub fn human_duration(secs: i64) -> String {
    let (d, h, m, s) = (
        secs / 86_400,
        secs % 86_400 / 3600,
        secs % 3600 / 60,
        secs % 60,
    );
    let mut out = String::new();
    for (v, u) in [(d, "d"), (h, "h"), (m, "m"), (s, "s")] {
        if v > 0 {
            let _ = write!(out, "{v}{u}");
        }
    }
    if out.is_empty() {
        out.push_str("0s");
    }
    out
}

impl Summary {
    /// Multi-line text for the terminal.
    pub fn render(&self, unit_label: &str) -> String {
        let mut o = String::new();
        let _ = writeln!(o, "Data summary ({unit_label})");
        let _ = writeln!(
            o,
            "  rows {} | {} .. {} | step {} | gaps {}",
            self.rows,
            format_ts(self.start),
            format_ts(self.end),
            human_duration(self.step_seconds),
            self.gaps
        );
        let _ = writeln!(
            o,
            "  mean {:.4} | sd {:.4} | min {:.4} | max {:.4}",
            self.mean, self.sd, self.min, self.max
        );
        let fmt = |v: &[f64]| {
            v.iter()
                .map(|x| {
                    if x.is_nan() {
                        "-".to_string()
                    } else {
                        format!("{x:.3}")
                    }
                })
                .collect::<Vec<_>>()
                .join(" ")
        };
        let _ = writeln!(o, "  hourly mean (UTC 00..23): {}", fmt(&self.hourly));
        let _ = writeln!(o, "  weekday mean (Mon..Sun):  {}", fmt(&self.weekday));
        o
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataset::{LoadReport, Unit};

    #[test]
    fn profiles_and_moments() {
        // 2024-06-03 is a Monday. Two days hourly, value = hour.
        let start = 1_717_372_800;
        let ts: Vec<i64> = (0..48).map(|i| start + i * 3600).collect();
        let values: Vec<f64> = (0..48).map(|i| (i % 24) as f64).collect();
        let s = Series {
            name: "x".into(),
            timestamps: ts,
            values,
            unit: Unit::Percent,
            labels: None,
            report: LoadReport::default(),
        };
        let sum = summarize(&s);
        assert_eq!(sum.rows, 48);
        assert_eq!(sum.step_seconds, 3600);
        assert_eq!(sum.hourly[5], 5.0);
        assert_eq!(sum.weekday[0], 11.5);
        assert_eq!(sum.weekday[1], 11.5);
        assert!(sum.weekday[2].is_nan());
        assert!((sum.mean - 11.5).abs() < 1e-12);
        assert_eq!(human_duration(2400), "40m");
        assert_eq!(human_duration(90_000), "1d1h");
    }
}
