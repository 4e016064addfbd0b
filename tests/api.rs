//! The HTTP API through its router, without a socket; `/metrics` checked by
//! `promtool check metrics`; and served by a running monitor.

use std::{
    io::Write,
    process::{Command, Stdio},
    sync::Arc,
    time::{Duration, Instant},
};

use crate::common::servers;
use axum::{body::Body, http::Request};
use cpu_anomaly::{
    api::{self, ApiState, SeriesPoint, Snapshot},
    config::{CliOverrides, Settings},
    monitor::Report,
    secret::Secret,
    sink::SinkStats,
};
use tower::ServiceExt;

fn point(t: i64, actual: f64, score: f64) -> SeriesPoint {
    SeriesPoint {
        timestamp: t,
        actual,
        yhat: Some(50.0),
        yhat_lower: Some(45.0),
        yhat_upper: Some(55.0),
        score: Some(score),
        is_anomaly: score > 1.0,
        severity: Some(if score > 3.0 {
            "CRITICAL"
        } else if score > 1.0 {
            "LOW"
        } else {
            "NORMAL"
        }),
    }
}

fn state(token: Option<&str>) -> Arc<ApiState> {
    let mut snap = Snapshot::default();
    snap.push_point("web-1:9100", "web-1:9100", point(100, 51.0, 0.2), false);
    snap.push_point("web-1:9100", "web-1:9100", point(130, 95.0, 4.5), true);
    snap.push_point(
        r#"{instance="db \"1\""}"#,
        "db",
        point(130, 49.0, 0.1),
        false,
    );
    let mut report = Report {
        ticks: 2,
        samples: 3,
        alerts: 1,
        source: "prometheus".into(),
        ..Report::default()
    };
    report.anomalies_by_severity.insert("CRITICAL".into(), 1);
    // web-1's model was made 12 s ago.
    snap.series.get_mut("web-1:9100").unwrap().state = api::SeriesState {
        warming_up: false,
        short_history: false,
        trained_at: Some(chrono::Utc::now().timestamp() - 12),
        capacity: None,
        alert_override: Some("{job=\"batch\"}".into()),
    };
    snap.report = report;
    snap.prometheus_up = true;
    let st = ApiState::new(Arc::new(SinkStats::default()), token.map(Secret::new));
    *st.snapshot.write().unwrap() = snap;
    Arc::new(st)
}

