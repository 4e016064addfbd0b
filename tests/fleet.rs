//! A real fleet through the binary against a real VictoriaMetrics (the
//! Prometheus query API): 250 distinct hosts, each with 7 days of 5-minute
//! history (over 10 MB of range-query replies in all), warm up on their own
//! history; a host that appears with only 2 hours of 1-minute history is
//! judged within two polls; and the model of `--mode train` judges the
//! series `model_selector` matches.

use std::{
    path::Path,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use crate::common::{
    bin,
    fleet::{import, import_history, now, Pusher},
    servers,
};
use cpu_anomaly::simulate::FleetHost;

const HOSTS: usize = 250;
const SEED: u64 = 1;
const POLL: u64 = 2;

fn report(dir: &Path) -> serde_json::Value {
    std::fs::read_to_string(dir.join("logs/system_report.json"))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default()
}

fn metric_lines(dir: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(dir.join("logs/metrics.jsonl"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

fn wait(what: &str, dir: &Path, timeout: Duration, cond: impl Fn(&serde_json::Value) -> bool) {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if cond(&report(dir)) {
            return;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let stderr = std::fs::read_to_string(dir.join("stderr.log")).unwrap_or_default();
    let tail: String = stderr.lines().rev().take(30).collect::<Vec<_>>().join("\n");
    panic!("timed out waiting for {what}\n{}\n{tail}", report(dir));
}

#[test]
fn a_fleet_warms_up_each_host_on_its_own_history() {
    if !servers::require(
        "victoria-metrics",
        "a_fleet_warms_up_each_host_on_its_own_history",
    ) {
        return;
    }
    let vm = servers::victoria_metrics();
    let end = now() / 300 * 300;
    let start = end - 7 * 86_400;
    let hosts: Vec<FleetHost> = (0..HOSTS)
        .map(|i| FleetHost::new(i, SEED, start, end))
        .collect();
    let ts: Vec<i64> = (start..=end).step_by(300).collect();
    import_history(&vm.url(), &hosts, &ts);
    let _pusher = Pusher::start(vm.url(), hosts.clone(), Duration::from_secs(POLL));
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();

    // The model of `--mode train`, from host 3's own history as a CSV.
    let picked = &hosts[3];
    let csv = dir.join("host3.csv");
    let mut text = "timestamp,cpu_usage\n".to_string();
    for &t in &ts {
        text.push_str(&format!("{t},{:.4}\n", picked.value_at(t)));
    }
    std::fs::write(&csv, text).unwrap();
    let model = dir.join("models/host3.json");
    let out = bin()
        .args(["--mode", "train", "--no-plots", "--no-eda", "--dataset"])
        .arg(&csv)
        .arg("--model-path")
        .arg(&model)
        .arg("--output-dir")
        .arg(dir.join("out"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let cfg = dir.join("config.yaml");
    std::fs::write(
        &cfg,
        format!(
            "prometheus_url: {}\nprometheus_query: cpu_busy_percent\nmonitoring_interval: {POLL}\n\
             log_dir: {}\nmodel_path: {}\nmodel_selector: '{{instance=\"{}\"}}'\napi_listen: \"\"\n",
            vm.url(),
            dir.join("logs").display(),
            model.display(),
            picked.instance()
        ),
    )
    .unwrap();
    let child = bin()
        .args(["--mode", "monitor", "--config"])
        .arg(&cfg)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("stderr.log")).unwrap())
        .spawn()
        .unwrap();
    let _guard = KillOnDrop(child);
    wait("every host judged", dir, Duration::from_secs(120), |r| {
        r["series_count"] == HOSTS && r["warming_up"] == 0
    });
    let r = report(dir);
    assert!(
        r["history_bytes"].as_u64().unwrap() > 10_000_000,
        "history read: {}",
        r["history_bytes"]
    );
    // Every host has a model of its own history (host 3: the model file).
    let series = r["series"].as_object().unwrap();
    for h in &hosts {
        let s = &series[&h.instance()];
        assert_eq!(s["warming_up"], false, "{}", h.instance());
        assert_eq!(s["short_history"], false, "{}", h.instance());
        let on = s["trained_on"].as_str().unwrap();
        if h.index == 3 {
            assert_eq!(on, format!("model file {}", model.display()));
        } else {
            assert_eq!(on, "2017 points of its own history", "{}", h.instance());
        }
    }
    // Each forecast follows its own host: near its normal level, so a host
    // with a distinctive level gets its own yhat. Seven days of history give
    // one weekly cycle, a smooth one (Fourier terms), so for some hours after
    // a weekend starts or ends the forecast lies between the level of the
    // day before and today's: near the host's level now, a day ago, or
    // between the two. (Run at Monday 00:20 UTC, 80 of 250 forecasts sat at
    // the weekend's level without a weekly cycle; 66 at 00:55 with one.)
    let lines = metric_lines(dir);
    let mut close = 0;
    for h in &hosts {
        let last = lines
            .iter()
            .rev()
            .find(|l| l["series"] == h.instance() && !l["yhat"].is_null())
            .unwrap_or_else(|| panic!("no judged sample of {}", h.instance()));
        let yhat = last["yhat"].as_f64().unwrap();
        let t = chrono::NaiveDateTime::parse_from_str(
            last["timestamp"].as_str().unwrap(),
            "%Y-%m-%d %H:%M:%S",
        )
        .unwrap()
        .and_utc()
        .timestamp();
        let (now, day_ago) = (h.normal_at(t), h.normal_at(t - 86_400));
        let tol = 3.0 * h.noise_sd + 2.0;
        if yhat >= now.min(day_ago) - tol && yhat <= now.max(day_ago) + tol {
            close += 1;
        }
    }
    assert!(
        close >= HOSTS * 95 / 100,
        "{close} of {HOSTS} forecasts near their host's level"
    );
    let (lo, hi) = (
        hosts
            .iter()
            .min_by(|a, b| a.base.total_cmp(&b.base))
            .unwrap(),
        hosts
            .iter()
            .max_by(|a, b| a.base.total_cmp(&b.base))
            .unwrap(),
    );
    let yhat_of = |h: &FleetHost| {
        lines
            .iter()
            .rev()
            .find(|l| l["series"] == h.instance() && !l["yhat"].is_null())
            .unwrap()["yhat"]
            .as_f64()
            .unwrap()
    };
    assert!(
        yhat_of(hi) - yhat_of(lo) > 40.0,
        "{} vs {}",
        yhat_of(hi),
        yhat_of(lo)
    );

    // A host that appears with only 2 hours of 1-minute history is judged
    // (as short history) within two polls.
    let short = FleetHost::new(90_000, SEED, end - 7200, end);
    let t_now = now();
    let recent: Vec<i64> = (t_now - 7200..=t_now).step_by(60).collect();
    let mut body = String::new();
    short.import_line(&mut body, &recent);
    import(&vm.url(), &body);
    let _short_pusher = Pusher::start(vm.url(), vec![short.clone()], Duration::from_secs(POLL));
    let id = short.instance();
    let start_wait = Instant::now();
    let mine = loop {
        let mine: Vec<serde_json::Value> = metric_lines(dir)
            .into_iter()
            .filter(|l| l["series"] == id)
            .collect();
        if mine.iter().any(|l| l["warming_up"] == false) {
            break mine;
        }
        assert!(
            start_wait.elapsed() < Duration::from_secs(60),
            "{id} never judged: {mine:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let warming = mine.iter().take_while(|l| l["warming_up"] == true).count();
    assert!(warming <= 2, "{id} judged after {warming} polls: {mine:?}");
    let judged = mine.iter().find(|l| l["warming_up"] == false).unwrap();
    assert_eq!(judged["short_history"], true, "{judged}");
}

struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        let _ = self.0.wait();
    }
}
