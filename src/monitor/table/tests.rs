//! The series table's rules on a fake clock.

use super::*;
use crate::{
    dataset::Unit,
    forecast::{Forecast, LevelModel, Model},
};

const MIN: i64 = 60_000;

fn timing() -> Timing {
    Timing {
        retrain: 24 * 60 * MIN,
        grace: 5 * MIN,
        min_history: 60 * MIN,
        step: 300,
    }
}

fn new_series() -> NewSeries {
    NewSeries {
        host: Arc::from("h"),
        labels: Labels::new(),
        origin: Origin::Prometheus,
        decider: Decider::new(Default::default()),
        alert_override: None,
    }
}

/// A model of `hours` of 5-minute history ending at `end` (s), with a
/// six-hour horizon from `end`.
fn model(hours: i64, end: i64) -> (Arc<SeriesModel>, Arc<Horizon>) {
    let ts: Vec<i64> = (0..hours * 12)
        .map(|k| end - (hours * 12 - 1 - k) * 300)
        .collect();
    let m = LevelModel::fit(&ts, &vec![5.0; ts.len()], 0.95, Unit::Percent).unwrap();
    let c = Compact::from_model(Model::Level(m), 300, 0).unwrap();
    let h = c.horizon(end, 300).unwrap();
    (
        Arc::new(SeriesModel {
            compact: c,
            trained_at: 0,
            trained_on: Arc::from("test"),
        }),
        Arc::new(h),
    )
}

#[test]
fn a_new_series_trains_at_once_and_once() {
    let mut t = Table::new(timing());
    let (slot, new) = t.observe("a", 0, new_series);
    assert!(new);
    assert_eq!(t.observe("a", 1000, new_series), (slot, false));
    let (due, dropped) = t.take_due(1000);
    assert!(dropped.is_empty());
    assert_eq!(
        due,
        vec![Due {
            slot,
            generation: t.generation(slot),
            task: Task::Train { first: true }
        }]
    );
    assert_eq!(t.counts().fetching, 1);
    assert_eq!(t.counts().warming, 1);
    // Nothing else is due while the fetch is in flight.
    assert!(t.take_due(2000).0.is_empty());
}

#[test]
fn not_enough_history_waits_until_there_can_be_enough() {
    let mut t = Table::new(timing());
    let (slot, _) = t.observe("a", 0, new_series);
    let g = t.generation(slot);
    t.take_due(0);
    // 20 minutes of history, 60 needed: next try 40 minutes later.
    assert!(t.on_not_yet(slot, g, 20 * 60, 0));
    assert!(!t.on_not_yet(slot, g, 20 * 60, 0), "said once");
    for k in 0..50 {
        t.observe("a", k * MIN, new_series);
        if k * MIN < 40 * MIN {
            assert!(t.take_due(k * MIN).0.is_empty(), "{k}");
        }
    }
    let (due, _) = t.take_due(40 * MIN);
    assert_eq!(due.len(), 1);
}

#[test]
fn after_a_fit_come_horizon_refreshes_and_the_refit() {
    let mut t = Table::new(timing());
    let (slot, _) = t.observe("a", 0, new_series);
    let g = t.generation(slot);
    t.take_due(0);
    t.on_fetched(slot, g);
    assert_eq!(t.counts().fitting, 1);
    let (m, h) = model(30 * 24, 1_000_000);
    t.on_model(slot, g, m, h.clone(), 0, None);
    assert_eq!(
        t.counts(),
        Counts {
            series: 1,
            warming: 0,
            fetching: 0,
            fitting: 0,
            short: 1
        }
    );
    // Keep the series alive; collect what falls due over a day.
    let mut horizons = 0;
    let mut trains = 0;
    for minute in 1..=24 * 60 + 3 {
        let now = minute * MIN;
        t.observe("a", now, new_series);
        let (due, dropped) = t.take_due(now);
        assert!(dropped.is_empty());
        for d in due {
            match d.task {
                Task::Horizon => {
                    horizons += 1;
                    t.on_horizon(slot, g, h.clone(), now);
                }
                Task::Train { first } => {
                    assert!(!first);
                    trains += 1;
                    t.on_failed(slot, g, now);
                }
            }
        }
    }
    // A six-hour horizon is redrawn every three hours (the one due with
    // the refit waits while the refit is in flight: here it fails, and
    // the band is redrawn a little later).
    assert_eq!(horizons, 8);
    // Refit after retrain_interval (a level model of 30 days is not
    // refitted sooner than that), then retried with backoff.
    assert_eq!(trains, 3);
}