async fn get(state: Arc<ApiState>, uri: &str, auth: Option<&str>) -> (u16, String, String) {
    let mut req = Request::get(uri);
    if let Some(a) = auth {
        req = req.header("Authorization", a);
    }
    let resp = api::router(state)
        .oneshot(req.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let ctype = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let body = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .unwrap();
    (status, ctype, String::from_utf8(body.to_vec()).unwrap())
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn capacity_warnings_are_listed_exported_and_cleared() {
    let st = Arc::new(ApiState::new(Arc::new(SinkStats::default()), None));
    let warning = api::CapacityState {
        crossing_in_seconds: 1200,
        threshold: 90.0,
        predicted_value: 90.4,
        at: 100,
    };
    let published = |change: Option<&'static str>, capacity: Option<api::CapacityState>| {
        vec![api::Published {
            series: "web-1:9100".into(),
            host: "web-1".into(),
            point: point(100, 71.0, 0.4),
            alert: false,
            onset: false,
            resolved: false,
            state: api::SeriesState {
                capacity,
                ..api::SeriesState::default()
            },
            capacity_change: change,
        }]
    };
    st.publish(
        published(Some("capacity_warning"), Some(warning)),
        &[],
        true,
        &Report::default(),
        0,
    );
    let rt = rt();
    let (s, _, body) = rt.block_on(get(st.clone(), "/api/capacity", None));
    assert_eq!(s, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["active"][0]["series"], "web-1:9100");
    assert_eq!(v["active"][0]["crossing_in_seconds"], 1200);
    assert_eq!(v["active"][0]["threshold"], 90.0);
    assert_eq!(v["events"][0]["event"], "capacity_warning");
    let (_, _, metrics) = rt.block_on(get(st.clone(), "/metrics", None));
    assert!(
        metrics.contains(
            r#"cpu_anomaly_capacity_crossing_seconds{series="web-1:9100",host="web-1"} 1200"#
        ),
        "{metrics}"
    );
    let (_, _, series) = rt.block_on(get(st.clone(), "/api/series", None));
    assert!(
        series.contains(r#""capacity_warning":{"crossing_in_seconds":1200"#),
        "{series}"
    );
    // Cleared: the gauge is gone, the event listed.
    st.publish(
        published(Some("capacity_cleared"), None),
        &[],
        true,
        &Report::default(),
        0,
    );
    let (_, _, body) = rt.block_on(get(st.clone(), "/api/capacity", None));
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["active"].as_array().unwrap().len(), 0, "{body}");
    assert_eq!(v["events"][0]["event"], "capacity_cleared");
    assert_eq!(v["events"][1]["event"], "capacity_warning");
    let (_, _, metrics) = rt.block_on(get(st.clone(), "/metrics", None));
    assert!(
        !metrics.contains("cpu_anomaly_capacity_crossing_seconds{"),
        "{metrics}"
    );
}

#[test]
fn alert_events_are_listed_and_exported() {
    let st = ApiState::new(Arc::new(SinkStats::default()), None);
    let published = |onset: bool, resolved: bool, alert: bool| api::Published {
        series: "web-1:9100".into(),
        host: "web-1:9100".into(),
        point: point(100, 95.0, 4.5),
        alert,
        onset,
        resolved,
        state: api::SeriesState::default(),
        capacity_change: None,
    };
    st.publish(
        vec![published(true, false, true)],
        &[],
        true,
        &Report::default(),
        0,
    );
    let st = Arc::new(st);
    let rt = rt();
    let (s, _, body) = rt.block_on(get(st.clone(), "/api/alerts", None));
    assert_eq!(s, 200);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v[0]["event"], "firing");
    assert_eq!(v[0]["series"], "web-1:9100");
    let (_, _, metrics) = rt.block_on(get(st.clone(), "/metrics", None));
    assert!(
        metrics.contains(r#"cpu_anomaly_alert_firing{series="web-1:9100",host="web-1:9100"} 1"#),
        "{metrics}"
    );
    st.publish(
        vec![published(false, true, false)],
        &[],
        true,
        &Report::default(),
        0,
    );
    let (_, _, body) = rt.block_on(get(st.clone(), "/api/alerts", None));
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v[0]["event"], "resolved");
    assert_eq!(v[1]["event"], "firing");
    let (_, _, metrics) = rt.block_on(get(st, "/metrics", None));
    assert!(
        metrics.contains(r#"cpu_anomaly_alert_firing{series="web-1:9100",host="web-1:9100"} 0"#)
    );
}

#[test]
fn health_reports_readiness_details() {
    let (s, _, body) = rt().block_on(get(state(None), "/health", None));
    assert_eq!(s, 200);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["status"], "ok");
    assert_eq!(v["prometheus_reachable"], true);
    assert_eq!(v["spool_depth"], 0);
    let age = v["model_age_seconds"]["web-1:9100"].as_f64().unwrap();
    assert!((12.0..=13.0).contains(&age), "{age}");
    assert_eq!(v["series"], 2);
    assert_eq!(v["warming_up"], serde_json::json!([]));
    assert_eq!(v["short_history"], serde_json::json!([]));
}

#[test]
fn metrics_is_valid_exposition_format_with_per_series_gauges() {
    let (s, ctype, body) = rt().block_on(get(state(None), "/metrics", None));
    assert_eq!(s, 200);
    assert!(ctype.starts_with("text/plain; version=0.0.4"), "{ctype}");
    assert!(
        body.contains("cpu_anomaly_score{series=\"web-1:9100\",host=\"web-1:9100\"} 4.5"),
        "{body}"
    );
    assert!(
        body.contains(r#"cpu_anomaly_actual{series="{instance=\"db \\\"1\\\"\"}",host="db"} 49"#),
        "{body}"
    );
    assert!(body.contains("cpu_anomaly_anomalies_total{severity=\"CRITICAL\"} 1"));
    assert!(body.contains("cpu_anomaly_source{source=\"prometheus\"} 1"));
    if !servers::require("promtool", "metrics_is_valid_exposition_format") {
        return;
    }
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(body.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    // promtool exits 0 for valid text; lint remarks would be printed, so
    // demand silence too.
    assert!(
        out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(),
        "{}{}\n{body}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn json_api_lists_anomalies_summary_and_series() {
    let rt = rt();
    let (s, _, body) = rt.block_on(get(state(None), "/api/anomalies/recent?limit=1", None));
    assert_eq!(s, 200);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 1);
    assert_eq!(v[0]["series"], "web-1:9100");
    assert_eq!(v[0]["severity"], "CRITICAL");
    assert_eq!(v[0]["alert"], true);
    let (_, _, body) = rt.block_on(get(state(None), "/api/anomalies/summary", None));
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["anomalies"], 1);
    assert!((v["anomaly_rate"].as_f64().unwrap() - 1.0 / 3.0).abs() < 1e-9);
    let (_, _, body) = rt.block_on(get(state(None), "/api/series", None));
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 2);
    for s in v.as_array().unwrap() {
        let want = if s["id"] == "web-1:9100" {
            serde_json::json!("{job=\"batch\"}")
        } else {
            serde_json::Value::Null
        };
        assert_eq!(s["alert_override"], want, "{s}");
    }
    let (s, _, body) = rt.block_on(get(state(None), "/api/series/web-1:9100?limit=5", None));
    assert_eq!(s, 200);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 2);
    assert_eq!(v[1]["yhat_upper"], 55.0);
    let (s, _, body) = rt.block_on(get(state(None), "/api/series/nope", None));
    assert_eq!(s, 404);
    assert!(body.contains("\"error\""), "{body}");
}

