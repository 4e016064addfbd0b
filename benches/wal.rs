//! Cost of the write-ahead log per poll: one poll's points encoded as line
//! protocol, written to a new file and `fdatasync`ed, then deleted once
//! written (what the monitor and the sink thread do), for fleets of 10,
//! 1,000 and 10,000 hosts (three points per judged sample). The log
//! directory is under `target/` (the disk the monitor's `log_dir` would use).
//!
//! `cargo bench --bench wal`

use cpu_anomaly::{
    detect::Detector,
    sink::{
        schema::{self, Sample},
        wal::Wal,
    },
};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

fn poll(hosts: usize) -> String {
    let d = Detector::new(2.0).check(52.0, 50.0, 45.0, 55.0);
    let mut text = String::new();
    for h in 0..hosts {
        let host = format!("host-{h:05}:9100");
        for p in schema::points(&Sample {
            host: &host,
            source: "prometheus",
            timestamp: 1_750_000_000,
            actual: 52.0,
            yhat: 50.0,
            lower: 45.0,
            upper: 55.0,
            detection: Some(&d),
            alert: false,
            threshold: 2.0,
            short_history: false,
            onset: false,
            resolved: false,
            capacity: None,
            capacity_cleared: false,
        }) {
            p.encode(&mut text);
        }
    }
    text
}

fn bench(c: &mut Criterion) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench-wal");
    let _ = std::fs::remove_dir_all(&dir);
    let mut wal = Wal::open(&dir).unwrap();
    let log = wal.dir();
    let mut g = c.benchmark_group("wal_per_poll");
    g.sample_size(30);
    for hosts in [10usize, 1_000, 10_000] {
        let text = poll(hosts);
        g.throughput(Throughput::Bytes(text.len() as u64));
        g.bench_function(format!("{hosts}_hosts_{}_kb", text.len() / 1024), |b| {
            b.iter(|| {
                let seq = wal.append(text.as_bytes()).unwrap();
                log.remove(seq).unwrap();
            })
        });
    }
    g.finish();
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group!(benches, bench);
criterion_main!(benches);
