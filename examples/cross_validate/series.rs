//! The development series (NAB dev and generated), forecast once, and
//! what a candidate's decision path does on them.

use std::path::Path;

use cpu_anomaly::{
    dataset::{self, ReadOptions, Series, Unit},
    detect::Verdict,
    evaluate::{
        self,
        labels::Labels,
        metrics::EventMetrics,
        nab::{self, Raw},
    },
    forecast::FutureTrend,
    simulate::{incident_series, IncidentKind},
};

use crate::grid::Candidate;

/// One development series, forecast once.
pub(crate) struct Dev {
    pub(crate) name: String,
    pub(crate) group: String,
    pub(crate) series: Series,
    pub(crate) windows: Vec<(i64, i64)>,
    pub(crate) first: usize,
    /// Per trend variant (linear, flat): the forecast and its refits.
    pub(crate) forecasts: Vec<(cpu_anomaly::forecast::Forecast, Vec<usize>)>,
    pub(crate) learn: cpu_anomaly::forecast::Forecast,
}

/// What one setting did on one series.
#[derive(Clone, Copy, Default)]
pub(crate) struct Outcome {
    pub(crate) nab: Raw,
    pub(crate) events: EventMetrics,
}

/// A series to load: name, group, data, label windows.
pub(crate) type Loaded = (String, String, Series, Vec<(i64, i64)>);

pub(crate) fn load(nab_dir: &Path, per_kind: u64) -> Vec<Loaded> {
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
pub(crate) fn verdicts(d: &Dev, c: &Candidate, interval_width: f64) -> Vec<Verdict> {
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
    let s = evaluate::in_unit(&c.decision, d.series.unit);
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
    evaluate::decide_with(
        dec,
        forecast,
        &d.series.values[d.first..],
        refits,
        interval_width,
    )
}

pub(crate) fn outcome(d: &Dev, c: &Candidate, interval_width: f64) -> Outcome {
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

pub(crate) fn sum(outcomes: impl Iterator<Item = Outcome>) -> Outcome {
    outcomes.fold(Outcome::default(), |a, b| Outcome {
        nab: a.nab.merge(&b.nab),
        events: a.events.merge(&b.events),
    })
}

pub(crate) fn mean_sd(v: &[f64]) -> (f64, f64) {
    let n = v.len().max(1) as f64;
    let m = v.iter().sum::<f64>() / n;
    let var = v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (n - 1.0).max(1.0);
    (m, var.sqrt())
}
