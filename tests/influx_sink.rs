//! The InfluxDB sink against real servers: InfluxDB 1.x (`influxd`, v1 API),
//! VictoriaMetrics (v2 write API), a refused batch, and an outage in the
//! middle of a run where every point must arrive exactly once.

use std::time::{Duration, Instant};

use crate::common::servers::{self, influx_count, Server};
use cpu_anomaly::{
    detect::Detector,
    secret::Secret,
    sink::{
        self,
        influx::{Api, Target},
        schema::{self, Sample},
        Batching, Destination, SinkHandle,
    },
};

fn target(api: Api, url: String, bucket: &str) -> Target {
    Target {
        api,
        url,
        org: "cpu-anomaly".into(),
        bucket: bucket.into(),
        token: Secret::new("test-token"),
        timeout: Duration::from_secs(2),
        retries: 1,
        backoff: Duration::from_millis(20),
    }
}

fn start(t: Target, dir: &std::path::Path, batch: usize) -> SinkHandle {
    sink::spawn(
        Destination::Influx {
            target: t,
            spool_dir: dir.join("spool"),
            spool_max_bytes: 64 << 20,
            dead_letter: dir.join("dead_letter.lp"),
        },
        Batching {
            batch_size: batch,
            flush_interval: Duration::from_millis(100),
        },
        Some(&dir.join("wal")),
    )
    .unwrap()
}

/// Three points (actual, forecasted, anomaly) for sample `i`.
fn sample_points(i: i64) -> Vec<schema::Point> {
    sample_points_from(1_750_000_000, i)
}

fn sample_points_from(base: i64, i: i64) -> Vec<schema::Point> {
    let actual = if i % 10 == 0 {
        95.0
    } else {
        50.0 + (i % 3) as f64
    };
    let d = Detector::new(2.0).check(actual, 50.0, 45.0, 55.0);
    schema::points(&Sample {
        host: "web-1",
        source: "prometheus",
        timestamp: base + i * 30,
        actual,
        yhat: 50.0,
        lower: 45.0,
        upper: 55.0,
        detection: Some(&d),
        alert: false,
        threshold: 2.0,
        short_history: false,
        onset: false,
        resolved: false,
        capacity: None,
        capacity_cleared: false,
    })
}

fn influx_counts(s: &Server) -> (u64, u64) {
    (
        influx_count(s, "cpu", "cpu_usage", "cpu_metrics"),
        influx_count(s, "cpu", "anomaly_score", "anomaly_detection"),
    )
}

#[test]
fn v1_api_points_arrive_in_influxdb_1x() {
    if !servers::require("influxd", "v1_api_points_arrive_in_influxdb_1x") {
        return;
    }
    let server = servers::influxd("cpu");
    let dir = tempfile::tempdir().unwrap();
    let h = start(target(Api::V1, server.url(), "cpu"), dir.path(), 50);
    for i in 0..200 {
        h.send(sample_points(i));
    }
    h.close();
    assert_eq!(influx_counts(&server), (400, 200));
    let v = servers::influxql(
        &server,
        "cpu",
        "SELECT count(is_anomaly) FROM anomaly_detection WHERE severity = 'CRITICAL' AND host = 'web-1'",
    );
    assert_eq!(v["results"][0]["series"][0]["values"][0][1], 20, "{v}");
    let v = servers::influxql(
        &server,
        "cpu",
        "SELECT cpu_usage, yhat_upper FROM cpu_metrics WHERE metric_type = 'forecasted' LIMIT 1",
    );
    assert_eq!(v["results"][0]["series"][0]["values"][0][2], 55.0, "{v}");
    assert!(!dir.path().join("dead_letter.lp").exists());
}

#[test]
fn refused_batch_goes_to_the_dead_letter_file_with_the_reason() {
    if !servers::require("influxd", "refused_batch_goes_to_the_dead_letter_file") {
        return;
    }
    let server = servers::influxd("cpu");
    let dir = tempfile::tempdir().unwrap();
    // No such database: InfluxDB answers 404, which is not retried.
    let h = start(target(Api::V1, server.url(), "nope"), dir.path(), 1000);
    h.send(sample_points(1));
    let stats = h.stats.clone();
    h.close();
    let dead = std::fs::read_to_string(dir.path().join("dead_letter.lp")).unwrap();
    assert!(dead.contains("status 404"), "{dead}");
    assert!(dead.contains("database not found"), "{dead}");
    assert_eq!(dead.lines().filter(|l| !l.starts_with('#')).count(), 3);
    assert_eq!(
        stats
            .points_dead_lettered
            .load(std::sync::atomic::Ordering::Relaxed),
        3
    );
    // Nothing was spooled: a refused batch is never retried.
    assert_eq!(
        std::fs::read_dir(dir.path().join("spool")).unwrap().count(),
        0
    );
}

