//! Alert routing against a real Alertmanager (Debian
//! `prometheus-alertmanager`, on loopback): alerts arrive with their
//! labels and annotations, are grouped by host, resolve, and expire when
//! no longer refreshed; and the plain webhook, retried, against a local
//! receiver.

use std::{
    io::{BufRead, BufReader, Read, Write},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use crate::common::servers;
use cpu_anomaly::notify::{Alert, Notifier, NotifySettings};

/// A local HTTP receiver: answers `statuses[n]` to the n-th request (200
/// after the list) and keeps every body.
fn receiver(statuses: Vec<u16>) -> (String, Arc<Mutex<Vec<serde_json::Value>>>) {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", l.local_addr().unwrap());
    let bodies = Arc::new(Mutex::new(Vec::new()));
    let kept = bodies.clone();
    std::thread::spawn(move || {
        for (n, stream) in l.incoming().flatten().enumerate() {
            let mut r = BufReader::new(stream.try_clone().unwrap());
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
            let status = statuses.get(n).copied().unwrap_or(200);
            if status == 200 {
                kept.lock()
                    .unwrap()
                    .push(serde_json::from_slice(&body).unwrap());
            }
            let _ = (&stream).write_all(
                format!("HTTP/1.1 {status} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                    .as_bytes(),
            );
        }
    });
    (url, bodies)
}

fn alert(series: &str, host: &str, started: i64) -> Alert {
    Alert {
        series: series.into(),
        host: host.into(),
        severity: "HIGH".into(),
        value: 97.0,
        yhat: 40.0,
        lower: 30.0,
        upper: 50.0,
        score: 3.2,
        started,
        resolved: None,
        capacity: None,
    }
}

fn wait_for(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if cond() {
            return;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("timed out waiting for {what}");
}

/// Active alerts in Alertmanager, as (series, host, severity).
fn active(am: &servers::Server) -> Vec<(String, String, String)> {
    let (status, body) = servers::get(&format!("{}/api/v2/alerts?active=true", am.url()));
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let mut out: Vec<_> = v
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["status"]["state"] == "active")
        .map(|a| {
            let l = &a["labels"];
            (
                l["series"].as_str().unwrap().to_string(),
                l["host"].as_str().unwrap().to_string(),
                l["severity"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    out.sort();
    out
}

#[test]
fn alerts_reach_alertmanager_grouped_by_host_then_resolve_or_expire() {
    if !servers::require("prometheus-alertmanager", "alerts_reach_alertmanager") {
        return;
    }
    let (hook, groups) = receiver(Vec::new());
    let am = servers::alertmanager(format!(
        "route:\n  receiver: hook\n  group_by: [host]\n  group_wait: 1s\n  group_interval: 1s\n  \
         repeat_interval: 1h\nreceivers:\n  - name: hook\n    webhook_configs:\n      - url: {hook}\n        \
         send_resolved: true\n"
    ));
    let n = Notifier::spawn(NotifySettings {
        alertmanager_url: am.url(),
        dashboard_url: "http://grafana:3000/d/cpu-anomaly".into(),
        expire_after: Duration::from_secs(3),
        timeout: Duration::from_secs(5),
        ..NotifySettings::default()
    })
    .unwrap();
    let now = chrono::Utc::now().timestamp();
    let a = alert("web-1/a", "web-1", now - 60);
    let b = alert("web-1/b", "web-1", now - 30);
    let c = alert("db-1", "db-1", now - 10);
    n.poll(
        now,
        vec![a.clone(), b.clone(), c.clone()],
        vec![a.clone(), b.clone(), c.clone()],
    );
    wait_for("three active alerts", Duration::from_secs(20), || {
        active(&am).len() == 3
    });
    assert_eq!(
        active(&am),
        [
            ("db-1".into(), "db-1".into(), "high".into()),
            ("web-1/a".into(), "web-1".into(), "high".into()),
            ("web-1/b".into(), "web-1".into(), "high".into()),
        ]
    );
    let (_, body) = servers::get(&format!("{}/api/v2/alerts", am.url()));
    assert!(body.contains("\"value\":\"97.00\""), "{body}");
    assert!(body.contains("http://grafana:3000/d/cpu-anomaly"), "{body}");
    // Alertmanager notifies one group per host.
    wait_for("two group notifications", Duration::from_secs(20), || {
        groups.lock().unwrap().len() >= 2
    });
    {
        let g = groups.lock().unwrap();
        let mut by_host: Vec<(String, usize)> = g
            .iter()
            .map(|n| {
                (
                    n["groupLabels"]["host"].as_str().unwrap().to_string(),
                    n["alerts"].as_array().unwrap().len(),
                )
            })
            .collect();
        by_host.sort();
        assert_eq!(
            by_host[..2],
            [("db-1".into(), 1), ("web-1".into(), 2)],
            "{g:?}"
        );
    }
    // a resolves; b stays firing (refreshed); c is no longer refreshed, as
    // if its monitor had died, and expires.
    let mut resolved = a.clone();
    resolved.resolved = Some(chrono::Utc::now().timestamp());
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(6) {
        n.poll(
            chrono::Utc::now().timestamp(),
            vec![b.clone()],
            if start.elapsed() < Duration::from_millis(100) {
                vec![resolved.clone()]
            } else {
                Vec::new()
            },
        );
        std::thread::sleep(Duration::from_secs(1));
    }
    wait_for("only b active", Duration::from_secs(20), || {
        active(&am)
            == [(
                "web-1/b".to_string(),
                "web-1".to_string(),
                "high".to_string(),
            )]
    });
    wait_for("a resolved notification", Duration::from_secs(20), || {
        groups.lock().unwrap().iter().any(|g| {
            g["alerts"]
                .as_array()
                .unwrap()
                .iter()
                .any(|x| x["labels"]["series"] == "web-1/a" && x["status"] == "resolved")
        })
    });
    let stats = n.stats.clone();
    n.close();
    assert!(
        stats
            .alertmanager_posts
            .load(std::sync::atomic::Ordering::Relaxed)
            >= 2
    );
    assert_eq!(stats.failures.load(std::sync::atomic::Ordering::Relaxed), 0);
}

#[test]
fn the_webhook_gets_each_onset_and_resolution_retried() {
    // The first request fails (503): the retry delivers it.
    let (url, bodies) = receiver(vec![503]);
    let n = Notifier::spawn(NotifySettings {
        webhook_url: url,
        dashboard_url: "http://127.0.0.1:8080/".into(),
        expire_after: Duration::from_secs(60),
        timeout: Duration::from_secs(5),
        ..NotifySettings::default()
    })
    .unwrap();
    let now = chrono::Utc::now().timestamp();
    let a = alert("web-1", "web-1", now);
    n.poll(now, vec![a.clone()], vec![a.clone()]);
    let mut r = a.clone();
    r.resolved = Some(now + 30);
    n.poll(now + 30, Vec::new(), vec![r]);
    wait_for("two webhook events", Duration::from_secs(10), || {
        bodies.lock().unwrap().len() == 2
    });
    let stats = n.stats.clone();
    n.close();
    let b = bodies.lock().unwrap();
    assert_eq!(b[0]["event"], "firing");
    assert_eq!(b[0]["host"], "web-1");
    assert_eq!(b[0]["severity"], "HIGH");
    assert_eq!(b[0]["value"], 97.0);
    assert_eq!(b[0]["dashboard"], "http://127.0.0.1:8080/");
    assert_eq!(b[1]["event"], "resolved");
    assert!(b[1]["resolved_at"].is_string());
    assert_eq!(
        stats
            .webhook_events
            .load(std::sync::atomic::Ordering::Relaxed),
        2
    );
}

/// The monitor itself, as users run it: simulated hosts with a narrow band
/// fire alerts, and Alertmanager holds them with the monitor's labels.
#[test]
fn the_monitor_posts_its_alerts_to_alertmanager() {
    if !servers::require("prometheus-alertmanager", "the_monitor_posts_its_alerts") {
        return;
    }
    let am = servers::alertmanager(
        "route:\n  receiver: none\n  group_by: [host]\nreceivers:\n  - name: none\n".into(),
    );
    let dir = tempfile::tempdir().unwrap();
    let data = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("datasets/sample_cpu.csv");
    let out = crate::common::bin()
        .args(["--mode", "monitor", "--max-ticks", "15"])
        .env(
            "PROMETHEUS_URL",
            format!("http://127.0.0.1:{}", servers::free_port()),
        )
        .env("PROMETHEUS_RETRIES", "0")
        .env("MONITORING_INTERVAL", "1")
        .env("SIMULATION_SERIES", "3")
        .env("MIN_HISTORY", "3")
        .env("TRAINING_STEP", "1")
        .env("MODEL", "mstl")
        .env("THRESHOLD_MULTIPLIER", "1")
        // A 20 % uncalibrated band: most samples fall outside it, so an
        // alert fires in the first judged polls, not by chance.
        .env("INTERVAL_WIDTH", "0.2")
        .env("BAND_CALIBRATION", "false")
        .env("MIN_EFFECT", "0")
        .env("ALERT_LIKELIHOOD", "0")
        .env("API_LISTEN", "")
        .env("ALERTMANAGER_URL", am.url())
        .env("DASHBOARD_URL", "http://grafana.example/d/cpu-anomaly")
        .env("LOG_DIR", dir.path().join("logs"))
        .env("MODEL_PATH", dir.path().join("model.json"))
        .env("DATASET", &data)
        .current_dir(dir.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("alerts go to Alertmanager"), "{stderr}");
    let onsets = std::fs::read_to_string(dir.path().join("logs/alerts.jsonl"))
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains("\"firing\""))
        .count();
    assert!(onsets > 0, "no alert fired in 15 polls\n{stderr}");
    let (status, body) = servers::get(&format!("{}/api/v2/alerts", am.url()));
    assert_eq!(status, 200, "{body}");
    let alerts: serde_json::Value = serde_json::from_str(&body).unwrap();
    let alerts = alerts.as_array().unwrap();
    assert!(!alerts.is_empty(), "{body}\n{stderr}");
    for a in alerts {
        assert_eq!(a["labels"]["alertname"], "CpuAnomaly", "{a}");
        assert!(a["labels"]["host"]
            .as_str()
            .unwrap()
            .starts_with("simulated-"));
        assert!(a["annotations"]["score"].is_string(), "{a}");
        assert_eq!(a["generatorURL"], "http://grafana.example/d/cpu-anomaly");
    }
}
