//! `--mode evaluate`: how trustworthy are the alarms?
//!
//! Two protocols:
//! - simulated (no labels): fit on the clean head (`train_ratio`), inject
//!   spikes, dips and drifts into the tail with a seeded RNG, detect, score;
//! - labelled (`--labels` windows): learn on the first `train_fraction` (0.15),
//!   then walk forward as a monitor would, refitting on past data only every
//!   `retrain_every` if set. A point is never judged by a model that saw it or
//!   anything after it.
//!
//! A directory as dataset runs every CSV under it and adds a total.

pub mod labels;
pub mod metrics;
pub mod nab;
pub mod report;
pub mod walk;

use std::path::{Path, PathBuf};

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use crate::{
    config::Settings,
    dataset::{self, ReadOptions, Series, Unit},
    detect::{DecisionSettings, Detection, Detector, Verdict},
    forecast::{Forecast, ForecastError, Trainer},
    plots::PlotError,
    simulate,
};
use labels::{point_labels, LabelError, Labels};
use metrics::{Curve, EventMetrics, PointMetrics};
use nab::{NabScores, Raw};
pub use walk::{
    decide_all, decide_with, in_unit, walk_forward, WalkForward, WALK_FORWARD_FIT_POINTS,
};

/// Default share of a labelled series used for learning before walking forward.
pub const DEFAULT_LABELLED_TRAIN_FRACTION: f64 = 0.15;
/// Share of points the simulated protocol makes anomalous.
pub const SIMULATED_ANOMALY_RATE: f64 = 0.05;
/// Multipliers of the threshold sweep.
pub const SWEEP: &[f64] = &[1.0, 1.25, 1.5, 1.75, 2.0, 2.5, 3.0, 3.5, 4.0, 5.0, 6.0, 8.0];

