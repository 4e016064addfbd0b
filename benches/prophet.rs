//! Fit and predict-with-bands timings on a 4032-point, 5-minute series (two
//! weeks, daily + weekly seasonality), the size issue #2 compares against
//! Python Prophet (0.26 s fit). Issue #7's target for predicting 288 points
//! with 1000 band samples is 5 ms. `bench/prophet_vs_python.sh` compares
//! fits with Python Prophet at several sizes.
//!
//! `cargo bench --bench prophet` (add `--features wasmstan` to also time the
//! WASM Stan optimizer).

use cpu_anomaly::{
    dataset::Unit, forecast::ProphetSettings, forecast::ProphetTrainer, simulate::Pattern,
};
use criterion::{criterion_group, criterion_main, Criterion};
use rand::SeedableRng;

fn bench(c: &mut Criterion) {
    let p = Pattern {
        step: 300,
        len: 4032,
        ..Pattern::default()
    };
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
    let (ts, ys) = (p.timestamps(), p.values(&mut rng));
    let settings = ProphetSettings::default();

    let mut g = c.benchmark_group("prophet");
    g.sample_size(10);
    let trainer = ProphetTrainer::new();
    g.bench_function("fit_4032", |b| {
        b.iter(|| trainer.fit(&ts, &ys, &settings, Unit::Percent, 42).unwrap())
    });
    #[cfg(feature = "wasmstan")]
    {
        use cpu_anomaly::forecast::optimizer::OptimizerKind;
        let new = || ProphetTrainer::with_optimizer(OptimizerKind::Wasmstan).unwrap();
        g.bench_function("wasmstan_optimizer_setup", |b| b.iter(new));
        let wasm = new();
        g.bench_function("fit_4032_wasmstan", |b| {
            b.iter(|| wasm.fit(&ts, &ys, &settings, Unit::Percent, 42).unwrap())
        });
    }
    let model = trainer.fit(&ts, &ys, &settings, Unit::Percent, 42).unwrap();
    let future: Vec<i64> = (1..=288).map(|i| ts[ts.len() - 1] + i * 300).collect();
    g.bench_function("predict_288_with_bands_1000_samples", |b| {
        b.iter(|| model.predict(&future).unwrap())
    });
    g.bench_function("predict_4032_history_with_bands", |b| {
        b.iter(|| model.predict(&ts).unwrap())
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
