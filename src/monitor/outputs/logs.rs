//! The JSON-lines logs under `log_dir`: metrics, anomalies, alerts.

use std::{
    fs::{File, OpenOptions},
    io::Write,
    path::Path,
};

use serde::Serialize;

use super::{Judged, Output, PollEnd};

#[derive(Serialize)]
struct MetricLine<'a> {
    timestamp: String,
    series: &'a str,
    host: &'a str,
    source: &'a str,
    cpu_usage: f64,
    yhat: Option<f64>,
    yhat_lower: Option<f64>,
    yhat_upper: Option<f64>,
    warming_up: bool,
    short_history: bool,
}

#[derive(Serialize)]
struct AnomalyLine<'a> {
    timestamp: String,
    series: &'a str,
    host: &'a str,
    source: &'a str,
    cpu_usage: f64,
    yhat: f64,
    lower_threshold: f64,
    upper_threshold: f64,
    score: f64,
    confidence: f64,
    severity: &'a str,
    direction: &'a str,
    alert: bool,
    short_history: bool,
}

#[derive(Serialize)]
struct AlertLine<'a> {
    timestamp: String,
    event: &'a str,
    series: &'a str,
    host: &'a str,
    source: &'a str,
    cpu_usage: f64,
    yhat: f64,
    score: f64,
    severity: &'a str,
}

/// A capacity warning's start or end in `alerts.jsonl`.
#[derive(Serialize)]
struct CapacityLine<'a> {
    timestamp: String,
    /// `capacity_warning` or `capacity_cleared`.
    event: &'a str,
    series: &'a str,
    host: &'a str,
    source: &'a str,
    cpu_usage: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    crossing_in_seconds: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    threshold: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    predicted_value: Option<f64>,
}

/// `metrics.jsonl` (every sample), `anomalies.jsonl` (flagged ones) and
/// `alerts.jsonl` (alert onsets and resolutions), appended once per poll,
/// whole lines or nothing: an append that fails (a full disk) is cut back
/// and that poll's lines are dropped from these logs (the points still go
/// to the sink), counted in a rate-limited error.
pub struct LogFiles {
    files: [LogFile; 3],
}

struct LogFile {
    name: &'static str,
    file: File,
    buf: Vec<u8>,
}

const METRICS: usize = 0;
const ANOMALIES: usize = 1;
const ALERTS: usize = 2;

/// Logs append failures at most once a minute.
static LOG_FILE_ERRORS: crate::logfile::throttle::Throttle =
    crate::logfile::throttle::Throttle::new(std::time::Duration::from_secs(60));

fn open_append(path: &Path) -> std::io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

impl LogFiles {
    /// Opens (appends to) the files in `dir`.
    pub fn open(dir: &Path) -> Result<LogFiles, (std::path::PathBuf, std::io::Error)> {
        let open = |name: &'static str| {
            let p = dir.join(name);
            match open_append(&p) {
                Ok(file) => Ok(LogFile {
                    name,
                    file,
                    buf: Vec::new(),
                }),
                Err(e) => Err((p, e)),
            }
        };
        Ok(LogFiles {
            files: [
                open("metrics.jsonl")?,
                open("anomalies.jsonl")?,
                open("alerts.jsonl")?,
            ],
        })
    }

    /// Appends what is buffered.
    pub fn flush(&mut self) {
        for f in &mut self.files {
            if f.buf.is_empty() {
                continue;
            }
            let before = f.file.metadata().map(|m| m.len());
            if let Err(e) = f.file.write_all(&f.buf) {
                if let Ok(len) = before {
                    let _ = f.file.set_len(len);
                }
                let lines = f.buf.iter().filter(|&&b| b == b'\n').count();
                if let Some(held) = LOG_FILE_ERRORS.allow() {
                    tracing::error!(
                        "cannot append {lines} lines to {}: {e}{}",
                        f.name,
                        crate::logfile::throttle::held_back(held)
                    );
                }
            }
            f.buf.clear();
        }
    }
}

fn write_json_line(f: &mut LogFile, v: &impl Serialize) {
    if serde_json::to_writer(&mut f.buf, v).is_ok() {
        f.buf.push(b'\n');
    }
}

impl Output for LogFiles {
    fn record(&mut self, j: &Judged<'_>) {
        let ts = crate::dataset::format_ts(j.timestamp);
        write_json_line(
            &mut self.files[METRICS],
            &MetricLine {
                timestamp: ts.clone(),
                series: j.series,
                host: j.host,
                source: j.source.as_str(),
                cpu_usage: j.actual,
                yhat: j.band.map(|b| b.yhat),
                yhat_lower: j.band.map(|b| b.lower),
                yhat_upper: j.band.map(|b| b.upper),
                warming_up: j.band.is_none(),
                short_history: j.short_history,
            },
        );
        if let Some(event) = j.capacity.change.event() {
            let w = j.capacity.warning;
            write_json_line(
                &mut self.files[ALERTS],
                &CapacityLine {
                    timestamp: ts.clone(),
                    event,
                    series: j.series,
                    host: j.host,
                    source: j.source.as_str(),
                    cpu_usage: j.actual,
                    crossing_in_seconds: w.map(|w| w.in_seconds),
                    threshold: w.map(|w| w.threshold),
                    predicted_value: w.map(|w| w.predicted),
                },
            );
        }
        if let (Some(d), Some(b)) = (&j.detection, j.band) {
            for (happened, event) in [(j.onset, "firing"), (j.resolved, "resolved")] {
                if happened {
                    write_json_line(
                        &mut self.files[ALERTS],
                        &AlertLine {
                            timestamp: ts.clone(),
                            event,
                            series: j.series,
                            host: j.host,
                            source: j.source.as_str(),
                            cpu_usage: j.actual,
                            yhat: b.yhat,
                            score: d.score,
                            severity: d.severity.as_str(),
                        },
                    );
                }
            }
            if d.is_anomaly {
                write_json_line(
                    &mut self.files[ANOMALIES],
                    &AnomalyLine {
                        timestamp: ts,
                        series: j.series,
                        host: j.host,
                        source: j.source.as_str(),
                        cpu_usage: j.actual,
                        yhat: b.yhat,
                        lower_threshold: d.lower_threshold,
                        upper_threshold: d.upper_threshold,
                        score: d.score,
                        confidence: d.confidence,
                        severity: d.severity.as_str(),
                        direction: d.direction.as_str(),
                        alert: j.alert,
                        short_history: j.short_history,
                    },
                );
            }
        }
    }

    fn end_poll(&mut self, _: &PollEnd<'_>) {
        self.flush();
    }
}