#[test]
fn influxdb_outage_loses_nothing_and_duplicates_nothing() {
    if !servers::require("influxd", "influxdb_outage_loses_nothing") {
        return;
    }
    let mut server = servers::influxd("cpu");
    let dir = tempfile::tempdir().unwrap();
    let h = start(target(Api::V1, server.url(), "cpu"), dir.path(), 30);
    let mut sent = 0;
    let mut send = |h: &SinkHandle, n: i64| {
        for _ in 0..n {
            h.send(sample_points(sent));
            sent += 1;
            std::thread::sleep(Duration::from_millis(2));
        }
    };
    send(&h, 100);
    h.flush();
    assert_eq!(influx_counts(&server), (200, 100));
    server.stop();
    send(&h, 150);
    h.flush();
    let spooled = h
        .stats
        .spool_depth
        .load(std::sync::atomic::Ordering::Relaxed);
    assert!(spooled > 0, "the outage must have spooled batches");
    server.start();
    send(&h, 50);
    h.flush();
    let stats = h.stats.clone();
    h.close();
    assert_eq!(sent, 300);
    // Exactly once: every sample's three points, no more.
    assert_eq!(influx_counts(&server), (600, 300), "{}", server.log());
    assert_eq!(
        stats.spool_depth.load(std::sync::atomic::Ordering::Relaxed),
        0
    );
    assert!(!dir.path().join("dead_letter.lp").exists());
}

#[test]
fn v2_api_points_arrive_in_a_v2_write_server() {
    if !servers::require(
        "victoria-metrics",
        "v2_api_points_arrive_in_a_v2_write_server",
    ) {
        return;
    }
    let server = servers::victoria_metrics();
    let dir = tempfile::tempdir().unwrap();
    let h = start(target(Api::V2, server.url(), "cpu"), dir.path(), 50);
    // VictoriaMetrics keeps one month by default: write recent points.
    let base = chrono::Utc::now().timestamp() - 7200;
    for i in 0..120 {
        h.send(sample_points_from(base, i));
    }
    h.close();
    assert!(!dir.path().join("dead_letter.lp").exists());
    servers::get(&format!("{}/internal/force_flush", server.url()));
    let count = |metric: &str, filter: &str| -> usize {
        let (s, body) = servers::get(&format!(
            "{}/api/v1/export?match[]={metric}{filter}&start=0",
            server.url()
        ));
        assert_eq!(s, 200, "{body}");
        body.lines()
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).unwrap();
                v["values"].as_array().unwrap().len()
            })
            .sum()
    };
    // VictoriaMetrics names a series `measurement_field`, tags become labels.
    assert_eq!(
        count("cpu_metrics_cpu_usage", "{metric_type=\"actual\"}"),
        120
    );
    assert_eq!(
        count("cpu_metrics_cpu_usage", "{metric_type=\"forecasted\"}"),
        120
    );
    assert_eq!(
        count("anomaly_detection_anomaly_score", "{host=\"web-1\"}"),
        120
    );
    assert_eq!(
        count("anomaly_detection_is_anomaly", "{severity=\"CRITICAL\"}"),
        12
    );
}

/// A scripted HTTP peer: answers the n-th request with `replies[n]` and
/// records when each arrived. No real server here answers 429 or 503 on
/// demand, so the retry rules are checked against this one.
fn scripted_server(replies: Vec<&'static str>) -> (String, std::thread::JoinHandle<Vec<Instant>>) {
    use std::io::{BufRead, BufReader, Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let handle = std::thread::spawn(move || {
        let mut seen = Vec::new();
        for reply in replies {
            let (stream, _) = listener.accept().unwrap();
            seen.push(Instant::now());
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut len = 0;
            loop {
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap();
                }
                if line == "\r\n" {
                    break;
                }
            }
            let mut body = vec![0; len];
            reader.read_exact(&mut body).unwrap();
            (&stream).write_all(reply.as_bytes()).unwrap();
        }
        seen
    });
    (url, handle)
}

