//! `--mode score`: judge a history without labels, the way a user backfills
//! or checks last week's data. Per input CSV it writes
//! `OUT/<name>.scored.csv` (every row with its forecast, band, score, flag,
//! severity, alert state and events) and `OUT/<name>.summary.json`.
//!
//! With a saved model (`--model-path`) that model judges every row. Without
//! one, a walk-forward fit like `--mode evaluate`'s: learn on the first
//! share of the rows, then forecast each point from a model fitted only on
//! rows before it (refitting every `--retrain-every`); the leading rows
//! were only learned from and are never flagged. The decision path is the
//! shipped one ([`crate::detect::decide`]), the same as evaluate's and the
//! monitor's. No precision or recall: there are no labels.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};

use serde::Serialize;
use thiserror::Error;

use crate::{
    config::Settings,
    dataset::{self, format_ts, ReadOptions},
    evaluate::{self, report::write_scored_csv, EvaluateError, ScoredSeries},
    forecast::{ForecastError, Model, LEVEL_BELOW_SECONDS},
};

/// Errors of `--mode score`.
#[derive(Debug, Error)]
pub enum ScoreError {
    /// Reading inputs or writing outputs, fitting: as evaluate says it.
    #[error(transparent)]
    Evaluate(#[from] EvaluateError),
    /// A dataset could not be read.
    #[error(transparent)]
    Dataset(#[from] dataset::DatasetError),
    /// The saved model cannot be used.
    #[error("model {path}: {source}\nrun `cpu-anomaly --mode train` to make one, or leave --model-path out to fit while walking forward")]
    Model {
        /// The model file.
        path: PathBuf,
        /// Why.
        source: ForecastError,
    },
    /// The saved model's unit differs from the data's.
    #[error("{name}: the model at {path} was trained on {model} values, the file holds {data} values; use --unit or another model")]
    Unit {
        /// Input.
        name: String,
        /// Model file.
        path: PathBuf,
        /// Model's unit.
        model: &'static str,
        /// Data's unit.
        data: &'static str,
    },
}

/// Options of one run, beyond [`Settings`].
#[derive(Debug, Clone)]
pub struct ScoreOptions {
    /// A CSV file or a directory of CSVs.
    pub dataset: PathBuf,
    /// A saved model that judges every row (`None`: walk forward).
    pub model: Option<PathBuf>,
    /// Where the outputs go.
    pub output_dir: PathBuf,
    /// Share of each series learned before walking forward.
    pub train_fraction: f64,
    /// Refit period while walking forward, seconds (`None`: fit once).
    pub retrain_every: Option<i64>,
    /// CSV reading.
    pub read: ReadOptions,
}

/// `OUT/<name>.summary.json`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Summary {
    /// Input file.
    pub input: String,
    /// Rows read.
    pub rows: usize,
    /// Rows judged.
    pub scored_rows: usize,
    /// Leading rows only learned from (walk-forward), never flagged.
    pub learned_rows: usize,
    /// Judged rows outside the band (the decision path's flag).
    pub anomalies: usize,
    /// Alert onsets.
    pub alerts: usize,
    /// Alert resolutions.
    pub alerts_resolved: usize,
    /// Flagged rows by severity.
    pub by_severity: BTreeMap<String, usize>,
    /// Timestamp of the first flagged row.
    pub first_anomaly: Option<String>,
    /// Timestamp of the last flagged row.
    pub last_anomaly: Option<String>,
    /// What judged the rows.
    pub model: String,
    /// The scored CSV.
    pub scored_csv: String,
}

impl Summary {
    fn of(s: &ScoredSeries, input: &str, model: String, csv: &Path) -> Summary {
        let mut by_severity = BTreeMap::new();
        let (mut first, mut last) = (None, None);
        let mut anomalies = 0;
        for (k, v) in s.verdicts.iter().enumerate() {
            if v.detection.is_anomaly {
                anomalies += 1;
                *by_severity
                    .entry(v.detection.severity.as_str().to_string())
                    .or_insert(0) += 1;
                let ts = s.timestamps[s.first_scored + k];
                first.get_or_insert(ts);
                last = Some(ts);
            }
        }
        Summary {
            input: input.to_string(),
            rows: s.timestamps.len(),
            scored_rows: s.verdicts.len(),
            learned_rows: s.first_scored,
            anomalies,
            alerts: s.verdicts.iter().filter(|v| v.onset).count(),
            alerts_resolved: s.verdicts.iter().filter(|v| v.resolved).count(),
            by_severity,
            first_anomaly: first.map(format_ts),
            last_anomaly: last.map(format_ts),
            model,
            scored_csv: csv.display().to_string(),
        }
    }
}

/// Where `rel` (`sub/x.csv`) is written: `OUT/sub/x.scored.csv` and
/// `OUT/sub/x.summary.json`.
fn outputs(out: &Path, rel: &str) -> (PathBuf, PathBuf) {
    let stem = rel
        .strip_suffix(".csv")
        .or_else(|| rel.strip_suffix(".CSV"))
        .unwrap_or(rel);
    (
        out.join(format!("{stem}.scored.csv")),
        out.join(format!("{stem}.summary.json")),
    )
}

/// Runs `--mode score`; the summaries, in input order.
pub fn run(settings: &Settings, opts: &ScoreOptions) -> Result<Vec<Summary>, ScoreError> {
    if !(opts.train_fraction > 0.0 && opts.train_fraction < 1.0) {
        return Err(EvaluateError::Invalid(format!(
            "--train-fraction {}: must be strictly between 0 and 1",
            opts.train_fraction
        ))
        .into());
    }
    let files = if opts.dataset.is_dir() {
        evaluate::csv_files(&opts.dataset)?
    } else {
        let name = opts
            .dataset
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_else(|| opts.dataset.display().to_string());
        vec![(opts.dataset.clone(), name)]
    };
    let saved = match &opts.model {
        Some(p) => Some(Model::load(p).map_err(|source| ScoreError::Model {
            path: p.clone(),
            source,
        })?),
        None => None,
    };
    let trainer = settings.trainer();
    let bar = indicatif::ProgressBar::new(files.len() as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} {msg} {elapsed}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let mut summaries = Vec::new();
    for (path, rel) in &files {
        bar.set_message(rel.clone());
        let series = dataset::read_csv(path, &opts.read)?;
        for note in series.report.notes(series.unit) {
            tracing::info!(series = %rel, "{note}");
        }
        let (scored, what) = match (&saved, &opts.model) {
            (Some(model), Some(mp)) => {
                if model.unit() != series.unit {
                    return Err(ScoreError::Unit {
                        name: rel.clone(),
                        path: mp.clone(),
                        model: model.unit().label(),
                        data: series.unit.label(),
                    });
                }
                let forecast = model.predict(&series.timestamps).map_err(|source| {
                    EvaluateError::Forecast {
                        series: rel.clone(),
                        source,
                    }
                })?;
                let s = evaluate::scored_series(
                    rel,
                    &series,
                    series.values.clone(),
                    0,
                    forecast,
                    Default::default(),
                    vec![0],
                    None,
                    None,
                    settings,
                );
                let what = format!(
                    "saved {} model {} (trained up to {})",
                    model.kind(),
                    mp.display(),
                    format_ts(model.history_end())
                );
                (s, what)
            }
            _ => {
                let first = ((series.len() as f64) * opts.train_fraction).floor() as usize;
                let first = first.clamp(crate::forecast::MIN_FIT_POINTS, series.len());
                let wf = evaluate::walk_forward(&trainer, &series, first, opts.retrain_every)
                    .map_err(|source| EvaluateError::Forecast {
                        series: rel.clone(),
                        source,
                    })?;
                let refits = wf.refits.len();
                let level_fits = wf.level_fits;
                let s = evaluate::scored_series(
                    rel,
                    &series,
                    series.values.clone(),
                    first,
                    wf.scored,
                    wf.learn,
                    wf.refits,
                    None,
                    None,
                    settings,
                );
                let what = format!(
                    "walk-forward {}: learned on the first {first} rows, {refits} fit{}{} ({})",
                    settings.model.as_str(),
                    if refits == 1 { "" } else { "s" },
                    if level_fits > 0 {
                        format!(
                            ", the first {level_fits} on under {} days of history level models",
                            LEVEL_BELOW_SECONDS / 86_400
                        )
                    } else {
                        String::new()
                    },
                    match opts.retrain_every {
                        Some(d) => format!("refit every {d} s"),
                        None => "never refitted".into(),
                    }
                );
                (s, what)
            }
        };
        let (csv, json) = outputs(&opts.output_dir, rel);
        write_scored_csv(&csv, &scored)?;
        let summary = Summary::of(&scored, rel, what, &csv);
        let text = serde_json::to_string_pretty(&summary).unwrap_or_default();
        std::fs::write(&json, text + "\n").map_err(|source| EvaluateError::Io {
            path: json.clone(),
            source,
        })?;
        bar.suspend(|| {
            println!(
                "{rel}: {} rows, {} only learned from, {} anomalies, {} alerts -> {}",
                summary.rows,
                summary.learned_rows,
                summary.anomalies,
                summary.alerts,
                csv.display()
            )
        });
        summaries.push(summary);
        bar.inc(1);
    }
    bar.finish_and_clear();
    Ok(summaries)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outputs_keep_the_input_tree() {
        let (c, j) = outputs(Path::new("out"), "sub/x.csv");
        assert_eq!(c, Path::new("out/sub/x.scored.csv"));
        assert_eq!(j, Path::new("out/sub/x.summary.json"));
    }
}
