//! Alert routing: alert onsets and resolutions sent where SREs route alerts.
//!
//! - **Alertmanager** (`alertmanager_url`, its v2 API `POST /api/v2/alerts`):
//!   after every poll, every firing alert is posted again with `endsAt`
//!   moved [`NotifySettings::expire_after`] ahead, so a monitor that dies
//!   stops refreshing and its alerts expire; a resolution is posted with
//!   `endsAt` at the resolving sample and retried until Alertmanager takes
//!   it. Labels: `alertname` (`CpuAnomaly`), `host`, `series`, `severity`
//!   (at onset); annotations: summary, value, forecast, band, score and a
//!   dashboard link.
//! - **Webhook** (`webhook_url`): one JSON POST per onset and per
//!   resolution ([`WebhookEvent`]), for a bare machine without Alertmanager.
//!
//! Both run on one thread behind a bounded queue; a request is retried
//! three times with backoff; what still fails is logged (at most once a
//! minute) and counted, and the poll loop never waits for it.

use std::{
    collections::BTreeMap,
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        mpsc, Arc,
    },
    thread,
    time::Duration,
};

use serde::Serialize;

use crate::logfile::throttle::{held_back, Throttle};

/// Alert routing settings (empty URLs: off).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NotifySettings {
    /// Alertmanager base URL (`http://alertmanager:9093`).
    pub alertmanager_url: String,
    /// Webhook URL: one JSON POST per alert event.
    pub webhook_url: String,
    /// Link put in every alert (the Grafana dashboard, or the built-in one).
    pub dashboard_url: String,
    /// How far ahead a firing alert's `endsAt` is set on each refresh.
    pub expire_after: Duration,
    /// Per-request timeout.
    pub timeout: Duration,
}

impl NotifySettings {
    /// Whether anything is configured.
    pub fn enabled(&self) -> bool {
        !self.alertmanager_url.is_empty() || !self.webhook_url.is_empty()
    }
}

/// One alert: what fired, on which series, with the sample that made it.
#[derive(Debug, Clone, PartialEq)]
pub struct Alert {
    /// Series id.
    pub series: String,
    /// Host tag.
    pub host: String,
    /// Severity at onset (`LOW` … `CRITICAL`).
    pub severity: String,
    /// Value of the latest sample (percent).
    pub value: f64,
    /// Forecast.
    pub yhat: f64,
    /// Scaled band, lower edge.
    pub lower: f64,
    /// Scaled band, upper edge.
    pub upper: f64,
    /// Score (1 = band edge).
    pub score: f64,
    /// Onset, Unix seconds.
    pub started: i64,
    /// Resolution, Unix seconds (`None` while firing).
    pub resolved: Option<i64>,
    /// A capacity warning (`None`: an anomaly alert).
    pub capacity: Option<CapacityAlert>,
}

/// What a capacity warning predicts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CapacityAlert {
    /// Seconds from the latest sample to the predicted crossing.
    pub crossing_in_seconds: i64,
    /// The threshold (percent).
    pub threshold: f64,
    /// The predicted value at the crossing.
    pub predicted: f64,
}

/// The body of a webhook POST.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct WebhookEvent {
    /// `firing` or `resolved`.
    pub event: &'static str,
    /// Series id.
    pub series: String,
    /// Host.
    pub host: String,
    /// Severity at onset.
    pub severity: String,
    /// Sample value.
    pub value: f64,
    /// Forecast.
    pub forecast: f64,
    /// Scaled band, lower edge.
    pub lower: f64,
    /// Scaled band, upper edge.
    pub upper: f64,
    /// Score.
    pub score: f64,
    /// Onset, RFC 3339.
    pub started_at: String,
    /// Resolution, RFC 3339 (resolved events).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resolved_at: Option<String>,
    /// Dashboard link.
    pub dashboard: String,
    /// `anomaly` or `capacity` (a predicted crossing of `threshold`).
    pub kind: &'static str,
    /// Capacity warnings: seconds to the predicted crossing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub crossing_in_seconds: Option<i64>,
    /// Capacity warnings: the threshold, percent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub threshold: Option<f64>,
}