#[test]
fn throttling_and_server_errors_are_retried_honouring_retry_after() {
    use cpu_anomaly::sink::influx::{Outcome, Writer};
    let (url, server) = scripted_server(vec![
        "HTTP/1.1 429 Too Many Requests\r\nRetry-After: 1\r\nContent-Length: 4\r\nConnection: close\r\n\r\nslow",
        "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 4\r\nConnection: close\r\n\r\nbusy",
        "HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n",
    ]);
    let mut t = target(Api::V2, url, "cpu");
    t.retries = 3;
    t.backoff = Duration::from_millis(10);
    let (outcome, _) = Writer::new(t).write(
        b"m v=1 1\n",
        None,
        &std::sync::atomic::AtomicBool::new(false),
    );
    assert_eq!(outcome, Outcome::Written);
    let seen = server.join().unwrap();
    assert_eq!(seen.len(), 3);
    assert!(
        seen[1] - seen[0] >= Duration::from_millis(950),
        "Retry-After: 1 honoured"
    );
    assert!(
        seen[2] - seen[1] < Duration::from_millis(900),
        "503: the short backoff"
    );
}

#[test]
fn other_client_errors_are_not_retried() {
    use cpu_anomaly::sink::influx::{Outcome, Writer};
    let (url, server) = scripted_server(vec![
        "HTTP/1.1 400 Bad Request\r\nContent-Length: 25\r\nConnection: close\r\n\r\nunable to parse 'm v=': x",
    ]);
    let mut t = target(Api::V1, url, "cpu");
    t.retries = 3;
    let (outcome, _) =
        Writer::new(t).write(b"m v=\n", None, &std::sync::atomic::AtomicBool::new(false));
    assert_eq!(
        outcome,
        Outcome::Rejected {
            status: 400,
            reason: "unable to parse 'm v=': x".into()
        }
    );
    assert_eq!(server.join().unwrap().len(), 1);
}

/// Every printable ASCII byte in a label, backslashes at the end and a 100 kB
/// label, through the real influxd: each value comes back as it was sent
/// (or altered as `schema` documents), and no batch is refused.
#[test]
fn every_printable_byte_in_a_label_round_trips_through_influxd() {
    if !servers::require("influxd", "every_printable_byte_in_a_label_round_trips") {
        return;
    }
    let server = servers::influxd("cpu");
    let dir = tempfile::tempdir().unwrap();
    let h = start(target(Api::V1, server.url(), "cpu"), dir.path(), 40);
    // (sent, stored)
    let mut cases: Vec<(String, String)> = (0x20u8..=0x7e)
        .flat_map(|b| {
            let c = b as char;
            [format!("a{c}b"), format!("{c}z"), format!("y{c}{c}")]
        })
        .map(|v| {
            let stored = if v.ends_with('\\') {
                format!("{v} ")
            } else {
                v.clone()
            };
            (v, stored)
        })
        .collect();
    cases.push(("a\\,b\\=c\\ d".into(), "a\\,b\\=c\\ d".into()));
    cases.dedup();
    let long = "x".repeat(100_000);
    let mut points: Vec<schema::Point> = cases
        .iter()
        .chain(std::iter::once(&(long.clone(), String::new())))
        .enumerate()
        .map(|(i, (v, _))| schema::Point {
            measurement: "labels",
            tags: vec![("host", v.clone())],
            fields: vec![("v", schema::FieldValue::Float(i as f64))],
            timestamp: 1_750_000_000 + i as i64,
        })
        .collect();
    let n = points.len() as u64;
    for chunk in points.chunks_mut(7) {
        h.send(chunk.to_vec());
    }
    let stats = h.stats.clone();
    h.close();
    assert_eq!(
        stats
            .points_dead_lettered
            .load(std::sync::atomic::Ordering::Relaxed),
        0
    );
    assert!(!dir.path().join("dead_letter.lp").exists());
    assert_eq!(influx_count(&server, "cpu", "v", "labels"), n);
    let v = servers::influxql(
        &server,
        "cpu",
        "SHOW TAG VALUES FROM labels WITH KEY = host",
    );
    let stored: std::collections::BTreeSet<String> = v["results"][0]["series"][0]["values"]
        .as_array()
        .expect("tag values")
        .iter()
        .map(|r| r[1].as_str().unwrap().to_string())
        .collect();
    for (sent, want) in &cases {
        assert!(stored.contains(want), "{sent:?} was not stored as {want:?}");
    }
    let cut: Vec<_> = stored.iter().filter(|s| s.starts_with("xxxx")).collect();
    assert_eq!(cut.len(), 1, "{cut:?}");
    assert!(
        cut[0].len() <= schema::MAX_TAG_VALUE_BYTES,
        "{}",
        cut[0].len()
    );
    assert_eq!(stored.len(), cases.len() + 1);
    let altered = stats
        .tags_altered
        .load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(
        altered,
        1 + cases.iter().filter(|(s, w)| s != w).count() as u64
    );
}