#[test]
fn bearer_token_guards_everything_but_health() {
    let rt = rt();
    let st = state(Some("s3cret"));
    assert_eq!(rt.block_on(get(st.clone(), "/metrics", None)).0, 401);
    assert_eq!(
        rt.block_on(get(st.clone(), "/api/series", Some("Bearer wrong")))
            .0,
        401
    );
    assert_eq!(
        rt.block_on(get(st.clone(), "/api/series", Some("Bearer s3cret")))
            .0,
        200
    );
    assert_eq!(rt.block_on(get(st, "/health", None)).0, 200);
}

#[test]
fn the_query_token_is_url_decoded_and_must_match_exactly() {
    let rt = rt();
    let st = state(Some("a b/c+d%"));
    let ok = "/api/series?token=a%20b%2Fc+d%25";
    assert_eq!(rt.block_on(get(st.clone(), ok, None)).0, 200);
    for bad in [
        "/api/series?token=a+b/c+d%",
        "/api/series?token=a%20b%2Fc+d",
        "/api/series?token=",
    ] {
        assert_eq!(rt.block_on(get(st.clone(), bad, None)).0, 401, "{bad}");
    }
}

#[test]
fn event_streams_are_capped() {
    let rt = rt();
    let st = state(None);
    rt.block_on(async {
        let mut open = Vec::new();
        for _ in 0..api::MAX_EVENT_CLIENTS {
            let resp = api::router(st.clone())
                .oneshot(Request::get("/api/events").body(Body::empty()).unwrap())
                .await
                .unwrap();
            assert_eq!(resp.status().as_u16(), 200);
            open.push(resp);
        }
        let (status, _, body) = get(st.clone(), "/api/events", None).await;
        assert_eq!(status, 503, "{body}");
        // A stream that ends gives its place back.
        drop(open.pop());
        let resp = api::router(st.clone())
            .oneshot(Request::get("/api/events").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 200);
    });
}

/// Connections beyond the cap are closed at once; a client that never sends
/// its headers is dropped after the header timeout, giving its place back.
#[test]
fn connections_are_capped_and_silent_clients_time_out() {
    use std::io::Read;
    let addr = api::serve("127.0.0.1:0".parse().unwrap(), state(None)).unwrap();
    let health = || -> std::io::Result<String> {
        let mut c = std::net::TcpStream::connect(addr)?;
        c.set_read_timeout(Some(Duration::from_secs(5)))?;
        c.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")?;
        let mut out = String::new();
        c.read_to_string(&mut out)?;
        Ok(out)
    };
    assert!(health().unwrap().starts_with("HTTP/1.1 200"));
    let silent: Vec<_> = (0..api::MAX_CONNECTIONS)
        .map(|_| std::net::TcpStream::connect(addr).unwrap())
        .collect();
    // Let the server accept them all.
    std::thread::sleep(Duration::from_millis(500));
    let refused = health().unwrap_or_default();
    assert!(!refused.starts_with("HTTP/1.1 200"), "{refused}");
    let start = Instant::now();
    let mut back = false;
    while start.elapsed() < api::HEADER_TIMEOUT * 3 {
        std::thread::sleep(Duration::from_millis(500));
        if health().is_ok_and(|r| r.starts_with("HTTP/1.1 200")) {
            back = true;
            break;
        }
    }
    assert!(back, "the silent connections were never dropped");
    drop(silent);
}

#[test]
fn a_non_loopback_address_needs_a_token() {
    let load = |env: &[(&str, &str)]| {
        let env: std::collections::HashMap<String, String> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Settings::from_layers(
            "",
            None,
            "defaults",
            |k| env.get(k).cloned(),
            &CliOverrides::default(),
        )
    };
    let e = load(&[("API_LISTEN", "0.0.0.0:8080")])
        .unwrap_err()
        .to_string();
    assert!(e.contains("api_listen") && e.contains("API_TOKEN"), "{e}");
    let s = load(&[("API_LISTEN", "0.0.0.0:8080"), ("API_TOKEN", "t")]).unwrap();
    assert_eq!(s.api_listen.unwrap().port(), 8080);
    assert!(load(&[("API_LISTEN", "")]).unwrap().api_listen.is_none());
    // A token file (Docker secret) counts; a missing one is an error naming it.
    let f = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(f.path(), "from-file\n").unwrap();
    let path = f.path().display().to_string();
    let s = load(&[("API_LISTEN", "0.0.0.0:8080"), ("API_TOKEN_FILE", &path)]).unwrap();
    assert_eq!(s.api_token.expose(), "from-file");
    let e = load(&[("API_TOKEN_FILE", "/nonexistent/token")])
        .unwrap_err()
        .to_string();
    assert!(e.contains("/nonexistent/token"), "{e}");
    assert!(load(&[("API_LISTEN", "nonsense")]).is_err());
}

