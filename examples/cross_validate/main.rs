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
//! shifts, slow drifts, variance changes, broken seasonality, clean ones,
//! routine ones (a daily job) and bursty ones (short bursts at random
//! times; `cpu_anomaly::simulate::incident_series`). Each is forecast once as
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
//! `1,1.5,2`), `ROUTINE` its `alert_routine_factor` values (default
//! `0,1.5`), `ALONE` its `alert_likelihood_alone` values (default
//! `0,0.001,0.0001`), `MULTIPLIERS` its band multipliers (default `2,2.5,3`),
//! `ROBUST=1` fits with robust training, `TREND_UNCERTAINTY=1` with
//! Prophet's own band (widened by simulated trend changes), `PRECISION_EACH=1` holds the precision floor on the NAB
//! and the generated series separately, `MIN_PRECISION` the selection's precision floor (default
//! 0.6).
//!
//! `DEALS=R` repeats the held-out scoring over R deals of the series into
//! folds (deal 0 as above, the others shuffled within their groups, seeded)
//! and prints the pooled mean ± sd over all R × FOLDS held-out folds, the
//! range of a deal's mean, and how many deals meet the targets (NAB ≥ 70,
//! event-F1 ≥ 0.6, precision ≥ 0.6). The grid is judged once, so this
//! costs seconds.
//!
//! Diagnostics of the chosen setting: `VERBOSE=1` (per group and NAB series),
//! `DIAG=1` (every onset against the windows), `DUMP=NAME:HOUR` (the
//! decision path sample by sample around HOUR), `EXPLORE=1` (the best
//! setting per value of each knob, in-sample).
//!
//! `WARM=1` (an experiment; evaluate and the monitor do not do this yet):
//! each series' decision state first learns from its training part against
//! the in-sample forecast ([`cpu_anomaly::detect::Decider::end_warm_up`]).

mod diag;
mod grid;
mod series;

use std::path::Path;

use rand::{seq::SliceRandom, SeedableRng};
use rand_chacha::ChaCha8Rng;

use cpu_anomaly::{
    detect::DecisionSettings,
    evaluate::{self, nab},
    forecast::{FutureTrend, ModelFamily, ProphetSettings, Trainer, MIN_FIT_POINTS},
};

