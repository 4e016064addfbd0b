//! Prometheus HTTP API client: `/api/v1/query` and `/api/v1/query_range`,
//! with a timeout and retries (connect errors and 5xx; a 4xx such as bad
//! PromQL is final and carries Prometheus's own message).

use std::{collections::BTreeMap, time::Duration};

use serde::Deserialize;
use thiserror::Error;

/// Prometheus source settings.
#[derive(Debug, Clone)]
pub struct PrometheusSettings {
    /// Base URL of the Prometheus HTTP API.
    pub url: String,
    /// Per-request timeout.
    pub timeout: Duration,
    /// Retries per request.
    pub retries: u32,
    /// PromQL whose every returned series is monitored.
    pub query: String,
    /// History fetched with `query_range` to train a new series.
    pub history: Duration,
    /// Failed polls in a row before switching to the simulation source.
    pub simulation_after_failures: u32,
    /// Own history a series needs before its model is fitted.
    pub min_history: Duration,
    /// How long a vanished series is kept before it is dropped.
    pub series_grace_period: Duration,
}

/// Errors talking to Prometheus.
#[derive(Debug, Error)]
pub enum PromError {
    /// No answer (connection refused, timeout, DNS).
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
    /// answering with an error).
    pub fn is_unreachable(&self) -> bool {
        matches!(self, PromError::Unreachable { .. })
            || matches!(self, PromError::Query { status, .. } if *status >= 500)
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
    /// Value (NaN and ±Inf are dropped by the client).
    pub value: f64,
}

/// One series of a range query.
#[derive(Debug, Clone, PartialEq)]
pub struct Range {
    /// Labels.
    pub labels: Labels,
    /// (Unix seconds, value) in time order.
    pub points: Vec<(i64, f64)>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Reply {
    status: String,
    data: Option<Data>,
    error_type: Option<String>,
    error: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Data {
    result_type: String,
    result: serde_json::Value,
}

#[derive(Deserialize)]
struct VectorItem {
    metric: Labels,
    value: (f64, String),
}

#[derive(Deserialize)]
struct MatrixItem {
    metric: Labels,
    values: Vec<(f64, String)>,
}

/// A client for one Prometheus server.
#[derive(Debug, Clone)]
pub struct Client {
    base: String,
    agent: ureq::Agent,
    retries: u32,
}

fn parse_value(s: &str) -> Option<f64> {
    s.parse::<f64>().ok().filter(|v| v.is_finite())
}

impl Client {
    /// A client from settings.
    pub fn new(s: &PrometheusSettings) -> Client {
        Client {
            base: s.url.trim_end_matches('/').to_string(),
            agent: ureq::AgentBuilder::new().timeout(s.timeout).build(),
            retries: s.retries,
        }
    }

    /// The same client with another retry count (0: one attempt).
    pub fn with_retries(mut self, retries: u32) -> Client {
        self.retries = retries;
        self
    }

    /// Base URL.
    pub fn url(&self) -> &str {
        &self.base
    }

    fn get(&self, path: &str, query: &str, params: &[(&str, String)]) -> Result<Data, PromError> {
        let url = format!("{}{path}", self.base);
        let mut k = 0;
        loop {
            let mut req = self.agent.get(&url).query("query", query);
            for (name, v) in params {
                req = req.query(name, v);
            }
            let res = req.call();
            let (status, body) = match res {
                Ok(r) => (r.status(), r.into_string()),
                Err(ureq::Error::Status(s, r)) => (s, r.into_string()),
                Err(ureq::Error::Transport(t)) => {
                    if k < self.retries {
                        k += 1;
                        std::thread::sleep(Duration::from_millis(200 << k.min(5)));
                        continue;
                    }
                    return Err(PromError::Unreachable {
                        url: self.base.clone(),
                        reason: t.to_string(),
                    });
                }
            };
            if status >= 500 && k < self.retries {
                k += 1;
                std::thread::sleep(Duration::from_millis(200 << k.min(5)));
                continue;
            }
            let body = body.map_err(|e| PromError::Malformed {
                query: query.into(),
                what: format!("cannot read the body: {e}"),
            })?;
            return parse_reply(query, status, &body);
        }
    }

    /// Instant query at the server's "now".
    pub fn query(&self, promql: &str) -> Result<Vec<Instant>, PromError> {
        let data = self.get("/api/v1/query", promql, &[])?;
        let malformed = |what: String| PromError::Malformed {
            query: promql.into(),
            what,
        };
        match data.result_type.as_str() {
            "vector" => {
                let items: Vec<VectorItem> = serde_json::from_value(data.result)
                    .map_err(|e| malformed(format!("vector result: {e}")))?;
                Ok(items
                    .into_iter()
                    .filter_map(|it| {
                        parse_value(&it.value.1).map(|value| Instant {
                            labels: it.metric,
                            timestamp: it.value.0.floor() as i64,
                            value,
                        })
                    })
                    .collect())
            }
            "scalar" => {
                let (t, v): (f64, String) = serde_json::from_value(data.result)
                    .map_err(|e| malformed(format!("scalar result: {e}")))?;
                Ok(parse_value(&v)
                    .map(|value| Instant {
                        labels: Labels::new(),
                        timestamp: t.floor() as i64,
                        value,
                    })
                    .into_iter()
                    .collect())
            }
            other => Err(malformed(format!(
                "result type {other:?}; the query must return an instant vector (one value per series)"
            ))),
        }
    }

    /// Range query over [start, end] (Unix seconds) at `step` seconds.
    pub fn query_range(
        &self,
        promql: &str,
        start: i64,
        end: i64,
        step: i64,
    ) -> Result<Vec<Range>, PromError> {
        let data = self.get(
            "/api/v1/query_range",
            promql,
            &[
                ("start", start.to_string()),
                ("end", end.to_string()),
                ("step", step.max(1).to_string()),
            ],
        )?;
        if data.result_type != "matrix" {
            return Err(PromError::Malformed {
                query: promql.into(),
                what: format!("result type {:?}, expected matrix", data.result_type),
            });
        }
        let items: Vec<MatrixItem> =
            serde_json::from_value(data.result).map_err(|e| PromError::Malformed {
                query: promql.into(),
                what: format!("matrix result: {e}"),
            })?;
        Ok(items
            .into_iter()
            .map(|it| Range {
                labels: it.metric,
                points: it
                    .values
                    .into_iter()
                    .filter_map(|(t, v)| parse_value(&v).map(|v| (t.floor() as i64, v)))
                    .collect(),
            })
            .collect())
    }
}

fn parse_reply(query: &str, status: u16, body: &str) -> Result<Data, PromError> {
    let reply: Reply = match serde_json::from_str(body) {
        Ok(r) => r,
        Err(e) => {
            if status >= 400 {
                return Err(PromError::Query {
                    query: query.into(),
                    status,
                    error_type: "http".into(),
                    message: body.trim().chars().take(500).collect(),
                });
            }
            return Err(PromError::Malformed {
                query: query.into(),
                what: format!("not the API's JSON ({e})"),
            });
        }
    };
    if reply.status != "success" || status >= 400 {
        return Err(PromError::Query {
            query: query.into(),
            status,
            error_type: reply.error_type.unwrap_or_else(|| "unknown".into()),
            message: reply.error.unwrap_or_else(|| "no message".into()),
        });
    }
    reply.data.ok_or_else(|| PromError::Malformed {
        query: query.into(),
        what: "status success without data".into(),
    })
}

/// A stable id for a series: `instance` when it is the only label,
/// otherwise `{k="v",…}` (`value` for a label-less result).
pub fn series_id(labels: &Labels) -> String {
    match (labels.len(), labels.get("instance")) {
        (0, _) => "value".into(),
        (1, Some(i)) => i.clone(),
        _ => {
            let inner: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
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
        let body = r#"{"status":"error","errorType":"bad_data","error":"invalid parameter \"query\": 1:5: parse error: unexpected end of input"}"#;
        let e = parse_reply("rate(x", 400, body).err().unwrap();
        let text = e.to_string();
        assert!(text.contains("bad_data"), "{text}");
        assert!(text.contains("parse error"), "{text}");
        assert!(!e.is_unreachable());
    }

    #[test]
    fn non_json_replies_are_errors_not_panics() {
        assert!(matches!(
            parse_reply("up", 200, "<html>").err().unwrap(),
            PromError::Malformed { .. }
        ));
        let e = parse_reply("up", 502, "Bad Gateway").err().unwrap();
        assert!(e.is_unreachable());
        assert!(e.to_string().contains("Bad Gateway"));
        assert!(matches!(
            parse_reply("up", 200, r#"{"status":"success"}"#)
                .err()
                .unwrap(),
            PromError::Malformed { .. }
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
    }
}
