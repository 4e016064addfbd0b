//! InfluxDB HTTP writes, v1 (`/write?db=`) and v2 (`/api/v2/write?org=&bucket=`),
//! with the retry rules: connect errors, 408, 429 (honouring `Retry-After`)
//! and 5xx are retried with exponential backoff and jitter; any other 4xx is
//! final (the caller dead-letters the batch with the server's reason).
//!
//! Both APIs use one blocking `reqwest` client (on the sink's own thread) so
//! that both get the same retry, `Retry-After` and dead-letter handling; the
//! body is identical line protocol in second precision. A write can be
//! cancelled: between retries it watches a flag and gives up at once when
//! the monitor is stopping.

use std::{
    sync::atomic::{AtomicBool, Ordering},
    time::{Duration, Instant},
};

use crate::secret::Secret;

/// Which write API to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Api {
    /// InfluxDB 1.x: `POST /write?db=BUCKET&precision=s`, optional token as
    /// `Authorization: Token …`.
    V1,
    /// InfluxDB 2.x: `POST /api/v2/write?org=ORG&bucket=BUCKET&precision=s`.
    V2,
}

impl std::fmt::Display for Api {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Api::V1 => "v1",
            Api::V2 => "v2",
        })
    }
}

/// Where and how to write.
#[derive(Debug, Clone)]
pub struct Target {
    /// Write API.
    pub api: Api,
    /// Base URL (`http://host:8086`).
    pub url: String,
    /// Organisation (v2).
    pub org: String,
    /// Bucket (v2) or database (v1).
    pub bucket: String,
    /// Token (v2; v1 sends it only when set).
    pub token: Secret,
    /// Per-request timeout.
    pub timeout: Duration,
    /// Retries after the first attempt.
    pub retries: u32,
    /// First backoff; doubles per retry, capped at [`MAX_BACKOFF`].
    pub backoff: Duration,
}

/// Longest wait between two attempts (also caps `Retry-After`).
pub const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// Result of one write (after its retries).
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Accepted (2xx).
    Written,
    /// Refused for good (4xx other than 408/429): the server's reason.
    Rejected {
        /// HTTP status.
        status: u16,
        /// Response body (the server's message).
        reason: String,
    },
    /// Still failing after every retry (server down, 5xx, throttled).
    Unavailable(String),
}

/// Verdict on one attempt.
#[derive(Debug, Clone, PartialEq)]
enum Attempt {
    Ok,
    Retry {
        reason: String,
        after: Option<Duration>,
    },
    Final {
        status: u16,
        reason: String,
    },
}

/// Whether a status is retried.
pub fn retryable(status: u16) -> bool {
    status == 408 || status == 429 || status >= 500
}

