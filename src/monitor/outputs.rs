//! Where judged samples go. The poll loop makes one [`Judged`] record per
//! sample and hands it to every [`Output`]: the sink (InfluxDB or the
//! line-protocol file), the JSON-lines logs, the HTTP API and the live line
//! on stdout. Each output batches what it needs and acts once per poll.

use std::{
    collections::BTreeMap,
    fs::{File, OpenOptions},
    io::Write,
    path::Path,
    sync::Arc,
};

use serde::Serialize;

use super::{failover::SourceKind, horizon::Band, table::Counts};
use crate::{
    api::{self, ApiState},
    detect::{
        capacity::{CapacityVerdict, Change},
        Detection, Severity,
    },
    notify::{Alert, CapacityAlert, Notifier},
    sink::{schema, SinkHandle},
    status::Report,
};

/// One sample as judged.
#[derive(Debug, Clone, Copy)]
pub struct Judged<'a> {
    /// Series id.
    pub series: &'a str,
    /// Host tag.
    pub host: &'a str,
    /// Where it came from.
    pub source: SourceKind,
    /// Unix seconds.
    pub timestamp: i64,
    /// Value, percent.
    pub actual: f64,
    /// The band (`None` while warming up).
    pub band: Option<Band>,
    /// The verdict (`None` while warming up).
    pub detection: Option<Detection>,
    /// An alert is firing for the series (the state).
    pub alert: bool,
    /// An alert fired with this sample.
    pub onset: bool,
    /// The series' alert resolved with this sample.
    pub resolved: bool,
    /// Judged by a short-history model.
    pub short_history: bool,
    /// When the series' model was made (Unix seconds).
    pub trained_at: Option<i64>,
    /// The threshold multiplier.
    pub threshold: f64,
    /// The capacity warning in force after this sample, and whether it
    /// started or cleared with it.
    pub capacity: CapacityVerdict,
}

/// What a poll ended with.
#[derive(Debug, Clone, Copy)]
pub struct PollEnd<'a> {
    /// Wall clock, Unix seconds.
    pub now: i64,
    /// Source of this poll.
    pub source: SourceKind,
    /// Series counts.
    pub counts: Counts,
    /// The run's counters.
    pub report: &'a Report,
    /// Series dropped this poll.
    pub dropped: &'a [Arc<str>],
    /// Prometheus answered this poll.
    pub prometheus_up: bool,
}

