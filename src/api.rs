//! The monitor's HTTP API: `/health`, `/metrics` (Prometheus exposition
//! format) and a JSON API over the monitor's live state. The poll loop
//! publishes a [`Snapshot`] after every poll; handlers only read it.
//!
//! Built as `router(state)` so it is tested without a socket; served on its
//! own thread with a small tokio runtime, so the poll loop stays synchronous.
//!
//! Hostile clients are bounded: at most [`MAX_CONNECTIONS`] connections
//! (more are closed on accept), [`HEADER_TIMEOUT`] to send a request's
//! headers, which is also how long an idle keep-alive connection is kept,
//! and at most [`MAX_EVENT_CLIENTS`] `/api/events` streams (more get 503).
//! The token is compared in constant time and may come URL-encoded in
//! `?token=`.

use std::{
    collections::{BTreeMap, VecDeque},
    net::SocketAddr,
    sync::{atomic::Ordering, Arc, RwLock},
};

use axum::{
    extract::{Path, Query, Request, State},
    http::{header, StatusCode},
    middleware::{self, Next},
    response::{IntoResponse, Response},
    routing::get,
    Json, Router,
};
use serde::{Deserialize, Serialize};

mod metrics;
pub use self::metrics::render_metrics;

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

/// One error type for every handler; the body is JSON `{ "error": … }`.
#[derive(Debug)]
pub struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(serde_json::json!({ "error": self.1 }))).into_response()
    }
}

/// The router.
pub fn router(state: Arc<ApiState>) -> Router {
    let protected = Router::new()
        .route("/metrics", get(metrics))
        .route("/api/anomalies/recent", get(recent))
        .route("/api/alerts", get(alert_events))
        .route("/api/capacity", get(capacity))
        .route("/api/anomalies/summary", get(summary))
        .route("/api/status", get(status))
        .route("/api/series", get(series_list))
        .route("/api/series/{id}", get(series_one))
        .route("/api/events", get(events))
        .route("/", get(dashboard))
        .route_layer(middleware::from_fn_with_state(state.clone(), auth));
    Router::new()
        .route("/health", get(health))
        .merge(protected)
        .with_state(state)
}

async fn auth(State(s): State<Arc<ApiState>>, req: Request, next: Next) -> Response {
    if let Some(token) = s.token.as_ref().filter(|t| !t.is_empty()) {
        let want = token.expose().as_bytes();
        let header_ok = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.as_bytes().strip_prefix(b"Bearer "))
            .is_some_and(|v| same_bytes(v, want));
        // Browsers cannot set headers on EventSource or a typed-in URL: the
        // dashboard passes the token as `?token=`.
        let query_ok = req.uri().query().is_some_and(|q| {
            q.split('&')
                .filter_map(|kv| kv.strip_prefix("token="))
                .any(|v| same_bytes(&percent_decode(v), want))
        });
        if !(header_ok || query_ok) {
            return ApiError(StatusCode::UNAUTHORIZED, "bearer token required".into())
                .into_response();
        }
    }
    next.run(req).await
}

/// Compares two byte strings in time that depends on their lengths only.
fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Decodes `%XX` escapes (a `+` stays a `+`: tokens are not form text).
fn percent_decode(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        if b[i] == b'%' && i + 2 < b.len() {
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    out
}

fn read(s: &ApiState) -> std::sync::RwLockReadGuard<'_, Snapshot> {
    s.snapshot.read().unwrap_or_else(|e| e.into_inner())
}

#[derive(Serialize)]
struct Health {
    status: &'static str,
    source: String,
    prometheus_reachable: bool,
    sink: String,
    spool_depth: u64,
    ticks: u64,
    series: usize,
    shard: ShardHealth,
    warming_up: Vec<String>,
    short_history: Vec<String>,
    model_age_seconds: BTreeMap<String, Option<f64>>,
}

/// This replica's shard in `/health`.
#[derive(Serialize)]
struct ShardHealth {
    index: u32,
    count: u32,
    replication_factor: u32,
    series_owned: usize,
    series_other_shards: usize,
}

