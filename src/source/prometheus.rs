//! Prometheus HTTP API client (reqwest on tokio): instant queries for the
//! poll, range queries for history, with a per-request timeout and retries
//! (connect errors, 429 and 5xx; a 4xx such as bad PromQL is final and
//! carries Prometheus's own message). Replies are parsed as a stream
//! ([`reply`]), so a range query of any size is read in bounded memory.
//! Works with anything that speaks the API (Prometheus, VictoriaMetrics,
//! Thanos, Mimir).

pub mod history;
pub mod reply;

use std::{
    collections::BTreeMap,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::Duration,
};

use futures_util::TryStreamExt;
use thiserror::Error;

use self::reply::{Envelope, ResultSink};
use crate::logfile::throttle::{self, Throttle};

/// Prometheus source settings.
#[derive(Debug, Clone)]
pub struct PrometheusSettings {
    /// Base URL of the Prometheus HTTP API.
    pub url: String,
    /// Per-request timeout (instant queries).
    pub timeout: Duration,
    /// Retries per request.
    pub retries: u32,
    /// PromQL whose every returned series is monitored.
    pub query: String,
    /// History fetched with `query_range` to train a series.
    pub history: Duration,
    /// Resolution of that history (the `step` of the range queries).
    pub training_step: Duration,
}

/// Timeout of one range-query window: replies are up to a few MB and the
/// server may evaluate the query over days for thousands of series.
pub const RANGE_TIMEOUT_MIN: Duration = Duration::from_secs(60);
/// Longest error body kept for a message.
const ERROR_BODY_MAX: usize = 64 * 1024;

/// Errors talking to Prometheus.
#[derive(Debug, Error)]
pub enum PromError {
    /// No answer (connection refused, timeout, DNS, reply cut off).
    #[error("Prometheus at {url} is unreachable: {reason}")]
    Unreachable {
        /// Base URL.
        url: String,
        /// Transport error.
        reason: String,
    },
    /// Prometheus answered with an error (bad PromQL, timeout, …).
    #[error("Prometheus refused the query {query:?}: {error_type}: {message} (HTTP {status})")]
    Query {
        /// The PromQL.
        query: String,
        /// HTTP status.
        status: u16,
        /// Prometheus `errorType` (or `http`).
        error_type: String,
        /// Prometheus `error` text (or the body).
        message: String,
    },
    /// A reply that is not what the API documents.
    #[error("malformed reply from Prometheus for {query:?}: {what}")]
    Malformed {
        /// The PromQL.
        query: String,
        /// What was wrong.
        what: String,
    },
}

impl PromError {
    /// Whether the server could not be reached at all (as opposed to
    /// answering with an error): worth retrying later.
    pub fn is_unreachable(&self) -> bool {
        matches!(self, PromError::Unreachable { .. })
            || matches!(self, PromError::Query { status, .. } if *status >= 500 || *status == 429)
    }
}

/// The labels of one series.
pub type Labels = BTreeMap<String, String>;

/// One series of an instant query.
#[derive(Debug, Clone, PartialEq)]
pub struct Instant {
    /// Labels.
    pub labels: Labels,
    /// Unix seconds.
    pub timestamp: i64,
    /// Value (NaN and ±Inf are dropped).
    pub value: f64,
}

/// Collects an instant query's result.
#[derive(Default)]
struct Instants {
    out: Vec<Instant>,
    labels: Option<Labels>,
}

impl ResultSink for Instants {
    fn series(&mut self, labels: Labels) -> bool {
        self.labels = Some(labels);
        true
    }
    fn point(&mut self, t: f64, v: f64) {
        if let Some(labels) = self.labels.take() {
            self.out.push(Instant {
                labels,
                timestamp: t.floor() as i64,
                value: v,
            });
        }
    }
}

/// A client for one Prometheus server. Cheap to clone (one connection pool).
#[derive(Debug, Clone)]
pub struct Client {
    base: String,
    http: reqwest::Client,
    retries: u32,
    timeout: Duration,
    /// Bytes of range-query replies read (shared by clones).
    range_bytes: Arc<AtomicU64>,
    /// Implausible points dropped (shared by clones).
    rejected: Arc<AtomicU64>,
}