/// A consumer of judged samples.
pub trait Output {
    /// One judged sample.
    fn record(&mut self, j: &Judged<'_>);
    /// The poll is over.
    fn end_poll(&mut self, end: &PollEnd<'_>);
}

/// Line protocol to the sink thread, one message per poll.
pub struct SinkOutput {
    sink: SinkHandle,
    batch: Vec<schema::Point>,
}

impl SinkOutput {
    /// Writes to `sink`.
    pub fn new(sink: SinkHandle) -> Self {
        SinkOutput {
            sink,
            batch: Vec::new(),
        }
    }

    /// Sends what is batched, flushes, spools what cannot be written and
    /// stops the sink thread.
    pub fn close(self) {
        if !self.batch.is_empty() {
            self.sink.send(self.batch);
        }
        self.sink.close();
    }
}

impl Output for SinkOutput {
    fn record(&mut self, j: &Judged<'_>) {
        let b = j.band.unwrap_or(Band {
            yhat: f64::NAN,
            lower: f64::NAN,
            upper: f64::NAN,
        });
        self.batch.extend(schema::points(&schema::Sample {
            host: j.host,
            source: j.source.as_str(),
            timestamp: j.timestamp,
            actual: j.actual,
            yhat: b.yhat,
            lower: b.lower,
            upper: b.upper,
            detection: j.detection.as_ref(),
            alert: j.alert,
            threshold: j.threshold,
            short_history: j.short_history,
            onset: j.onset,
            resolved: j.resolved,
            capacity: j
                .capacity
                .warning
                .map(|w| (w.in_seconds, w.threshold, w.predicted)),
            capacity_cleared: j.capacity.change == Change::Cleared,
        }));
    }

    fn end_poll(&mut self, _: &PollEnd<'_>) {
        if !self.batch.is_empty() {
            self.sink.send(std::mem::take(&mut self.batch));
        }
    }
}

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

/// Alert onsets and resolutions to Alertmanager and the webhook
/// ([`crate::notify`]): keeps the alerts firing now, so each poll refreshes
/// them; a series that vanishes while firing is resolved.
pub struct NotifyOutput {
    notifier: Notifier,
    firing: BTreeMap<String, Alert>,
    /// Capacity warnings in force.
    warnings: BTreeMap<String, Alert>,
    events: Vec<Alert>,
}

impl NotifyOutput {
    /// Routes through `notifier`.
    pub fn new(notifier: Notifier) -> Self {
        NotifyOutput {
            notifier,
            firing: BTreeMap::new(),
            warnings: BTreeMap::new(),
            events: Vec::new(),
        }
    }

    /// Delivers what is queued and stops (bounded in time).
    pub fn close(self) {
        self.notifier.close();
    }
}

impl NotifyOutput {
    /// Capacity warnings: started, refreshed, cleared.
    fn capacity(&mut self, j: &Judged<'_>) {
        let c = j.capacity;
        let info = c.warning.map(|w| CapacityAlert {
            crossing_in_seconds: w.in_seconds,
            threshold: w.threshold,
            predicted: w.predicted,
        });
        match (c.change, info) {
            (Change::Onset, Some(info)) => {
                let a = Alert {
                    series: j.series.to_string(),
                    host: j.host.to_string(),
                    severity: "warning".into(),
                    value: j.actual,
                    yhat: j.band.map_or(f64::NAN, |b| b.yhat),
                    lower: f64::NAN,
                    upper: f64::NAN,
                    score: f64::NAN,
                    started: j.timestamp,
                    resolved: None,
                    capacity: Some(info),
                };
                self.warnings.insert(a.series.clone(), a.clone());
                self.events.push(a);
            }
            (Change::Cleared, _) => {
                if let Some(mut a) = self.warnings.remove(j.series) {
                    a.value = j.actual;
                    a.resolved = Some(j.timestamp);
                    self.events.push(a);
                }
            }
            (_, Some(info)) => {
                if let Some(a) = self.warnings.get_mut(j.series) {
                    a.value = j.actual;
                    a.capacity = Some(info);
                }
            }
            _ => {}
        }
    }
}

impl Output for NotifyOutput {
    fn record(&mut self, j: &Judged<'_>) {
        self.capacity(j);
        let (Some(d), Some(b)) = (&j.detection, j.band) else {
            return;
        };
        let latest = |a: &mut Alert| {
            a.value = j.actual;
            a.yhat = b.yhat;
            a.lower = d.lower_threshold;
            a.upper = d.upper_threshold;
            a.score = d.score;
        };
        if j.onset {
            let mut a = Alert {
                series: j.series.to_string(),
                host: j.host.to_string(),
                severity: d.severity.as_str().to_string(),
                value: 0.0,
                yhat: 0.0,
                lower: 0.0,
                upper: 0.0,
                score: 0.0,
                started: j.timestamp,
                resolved: None,
                capacity: None,
            };
            latest(&mut a);
            self.firing.insert(a.series.clone(), a.clone());
            self.events.push(a);
        } else if j.resolved {
            if let Some(mut a) = self.firing.remove(j.series) {
                latest(&mut a);
                a.resolved = Some(j.timestamp);
                self.events.push(a);
            }
        } else if let Some(a) = self.firing.get_mut(j.series) {
            latest(a);
        }
    }

    fn end_poll(&mut self, end: &PollEnd<'_>) {
        for id in end.dropped {
            for map in [&mut self.firing, &mut self.warnings] {
                if let Some(mut a) = map.remove(&**id) {
                    a.resolved = Some(end.now);
                    self.events.push(a);
                }
            }
        }
        self.notifier.poll(
            end.now,
            self.firing
                .values()
                .chain(self.warnings.values())
                .cloned()
                .collect(),
            std::mem::take(&mut self.events),
        );
    }
}

/// The HTTP API's snapshot, published once per poll.
pub struct ApiOutput {
    state: Arc<ApiState>,
    points: Vec<api::Published>,
}

impl ApiOutput {
    /// Publishes to `state`.
    pub fn new(state: Arc<ApiState>) -> Self {
        ApiOutput {
            state,
            points: Vec::new(),
        }
    }
}

impl Output for ApiOutput {
    fn record(&mut self, j: &Judged<'_>) {
        let d = j.detection.as_ref();
        self.points.push(api::Published {
            series: j.series.to_string(),
            host: j.host.to_string(),
            point: api::SeriesPoint {
                timestamp: j.timestamp,
                actual: j.actual,
                yhat: j.band.map(|b| b.yhat),
                yhat_lower: j.band.map(|b| b.lower),
                yhat_upper: j.band.map(|b| b.upper),
                score: d.map(|d| d.score),
                is_anomaly: d.is_some_and(|d| d.is_anomaly),
                severity: d.map(|d| d.severity.as_str()),
            },
            alert: j.alert,
            onset: j.onset,
            resolved: j.resolved,
            state: api::SeriesState {
                warming_up: j.band.is_none(),
                short_history: j.short_history,
                trained_at: j.trained_at,
                capacity: j.capacity.warning.map(|w| api::CapacityState {
                    crossing_in_seconds: w.in_seconds,
                    threshold: w.threshold,
                    predicted_value: w.predicted,
                    at: j.timestamp,
                }),
            },
            capacity_change: j.capacity.change.event(),
        });
    }

    fn end_poll(&mut self, end: &PollEnd<'_>) {
        let dropped: Vec<String> = end.dropped.iter().map(|d| d.to_string()).collect();
        self.state.publish(
            std::mem::take(&mut self.points),
            &dropped,
            end.prometheus_up,
            end.report,
            end.counts.warming,
        );
    }
}

/// Flagged samples listed on the live line at most; the rest are counted.
const LIVE_LIST: usize = 5;

/// One line per poll on stdout.
#[derive(Default)]
pub struct LiveLine {
    flagged: usize,
    listed: Vec<String>,
    fired: Vec<String>,
    resolved: usize,
}

impl Output for LiveLine {
    fn record(&mut self, j: &Judged<'_>) {
        if j.onset {
            self.fired.push(j.host.to_string());
        }
        self.resolved += usize::from(j.resolved);
        let Some(d) = j.detection.filter(|d| d.is_anomaly) else {
            return;
        };
        self.flagged += 1;
        // Alerts and CRITICAL samples are listed before the line fills up
        // with others (at most four times as many).
        let wanted = self.listed.len() < LIVE_LIST || d.severity == Severity::Critical || j.onset;
        if wanted && self.listed.len() < 4 * LIVE_LIST {
            self.listed.push(format!(
                "{} {:.1}% {} (score {:.2}){}",
                j.host,
                j.actual,
                d.severity.as_str(),
                d.score,
                if j.onset { " ALERT" } else { "" }
            ));
        }
    }

    fn end_poll(&mut self, end: &PollEnd<'_>) {
        let c = end.counts;
        let mut state = format!("{} series", c.series);
        if c.series > 0 {
            let mut parts = Vec::new();
            if c.warming > 0 {
                let mut w = format!("{} warming up", c.warming);
                if c.fetching + c.fitting > 0 {
                    w.push_str(&format!(": {} fetching, {} fitting", c.fetching, c.fitting));
                }
                parts.push(w);
            }
            if c.short > 0 {
                parts.push(format!("{} short history", c.short));
            }
            if !parts.is_empty() {
                state.push_str(&format!(" ({})", parts.join(", ")));
            }
        }
        let anomalies = if self.flagged == 0 {
            "no anomalies".to_string()
        } else {
            let more = self.flagged.saturating_sub(self.listed.len());
            format!(
                "{} anomalies: {}{}",
                self.flagged,
                self.listed.join("; "),
                if more > 0 {
                    format!("; … {more} more")
                } else {
                    String::new()
                }
            )
        };
        let alerts = match (self.fired.len(), self.resolved) {
            (0, 0) => String::new(),
            (f, r) => {
                let mut names = self.fired.clone();
                names.truncate(LIVE_LIST);
                let more = f.saturating_sub(names.len());
                format!(
                    " | alerts: {f} fired{}{}, {r} resolved",
                    if f > 0 {
                        format!(" ({})", names.join(", "))
                    } else {
                        String::new()
                    },
                    if more > 0 {
                        format!(" +{more}")
                    } else {
                        String::new()
                    }
                )
            }
        };
        let r = end.report;
        let mut writes = format!("written {} spooled {}", r.points_written, r.spool_depth);
        if r.points_dead_lettered > 0 {
            writes.push_str(&format!(" dead-lettered {}", r.points_dead_lettered));
        }
        let trouble = r.spool_depth > 0 || r.points_dead_lettered > 0;
        if trouble && !r.last_write_error.is_empty() {
            writes.push_str(&format!(" (last error: {})", r.last_write_error));
        }
        println!(
            "{} | {} | {state} | {anomalies}{alerts} | {writes} | poll {:.3}s",
            crate::dataset::format_ts(end.now),
            if end.source == SourceKind::Simulation {
                "SIMULATION"
            } else {
                "prometheus"
            },
            r.last_tick_seconds
        );
        self.flagged = 0;
        self.listed.clear();
        self.fired.clear();
        self.resolved = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{detect::Detector, notify::NotifySettings};
    use std::io::{BufRead, BufReader, Read};

    /// A webhook receiver keeping every JSON body.
    fn receiver() -> (String, std::sync::mpsc::Receiver<serde_json::Value>) {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/", l.local_addr().unwrap());
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for s in l.incoming().flatten() {
                let mut r = BufReader::new(s.try_clone().unwrap());
                let mut len = 0;
                loop {
                    let mut line = String::new();
                    if r.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        len = v.trim().parse().unwrap();
                    }
                }
                let mut body = vec![0; len];
                r.read_exact(&mut body).unwrap();
                let _ = (&s).write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
                let _ = tx.send(serde_json::from_slice(&body).unwrap());
            }
        });
        (url, rx)
    }

