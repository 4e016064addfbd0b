//! The decision path with the shipped defaults (`config.yaml`) on hand-made
//! series, walked forward as `--mode evaluate` does (refit daily on past
//! data only), after two weeks of learning so the weekly cycle is known: a
//! spike, a level shift that alerts once and then becomes the baseline, a
//! clean seasonal series that stays silent for two weeks, a slow drift. And
//! the monitor's judging deciding exactly as evaluate does on the same data.

use cpu_anomaly::{
    config::{CliOverrides, Settings},
    dataset::{Series, Unit},
    detect::{Decider, Verdict},
    evaluate,
    forecast::Forecast,
    monitor::{horizon::Horizon, judge_sample},
};

const STEP: i64 = 300;
const DAY: usize = 288;

fn shipped() -> Settings {
    let text = include_str!("../config.yaml");
    Settings::from_layers(
        text,
        None,
        "config.yaml",
        |_| None,
        &CliOverrides::default(),
    )
    .unwrap()
}

/// Days learnt before judging.
const LEARN: usize = 14 * DAY;

/// 28 days of 5-minute CPU with a daily cycle and lower weekends,
/// deterministic noise (uniform ±1.5).
fn seasonal() -> (Vec<i64>, Vec<f64>) {
    let start = 1_748_822_400; // a Monday
    let ts: Vec<i64> = (0..28 * DAY as i64).map(|k| start + k * STEP).collect();
    let ys = ts
        .iter()
        .enumerate()
        .map(|(i, &t)| {
            let day = (t % 86_400) as f64 / 86_400.0;
            let weekend = if ((t / 86_400) + 3) % 7 >= 5 {
                8.0
            } else {
                0.0
            };
            let noise = ((i as f64 * 12.9898).sin() * 43758.5453).fract() * 3.0 - 1.5;
            35.0 + 15.0 * (std::f64::consts::TAU * (day - 0.375)).sin() - weekend + noise
        })
        .collect();
    (ts, ys)
}

/// Walks the series forward with the shipped settings; returns the scored
/// part's first index and verdicts.
fn decide(ts: &[i64], ys: &[f64], s: &Settings) -> (usize, Vec<Verdict>, Forecast, Vec<usize>) {
    let series = Series {
        name: "test".into(),
        timestamps: ts.to_vec(),
        values: ys.to_vec(),
        unit: Unit::Percent,
        labels: None,
        report: Default::default(),
    };
    let first = LEARN;
    let wf = evaluate::walk_forward(&s.trainer(), &series, first, Some(86_400)).unwrap();
    let v = evaluate::decide_all(
        &wf.scored,
        &ys[first..],
        &wf.refits,
        &s.decision,
        s.prophet.interval_width,
        Unit::Percent,
    );
    (first, v, wf.scored, wf.refits)
}

fn onsets(first: usize, v: &[Verdict]) -> Vec<usize> {
    v.iter()
        .enumerate()
        .filter(|(_, x)| x.onset)
        .map(|(i, _)| first + i)
        .collect()
}

#[test]
fn a_clean_seasonal_series_stays_silent_for_two_weeks() {
    let (ts, ys) = seasonal();
    let (first, v, _, _) = decide(&ts, &ys, &shipped());
    assert_eq!(v.len(), 14 * DAY);
    assert_eq!(onsets(first, &v), Vec::<usize>::new());
}

#[test]
fn a_spike_alerts_once_and_resolves() {
    let (ts, mut ys) = seasonal();
    let at = LEARN + 3 * DAY + 100;
    for y in &mut ys[at..at + 2] {
        *y += 40.0;
    }
    let (first, v, _, _) = decide(&ts, &ys, &shipped());
    // One alert, with the spike (the likelihood stage, where it is on, may
    // wait for its second point).
    let o = onsets(first, &v);
    assert!(o.len() == 1 && (at..at + 2).contains(&o[0]), "{o:?}");
    let resolved = v.iter().position(|x| x.resolved).map(|i| first + i);
    assert!(
        resolved.is_some_and(|r| r > at && r <= at + 12),
        "{resolved:?}"
    );
}

/// The series with a 25-point shift up for good from `at`.
fn shifted() -> (Vec<i64>, Vec<f64>, usize) {
    let (ts, mut ys) = seasonal();
    let at = LEARN + 3 * DAY + 50;
    for y in &mut ys[at..] {
        *y += 25.0;
    }
    (ts, ys, at)
}

