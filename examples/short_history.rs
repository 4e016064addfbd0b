//! How often each history stage of the monitor raises a false alarm, on the
//! first hours and days of real series.
//!
//! ```sh
//! cargo run --release --example short_history -- DATA_DIR LABELS_JSON [SEED_CSV]
//! # e.g. ../shared/datasets/nab/data ../shared/datasets/nab/labels.json ../shared/datasets/seed/dataset.csv
//! ```
//!
//! For each series and each history length H (1 h … 8 d) the model the
//! monitor would fit on the first H (`Trainer::fit_staged`: a level and a
//! noise band under two days, Prophet after) judges what follows until the
//! monitor's next refit (the history doubles while short, one day after),
//! with the shipped decision path (`config.yaml`: the monitor's own). Points inside labelled anomaly windows, and the
//! remainder of a stage's span that runs into one, are left out: what is
//! counted is the rate of flags and alerts on data known to be normal.

use std::path::{Path, PathBuf};

use cpu_anomaly::{
    config::{CliOverrides, Settings},
    dataset::{self, ReadOptions, Unit},
    detect::Decider,
    evaluate::labels::{point_labels, Labels},
};

const HOUR: i64 = 3600;
const DAY: i64 = 86_400;

/// History lengths tried, seconds.
const STAGES: &[i64] = &[
    HOUR,
    3 * HOUR,
    6 * HOUR,
    12 * HOUR,
    DAY,
    2 * DAY,
    4 * DAY,
    8 * DAY,
];

fn csvs(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .expect("data directory")
        .flatten()
        .map(|e| e.path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            csvs(&p, out);
        } else if p.extension().is_some_and(|e| e == "csv") {
            out.push(p);
        }
    }
}

#[derive(Default, Clone, Copy)]
struct Tally {
    series: usize,
    points: usize,
    flags: usize,
    alerts: usize,
    alert_runs: usize,
    seconds: i64,
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(dir), Some(labels)) = (args.first(), args.get(1)) else {
        eprintln!("usage: short_history DATA_DIR LABELS_JSON [SEED_CSV]");
        std::process::exit(2);
    };
    let labels = Labels::read(Path::new(labels)).expect("labels");
    let mut files = Vec::new();
    csvs(Path::new(dir), &mut files);
    let mut inputs: Vec<(PathBuf, Vec<(i64, i64)>)> = files
        .into_iter()
        .map(|p| {
            let rel = p
                .strip_prefix(dir)
                .unwrap()
                .to_string_lossy()
                .replace('\\', "/");
            let w = labels.for_file(&rel).cloned().unwrap_or_default();
            (p, w)
        })
        .collect();
    if let Some(seed) = args.get(2) {
        inputs.push((PathBuf::from(seed), Vec::new()));
    }
    let shipped = Settings::from_layers(
        include_str!("../config.yaml"),
        None,
        "config.yaml",
        |_| None,
        &CliOverrides::default(),
    )
    .expect("config.yaml");
    let trainer = shipped.trainer();
    // Real CPU series (AWS CloudWatch, the seed set) and NAB's artificial
    // ones (square waves, flat lines) are reported apart.
    let mut tallies = vec![[Tally::default(); 2]; STAGES.len()];
    for (path, windows) in &inputs {
        let group = usize::from(path.to_string_lossy().contains("artificial"));
        let s = dataset::read_csv(path, &ReadOptions::default()).expect("csv");
        let scale = if s.unit == Unit::Fraction { 100.0 } else { 1.0 };
        let ys: Vec<f64> = s.values.iter().map(|v| v * scale).collect();
        let ts = &s.timestamps;
        let labelled = point_labels(ts, windows);
        let t0 = ts[0];
        for (k, &h) in STAGES.iter().enumerate() {
            let fit_end = t0 + h;
            // The monitor's next refit: the history doubles while short.
            let judge_end = if h < 2 * DAY {
                t0 + 2 * h
            } else {
                fit_end + DAY
            };
            let train: Vec<usize> = (0..ts.len()).filter(|&i| ts[i] < fit_end).collect();
            let judge: Vec<usize> = (0..ts.len())
                .filter(|&i| ts[i] >= fit_end && ts[i] < judge_end)
                .collect();
            if train.len() < 10 || judge.is_empty() || *ts.last().unwrap() < judge_end - 1 {
                continue;
            }
            // A stage whose training or judged span holds a labelled anomaly
            // is not "normal data": left out.
            if train.iter().chain(&judge).any(|&i| labelled[i]) {
                continue;
            }
            let tt: Vec<i64> = train.iter().map(|&i| ts[i]).collect();
            let ty: Vec<f64> = train.iter().map(|&i| ys[i]).collect();
            let Ok(fitted) = trainer.fit_staged(&tt, &ty, Unit::Percent) else {
                continue;
            };
            let jt: Vec<i64> = judge.iter().map(|&i| ts[i]).collect();
            let f = fitted.model.predict(&jt).expect("predict");
            let mut decider = Decider::new(shipped.decision);
            let verbose = std::env::var_os("VERBOSE").is_some();
            let t = &mut tallies[k][group];
            let before = t.flags;
            t.series += 1;
            t.seconds += judge_end - fit_end;
            for (j, &i) in judge.iter().enumerate() {
                let v = decider.update(
                    ts[i],
                    ys[i],
                    f.yhat[j],
                    f.lower[j],
                    f.upper[j],
                    shipped.prophet.interval_width,
                );
                t.points += 1;
                t.flags += usize::from(v.detection.is_anomaly);
                t.alerts += usize::from(v.alert);
                t.alert_runs += usize::from(v.onset);
            }
            if verbose {
                eprintln!(
                    "{:>6} {:>50} flagged {:>4} of {:>4}",
                    h / HOUR,
                    path.display().to_string(),
                    t.flags - before,
                    judge.len()
                );
            }
        }
    }
    for (group, name) in [(0, "real CPU series"), (1, "NAB artificial series")] {
        println!("{name}:");
        println!(
            "{:>10} {:>22} {:>7} {:>7} {:>8} {:>11}",
            "history", "model", "series", "points", "flagged", "alerts/day"
        );
        for (k, &h) in STAGES.iter().enumerate() {
            let t = tallies[k][group];
            let label = if h < DAY {
                format!("{} h", h / HOUR)
            } else {
                format!("{} d", h / DAY)
            };
            // Two days of history at the data's step span a step less than
            // two days: still the level stage.
            let model = if h <= 2 * DAY {
                "level + noise band"
            } else {
                "Prophet (auto seasons)"
            };
            let days = t.seconds as f64 / DAY as f64;
            println!(
                "{label:>10} {model:>22} {:>7} {:>7} {:>7.2}% {:>11.2}",
                t.series,
                t.points,
                100.0 * t.flags as f64 / t.points.max(1) as f64,
                t.alert_runs as f64 / days.max(1e-9),
            );
        }
    }
    println!("(flagged: share of judged normal points outside the scaled band; alerts/day: alert onsets per host-day)");
}