/// Counters (for `/metrics`).
#[derive(Debug, Default)]
pub struct NotifyStats {
    /// Requests Alertmanager accepted.
    pub alertmanager_posts: AtomicU64,
    /// Webhook events delivered.
    pub webhook_events: AtomicU64,
    /// Requests that failed after their retries.
    pub failures: AtomicU64,
}

/// Alertmanager's `postableAlert`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Postable {
    labels: BTreeMap<&'static str, String>,
    annotations: BTreeMap<&'static str, String>,
    starts_at: String,
    ends_at: String,
    #[serde(rename = "generatorURL", skip_serializing_if = "String::is_empty")]
    generator_url: String,
}

/// Alert name in Alertmanager.
pub const ALERT_NAME: &str = "CpuAnomaly";
/// Alert name of capacity warnings in Alertmanager.
pub const CAPACITY_ALERT_NAME: &str = "CpuCapacityWarning";
/// Resolutions kept for redelivery while Alertmanager is unreachable.
const MAX_PENDING: usize = 10_000;
/// Polls queued for the notifier thread at most.
const QUEUE: usize = 64;

fn rfc3339(ts: i64) -> String {
    chrono::DateTime::from_timestamp(ts, 0)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// The Alertmanager form of an alert; `now` sets a firing alert's expiry.
fn postable(a: &Alert, s: &NotifySettings, now: i64) -> Postable {
    let ends = a
        .resolved
        .unwrap_or(now + s.expire_after.as_secs().max(1) as i64);
    if let Some(c) = &a.capacity {
        return Postable {
            labels: BTreeMap::from([
                ("alertname", CAPACITY_ALERT_NAME.to_string()),
                ("host", a.host.clone()),
                ("series", a.series.clone()),
                ("severity", "warning".to_string()),
            ]),
            annotations: BTreeMap::from([
                (
                    "summary",
                    format!(
                        "CPU of {} at {:.1} %, predicted to reach {:.0} % in {}",
                        a.host,
                        a.value,
                        c.threshold,
                        crate::detect::capacity::human_duration(c.crossing_in_seconds)
                    ),
                ),
                ("value", format!("{:.2}", a.value)),
                ("threshold", format!("{:.2}", c.threshold)),
                ("predicted_value", format!("{:.2}", c.predicted)),
                ("crossing_in_seconds", c.crossing_in_seconds.to_string()),
                ("dashboard", s.dashboard_url.clone()),
            ]),
            starts_at: rfc3339(a.started),
            ends_at: rfc3339(ends),
            generator_url: s.dashboard_url.clone(),
        };
    }
    let direction = if a.value >= a.yhat { "above" } else { "below" };
    Postable {
        labels: BTreeMap::from([
            ("alertname", ALERT_NAME.to_string()),
            ("host", a.host.clone()),
            ("series", a.series.clone()),
            ("severity", a.severity.to_lowercase()),
        ]),
        annotations: BTreeMap::from([
            (
                "summary",
                format!(
                    "CPU of {} at {:.1} %, {direction} its forecast {:.1} % (band {:.1}–{:.1} %)",
                    a.host, a.value, a.yhat, a.lower, a.upper
                ),
            ),
            ("value", format!("{:.2}", a.value)),
            ("forecast", format!("{:.2}", a.yhat)),
            ("band", format!("{:.2}–{:.2}", a.lower, a.upper)),
            ("score", format!("{:.2}", a.score)),
            ("dashboard", s.dashboard_url.clone()),
        ]),
        starts_at: rfc3339(a.started),
        ends_at: rfc3339(ends),
        generator_url: s.dashboard_url.clone(),
    }
}

fn webhook_event(a: &Alert, s: &NotifySettings) -> WebhookEvent {
    WebhookEvent {
        event: if a.resolved.is_some() {
            "resolved"
        } else {
            "firing"
        },
        series: a.series.clone(),
        host: a.host.clone(),
        severity: a.severity.clone(),
        value: a.value,
        forecast: a.yhat,
        lower: a.lower,
        upper: a.upper,
        score: a.score,
        started_at: rfc3339(a.started),
        resolved_at: a.resolved.map(rfc3339),
        dashboard: s.dashboard_url.clone(),
        kind: if a.capacity.is_some() {
            "capacity"
        } else {
            "anomaly"
        },
        crossing_in_seconds: a.capacity.map(|c| c.crossing_in_seconds),
        threshold: a.capacity.map(|c| c.threshold),
    }
}

struct Poll {
    now: i64,
    firing: Vec<Alert>,
    events: Vec<Alert>,
}

/// Handle to the notifier thread.
pub struct Notifier {
    tx: Option<mpsc::SyncSender<Poll>>,
    join: Option<thread::JoinHandle<()>>,
    stopping: Arc<AtomicBool>,
    finished: Option<mpsc::Receiver<()>>,
    /// Counters.
    pub stats: Arc<NotifyStats>,
}

static FAIL_LOG: Throttle = Throttle::new(Duration::from_secs(60));
static QUEUE_LOG: Throttle = Throttle::new(Duration::from_secs(60));

impl Notifier {
    /// Starts the thread (`None` when nothing is configured).
    pub fn spawn(settings: NotifySettings) -> Option<Notifier> {
        if !settings.enabled() {
            return None;
        }
        let stats = Arc::new(NotifyStats::default());
        let (tx, rx) = mpsc::sync_channel::<Poll>(QUEUE);
        let st = stats.clone();
        let stopping = Arc::new(AtomicBool::new(false));
        let stop = stopping.clone();
        let (done_tx, done_rx) = mpsc::channel();
        let join = thread::Builder::new()
            .name("notify".into())
            .spawn(move || {
                run(settings, rx, &st, &stop);
                let _ = done_tx.send(());
            })
            .ok()?;
        Some(Notifier {
            tx: Some(tx),
            join: Some(join),
            stopping,
            finished: Some(done_rx),
            stats,
        })
    }

    /// After a poll: every alert firing now, and this poll's onsets and
    /// resolutions. Never blocks.
    pub fn poll(&self, now: i64, firing: Vec<Alert>, events: Vec<Alert>) {
        let Some(tx) = &self.tx else { return };
        if tx
            .try_send(Poll {
                now,
                firing,
                events,
            })
            .is_err()
        {
            if let Some(held) = QUEUE_LOG.allow() {
                tracing::error!(
                    "alert notifications are {QUEUE} polls behind: this poll's were dropped{}",
                    held_back(held)
                );
            }
        }
    }

    /// Delivers what is queued (one try per request) and stops, waiting
    /// at most [`CLOSE_WAIT`].
    pub fn close(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.stopping.store(true, Ordering::SeqCst);
        if self.tx.take().is_none() {
            return;
        }
        let waited = self.finished.take().map(|f| f.recv_timeout(CLOSE_WAIT));
        if let Some(Err(mpsc::RecvTimeoutError::Timeout)) = waited {
            tracing::warn!(
                "alert notifications still being delivered after {} s: left undelivered",
                CLOSE_WAIT.as_secs()
            );
        } else if let Some(j) = self.join.take() {
            let _ = j.join();
        }
    }
}

/// How long [`Notifier::close`] waits.
pub const CLOSE_WAIT: Duration = Duration::from_secs(2);

impl Drop for Notifier {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn run(s: NotifySettings, rx: mpsc::Receiver<Poll>, stats: &NotifyStats, stop: &AtomicBool) {
    let http = reqwest::blocking::Client::builder()
        .timeout(s.timeout)
        .no_proxy()
        .build()
        .unwrap_or_default();
    let am = (!s.alertmanager_url.is_empty())
        .then(|| format!("{}/api/v2/alerts", s.alertmanager_url.trim_end_matches('/')));
    // Resolutions Alertmanager has not taken yet.
    let mut pending: Vec<Alert> = Vec::new();
    while let Ok(poll) = rx.recv() {
        let closing = stop.load(Ordering::Relaxed);
        if let Some(url) = &am {
            pending.extend(poll.events.iter().filter(|a| a.resolved.is_some()).cloned());
            if pending.len() > MAX_PENDING {
                let cut = pending.len() - MAX_PENDING;
                pending.drain(..cut);
            }
            let body: Vec<Postable> = poll
                .firing
                .iter()
                .chain(&pending)
                .map(|a| postable(a, &s, poll.now))
                .collect();
            if !body.is_empty() {
                match post(&http, url, &body, closing) {
                    Ok(()) => {
                        stats.alertmanager_posts.fetch_add(1, Ordering::Relaxed);
                        pending.clear();
                    }
                    Err(e) => failed(stats, &format!("Alertmanager {url}: {e}")),
                }
            }
        }
        if !s.webhook_url.is_empty() {
            for a in &poll.events {
                match post(&http, &s.webhook_url, &webhook_event(a, &s), closing) {
                    Ok(()) => {
                        stats.webhook_events.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => failed(stats, &format!("webhook {}: {e}", s.webhook_url)),
                }
            }
        }
    }
}

fn failed(stats: &NotifyStats, why: &str) {
    stats.failures.fetch_add(1, Ordering::Relaxed);
    if let Some(held) = FAIL_LOG.allow() {
        tracing::error!(
            "cannot deliver alert notifications: {why}{}",
            held_back(held)
        );
    }
}

/// POSTs `body` as JSON: three tries, 1 s then 2 s apart (one try when
/// closing).
fn post(
    http: &reqwest::blocking::Client,
    url: &str,
    body: &impl Serialize,
    closing: bool,
) -> Result<(), String> {
    let tries = if closing { 1 } else { 3 };
    let body = serde_json::to_vec(body).map_err(|e| e.to_string())?;
    let mut last = String::new();
    for k in 0..tries {
        if k > 0 {
            thread::sleep(Duration::from_secs(1 << (k - 1)));
        }
        let req = http
            .post(url)
            .header("Content-Type", "application/json")
            .body(body.clone());
        match req.send() {
            Ok(r) if r.status().is_success() => return Ok(()),
            Ok(r) => {
                let status = r.status().as_u16();
                last = format!(
                    "HTTP {status}: {}",
                    r.text()
                        .unwrap_or_default()
                        .trim()
                        .chars()
                        .take(300)
                        .collect::<String>()
                );
                if (400..500).contains(&status) && status != 408 && status != 429 {
                    break;
                }
            }
            Err(e) => last = e.without_url().to_string(),
        }
    }
    Err(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alert(resolved: Option<i64>) -> Alert {
        Alert {
            series: "{instance=\"web-1:9100\"}".into(),
            host: "web-1:9100".into(),
            severity: "HIGH".into(),
            value: 97.0,
            yhat: 40.0,
            lower: 30.0,
            upper: 50.0,
            score: 3.1,
            started: 1_750_000_000,
            resolved,
            capacity: None,
        }
    }

    #[test]
    fn firing_alerts_expire_unless_refreshed_and_resolutions_end_at_the_sample() {
        let s = NotifySettings {
            alertmanager_url: "http://am:9093".into(),
            dashboard_url: "http://grafana:3000/d/cpu".into(),
            expire_after: Duration::from_secs(300),
            ..NotifySettings::default()
        };
        let v = serde_json::to_value(postable(&alert(None), &s, 1_750_000_600)).unwrap();
        assert_eq!(v["labels"]["alertname"], "CpuAnomaly");
        assert_eq!(v["labels"]["severity"], "high");
        assert_eq!(v["labels"]["host"], "web-1:9100");
        assert_eq!(v["startsAt"], "2025-06-15T15:06:40Z");
        assert_eq!(v["endsAt"], "2025-06-15T15:21:40Z");
        assert_eq!(v["annotations"]["value"], "97.00");
        assert_eq!(v["annotations"]["band"], "30.00–50.00");
        assert_eq!(v["generatorURL"], "http://grafana:3000/d/cpu");
        let v =
            serde_json::to_value(postable(&alert(Some(1_750_000_900)), &s, 1_750_001_000)).unwrap();
        assert_eq!(v["endsAt"], "2025-06-15T15:21:40Z");
        let w = serde_json::to_value(webhook_event(&alert(Some(1_750_000_900)), &s)).unwrap();
        assert_eq!(w["event"], "resolved");
        assert_eq!(w["resolved_at"], "2025-06-15T15:21:40Z");
    }
}
