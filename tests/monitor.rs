//! `--mode monitor` end to end through the binary: on a bare machine
//! (simulation, local files), against real node exporter + Prometheus
//! feeding real InfluxDB 1.x, through a Prometheus outage, with bad PromQL,
//! and stopped by SIGTERM.

use std::{
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use crate::common::{bin, servers};

fn sample_dataset() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("datasets/sample_cpu.csv")
}

/// A config file for a fast monitor writing under `dir`.
fn config(dir: &Path, prometheus: &str, extra: &str) -> PathBuf {
    let path = dir.join("config.yaml");
    std::fs::write(
        &path,
        format!(
            "prometheus_url: {prometheus}\nprometheus_timeout: 2\nprometheus_retries: 0\n\
             monitoring_interval: 1\nsimulation_after_failures: 2\nmin_history: 3\ntraining_step: 1\n\
             api_listen: \"\"\n\
             log_dir: {logs}\nmodel_path: {models}/model.json\ndataset: {data}\n\
             {extra}",
            logs = dir.join("logs").display(),
            models = dir.join("models").display(),
            data = sample_dataset().display(),
        ),
    )
    .unwrap();
    path
}

fn monitor(cfg: &Path, ticks: u64) -> Command {
    let mut c = bin();
    c.args(["--mode", "monitor", "--config"])
        .arg(cfg)
        .args(["--max-ticks", &ticks.to_string()]);
    c
}

/// Starts a monitor that runs until [`stop_monitor`]; its stderr goes to
/// `dir/stderr.log`.
fn start_monitor(cfg: &Path, dir: &Path) -> std::process::Child {
    monitor(cfg, 1_000_000)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("stderr.log")).unwrap())
        .spawn()
        .unwrap()
}

/// SIGTERM, as systemd or Docker would send; returns the exit status and
/// the monitor's stderr.
fn stop_monitor(mut child: std::process::Child, dir: &Path) -> (std::process::ExitStatus, String) {
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let status = child.wait().unwrap();
    (
        status,
        std::fs::read_to_string(dir.join("stderr.log")).unwrap(),
    )
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(String::from)
        .collect()
}

fn unreachable_url() -> String {
    format!("http://127.0.0.1:{}", servers::free_port())
}

#[test]
fn bare_machine_falls_back_to_simulation_and_writes_local_files() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), &unreachable_url(), "");
    let out = monitor(&cfg, 6).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("SIMULATION"), "{stderr}");
    // The API is off in tests: no fixed port is bound.
    assert!(!stderr.contains("HTTP API on"), "{stderr}");
    // Not a terminal: no colour codes.
    assert!(!stderr.contains('\x1b'), "{stderr}");
    // A one-line summary at the end.
    assert!(
        stderr.contains("stopped after 6 polls:") && stderr.contains("points written"),
        "{stderr}"
    );
    // A live line per poll.
    assert_eq!(
        stdout
            .lines()
            .filter(|l| l.contains("| SIMULATION |"))
            .count(),
        6,
        "{stdout}"
    );
    let logs = dir.path().join("logs");
    let points = lines(&logs.join("points.lp"));
    let actual = points
        .iter()
        .filter(|l| {
            l.starts_with("cpu_metrics,host=simulated,metric_type=actual,source=simulation ")
        })
        .count();
    assert_eq!(actual, 6, "{points:?}");
    // Once the model is ready, forecasts and detections follow.
    assert!(points
        .iter()
        .any(|l| l.starts_with("anomaly_detection,host=simulated,")));
    assert_eq!(lines(&logs.join("metrics.jsonl")).len(), 6);
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(logs.join("system_report.json")).unwrap())
            .unwrap();
    assert_eq!(report["source"], "simulation");
    assert_eq!(report["ticks"], 6);
    // The application log file: JSON lines, the switch recorded.
    let app = lines(&logs.join("cpu-anomaly.log"));
    assert!(app.iter().any(|l| l.contains("SIMULATION")), "{app:?}");
    for l in &app {
        serde_json::from_str::<serde_json::Value>(l).unwrap();
    }
    assert_eq!(
        report["series"]["simulated"]["warming_up"], false,
        "{report}"
    );
    assert_eq!(
        report["series"]["simulated"]["trained_on"],
        sample_dataset().display().to_string()
    );
}

