//! Sharded replicas through the binary against a real VictoriaMetrics
//! holding 300 distinct hosts with three days of history each:
//! - `replication_factor: 1`: three replicas judge disjoint sets of hosts
//!   that together are the whole fleet; `/health` and `/metrics` say so;
//! - `replication_factor: 2`: with one of three replicas stopped every host
//!   is still judged, and the two replicas of a host write identical points
//!   (same timestamps, tags and values), which is what lets InfluxDB
//!   overwrite one with the other.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use crate::common::{
    bin,
    fleet::{import_history, now, Pusher},
    servers,
};
use cpu_anomaly::simulate::FleetHost;

const HOSTS: usize = 300;
const SEED: u64 = 7;
const POLL: u64 = 2;

/// One replica: its directory and process.
struct Replica {
    dir: PathBuf,
    child: Option<Child>,
    api: Option<String>,
}

impl Replica {
    fn start(root: &Path, vm: &str, index: u32, rf: u32, api: bool) -> Replica {
        let dir = root.join(format!("replica-{index}"));
        std::fs::create_dir_all(&dir).unwrap();
        let api_addr = api.then(|| format!("127.0.0.1:{}", servers::free_port()));
        let cfg = dir.join("config.yaml");
        std::fs::write(
            &cfg,
            format!(
                "prometheus_url: {vm}\nprometheus_query: cpu_busy_percent\nmonitoring_interval: {POLL}\n\
                 log_dir: {}\nmodel_path: {}\napi_listen: \"{}\"\nmodel_workers: 1\n\
                 shard_count: 3\nreplication_factor: {rf}\ninfluxdb:\n  flush_interval: 1\n",
                dir.join("logs").display(),
                dir.join("models/m.json").display(),
                api_addr.clone().unwrap_or_default(),
            ),
        )
        .unwrap();
        let child = bin()
            .args(["--mode", "monitor", "--config"])
            .arg(&cfg)
            // The index as a StatefulSet gives it: the pod's host name.
            .env("SHARD_INDEX", "auto")
            .env("HOSTNAME", format!("cpu-anomaly-{index}"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("stderr.log")).unwrap())
            .spawn()
            .unwrap();
        Replica {
            dir,
            child: Some(child),
            api: api_addr.map(|a| format!("http://{a}")),
        }
    }

    fn report(&self) -> serde_json::Value {
        std::fs::read_to_string(self.dir.join("logs/system_report.json"))
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_default()
    }

    /// Hosts with a model (judged).
    fn judged(&self) -> BTreeSet<String> {
        let r = self.report();
        r["series"]
            .as_object()
            .map(|m| {
                m.iter()
                    .filter(|(_, s)| s["warming_up"] == false)
                    .map(|(k, _)| k.clone())
                    .collect()
            })
            .unwrap_or_default()
    }

