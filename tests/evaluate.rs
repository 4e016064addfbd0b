//! `--mode evaluate`: walk-forward never reads the future, known anomalies
//! are found, and the CLI writes every promised output.

use std::collections::BTreeMap;

use crate::common::bin;
use cpu_anomaly::{
    config::{CliOverrides, Settings},
    dataset::{LoadReport, Series, Unit},
    evaluate::{self, labels::Labels},
    forecast::{ModelFamily, Trainer},
    simulate::{self, Pattern},
};
use rand::SeedableRng;

fn settings() -> Settings {
    Settings::from_layers("", None, "defaults", |_| None, &CliOverrides::default()).unwrap()
}

fn series(len: usize, seed: u64) -> Series {
    let p = Pattern {
        step: 1800,
        len,
        ..Pattern::default()
    };
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    Series {
        name: "gen".into(),
        timestamps: p.timestamps(),
        values: p.values(&mut rng),
        unit: Unit::Percent,
        labels: None,
        report: LoadReport::default(),
    }
}

fn trainer(s: &Settings, family: ModelFamily) -> Trainer {
    Trainer::new(family, s.prophet.clone(), s.robust_training, s.seed)
}

#[test]
fn walk_forward_never_reads_the_future() {
    for family in [ModelFamily::Prophet, ModelFamily::Mstl] {
        never_reads_the_future(family);
    }
}

fn never_reads_the_future(family: ModelFamily) {
    let s = settings();
    let trainer = trainer(&s, family);
    let a = series(10 * 48, 1);
    let mut b = a.clone();
    // Change everything from index k on: forecasts before k must not move.
    let k = 7 * 48 + 5;
    for v in &mut b.values[k..] {
        *v += 40.0;
    }
    let first = 3 * 48;
    let fa = evaluate::walk_forward(&trainer, &a, first, Some(86_400)).unwrap();
    let fb = evaluate::walk_forward(&trainer, &b, first, Some(86_400)).unwrap();
    assert_eq!(fa.scored.len(), a.len() - first);
    for i in 0..(k - first) {
        let d = (fa.scored.yhat[i] - fb.scored.yhat[i]).abs()
            + (fa.scored.upper[i] - fb.scored.upper[i]).abs();
        assert!(
            d < 1e-9,
            "{family}: forecast at {} changed with future data: {d}",
            first + i
        );
    }
    // And the change is visible after k once a refit has seen it.
    let last = fa.scored.len() - 1;
    assert!((fa.scored.yhat[last] - fb.scored.yhat[last]).abs() > 5.0);
}

#[test]
fn simulated_protocol_finds_injected_anomalies() {
    for family in [ModelFamily::Prophet, ModelFamily::Mstl] {
        finds_injected_anomalies(family);
    }
}

fn finds_injected_anomalies(family: ModelFamily) {
    let s = settings();
    let trainer = trainer(&s, family);
    let data = series(21 * 48, 2);
    let scored = evaluate::evaluate_simulated(&trainer, &data, "gen", &s, 9, None).unwrap();
    let m = scored.metrics(&s.decision);
    let positives = m.point.tp + m.point.fn_;
    assert!(
        positives >= 8,
        "about 5 % of the tail injected, got {positives}"
    );
    // Injections are 1.5-4 sd of the whole series (sd ~12) on noise of 2.5:
    // a working detector finds most and raises few false flags.
    assert!(m.point.recall >= 0.7, "{family}: recall {}", m.point.recall);
    assert!(
        m.point.precision >= 0.7,
        "{family}: precision {}",
        m.point.precision
    );
    assert!(m.roc.area > 0.9, "{family}: ROC AUC {}", m.roc.area);
}