/// Samples the kept decision state of `series` has judged.
fn kept_seen(models: &Path, series: &str) -> u64 {
    let text = std::fs::read_to_string(models.join("decisions.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["format"], "cpu-anomaly-decisions", "{v}");
    v["series"][series]["seen"]
        .as_u64()
        .unwrap_or_else(|| panic!("no state of {series}: {v}"))
}

#[test]
fn a_restart_resumes_each_series_decision_state() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), &unreachable_url(), "");
    let models = dir.path().join("models");
    let out = monitor(&cfg, 6).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("kept the decision state of 1 series"),
        "{stderr}"
    );
    let first = kept_seen(&models, "simulated");
    assert!(first > 0, "the first run judged samples");
    // The second run goes on from what the first learnt.
    let out = monitor(&cfg, 4).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("resuming the decision state of 1 series from"),
        "{stderr}"
    );
    let second = kept_seen(&models, "simulated");
    assert!(
        second > first,
        "the state went on: {first} then {second} samples"
    );
    // Other alert settings: the series starts afresh, and says so.
    let cfg = config(dir.path(), &unreachable_url(), "threshold_multiplier: 4\n");
    let out = monitor(&cfg, 2).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("resuming the decision state of 0 series")
            && stderr.contains("1 start afresh"),
        "{stderr}"
    );
    assert!(kept_seen(&models, "simulated") < second, "a fresh state");
}

#[test]
fn the_decision_states_are_written_while_running_so_a_crash_keeps_them() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(
        dir.path(),
        &unreachable_url(),
        "decision_state_interval: 1\n",
    );
    let models = dir.path().join("models");
    let mut child = start_monitor(&cfg, dir.path());
    let start = Instant::now();
    let judged = loop {
        let seen = std::fs::read_to_string(models.join("decisions.json"))
            .ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            .and_then(|v| v["series"]["simulated"]["seen"].as_u64());
        if let Some(n) = seen.filter(|n| *n > 0) {
            break n;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "no decision state written while running after 60 s:\n{}",
            std::fs::read_to_string(dir.path().join("stderr.log")).unwrap()
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    // kill -9: no clean stop, so what is on disk was written while running.
    child.kill().unwrap();
    child.wait().unwrap();
    let stderr = std::fs::read_to_string(dir.path().join("stderr.log")).unwrap();
    assert!(!stderr.contains("kept the decision state"), "{stderr}");
    let out = monitor(&cfg, 2).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("resuming the decision state of 1 series from"),
        "{stderr}"
    );
    assert!(
        kept_seen(&models, "simulated") >= judged,
        "the restart went on from the {judged} samples judged before the crash"
    );
}

#[test]
fn a_kept_state_no_series_claims_is_kept_for_a_week() {
    // A host absent from the next run (Prometheus down, the host being
    // rebuilt) keeps its state in the file while its last sample is under
    // a week old; an older one is dropped.
    let dir = tempfile::tempdir().unwrap();
    let models = dir.path().join("models");
    let cfg = config(dir.path(), &unreachable_url(), "");
    let out = monitor(&cfg, 4).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let seen = kept_seen(&models, "simulated");
    assert!(seen > 0);
    // Two other hosts: `simulated` does not come back.
    let two = config(dir.path(), &unreachable_url(), "simulation_series: 2\n");
    let out = monitor(&two, 3).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(kept_seen(&models, "simulated"), seen, "carried as it was");
    assert!(kept_seen(&models, "simulated-1") > 0);
    // Its last sample eight days back: dropped at the next write.
    let file = models.join("decisions.json");
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    let last = v["series"]["simulated"]["last_ts"].as_i64().unwrap();
    v["series"]["simulated"]["last_ts"] = (last - 8 * 86_400).into();
    std::fs::write(&file, v.to_string()).unwrap();
    let out = monitor(&two, 2).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    assert!(v["series"].get("simulated").is_none(), "{v}");
    assert!(v["series"].get("simulated-2").is_some(), "{v}");
}

