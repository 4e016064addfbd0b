//! The monitor's HTTP API: `/health`, `/metrics` (Prometheus exposition
//! format) and a JSON API over the monitor's live state. The poll loop
//! publishes a [`Snapshot`] after every poll; handlers only read it.
//!
//! Built as `router(state)` (`routes`) so it is tested without a socket;
//! served (`serve`) on its own thread with a small tokio runtime, so the poll
//! loop stays synchronous.
//!
//! Hostile clients are bounded: at most [`MAX_CONNECTIONS`] connections
//! (more are closed on accept), [`HEADER_TIMEOUT`] to send a request's
//! headers, which is also how long an idle keep-alive connection is kept,
//! and at most [`MAX_EVENT_CLIENTS`] `/api/events` streams (more get 503).
//! The token is compared in constant time and may come URL-encoded in
//! `?token=`.

use std::{
    collections::{BTreeMap, VecDeque},
    sync::{atomic::Ordering, Arc, RwLock},
};

use serde::Serialize;

mod metrics;
mod routes;
mod serve;
pub use self::{
    metrics::render_metrics,
    routes::{router, ApiError},
    serve::serve,
};

use crate::{secret::Secret, sink::SinkStats, status::Report};

/// Points kept per series for `/api/series/{id}` in a small fleet.
pub const POINTS_PER_SERIES: usize = 500;
/// Points kept per series however large the fleet.
pub const MIN_POINTS_PER_SERIES: usize = 60;
/// Points kept over all series: a large fleet keeps fewer per series (32
/// bytes each: 32 MB at most, 3.2 KB per host at 10,000 hosts).
pub const POINT_BUDGET: usize = 1_000_000;
/// Anomalies kept for `/api/anomalies/recent`.
pub const RECENT_ANOMALIES: usize = 1000;
/// Alert events kept for `/api/alerts`.
pub const RECENT_ALERTS: usize = 1000;

/// An alert that fired or resolved.
#[derive(Debug, Clone, Serialize)]
pub struct AlertEvent {
    /// `firing` or `resolved`.
    pub event: &'static str,
    /// Series id.
    pub series: String,
    /// Host tag.
    pub host: String,
    /// The sample it happened with.
    #[serde(flatten)]
    pub point: SeriesPoint,
}

/// One judged sample of a series.
#[derive(Debug, Clone, Serialize)]
pub struct SeriesPoint {
    /// Unix seconds.
    pub timestamp: i64,
    /// Actual value, percent.
    pub actual: f64,
    /// Forecast (absent while warming up).
    pub yhat: Option<f64>,
    /// Band, lower edge.
    pub yhat_lower: Option<f64>,
    /// Band, upper edge.
    pub yhat_upper: Option<f64>,
    /// Score (1 = scaled band edge).
    pub score: Option<f64>,
    /// Outside the scaled band.
    pub is_anomaly: bool,
    /// Severity name.
    pub severity: Option<&'static str>,
}

/// One flagged sample.
#[derive(Debug, Clone, Serialize)]
pub struct AnomalyEvent {
    /// Series id.
    pub series: String,
    /// Host tag.
    pub host: String,
    /// Point.
    #[serde(flatten)]
    pub point: SeriesPoint,
    /// An alert was raised with it.
    pub alert: bool,
}

/// A point as kept in memory (NaN for absent values).
#[derive(Debug, Clone, Copy)]
struct StoredPoint {
    timestamp: i64,
    actual: f32,
    yhat: f32,
    lower: f32,
    upper: f32,
    score: f32,
    is_anomaly: bool,
    alert: bool,
    severity: Option<crate::detect::Severity>,
}

fn opt(v: f32) -> Option<f64> {
    (!v.is_nan()).then(|| f64::from(v))
}

impl StoredPoint {
    fn new(p: &SeriesPoint, alert: bool) -> Self {
        let f = |v: Option<f64>| v.map_or(f32::NAN, |x| x as f32);
        StoredPoint {
            timestamp: p.timestamp,
            actual: p.actual as f32,
            yhat: f(p.yhat),
            lower: f(p.yhat_lower),
            upper: f(p.yhat_upper),
            score: f(p.score),
            is_anomaly: p.is_anomaly,
            alert,
            severity: p.severity.and_then(crate::detect::Severity::parse),
        }
    }
}

impl From<&StoredPoint> for SeriesPoint {
    fn from(p: &StoredPoint) -> Self {
        SeriesPoint {
            timestamp: p.timestamp,
            actual: f64::from(p.actual),
            yhat: opt(p.yhat),
            yhat_lower: opt(p.lower),
            yhat_upper: opt(p.upper),
            score: opt(p.score),
            is_anomaly: p.is_anomaly,
            severity: p.severity.map(|s| s.as_str()),
        }
    }
}

