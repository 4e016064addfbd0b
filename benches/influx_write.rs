//! Line-protocol write throughput to a real InfluxDB 1.x on loopback
//! (`influxd`, started here on a free port with a temporary directory), as
//! the monitor writes it: the three points of each sample, encoded and
//! posted in batches through the sink's writer. Target ≥ 200,000 points/s
//! (the original system claimed 10,000).
//!
//! `cargo bench --bench influx_write` (needs `influxd` on PATH).

use std::sync::atomic::AtomicBool;
use std::{
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use cpu_anomaly::{
    detect::Detector,
    secret::Secret,
    sink::{
        influx::{Api, Outcome, Target, Writer},
        schema::{self, Sample},
    },
};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn main() {
    if std::env::args().any(|a| a == "--list" || a == "--test") {
        return; // `cargo test --benches` / `--list`: nothing to list.
    }
    let dir = tempfile::tempdir().unwrap();
    let (port, rpc) = (free_port(), free_port());
    let conf = dir.path().join("influxdb.conf");
    std::fs::write(
        &conf,
        format!(
            "reporting-disabled = true\nbind-address = \"127.0.0.1:{rpc}\"\n\
             [meta]\n  dir = \"{d}/meta\"\n[data]\n  dir = \"{d}/data\"\n  wal-dir = \"{d}/wal\"\n  query-log-enabled = false\n\
             [monitor]\n  store-enabled = false\n[http]\n  bind-address = \"127.0.0.1:{port}\"\n  log-enabled = false\n",
            d = dir.path().display()
        ),
    )
    .unwrap();
    let mut child = match Command::new("influxd")
        .arg("run")
        .arg("-config")
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
    {
        Ok(c) => c,
        Err(e) => {
            eprintln!(
                "influx_write: cannot start influxd ({e}); install the Debian package `influxdb`"
            );
            std::process::exit(1);
        }
    };
    let base = format!("http://127.0.0.1:{port}");
    let start = Instant::now();
    let http = reqwest::blocking::Client::builder()
        .no_proxy()
        .build()
        .unwrap();
    while http.get(format!("{base}/ping")).send().is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "influxd did not start"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    http.post(format!("{base}/query?q=CREATE+DATABASE+bench"))
        .send()
        .unwrap();

    let hosts = 100;
    let samples_per_host = 3_400; // 100 hosts × 3,400 samples × 3 points ≈ 1.02 M points
    let detector = Detector::new(2.0);
    let t_encode = Instant::now();
    let mut lines = Vec::with_capacity(hosts * samples_per_host * 3);
    for h in 0..hosts {
        let host = format!("host-{h:03}");
        for i in 0..samples_per_host {
            let actual = 40.0 + (i % 17) as f64;
            let d = detector.check(actual, 45.0, 40.0, 50.0);
            for p in schema::points(&Sample {
                host: &host,
                source: "prometheus",
                timestamp: 1_750_000_000 + i as i64 * 30,
                actual,
                yhat: 45.0,
                lower: 40.0,
                upper: 50.0,
                detection: Some(&d),
                alert: false,
                threshold: 2.0,
                short_history: false,
                onset: false,
                resolved: false,
                capacity: None,
                capacity_cleared: false,
            }) {
                let mut s = String::new();
                p.encode(&mut s);
                lines.push(s);
            }
        }
    }
    let encode = t_encode.elapsed();
    let total = lines.len();
    println!(
        "encode: {total} points in {:.3}s = {:.0} points/s",
        encode.as_secs_f64(),
        total as f64 / encode.as_secs_f64()
    );
    for batch in [500usize, 5_000, 10_000] {
        let bodies: Vec<String> = lines.chunks(batch).map(|c| c.concat()).collect();
        let writer = Writer::new(Target {
            api: Api::V1,
            url: base.clone(),
            org: String::new(),
            bucket: "bench".into(),
            token: Secret::default(),
            timeout: Duration::from_secs(60),
            retries: 3,
            backoff: Duration::from_millis(100),
        });
        for threads in [1usize, 2] {
            let t = Instant::now();
            std::thread::scope(|s| {
                for part in bodies.chunks(bodies.len().div_ceil(threads)) {
                    let w = writer.clone();
                    s.spawn(move || {
                        for b in part {
                            assert_eq!(
                                w.write(b.as_bytes(), None, &AtomicBool::new(false)).0,
                                Outcome::Written
                            );
                        }
                    });
                }
            });
            let secs = t.elapsed().as_secs_f64();
            println!(
                "write: batch {batch}, {threads} writer(s): {total} points in {secs:.2}s = {:.0} points/s",
                total as f64 / secs
            );
        }
    }
    let _ = child.kill();
    let _ = child.wait();
}
