//! A generated fleet in a Prometheus-compatible server (VictoriaMetrics):
//! N distinct hosts (`cpu_busy_percent{instance="host-00042:9100"}`), each
//! with its own level, daily and weekly shape, noise and a few anomalies.
//!
//! ```sh
//! cargo run --release --example fleet -- load URL N [DAYS] [STEP_SECONDS]
//! cargo run --release --example fleet -- push URL N EVERY_SECONDS
//! ```
//!
//! `load` imports DAYS (7) of history at STEP_SECONDS (300) ending now
//! through `/api/v1/import`; `push` then sends one fresh sample per host
//! every EVERY_SECONDS until killed. Values are a pure function of the
//! host and the time (`cpu_anomaly::simulate::FleetHost`, seed 1).

use std::time::{Duration, Instant};

use cpu_anomaly::simulate::FleetHost;

const SEED: u64 = 1;
/// Hosts per import request.
const CHUNK: usize = 100;

fn hosts(n: usize, from: i64, to: i64) -> Vec<FleetHost> {
    (0..n).map(|i| FleetHost::new(i, SEED, from, to)).collect()
}

fn post(url: &str, body: &[u8]) -> Result<(), String> {
    reqwest::blocking::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(120))
        .build()
        .map_err(|e| e.to_string())?
        .post(format!("{url}/api/v1/import"))
        .body(body.to_vec())
        .send()
        .and_then(|r| r.error_for_status())
        .map(|_| ())
        .map_err(|e| format!("import failed: {e}"))
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: fleet load URL N [DAYS] [STEP] | fleet push URL N EVERY";
    let (Some(cmd), Some(url), Some(n)) = (args.first(), args.get(1), args.get(2)) else {
        eprintln!("{usage}");
        std::process::exit(2);
    };
    let n: usize = n.parse().expect("N is a number of hosts");
    let url = url.trim_end_matches('/');
    let now = chrono::Utc::now().timestamp();
    match cmd.as_str() {
        "load" => {
            let days: i64 = args.get(3).map_or(7, |d| d.parse().expect("DAYS"));
            let step: i64 = args.get(4).map_or(300, |s| s.parse().expect("STEP"));
            let end = now / step * step;
            let start = end - days * 86_400;
            let ts: Vec<i64> = (start..=end).step_by(step as usize).collect();
            let started = Instant::now();
            let mut bytes = 0usize;
            for chunk in hosts(n, start, end).chunks(CHUNK) {
                let mut body = String::new();
                for h in chunk {
                    h.import_line(&mut body, &ts);
                }
                bytes += body.len();
                if let Err(e) = post(url, body.as_bytes()) {
                    eprintln!("{e}");
                    std::process::exit(1);
                }
            }
            println!(
                "loaded {n} hosts x {} points ({:.1} MB) in {:.1}s",
                ts.len(),
                bytes as f64 / 1e6,
                started.elapsed().as_secs_f64()
            );
        }
        "push" => {
            let every: u64 = args.get(3).map_or(30, |s| s.parse().expect("EVERY"));
            let fleet = hosts(n, now - 7 * 86_400, now);
            loop {
                let started = Instant::now();
                let t = chrono::Utc::now().timestamp();
                for chunk in fleet.chunks(CHUNK * 10) {
                    let mut body = String::new();
                    for h in chunk {
                        h.import_line(&mut body, &[t]);
                    }
                    if let Err(e) = post(url, body.as_bytes()) {
                        eprintln!("{e}");
                    }
                }
                std::thread::sleep(Duration::from_secs(every).saturating_sub(started.elapsed()));
            }
        }
        _ => {
            eprintln!("{usage}");
            std::process::exit(2);
        }
    }
}