/// What the monitor knows of a series' model, published with its points.
#[derive(Debug, Clone, Default)]
pub struct SeriesState {
    /// No model yet: nothing is flagged.
    pub warming_up: bool,
    /// Judged by a short-history model.
    pub short_history: bool,
    /// When its model was made (Unix seconds).
    pub trained_at: Option<i64>,
    /// The capacity warning in force (`None`: none).
    pub capacity: Option<CapacityState>,
    /// The selector of the `alert_overrides` entry the series alerts with
    /// (`None`: the top-level settings).
    pub alert_override: Option<String>,
}

/// A capacity warning in force.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct CapacityState {
    /// Seconds from the sample at `at` to the predicted crossing.
    pub crossing_in_seconds: i64,
    /// The threshold, percent.
    pub threshold: f64,
    /// The value predicted at the crossing.
    pub predicted_value: f64,
    /// The sample the prediction was made at (Unix seconds).
    pub at: i64,
}

/// A capacity warning that started or cleared.
#[derive(Debug, Clone, Serialize)]
pub struct CapacityEvent {
    /// `capacity_warning` or `capacity_cleared`.
    pub event: &'static str,
    /// Series id.
    pub series: String,
    /// Host tag.
    pub host: String,
    /// Unix seconds.
    pub timestamp: i64,
    /// Actual value, percent.
    pub actual: f64,
    /// The prediction (at a start).
    #[serde(skip_serializing_if = "Option::is_none", flatten)]
    pub warning: Option<CapacityState>,
}

/// Live gauges of one series.
#[derive(Debug, Clone, Default)]
pub struct SeriesLive {
    /// Host tag.
    pub host: String,
    /// Model state.
    pub state: SeriesState,
    points: VecDeque<StoredPoint>,
}

impl SeriesLive {
    /// Points kept.
    pub fn len(&self) -> usize {
        self.points.len()
    }

    /// Whether no point is kept.
    pub fn is_empty(&self) -> bool {
        self.points.is_empty()
    }

    /// The latest point.
    pub fn latest(&self) -> Option<SeriesPoint> {
        self.points.back().map(SeriesPoint::from)
    }

    /// Whether an alert is firing (as of the latest point).
    pub fn alert_firing(&self) -> bool {
        self.points.back().is_some_and(|p| p.alert)
    }

    /// The last `n` points, oldest first.
    pub fn last(&self, n: usize) -> Vec<SeriesPoint> {
        let skip = self.points.len().saturating_sub(n);
        self.points
            .iter()
            .skip(skip)
            .map(SeriesPoint::from)
            .collect()
    }
}

/// What the poll loop publishes.
#[derive(Debug, Default)]
pub struct Snapshot {
    /// The run's report.
    pub report: Report,
    /// Prometheus answered the last poll.
    pub prometheus_up: bool,
    /// Latest flagged samples, oldest first.
    pub recent: VecDeque<AnomalyEvent>,
    /// Latest alert events, oldest first.
    pub alerts: VecDeque<AlertEvent>,
    /// Latest capacity warning starts and ends, oldest first.
    pub capacity_events: VecDeque<CapacityEvent>,
    /// Per-series points.
    pub series: BTreeMap<String, SeriesLive>,
}

impl Snapshot {
    /// Points kept per series for the current number of series.
    pub fn points_per_series(&self) -> usize {
        (POINT_BUDGET / self.series.len().max(1)).clamp(MIN_POINTS_PER_SERIES, POINTS_PER_SERIES)
    }

    /// Records a judged sample.
    pub fn push_point(&mut self, id: &str, host: &str, p: SeriesPoint, alert: bool) {
        if p.is_anomaly {
            if self.recent.len() == RECENT_ANOMALIES {
                self.recent.pop_front();
            }
            self.recent.push_back(AnomalyEvent {
                series: id.to_string(),
                host: host.to_string(),
                point: p.clone(),
                alert,
            });
        }
        let cap = self.points_per_series();
        let s = match self.series.get_mut(id) {
            Some(s) => s,
            None => self.series.entry(id.to_string()).or_default(),
        };
        if s.host != host {
            s.host = host.to_string();
        }
        while s.points.len() >= cap {
            s.points.pop_front();
        }
        s.points.push_back(StoredPoint::new(&p, alert));
    }
}

/// One judged sample as the monitor publishes it.
#[derive(Debug, Clone)]
pub struct Published {
    /// Series id.
    pub series: String,
    /// Host tag.
    pub host: String,
    /// The point.
    pub point: SeriesPoint,
    /// An alert is firing (the state).
    pub alert: bool,
    /// An alert fired with it.
    pub onset: bool,
    /// The alert resolved with it.
    pub resolved: bool,
    /// The series' model state.
    pub state: SeriesState,
    /// `capacity_warning` or `capacity_cleared` when a capacity warning
    /// started or cleared with it.
    pub capacity_change: Option<&'static str>,
}