/// Logs dropped implausible points at most once a minute.
static REJECT_LOG: Throttle = Throttle::new(Duration::from_secs(60));

impl Client {
    /// A client from settings.
    pub fn new(s: &PrometheusSettings) -> Client {
        Client {
            base: s.url.trim_end_matches('/').to_string(),
            // A builder only fails without a TLS backend or resolver, which
            // this build always has; fall back to the default client anyway.
            // Proxy variables are ignored (as the previous client did):
            // Prometheus is normally reached directly, and a stray
            // HTTP_PROXY must not reroute loopback traffic.
            http: reqwest::Client::builder()
                .connect_timeout(s.timeout)
                .no_proxy()
                .build()
                .unwrap_or_default(),
            retries: s.retries,
            timeout: s.timeout,
            range_bytes: Arc::default(),
            rejected: Arc::default(),
        }
    }

    /// Points dropped as implausible (a timestamp outside 2000–2100, a
    /// value beyond ±10⁶) so far, by this client and its clones.
    pub fn samples_rejected(&self) -> u64 {
        self.rejected.load(Ordering::Relaxed)
    }

    fn count_rejected(&self, promql: &str, env: &Envelope) {
        if env.rejected == 0 {
            return;
        }
        self.rejected.fetch_add(env.rejected, Ordering::Relaxed);
        if let Some(held) = REJECT_LOG.allow() {
            tracing::warn!(
                "{} dropped {} points that no CPU series can hold (timestamps outside \
                 2000-2100 or values beyond ±1e6){}",
                promql,
                env.rejected,
                throttle::held_back(held)
            );
        }
    }

    /// Bytes of range-query (history) replies read so far, by this client
    /// and its clones.
    pub fn range_bytes(&self) -> u64 {
        self.range_bytes.load(Ordering::Relaxed)
    }

    /// The same client with another retry count (0: one attempt).
    pub fn with_retries(&self, retries: u32) -> Client {
        Client {
            retries,
            ..self.clone()
        }
    }

    /// Base URL.
    pub fn url(&self) -> &str {
        &self.base
    }

    fn unreachable(&self, e: impl std::fmt::Display) -> PromError {
        PromError::Unreachable {
            url: self.base.clone(),
            reason: e.to_string(),
        }
    }

    /// POSTs a form (PromQL can be long: no URL limit) with retries on
    /// connect errors, 429 and 5xx; returns a 2xx response or the error.
    async fn post(
        &self,
        path: &str,
        query: &str,
        form: &[(&str, String)],
        timeout: Duration,
    ) -> Result<reqwest::Response, PromError> {
        let url = format!("{}{path}", self.base);
        let mut fields: Vec<(&str, &str)> = vec![("query", query)];
        fields.extend(form.iter().map(|(k, v)| (*k, v.as_str())));
        let mut attempt = 0;
        loop {
            let res = self
                .http
                .post(&url)
                .timeout(timeout)
                .form(&fields)
                .send()
                .await;
            let err = match res {
                Ok(r) if r.status().is_success() => return Ok(r),
                Ok(r) => error_reply(query, r).await,
                Err(e) => self.unreachable(without_url(e)),
            };
            if !err.is_unreachable() || attempt >= self.retries {
                return Err(err);
            }
            attempt += 1;
            tokio::time::sleep(Duration::from_millis(200 << attempt.min(5))).await;
        }
    }

    /// Instant query at the server's "now".
    pub async fn query(&self, promql: &str) -> Result<Vec<Instant>, PromError> {
        self.query_at(promql, None).await
    }

