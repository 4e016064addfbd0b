//! A fleet of generated hosts in a real VictoriaMetrics: history imported
//! once, then a fresh sample per host pushed in the background.

use std::{
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::Duration,
};

use cpu_anomaly::simulate::FleetHost;

use super::servers;

/// Unix seconds now.
pub fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// One `/api/v1/import` line of `cpu_busy_percent` for `instance`:
/// `(unix seconds, value)` points.
pub fn line(instance: &str, points: &[(i64, f64)]) -> String {
    let values: Vec<String> = points.iter().map(|p| format!("{:.3}", p.1)).collect();
    let ts: Vec<String> = points.iter().map(|p| (p.0 * 1000).to_string()).collect();
    format!(
        "{{\"metric\":{{\"__name__\":\"cpu_busy_percent\",\"instance\":\"{instance}\"}},\"values\":[{}],\"timestamps\":[{}]}}\n",
        values.join(","),
        ts.join(",")
    )
}

/// Imports `/api/v1/import` lines into VictoriaMetrics at `url`.
pub fn import(url: &str, body: &str) {
    let (status, text) = servers::post(&format!("{url}/api/v1/import"), body);
    assert_eq!(status, 204, "import: {text}");
}

/// Imports every host's values at `timestamps`, 50 hosts a request, and
/// makes them searchable at once.
pub fn import_history(url: &str, hosts: &[FleetHost], timestamps: &[i64]) {
    for chunk in hosts.chunks(50) {
        let mut body = String::new();
        for h in chunk {
            h.import_line(&mut body, timestamps);
        }
        import(url, &body);
    }
    force_flush(url);
}

/// Makes what VictoriaMetrics at `url` has received searchable now
/// (otherwise new series show up seconds later).
pub fn force_flush(url: &str) {
    let (status, text) = servers::get(&format!("{url}/internal/force_flush"));
    assert_eq!(status, 200, "force_flush: {text}");
}

/// Pushes one fresh sample per host every `every` until dropped.
pub struct Pusher(Arc<AtomicBool>);

impl Pusher {
    /// Starts pushing `hosts` to VictoriaMetrics at `url`.
    pub fn start(url: String, hosts: Vec<FleetHost>, every: Duration) -> Pusher {
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        std::thread::spawn(move || {
            while !s.load(Ordering::SeqCst) {
                let mut body = String::new();
                for h in &hosts {
                    h.import_line(&mut body, &[now()]);
                }
                servers::post(&format!("{url}/api/v1/import"), &body);
                std::thread::sleep(every);
            }
        });
        Pusher(stop)
    }
}

impl Drop for Pusher {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}
