//! Reading CPU history from CSV: column discovery, timestamp parsing, unit
//! detection, and the documented repairs (sort, drop duplicates, report gaps).
//!
//! Every problem that cannot be repaired is a [`DatasetError`] naming the file,
//! the 1-based line (header = line 1) and what was wrong. Nothing here panics on
//! user input. The reader itself is `reader`; this file holds what it
//! returns and the parsing it shares (timestamps, units).

use std::{fmt, path::PathBuf};

use chrono::{DateTime, NaiveDateTime, TimeZone, Utc};
use serde::{Deserialize, Serialize};

mod reader;

pub use self::reader::{read_csv, read_csv_from};

/// Time column names tried, in order, when none is given.
pub const TIME_COLUMNS: &[&str] = &["timestamp", "ds", "time", "date"];
/// Value column names tried, in order, when none is given.
pub const VALUE_COLUMNS: &[&str] = &["cpu_usage", "value", "y", "cpu"];
/// Label column names tried, in order, when none is given (optional column).
pub const LABEL_COLUMNS: &[&str] = &["label", "is_anomaly", "anomaly"];
/// Fewest rows a training set may have.
pub const MIN_ROWS: usize = 10;
/// Largest value a series detected as fractions may contain.
pub const DETECT_FRACTION_MAX: f64 = 1.5;
/// A step larger than this multiple of the median step is a gap.
pub const GAP_FACTOR: f64 = 1.5;
/// The bundled sample history, relative to the working directory: the
/// default `dataset` of every mode.
pub const BUNDLED_DATASET: &str = "datasets/sample_cpu.csv";
/// The bundled sample's text, built into the binary, so the defaults work
/// from any directory (a bare machine has the binary and nothing else).
const BUNDLED_CSV: &str = include_str!("../datasets/sample_cpu.csv");

/// What went wrong while reading a dataset.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DatasetError {
    /// The file could not be opened or read.
    #[error("{path}: cannot read: {source}")]
    Io {
        /// File being read.
        path: PathBuf,
        /// Underlying error.
        source: std::io::Error,
    },
    /// The CSV structure itself is broken (e.g. a row with the wrong number of fields).
    #[error("{path}:{line}: malformed CSV: {message}")]
    Csv {
        /// File being read.
        path: PathBuf,
        /// 1-based line number.
        line: u64,
        /// What the CSV parser said.
        message: String,
    },
    /// The file has no header or no data rows.
    #[error("{path}: empty file: {what}")]
    Empty {
        /// File being read.
        path: PathBuf,
        /// Whether the header or the rows are missing.
        what: &'static str,
    },
    /// A required column is absent.
    #[error("{path}:1: no {role} column (looked for {wanted}; the header has: {found}); name it with {flag}")]
    MissingColumn {
        /// File being read.
        path: PathBuf,
        /// "time" or "value".
        role: &'static str,
        /// Names that were looked for.
        wanted: String,
        /// Names in the header.
        found: String,
        /// CLI flag that selects the column.
        flag: &'static str,
    },
    /// A cell could not be parsed.
    #[error("{path}:{line}: column `{column}`: {problem}: {value:?}")]
    BadCell {
        /// File being read.
        path: PathBuf,
        /// 1-based line number.
        line: u64,
        /// Column name.
        column: String,
        /// What was wrong with it.
        problem: &'static str,
        /// The raw cell text.
        value: String,
    },
    /// Fewer rows than a model can learn from.
    #[error("{path}: only {rows} usable rows; at least {min} are needed")]
    TooFewRows {
        /// File being read.
        path: PathBuf,
        /// Rows left after repairs.
        rows: usize,
        /// Minimum accepted.
        min: usize,
    },
}

/// The unit CPU values are expressed in. Kept through every output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Unit {
    /// Fractions of one CPU, 0–1 (the original system's format).
    Fraction,
    /// Percent, 0–100 (node exporter queries, NAB, CloudWatch).
    Percent,
}

impl Unit {
    /// Upper end of the normal range (1 or 100).
    pub fn full_scale(self) -> f64 {
        match self {
            Unit::Fraction => 1.0,
            Unit::Percent => 100.0,
        }
    }

