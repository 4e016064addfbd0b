//! `alert_overrides` through the binary against a real VictoriaMetrics:
//! four hosts with two hours of history near 50 % jump to 80 %, which pages
//! under the top-level settings; an override gives two of them (picked by a
//! label selector) a band a thousand times as wide. The two outside the
//! group page, the two in it do not, and the monitor's log and report say
//! whom the group holds.

use std::{
    collections::BTreeSet,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::Duration,
};

use crate::common::{
    bin,
    fleet::{force_flush, import, line, now},
    servers,
};

const POLL: u64 = 1;
const HOSTS: [&str; 4] = ["web-1:9100", "web-2:9100", "batch-1:9100", "batch-2:9100"];

#[test]
fn a_group_of_series_alerts_with_its_own_settings() {
    if !servers::require(
        "victoria-metrics",
        "a_group_of_series_alerts_with_its_own_settings",
    ) {
        return;
    }
    // An instant query sees the last second's sample (by default
    // VictoriaMetrics hides the last 30 s).
    let vm = servers::victoria_metrics_with(&["-search.latencyOffset=0s"]);
    // Two hours of 1-minute history near 50 % (short-history models, ready
    // in the first poll or two) ...
    let t = now();
    let mut body = String::new();
    for h in HOSTS {
        let history: Vec<(i64, f64)> = (t - 7200..t - 60)
            .step_by(60)
            .map(|s| (s, 50.0 + f64::from((s / 60 % 3) as i32 - 1)))
            .collect();
        body.push_str(&line(h, &history));
    }
    import(&vm.url(), &body);
    force_flush(&vm.url());
    // ... then 80 % every second.
    let stop = Arc::new(AtomicBool::new(false));
    let pusher = {
        let (stop, url) = (stop.clone(), vm.url());
        std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                let body: String = HOSTS.iter().map(|h| line(h, &[(now(), 80.0)])).collect();
                servers::post(&format!("{url}/api/v1/import"), &body);
                std::thread::sleep(Duration::from_secs(POLL));
            }
        })
    };

    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let cfg = dir.join("config.yaml");
    std::fs::write(
        &cfg,
        format!(
            "prometheus_url: {}\nprometheus_query: cpu_busy_percent\nmonitoring_interval: {POLL}\n\
             training_step: 60\nmin_history: 3600\nlog_dir: {}\nmodel_path: {}\napi_listen: \"\"\n\
             # No likelihood gate: it needs more samples than this run judges.\n\
             alert_likelihood: 0\n\
             alert_overrides:\n  - selector: '{{instance=~\"batch-.*\"}}'\n    threshold_multiplier: 1000\n",
            vm.url(),
            dir.join("logs").display(),
            dir.join("models/model.json").display(),
        ),
    )
    .unwrap();
    let out = bin()
        .args(["--mode", "monitor", "--max-ticks", "20", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    stop.store(true, Ordering::SeqCst);
    pusher.join().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains(
            "alert_overrides[0]: series matching {instance=~\"batch-.*\"} alert with their own settings (multiplier 1000"
        ),
        "{stderr}"
    );
    let read = |name: &str| -> Vec<serde_json::Value> {
        std::fs::read_to_string(dir.join("logs").join(name))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    let series_of = |lines: &[serde_json::Value], pick: &dyn Fn(&serde_json::Value) -> bool| {
        lines
            .iter()
            .filter(|l| pick(l))
            .map(|l| l["series"].as_str().unwrap().to_string())
            .collect::<BTreeSet<String>>()
    };
    let metrics = read("metrics.jsonl");
    let at_80 = |l: &serde_json::Value| l["warming_up"] == false && l["cpu_usage"] == 80.0;
    assert_eq!(
        series_of(&metrics, &at_80),
        HOSTS.iter().map(|h| h.to_string()).collect(),
        "every host judged at 80 %\n{stderr}"
    );
    let web: BTreeSet<String> = HOSTS[..2].iter().map(|h| h.to_string()).collect();
    assert_eq!(
        series_of(&read("alerts.jsonl"), &|l| l["event"] == "firing"),
        web,
        "only the hosts outside the group page\n{stderr}"
    );
    assert_eq!(
        series_of(&read("anomalies.jsonl"), &|_| true),
        web,
        "the group's samples are judged against a band 1000 times as wide"
    );
    // The report says which settings each series alerts with.
    let report: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join("logs/system_report.json")).unwrap(),
    )
    .unwrap();
    for h in HOSTS {
        let want = if h.starts_with("batch-") {
            serde_json::json!("{instance=~\"batch-.*\"}")
        } else {
            serde_json::Value::Null
        };
        assert_eq!(report["series"][h]["alert_override"], want, "{h}");
    }
}