use diag::{diagnose, dump};
use grid::{describe, grid, Candidate, Knob};
use series::{load, mean_sd, outcome, sum, Dev, Outcome};

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
    // `TREND_UNCERTAINTY=1`: Prophet's own band, widened after the history
    // by simulated trend changes (`prophet_trend_uncertainty: true`).
    let settings = ProphetSettings {
        trend_uncertainty: std::env::var("TREND_UNCERTAINTY")
            .is_ok_and(|v| !v.is_empty() && v != "0"),
        ..ProphetSettings::default()
    };
    let interval_width = settings.interval_width;
    // `ROBUST=1`: robust training (fit, drop outlying points, refit), as
    // `robust_training: true` does.
    let robust = std::env::var("ROBUST").is_ok_and(|v| !v.is_empty() && v != "0");
    let trainers: Vec<Trainer> = [FutureTrend::Linear, FutureTrend::Flat]
        .into_iter()
        .map(|future_trend| {
            let s = ProphetSettings {
                future_trend,
                ..settings.clone()
            };
            Trainer::new(ModelFamily::Prophet, s, robust, 42)
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
    // Fold of each series: dealt round-robin within its group, in name
    // order (deal 0) or shuffled (deal r > 0, seeded by r).
    let deal = |r: u64| -> Vec<usize> {
        let mut fold_of = vec![0; devs.len()];
        let mut groups: Vec<&str> = devs.iter().map(|d| d.group.as_str()).collect();
        groups.sort_unstable();
        groups.dedup();
        let mut rng = ChaCha8Rng::seed_from_u64(r);
        for g in groups {
            let mut members: Vec<usize> = (0..devs.len()).filter(|&i| devs[i].group == g).collect();
            members.sort_by(|&a, &b| devs[a].name.cmp(&devs[b].name));
            if r > 0 {
                members.shuffle(&mut rng);
            }
            for (k, i) in members.into_iter().enumerate() {
                fold_of[i] = k % folds;
            }
        }
        fold_of
    };
    let fold_of = deal(0);
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
    // `PRECISION_EACH=1`: the precision floor must hold on the NAB series
    // and on the generated ones separately (the generated series outnumber
    // the real ones and can carry a setting whose real alerts are not).
    let each = std::env::var("PRECISION_EACH").is_ok_and(|v| !v.is_empty() && v != "0");
    let best_on = |members: &dyn Fn(usize) -> bool| -> usize {
        let scores: Vec<f64> = (0..candidates.len())
            .map(|c| {
                let part = |nab: bool| {
                    sum((0..devs.len())
                        .filter(|&i| members(i) && (devs[i].group == "nab") == nab)
                        .map(|i| table[c][i]))
                };
                let all = sum((0..devs.len()).filter(|&i| members(i)).map(|i| table[c][i]));
                let worst = part(true)
                    .events
                    .precision
                    .min(part(false).events.precision);
                if each && worst < min_precision {
                    -1000.0 + 100.0 * worst
                } else {
                    objective(&all)
                }
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
    // Per held-out fold of a deal: the setting chosen on the other folds,
    // the fold's size and its figures (NAB, event-F1, precision, recall,
    // NAB of the NAB series, NAB of the generated ones).
    let held_out = |fold_of: &[usize]| -> Vec<(usize, usize, [f64; 6])> {
        (0..folds)
            .map(|k| {
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
                (chosen, n, row)
            })
            .collect()
    };
    let mut cols: [Vec<f64>; 6] = Default::default();
    for (k, (chosen, n, row)) in held_out(&fold_of).into_iter().enumerate() {
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
    // `DEALS=R`: R − 1 more deals of the series into folds (shuffled within
    // their groups), so the held-out figures do not rest on one deal.
    let deals: u64 = std::env::var("DEALS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    if deals > 1 {
        let mut pooled: [Vec<f64>; 6] = Default::default();
        let mut means: [Vec<f64>; 3] = Default::default();
        let mut met = 0;
        for r in 0..deals {
            let rows = held_out(&deal(r));
            let mut mine: [Vec<f64>; 6] = Default::default();
            for (_, _, row) in rows {
                for j in 0..6 {
                    mine[j].push(row[j]);
                    pooled[j].push(row[j]);
                }
            }
            let m: Vec<f64> = mine.iter().map(|c| mean_sd(c).0).collect();
            for (c, v) in means.iter_mut().zip([m[0], m[1], m[2]]) {
                c.push(v);
            }
            met += usize::from(m[0] >= 70.0 && m[1] >= 0.6 && m[2] >= 0.6);
        }
        let ps: Vec<(f64, f64)> = pooled.iter().map(|c| mean_sd(c)).collect();
        let range = |c: &[f64]| {
            let lo = c.iter().copied().fold(f64::INFINITY, f64::min);
            let hi = c.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            (lo, hi)
        };
        let (n0, n1) = range(&means[0]);
        let (f0, f1) = range(&means[1]);
        let (p0, p1) = range(&means[2]);
        println!(
            "{deals} deals ({} held-out folds): NAB {:.1} ± {:.1}  F1 {:.3} ± {:.3}  P {:.3} ± {:.3}  R {:.3} ± {:.3}  NAB(nab) {:.1} ± {:.1}  NAB(gen) {:.1} ± {:.1}",
            pooled[0].len(),
            ps[0].0, ps[0].1, ps[1].0, ps[1].1, ps[2].0, ps[2].1, ps[3].0, ps[3].1, ps[4].0, ps[4].1, ps[5].0, ps[5].1
        );
        println!(
            "  a deal's mean: NAB {n0:.1} to {n1:.1}, F1 {f0:.3} to {f1:.3}, P {p0:.3} to {p1:.3}; {met} of {deals} deals meet NAB ≥ 70, F1 ≥ 0.6 and P ≥ 0.6"
        );
    }
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
        let knobs: [Knob; 12] = [
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
            ("routine", &|c| c.decision.routine_factor),
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
