//! Every query of the provisioned Grafana dashboard (panels and the host
//! variable) and alert rules, executed: the monitor writes to a real
//! influxd (v1 API), then each InfluxQL query runs against it with
//! Grafana's macros filled the way Grafana fills them (`$timeFilter`,
//! `$__interval`, `${host:regex}` with one host, several, and All), and
//! must return rows of the shape its panel expects, filtered by host.

use std::{collections::BTreeSet, path::Path};

use crate::common::{bin, servers};

/// (where, query, result format) of every provisioned query.
fn queries() -> Vec<(String, String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dash: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root.join("grafana/dashboards/cpu-anomaly.json")).unwrap(),
    )
    .unwrap();
    let mut out = Vec::new();
    for p in dash["panels"].as_array().unwrap() {
        for t in p["targets"].as_array().unwrap() {
            out.push((
                format!(
                    "{} {}",
                    p["title"].as_str().unwrap(),
                    t["refId"].as_str().unwrap()
                ),
                t["query"].as_str().unwrap().to_string(),
            ));
        }
    }
    for v in dash["templating"]["list"].as_array().unwrap() {
        out.push((
            format!("variable {}", v["name"].as_str().unwrap()),
            v["query"].as_str().unwrap().to_string(),
        ));
    }
    let alerts: serde_yaml::Value = serde_yaml::from_str(
        &std::fs::read_to_string(root.join("grafana/provisioning/alerting/cpu-anomaly.yml"))
            .unwrap(),
    )
    .unwrap();
    for r in alerts["groups"][0]["rules"].as_sequence().unwrap() {
        let d = &r["data"][0];
        let range = d["relativeTimeRange"]["from"].as_i64().unwrap();
        out.push((
            format!("alert {}", r["uid"].as_str().unwrap()),
            d["model"]["query"]
                .as_str()
                .unwrap()
                // Grafana's alerting fills $timeFilter from the rule's range.
                .replace(
                    "$timeFilter",
                    &format!("time >= now() - {range}s and time <= now()"),
                ),
        ));
    }
    out
}

/// Grafana's filling: the dashboard's time range (the last hour), an
/// interval, and the host variable as its regex format gives it
/// (`(a|b)` for several values, the `allValue` `.*` for All).
fn fill(q: &str, hosts: &str) -> String {
    q.replace("$timeFilter", "time >= now() - 1h and time <= now()")
        .replace("$__interval", "2s")
        .replace("${host:regex}", hosts)
}

/// The columns a query's series must have (after `time`).
fn columns(at: &str) -> &'static [&'static str] {
    match at {
        "CPU usage: actual vs forecast, band and anomalies A" => &["actual"],
        "CPU usage: actual vs forecast, band and anomalies B" => {
            &["forecast", "yhat_lower", "yhat_upper"]
        }
        "CPU usage: actual vs forecast, band and anomalies C" => &["anomaly"],
        "Anomaly points A" => &["actual", "yhat", "anomaly_score", "confidence", "severity"],
        "Current status A" | "Short-history hosts A" => &["last"],
        "Anomalies (last 1 h) A" => &["sum"],
        "Confidence A" => &["max"],
        "Anomaly rate (24 h) A" => &["mean"],
        "Severity breakdown A" | "alert cpu-anomaly-no-data" | "alert cpu-anomaly-alert" => {
            &["count"]
        }
        "Alert onsets A" => &["actual", "yhat", "anomaly_score", "severity"],
        "alert cpu-anomaly-rate-high" => &["mean"],
        "alert cpu-anomaly-sustained" => &["sum"],
        "Predicted time to capacity threshold A" => &["min"],
        "alert cpu-anomaly-capacity" => &["last"],
        other => panic!("no expected shape for {other}: add one"),
    }
}