#[test]
fn a_short_history_is_refitted_as_it_doubles() {
    let mut t = Table::new(timing());
    let (slot, _) = t.observe("a", 0, new_series);
    let g = t.generation(slot);
    t.take_due(0);
    let (m, h) = model(2, 7200);
    t.on_model(slot, g, m, h, 0, None);
    t.observe("a", 119 * MIN, new_series);
    assert!(t
        .take_due(119 * MIN)
        .0
        .iter()
        .all(|d| d.task == Task::Horizon));
    let (due, _) = t.take_due(120 * MIN);
    assert!(
        due.iter().any(|d| d.task == Task::Train { first: false }),
        "{due:?}"
    );
}

#[test]
fn failures_back_off_exponentially_and_keep_the_model() {
    let mut t = Table::new(timing());
    let (slot, _) = t.observe("a", 0, new_series);
    let g = t.generation(slot);
    t.take_due(0);
    assert_eq!(t.on_failed(slot, g, 0), 30_000);
    t.take_due(30_000);
    assert_eq!(t.on_failed(slot, g, 30_000), 60_000);
    t.take_due(90_000);
    assert_eq!(t.on_failed(slot, g, 90_000), 120_000);
    assert_eq!(t.counts().warming, 1);
    for _ in 0..20 {
        t.take_due(i64::MAX / 2);
        assert!(t.on_failed(slot, g, 0) <= BACKOFF_MAX_MS);
    }
}

#[test]
fn a_vanished_series_is_dropped_after_the_grace_period_only() {
    let mut t = Table::new(timing());
    let (a, _) = t.observe("a", 0, new_series);
    t.observe("b", 0, new_series);
    t.take_due(0);
    // b keeps reporting; a stops.
    for minute in 1..=4 {
        t.observe("b", minute * MIN, new_series);
        assert!(t.take_due(minute * MIN).1.is_empty());
    }
    t.observe("b", 5 * MIN, new_series);
    let (_, dropped) = t.take_due(5 * MIN);
    assert_eq!(dropped, vec![Arc::<str>::from("a")]);
    assert_eq!(t.counts().series, 1);
    assert_eq!(t.counts().fetching, 1, "b's fetch is still in flight");
    assert!(t.slot("a").is_none());
    // A late answer for the dropped series is ignored; the slot is reused
    // by a new series with a new generation.
    let old_gen = 1;
    let (c, _) = t.observe("c", 6 * MIN, new_series);
    assert_eq!(c, a);
    assert_ne!(t.generation(c), old_gen);
    let (m, h) = model(3, 100);
    t.on_model(a, old_gen, m, h, 6 * MIN, None);
    assert!(t.get(c).unwrap().model.is_none());
    // b, seen again after the grace check was rescheduled, stays.
    t.observe("b", 9 * MIN, new_series);
    assert!(t.take_due(10 * MIN).1.is_empty());
}

#[test]
fn a_given_refit_time_supersedes_the_queued_train() {
    let mut t = Table::new(timing());
    let (slot, _) = t.observe("a", 0, new_series);
    let g = t.generation(slot);
    // A preset model installed before the first train fell due: its
    // refit is what counts, not the train queued at first sight.
    let (m, h) = model(48, 1000);
    t.on_model(slot, g, m, h, 0, Some(10 * MIN));
    t.observe("a", MIN, new_series);
    assert!(t.take_due(MIN).0.is_empty());
    t.observe("a", 10 * MIN, new_series);
    let (due, _) = t.take_due(10 * MIN);
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].task, Task::Train { first: false });
}

#[test]
fn a_table_model_is_refitted_before_it_runs_out() {
    let f = Forecast {
        timestamps: (0..=288).map(|k| k * 300).collect(),
        yhat: vec![1.0; 289],
        lower: vec![0.0; 289],
        upper: vec![2.0; 289],
    };
    let table = Horizon::from_forecast(0, 300, &f, 1.0);
    let c = Compact {
        forecaster: super::super::horizon::Forecaster::Table(Arc::new(table)),
        scale: 1.0,
        shift: 0,
        history_end: 0,
        points: 3000,
        kind: "mstl",
    };
    let h = c.horizon(0, 300).unwrap();
    let mut t = Table::new(timing());
    let (slot, _) = t.observe("a", 0, new_series);
    let g = t.generation(slot);
    t.take_due(0);
    t.on_model(
        slot,
        g,
        Arc::new(SeriesModel {
            compact: c,
            trained_at: 0,
            trained_on: Arc::from("x"),
        }),
        Arc::new(h),
        0,
        None,
    );
    // 24 hours of table, 6 hours of horizon: refit after 18 hours.
    let mut trained_at = None;
    for minute in 1..=18 * 60 {
        let now = minute * MIN;
        t.observe("a", now, new_series);
        for d in t.take_due(now).0 {
            match d.task {
                Task::Horizon => {
                    let h = t.get(slot).unwrap().horizon.clone().unwrap();
                    t.on_horizon(slot, g, h, now);
                }
                Task::Train { .. } => trained_at = trained_at.or(Some(minute)),
            }
        }
    }
    assert_eq!(trained_at, Some(18 * 60));
}