    /// Axis label for plots and reports.
    pub fn label(self) -> &'static str {
        match self {
            Unit::Fraction => "CPU usage (fraction 0-1)",
            Unit::Percent => "CPU usage (%)",
        }
    }

    /// Auto-detection rule: fractions when at least 99 % of the values are
    /// within 0–1 and none exceeds 1.5 (a short burst above one full CPU
    /// happens in fraction data); percent otherwise. A percent series that
    /// stays below 1.5 % throughout is indistinguishable from fractions, so
    /// `--unit` overrides the guess.
    pub fn detect(values: &[f64]) -> Unit {
        if values.is_empty() {
            return Unit::Percent;
        }
        let within = values.iter().filter(|v| (0.0..=1.0).contains(*v)).count();
        let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        if within as f64 >= 0.99 * values.len() as f64 && max <= DETECT_FRACTION_MAX {
            Unit::Fraction
        } else {
            Unit::Percent
        }
    }
}

impl fmt::Display for Unit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Unit::Fraction => "fraction",
            Unit::Percent => "percent",
        })
    }
}

/// How to read a CSV file.
#[derive(Debug, Clone, Default)]
pub struct ReadOptions {
    /// Time column; `None` tries [`TIME_COLUMNS`].
    pub time_column: Option<String>,
    /// Value column; `None` tries [`VALUE_COLUMNS`].
    pub value_column: Option<String>,
    /// Unit; `None` detects it with [`Unit::detect`].
    pub unit: Option<Unit>,
    /// Name of the label column (0/1, true/false); default: first of
    /// [`LABEL_COLUMNS`] if present.
    pub label_column: Option<String>,
}

/// A run of missing samples.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Gap {
    /// Last timestamp before the gap (Unix seconds).
    pub after: i64,
    /// First timestamp after the gap (Unix seconds).
    pub before: i64,
    /// Samples that would fit in the gap at the regular step.
    pub missing: u64,
}

/// What was repaired or noticed while reading. Printed by every mode.
#[derive(Debug, Clone, Default, Serialize)]
pub struct LoadReport {
    /// Data rows read (excluding the header).
    pub rows_read: usize,
    /// Whether rows had to be sorted by time.
    pub sorted: bool,
    /// Lines whose timestamp repeated an earlier one; the first occurrence is kept.
    pub duplicate_lines: Vec<u64>,
    /// Gaps larger than [`GAP_FACTOR`] × the median step.
    pub gaps: Vec<Gap>,
    /// Values outside the unit's normal range (kept as they are).
    pub out_of_range: usize,
    /// Whether the unit was detected (true) or given (false).
    pub unit_detected: bool,
}

impl LoadReport {
    /// Human-readable lines describing every repair; empty when the file was clean.
    pub fn notes(&self, unit: Unit) -> Vec<String> {
        let mut notes = Vec::new();
        if self.sorted {
            notes.push("rows were not in time order: sorted by timestamp".to_string());
        }
        if !self.duplicate_lines.is_empty() {
            let shown: Vec<String> = self
                .duplicate_lines
                .iter()
                .take(5)
                .map(|l| l.to_string())
                .collect();
            notes.push(format!(
                "{} duplicate timestamps dropped (kept the first; lines {}{})",
                self.duplicate_lines.len(),
                shown.join(", "),
                if self.duplicate_lines.len() > 5 {
                    ", ..."
                } else {
                    ""
                }
            ));
        }
        if !self.gaps.is_empty() {
            let missing: u64 = self.gaps.iter().map(|g| g.missing).sum();
            let largest = self.gaps.iter().max_by_key(|g| g.before - g.after);
            let mut note = format!(
                "{} gaps, about {missing} samples missing (left as gaps, not filled)",
                self.gaps.len()
            );
            if let Some(g) = largest {
                note.push_str(&format!(
                    "; largest from {} to {}",
                    format_ts(g.after),
                    format_ts(g.before)
                ));
            }
            notes.push(note);
        }
        if self.out_of_range > 0 {
            notes.push(format!(
                "{} values outside 0-{} ({unit}); kept as they are",
                self.out_of_range,
                unit.full_scale()
            ));
        }
        notes
    }
}

