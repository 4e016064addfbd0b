//! Tests of `prophet.rs`.

use augurs_prophet::PredictionData;

use super::*;
use crate::simulate::Pattern;

/// Fits with augurs, keeps its model, and returns it with the parameters
/// read off the fit.
fn fit_both(
    ts: &[i64],
    ys: &[f64],
    settings: &ProphetSettings,
) -> (Prophet<Capturing<NativeOptimizer>>, ProphetParams) {
    let captured = Rc::new(RefCell::new(None));
    let optimizer = Capturing {
        inner: NativeOptimizer,
        ds: Rc::new(ts.to_vec()),
        y_scale: ys.iter().fold(0.0f64, |a, v| a.max(v.abs())),
        captured: captured.clone(),
    };
    let span = ts.last().unwrap() - ts.first().unwrap();
    let mut prophet = Prophet::new(prophet_options(settings, span).unwrap(), optimizer);
    prophet
        .fit(
            TrainingData::new(ts.to_vec(), ys.to_vec()).unwrap(),
            OptimizeOpts::default(),
        )
        .unwrap();
    let params = captured.borrow_mut().take().unwrap().unwrap();
    (prophet, params)
}

#[test]
fn parameters_forecast_exactly_what_augurs_forecasts() {
    use rand::SeedableRng;
    let cases: [(i64, i64, Seasonality, &[&str]); 6] = [
        (3, 600, Seasonality::Auto, &["daily"]),
        (20, 1800, Seasonality::Auto, &["daily", "weekly"]),
        // A weekly cycle from one week of history (Prophet: two).
        (6, 600, Seasonality::Auto, &["daily"]),
        (8, 600, Seasonality::Auto, &["daily", "weekly"]),
        (1, 300, Seasonality::On, &["weekly"]),
        // No seasonality at all: augurs fits one all-zero feature column.
        (1, 600, Seasonality::Auto, &[]),
    ];
    for (days, step, weekly, expected) in cases {
        let p = Pattern {
            step,
            len: (days * 86_400 / step) as usize,
            ..Pattern::default()
        };
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(days as u64);
        let (ts, ys) = (p.timestamps(), p.values(&mut rng));
        let settings = ProphetSettings {
            weekly_seasonality: weekly,
            ..ProphetSettings::default()
        };
        let (prophet, params) = fit_both(&ts, &ys, &settings);
        let last = *ts.last().unwrap();
        let mut at: Vec<i64> = ts.iter().step_by(7).copied().collect();
        at.extend((1..=500).map(|i| last + i * 937));
        let theirs = prophet.predict(PredictionData::new(at.clone())).unwrap();
        for (i, &t) in at.iter().enumerate() {
            // Within 1e-9 of the data's scale (floating-point summation
            // order differs).
            let tol = 1e-9 * params.y_scale;
            let ours = params.yhat(t);
            let want = theirs.yhat.point[i];
            assert!(
                (ours - want).abs() <= tol,
                "{days} days: at {t}: {ours} vs augurs {want}"
            );
            let trend = theirs.trend.point[i];
            assert!((params.trend(t) - trend).abs() <= tol);
        }
        let names: Vec<&str> = params
            .seasonalities
            .iter()
            .map(|s| s.name.as_str())
            .collect();
        assert_eq!(names, expected);
    }
}

#[test]
fn unsorted_input_is_fitted_in_time_order() {
    let (ts, ys) = sorted(&[3, 1, 2], &[30.0, 10.0, 20.0]);
    assert_eq!(ts, vec![1, 2, 3]);
    assert_eq!(ys, vec![10.0, 20.0, 30.0]);
}

/// Two days of 10-minute timestamps, the day after them, and settings
/// with a linear future trend and no seasonality: for the trend's bounds.
fn two_days_then_one() -> (Vec<i64>, Vec<i64>, ProphetSettings) {
    let step = 600;
    let ts: Vec<i64> = (0..288).map(|i| 1_700_000_000 + i * step).collect();
    let at: Vec<i64> = (1..=144).map(|k| ts[287] + k * step).collect();
    let settings = ProphetSettings {
        future_trend: super::super::settings::FutureTrend::Linear,
        daily_seasonality: Seasonality::Off,
        weekly_seasonality: Seasonality::Off,
        ..ProphetSettings::default()
    };
    (ts, at, settings)
}

