//! The CSV reader: columns found by name, every row parsed or reported
//! with its line, then the repairs (sort, duplicates dropped, gaps
//! reported) and the unit detected.

use std::path::Path;

use super::{
    median_step, parse_timestamp, DatasetError, Gap, LoadReport, ReadOptions, Series, Unit,
    BUNDLED_CSV, BUNDLED_DATASET, GAP_FACTOR, LABEL_COLUMNS, MIN_ROWS, TIME_COLUMNS, VALUE_COLUMNS,
};

fn find_column(
    headers: &csv::StringRecord,
    wanted: &Option<String>,
    defaults: &[&str],
) -> Option<usize> {
    let names: Vec<String> = headers.iter().map(|h| h.trim().to_lowercase()).collect();
    match wanted {
        Some(w) => names.iter().position(|n| *n == w.trim().to_lowercase()),
        None => defaults
            .iter()
            .find_map(|d| names.iter().position(|n| n == d)),
    }
}

/// Reads a CSV file into a [`Series`], applying the documented repairs.
///
/// [`BUNDLED_DATASET`] missing from the working directory is read from the
/// copy built into the binary (said once at info level); any other missing
/// file is an error.
pub fn read_csv(path: &Path, opts: &ReadOptions) -> Result<Series, DatasetError> {
    match std::fs::File::open(path) {
        Ok(file) => read_csv_from(file, path, opts),
        Err(e)
            if e.kind() == std::io::ErrorKind::NotFound && path == Path::new(BUNDLED_DATASET) =>
        {
            static SAID: std::sync::Once = std::sync::Once::new();
            SAID.call_once(|| {
                tracing::info!(
                    "{BUNDLED_DATASET} is not in the working directory; using the copy built into the binary"
                )
            });
            read_csv_from(BUNDLED_CSV.as_bytes(), path, opts)
        }
        Err(source) => Err(DatasetError::Io {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// Like [`read_csv`], from any reader; `path` is used in messages only.
pub fn read_csv_from(
    reader: impl std::io::Read,
    path: &Path,
    opts: &ReadOptions,
) -> Result<Series, DatasetError> {
    let p = || path.to_path_buf();
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(true)
        .trim(csv::Trim::All)
        .from_reader(reader);
    let csv_err = |e: csv::Error| {
        let line = e.position().map(|p| p.line()).unwrap_or(0);
        match e.kind() {
            csv::ErrorKind::Io(_) => DatasetError::Io {
                path: p(),
                source: std::io::Error::other(e.to_string()),
            },
            _ => DatasetError::Csv {
                path: p(),
                line,
                message: e.to_string(),
            },
        }
    };
    let headers = rdr.headers().map_err(csv_err)?.clone();
    if headers.is_empty() || headers.iter().all(|h| h.is_empty()) {
        return Err(DatasetError::Empty {
            path: p(),
            what: "no header line",
        });
    }
    let found = headers.iter().collect::<Vec<_>>().join(", ");
    let tcol = find_column(&headers, &opts.time_column, TIME_COLUMNS).ok_or_else(|| {
        DatasetError::MissingColumn {
            path: p(),
            role: "time",
            wanted: opts
                .time_column
                .clone()
                .unwrap_or_else(|| TIME_COLUMNS.join("/")),
            found: found.clone(),
            flag: "--time-column",
        }
    })?;
    let vcol = find_column(&headers, &opts.value_column, VALUE_COLUMNS).ok_or_else(|| {
        DatasetError::MissingColumn {
            path: p(),
            role: "value",
            wanted: opts
                .value_column
                .clone()
                .unwrap_or_else(|| VALUE_COLUMNS.join("/")),
            found: found.clone(),
            flag: "--value-column",
        }
    })?;
    let lcol = find_column(&headers, &opts.label_column, LABEL_COLUMNS);
    if lcol.is_none() {
        if let Some(wanted) = &opts.label_column {
            return Err(DatasetError::MissingColumn {
                path: p(),
                role: "label",
                wanted: wanted.clone(),
                found: found.clone(),
                flag: "--label-column",
            });
        }
    }
    let tname = headers[tcol].to_string();
    let vname = headers[vcol].to_string();

    // (timestamp, value, line, label)
    let mut rows: Vec<(i64, f64, u64, bool)> = Vec::new();
    let mut record = csv::StringRecord::new();
    loop {
        match rdr.read_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => return Err(csv_err(e)),
        }
        let line = record.position().map(|p| p.line()).unwrap_or(0);
        if record.iter().all(|f| f.is_empty()) {
            continue; // blank line
        }
        let traw = record.get(tcol).unwrap_or("");
        let ts = parse_timestamp(traw).ok_or_else(|| DatasetError::BadCell {
            path: p(),
            line,
            column: tname.clone(),
            problem: "not a timestamp (expected YYYY-MM-DD HH:MM:SS, RFC 3339 or Unix seconds/ms)",
            value: traw.to_string(),
        })?;
        let vraw = record.get(vcol).unwrap_or("");
        let value: f64 = vraw.parse().map_err(|_| DatasetError::BadCell {
            path: p(),
            line,
            column: vname.clone(),
            problem: if vraw.is_empty() {
                "missing value"
            } else {
                "not a number"
            },
            value: vraw.to_string(),
        })?;
        if !value.is_finite() {
            return Err(DatasetError::BadCell {
                path: p(),
                line,
                column: vname.clone(),
                problem: "not a finite number",
                value: vraw.to_string(),
            });
        }
        let label = match lcol {
            Some(c) => {
                let raw = record.get(c).unwrap_or("");
                parse_label(raw).ok_or_else(|| DatasetError::BadCell {
                    path: p(),
                    line,
                    column: headers[c].to_string(),
                    problem: "not a label (expected 0/1, true/false or yes/no)",
                    value: raw.to_string(),
                })?
            }
            None => false,
        };
        rows.push((ts, value, line, label));
    }
    if rows.is_empty() {
        return Err(DatasetError::Empty {
            path: p(),
            what: "a header but no data rows",
        });
    }
    let mut report = LoadReport {
        rows_read: rows.len(),
        ..LoadReport::default()
    };
    if rows.windows(2).any(|w| w[1].0 < w[0].0) {
        report.sorted = true;
        // Stable sort keeps file order among equal timestamps, so "first kept" holds.
        rows.sort_by_key(|r| r.0);
    }
    let mut timestamps = Vec::with_capacity(rows.len());
    let mut values = Vec::with_capacity(rows.len());
    let mut labels = Vec::with_capacity(rows.len());
    for (ts, v, line, label) in rows {
        if timestamps.last() == Some(&ts) {
            report.duplicate_lines.push(line);
            continue;
        }
        timestamps.push(ts);
        values.push(v);
        labels.push(label);
    }
    if timestamps.len() < MIN_ROWS {
        return Err(DatasetError::TooFewRows {
            path: p(),
            rows: timestamps.len(),
            min: MIN_ROWS,
        });
    }
    let step = median_step(&timestamps);
    if step > 0 {
        for w in timestamps.windows(2) {
            let d = w[1] - w[0];
            if d as f64 > GAP_FACTOR * step as f64 {
                report.gaps.push(Gap {
                    after: w[0],
                    before: w[1],
                    missing: (d / step).saturating_sub(1) as u64,
                });
            }
        }
    }
    let unit = match opts.unit {
        Some(u) => u,
        None => {
            report.unit_detected = true;
            Unit::detect(&values)
        }
    };
    report.out_of_range = values
        .iter()
        .filter(|v| !(0.0..=unit.full_scale()).contains(*v))
        .count();
    Ok(Series {
        name: path.display().to_string(),
        timestamps,
        values,
        unit,
        labels: lcol.map(|_| labels),
        report,
    })
}

fn parse_label(raw: &str) -> Option<bool> {
    match raw.trim().to_ascii_lowercase().as_str() {
        "1" | "1.0" | "true" | "yes" => Some(true),
        "0" | "0.0" | "false" | "no" => Some(false),
        _ => None,
    }
}
