//! The API's routes: authentication, `/health`, `/metrics`, the JSON
//! endpoints, the dashboard and the `/api/events` stream, each reading the
//! published [`Snapshot`].

use std::{
    collections::BTreeMap,
    sync::{atomic::Ordering, Arc},
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

use super::{
    render_metrics, AlertEvent, AnomalyEvent, ApiState, CapacityEvent, CapacityState, SeriesPoint,
    Snapshot, MAX_EVENT_CLIENTS, POINTS_PER_SERIES, RECENT_ALERTS, RECENT_ANOMALIES,
};
use crate::status::Report;

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
    /// The selector of the `alert_overrides` entry it alerts with (null:
    /// the top-level settings).
    alert_override: Option<String>,
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
                alert_override: v.state.alert_override.clone(),
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
        include_str!("dashboard.html"),
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
