//! Leave-series-out cross-validation of the decision settings over the
//! development data: how good are defaults chosen this way on series that
//! played no part in choosing them?
//!
//! ```sh
//! cargo run --release --example cross_validate -- NAB_DIR [GENERATED_PER_KIND] [FOLDS]
//! # e.g. ../shared/datasets/nab 5 5
//! ```
//!
//! The series: the labelled NAB series under `NAB_DIR/data` (windows from
//! `NAB_DIR/labels.json`) and generated 14-day series with spikes, level
//! shifts, slow drifts, variance changes, broken seasonality, and clean ones
//! (`cpu_anomaly::simulate::incident_series`). Each is forecast once as
//! `--mode evaluate` does (learn on the first 15 %, walk forward with a
//! daily refit, the shipped model settings); every candidate decision
//! setting then judges every series with the same decision path as the
//! monitor (`cpu_anomaly::evaluate::decide_all`).
//!
//! Folds: series are dealt round-robin within their group (NAB, and each
//! generated kind) into FOLDS folds. For each fold the setting with the best
//! NAB standard score (alert onsets) among those whose alerts are at least
//! 60 % true on the other folds is chosen and scored on the fold. Printed: per fold and mean ± sd, the held-out NAB score and
//! event metrics of the alerts; then the setting chosen on all the data (the
//! one to ship) with its (in-sample) figures.
//!
//! `LOW_LEVEL=1` adds as many generated hosts again (other seeds, the same
//! incidents) scaled down so that they idle at 0.3-4 % (groups
//! `low_<kind>`), like the NAB AWS series that live under the minimum
//! effect. `RELATIVE` sets the grid's `min_effect_relative` values
//! (default `0,0.25`; `RELATIVE=0`: the floor off), `PEAKS` its
//! `min_effect_peak_factor` values where the relative floor is on (default
//! `1,1.5,2`), `MIN_PRECISION` the selection's precision floor (default
//! 0.6).
//!
//! Diagnostics of the chosen setting: `VERBOSE=1` (per group and NAB series),
//! `DIAG=1` (every onset against the windows), `DUMP=NAME:HOUR` (the
//! decision path sample by sample around HOUR), `EXPLORE=1` (the best
//! setting per value of each knob, in-sample).
//!
//! `WARM=1` (an experiment; evaluate and the monitor do not do this yet):
//! each series' decision state first learns from its training part against
//! the in-sample forecast ([`cpu_anomaly::detect::Decider::end_warm_up`]).

use std::path::Path;

use cpu_anomaly::{
    dataset::{self, ReadOptions, Series, Unit},
    detect::{DecisionSettings, Side, Verdict},
    evaluate::{
        self,
        labels::Labels,
        metrics::EventMetrics,
        nab::{self, Raw},
    },
    forecast::{FutureTrend, ModelFamily, ProphetSettings, Trainer, MIN_FIT_POINTS},
    simulate::{incident_series, IncidentKind},
};

/// One development series, forecast once.
struct Dev {
    name: String,
    group: String,
    series: Series,
    windows: Vec<(i64, i64)>,
    first: usize,
    /// Per trend variant (linear, flat): the forecast and its refits.
    forecasts: Vec<(cpu_anomaly::forecast::Forecast, Vec<usize>)>,
    learn: cpu_anomaly::forecast::Forecast,
}

/// A candidate: the trend variant and the decision settings.
#[derive(Clone, Copy)]
struct Candidate {
    trend: FutureTrend,
    decision: DecisionSettings,
}

/// What one setting did on one series.
#[derive(Clone, Copy, Default)]
struct Outcome {
    nab: Raw,
    events: EventMetrics,
}

fn grid() -> Vec<Candidate> {
    let mut out = Vec::new();
    for trend in [FutureTrend::Linear, FutureTrend::Flat] {
        for decision in decisions() {
            out.push(Candidate { trend, decision });
        }
    }
    out
}