/// What can stop an evaluation.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EvaluateError {
    /// A dataset could not be read.
    #[error(transparent)]
    Dataset(#[from] dataset::DatasetError),
    /// Labels could not be read.
    #[error(transparent)]
    Labels(#[from] LabelError),
    /// Fitting failed.
    #[error("{series}: {source}")]
    Forecast {
        /// Series being evaluated.
        series: String,
        /// Cause.
        source: ForecastError,
    },
    /// A plot failed.
    #[error(transparent)]
    Plot(#[from] PlotError),
    /// Output could not be written.
    #[error("{path}: cannot write: {source}")]
    Io {
        /// File.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// Bad arguments (no CSV in a directory, fraction out of range...).
    #[error("{0}")]
    Invalid(String),
}

/// Options of one evaluation run, beyond [`Settings`].
#[derive(Debug, Clone)]
pub struct EvalOptions {
    /// A CSV file or a directory of CSVs.
    pub dataset: PathBuf,
    /// NAB-style label windows; `None` runs the simulated protocol.
    pub labels: Option<PathBuf>,
    /// Where outputs go.
    pub output_dir: PathBuf,
    /// Learning share for labelled runs (default 0.15).
    pub train_fraction: Option<f64>,
    /// Refit period in seconds for labelled runs (`None`: `retrain_interval`;
    /// `Some(0)`: fit once).
    pub retrain_every: Option<i64>,
    /// Seed of the simulated injections.
    pub seed: u64,
    /// CSV reading options.
    pub read: ReadOptions,
    /// Skip PNGs.
    pub no_plots: bool,
    /// Run the simulated protocol even when labels are known; known
    /// anomalies then count as positives beside the injected ones.
    pub inject: bool,
}

/// One evaluated series: the scored points after the learning period.
#[derive(Debug, Clone)]
pub struct ScoredSeries {
    /// Path relative to the dataset root (or the file name).
    pub name: String,
    /// Unit of the values.
    pub unit: Unit,
    /// All timestamps of the series (learning part included).
    pub timestamps: Vec<i64>,
    /// All values (after injection, for the simulated protocol).
    pub values: Vec<f64>,
    /// Index of the first scored point.
    pub first_scored: usize,
    /// Forecast for the scored points.
    pub forecast: Forecast,
    /// In-sample fit over the learning period (empty when not computed).
    pub learn_forecast: Forecast,
    /// Detections for the scored points with the configured decision path.
    pub detections: Vec<Detection>,
    /// The decision path's verdicts for the scored points.
    pub verdicts: Vec<Verdict>,
    /// Indices (into the scored points) where a newly fitted model starts.
    pub refits: Vec<usize>,
    /// Probability mass of the model's band.
    pub interval_width: f64,
    /// Score at multiplier 1 for the scored points (ranks for ROC/PR; flag at
    /// multiplier m ⇔ this score > m).
    pub base_scores: Vec<f64>,
    /// Ground truth per point (all points), when known.
    pub labels: Option<Vec<bool>>,
    /// Label windows, when known.
    pub windows: Option<Vec<(i64, i64)>>,
}

/// Metrics at one multiplier of the sweep.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct SweepPoint {
    /// Threshold multiplier.
    pub multiplier: f64,
    /// Point-level metrics of the sample flags.
    pub point: PointMetrics,
    /// Event-level metrics of the alerts, for windowed labels.
    pub event: Option<EventMetrics>,
    /// Event-level metrics of the raw sample flags (the original rule).
    pub flag_event: Option<EventMetrics>,
    /// NAB standard score of the alert onsets.
    pub nab: Option<f64>,
}

/// Raw NAB scores per profile of the alert onsets and of the raw flags.
pub type RawPair = ([Raw; 3], [Raw; 3]);

/// All metrics of one series (or of a total).
#[derive(Debug, Clone, Serialize)]
pub struct Metrics {
    /// Series name ("TOTAL" for the sum).
    pub series: String,
    /// Scored points.
    pub points: usize,
    /// Point-level metrics of the sample flags at the configured multiplier.
    pub point: PointMetrics,
    /// ROC curve and AUC.
    pub roc: Curve,
    /// Precision–recall curve and average precision.
    pub pr: Curve,
    /// Event-level metrics of the alerts (sustained or critical), for windowed labels.
    pub event: Option<EventMetrics>,
    /// Event-level metrics of the raw sample flags, for windowed labels.
    pub flag_event: Option<EventMetrics>,
    /// NAB scores of the alert onsets (one detection per alert), for
    /// windowed labels.
    pub nab: Option<NabScores>,
    /// NAB scores of the raw flags (every flagged sample a detection).
    pub flag_nab: Option<NabScores>,
    /// Raw NAB scores (alert onsets, raw flags) per profile, for totals.
    #[serde(skip)]
    pub nab_raw: Option<RawPair>,
    /// Metrics per multiplier.
    pub sweep: Vec<SweepPoint>,
}

impl ScoredSeries {
    /// Flags for all points (false during learning) at multiplier `m` (the
    /// raw band rule, before the decision path).
    pub fn flags_at(&self, m: f64) -> Vec<bool> {
        let mut f = vec![false; self.first_scored];
        f.extend(self.base_scores.iter().map(|&z| z > m));
        f
    }

    /// The decision path's verdicts for the scored points with `settings`.
    pub fn decide(&self, settings: &DecisionSettings) -> Vec<Verdict> {
        decide_all(
            &self.forecast,
            &self.values[self.first_scored..],
            &self.refits,
            settings,
            self.interval_width,
            self.unit,
        )
    }

    /// Alert states for all points (false during learning) from `verdicts`.
    pub fn alert_states(&self, verdicts: &[Verdict]) -> Vec<bool> {
        let mut f = vec![false; self.first_scored];
        f.extend(verdicts.iter().map(|v| v.alert));
        f
    }

    /// Alert onsets for all points (false during learning) from `verdicts`.
    pub fn alert_onsets(&self, verdicts: &[Verdict]) -> Vec<bool> {
        let mut f = vec![false; self.first_scored];
        f.extend(verdicts.iter().map(|v| v.onset));
        f
    }

    /// Decision flags for all points (false during learning) from `verdicts`.
    pub fn decision_flags(&self, verdicts: &[Verdict]) -> Vec<bool> {
        let mut f = vec![false; self.first_scored];
        f.extend(verdicts.iter().map(|v| v.detection.is_anomaly));
        f
    }

    /// Labels of the scored points.
    fn scored_labels(&self) -> Option<&[bool]> {
        self.labels.as_deref().map(|l| &l[self.first_scored..])
    }

    /// Computes every metric for this series with the decision `settings`
    /// (the sweep varies their multiplier).
    pub fn metrics(&self, settings: &DecisionSettings) -> Metrics {
        let labels = self.scored_labels().unwrap_or(&[]);
        let flags: Vec<bool> = self.detections.iter().map(|d| d.is_anomaly).collect();
        let events = |flags: &[bool]| {
            self.windows
                .as_ref()
                .map(|w| EventMetrics::compute(&self.timestamps, flags, w))
        };
        let nab_raw = |detections: &[bool]| {
            self.windows
                .as_ref()
                .map(|w| nab::score_all(&self.timestamps, detections, w))
        };
        let sweep = SWEEP
            .iter()
            .map(|&m| {
                let v = self.decide(&DecisionSettings {
                    multiplier: m,
                    ..*settings
                });
                let all = self.decision_flags(&v);
                SweepPoint {
                    multiplier: m,
                    point: PointMetrics::compute(labels, &all[self.first_scored..]),
                    event: events(&self.alert_states(&v)),
                    flag_event: events(&all),
                    nab: nab_raw(&self.alert_onsets(&v)).map(|r| nab::normalise(&r).standard),
                }
            })
            .collect();
        let all_flags = self.decision_flags(&self.verdicts);
        let raw = nab_raw(&self.alert_onsets(&self.verdicts)).zip(nab_raw(&all_flags));
        Metrics {
            series: self.name.clone(),
            points: self.detections.len(),
            point: PointMetrics::compute(labels, &flags),
            roc: metrics::roc(labels, &self.base_scores),
            pr: metrics::pr(labels, &self.base_scores),
            event: events(&self.alert_states(&self.verdicts)),
            flag_event: events(&all_flags),
            nab: raw.map(|(a, _)| nab::normalise(&a)),
            flag_nab: raw.map(|(_, f)| nab::normalise(&f)),
            nab_raw: raw,
            sweep,
        }
    }
}

/// Totals over series of their metrics: counts summed; curves from all
/// points pooled; NAB raw scores summed, then normalised.
pub fn total_of(series: &[ScoredSeries], per: &[Metrics]) -> Metrics {
    let mut labels = Vec::new();
    let mut scores = Vec::new();
    for s in series {
        if let Some(l) = s.scored_labels() {
            labels.extend_from_slice(l);
            scores.extend_from_slice(&s.base_scores);
        }
    }
    let windowed = series.iter().any(|s| s.windows.is_some());
    let sum_event = |pick: &dyn Fn(&Metrics) -> Option<EventMetrics>| {
        windowed.then(|| {
            per.iter()
                .filter_map(pick)
                .fold(EventMetrics::default(), |a, b| a.merge(&b))
        })
    };
    let sum_raw = |pick: &dyn Fn(&RawPair) -> [Raw; 3]| {
        windowed.then(|| {
            per.iter()
                .filter_map(|m| m.nab_raw.as_ref().map(pick))
                .fold([Raw::default(); 3], |a, b| {
                    [a[0].merge(&b[0]), a[1].merge(&b[1]), a[2].merge(&b[2])]
                })
        })
    };
    let nab_alerts = sum_raw(&|r| r.0);
    let nab_flags = sum_raw(&|r| r.1);
    let sweep = SWEEP
        .iter()
        .enumerate()
        .map(|(i, &m)| SweepPoint {
            multiplier: m,
            point: per
                .iter()
                .fold(PointMetrics::default(), |a, b| a.merge(&b.sweep[i].point)),
            event: sum_event(&|x: &Metrics| x.sweep[i].event),
            flag_event: sum_event(&|x: &Metrics| x.sweep[i].flag_event),
            // Not additive: the sweep's totals carry no NAB score.
            nab: None,
        })
        .collect();
    Metrics {
        series: "TOTAL".into(),
        points: per.iter().map(|m| m.points).sum(),
        point: per
            .iter()
            .fold(PointMetrics::default(), |a, b| a.merge(&b.point)),
        roc: metrics::roc(&labels, &scores),
        pr: metrics::pr(&labels, &scores),
        event: sum_event(&|x: &Metrics| x.event),
        flag_event: sum_event(&|x: &Metrics| x.flag_event),
        nab: nab_alerts.map(|r| nab::normalise(&r)),
        flag_nab: nab_flags.map(|r| nab::normalise(&r)),
        nab_raw: nab_alerts.zip(nab_flags),
        sweep,
    }
}

/// Scores at multiplier 1 (the raw band rule's ranking, for ROC/PR).
fn base_scores(forecast: &Forecast, values: &[f64]) -> Vec<f64> {
    let base = Detector::new(1.0);
    values
        .iter()
        .enumerate()
        .map(|(i, &v)| {
            base.check(v, forecast.yhat[i], forecast.lower[i], forecast.upper[i])
                .score
        })
        .collect()
}

/// A scored series from its forecast: the decision path's verdicts and the
/// base scores.
#[allow(clippy::too_many_arguments)]
pub fn scored_series(
    name: &str,
    series: &Series,
    values: Vec<f64>,
    first: usize,
    forecast: Forecast,
    learn_forecast: Forecast,
    refits: Vec<usize>,
    labels: Option<Vec<bool>>,
    windows: Option<Vec<(i64, i64)>>,
    settings: &Settings,
) -> ScoredSeries {
    let interval_width = settings.prophet.interval_width;
    let verdicts = decide_all(
        &forecast,
        &values[first..],
        &refits,
        &settings.decision,
        interval_width,
        series.unit,
    );
    ScoredSeries {
        name: name.to_string(),
        unit: series.unit,
        timestamps: series.timestamps.clone(),
        first_scored: first,
        base_scores: base_scores(&forecast, &values[first..]),
        detections: verdicts.iter().map(|v| v.detection).collect(),
        values,
        forecast,
        learn_forecast,
        verdicts,
        refits,
        interval_width,
        labels,
        windows,
    }
}

/// The labelled protocol on one series.
pub fn evaluate_labelled(
    trainer: &Trainer,
    series: &Series,
    name: &str,
    windows: Vec<(i64, i64)>,
    settings: &Settings,
    train_fraction: f64,
    retrain_every: Option<i64>,
) -> Result<ScoredSeries, EvaluateError> {
    let first = ((series.len() as f64) * train_fraction).floor() as usize;
    let first = first.clamp(crate::forecast::MIN_FIT_POINTS, series.len());
    let wf = walk_forward(trainer, series, first, retrain_every).map_err(|source| {
        EvaluateError::Forecast {
            series: name.to_string(),
            source,
        }
    })?;
    Ok(scored_series(
        name,
        series,
        series.values.clone(),
        first,
        wf.scored,
        wf.learn,
        wf.refits,
        Some(point_labels(&series.timestamps, &windows)),
        Some(windows),
        settings,
    ))
}

/// The simulated protocol on one series: fit on the head, inject into the
/// tail. `known` marks anomalies already in the data (from labels): they
/// count as positives too, so a real incident in the tail is not scored as
/// a false alarm.
pub fn evaluate_simulated(
    trainer: &Trainer,
    series: &Series,
    name: &str,
    settings: &Settings,
    seed: u64,
    known: Option<&[bool]>,
) -> Result<ScoredSeries, EvaluateError> {
    let n = series.len();
    let first = ((n as f64) * settings.train_ratio).floor() as usize;
    if first < crate::forecast::MIN_FIT_POINTS || first + 20 > n {
        return Err(EvaluateError::Invalid(format!(
            "{name}: {n} points leave too little to fit and inject into at train_ratio {}",
            settings.train_ratio
        )));
    }
    let fe = |source| EvaluateError::Forecast {
        series: name.to_string(),
        source,
    };
    let model = trainer
        .fit(
            &series.timestamps[..first],
            &series.values[..first],
            series.unit,
        )
        .map_err(fe)?
        .model;
    let forecast = model.predict(&series.timestamps[first..]).map_err(fe)?;
    let learn_forecast = model.predict(&series.timestamps[..first]).map_err(fe)?;
    let mut values = series.values.clone();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let tail_labels =
        simulate::inject_protocol(&mut values[first..], SIMULATED_ANOMALY_RATE, &mut rng);
    let mut labels = vec![false; first];
    labels.extend(tail_labels);
    if let Some(k) = known {
        for (l, &k) in labels.iter_mut().zip(k) {
            *l |= k;
        }
    }
    Ok(scored_series(
        name,
        series,
        values,
        first,
        forecast,
        learn_forecast,
        vec![0],
        Some(labels),
        None,
        settings,
    ))
}

/// CSV files under `dir`, sorted, as (absolute, relative with `/`).
pub fn csv_files(dir: &Path) -> Result<Vec<(PathBuf, String)>, EvaluateError> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<(PathBuf, String)>) -> std::io::Result<()> {
        for entry in std::fs::read_dir(dir)? {
            let p = entry?.path();
            if p.is_dir() {
                walk(root, &p, out)?;
            } else if p.extension().is_some_and(|e| e.eq_ignore_ascii_case("csv")) {
                let rel = p.strip_prefix(root).unwrap_or(&p);
                let rel = rel
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy())
                    .collect::<Vec<_>>()
                    .join("/");
                out.push((p.clone(), rel));
            }
        }
        Ok(())
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out).map_err(|source| EvaluateError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    out.sort_by(|a, b| a.1.cmp(&b.1));
    if out.is_empty() {
        return Err(EvaluateError::Invalid(format!(
            "{}: no .csv files found",
            dir.display()
        )));
    }
    Ok(out)
}