/// A stand-in for the InfluxDB 2 management API (no InfluxDB 2 runs here):
/// `/health` passes; `/api/v2/orgs` and `/api/v2/buckets` list `orgs` and
/// `buckets` by the `org`/`name` asked for; every answer is `status` when
/// that is not 200. Serves until the test ends.
fn influxdb2_stand_in(
    status: u16,
    orgs: &'static [&'static str],
    buckets: &'static [&'static str],
) -> String {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut request = String::new();
            reader.read_line(&mut request).unwrap();
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap() == 0 || line == "\r\n" {
                    break;
                }
            }
            let path = request.split(' ').nth(1).unwrap_or("/").to_string();
            let asked = |key: &str| {
                path.split(['?', '&'])
                    .find_map(|kv| kv.strip_prefix(key))
                    .unwrap_or("")
                    .to_string()
            };
            let (code, body) = if path.starts_with("/health") {
                (
                    200,
                    r#"{"name":"influxdb","status":"pass","version":"v2.7.11","checks":[]}"#
                        .to_string(),
                )
            } else if status != 200 {
                (
                    status,
                    r#"{"code":"unauthorized","message":"unauthorized access"}"#.to_string(),
                )
            } else if path.starts_with("/api/v2/orgs") {
                let name = asked("org=");
                if orgs.contains(&name.as_str()) {
                    (
                        200,
                        format!(r#"{{"orgs":[{{"id":"0000000000000001","name":"{name}"}}]}}"#),
                    )
                } else {
                    (
                        404,
                        format!(
                            r#"{{"code":"not found","message":"organization name \"{name}\" not found"}}"#
                        ),
                    )
                }
            } else if path.starts_with("/api/v2/buckets") {
                let name = asked("name=");
                let list: Vec<String> = buckets
                    .iter()
                    .filter(|b| **b == name)
                    .map(|b| format!(r#"{{"id":"0000000000000002","orgID":"0000000000000001","name":"{b}","retentionRules":[]}}"#))
                    .collect();
                (200, format!(r#"{{"buckets":[{}]}}"#, list.join(",")))
            } else {
                (404, "{}".to_string())
            };
            let reply = format!(
                "HTTP/1.1 {code} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = (&stream).write_all(reply.as_bytes());
        }
    });
    url
}

#[test]
fn influxdb2_start_up_check_finds_missing_org_bucket_and_refused_token() {
    use cpu_anomaly::sink::influx2::{check, CheckError, Readiness};
    let within = Duration::from_secs(5);
    let t = |url: String| Target {
        org: "ops".into(),
        bucket: "cpu".into(),
        ..target(Api::V2, url, "cpu")
    };
    let ok = influxdb2_stand_in(200, &["ops"], &["cpu"]);
    assert_eq!(
        check(&t(ok), within),
        Ok(Readiness::Ready {
            version: "v2.7.11".into()
        })
    );
    let no_bucket = influxdb2_stand_in(200, &["ops"], &["other"]);
    let e = check(&t(no_bucket), within).unwrap_err();
    assert!(matches!(e, CheckError::BucketMissing { .. }), "{e}");
    assert!(
        e.to_string().contains("influx bucket create -n cpu -o ops"),
        "{e}"
    );
    let no_org = influxdb2_stand_in(200, &["dev"], &["cpu"]);
    let e = check(&t(no_org), within).unwrap_err();
    assert!(matches!(e, CheckError::OrgMissing { .. }), "{e}");
    let refused = influxdb2_stand_in(401, &["ops"], &["cpu"]);
    let e = check(&t(refused), within).unwrap_err();
    assert!(
        matches!(e, CheckError::Unauthorized { status: 401, .. }),
        "{e}"
    );
    assert!(!e.to_string().contains("test-token"), "{e}");
    let port = servers::free_port();
    assert!(matches!(
        check(&t(format!("http://127.0.0.1:{port}")), within),
        Ok(Readiness::Unreachable(_))
    ));
}

#[test]
fn influxdb2_start_up_check_writes_on_to_a_v2_write_server_that_is_not_influxdb2() {
    if !servers::require("victoria-metrics", "influxdb2_start_up_check_not_influxdb2") {
        return;
    }
    let vm = servers::victoria_metrics();
    let r = cpu_anomaly::sink::influx2::check(
        &target(Api::V2, vm.url(), "cpu"),
        Duration::from_secs(5),
    );
    assert!(
        matches!(
            r,
            Ok(cpu_anomaly::sink::influx2::Readiness::NotInfluxDb2(_))
        ),
        "{r:?}"
    );
}

#[test]
fn a_missing_bucket_stops_the_monitor_with_exit_2_and_what_to_do() {
    let url = influxdb2_stand_in(200, &["cpu-anomaly"], &["other"]);
    let dir = tempfile::tempdir().unwrap();
    let out = crate::common::bin()
        .args(["--mode", "monitor", "--max-ticks", "1"])
        .env("INFLUXDB_ENABLED", "true")
        .env("INFLUXDB_API", "v2")
        .env("INFLUXDB_URL", &url)
        .env("INFLUXDB_BUCKET", "cpu_metrics")
        .env("API_LISTEN", "")
        .env("LOG_DIR", dir.path().join("logs"))
        .env(
            "PROMETHEUS_URL",
            format!("http://127.0.0.1:{}", servers::free_port()),
        )
        .current_dir(dir.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("no bucket `cpu_metrics` in organisation `cpu-anomaly`"),
        "{stderr}"
    );
    assert_eq!(
        stderr.matches("no bucket").count(),
        1,
        "printed once: {stderr}"
    );
}

/// A spooled batch that is not UTF-8 and one that cannot be read at all do
/// not stop the replay: the good ones arrive oldest first, the unreadable
/// one is quarantined, and nothing newer goes ahead of them.
#[test]
fn an_unreadable_or_non_utf8_spooled_batch_does_not_stop_replay() {
    if !servers::require("influxd", "an_unreadable_or_non_utf8_spooled_batch") {
        return;
    }
    let server = servers::influxd("cpu");
    let dir = tempfile::tempdir().unwrap();
    let spool = dir.path().join("spool");
    std::fs::create_dir_all(&spool).unwrap();
    let name = |i: u64| spool.join(format!("{i:020}.lp"));
    let good = |host: &str| {
        (0..10)
            .map(|k| {
                format!(
                    "cpu_metrics,host={host} cpu_usage={k} {}\n",
                    1_750_000_000 + k
                )
            })
            .collect::<String>()
    };
    std::fs::write(name(0), good("a")).unwrap();
    std::fs::write(
        name(1),
        b"cpu_metrics,host=\xff\xfe cpu_usage=1 1750000000\n",
    )
    .unwrap();
    std::fs::create_dir(name(2)).unwrap();
    std::fs::write(name(3), good("b")).unwrap();
    let h = start(target(Api::V1, server.url(), "cpu"), dir.path(), 50);
    h.send(sample_points(0));
    let stats = h.stats.clone();
    h.close();
    let count = |host: &str| {
        let v = servers::influxql(
            &server,
            "cpu",
            &format!("SELECT count(cpu_usage) FROM cpu_metrics WHERE host = '{host}'"),
        );
        v["results"][0]["series"][0]["values"][0][1]
            .as_u64()
            .unwrap_or(0)
    };
    assert_eq!((count("a"), count("b"), count("web-1")), (10, 10, 2));
    assert_eq!(
        stats
            .batches_quarantined
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
    assert!(spool
        .join("quarantine")
        .join(name(2).file_name().unwrap())
        .is_dir());
    let left: Vec<_> = std::fs::read_dir(&spool)
        .unwrap()
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "lp"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}