#[test]
fn a_history_that_never_went_below_zero_is_never_forecast_below_it() {
    // Two days falling from 40 % to 1 %: a linear trend carries on below 0.
    let (ts, at, settings) = two_days_then_one();
    let ys: Vec<f64> = (0..288).map(|i| 40.0 - 39.0 * i as f64 / 287.0).collect();
    let trainer = ProphetTrainer::new();
    let floored = trainer.fit(&ts, &ys, &settings, Unit::Percent, 1).unwrap();
    assert_eq!(floored.stored().floor, Some(0.0));
    let f = floored.predict(&at).unwrap();
    // The same model without its floor: what Prophet itself forecasts.
    let mut stored = floored.stored().clone();
    stored.floor = None;
    let free = ProphetModel::from_stored(stored).predict(&at).unwrap();
    let last = at.len() - 1;
    assert!(free.yhat[last] < -5.0, "{}", free.yhat[last]);
    assert_eq!(f.yhat[last], 0.0);
    assert!(f.yhat.iter().all(|&y| y >= 0.0));
    super::super::assert_band_moved_with_forecast(&f, &free);
    // A history with one value below 0 has no floor.
    let mut neg = ys.clone();
    neg[10] = -0.5;
    let model = trainer.fit(&ts, &neg, &settings, Unit::Percent, 1).unwrap();
    assert_eq!(model.stored().floor, None);
    assert!(model.predict(&at).unwrap().yhat[last] < -5.0);
    // The file keeps the floor; a file written before it has none.
    let json = serde_json::to_value(floored.stored()).unwrap();
    assert_eq!(json["floor"], 0.0);
    let mut old = json.clone();
    old.as_object_mut().unwrap().remove("floor");
    let read: StoredModel = serde_json::from_value(old).unwrap();
    assert_eq!(read.floor, None);
}

#[test]
fn a_history_that_never_went_above_full_scale_is_never_forecast_above_it() {
    // Two days climbing from 60 % to 99 %: a linear trend carries on past
    // 100; and the same in fractions, past 1.
    let (ts, at, settings) = two_days_then_one();
    let trainer = ProphetTrainer::new();
    let last = at.len() - 1;
    for (unit, top) in [(Unit::Percent, 100.0), (Unit::Fraction, 1.0)] {
        let ys: Vec<f64> = (0..288)
            .map(|i| top * (0.6 + 0.39 * i as f64 / 287.0))
            .collect();
        let capped = trainer.fit(&ts, &ys, &settings, unit, 1).unwrap();
        assert_eq!(capped.stored().ceiling, Some(top));
        let f = capped.predict(&at).unwrap();
        let mut stored = capped.stored().clone();
        stored.ceiling = None;
        let free = ProphetModel::from_stored(stored).predict(&at).unwrap();
        assert!(free.yhat[last] > 1.05 * top, "{unit}: {}", free.yhat[last]);
        assert_eq!(f.yhat[last], top);
        assert!(f.yhat.iter().all(|&y| y <= top));
        super::super::assert_band_moved_with_forecast(&f, &free);
        // A history with one value above full scale has no ceiling.
        let mut over = ys.clone();
        over[10] = 1.01 * top;
        let model = trainer.fit(&ts, &over, &settings, unit, 1).unwrap();
        assert_eq!(model.stored().ceiling, None);
        assert!(model.predict(&at).unwrap().yhat[last] > 1.05 * top);
        // The file keeps the ceiling; a file written before it has none.
        let json = serde_json::to_value(capped.stored()).unwrap();
        assert_eq!(json["ceiling"], top);
        let mut old = json.clone();
        old.as_object_mut().unwrap().remove("ceiling");
        let read: StoredModel = serde_json::from_value(old).unwrap();
        assert_eq!(read.ceiling, None);
    }
}