/// Waits until Prometheus returns a value for the default query.
fn wait_for_cpu_rate(prom: &servers::Server) {
    let start = Instant::now();
    let url = format!(
        "{}/api/v1/query?query=100+*+(1+-+avg+by+(instance)+(rate(node_cpu_seconds_total%7Bmode%3D%22idle%22%7D%5B1m%5D)))",
        prom.url()
    );
    while start.elapsed() < Duration::from_secs(40) {
        let (_, body) = servers::get(&url);
        if body.contains("\"value\"") {
            return;
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    panic!(
        "no rate() value from Prometheus after 40 s:\n{}",
        prom.log()
    );
}

#[test]
fn prometheus_samples_reach_influxdb_with_forecasts_and_detections() {
    let name = "prometheus_samples_reach_influxdb";
    if !(servers::require("prometheus", name)
        && servers::require("prometheus-node-exporter", name)
        && servers::require("influxd", name))
    {
        return;
    }
    let node = servers::node_exporter();
    let prom = servers::prometheus(&[format!("127.0.0.1:{}", node.port)]);
    let influx = servers::influxd("cpu");
    wait_for_cpu_rate(&prom);
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(
        dir.path(),
        &prom.url(),
        &format!(
            "model: mstl\ninfluxdb:\n  enabled: true\n  api: v1\n  url: {}\n  bucket: cpu\n  batch_size: 5\n  flush_interval: 1\n",
            influx.url()
        ),
    );
    // A model needs 10 points of the series' own history: the first polls
    // warm up.
    let out = monitor(&cfg, 16).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(!stderr.contains("SIMULATION"), "{stderr}");
    let host = format!("127.0.0.1:{}", node.port);
    let count = |q: &str| -> u64 {
        let v = servers::influxql(&influx, "cpu", q);
        v["results"][0]["series"][0]["values"][0][1]
            .as_u64()
            .unwrap_or(0)
    };
    let actual = count(&format!(
        "SELECT count(cpu_usage) FROM cpu_metrics WHERE metric_type = 'actual' AND source = 'prometheus' AND host = '{host}'"
    ));
    assert_eq!(actual, 16, "one actual point per poll\n{stderr}");
    let forecasted =
        count("SELECT count(cpu_usage) FROM cpu_metrics WHERE metric_type = 'forecasted'");
    let detections = count("SELECT count(anomaly_score) FROM anomaly_detection");
    assert!(
        forecasted >= 3,
        "model ready within a few polls: {forecasted}\n{stderr}"
    );
    assert_eq!(forecasted, detections);
    // The values are real CPU percentages.
    let v = servers::influxql(
        &influx,
        "cpu",
        "SELECT max(cpu_usage), min(cpu_usage) FROM cpu_metrics WHERE metric_type = 'actual'",
    );
    let max = v["results"][0]["series"][0]["values"][0][1]
        .as_f64()
        .unwrap();
    let min = v["results"][0]["series"][0]["values"][0][2]
        .as_f64()
        .unwrap();
    assert!(
        (0.0..=100.0).contains(&min) && (0.0..=100.0).contains(&max),
        "{v}"
    );
    assert!(
        !dir.path().join("logs/points.lp").exists(),
        "InfluxDB enabled: no local file"
    );
}

#[test]
fn prometheus_outage_switches_to_simulation_and_back() {
    let name = "prometheus_outage_switches_to_simulation_and_back";
    if !(servers::require("prometheus", name) && servers::require("prometheus-node-exporter", name))
    {
        return;
    }
    let node = servers::node_exporter();
    let mut prom = servers::prometheus(&[format!("127.0.0.1:{}", node.port)]);
    wait_for_cpu_rate(&prom);
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(
        dir.path(),
        &prom.url(),
        "model: mstl\ninfluxdb:\n  flush_interval: 1\n",
    );
    let child = start_monitor(&cfg, dir.path());
    let points = dir.path().join("logs/points.lp");
    let sources = || -> Vec<String> {
        lines(&points)
            .iter()
            .filter(|l| l.contains("metric_type=actual"))
            .map(|l| {
                if l.contains("source=simulation") {
                    "simulation".to_string()
                } else {
                    "prometheus".to_string()
                }
            })
            .collect()
    };
    let wait_until = |what: &str, cond: &dyn Fn(&[String]) -> bool| {
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(60) {
            if cond(&sources()) {
                return;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        panic!("timed out waiting for {what}: {:?}", sources());
    };
    wait_until("real points", &|s| s.iter().any(|x| x == "prometheus"));
    prom.stop();
    wait_until("simulation points", &|s| {
        s.iter().any(|x| x == "simulation")
    });
    prom.start();
    wait_until("real points again", &|s| {
        s.iter()
            .skip_while(|x| *x != "simulation")
            .any(|x| x == "prometheus")
    });
    let (out, stderr) = stop_monitor(child, dir.path());
    assert!(out.success(), "SIGTERM must exit 0\n{stderr}");
    assert!(stderr.contains("answers again"), "{stderr}");
    let s = sources();
    let first_sim = s.iter().position(|x| x == "simulation").unwrap();
    assert!(s[..first_sim].iter().all(|x| x == "prometheus"), "{s:?}");
}

#[test]
fn bad_promql_stops_with_prometheus_message_and_exit_2() {
    if !servers::require("prometheus", "bad_promql_stops_with_prometheus_message") {
        return;
    }
    let prom = servers::prometheus(&[]);
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(
        dir.path(),
        &prom.url(),
        "prometheus_query: 'rate(node_cpu_seconds_total[1m]'\n",
    );
    let out = monitor(&cfg, 3).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("bad_data"), "{stderr}");
    assert!(stderr.contains("parse error"), "{stderr}");
    assert!(stderr.contains("prometheus_query"), "{stderr}");
}

#[test]
fn sigterm_flushes_pending_points_and_exits_0() {
    let dir = tempfile::tempdir().unwrap();
    // A long flush interval: only the shutdown flush can write the points.
    let cfg = config(
        dir.path(),
        &unreachable_url(),
        "influxdb:\n  flush_interval: 3600\n  batch_size: 100000\n",
    );
    let child = start_monitor(&cfg, dir.path());
    let metrics = dir.path().join("logs/metrics.jsonl");
    wait_lines(&metrics, "3 polls", |l| l.len() >= 3);
    assert!(!dir.path().join("logs/points.lp").exists());
    let (out, stderr) = stop_monitor(child, dir.path());
    assert!(out.success(), "{stderr}");
    let samples = lines(&metrics).len();
    let actual = lines(&dir.path().join("logs/points.lp"))
        .iter()
        .filter(|l| l.contains("metric_type=actual"))
        .count();
    assert_eq!(actual, samples, "every sample's point written at shutdown");
}

/// Waits until `cond` holds for the lines of `path`.
fn wait_lines(path: &Path, what: &str, cond: impl Fn(&[String]) -> bool) {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(60) {
        if cond(&lines(path)) {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("timed out waiting for {what}");
}

/// The (host, timestamp) of every sample in `metrics.jsonl`.
fn judged(metrics: &Path) -> std::collections::BTreeSet<(String, String)> {
    lines(metrics)
        .iter()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            (
                v["host"].as_str().unwrap().to_string(),
                v["timestamp"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// The number of `actual` points in InfluxDB.
fn actual_points(influx: &servers::Server) -> u64 {
    let v = servers::influxql(
        influx,
        "cpu",
        "SELECT count(cpu_usage) FROM cpu_metrics WHERE metric_type = 'actual'",
    );
    v["results"][0]["series"][0]["values"][0][1]
        .as_u64()
        .unwrap_or(0)
}

fn influx_config(dir: &Path, url: &str, extra: &str) -> PathBuf {
    config(
        dir,
        &unreachable_url(),
        &format!(
            "model: mstl\nsimulation_series: 5\ninfluxdb:\n  enabled: true\n  api: v1\n  url: {url}\n  \
             bucket: cpu\n{extra}"
        ),
    )
}

#[test]
fn kill_9_loses_no_judged_sample() {
    if !servers::require("influxd", "kill_9_loses_no_judged_sample") {
        return;
    }
    let influx = servers::influxd("cpu");
    let dir = tempfile::tempdir().unwrap();
    // Nothing is written before the kill: only the write-ahead log has it.
    let cfg = influx_config(
        dir.path(),
        &influx.url(),
        "  batch_size: 100000\n  flush_interval: 3600\n",
    );
    let mut child = start_monitor(&cfg, dir.path());
    let metrics = dir.path().join("logs/metrics.jsonl");
    wait_lines(&metrics, "4 polls", |l| l.len() >= 20);
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(actual_points(&influx), 0);
    let before = judged(&metrics);
    assert!(before.len() >= 20, "{}", before.len());
    // Restarted at once: its simulated samples are stamped after this
    // second, so none overwrites a point of the killed run.
    let out = monitor(&cfg, 1).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("found in the write-ahead log"), "{stderr}");
    let all = judged(&metrics);
    assert!(
        all.len() > before.len(),
        "{} {}\n{stderr}",
        all.len(),
        before.len()
    );
    assert_eq!(actual_points(&influx), all.len() as u64, "{stderr}");
    let wal = dir.path().join("logs/wal");
    assert_eq!(std::fs::read_dir(wal).unwrap().count(), 0);
}

/// A server that accepts connections and never answers (a hung InfluxDB).
fn black_hole() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for c in l.incoming().flatten() {
            held.push(c);
        }
    });
    url
}

#[test]
fn sigterm_with_influxdb_hung_spools_everything_and_the_next_run_writes_it() {
    if !servers::require("influxd", "sigterm_with_influxdb_hung") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // The shipped timeout and retries, against a server that never answers.
    let hung = influx_config(
        dir.path(),
        &black_hole(),
        "  batch_size: 50\n  flush_interval: 1\n",
    );
    let child = start_monitor(&hung, dir.path());
    let metrics = dir.path().join("logs/metrics.jsonl");
    wait_lines(&metrics, "5 polls", |l| l.len() >= 25);
    let (out, stderr) = stop_monitor(child, dir.path());
    assert!(out.success(), "{stderr}");
    let judged_before = judged(&metrics);
    // The next run, with InfluxDB back, writes every judged sample.
    let influx = servers::influxd("cpu");
    std::thread::sleep(Duration::from_millis(1100));
    let cfg = influx_config(
        dir.path(),
        &influx.url(),
        "  batch_size: 50\n  flush_interval: 1\n",
    );
    let out = monitor(&cfg, 1).output().unwrap();
    let stderr2 = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr2}");
    let all = judged(&metrics);
    assert!(all.len() > judged_before.len());
    assert_eq!(
        actual_points(&influx),
        all.len() as u64,
        "{stderr}\n---\n{stderr2}"
    );
    assert!(!dir.path().join("logs/dead_letter.lp").exists());
}

#[test]
fn influxdb_outage_during_monitoring_loses_and_duplicates_nothing() {
    if !servers::require("influxd", "influxdb_outage_during_monitoring") {
        return;
    }
    let mut influx = servers::influxd("cpu");
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(
        dir.path(),
        &unreachable_url(),
        &format!(
            "model: mstl\nsimulation_series: 3\ninfluxdb:\n  enabled: true\n  api: v1\n  url: {}\n  bucket: cpu\n  \
             batch_size: 20\n  flush_interval: 1\n  timeout: 1\n  retry_attempts: 1\n  retry_interval: 0.1\n",
            influx.url()
        ),
    );
    let child = start_monitor(&cfg, dir.path());
    let metrics = dir.path().join("logs/metrics.jsonl");
    wait_lines(&metrics, "3 polls", |l| l.len() >= 9);
    influx.stop();
    let at_stop = lines(&metrics).len();
    wait_lines(&metrics, "5 polls during the outage", |l| {
        l.len() >= at_stop + 15
    });
    let report: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("logs/system_report.json")).unwrap(),
    )
    .unwrap();
    assert!(report["spool_depth"].as_u64().unwrap() > 0, "{report}");
    influx.start();
    let at_start = lines(&metrics).len();
    wait_lines(&metrics, "3 polls after the outage", |l| {
        l.len() >= at_start + 9
    });
    let (out, stderr) = stop_monitor(child, dir.path());
    assert!(out.success(), "{stderr}");
    assert!(stderr.contains("spooled"), "{stderr}");
    // Every sample the monitor judged is in InfluxDB exactly once.
    let samples = lines(&metrics).len() as u64;
    let actual = {
        let v = servers::influxql(
            &influx,
            "cpu",
            "SELECT count(cpu_usage) FROM cpu_metrics WHERE metric_type = 'actual'",
        );
        v["results"][0]["series"][0]["values"][0][1]
            .as_u64()
            .unwrap_or(0)
    };
    assert_eq!(actual, samples, "{stderr}");
    let detections = lines(&metrics)
        .iter()
        .filter(|l| l.contains("\"warming_up\":false"))
        .count() as u64;
    assert_eq!(
        servers::influx_count(&influx, "cpu", "anomaly_score", "anomaly_detection"),
        detections
    );
    assert!(!dir.path().join("logs/dead_letter.lp").exists());
    assert_eq!(
        std::fs::read_dir(dir.path().join("logs/spool"))
            .unwrap()
            .count(),
        0
    );
}

#[test]
fn series_come_and_go_and_models_retrain_in_the_background() {
    let name = "series_come_and_go";
    if !(servers::require("prometheus", name) && servers::require("prometheus-node-exporter", name))
    {
        return;
    }
    let mut a = servers::node_exporter();
    let b_port = servers::free_port();
    let prom = servers::prometheus(&[
        format!("127.0.0.1:{}", a.port),
        format!("127.0.0.1:{b_port}"),
    ]);
    wait_for_cpu_rate(&prom);
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(
        dir.path(),
        &prom.url(),
        // A short rate() window: a stopped host leaves the results within
        // seconds (rate over [1m] would keep it for a minute).
        "model: mstl\nseries_grace_period: 2\nretrain_interval: 3\ninfluxdb:\n  flush_interval: 1\n\
         prometheus_query: '100 * (1 - avg by (instance) (rate(node_cpu_seconds_total{mode=\"idle\"}[4s])))'\n",
    );
    let child = start_monitor(&cfg, dir.path());
    let log = dir.path().join("stderr.log");
    let report = || -> serde_json::Value {
        std::fs::read_to_string(dir.path().join("logs/system_report.json"))
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_default()
    };
    let wait_report = |what: &str, cond: &dyn Fn(&serde_json::Value) -> bool| {
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(60) {
            if cond(&report()) {
                return;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        panic!(
            "timed out waiting for {what}: {}\n{}",
            report(),
            std::fs::read_to_string(&log).unwrap_or_default()
        );
    };
    let a_id = format!("127.0.0.1:{}", a.port);
    let b_id = format!("127.0.0.1:{b_port}");
    wait_report("series a ready", &|r| {
        r["series"][&a_id]["warming_up"] == false
    });
    // A host that appears later is picked up.
    let _b = servers::node_exporter_on(b_port);
    wait_report("series b", &|r| r["series"].get(&b_id).is_some());
    // Models are refitted in the background every retrain_interval.
    wait_report("a retrain", &|r| r["trainings"].as_u64().unwrap_or(0) >= 3);
    // A host that goes away is dropped after the grace period.
    a.stop();
    wait_report("series a dropped", &|r| {
        r["series_dropped"] == 1 && r["series"].get(&a_id).is_none()
    });
    let (out, stderr) = stop_monitor(child, dir.path());
    assert!(out.success(), "{stderr}");
    assert!(
        stderr.contains(&format!("series {a_id} has not been seen")),
        "{stderr}"
    );
    assert!(report()["series"][&b_id]["samples"].as_u64().unwrap() > 0);
}

#[test]
fn a_failed_retrain_keeps_the_old_model() {
    let dir = tempfile::tempdir().unwrap();
    // The simulated series trains on a copy of the dataset that then goes away.
    let data = dir.path().join("data.csv");
    std::fs::copy(sample_dataset(), &data).unwrap();
    let cfg = dir.path().join("config.yaml");
    std::fs::write(
        &cfg,
        format!(
            "prometheus_url: {}\nprometheus_retries: 0\nmonitoring_interval: 1\nretrain_interval: 2\napi_listen: \"\"\n\
             model: mstl\nlog_dir: {logs}\nmodel_path: {models}/model.json\ndataset: {data}\n",
            unreachable_url(),
            logs = dir.path().join("logs").display(),
            models = dir.path().join("models").display(),
            data = data.display(),
        ),
    )
    .unwrap();
    let child = start_monitor(&cfg, dir.path());
    let report = || -> serde_json::Value {
        std::fs::read_to_string(dir.path().join("logs/system_report.json"))
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_default()
    };
    let start = Instant::now();
    while report()["series"]["simulated"]["warming_up"] != false {
        assert!(start.elapsed() < Duration::from_secs(60), "{}", report());
        std::thread::sleep(Duration::from_millis(100));
    }
    std::fs::remove_file(&data).unwrap();
    while report()["training_failures"].as_u64().unwrap_or(0) < 2 {
        assert!(start.elapsed() < Duration::from_secs(60), "{}", report());
        std::thread::sleep(Duration::from_millis(100));
    }
    let r = report();
    let (status, stderr) = stop_monitor(child, dir.path());
    assert!(status.success(), "{stderr}");
    assert!(stderr.contains("keeping the old model"), "{stderr}");
    // Still detecting with the old model.
    assert_eq!(r["series"]["simulated"]["warming_up"], false, "{r}");
    let tail: Vec<String> = lines(&dir.path().join("logs/metrics.jsonl"))
        .into_iter()
        .rev()
        .take(2)
        .collect();
    assert!(
        tail.iter().all(|l| l.contains("\"warming_up\":false")),
        "{tail:?}"
    );
}

#[test]
fn the_model_of_mode_train_judges_the_simulated_series() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("models/model.json");
    let out = bin()
        .args(["--mode", "train", "--no-plots", "--no-eda", "--dataset"])
        .arg(sample_dataset())
        .arg("--model-path")
        .arg(&model)
        .arg("--output-dir")
        .arg(dir.path().join("out"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cfg = config(dir.path(), &unreachable_url(), "");
    let out = monitor(&cfg, 4).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!("model {} (prophet", model.display())),
        "{stderr}"
    );
    let report: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("logs/system_report.json")).unwrap(),
    )
    .unwrap();
    let s = &report["series"]["simulated"];
    assert_eq!(s["trained_on"], format!("model file {}", model.display()));
    assert_eq!(s["warming_up"], false, "{report}");
    // Judged with it: forecasts and detections after the first poll.
    let judged = lines(&dir.path().join("logs/metrics.jsonl"))
        .iter()
        .filter(|l| l.contains("\"warming_up\":false"))
        .count();
    assert!(judged >= 2, "{judged} judged samples\n{stderr}");
}