    /// Instant query evaluated at `at` (Unix seconds; `None`: the server's
    /// "now"). Replicas asking at the same `at` get the same samples with
    /// the same timestamps.
    pub async fn query_at(&self, promql: &str, at: Option<i64>) -> Result<Vec<Instant>, PromError> {
        let form: Vec<(&str, String)> = at.map(|t| ("time", t.to_string())).into_iter().collect();
        let resp = self
            .post("/api/v1/query", promql, &form, self.timeout)
            .await?;
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| self.unreachable(without_url(e)))?;
        let mut sink = Instants::default();
        let env = reply::parse_slice(&bytes, &mut sink).map_err(|e| PromError::Malformed {
            query: promql.into(),
            what: format!("not the API's JSON ({e})"),
        })?;
        check(promql, &env, &["vector", "scalar"])?;
        self.count_rejected(promql, &env);
        Ok(sink.out)
    }

    /// Range query over [start, end] (Unix seconds) at `step` seconds, its
    /// result streamed into `sink` (parsed on a blocking thread while the
    /// body arrives). Retried like any request, also when the body is cut
    /// off; a sink must therefore accept the same points twice.
    pub async fn query_range_into<S: ResultSink + Send + 'static>(
        &self,
        promql: &str,
        start: i64,
        end: i64,
        step: i64,
        sink: &Arc<std::sync::Mutex<S>>,
    ) -> Result<(), PromError> {
        let form = [
            ("start", start.to_string()),
            ("end", end.to_string()),
            ("step", step.max(1).to_string()),
        ];
        let timeout = self.timeout.max(RANGE_TIMEOUT_MIN);
        let mut attempt = 0;
        loop {
            let resp = self
                .post("/api/v1/query_range", promql, &form, timeout)
                .await?;
            let counter = self.range_bytes.clone();
            let stream = resp
                .bytes_stream()
                .map_ok(move |b| {
                    counter.fetch_add(b.len() as u64, Ordering::Relaxed);
                    b
                })
                .map_err(std::io::Error::other);
            let reader =
                tokio_util::io::SyncIoBridge::new(tokio_util::io::StreamReader::new(stream));
            let shared = sink.clone();
            let joined = tokio::task::spawn_blocking(move || {
                let mut guard = shared.lock().unwrap_or_else(|e| e.into_inner());
                reply::parse_reader(std::io::BufReader::new(reader), &mut *guard)
            })
            .await;
            let err = match joined {
                Ok(Ok(env)) => {
                    check(promql, &env, &["matrix"])?;
                    self.count_rejected(promql, &env);
                    return Ok(());
                }
                // The body stopped arriving (timeout, reset): retry.
                Ok(Err(e)) if e.is_io() => self.unreachable(format!("reply cut off: {e}")),
                Ok(Err(e)) => {
                    return Err(PromError::Malformed {
                        query: promql.into(),
                        what: format!("not the API's JSON ({e})"),
                    })
                }
                Err(e) => {
                    return Err(PromError::Malformed {
                        query: promql.into(),
                        what: format!("the reply parser failed: {e}"),
                    })
                }
            };
            if attempt >= self.retries {
                return Err(err);
            }
            attempt += 1;
            tokio::time::sleep(Duration::from_millis(200 << attempt.min(5))).await;
        }
    }
}

