//! The Prophet forecaster on generated data: accuracy in sane ranges, and a
//! saved model reloads to the identical forecast.

use cpu_anomaly::{
    accuracy::accuracy,
    dataset::Unit,
    forecast::ProphetSettings,
    forecast::{ProphetModel, ProphetTrainer},
    simulate::Pattern,
};
use rand::SeedableRng;

fn data(len: usize, seed: u64) -> (Vec<i64>, Vec<f64>) {
    let p = Pattern {
        step: 900,
        len,
        ..Pattern::default()
    };
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    (p.timestamps(), p.values(&mut rng))
}

#[test]
fn held_out_mape_and_coverage_are_sane() {
    // 21 days at 15 minutes, fit on 17, test on the last 4 days.
    let (ts, ys) = data(21 * 96, 11);
    let split = 17 * 96;
    let model = ProphetTrainer::new()
        .fit(
            &ts[..split],
            &ys[..split],
            &ProphetSettings::default(),
            Unit::Percent,
            42,
        )
        .unwrap();
    let f = model.predict(&ts[split..]).unwrap();
    let a = accuracy(&ys[split..], &f);
    // Noise sd is 2.5 on a level of ~40: a model that learned both cycles
    // lands near 5 % MAPE. 10 % still means it learned them; a model missing
    // the daily cycle is above 25 %.
    assert!(a.mape < 10.0, "MAPE {}", a.mape);
    assert!(a.mae < 3.5, "MAE {}", a.mae);
    // A 95 % band should hold roughly 95 % of clean data; 85–100 % allows for
    // Monte Carlo error and the smooth weekly fit around weekend edges.
    assert!(
        (0.85..=1.0).contains(&a.coverage),
        "coverage {}",
        a.coverage
    );
}

#[test]
fn saved_model_reloads_to_identical_forecast() {
    let (ts, ys) = data(15 * 96, 12);
    let model = ProphetTrainer::new()
        .fit(&ts, &ys, &ProphetSettings::default(), Unit::Percent, 42)
        .unwrap();
    let future: Vec<i64> = (1..=288).map(|i| ts[ts.len() - 1] + i * 300).collect();
    let mut both = ts[ts.len() - 100..].to_vec();
    both.extend(&future);
    let before = model.predict(&both).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.json");
    model.save(&path).unwrap();
    let loaded = ProphetModel::load(&path).unwrap();
    let after = loaded.predict(&both).unwrap();
    // The file holds the parameters: the reloaded model is the same model.
    assert_eq!(before, after);
    assert_eq!(loaded.unit(), Unit::Percent);
    assert_eq!(loaded.stored(), model.stored());
    // The band contains yhat.
    assert!(before.upper.iter().zip(&before.yhat).all(|(u, y)| u > y));
    assert!(before.lower.iter().zip(&before.yhat).all(|(l, y)| l < y));
}

#[test]
fn the_band_keeps_the_noise_width_after_the_history_unless_trend_uncertainty_is_on() {
    // A history with a level shift in it: large fitted changepoints.
    let (ts, mut ys) = data(15 * 96, 12);
    let n = ys.len();
    for y in &mut ys[n / 2..] {
        *y += 25.0;
    }
    let future: Vec<i64> = (1..=3 * 288).map(|i| ts[n - 1] + i * 300).collect();
    let half = |f: &cpu_anomaly::forecast::Forecast, i: usize| (f.upper[i] - f.lower[i]) / 2.0;
    let fit = |trend_uncertainty: bool| {
        let s = ProphetSettings {
            trend_uncertainty,
            ..ProphetSettings::default()
        };
        let m = ProphetTrainer::new()
            .fit(&ts, &ys, &s, Unit::Percent, 42)
            .unwrap();
        (
            m.predict(&ts[n - 10..]).unwrap(),
            m.predict(&future).unwrap(),
        )
    };
    // Default: up to 3 days ahead, the band is as wide as inside the history.
    let (inside, ahead) = fit(false);
    for i in 0..future.len() {
        assert!((half(&ahead, i) - half(&inside, 0)).abs() < 1e-9, "{i}");
    }
    // Prophet's own band widens with the simulated trend changes.
    let (inside, ahead) = fit(true);
    let last = future.len() - 1;
    assert!(
        half(&ahead, last) > 1.2 * half(&inside, 0),
        "{} vs {}",
        half(&ahead, last),
        half(&inside, 0)
    );
}

#[test]
fn loading_a_non_model_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x.json");
    std::fs::write(&path, "{\"hello\": 1}").unwrap();
    let err = ProphetModel::load(&path).unwrap_err().to_string();
    assert!(err.contains("not a cpu-anomaly model"), "{err}");
}

#[test]
fn a_version_1_model_file_loads_to_the_same_forecast_as_a_fresh_fit() {
    // tests/data/model_v1.json was written by the version that stored the
    // history (commit 38f1342, `--mode train` on model_v1_history.csv).
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    let old = ProphetModel::load(&dir.join("model_v1.json")).unwrap();
    let series =
        cpu_anomaly::dataset::read_csv(&dir.join("model_v1_history.csv"), &Default::default())
            .unwrap();
    // Files written before `future_trend` and `trend_uncertainty` existed
    // extrapolate the trend and widen the band with it (Prophet's own
    // forecast), as they did.
    let linear = ProphetSettings {
        future_trend: cpu_anomaly::forecast::FutureTrend::Linear,
        trend_uncertainty: true,
        ..ProphetSettings::default()
    };
    let fresh = ProphetTrainer::new()
        .fit(&series.timestamps, &series.values, &linear, series.unit, 42)
        .unwrap();
    assert_eq!(old.unit(), Unit::Percent);
    assert_eq!(old.points(), 300);
    let end = old.history_end();
    assert_eq!(end, *series.timestamps.last().unwrap());
    let at: Vec<i64> = (-50..100).map(|i| end + i * 600).collect();
    let (a, b) = (old.predict(&at).unwrap(), fresh.predict(&at).unwrap());
    for i in 0..at.len() {
        for (x, y) in [
            (a.yhat[i], b.yhat[i]),
            (a.lower[i], b.lower[i]),
            (a.upper[i], b.upper[i]),
        ] {
            assert!((x - y).abs() < 1e-9, "{i}: {x} vs {y}");
        }
    }
}