    fn stderr(&self) -> String {
        let text = std::fs::read_to_string(self.dir.join("stderr.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// SIGTERM and wait (the points are flushed on the way out).
    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &c.id().to_string()])
                .status();
            let status = c.wait().unwrap();
            assert!(status.success(), "replica exit {status}\n{}", self.stderr());
        }
    }

    /// Line-protocol points by (host, timestamp).
    fn points(&self) -> BTreeMap<(String, i64), BTreeSet<String>> {
        let text = std::fs::read_to_string(self.dir.join("logs/points.lp")).unwrap_or_default();
        let mut out: BTreeMap<(String, i64), BTreeSet<String>> = BTreeMap::new();
        for line in text.lines() {
            let host = line
                .split(',')
                .find_map(|kv| kv.strip_prefix("host="))
                .map(|h| h.split([' ', ',']).next().unwrap().to_string())
                .unwrap_or_default();
            let ts: i64 = line.rsplit(' ').next().unwrap().parse().unwrap();
            out.entry((host, ts)).or_default().insert(line.to_string());
        }
        out
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn wait_all_judged(replicas: &[&Replica], want: usize, timeout: Duration) {
    let start = Instant::now();
    loop {
        let counts: Vec<(usize, usize)> = replicas
            .iter()
            .map(|r| {
                let rep = r.report();
                (
                    rep["series_count"].as_u64().unwrap_or(0) as usize,
                    r.judged().len(),
                )
            })
            .collect();
        let union: BTreeSet<String> = replicas.iter().flat_map(|r| r.judged()).collect();
        if union.len() >= want && counts.iter().all(|(n, j)| n == j && *n > 0) {
            return;
        }
        if start.elapsed() > timeout {
            let tails: Vec<String> = replicas.iter().map(|r| r.stderr()).collect();
            panic!(
                "after {timeout:?}: {} of {want} hosts judged; (known, judged) per replica {counts:?}\n{}",
                union.len(),
                tails.join("\n---\n")
            );
        }
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// Waits until the wall clock is not within `margin` seconds before a
/// multiple of 300 s (the training grid), so replicas started together fetch
/// the same history.
fn away_from_grid_boundary(margin: i64) {
    loop {
        let into = now().rem_euclid(300);
        if into < 300 - margin {
            return;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

fn fleet(vm: &servers::Server) -> Vec<FleetHost> {
    let end = now() / 300 * 300;
    let start = end - 3 * 86_400;
    let hosts: Vec<FleetHost> = (0..HOSTS)
        .map(|i| FleetHost::new(i, SEED, start, end))
        .collect();
    let ts: Vec<i64> = (start..=end).step_by(300).collect();
    import_history(&vm.url(), &hosts, &ts);
    hosts
}

#[test]
fn three_replicas_share_a_fleet_of_300_hosts() {
    if !servers::require(
        "victoria-metrics",
        "three_replicas_share_a_fleet_of_300_hosts",
    ) {
        return;
    }
    let t0 = Instant::now();
    let vm = servers::victoria_metrics();
    let hosts = fleet(&vm);
    eprintln!("history imported after {:.1?}", t0.elapsed());
    let all: BTreeSet<String> = hosts.iter().map(|h| h.instance()).collect();
    let _pusher = Pusher::start(vm.url(), hosts, Duration::from_secs(1));
    let root = tempfile::tempdir().unwrap();

    // replication_factor 1: disjoint shares that cover the fleet (no
    // points are compared, so no wait for the training grid).
    let mut one: Vec<Replica> = (0..3)
        .map(|i| Replica::start(&root.path().join("rf1"), &vm.url(), i, 1, i == 0))
        .collect();
    wait_all_judged(
        &one.iter().collect::<Vec<_>>(),
        HOSTS,
        Duration::from_secs(180),
    );
    eprintln!("rf=1: all judged after {:.1?}", t0.elapsed());
    let shares: Vec<BTreeSet<String>> = one.iter().map(Replica::judged).collect();
    let union: BTreeSet<String> = shares.iter().flatten().cloned().collect();
    assert_eq!(union, all, "together the replicas judge the fleet");
    let total: usize = shares.iter().map(BTreeSet::len).sum();
    assert_eq!(
        total,
        HOSTS,
        "each host by exactly one replica: {:?}",
        shares.iter().map(BTreeSet::len).collect::<Vec<_>>()
    );
    for (i, s) in shares.iter().enumerate() {
        assert!(
            (60..=140).contains(&s.len()),
            "replica {i} owns {}",
            s.len()
        );
        let rep = one[i].report();
        assert_eq!(rep["shard_index"], i as u64);
        assert_eq!(rep["shard_count"], 3);
        assert_eq!(rep["series_other_shards"], (HOSTS - s.len()) as u64);
    }
    // /health and /metrics of replica 0 tell its shard and what it owns.
    let api = one[0].api.clone().unwrap();
    let (code, body) = servers::get(&format!("{api}/health"));
    assert_eq!(code, 200, "{body}");
    let h: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(h["shard"]["index"], 0);
    assert_eq!(h["shard"]["count"], 3);
    assert_eq!(h["shard"]["replication_factor"], 1);
    assert_eq!(h["shard"]["series_owned"], shares[0].len() as u64);
    let (_, metrics) = servers::get(&format!("{api}/metrics"));
    assert!(
        metrics.contains(
            "cpu_anomaly_shard_info{shard_index=\"0\",shard_count=\"3\",replication_factor=\"1\"} 1"
        ),
        "{metrics}"
    );
    assert!(
        metrics.contains(&format!("cpu_anomaly_series_owned {}", shares[0].len())),
        "{metrics}"
    );
    for r in &mut one {
        r.stop();
    }
    drop(one);

    // replication_factor 2: stop one replica; the other two still judge
    // every host, and a host's two replicas write the same points. Every
    // replica fetches its histories within seconds of its start (all judged
    // in about 10 s), so 30 s clear of a grid boundary is enough.
    away_from_grid_boundary(30);
    let mut two: Vec<Replica> = (0..3)
        .map(|i| Replica::start(&root.path().join("rf2"), &vm.url(), i, 2, false))
        .collect();
    wait_all_judged(
        &two.iter().collect::<Vec<_>>(),
        HOSTS,
        Duration::from_secs(180),
    );
    eprintln!("rf=2: all judged after {:.1?}", t0.elapsed());
    let owned: Vec<BTreeSet<String>> = two.iter().map(Replica::judged).collect();
    let total: usize = owned.iter().map(BTreeSet::len).sum();
    assert_eq!(total, 2 * HOSTS, "each host by exactly two replicas");
    two[2].stop();
    let left: BTreeSet<String> = owned[0].union(&owned[1]).cloned().collect();
    assert_eq!(
        left, all,
        "with replica 2 stopped every host is still judged"
    );
    // A few more polls from the two left, then compare what they wrote.
    let polls = |r: &Replica| r.report()["ticks"].as_u64().unwrap_or(0);
    let (t0, t1) = (polls(&two[0]), polls(&two[1]));
    let start = Instant::now();
    while polls(&two[0]) < t0 + 3 || polls(&two[1]) < t1 + 3 {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "replicas 0 and 1 stopped polling"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    two[0].stop();
    two[1].stop();
    let (p0, p1) = (two[0].points(), two[1].points());
    let shared: BTreeSet<&String> = owned[0].intersection(&owned[1]).collect();
    assert!(
        shared.len() >= HOSTS / 5,
        "{} hosts shared by replicas 0 and 1",
        shared.len()
    );
    let (mut same, mut judged_both) = (0usize, 0usize);
    for ((host, ts), lines0) in &p0 {
        if !shared.contains(host) {
            continue;
        }
        let Some(lines1) = p1.get(&(host.clone(), *ts)) else {
            continue;
        };
        // Points of a sample both judged with a band (forecast included).
        if lines0.iter().any(|l| l.contains("metric_type=forecasted"))
            && lines1.iter().any(|l| l.contains("metric_type=forecasted"))
        {
            judged_both += 1;
            assert_eq!(
                lines0, lines1,
                "{host} at {ts}: the replicas' points differ"
            );
            same += 1;
        }
    }
    assert!(
        judged_both >= shared.len() * 2,
        "{judged_both} samples judged by both replicas for {} shared hosts",
        shared.len()
    );
    eprintln!(
        "rf=1 shares {:?}; rf=2 owned {:?}; {} shared hosts of replicas 0 and 1, {same} samples with identical points",
        shares.iter().map(BTreeSet::len).collect::<Vec<_>>(),
        owned.iter().map(BTreeSet::len).collect::<Vec<_>>(),
        shared.len()
    );
}