/// A univariate CPU series, sorted by time, without duplicate timestamps.
#[derive(Debug, Clone)]
pub struct Series {
    /// Where it came from (file path or a source name).
    pub name: String,
    /// Unix timestamps in seconds, strictly increasing.
    pub timestamps: Vec<i64>,
    /// Values in `unit`.
    pub values: Vec<f64>,
    /// Unit of `values`.
    pub unit: Unit,
    /// Ground truth per sample (true = anomalous), from a label column.
    pub labels: Option<Vec<bool>>,
    /// Repairs made while loading.
    pub report: LoadReport,
}

impl Series {
    /// Number of samples.
    pub fn len(&self) -> usize {
        self.timestamps.len()
    }

    /// Whether the series has no samples.
    pub fn is_empty(&self) -> bool {
        self.timestamps.is_empty()
    }

    /// Median spacing between samples, in seconds (0 for fewer than two samples).
    pub fn step_seconds(&self) -> i64 {
        median_step(&self.timestamps)
    }

    /// The first `n` samples as a new series.
    pub fn head(&self, n: usize) -> Series {
        let n = n.min(self.len());
        Series {
            name: self.name.clone(),
            timestamps: self.timestamps[..n].to_vec(),
            values: self.values[..n].to_vec(),
            labels: self.labels.as_ref().map(|l| l[..n].to_vec()),
            unit: self.unit,
            report: self.report.clone(),
        }
    }

    /// The samples from index `n` on, as a new series.
    pub fn tail_from(&self, n: usize) -> Series {
        let n = n.min(self.len());
        Series {
            name: self.name.clone(),
            timestamps: self.timestamps[n..].to_vec(),
            values: self.values[n..].to_vec(),
            labels: self.labels.as_ref().map(|l| l[n..].to_vec()),
            unit: self.unit,
            report: self.report.clone(),
        }
    }
}

