//! Tests of `mstl.rs`.

use super::*;

fn series(days: i64, step: i64) -> (Vec<i64>, Vec<f64>) {
    let n = days * DAY / step;
    let ts: Vec<i64> = (0..n).map(|i| 1_700_000_000 + i * step).collect();
    let ys = ts
        .iter()
        .enumerate()
        .map(|(i, &t)| {
            let day = (t % DAY) as f64 / DAY as f64;
            50.0 + 20.0 * (2.0 * std::f64::consts::PI * day).sin() + ((i * 7919) % 13) as f64 * 0.1
        })
        .collect();
    (ts, ys)
}

#[test]
fn grid_fills_gaps_linearly() {
    let g = regular_grid(&[0, 10, 40], &[1.0, 2.0, 5.0], 10).unwrap();
    assert_eq!(g, vec![1.0, 2.0, 3.0, 4.0, 5.0]);
}

#[test]
fn periods_follow_the_two_cycle_rule() {
    let s = ProphetSettings::default();
    assert_eq!(periods(&s, 300, 288 * 3), vec![("daily".to_string(), 288)]);
    assert_eq!(periods(&s, 300, 288 * 15).len(), 2);
    assert!(periods(&s, 300, 500).is_empty());
}

#[test]
fn forecasts_the_daily_cycle_with_a_band() {
    let (ts, ys) = series(6, 600);
    let model = fit(&ts, &ys, &ProphetSettings::default(), Unit::Percent).unwrap();
    let future: Vec<i64> = (1..=72).map(|i| ts[ts.len() - 1] + i * 600).collect();
    let f = model.predict(&future).unwrap();
    for (i, &t) in future.iter().enumerate() {
        let day = (t % DAY) as f64 / DAY as f64;
        let truth = 50.6 + 20.0 * (2.0 * std::f64::consts::PI * day).sin();
        assert!(
            (f.yhat[i] - truth).abs() < 3.0,
            "{i}: {} vs {truth}",
            f.yhat[i]
        );
        assert!(f.lower[i] <= f.yhat[i] && f.yhat[i] <= f.upper[i]);
        assert!(f.upper[i] - f.lower[i] > 0.0);
    }
    let inside = model.predict(&ts[..10]).unwrap();
    assert_eq!(inside.len(), 10);
}

#[test]
fn a_history_that_never_went_below_zero_is_never_forecast_below_it() {
    // Three days falling to under 1 %: the trend carries on below 0.
    let (ts, cycle) = series(3, 600);
    let n = ts.len() as f64;
    let ys: Vec<f64> = cycle
        .iter()
        .enumerate()
        .map(|(i, c)| (30.0 * (1.0 - i as f64 / n) + (c - 50.0) * 0.02).max(0.0))
        .collect();
    let mut model = fit(&ts, &ys, &ProphetSettings::default(), Unit::Percent).unwrap();
    assert_eq!(model.floor, Some(0.0));
    let future: Vec<i64> = (1..=288).map(|i| ts[ts.len() - 1] + i * 600).collect();
    let f = model.predict(&future).unwrap();
    model.floor = None;
    let free = model.predict(&future).unwrap();
    let below = (0..future.len()).filter(|&i| free.yhat[i] < 0.0).count();
    assert!(below > 0, "the test needs a forecast below 0");
    for i in 0..future.len() {
        assert_eq!(f.yhat[i], free.yhat[i].max(0.0));
    }
    super::super::assert_band_moved_with_forecast(&f, &free);
}

#[test]
fn a_history_that_never_went_above_full_scale_is_never_forecast_above_it() {
    // Three days climbing to over 99 %: the trend carries on past 100.
    let (ts, cycle) = series(3, 600);
    let n = ts.len() as f64;
    let ys: Vec<f64> = cycle
        .iter()
        .enumerate()
        .map(|(i, c)| (70.0 + 30.0 * i as f64 / n + (c - 50.0) * 0.02).min(100.0))
        .collect();
    let mut model = fit(&ts, &ys, &ProphetSettings::default(), Unit::Percent).unwrap();
    assert_eq!(model.ceiling, Some(100.0));
    let future: Vec<i64> = (1..=288).map(|i| ts[ts.len() - 1] + i * 600).collect();
    let f = model.predict(&future).unwrap();
    model.ceiling = None;
    let free = model.predict(&future).unwrap();
    let above = (0..future.len()).filter(|&i| free.yhat[i] > 100.0).count();
    assert!(above > 0, "the test needs a forecast above 100");
    for i in 0..future.len() {
        assert_eq!(f.yhat[i], free.yhat[i].min(100.0));
    }
    super::super::assert_band_moved_with_forecast(&f, &free);
}

#[test]
fn noise_floor_finds_white_noise_under_a_cycle() {
    use rand::SeedableRng;
    use rand_distr::{Distribution, Normal};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
    let noise = Normal::new(0.0, 2.0).unwrap();
    let mut g: Vec<f64> = (0..5000)
        .map(|i| 30.0 * (i as f64 / 48.0 * std::f64::consts::TAU).sin() + noise.sample(&mut rng))
        .collect();
    g[100] += 500.0;
    let sd = noise_floor_sd(&g);
    assert!((sd - 2.0).abs() < 0.15, "{sd}");
    assert_eq!(noise_floor_sd(&[1.0, 2.0]), 0.0);
    let p = |n: usize| ("weekly".to_string(), n);
    assert_eq!(estimate_inflation(&[], 10), 1.0);
    assert!((estimate_inflation(&[p(50)], 100) - 1.5f64.sqrt()).abs() < 1e-12);
}

#[test]
fn out_of_sample_band_covers_about_95_percent_of_noise() {
    use rand::SeedableRng;
    use rand_distr::{Distribution, Normal};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(4);
    let noise = Normal::new(0.0, 2.5).unwrap();
    let step = 1800;
    let n = 21 * 48;
    let ts: Vec<i64> = (0..n).map(|i| 1_700_000_000 + i * step).collect();
    let ys: Vec<f64> = ts
        .iter()
        .map(|&t| {
            let day = (t % DAY) as f64 / DAY as f64;
            let weekend = if (t / DAY) % 7 < 2 { 12.0 } else { 0.0 };
            40.0 + 15.0 * (std::f64::consts::TAU * day).sin() - weekend + noise.sample(&mut rng)
        })
        .collect();
    let cut = 17 * 48;
    let model = fit(
        &ts[..cut],
        &ys[..cut],
        &ProphetSettings::default(),
        Unit::Percent,
    )
    .unwrap();
    let f = model.predict(&ts[cut..]).unwrap();
    let inside = (0..f.len())
        .filter(|&i| f.lower[i] <= ys[cut + i] && ys[cut + i] <= f.upper[i])
        .count();
    let coverage = inside as f64 / f.len() as f64;
    assert!(coverage > 0.9, "coverage {coverage}");
}