/// Parses `Retry-After` given in seconds (the HTTP-date form is ignored).
fn retry_after(v: Option<&str>) -> Option<Duration> {
    v.and_then(|s| s.trim().parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map(|s| Duration::from_secs_f64(s).min(MAX_BACKOFF * 5))
}

/// Backoff before retry `k` (0-based): `base·2^k` capped, with jitter in
/// [50 %, 100 %].
pub fn backoff(base: Duration, k: u32, jitter01: f64) -> Duration {
    let full = base
        .saturating_mul(1u32.checked_shl(k.min(20)).unwrap_or(u32::MAX))
        .min(MAX_BACKOFF);
    full.mul_f64(0.5 + 0.5 * jitter01.clamp(0.0, 1.0))
}

/// A writer for one target.
#[derive(Debug, Clone)]
pub struct Writer {
    target: Target,
    http: reqwest::blocking::Client,
    url: String,
}

/// The request timeout once the monitor is stopping.
pub const STOPPING_TIMEOUT: Duration = Duration::from_secs(2);

fn enc(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl Writer {
    /// A writer for `target`.
    pub fn new(target: Target) -> Writer {
        // Proxy variables are ignored: InfluxDB is reached directly, and a
        // stray HTTP_PROXY must not reroute loopback traffic.
        let http = reqwest::blocking::Client::builder()
            .timeout(target.timeout)
            .connect_timeout(target.timeout)
            .no_proxy()
            .build()
            .unwrap_or_default();
        let base = target.url.trim_end_matches('/');
        let url = match target.api {
            Api::V1 => format!("{base}/write?db={}&precision=s", enc(&target.bucket)),
            Api::V2 => format!(
                "{base}/api/v2/write?org={}&bucket={}&precision=s",
                enc(&target.org),
                enc(&target.bucket)
            ),
        };
        Writer { target, http, url }
    }

    /// The write URL (no secret in it).
    pub fn url(&self) -> &str {
        &self.url
    }

    fn attempt(&self, body: &[u8], timeout: Duration) -> Attempt {
        let mut req = self
            .http
            .post(&self.url)
            .timeout(timeout)
            .header("Content-Type", "text/plain; charset=utf-8")
            .body(body.to_vec());
        if !self.target.token.is_empty() {
            req = req.header(
                "Authorization",
                format!("Token {}", self.target.token.expose()),
            );
        }
        match req.send() {
            Ok(resp) if resp.status().is_success() => Attempt::Ok,
            Ok(resp) => {
                let status = resp.status().as_u16();
                let after = retry_after(
                    resp.headers()
                        .get("Retry-After")
                        .and_then(|v| v.to_str().ok()),
                );
                let reason = resp
                    .text()
                    .unwrap_or_default()
                    .trim()
                    .chars()
                    .take(2000)
                    .collect::<String>();
                if retryable(status) {
                    Attempt::Retry {
                        reason: format!("HTTP {status}: {reason}"),
                        after,
                    }
                } else {
                    Attempt::Final { status, reason }
                }
            }
            Err(e) => Attempt::Retry {
                reason: transport_error(&e),
                after: None,
            },
        }
    }

    /// Writes `body`, retrying as configured; `retries` overrides the
    /// configured count (0: one try). When `stop` is set the write gives up
    /// instead of waiting for a retry, and a try has [`STOPPING_TIMEOUT`].
    pub fn write(
        &self,
        body: &[u8],
        retries: Option<u32>,
        stop: &AtomicBool,
    ) -> (Outcome, Duration) {
        let start = Instant::now();
        let retries = retries.unwrap_or(self.target.retries);
        let mut k = 0;
        loop {
            let timeout = if stop.load(Ordering::Relaxed) {
                self.target.timeout.min(STOPPING_TIMEOUT)
            } else {
                self.target.timeout
            };
            match self.attempt(body, timeout) {
                Attempt::Ok => return (Outcome::Written, start.elapsed()),
                Attempt::Final { status, reason } => {
                    return (Outcome::Rejected { status, reason }, start.elapsed())
                }
                Attempt::Retry { reason, after } => {
                    if k >= retries || stop.load(Ordering::Relaxed) {
                        return (Outcome::Unavailable(reason), start.elapsed());
                    }
                    let wait = after
                        .unwrap_or_else(|| backoff(self.target.backoff, k, rand::random::<f64>()));
                    tracing::debug!(
                        "write to {} failed ({reason}); retry {} in {:.1}s",
                        self.url,
                        k + 1,
                        wait.as_secs_f64()
                    );
                    if !sleep_unless(wait, stop) {
                        return (Outcome::Unavailable(reason), start.elapsed());
                    }
                    k += 1;
                }
            }
        }
    }
}

/// Sleeps `d`, waking early (false) when `stop` is set.
fn sleep_unless(d: Duration, stop: &AtomicBool) -> bool {
    let end = Instant::now() + d;
    loop {
        if stop.load(Ordering::Relaxed) {
            return false;
        }
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return true;
        }
        std::thread::sleep(left.min(Duration::from_millis(50)));
    }
}

/// A transport error in one line, without the URL (it is logged elsewhere)
/// and with its cause (`connection refused`, `timed out`).
fn transport_error(e: &reqwest::Error) -> String {
    let head = if e.is_timeout() {
        "timed out".to_string()
    } else if e.is_connect() {
        "cannot connect".to_string()
    } else {
        "request failed".to_string()
    };
    crate::errors::with_causes(head, std::error::Error::source(e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_rules() {
        for s in [408, 429, 500, 502, 503, 504] {
            assert!(retryable(s), "{s}");
        }
        for s in [400, 401, 403, 404, 413, 422] {
            assert!(!retryable(s), "{s}");
        }
        assert_eq!(retry_after(Some(" 7 ")), Some(Duration::from_secs(7)));
        assert_eq!(retry_after(Some("Wed, 21 Oct 2015 07:28:00 GMT")), None);
        assert_eq!(retry_after(Some("100000")), Some(MAX_BACKOFF * 5));
    }

    #[test]
    fn backoff_doubles_with_jitter_and_caps() {
        let b = Duration::from_secs(1);
        assert_eq!(backoff(b, 0, 1.0), Duration::from_secs(1));
        assert_eq!(backoff(b, 3, 1.0), Duration::from_secs(8));
        assert_eq!(backoff(b, 3, 0.0), Duration::from_secs(4));
        assert_eq!(backoff(b, 30, 1.0), MAX_BACKOFF);
    }

    #[test]
    fn urls_per_api_are_encoded_and_hold_no_token() {
        let t = Target {
            api: Api::V2,
            url: "http://h:8086/".into(),
            org: "my org".into(),
            bucket: "cpu&x".into(),
            token: Secret::new("s3cret"),
            timeout: Duration::from_secs(1),
            retries: 0,
            backoff: Duration::from_millis(1),
        };
        let w = Writer::new(t.clone());
        assert_eq!(
            w.url(),
            "http://h:8086/api/v2/write?org=my%20org&bucket=cpu%26x&precision=s"
        );
        assert!(!format!("{w:?}").contains("s3cret"));
        let w = Writer::new(Target { api: Api::V1, ..t });
        assert_eq!(w.url(), "http://h:8086/write?db=cpu%26x&precision=s");
    }

    #[test]
    fn unreachable_server_is_unavailable_not_rejected() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let w = Writer::new(Target {
            api: Api::V1,
            url: format!("http://127.0.0.1:{port}"),
            org: String::new(),
            bucket: "db".into(),
            token: Secret::default(),
            timeout: Duration::from_secs(1),
            retries: 2,
            backoff: Duration::from_millis(1),
        });
        let (o, _) = w.write(b"m v=1 1\n", None, &AtomicBool::new(false));
        assert!(matches!(o, Outcome::Unavailable(_)), "{o:?}");
    }
}