/// The result of a run.
#[derive(Debug)]
pub struct Evaluation {
    /// Scored series.
    pub series: Vec<ScoredSeries>,
    /// Metrics per series.
    pub per_series: Vec<Metrics>,
    /// Totals.
    pub total: Metrics,
    /// "simulated" or "labelled".
    pub protocol: &'static str,
    /// Files written.
    pub files: Vec<PathBuf>,
}

/// Runs `--mode evaluate`.
pub fn run(settings: &Settings, opts: &EvalOptions) -> Result<Evaluation, EvaluateError> {
    let labels = opts.labels.as_deref().map(Labels::read).transpose()?;
    let train_fraction = opts
        .train_fraction
        .unwrap_or(DEFAULT_LABELLED_TRAIN_FRACTION);
    if !(train_fraction > 0.0 && train_fraction < 1.0) {
        return Err(EvaluateError::Invalid(format!(
            "--train-fraction {train_fraction}: must be strictly between 0 and 1"
        )));
    }
    let files = if opts.dataset.is_dir() {
        csv_files(&opts.dataset)?
    } else {
        let name = opts
            .dataset
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_else(|| opts.dataset.display().to_string());
        vec![(opts.dataset.clone(), name)]
    };
    let trainer = settings.trainer();
    // Refit on the monitor's schedule unless told otherwise (0: fit once).
    let retrain_every = match opts.retrain_every {
        None => Some(settings.retrain_interval.as_secs().max(1) as i64),
        Some(0) => None,
        Some(d) => Some(d),
    };
    let bar = indicatif::ProgressBar::new(files.len() as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} {msg} {elapsed}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let mut scored = Vec::new();
    let mut labelled = labels.is_some();
    for (path, rel) in &files {
        bar.set_message(rel.clone());
        let series = dataset::read_csv(path, &opts.read)?;
        labelled |= series.labels.is_some();
        for note in series.report.notes(series.unit) {
            tracing::info!(series = %rel, "{note}");
        }
        let windows = match (&labels, &series.labels) {
            (Some(l), _) => Some(l.for_file(rel).cloned().unwrap_or_else(|| {
                tracing::warn!(series = %rel, "no labels for this file: every flag counts as a false alarm");
                Vec::new()
            })),
            (None, Some(points)) => Some(labels::windows_from_points(&series.timestamps, points)),
            (None, None) => None,
        };
        let s = match windows {
            Some(w) if !opts.inject => evaluate_labelled(
                &trainer,
                &series,
                rel,
                w,
                settings,
                train_fraction,
                retrain_every,
            )?,
            w => {
                let known = w.map(|w| point_labels(&series.timestamps, &w));
                evaluate_simulated(
                    &trainer,
                    &series,
                    rel,
                    settings,
                    opts.seed,
                    known.as_deref(),
                )?
            }
        };
        scored.push(s);
        bar.inc(1);
    }
    bar.finish_and_clear();
    let per_series: Vec<Metrics> = scored
        .iter()
        .map(|s| s.metrics(&settings.decision))
        .collect();
    let total = total_of(&scored, &per_series);
    let mut eval = Evaluation {
        series: scored,
        per_series,
        total,
        protocol: if labelled && !opts.inject {
            "labelled"
        } else {
            "simulated"
        },
        files: Vec::new(),
    };
    eval.files = report::write_all(&eval, settings, opts, opts.dataset.is_dir())?;
    Ok(eval)
}