#[test]
fn labelled_protocol_hits_labelled_windows() {
    let s = settings();
    let trainer = s.trainer();
    // Daily pattern only: two days of learning cannot reveal a weekly one
    // (weekly seasonality needs two weeks of history), so weekends would be
    // honest false alarms here.
    let p = Pattern {
        step: 1800,
        len: 14 * 48,
        weekend_drop: 0.0,
        ..Pattern::default()
    };
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
    let mut data = Series {
        name: "gen".into(),
        timestamps: p.timestamps(),
        values: p.values(&mut rng),
        unit: Unit::Percent,
        labels: None,
        report: LoadReport::default(),
    };
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(4);
    let from = data.len() / 3;
    let injected = simulate::inject(
        &mut data.values,
        &data.timestamps.clone(),
        2.5,
        from,
        3,
        &mut rng,
    );
    let windows: Vec<(i64, i64)> = injected
        .iter()
        .map(|a| (data.timestamps[a.start_index], data.timestamps[a.end_index]))
        .collect();
    let scored =
        evaluate::evaluate_labelled(&trainer, &data, "gen", windows, &s, 0.15, Some(86_400))
            .unwrap();
    let m = scored.metrics(&s.decision);
    let ev = m.event.unwrap();
    assert_eq!(ev.windows, 3);
    assert!(ev.hit >= 2, "hit {} of 3 windows", ev.hit);
    assert!(
        ev.fp_events <= 2,
        "{} false alarms on clean data",
        ev.fp_events
    );
}

#[test]
fn degenerate_quiet_series_raise_no_alert() {
    // Shapes a benchmark's no-anomaly files have and a fleet has too: a
    // flat line (no noise at all: the band has no width), a perfect square
    // wave (12 hours at 80 %, 12 at 20 %: Fourier terms cannot fit its
    // edges) and a noiseless daily sine. Two weeks at 5 minutes, learning
    // on the first 15 % and walking forward with daily refits, as the
    // labelled protocol does: not one flag, not one alert.
    let s = settings();
    let trainer = s.trainer();
    let start = 1_748_822_400; // a Monday
    let timestamps: Vec<i64> = (0..4032).map(|k| start + k * 300).collect();
    let day = |t: i64| (t - start).rem_euclid(86_400) as f64 / 86_400.0;
    let shapes: [(&str, &dyn Fn(i64) -> f64); 3] = [
        ("flat line", &|_| 20.0),
        ("square wave", &|t| if day(t) < 0.5 { 80.0 } else { 20.0 }),
        ("noiseless sine", &|t| {
            50.0 + 30.0 * (2.0 * std::f64::consts::PI * day(t)).sin()
        }),
    ];
    for (name, f) in shapes {
        let data = Series {
            name: name.into(),
            timestamps: timestamps.clone(),
            values: timestamps.iter().map(|&t| f(t)).collect(),
            unit: Unit::Percent,
            labels: None,
            report: LoadReport::default(),
        };
        let scored =
            evaluate::evaluate_labelled(&trainer, &data, name, Vec::new(), &s, 0.15, Some(86_400))
                .unwrap();
        assert_eq!(
            scored.verdicts.len(),
            4032 - 604,
            "{name}: every point after the learning part"
        );
        let flags = scored
            .verdicts
            .iter()
            .filter(|v| v.detection.is_anomaly)
            .count();
        let onsets = scored.verdicts.iter().filter(|v| v.onset).count();
        assert_eq!(
            (flags, onsets),
            (0, 0),
            "{name}: {flags} flags, {onsets} alerts"
        );
    }
}

#[test]
fn evaluate_cli_simulated_writes_everything() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("cpu.csv");
    crate::common::write_generated(
        &csv,
        &Pattern {
            step: 1800,
            len: 15 * 48,
            ..Pattern::default()
        },
        5,
    );
    let o = bin()
        .current_dir(dir.path())
        .args([
            "--mode",
            "evaluate",
            "--dataset",
            "cpu.csv",
            "--output-dir",
            "out",
            "--seed",
            "3",
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        stdout.contains("simulated protocol") && stdout.contains("Point-level F1"),
        "{stdout}"
    );
    for f in [
        "scored.csv",
        "evaluation_report.txt",
        "evaluation.json",
        "confusion_matrix.png",
        "roc_curve.png",
        "precision_recall_curve.png",
        "detection_overview.png",
        "threshold_analysis.png",
    ] {
        assert!(dir.path().join("out").join(f).exists(), "missing {f}");
    }
    let scored = std::fs::read_to_string(dir.path().join("out/scored.csv")).unwrap();
    let header = scored.lines().next().unwrap();
    assert_eq!(
        header,
        "timestamp,value,yhat,yhat_lower,yhat_upper,lower_threshold,upper_threshold,score,is_anomaly,severity,alert,alert_onset,alert_resolved,phase,label"
    );
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("out/evaluation.json")).unwrap())
            .unwrap();
    assert_eq!(json["protocol"], "simulated");
    assert!(json["total"]["point"]["tp"].as_u64().unwrap() > 0);
}