/// A simulated monitor (MSTL, 1 s polls) with its API on `port`.
fn monitor_with_api(dir: &std::path::Path, port: u16) -> Command {
    let mut c = crate::common::bin();
    c.args([
        "--mode",
        "monitor",
        "--monitoring-interval",
        "1",
        "--model",
        "mstl",
    ])
    .arg("--log-dir")
    .arg(dir.join("logs"))
    .env("API_LISTEN", format!("127.0.0.1:{port}"))
    .env(
        "PROMETHEUS_URL",
        format!("http://127.0.0.1:{}", servers::free_port()),
    )
    .env("PROMETHEUS_RETRIES", "0")
    .env(
        "DATASET",
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("datasets/sample_cpu.csv"),
    )
    .env("MODEL_PATH", dir.join("models/m.json"))
    .current_dir(dir)
    .stdout(Stdio::null())
    .stderr(Stdio::null());
    c
}

#[test]
fn a_running_monitor_serves_the_api() {
    let dir = tempfile::tempdir().unwrap();
    let port = servers::free_port();
    let mut child = monitor_with_api(dir.path(), port).spawn().unwrap();
    let url = format!("http://127.0.0.1:{port}");
    let start = Instant::now();
    let mut body = String::new();
    while start.elapsed() < Duration::from_secs(60) {
        let (s, b) = servers::get(&format!("{url}/metrics"));
        if s == 200 && b.contains("cpu_anomaly_yhat{series=\"simulated\"") {
            body = b;
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let (hs, health) = servers::get(&format!("{url}/health"));
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        !body.is_empty(),
        "no per-series gauges from the running monitor"
    );
    assert!(
        body.contains("cpu_anomaly_source{source=\"simulation\"} 1"),
        "{body}"
    );
    assert_eq!(hs, 200);
    assert!(health.contains("\"source\":\"simulation\""), "{health}");
}

#[test]
fn prometheus_scrapes_the_monitor_with_the_token_and_loads_the_rules() {
    if !servers::require("prometheus", "prometheus_scrapes_the_monitor") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let port = servers::free_port();
    let token = dir.path().join("api_token");
    std::fs::write(&token, "scrape-secret\n").unwrap();
    let mut child = monitor_with_api(dir.path(), port)
        .env("API_TOKEN_FILE", &token)
        .spawn()
        .unwrap();
    // The stack's scrape job and rules, pointed at this monitor and token.
    let stack = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("prometheus/prometheus.yml"),
    )
    .unwrap()
    .replace("/run/secrets/api_token", &token.display().to_string())
    .replace("app:8080", &format!("127.0.0.1:{port}"))
    .replace("scrape_interval: 15s", "scrape_interval: 1s")
    .replace("evaluation_interval: 15s", "evaluation_interval: 1s");
    let rules = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("prometheus/rules.yml");
    let prom = servers::prometheus_with(move |d| {
        std::fs::copy(&rules, d.join("rules.yml")).unwrap();
        stack.clone()
    });
    let q = |expr: &str| -> serde_json::Value {
        let (_, body) = servers::get(&format!(
            "{}/api/v1/query?query={}",
            prom.url(),
            expr.replace(' ', "+")
                .replace('"', "%22")
                .replace('{', "%7B")
                .replace('}', "%7D")
                .replace('=', "%3D")
        ));
        serde_json::from_str(&body).unwrap_or_default()
    };
    let start = Instant::now();
    let mut ok = false;
    while start.elapsed() < Duration::from_secs(60) {
        let v = q(r#"cpu_anomaly_ticks_total{job="cpu-anomaly"}"#);
        if v["data"]["result"][0]["value"][1].as_str().is_some() {
            ok = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    let up = q(r#"up{job="cpu-anomaly"}"#);
    let (_, rules) = servers::get(&format!("{}/api/v1/rules", prom.url()));
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        ok,
        "Prometheus never scraped the monitor: {up}\n{}",
        prom.log()
    );
    assert_eq!(up["data"]["result"][0]["value"][1], "1");
    for alert in [
        "CpuAnomalyScoreHigh",
        "CpuAnomalySustained",
        "CpuAnomalyMonitorDown",
        "CpuAnomalySpoolGrowing",
    ] {
        assert!(rules.contains(alert), "{alert} not loaded: {rules}");
    }
}