#[test]
fn every_dashboard_and_alert_query_returns_what_its_panel_expects() {
    if !servers::require("influxd", "every_dashboard_and_alert_query_returns") {
        return;
    }
    let influx = servers::influxd("cpu");
    let dir = tempfile::tempdir().unwrap();
    // A narrow band (20 % interval, uncalibrated), no minimum effect and
    // no likelihood stage: most samples of every simulated host fall
    // outside it, so each host gets flagged samples and alert onsets within
    // its first judged polls (a 95 % band left a host without a flag in
    // 15 polls now and then);
    // a 1 % capacity threshold puts every host under a capacity warning.
    let cfg = dir.path().join("config.yaml");
    std::fs::write(
        &cfg,
        format!(
            "prometheus_url: http://127.0.0.1:{port}\nprometheus_retries: 0\nprometheus_timeout: 1\n\
             monitoring_interval: 1\nsimulation_after_failures: 1\nsimulation_series: 3\n\
             min_history: 3\ntraining_step: 1\nmodel: mstl\napi_listen: \"\"\n\
             threshold_multiplier: 1\ninterval_width: 0.2\nband_calibration: false\n\
             min_effect: 0\nalert_likelihood: 0\nalert_cooldown: 0\n\
             alert_clear_after: 0\ncapacity_threshold: 1\nlog_dir: {logs}\nmodel_path: {d}/models/model.json\n\
             dataset: {data}\ninfluxdb:\n  enabled: true\n  api: v1\n  url: {url}\n  bucket: cpu\n  \
             batch_size: 100\n  flush_interval: 1\n",
            port = servers::free_port(),
            logs = dir.path().join("logs").display(),
            d = dir.path().display(),
            data = Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("datasets/sample_cpu.csv")
                .display(),
            url = influx.url(),
        ),
    )
    .unwrap();
    let out = bin()
        .args(["--mode", "monitor", "--config"])
        .arg(&cfg)
        .args(["--max-ticks", "15"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let all_hosts: BTreeSet<String> = ["simulated-1", "simulated-2", "simulated-3"]
        .map(String::from)
        .into();
    let selections: [(&str, BTreeSet<String>); 3] = [
        ("simulated-2", ["simulated-2".to_string()].into()),
        (
            "(simulated-1|simulated-3)",
            ["simulated-1".to_string(), "simulated-3".to_string()].into(),
        ),
        (".*", all_hosts.clone()),
    ];
    let mut report = Vec::new();
    for (at, q) in queries() {
        if at.starts_with("variable") {
            let v = servers::influxql(&influx, "cpu", &q);
            let got: BTreeSet<String> = v["results"][0]["series"][0]["values"]
                .as_array()
                .unwrap_or_else(|| panic!("{at}: {v}"))
                .iter()
                .map(|r| r[1].as_str().unwrap().to_string())
                .collect();
            assert_eq!(got, all_hosts, "{at}");
            report.push(format!("{at}: {} hosts", got.len()));
            continue;
        }
        // Alert rules watch every host (one alert instance per host).
        let chosen = if at.starts_with("alert") {
            &selections[2..]
        } else {
            &selections[..]
        };
        for (regex, selected) in chosen {
            let filled = fill(&q, regex);
            let v = servers::influxql(&influx, "cpu", &filled);
            let res = &v["results"][0];
            assert!(res.get("error").is_none(), "{at}: {filled}\n{v}");
            let series = res["series"]
                .as_array()
                .unwrap_or_else(|| panic!("{at} with {regex}: no rows\n{filled}\n{v}"));
            let mut rows = 0;
            let mut hosts = BTreeSet::new();
            for s in series {
                let cols: Vec<&str> = s["columns"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|c| c.as_str().unwrap())
                    .collect();
                assert_eq!(cols[0], "time", "{at}");
                assert_eq!(&cols[1..], columns(&at), "{at}");
                rows += s["values"].as_array().unwrap().len();
                if let Some(h) = s["tags"]["host"].as_str() {
                    hosts.insert(h.to_string());
                }
            }
            assert!(rows > 0, "{at} with {regex}: empty\n{filled}");
            if q.contains("GROUP BY") && q.contains("\"host\"") && !hosts.is_empty() {
                assert!(hosts.is_subset(selected), "{at} with {regex}: {hosts:?}");
                if !q.contains("LIMIT") {
                    assert_eq!(&hosts, selected, "{at} with {regex}");
                }
            }
            if regex == &".*" {
                report.push(format!(
                    "{at}: {} series, {rows} rows{}",
                    series.len(),
                    if hosts.is_empty() {
                        String::new()
                    } else {
                        format!(", hosts {hosts:?}")
                    }
                ));
            }
        }
    }
    // What each query returned (with --nocapture; the note has it).
    for line in &report {
        println!("{line}");
    }
    assert!(report.len() >= 16, "{report:#?}");
}