#[test]
fn a_level_shift_alerts_once_then_becomes_the_baseline() {
    let (ts, ys, at) = shifted();
    let s = shipped();
    let (first, v, _, refits) = decide(&ts, &ys, &s);
    // One alert, within 15 minutes of the shift.
    let o = onsets(first, &v);
    assert!(
        o.len() == 1 && (at..at + 3).contains(&o[0]),
        "one alert for the shift: {o:?}"
    );
    // The shipped defaults accept no level on their own
    // (`rebaseline_after: 0`): the alert stays firing until the next daily
    // refit has learnt the new level, then resolves, and the days at the new
    // level stay quiet.
    assert_eq!(s.decision.rebaseline_after, 0);
    let refit = refits
        .iter()
        .map(|&r| first + r)
        .find(|&r| r > at)
        .expect("a refit after the shift");
    let resolved = v.iter().position(|x| x.resolved).unwrap() + first;
    assert!(
        resolved > refit && resolved - refit <= 12,
        "resolved {} samples after the refit at {}",
        resolved - refit,
        refit - at
    );
    assert!(v[refit - first - 1].alert, "firing until the refit");
    assert!(!v.last().unwrap().alert);
}

#[test]
fn with_rebaselining_a_level_shift_is_accepted_within_hours() {
    let (ts, ys, at) = shifted();
    let mut s = shipped();
    s.decision.rebaseline_after = 7200;
    let (first, v, _, _) = decide(&ts, &ys, &s);
    let o = onsets(first, &v);
    assert!(o.len() == 1 && (at..at + 3).contains(&o[0]), "{o:?}");
    // Accepted as the new level after two hours: the alert resolves within
    // three and the rest of the series stays quiet.
    assert!(v.iter().any(|x| x.rebaselined));
    let resolved = v.iter().position(|x| x.resolved).unwrap() + first;
    assert!(
        resolved - at <= 3 * 12,
        "resolved {} samples later",
        resolved - at
    );
    assert!(!v.last().unwrap().alert);
}

#[test]
fn a_slow_drift_alerts_while_it_climbs() {
    let (ts, mut ys) = seasonal();
    let at = LEARN + 4 * DAY + 20;
    let ramp = 8 * 12; // 8 hours
    for (k, y) in ys[at..at + ramp + 24].iter_mut().enumerate() {
        *y += 30.0 * ((k + 1) as f64 / ramp as f64).min(1.0);
    }
    let (first, v, _, _) = decide(&ts, &ys, &shipped());
    // It fires while the load climbs; a climb that goes on after the new
    // level was accepted may page once more; nothing after the drift ends.
    let o = onsets(first, &v);
    assert!(!o.is_empty() && o[0] > at && o[0] < at + ramp, "{o:?}");
    assert!(o.len() <= 2, "{o:?}");
    assert!(o.iter().all(|&i| i < at + ramp + 24), "{o:?}");
}

#[test]
fn the_monitor_decides_exactly_as_evaluate_on_the_same_data() {
    let (ts, mut ys) = seasonal();
    for y in &mut ys[LEARN + 2 * DAY..LEARN + 2 * DAY + 3] {
        *y += 40.0;
    }
    for y in &mut ys[LEARN + 5 * DAY..] {
        *y -= 20.0;
    }
    let s = shipped();
    let (first, _, forecast, refits) = decide(&ts, &ys, &s);
    // The monitor reads its bands from a horizon of f32 on the training
    // grid: give evaluate the same numbers.
    let horizon = Horizon::from_forecast(ts[first], STEP, &forecast, 1.0);
    let rounded = Forecast {
        timestamps: forecast.timestamps.clone(),
        yhat: forecast.yhat.iter().map(|&v| f64::from(v as f32)).collect(),
        lower: forecast
            .lower
            .iter()
            .map(|&v| f64::from(v as f32))
            .collect(),
        upper: forecast
            .upper
            .iter()
            .map(|&v| f64::from(v as f32))
            .collect(),
    };
    let by_evaluate = evaluate::decide_all(
        &rounded,
        &ys[first..],
        &refits,
        &s.decision,
        s.prophet.interval_width,
        Unit::Percent,
    );
    let mut decider = Decider::new(s.decision);
    let mut by_monitor = Vec::new();
    for (k, i) in (first..ts.len()).enumerate() {
        if k > 0 && refits.contains(&k) {
            decider.refitted();
        }
        let (_, v) = judge_sample(
            &mut decider,
            &horizon,
            ts[i],
            ys[i],
            s.prophet.interval_width,
        );
        by_monitor.push(v.expect("inside the horizon"));
    }
    assert_eq!(by_monitor.len(), by_evaluate.len());
    for (k, (m, e)) in by_monitor.iter().zip(&by_evaluate).enumerate() {
        assert_eq!(m, e, "sample {k}");
    }
    assert!(by_evaluate.iter().filter(|v| v.onset).count() >= 2);
}