/// reqwest's message and its causes, without the URL (the request is a
/// POST, but keep PromQL out of messages all the same).
fn without_url(e: reqwest::Error) -> String {
    let e = e.without_url();
    let mut text = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// The error a non-2xx reply stands for, with Prometheus's own message.
async fn error_reply(query: &str, r: reqwest::Response) -> PromError {
    let status = r.status().as_u16();
    let mut body = Vec::new();
    let mut stream = r.bytes_stream();
    while let Ok(Some(chunk)) = stream.try_next().await {
        body.extend_from_slice(&chunk);
        if body.len() >= ERROR_BODY_MAX {
            body.truncate(ERROR_BODY_MAX);
            break;
        }
    }
    parse_error(query, status, &body)
}

/// A non-2xx reply as an error: the API's JSON error if it is one, else the
/// start of the body.
fn parse_error(query: &str, status: u16, body: &[u8]) -> PromError {
    struct Nothing;
    impl ResultSink for Nothing {
        fn series(&mut self, _: Labels) -> bool {
            false
        }
        fn point(&mut self, _: f64, _: f64) {}
    }
    match reply::parse_slice(body, &mut Nothing) {
        Ok(env) => PromError::Query {
            query: query.into(),
            status,
            error_type: env.error_type.unwrap_or_else(|| "unknown".into()),
            message: env.error.unwrap_or_else(|| "no message".into()),
        },
        Err(_) => PromError::Query {
            query: query.into(),
            status,
            error_type: "http".into(),
            message: String::from_utf8_lossy(body)
                .trim()
                .chars()
                .take(500)
                .collect(),
        },
    }
}

/// A 2xx reply's envelope must say success and a result type in `types`.
fn check(query: &str, env: &Envelope, types: &[&str]) -> Result<(), PromError> {
    if env.status != "success" {
        return Err(PromError::Query {
            query: query.into(),
            status: 200,
            error_type: env.error_type.clone().unwrap_or_else(|| "unknown".into()),
            message: env.error.clone().unwrap_or_else(|| "no message".into()),
        });
    }
    match env.result_type.as_deref() {
        Some(t) if types.contains(&t) => Ok(()),
        Some(t) => Err(PromError::Malformed {
            query: query.into(),
            what: format!(
                "result type {t:?}; expected {}{}",
                types.join(" or "),
                if types.contains(&"vector") {
                    " (the query must return one value per series)"
                } else {
                    ""
                }
            ),
        }),
        None => Err(PromError::Malformed {
            query: query.into(),
            what: "status success without data".into(),
        }),
    }
}

/// A stable id for a series from its labels other than `__name__` (a
/// plain selector's result carries the metric name; functions drop it):
/// `instance` when it is the only one, otherwise `{k="v",…}` (`value` for a
/// result without labels).
pub fn series_id(labels: &Labels) -> String {
    let named = labels.iter().filter(|(k, _)| k.as_str() != "__name__");
    let count = named.clone().count();
    match (count, labels.get("instance")) {
        (0, _) => "value".into(),
        (1, Some(i)) => i.clone(),
        _ => {
            let inner: Vec<String> = named.map(|(k, v)| format!("{k}={v:?}")).collect();
            format!("{{{}}}", inner.join(","))
        }
    }
}

/// The host tag of a series: its `instance` label, else its id.
pub fn host_of(labels: &Labels) -> String {
    labels
        .get("instance")
        .cloned()
        .unwrap_or_else(|| series_id(labels))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_reply_carries_prometheus_message() {
        let body = br#"{"status":"error","errorType":"bad_data","error":"invalid parameter \"query\": 1:5: parse error: unexpected end of input"}"#;
        let e = parse_error("rate(x", 400, body);
        let text = e.to_string();
        assert!(text.contains("bad_data"), "{text}");
        assert!(text.contains("parse error"), "{text}");
        assert!(!e.is_unreachable());
    }

    #[test]
    fn non_json_error_replies_keep_the_body() {
        let e = parse_error("up", 502, b"Bad Gateway");
        assert!(e.is_unreachable());
        assert!(e.to_string().contains("Bad Gateway"));
        assert!(parse_error("up", 429, b"slow down").is_unreachable());
    }

    #[test]
    fn envelopes_must_be_success_of_the_right_type() {
        let env = |status: &str, t: Option<&str>| Envelope {
            status: status.into(),
            result_type: t.map(String::from),
            ..Envelope::default()
        };
        assert!(check("up", &env("success", Some("vector")), &["vector"]).is_ok());
        let e = check(
            "up[5m]",
            &env("success", Some("matrix")),
            &["vector", "scalar"],
        )
        .unwrap_err();
        assert!(e.to_string().contains("one value per series"), "{e}");
        assert!(matches!(
            check("up", &env("success", None), &["vector"]),
            Err(PromError::Malformed { .. })
        ));
        assert!(matches!(
            check("up", &env("error", None), &["vector"]),
            Err(PromError::Query { .. })
        ));
    }

    #[test]
    fn series_ids() {
        let mut l = Labels::new();
        assert_eq!(series_id(&l), "value");
        l.insert("instance".into(), "web-1:9100".into());
        assert_eq!(series_id(&l), "web-1:9100");
        l.insert("job".into(), "node".into());
        assert_eq!(series_id(&l), r#"{instance="web-1:9100",job="node"}"#);
        assert_eq!(host_of(&l), "web-1:9100");
        // The metric name is not part of the id.
        l.insert("__name__".into(), "cpu".into());
        assert_eq!(series_id(&l), r#"{instance="web-1:9100",job="node"}"#);
        l.remove("job");
        assert_eq!(series_id(&l), "web-1:9100");
    }
}