    fn judged(series: &str, ts: i64, actual: f64, onset: bool, resolved: bool) -> Judged<'_> {
        Judged {
            series,
            host: series,
            source: SourceKind::Prometheus,
            timestamp: ts,
            actual,
            band: Some(Band {
                yhat: 40.0,
                lower: 35.0,
                upper: 45.0,
            }),
            detection: Some(Detector::new(2.0).check(actual, 40.0, 35.0, 45.0)),
            alert: onset,
            onset,
            resolved,
            short_history: false,
            trained_at: None,
            threshold: 2.0,
            capacity: CapacityVerdict::default(),
        }
    }

    #[test]
    fn onsets_resolutions_and_vanished_series_reach_the_webhook() {
        let (url, rx) = receiver();
        let n = Notifier::spawn(NotifySettings {
            webhook_url: url,
            expire_after: std::time::Duration::from_secs(60),
            timeout: std::time::Duration::from_secs(5),
            ..NotifySettings::default()
        })
        .unwrap();
        let mut out = NotifyOutput::new(n);
        let report = Report::default();
        let end = |now, dropped| PollEnd {
            now,
            source: SourceKind::Prometheus,
            counts: Counts::default(),
            report: &report,
            dropped,
            prometheus_up: true,
        };
        out.record(&judged("a", 100, 95.0, true, false));
        out.record(&judged("b", 100, 96.0, true, false));
        out.end_poll(&end(100, &[]));
        out.record(&judged("a", 130, 41.0, false, true));
        out.end_poll(&end(130, &[]));
        let gone: [Arc<str>; 1] = [Arc::from("b")];
        out.end_poll(&end(160, &gone));
        let got: Vec<(String, String, Option<String>)> = (0..4)
            .map(|_| {
                let v = rx.recv_timeout(std::time::Duration::from_secs(10)).unwrap();
                (
                    v["series"].as_str().unwrap().to_string(),
                    v["event"].as_str().unwrap().to_string(),
                    v["resolved_at"].as_str().map(String::from),
                )
            })
            .collect();
        out.close();
        assert_eq!(
            got,
            [
                ("a".into(), "firing".into(), None),
                ("b".into(), "firing".into(), None),
                (
                    "a".into(),
                    "resolved".into(),
                    Some("1970-01-01T00:02:10Z".into())
                ),
                (
                    "b".into(),
                    "resolved".into(),
                    Some("1970-01-01T00:02:40Z".into())
                ),
            ]
        );
    }
}