#[test]
fn evaluate_cli_directory_with_labels_totals_series() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data/sub");
    std::fs::create_dir_all(&data).unwrap();
    let pattern = Pattern {
        step: 1800,
        len: 10 * 48,
        ..Pattern::default()
    };
    let mut labels = BTreeMap::new();
    for (i, name) in ["a.csv", "b.csv"].iter().enumerate() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(10 + i as u64);
        let ts = pattern.timestamps();
        let mut v = pattern.values(&mut rng);
        let inj = simulate::inject(&mut v, &ts, 2.5, 200, 2, &mut rng);
        let mut text = "timestamp,value\n".to_string();
        for (t, y) in ts.iter().zip(&v) {
            text.push_str(&format!("{t},{y:.3}\n"));
        }
        std::fs::write(data.join(name), text).unwrap();
        labels.insert(
            format!("sub/{name}"),
            inj.iter()
                .map(|a| [a.start.clone(), a.end.clone()])
                .collect::<Vec<_>>(),
        );
    }
    std::fs::write(
        dir.path().join("labels.json"),
        serde_json::to_string(&labels).unwrap(),
    )
    .unwrap();
    // The labels file parses with the project's reader too.
    assert_eq!(
        Labels::read(&dir.path().join("labels.json")).unwrap().len(),
        2
    );
    let o = bin()
        .current_dir(dir.path())
        .args([
            "--mode",
            "evaluate",
            "--dataset",
            "data",
            "--labels",
            "labels.json",
            "--output-dir",
            "out",
            "--retrain-every",
            "1d",
            "--no-plots",
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let stdout = String::from_utf8_lossy(&o.stdout);
    for w in [
        "sub/a.csv",
        "sub/b.csv",
        "TOTAL",
        "Event-level F1",
        "Event-level, raw flags",
        "NAB score, alert onsets: standard",
        "NAB score, raw flags:",
    ] {
        assert!(stdout.contains(w), "missing {w}: {stdout}");
    }
    // Scored files keep the data's relative paths (what score_events.py reads).
    assert!(dir.path().join("out/sub/a.csv").exists());
    assert!(dir.path().join("out/sub/b.csv").exists());
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("out/evaluation.json")).unwrap())
            .unwrap();
    assert_eq!(json["total"]["event"]["windows"], 4);
    // NAB scores for the alert onsets and the raw flags, within the
    // benchmark's range (a detector can score below the null one).
    for key in ["nab", "flag_nab"] {
        let v = json["total"][key]["standard"].as_f64().unwrap();
        assert!((-1000.0..=100.0).contains(&v), "{key}: {v}");
    }
    assert_eq!(json["total"]["nab"]["counts"]["windows"], 4);
    // The scored CSV carries the alert events.
    let scored = std::fs::read_to_string(dir.path().join("out/sub/a.csv")).unwrap();
    assert!(scored
        .lines()
        .next()
        .unwrap()
        .contains("alert,alert_onset,alert_resolved"));
    assert_eq!(json["per_series"].as_array().unwrap().len(), 2);
}

#[test]
fn bad_labels_file_exits_3() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("l.json"), "[1, 2]").unwrap();
    crate::common::write_generated(
        &dir.path().join("c.csv"),
        &Pattern {
            len: 300,
            ..Pattern::default()
        },
        1,
    );
    let o = bin()
        .current_dir(dir.path())
        .args([
            "--mode",
            "evaluate",
            "--dataset",
            "c.csv",
            "--labels",
            "l.json",
        ])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&o.stderr).contains("l.json: labels must be a JSON object"));
}
