//! Capacity warnings end to end: the binary monitors a real VictoriaMetrics
//! (Prometheus' query API) where one host of three ramps towards saturation
//! in real time. Before its CPU reaches the threshold the monitor warns, and
//! the warning reaches every output: a `capacity_warning` point in the
//! line-protocol file, `alerts.jsonl`, `/api/capacity`, `/metrics`
//! (`cpu_anomaly_capacity_crossing_seconds`) and a real Alertmanager
//! (`CpuCapacityWarning`). The two steady hosts get no warning.
//!
//! Time is compressed: `capacity_horizon: 60s` (the shipped 30 minutes
//! works the same on a longer clock; `examples/capacity_lead.rs` measures
//! it).

use std::{
    process::{Child, Stdio},
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use crate::common::{bin, fleet::line, servers};

const RAMP: &str = "ramp:9100";
const STEADY: [&str; 2] = ["steady-1:9100", "steady-2:9100"];
/// Points a second the ramp climbs.
const SLOPE: f64 = 0.5;
const START: f64 = 60.0;

fn now_f() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// A steady host's value at `t`.
fn steady(i: usize, t: i64) -> f64 {
    30.0 + 5.0 * i as f64 + ((t as f64) / 7.0).sin()
}

struct Kill(Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_host_ramping_to_saturation_is_warned_of_before_it_gets_there() {
    if !servers::require("victoria-metrics", "a_host_ramping_to_saturation")
        || !servers::require("prometheus-alertmanager", "a_host_ramping_to_saturation")
    {
        return;
    }
    // The live samples are seen as they arrive (not 30 s late).
    let vm = servers::victoria_metrics_with(&["-search.latencyOffset=0s"]);
    let am =
        servers::alertmanager("route:\n  receiver: none\nreceivers:\n  - name: none\n".to_string());
    // Three days of 5-minute history: the ramp host idles near 60 %.
    let end = chrono::Utc::now().timestamp() / 300 * 300;
    let hist: Vec<i64> = (0..=3 * 288).map(|k| end - 3 * 86_400 + k * 300).collect();
    let mut body = line(
        RAMP,
        &hist
            .iter()
            .map(|&t| (t, START + ((t as f64) / 11.0).sin()))
            .collect::<Vec<_>>(),
    );
    for (i, h) in STEADY.iter().enumerate() {
        body.push_str(&line(
            h,
            &hist.iter().map(|&t| (t, steady(i, t))).collect::<Vec<_>>(),
        ));
    }
    let (status, text) = servers::post(&format!("{}/api/v1/import", vm.url()), &body);
    assert_eq!(status, 204, "{text}");
    let (status, text) = servers::get(&format!("{}/internal/force_flush", vm.url()));
    assert_eq!(status, 200, "{text}");

    // Live samples every second; the ramp starts when `ramp_at` is set.
    let stop = Arc::new(AtomicBool::new(false));
    let ramp_at = Arc::new(std::sync::Mutex::new(None::<f64>));
    let pusher = {
        let (stop, ramp_at, url) = (stop.clone(), ramp_at.clone(), vm.url());
        std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                let t = now_f();
                let ts = t as i64;
                let v = match *ramp_at.lock().unwrap() {
                    Some(r) if t > r => (START + SLOPE * (t - r)).min(99.0),
                    _ => START + ((ts as f64) / 11.0).sin(),
                };
                let mut b = line(RAMP, &[(ts, v)]);
                for (i, h) in STEADY.iter().enumerate() {
                    b.push_str(&line(h, &[(ts, steady(i, ts))]));
                }
                servers::post(&format!("{url}/api/v1/import"), &b);
                std::thread::sleep(Duration::from_millis(500));
            }
        })
    };

    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let api = format!("127.0.0.1:{}", servers::free_port());
    let cfg = dir.join("config.yaml");
    std::fs::write(
        &cfg,
        format!(
            "prometheus_url: {}\nprometheus_query: cpu_busy_percent\nmonitoring_interval: 1\n\
             log_dir: {}\nmodel_path: {}\napi_listen: \"{api}\"\nalertmanager_url: {}\n\
             capacity_threshold: 90\ncapacity_horizon: 60s\ninfluxdb:\n  flush_interval: 1\n",
            vm.url(),
            dir.join("logs").display(),
            dir.join("models/m.json").display(),
            am.url(),
        ),
    )
    .unwrap();
    let _child = Kill(
        bin()
            .args(["--mode", "monitor", "--config"])
            .arg(&cfg)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("stderr.log")).unwrap())
            .spawn()
            .unwrap(),
    );
    let stderr = || std::fs::read_to_string(dir.join("stderr.log")).unwrap_or_default();
    // Every host judged first.
    let start = Instant::now();
    loop {
        let (code, body) = servers::get(&format!("http://{api}/health"));
        if code == 200 {
            let h: serde_json::Value = serde_json::from_str(&body).unwrap();
            if h["series"] == 3 && h["warming_up"].as_array().is_some_and(|w| w.is_empty()) {
                break;
            }
        }
        assert!(
            start.elapsed() < Duration::from_secs(90),
            "never judged\n{}",
            stderr()
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    let ramp_start = now_f() + 1.0;
    *ramp_at.lock().unwrap() = Some(ramp_start);
    let crossing = ramp_start + (90.0 - START) / SLOPE;

    // The warning comes before the crossing.
    let warned_at = loop {
        let (_, body) = servers::get(&format!("http://{api}/api/capacity"));
        let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
        if let Some(w) = v["active"]
            .as_array()
            .and_then(|a| a.iter().find(|w| w["series"] == RAMP))
        {
            assert_eq!(w["threshold"], 90.0, "{w}");
            break now_f();
        }
        assert!(
            now_f() < crossing + 30.0,
            "no capacity warning\n{body}\n{}",
            stderr()
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    if warned_at >= crossing {
        // What the monitor saw of the ramp, for the failure message.
        let metrics = std::fs::read_to_string(dir.join("logs/metrics.jsonl")).unwrap_or_default();
        let seen: Vec<&str> = metrics.lines().filter(|l| l.contains(RAMP)).collect();
        panic!(
            "warned {:.1} s after the crossing; ramp started at {ramp_start:.1}\n{}\n{}",
            warned_at - crossing,
            seen[seen.len().saturating_sub(80)..].join("\n"),
            stderr()
        );
    }
    let lead = crossing - warned_at;
    let (_, metrics) = servers::get(&format!("http://{api}/metrics"));
    assert!(
        metrics.contains(&format!(
            "cpu_anomaly_capacity_crossing_seconds{{series=\"{RAMP}\",host=\"{RAMP}\"}}"
        )),
        "{metrics}"
    );
    for h in STEADY {
        assert!(
            !metrics.contains(&format!("crossing_seconds{{series=\"{h}\"")),
            "{h}"
        );
    }
    // Alertmanager has it.
    let start = Instant::now();
    loop {
        let (_, body) = servers::get(&format!("{}/api/v2/alerts?active=true", am.url()));
        let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
        let names: Vec<(String, String)> = v
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|x| {
                        (
                            x["labels"]["alertname"].as_str().unwrap_or("").to_string(),
                            x["labels"]["host"].as_str().unwrap_or("").to_string(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        if names.contains(&("CpuCapacityWarning".into(), RAMP.into())) {
            assert!(
                !names
                    .iter()
                    .any(|(n, h)| n == "CpuCapacityWarning" && STEADY.contains(&h.as_str())),
                "{names:?}"
            );
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(20), "{body}");
        std::thread::sleep(Duration::from_millis(300));
    }
    // The line-protocol file and alerts.jsonl carry it.
    let start = Instant::now();
    loop {
        let points = std::fs::read_to_string(dir.join("logs/points.lp")).unwrap_or_default();
        let alerts = std::fs::read_to_string(dir.join("logs/alerts.jsonl")).unwrap_or_default();
        let point = points.lines().any(|l| {
            l.starts_with("capacity_warning,host=ramp:9100,") && l.contains("crossing_in_seconds=")
        });
        let event = alerts
            .lines()
            .any(|l| l.contains("\"capacity_warning\"") && l.contains(RAMP));
        if point && event {
            assert!(!points
                .lines()
                .any(|l| l.starts_with("capacity_warning,host=steady")));
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "point {point}, event {event}"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    stop.store(true, Ordering::SeqCst);
    let _ = pusher.join();
    eprintln!("capacity warning {lead:.1} s before the crossing (horizon 60 s)");
}