/// Formats Unix seconds as `YYYY-MM-DD HH:MM:SS` (UTC).
pub fn format_ts(ts: i64) -> String {
    DateTime::from_timestamp(ts, 0)
        .map(|d| d.format("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_else(|| ts.to_string())
}

/// Median of consecutive differences of sorted timestamps.
pub fn median_step(ts: &[i64]) -> i64 {
    if ts.len() < 2 {
        return 0;
    }
    let mut diffs: Vec<i64> = ts.windows(2).map(|w| w[1] - w[0]).collect();
    diffs.sort_unstable();
    diffs[diffs.len() / 2]
}

/// Parses a timestamp: `YYYY-MM-DD HH:MM:SS[.fff]` (UTC), `YYYY-MM-DDTHH:MM:SS`,
/// RFC 3339 with offset, or Unix seconds / milliseconds (13+ digits).
/// Sub-second parts are truncated.
pub fn parse_timestamp(s: &str) -> Option<i64> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    if s.bytes().all(|b| b.is_ascii_digit()) {
        let n: i64 = s.parse().ok()?;
        // 10^11 seconds is the year 5138: anything larger is milliseconds.
        return Some(if n >= 100_000_000_000 { n / 1000 } else { n });
    }
    if let Ok(f) = s.parse::<f64>() {
        if f.is_finite() && f >= 0.0 {
            return Some(if f >= 1e11 {
                (f / 1000.0) as i64
            } else {
                f as i64
            });
        }
        return None;
    }
    if let Ok(dt) = DateTime::parse_from_rfc3339(s) {
        return Some(dt.timestamp());
    }
    for fmt in [
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M",
        "%Y-%m-%dT%H:%M",
    ] {
        if let Ok(n) = NaiveDateTime::parse_from_str(s, fmt) {
            return Some(Utc.from_utc_datetime(&n).timestamp());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn read(text: &str) -> Result<Series, DatasetError> {
        read_csv_from(text.as_bytes(), Path::new("t.csv"), &ReadOptions::default())
    }

    fn rows(n: usize, fmt: impl Fn(usize) -> String) -> String {
        (0..n).map(|i| fmt(i) + "\n").collect()
    }

    #[test]
    fn parses_all_timestamp_forms() {
        let want = 1_717_200_000; // 2024-06-01 00:00:00 UTC
        assert_eq!(parse_timestamp("2024-06-01 00:00:00"), Some(want));
        assert_eq!(parse_timestamp("2024-06-01 00:00:00.000000"), Some(want));
        assert_eq!(parse_timestamp("2024-06-01T00:00:00"), Some(want));
        assert_eq!(parse_timestamp("2024-06-01T02:00:00+02:00"), Some(want));
        assert_eq!(parse_timestamp("2024-06-01T00:00:00Z"), Some(want));
        assert_eq!(parse_timestamp("1717200000"), Some(want));
        assert_eq!(parse_timestamp("1717200000000"), Some(want));
        assert_eq!(parse_timestamp("yesterday"), None);
        assert_eq!(parse_timestamp(""), None);
    }

    #[test]
    fn reads_original_format_as_fractions() {
        let text = "timestamp,cpu_usage\n".to_string()
            + &rows(20, |i| format!("2024-06-01 {:02}:00:00,0.{}", i, i % 9 + 1));
        let s = read(&text).unwrap();
        assert_eq!(s.len(), 20);
        assert_eq!(s.unit, Unit::Fraction);
        assert_eq!(s.step_seconds(), 3600);
        assert!(s.report.notes(s.unit).is_empty());
    }

    #[test]
    fn reads_nab_format_as_percent() {
        let text = "timestamp,value\n".to_string()
            + &rows(20, |i| {
                format!("2014-02-14 14:{:02}:00,{}.5", i * 2, 30 + i)
            });
        let s = read(&text).unwrap();
        assert_eq!(s.unit, Unit::Percent);
        assert_eq!(s.values[0], 30.5);
    }

    #[test]
    fn empty_file_and_header_only_are_errors() {
        assert!(matches!(read(""), Err(DatasetError::Empty { .. })));
        assert!(matches!(
            read("timestamp,value\n"),
            Err(DatasetError::Empty { .. })
        ));
    }

    #[test]
    fn missing_column_names_header_and_flag() {
        let err = read("when,value\n1,2\n").unwrap_err().to_string();
        assert!(err.contains("no time column"), "{err}");
        assert!(err.contains("when, value"), "{err}");
        assert!(err.contains("--time-column"), "{err}");
    }

    #[test]
    fn bad_number_names_line_and_column() {
        let mut text = "timestamp,value\n".to_string() + &rows(12, |i| format!("{},{}", i * 60, i));
        text.push_str("720,abc\n");
        let err = read(&text).unwrap_err().to_string();
        assert_eq!(
            err, "t.csv:14: column `value`: not a number: \"abc\"",
            "{err}"
        );
    }

    #[test]
    fn bad_time_names_line() {
        let text = "timestamp,value\n2024-06-01 00:00:00,1\nnot-a-time,2\n";
        let err = read(text).unwrap_err().to_string();
        assert!(
            err.starts_with("t.csv:3: column `timestamp`: not a timestamp"),
            "{err}"
        );
    }

    #[test]
    fn nan_and_inf_are_errors() {
        for bad in ["NaN", "inf", "-inf"] {
            let text = format!("timestamp,value\n0,1\n60,{bad}\n");
            let err = read(&text).unwrap_err().to_string();
            assert!(
                err.contains("t.csv:3") && err.contains("not a finite number"),
                "{err}"
            );
        }
    }

    #[test]
    fn missing_value_is_an_error() {
        let err = read("timestamp,value\n0,1\n60,\n").unwrap_err().to_string();
        assert!(
            err.contains("t.csv:3") && err.contains("missing value"),
            "{err}"
        );
    }

    #[test]
    fn ragged_row_is_a_csv_error_with_line() {
        let err = read("timestamp,value\n0,1\n60,2,3\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("t.csv:3") && err.contains("malformed CSV"),
            "{err}"
        );
    }

    #[test]
    fn duplicates_dropped_keeping_first_and_reported() {
        let mut text = "timestamp,value\n".to_string() + &rows(12, |i| format!("{},{}", i * 60, i));
        text.push_str("60,99\n");
        let s = read(&text).unwrap();
        assert_eq!(s.len(), 12);
        assert_eq!(s.values[1], 1.0, "first occurrence kept");
        assert_eq!(s.report.duplicate_lines, vec![14]);
        assert!(s.report.notes(s.unit)[1].contains("1 duplicate"));
    }

    #[test]
    fn unsorted_rows_are_sorted_and_reported() {
        let text =
            "timestamp,value\n".to_string() + &rows(12, |i| format!("{},{}", (11 - i) * 60, i));
        let s = read(&text).unwrap();
        assert!(s.report.sorted);
        assert!(s.timestamps.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(s.values[0], 11.0);
    }

    #[test]
    fn gaps_are_reported_not_filled() {
        let text = "timestamp,value\n".to_string()
            + &rows(12, |i| {
                format!("{},50", if i < 6 { i * 60 } else { i * 60 + 600 })
            });
        let s = read(&text).unwrap();
        assert_eq!(s.len(), 12);
        assert_eq!(s.report.gaps.len(), 1);
        assert_eq!(s.report.gaps[0].missing, 10);
        assert!(s.report.notes(s.unit)[0].contains("1 gaps"));
    }

    #[test]
    fn too_few_rows_is_an_error() {
        let err = read("timestamp,value\n0,1\n60,2\n").unwrap_err();
        assert!(matches!(err, DatasetError::TooFewRows { rows: 2, .. }));
    }

    #[test]
    fn custom_columns_and_unit_override() {
        let text = "t,busy\n".to_string() + &rows(12, |i| format!("{},0.5", i * 60));
        let opts = ReadOptions {
            time_column: Some("t".into()),
            value_column: Some("busy".into()),
            unit: Some(Unit::Percent),
            label_column: None,
        };
        let s = read_csv_from(text.as_bytes(), Path::new("t.csv"), &opts).unwrap();
        assert_eq!(s.unit, Unit::Percent);
        assert!(!s.report.unit_detected);
    }

    #[test]
    fn unit_detection_rule() {
        assert_eq!(Unit::detect(&[0.0, 0.5, 1.0]), Unit::Fraction);
        assert_eq!(Unit::detect(&[0.0, 0.5, 1.6]), Unit::Percent);
        // One burst above a full CPU among 100 fractions stays fractions.
        let mut v = vec![0.6; 99];
        v.push(1.27);
        assert_eq!(Unit::detect(&v), Unit::Fraction);
        // Mostly small percents with a few values above 1.5 are percent.
        let mut v = vec![0.12; 99];
        v.push(2.3);
        assert_eq!(Unit::detect(&v), Unit::Percent);
        assert_eq!(Unit::detect(&[12.0, 97.0]), Unit::Percent);
    }

    #[test]
    fn label_column_is_read_and_checked() {
        let text = "timestamp,value,label\n".to_string()
            + &rows(12, |i| {
                format!("2024-01-01 {i:02}:00:00,{},{}", 10 + i, u8::from(i == 5))
            });
        let s = read(&text).unwrap();
        let l = s.labels.unwrap();
        assert_eq!(l.iter().filter(|&&b| b).count(), 1);
        assert!(l[5]);
        let bad = text.replace(",10,0", ",10,maybe");
        let e = read(&bad).unwrap_err().to_string();
        assert!(e.contains(":2: column `label`"), "{e}");
        let none = read(&text.replace("label", "other")).unwrap();
        assert!(none.labels.is_none());
    }

    #[test]
    fn out_of_range_values_are_counted() {
        let text =
            "timestamp,value\n".to_string() + &rows(12, |i| format!("{},{}", i * 60, 95 + i));
        let s = read(&text).unwrap();
        assert_eq!(s.report.out_of_range, 6);
    }
}