async fn health(State(s): State<Arc<ApiState>>) -> Json<Health> {
    let snap = read(&s);
    let r = &snap.report;
    let now = chrono::Utc::now().timestamp();
    Json(Health {
        status: "ok",
        source: r.source.clone(),
        prometheus_reachable: snap.prometheus_up,
        sink: r.sink.clone(),
        spool_depth: s.sink.spool_depth.load(Ordering::Relaxed),
        ticks: r.ticks,
        series: snap.series.len(),
        shard: ShardHealth {
            index: r.shard_index,
            count: r.shard_count.max(1),
            replication_factor: r.replication_factor.max(1),
            series_owned: snap.series.len(),
            series_other_shards: r.series_other_shards,
        },
        warming_up: snap
            .series
            .iter()
            .filter(|(_, v)| v.state.warming_up)
            .map(|(k, _)| k.clone())
            .collect(),
        short_history: snap
            .series
            .iter()
            .filter(|(_, v)| v.state.short_history)
            .map(|(k, _)| k.clone())
            .collect(),
        model_age_seconds: snap
            .series
            .iter()
            .map(|(k, v)| {
                (
                    k.clone(),
                    v.state.trained_at.map(|t| (now - t).max(0) as f64),
                )
            })
            .collect(),
    })
}

async fn metrics(State(s): State<Arc<ApiState>>) -> impl IntoResponse {
    let body = render_metrics(&read(&s), &s.sink);
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    )
}

#[derive(Deserialize)]
struct Limit {
    limit: Option<usize>,
}

async fn recent(State(s): State<Arc<ApiState>>, Query(q): Query<Limit>) -> Json<Vec<AnomalyEvent>> {
    let snap = read(&s);
    let n = q.limit.unwrap_or(50).min(RECENT_ANOMALIES);
    Json(snap.recent.iter().rev().take(n).cloned().collect())
}

/// The run's counters (polls, poll time, samples, models, series by state).
async fn status(State(s): State<Arc<ApiState>>) -> Json<Report> {
    Json(read(&s).report.clone())
}

/// The latest alert events (firing, resolved), newest first.
async fn alert_events(
    State(s): State<Arc<ApiState>>,
    Query(q): Query<Limit>,
) -> Json<Vec<AlertEvent>> {
    let snap = read(&s);
    let n = q.limit.unwrap_or(50).min(RECENT_ALERTS);
    Json(snap.alerts.iter().rev().take(n).cloned().collect())
}

/// A series with a capacity warning in force.
#[derive(Serialize)]
struct ActiveWarning {
    series: String,
    host: String,
    #[serde(flatten)]
    warning: CapacityState,
}

#[derive(Serialize)]
struct Capacity {
    /// Series with a warning in force, soonest crossing first.
    active: Vec<ActiveWarning>,
    /// Latest starts and ends, newest first.
    events: Vec<CapacityEvent>,
}

async fn capacity(State(s): State<Arc<ApiState>>, Query(q): Query<Limit>) -> Json<Capacity> {
    let snap = read(&s);
    let mut active: Vec<ActiveWarning> = snap
        .series
        .iter()
        .filter_map(|(id, v)| {
            v.state.capacity.map(|w| ActiveWarning {
                series: id.clone(),
                host: v.host.clone(),
                warning: w,
            })
        })
        .collect();
    active.sort_by_key(|a| a.warning.at + a.warning.crossing_in_seconds);
    let n = q.limit.unwrap_or(50).min(RECENT_ALERTS);
    Json(Capacity {
        active,
        events: snap.capacity_events.iter().rev().take(n).cloned().collect(),
    })
}

#[derive(Serialize)]
struct Summary {
    samples: u64,
    anomalies: u64,
    anomaly_rate: f64,
    alerts: u64,
    by_severity: BTreeMap<String, u64>,
}

async fn summary(State(s): State<Arc<ApiState>>) -> Json<Summary> {
    let snap = read(&s);
    let r = &snap.report;
    let anomalies: u64 = r.anomalies_by_severity.values().sum();
    let judged = r.samples.saturating_sub(r.warming_samples);
    Json(Summary {
        samples: r.samples,
        anomalies,
        anomaly_rate: if judged == 0 {
            0.0
        } else {
            anomalies as f64 / judged as f64
        },
        alerts: r.alerts,
        by_severity: r.anomalies_by_severity.clone(),
    })
}