fn decisions() -> Vec<DecisionSettings> {
    const HOUR: i64 = 3600;
    let relative: Vec<f64> = std::env::var("RELATIVE")
        .unwrap_or_else(|_| "0,0.25".into())
        .split(',')
        .map(|v| v.trim().parse().expect("RELATIVE: comma-separated numbers"))
        .collect();
    let peaks: Vec<f64> = std::env::var("PEAKS")
        .unwrap_or_else(|_| "1,1.5,2".into())
        .split(',')
        .map(|v| v.trim().parse().expect("PEAKS: comma-separated numbers"))
        .collect();
    // The peak factor matters only with the relative floor.
    let floors: Vec<(f64, f64)> = relative
        .iter()
        .flat_map(|&r| {
            if r > 0.0 {
                peaks.iter().map(|&p| (r, p)).collect()
            } else {
                vec![(0.0, 0.0)]
            }
        })
        .collect();
    let mut out = Vec::new();
    for &multiplier in &[2.0, 2.5, 3.0] {
        for &sustained in &[1, 2] {
            for &min_effect in &[3.0, 6.0] {
                for &(min_effect_relative, min_effect_peak_factor) in &floors {
                    for &cooldown in &[2 * HOUR, 6 * HOUR, 24 * HOUR] {
                        for &rebaseline_after in &[0, 2 * HOUR] {
                            for &likelihood in &[0.0, 0.05, 0.02, 0.01, 0.003] {
                                for &likelihood_alone in &[0.0, 1e-3, 1e-4] {
                                    out.push(DecisionSettings {
                                        multiplier,
                                        sustained,
                                        min_effect,
                                        min_effect_relative,
                                        min_effect_peak_factor,
                                        direction: Side::Both,
                                        calibrate: false,
                                        clear_after: HOUR / 2,
                                        cooldown,
                                        rebaseline_after,
                                        likelihood,
                                        likelihood_alone,
                                    });
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    out
}

fn describe(c: &Candidate) -> String {
    let s = &c.decision;
    format!(
        "trend {} m {} N {} effect {} relative {} peak {} calib {} clear {} cooldown {} rebaseline {} likelihood {} alone {}",
        c.trend.as_str(),
        s.multiplier,
        s.sustained,
        s.min_effect,
        s.min_effect_relative,
        s.min_effect_peak_factor,
        s.calibrate,
        s.clear_after,
        s.cooldown,
        s.rebaseline_after,
        s.likelihood,
        s.likelihood_alone
    )
}

/// A series to load: name, group, data, label windows.
type Loaded = (String, String, Series, Vec<(i64, i64)>);

/// A knob of the grid: its name and how to read it off a candidate.
type Knob<'a> = (&'a str, &'a dyn Fn(&Candidate) -> f64);

fn load(nab_dir: &Path, per_kind: u64) -> Vec<Loaded> {
    let mut out = Vec::new();
    let labels = Labels::read(&nab_dir.join("labels.json")).expect("labels.json");
    let files = evaluate::csv_files(&nab_dir.join("data")).expect("NAB data");
    for (path, rel) in files {
        let s = dataset::read_csv(&path, &ReadOptions::default()).expect("csv");
        let w = labels.for_file(&rel).cloned().unwrap_or_default();
        out.push((rel, "nab".to_string(), s, w));
    }
    for kind in IncidentKind::ALL {
        for seed in 1..=per_kind {
            let g = incident_series(kind, seed);
            let series = Series {
                name: g.name.clone(),
                timestamps: g.timestamps,
                values: g.values,
                unit: Unit::Percent,
                labels: None,
                report: Default::default(),
            };
            out.push((g.name, kind.as_str().to_string(), series, g.windows));
        }
    }
    if std::env::var("LOW_LEVEL").is_ok_and(|v| !v.is_empty() && v != "0") {
        // Hosts that idle at 0.3-4 %: other generated hosts with the same
        // incidents, scaled down so their median sits there.
        for kind in IncidentKind::ALL {
            for seed in per_kind + 1..=2 * per_kind {
                let g = incident_series(kind, seed);
                let mut sorted = g.values.clone();
                sorted.sort_by(f64::total_cmp);
                let median = sorted[sorted.len() / 2].max(0.1);
                let level = 0.3 + 3.7 * (seed as f64 * 0.618_034).fract();
                let series = Series {
                    name: format!("low/{}", g.name),
                    timestamps: g.timestamps,
                    values: g.values.iter().map(|v| v * level / median).collect(),
                    unit: Unit::Percent,
                    labels: None,
                    report: Default::default(),
                };
                out.push((
                    series.name.clone(),
                    format!("low_{}", kind.as_str()),
                    series,
                    g.windows,
                ));
            }
        }
    }
    out
}

/// The decision path of `c` over the scored part of `d`.
fn verdicts(d: &Dev, c: &Candidate, interval_width: f64) -> Vec<Verdict> {
    let (forecast, refits) = &d.forecasts[usize::from(c.trend == FutureTrend::Flat)];
    if std::env::var_os("WARM").is_none() {
        return evaluate::decide_all(
            forecast,
            &d.series.values[d.first..],
            refits,
            &c.decision,
            interval_width,
            d.series.unit,
        );
    }
    let s = cpu_anomaly::detect::DecisionSettings {
        min_effect: c.decision.min_effect * d.series.unit.full_scale() / 100.0,
        ..c.decision
    };
    let mut dec = cpu_anomaly::detect::Decider::new(s);
    let l = &d.learn;
    for i in 0..l.timestamps.len().min(d.first) {
        dec.update(
            l.timestamps[i],
            d.series.values[i],
            l.yhat[i],
            l.lower[i],
            l.upper[i],
            interval_width,
        );
    }
    dec.end_warm_up();
    let mut next = refits.iter().copied().peekable();
    d.series.values[d.first..]
        .iter()
        .enumerate()
        .map(|(i, &v)| {
            while next.peek().is_some_and(|&r| r <= i) {
                if next.next().is_some_and(|r| r == i && i > 0) {
                    dec.refitted();
                }
            }
            dec.update(
                forecast.timestamps[i],
                v,
                forecast.yhat[i],
                forecast.lower[i],
                forecast.upper[i],
                interval_width,
            )
        })
        .collect()
}

fn outcome(d: &Dev, c: &Candidate, interval_width: f64) -> Outcome {
    let v = verdicts(d, c, interval_width);
    let mut states = vec![false; d.first];
    states.extend(v.iter().map(|x| x.alert));
    let mut onsets = vec![false; d.first];
    onsets.extend(v.iter().map(|x| x.onset));
    Outcome {
        nab: nab::score(&d.series.timestamps, &onsets, &d.windows, &nab::PROFILES[0]),
        events: EventMetrics::compute(&d.series.timestamps, &states, &d.windows),
    }
}

fn sum(outcomes: impl Iterator<Item = Outcome>) -> Outcome {
    outcomes.fold(Outcome::default(), |a, b| Outcome {
        nab: a.nab.merge(&b.nab),
        events: a.events.merge(&b.events),
    })
}

fn mean_sd(v: &[f64]) -> (f64, f64) {
    let n = v.len().max(1) as f64;
    let m = v.iter().sum::<f64>() / n;
    let var = v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (n - 1.0).max(1.0);
    (m, var.sqrt())
}

/// `DIAG=1`: every alert onset of the chosen setting, per series: inside a
/// window (`IN`) or not (`FP`, hours from the nearest window), its residual
/// and forecast; and the windows no onset fell in.
fn diagnose(devs: &[Dev], c: &Candidate, interval_width: f64) {
    for d in devs {
        let v = verdicts(d, c, interval_width);
        let mut line = String::new();
        for (j, x) in v.iter().enumerate() {
            if !x.onset {
                continue;
            }
            let t = d.series.timestamps[d.first + j];
            let inside = d.windows.iter().any(|&(a, b)| a <= t && t <= b);
            let rel = d
                .windows
                .iter()
                .map(|&(a, b)| {
                    if t < a {
                        (t - a) as f64 / 3600.0
                    } else if t > b {
                        (t - b) as f64 / 3600.0
                    } else {
                        0.0
                    }
                })
                .min_by(|a, b| a.abs().total_cmp(&b.abs()))
                .unwrap_or(f64::NAN);
            let res = d.series.values[d.first + j] - x.yhat;
            line.push_str(&format!(
                " {}{:+.1}h(r{:+.1},y{:.1})",
                if inside { "IN" } else { "FP" },
                rel,
                res,
                x.yhat
            ));
        }
        let missed: Vec<String> = d
            .windows
            .iter()
            .filter(|&&(a, b)| {
                !v.iter()
                    .enumerate()
                    .any(|(j, x)| x.onset && (a..=b).contains(&d.series.timestamps[d.first + j]))
            })
            .map(|&(a, _)| format!("{:.0}h", (a - d.series.timestamps[0]) as f64 / 3600.0))
            .collect();
        println!("{:>50}:{line}  missed {:?}", d.name, missed);
    }
}

/// `DUMP=NAME:HOUR`: sample by sample, ten hours either side of HOUR (from
/// the series' start), what the chosen setting's decision path saw.
fn dump(devs: &[Dev], c: &Candidate, interval_width: f64, spec: &str) {
    let (name, hour) = spec.split_once(':').expect("DUMP=NAME:HOUR");
    let hour: f64 = hour.parse().expect("DUMP=NAME:HOUR");
    let d = devs
        .iter()
        .find(|d| d.name.contains(name))
        .expect("DUMP: no such series");
    let (forecast, refits) = &d.forecasts[usize::from(c.trend == FutureTrend::Flat)];
    let mut dec = cpu_anomaly::detect::Decider::new(c.decision);
    let mut next = refits.iter().copied().peekable();
    for (j, &v) in d.series.values[d.first..].iter().enumerate() {
        while next.peek().is_some_and(|&r| r <= j) {
            dec.refitted();
            next.next();
        }
        let t = d.series.timestamps[d.first + j];
        let x = dec.update(
            t,
            v,
            forecast.yhat[j],
            forecast.lower[j],
            forecast.upper[j],
            interval_width,
        );
        let h = (t - d.series.timestamps[0]) as f64 / 3600.0;
        if (h - hour).abs() < 10.0 {
            let inw = d.windows.iter().any(|&(a, b)| a <= t && t <= b);
            println!("{h:7.2} {} v {v:7.2} yhat {:7.2} lo {:7.2} up {:7.2} score {:5.2} flag {} tail {:.4} alert {} onset {}", if inw {"W"} else {" "}, x.yhat, forecast.lower[j], forecast.upper[j], x.detection.score, u8::from(x.detection.is_anomaly), dec.tail(), u8::from(x.alert), u8::from(x.onset));
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(nab_dir) = args.first() else {
        eprintln!("usage: cross_validate NAB_DIR [GENERATED_PER_KIND] [FOLDS]");
        std::process::exit(2);
    };
    let per_kind: u64 = args
        .get(1)
        .map_or(5, |s| s.parse().expect("GENERATED_PER_KIND"));
    let folds: usize = args.get(2).map_or(5, |s| s.parse().expect("FOLDS"));
    let settings = ProphetSettings::default();
    let interval_width = settings.interval_width;
    let trainers: Vec<Trainer> = [FutureTrend::Linear, FutureTrend::Flat]
        .into_iter()
        .map(|future_trend| {
            let s = ProphetSettings {
                future_trend,
                ..settings.clone()
            };
            Trainer::new(ModelFamily::Prophet, s, false, 42)
        })
        .collect();
    let started = std::time::Instant::now();
    let devs: Vec<Dev> = load(Path::new(nab_dir), per_kind)
        .into_iter()
        .map(|(name, group, series, windows)| {
            let first = ((series.len() as f64 * 0.15) as usize).max(MIN_FIT_POINTS);
            let mut learn = Default::default();
            let forecasts = trainers
                .iter()
                .map(|t| {
                    let wf = evaluate::walk_forward(t, &series, first, Some(86_400))
                        .unwrap_or_else(|e| panic!("{name}: {e}"));
                    learn = wf.learn;
                    (wf.scored, wf.refits)
                })
                .collect();
            Dev {
                name,
                group,
                series,
                windows,
                first,
                forecasts,
                learn,
            }
        })
        .collect();
    eprintln!(
        "{} series forecast in {:.1}s",
        devs.len(),
        started.elapsed().as_secs_f64()
    );
    // Fold of each series: round-robin within its group.
    let mut fold_of = vec![0; devs.len()];
    let mut groups: Vec<&str> = devs.iter().map(|d| d.group.as_str()).collect();
    groups.sort_unstable();
    groups.dedup();
    for g in groups {
        let mut members: Vec<usize> = (0..devs.len()).filter(|&i| devs[i].group == g).collect();
        members.sort_by(|&a, &b| devs[a].name.cmp(&devs[b].name));
        for (k, i) in members.into_iter().enumerate() {
            fold_of[i] = k % folds;
        }
    }
    let candidates = grid();
    let table: Vec<Vec<Outcome>> = candidates
        .iter()
        .map(|s| devs.iter().map(|d| outcome(d, s, interval_width)).collect())
        .collect();
    eprintln!(
        "{} settings judged in {:.1}s",
        candidates.len(),
        started.elapsed().as_secs_f64()
    );
    let nab_of = |o: &Outcome| o.nab.normalised(&nab::PROFILES[0]);
    // The objective: NAB standard score among the settings whose alerts are
    // at least 60 % true on the training series (an SRE reads every alert);
    // if none is, the most precise.
    let min_precision: f64 = std::env::var("MIN_PRECISION")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.6);
    let objective = |o: &Outcome| -> f64 {
        if o.events.precision >= min_precision {
            nab_of(o)
        } else {
            -1000.0 + 100.0 * o.events.precision
        }
    };
    let best_on = |members: &dyn Fn(usize) -> bool| -> usize {
        let scores: Vec<f64> = (0..candidates.len())
            .map(|c| {
                objective(&sum((0..devs.len())
                    .filter(|&i| members(i))
                    .map(|i| table[c][i])))
            })
            .collect();
        (0..candidates.len())
            .max_by(|&a, &b| scores[a].total_cmp(&scores[b]))
            .expect("candidates")
    };
    println!(
        "{:>4} {:>6} {:>7} {:>7} {:>7} {:>7} {:>9} {:>9}  chosen on the other folds",
        "fold", "series", "NAB", "evF1", "evP", "winR", "NAB(nab)", "NAB(gen)"
    );
    let mut cols: [Vec<f64>; 6] = Default::default();
    for k in 0..folds {
        let chosen = best_on(&|i| fold_of[i] != k);
        let held = |pred: &dyn Fn(usize) -> bool| {
            sum((0..devs.len())
                .filter(|&i| fold_of[i] == k && pred(i))
                .map(|i| table[chosen][i]))
        };
        let all = held(&|_| true);
        let nab_part = held(&|i| devs[i].group == "nab");
        let gen_part = held(&|i| devs[i].group != "nab");
        let n = (0..devs.len()).filter(|&i| fold_of[i] == k).count();
        let row = [
            nab_of(&all),
            all.events.f1,
            all.events.precision,
            all.events.recall,
            nab_of(&nab_part),
            nab_of(&gen_part),
        ];
        println!(
            "{k:>4} {n:>6} {:>7.1} {:>7.3} {:>7.3} {:>7.3} {:>9.1} {:>9.1}  {}",
            row[0],
            row[1],
            row[2],
            row[3],
            row[4],
            row[5],
            describe(&candidates[chosen])
        );
        for (c, v) in cols.iter_mut().zip(row) {
            c.push(v);
        }
    }
    let ms: Vec<(f64, f64)> = cols.iter().map(|c| mean_sd(c)).collect();
    println!(
        "mean ± sd    {:>5.1} ± {:<4.1} F1 {:.3} ± {:.3}  P {:.3} ± {:.3}  R {:.3} ± {:.3}  NAB(nab) {:.1} ± {:.1}  NAB(gen) {:.1} ± {:.1}",
        ms[0].0, ms[0].1, ms[1].0, ms[1].1, ms[2].0, ms[2].1, ms[3].0, ms[3].1, ms[4].0, ms[4].1, ms[5].0, ms[5].1
    );
    let chosen = best_on(&|_| true);
    let all = sum((0..devs.len()).map(|i| table[chosen][i]));
    let nab_only = sum((0..devs.len())
        .filter(|&i| devs[i].group == "nab")
        .map(|i| table[chosen][i]));
    println!(
        "chosen on all the data: {}\n  in-sample: NAB {:.1} (NAB series {:.1}), event F1 {:.3} P {:.3} R {:.3} ({} alerts, {} false)",
        describe(&candidates[chosen]),
        nab_of(&all),
        nab_of(&nab_only),
        all.events.f1,
        all.events.precision,
        all.events.recall,
        all.events.events,
        all.events.fp_events
    );
    if std::env::var_os("VERBOSE").is_some() {
        let mut gs: Vec<&str> = devs.iter().map(|d| d.group.as_str()).collect();
        gs.sort_unstable();
        gs.dedup();
        for g in gs {
            let o = sum((0..devs.len())
                .filter(|&i| devs[i].group == g)
                .map(|i| table[chosen][i]));
            println!(
                "  {g:>14}: windows {:>3} hit {:>3} alerts {:>3} false {:>3}  NAB {:>6.1}",
                o.events.windows,
                o.events.hit,
                o.events.events,
                o.events.fp_events,
                nab_of(&o)
            );
        }
        for (i, d) in devs.iter().enumerate().filter(|(_, d)| d.group == "nab") {
            let o = table[chosen][i];
            println!(
                "  {:>60}: windows {} hit {} alerts {} false {}",
                d.name, o.events.windows, o.events.hit, o.events.events, o.events.fp_events
            );
        }
    }
    if std::env::var_os("DIAG").is_some() {
        diagnose(&devs, &candidates[chosen], interval_width);
    }
    if let Ok(spec) = std::env::var("DUMP") {
        dump(&devs, &candidates[chosen], interval_width, &spec);
    }
    if std::env::var_os("EXPLORE").is_some() {
        // In-sample: the best setting by NAB for each value of one knob.
        let knobs: [Knob; 11] = [
            ("cooldown", &|c| c.decision.cooldown as f64),
            ("flat", &|c| {
                f64::from(u8::from(c.trend == FutureTrend::Flat))
            }),
            ("m", &|c| {
                let s = &c.decision;
                s.multiplier
            }),
            ("N", &|c| {
                let s = &c.decision;
                f64::from(s.sustained)
            }),
            ("effect", &|c| {
                let s = &c.decision;
                s.min_effect
            }),
            ("relative", &|c| c.decision.min_effect_relative),
            ("peak", &|c| c.decision.min_effect_peak_factor),
            ("calib", &|c| {
                let s = &c.decision;
                f64::from(u8::from(s.calibrate))
            }),
            ("clear", &|c| {
                let s = &c.decision;
                s.clear_after as f64
            }),
            ("rebaseline", &|c| {
                let s = &c.decision;
                s.rebaseline_after as f64
            }),
            ("likelihood", &|c| {
                let s = &c.decision;
                s.likelihood
            }),
        ];
        for (name, knob) in knobs {
            let mut values: Vec<f64> = candidates.iter().map(knob).collect();
            values.sort_by(f64::total_cmp);
            values.dedup();
            for v in values {
                let best = (0..candidates.len())
                    .filter(|&c| knob(&candidates[c]) == v)
                    .max_by(|&a, &b| {
                        nab_of(&sum(table[a].iter().copied()))
                            .total_cmp(&nab_of(&sum(table[b].iter().copied())))
                    })
                    .unwrap();
                let o = sum(table[best].iter().copied());
                let pbest = (0..candidates.len())
                    .filter(|&c| knob(&candidates[c]) == v)
                    .max_by(|&a, &b| {
                        let fa = sum(table[a].iter().copied()).events;
                        let fb = sum(table[b].iter().copied()).events;
                        fa.f1.total_cmp(&fb.f1)
                    })
                    .unwrap();
                let q = sum(table[pbest].iter().copied());
                println!(
                    "  {name}={v}: best NAB {:.1} (F1 {:.3} P {:.3}) | best F1 {:.3} (P {:.3} R {:.3} NAB {:.1})",
                    nab_of(&o),
                    o.events.f1,
                    o.events.precision,
                    q.events.f1,
                    q.events.precision,
                    q.events.recall,
                    nab_of(&q)
                );
            }
        }
    }
    // The original rule, for reference (band × 2, 3 in a row).
    let base = Candidate {
        trend: FutureTrend::Linear,
        decision: DecisionSettings::default(),
    };
    let b = sum(devs.iter().map(|d| outcome(d, &base, interval_width)));
    println!(
        "original rule ({}): NAB {:.1}, event F1 {:.3} P {:.3} R {:.3}",
        describe(&base),
        nab_of(&b),
        b.events.f1,
        b.events.precision,
        b.events.recall
    );
}
