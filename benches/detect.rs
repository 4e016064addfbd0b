//! Throughput of the band check: 10^6 forecast points judged one by one (the
//! scaled band, score, severity and the alert policy), as the monitor and
//! evaluate mode do. Target: at least 10^6 points/s on one core.
//!
//! `cargo bench --bench detect`

use cpu_anomaly::detect::{AlertPolicy, Detector};
use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use rand::{Rng, SeedableRng};

const N: usize = 1_000_000;

fn bench(c: &mut Criterion) {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
    let yhat: Vec<f64> = (0..N)
        .map(|i| 50.0 + 20.0 * (i as f64 / 288.0).sin())
        .collect();
    let half: Vec<f64> = (0..N).map(|_| rng.random_range(2.0..6.0)).collect();
    let actual: Vec<f64> = yhat
        .iter()
        .map(|y| y + rng.random_range(-15.0..15.0))
        .collect();
    let lower: Vec<f64> = yhat.iter().zip(&half).map(|(y, h)| y - h).collect();
    let upper: Vec<f64> = yhat.iter().zip(&half).map(|(y, h)| y + h).collect();

    let mut g = c.benchmark_group("band_check");
    g.throughput(Throughput::Elements(N as u64));
    g.sample_size(20);
    g.bench_function("check_1e6", |b| {
        let det = Detector::new(2.0);
        b.iter(|| {
            let mut flagged = 0usize;
            for i in 0..N {
                let d = det.check(actual[i], yhat[i], lower[i], upper[i]);
                flagged += usize::from(d.is_anomaly);
            }
            black_box(flagged)
        })
    });
    g.bench_function("check_and_alert_1e6", |b| {
        let det = Detector::new(2.0);
        b.iter(|| {
            let mut policy = AlertPolicy::new(3);
            let mut alerts = 0usize;
            for i in 0..N {
                let d = det.check(actual[i], yhat[i], lower[i], upper[i]);
                alerts += usize::from(policy.update(&d));
            }
            black_box(alerts)
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