#[test]
fn a_model_selector_without_a_model_file_is_a_configuration_error() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(
        dir.path(),
        &unreachable_url(),
        "model_selector: '{instance=\"web-1:9100\"}'\n",
    );
    let out = monitor(&cfg, 2).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("model_path"), "{stderr}");
    assert!(stderr.contains("--mode train"), "{stderr}");
}

#[test]
fn history_restricted_to_a_few_series_works_on_real_prometheus() {
    let name = "history_restricted_to_a_few_series_works_on_real_prometheus";
    if !(servers::require("prometheus", name) && servers::require("prometheus-node-exporter", name))
    {
        return;
    }
    use cpu_anomaly::source::prometheus::{history, series_id, Client, PrometheusSettings};
    let a = servers::node_exporter();
    let b = servers::node_exporter();
    let prom = servers::prometheus(&[
        format!("127.0.0.1:{}", a.port),
        format!("127.0.0.1:{}", b.port),
    ]);
    wait_for_cpu_rate(&prom);
    let query =
        "100 * (1 - avg by (instance, job) (rate(node_cpu_seconds_total{mode=\"idle\"}[4s])))";
    let client = Client::new(&PrometheusSettings {
        url: prom.url(),
        timeout: Duration::from_secs(5),
        retries: 1,
        query: query.into(),
        history: Duration::from_secs(600),
        training_step: Duration::from_secs(1),
    });
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    // Both series exist; wait until the query returns both.
    let start = Instant::now();
    let rows = loop {
        let rows = rt.block_on(client.query(query)).unwrap();
        if rows.len() == 2 || start.elapsed() > Duration::from_secs(30) {
            break rows;
        }
        std::thread::sleep(Duration::from_millis(300));
    };
    assert_eq!(rows.len(), 2, "{rows:?}");
    let wanted_labels = rows
        .iter()
        .find(|r| r.labels["instance"] == format!("127.0.0.1:{}", a.port))
        .unwrap()
        .labels
        .clone();
    let wanted = vec![(series_id(&wanted_labels), wanted_labels)];
    // A fleet of 10 makes one series a small job: the query is restricted.
    // The exporters have just started: fetch until a few seconds exist.
    let start = Instant::now();
    loop {
        let now = chrono::Utc::now().timestamp();
        let (mut grid, stats) = rt
            .block_on(history::fetch(&client, query, &wanted, 10, now, 600, 1))
            .unwrap();
        assert!(stats.filtered);
        let h = grid.take(&wanted[0].0).unwrap();
        assert!(h
            .values
            .iter()
            .filter(|v| !v.is_nan())
            .all(|v| (0.0..=100.0).contains(v)));
        if h.count() >= 3 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "{} points after 30 s",
            h.count()
        );
        std::thread::sleep(Duration::from_secs(1));
    }
    // The restricted query returns that one series, the whole query both.
    struct Count(Vec<String>);
    impl cpu_anomaly::source::prometheus::reply::ResultSink for Count {
        fn series(&mut self, labels: cpu_anomaly::source::prometheus::Labels) -> bool {
            self.0.push(series_id(&labels));
            false
        }
        fn point(&mut self, _: f64, _: f64) {}
    }
    let now = chrono::Utc::now().timestamp();
    let count = |q: &str| {
        let sink = std::sync::Arc::new(std::sync::Mutex::new(Count(Vec::new())));
        rt.block_on(client.query_range_into(q, now - 60, now, 1, &sink))
            .unwrap();
        let mut ids = std::mem::take(&mut sink.lock().unwrap().0);
        ids.sort();
        ids
    };
    let restricted = history::filtered(query, &[&wanted[0].1]);
    assert_eq!(
        count(&restricted),
        vec![wanted[0].0.clone()],
        "{restricted}"
    );
    assert_eq!(count(query).len(), 2);
}