/// Shared state of the API.
#[derive(Debug)]
pub struct ApiState {
    /// The latest snapshot.
    pub snapshot: RwLock<Snapshot>,
    /// Sink counters.
    pub sink: Arc<SinkStats>,
    /// Bearer token required on every route but `/health` (when set).
    pub token: Option<Secret>,
    /// One JSON [`Update`] per poll, for `/api/events`.
    pub events: tokio::sync::broadcast::Sender<Arc<str>>,
    /// Places for `/api/events` streams.
    event_clients: Arc<tokio::sync::Semaphore>,
}

/// Connections served at once; more are closed as they are accepted. Never
/// more than a quarter of the process's file-descriptor limit, so clients
/// cannot starve the monitor's own files.
pub const MAX_CONNECTIONS: usize = 256;

/// [`MAX_CONNECTIONS`], or a quarter of the open-files limit if lower.
fn connection_cap() -> usize {
    let soft = std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("Max open files"))
                .and_then(|l| l.split_whitespace().nth(3).map(str::to_string))
        })
        .and_then(|v| v.parse::<usize>().ok());
    soft.map_or(MAX_CONNECTIONS, |n| (n / 4).clamp(8, MAX_CONNECTIONS))
}
/// `/api/events` streams at once; more are answered 503.
pub const MAX_EVENT_CLIENTS: usize = 64;
/// Time a client has to send a request's headers, and the longest an idle
/// keep-alive connection is kept.
pub const HEADER_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// What `/api/events` pushes after every poll.
#[derive(Debug, Serialize)]
pub struct Update<'a> {
    /// Polls done.
    pub ticks: u64,
    /// `prometheus` or `simulation`.
    pub source: &'a str,
    /// Sink description.
    pub sink: &'a str,
    /// Batches in the spool.
    pub spool_depth: u64,
    /// Points written by the sink.
    pub points_written: u64,
    /// Series still warming up.
    pub warming_up: usize,
    /// This poll's points.
    pub points: Vec<AnomalyEvent>,
    /// This poll's alert events.
    pub alerts: Vec<AlertEvent>,
    /// This poll's capacity warning starts and ends.
    pub capacity: Vec<CapacityEvent>,
    /// Series dropped this poll.
    pub dropped: &'a [String],
}

impl ApiState {
    /// Empty state.
    pub fn new(sink: Arc<SinkStats>, token: Option<Secret>) -> ApiState {
        ApiState {
            snapshot: RwLock::new(Snapshot::default()),
            sink,
            token,
            events: tokio::sync::broadcast::channel(64).0,
            event_clients: Arc::new(tokio::sync::Semaphore::new(MAX_EVENT_CLIENTS)),
        }
    }

    /// Publishes one poll: updates the snapshot and pushes an [`Update`] to
    /// every `/api/events` listener.
    pub fn publish(
        &self,
        points: Vec<Published>,
        dropped: &[String],
        prometheus_up: bool,
        report: &Report,
        warming_up: usize,
    ) {
        let update = {
            let mut snap = self.snapshot.write().unwrap_or_else(|e| e.into_inner());
            let mut alerts = Vec::new();
            let mut capacity = Vec::new();
            for p in &points {
                if let Some(event) = p.capacity_change {
                    capacity.push(CapacityEvent {
                        event,
                        series: p.series.clone(),
                        host: p.host.clone(),
                        timestamp: p.point.timestamp,
                        actual: p.point.actual,
                        warning: p.state.capacity,
                    });
                }
                for (happened, event) in [(p.onset, "firing"), (p.resolved, "resolved")] {
                    if happened {
                        alerts.push(AlertEvent {
                            event,
                            series: p.series.clone(),
                            host: p.host.clone(),
                            point: p.point.clone(),
                        });
                    }
                }
                snap.push_point(&p.series, &p.host, p.point.clone(), p.alert);
                if let Some(s) = snap.series.get_mut(&*p.series) {
                    s.state = p.state.clone();
                }
            }
            for id in dropped {
                snap.series.remove(id);
            }
            for a in &alerts {
                if snap.alerts.len() == RECENT_ALERTS {
                    snap.alerts.pop_front();
                }
                snap.alerts.push_back(a.clone());
            }
            for c in &capacity {
                if snap.capacity_events.len() == RECENT_ALERTS {
                    snap.capacity_events.pop_front();
                }
                snap.capacity_events.push_back(c.clone());
            }
            snap.prometheus_up = prometheus_up;
            snap.report = report.clone();
            Update {
                ticks: report.ticks,
                source: &report.source,
                sink: &report.sink,
                spool_depth: self.sink.spool_depth.load(Ordering::Relaxed),
                points_written: self.sink.points_written.load(Ordering::Relaxed),
                warming_up,
                points: points
                    .into_iter()
                    .map(|p| AnomalyEvent {
                        series: p.series,
                        host: p.host,
                        point: p.point,
                        alert: p.alert,
                    })
                    .collect(),
                alerts,
                capacity,
                dropped,
            }
        };
        if self.events.receiver_count() > 0 {
            if let Ok(json) = serde_json::to_string(&update) {
                let _ = self.events.send(json.into());
            }
        }
    }
}