#[derive(Serialize)]
struct SeriesInfo {
    id: String,
    host: String,
    points: usize,
    warming_up: bool,
    short_history: bool,
    latest: Option<SeriesPoint>,
    capacity_warning: Option<CapacityState>,
}

async fn series_list(State(s): State<Arc<ApiState>>) -> Json<Vec<SeriesInfo>> {
    let snap = read(&s);
    Json(
        snap.series
            .iter()
            .map(|(id, v)| SeriesInfo {
                id: id.clone(),
                host: v.host.clone(),
                points: v.len(),
                warming_up: v.state.warming_up,
                short_history: v.state.short_history,
                latest: v.latest(),
                capacity_warning: v.state.capacity,
            })
            .collect(),
    )
}

async fn series_one(
    State(s): State<Arc<ApiState>>,
    Path(id): Path<String>,
    Query(q): Query<Limit>,
) -> Result<Json<Vec<SeriesPoint>>, ApiError> {
    let snap = read(&s);
    let v = snap
        .series
        .get(&id)
        .ok_or_else(|| ApiError(StatusCode::NOT_FOUND, format!("no series {id:?}")))?;
    Ok(Json(v.last(q.limit.unwrap_or(POINTS_PER_SERIES))))
}

/// The live dashboard (one self-contained page, no external assets).
async fn dashboard() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        include_str!("api/dashboard.html"),
    )
}

/// Server-Sent Events: one `update` event per poll; at most
/// [`MAX_EVENT_CLIENTS`] at once.
async fn events(State(s): State<Arc<ApiState>>) -> Response {
    use axum::response::sse::{Event, KeepAlive, Sse};
    let Ok(place) = s.event_clients.clone().try_acquire_owned() else {
        return ApiError(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("{MAX_EVENT_CLIENTS} event streams are open already; try again later"),
        )
        .into_response();
    };
    let rx = s.events.subscribe();
    // The place is held as long as the stream lives.
    let stream = futures_util::stream::unfold((rx, place), |(mut rx, place)| async move {
        loop {
            match rx.recv().await {
                Ok(json) => {
                    let ev = Event::default().event("update").data(&*json);
                    return Some((Ok::<_, std::convert::Infallible>(ev), (rx, place)));
                }
                // A slow client skips updates rather than stalling the loop.
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
            }
        }
    });
    Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response()
}

/// Serves the API on `addr` from a background thread until the process
/// ends. Returns the bound address (port 0 picks a free one).
pub fn serve(addr: SocketAddr, state: Arc<ApiState>) -> std::io::Result<SocketAddr> {
    let listener = std::net::TcpListener::bind(addr)?;
    listener.set_nonblocking(true)?;
    let bound = listener.local_addr()?;
    std::thread::Builder::new()
        .name("api".into())
        .spawn(move || {
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    tracing::error!("API runtime: {e}");
                    return;
                }
            };
            rt.block_on(async move {
                match tokio::net::TcpListener::from_std(listener) {
                    Ok(l) => accept_loop(l, router(state)).await,
                    Err(e) => tracing::error!("API listener: {e}"),
                }
            });
        })?;
    Ok(bound)
}

/// Accepts connections up to [`MAX_CONNECTIONS`], each with
/// [`HEADER_TIMEOUT`].
async fn accept_loop(listener: tokio::net::TcpListener, app: Router) {
    use hyper_util::{
        rt::{TokioIo, TokioTimer},
        service::TowerToHyperService,
    };
    static REFUSED_LOG: crate::logfile::throttle::Throttle =
        crate::logfile::throttle::Throttle::new(std::time::Duration::from_secs(60));
    let cap = connection_cap();
    let places = Arc::new(tokio::sync::Semaphore::new(cap));
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of file descriptors, say: wait rather than spin.
                tracing::warn!("API: cannot accept a connection: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(place) = places.clone().try_acquire_owned() else {
            if let Some(held) = REFUSED_LOG.allow() {
                tracing::warn!(
                    "API: {cap} connections open: closing a new one{}",
                    crate::logfile::throttle::held_back(held)
                );
            }
            drop(stream);
            continue;
        };
        let service = TowerToHyperService::new(app.clone());
        tokio::spawn(async move {
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .serve_connection(TokioIo::new(stream), service);
            let _ = conn.await;
            drop(place);
        });
    }
}
