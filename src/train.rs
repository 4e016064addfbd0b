//! `--mode train`: load history, summarise it, measure accuracy on a held-back
//! tail, refit on everything, save model + metadata, draw plots.

use std::{
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;

use crate::{
    accuracy::{accuracy, Accuracy},
    config::Settings,
    dataset::{self, format_ts, ReadOptions, Series, Unit},
    eda,
    forecast::{ForecastError, Model, ModelFamily, ProphetSettings, MIN_FIT_POINTS},
    plots::{self, Panel, PlotError},
};

/// Version of augurs-prophet this build fits with (recorded in metadata).
pub const AUGURS_PROPHET_VERSION: &str = "0.10.3";

/// What can stop a training run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TrainError {
    /// The dataset could not be read.
    #[error(transparent)]
    Dataset(#[from] dataset::DatasetError),
    /// Fitting or saving failed.
    #[error(transparent)]
    Forecast(#[from] ForecastError),
    /// A plot could not be drawn.
    #[error(transparent)]
    Plot(#[from] PlotError),
    /// An output file could not be written.
    #[error("{path}: cannot write: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Underlying error.
        source: std::io::Error,
    },
    /// The split leaves one side too small.
    #[error("{path}: train_ratio {ratio} leaves {train} points to fit and {test} to test; need at least {min} and 1")]
    Split {
        /// Dataset.
        path: PathBuf,
        /// Ratio used.
        ratio: f64,
        /// Points in the head.
        train: usize,
        /// Points in the tail.
        test: usize,
        /// Minimum head size.
        min: usize,
    },
}

/// Options of one training run, beyond [`Settings`].
#[derive(Debug, Clone, Default)]
pub struct TrainOptions {
    /// How to read the CSV.
    pub read: ReadOptions,
    /// Skip PNGs.
    pub no_plots: bool,
    /// Skip the summary.
    pub no_eda: bool,
}

/// Held-back evaluation.
#[derive(Debug, Clone, Serialize)]
pub struct Holdout {
    /// First timestamp of the tail.
    pub split_at: String,
    /// Points fitted.
    pub train_points: usize,
    /// Points tested.
    pub test_points: usize,
    /// Accuracy on the tail.
    pub metrics: Accuracy,
}

/// The metadata file written next to the model (`<model>.meta.json`).
#[derive(Debug, Clone, Serialize)]
pub struct Metadata {
    /// Model file it describes.
    pub model_file: String,
    /// When training finished (RFC 3339, UTC).
    pub created_at: String,
    /// cpu-anomaly version.
    pub cpu_anomaly_version: String,
    /// augurs-prophet version.
    pub augurs_prophet_version: String,
    /// Model family (prophet or mstl).
    pub model: String,
    /// Whether robust training (fit, drop, refit) was on.
    pub robust_training: bool,
    /// Points robust training left out of the final fit.
    pub robust_dropped: usize,
    /// The final fit used every `fit_stride`-th row (1: all; histories longer
    /// than 100,000 rows are fitted on an even subsample).
    pub fit_stride: usize,
    /// Rows the final fit used.
    pub fitted_rows: usize,
    /// Training dataset.
    pub dataset: String,
    /// Unit of data and forecasts.
    pub unit: Unit,
    /// Rows after repairs.
    pub rows: usize,
    /// First timestamp.
    pub data_start: String,
    /// Last timestamp.
    pub data_end: String,
    /// Median sampling step, seconds.
    pub step_seconds: i64,
    /// Repairs and observations from loading.
    pub data_notes: Vec<String>,
    /// Model options.
    pub parameters: ProphetSettings,
    /// Share used for the accuracy fit.
    pub train_ratio: f64,
    /// Band sampler seed.
    pub seed: u64,
    /// Accuracy on the held-back tail.
    pub holdout: Holdout,
    /// Seconds spent fitting (holdout fit, final fit).
    pub training_seconds: TrainingTime,
}

/// Fit durations.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct TrainingTime {
    /// Setting up the Prophet optimizer (compiling the `wasmstan` one;
    /// nothing for the native one).
    pub optimizer_setup: f64,
    /// Fit on the head.
    pub holdout_fit: f64,
    /// Fit on all data.
    pub final_fit: f64,
}

/// Everything a run produced.
#[derive(Debug)]
pub struct TrainOutcome {
    /// The saved model.
    pub model: Model,
    /// Its metadata.
    pub metadata: Metadata,
    /// Files written.
    pub files: Vec<PathBuf>,
}

/// The metadata path for a model path: `models/m.json` → `models/m.meta.json`.
pub fn metadata_path(model_path: &Path) -> PathBuf {
    model_path.with_extension("meta.json")
}

fn spinner(msg: &str) -> ProgressBar {
    // Hidden automatically when stderr is not a terminal.
    let pb = ProgressBar::new_spinner();
    pb.set_style(
        ProgressStyle::with_template("{spinner} {msg} {elapsed}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    pb.set_message(msg.to_string());
    pb.enable_steady_tick(Duration::from_millis(100));
    pb
}

/// Runs training on `dataset` and prints a report to stdout.
pub fn run(
    dataset: &Path,
    settings: &Settings,
    opts: &TrainOptions,
) -> Result<TrainOutcome, TrainError> {
    let series = dataset::read_csv(dataset, &opts.read)?;
    println!(
        "Loaded {}: {} rows, unit {} ({})",
        dataset.display(),
        series.len(),
        series.unit,
        if series.report.unit_detected {
            "detected: fraction when >= 99 % of values are within 0-1 and none exceeds 1.5; override with --unit"
        } else {
            "given with --unit"
        }
    );
    let notes = series.report.notes(series.unit);
    for n in &notes {
        println!("  note: {n}");
    }
    if !opts.no_eda {
        print!("{}", eda::summarize(&series).render(series.unit.label()));
    }
    train_series(&series, settings, opts, notes)
}

/// Trains on an already loaded series.
pub fn train_series(
    series: &Series,
    settings: &Settings,
    opts: &TrainOptions,
    notes: Vec<String>,
) -> Result<TrainOutcome, TrainError> {
    let n = series.len();
    let split = ((n as f64) * settings.train_ratio).floor() as usize;
    if split < MIN_FIT_POINTS || split >= n {
        return Err(TrainError::Split {
            path: series.name.clone().into(),
            ratio: settings.train_ratio,
            train: split,
            test: n.saturating_sub(split),
            min: MIN_FIT_POINTS,
        });
    }
    let pb = spinner("preparing the optimizer");
    let t = Instant::now();
    let trainer = settings.trainer();
    trainer.prepare()?;
    let setup = t.elapsed().as_secs_f64();

    pb.set_message(format!("fitting on the first {split} points"));
    let head = series.head(split);
    let tail = series.tail_from(split);
    let t = Instant::now();
    let holdout_model = trainer
        .fit(&head.timestamps, &head.values, series.unit)?
        .model;
    let holdout_fit = t.elapsed().as_secs_f64();
    let tail_forecast = holdout_model.predict(&tail.timestamps)?;
    let metrics = accuracy(&tail.values, &tail_forecast);

    pb.set_message(format!("refitting on all {n} points"));
    let t = Instant::now();
    let fitted = trainer.fit(&series.timestamps, &series.values, series.unit)?;
    let model = fitted.model;
    let final_fit = t.elapsed().as_secs_f64();
    pb.finish_and_clear();

    let mut files = Vec::new();
    model.save(&settings.model_path)?;
    files.push(settings.model_path.clone());
    let metadata = Metadata {
        model_file: settings.model_path.display().to_string(),
        created_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        cpu_anomaly_version: env!("CARGO_PKG_VERSION").into(),
        augurs_prophet_version: AUGURS_PROPHET_VERSION.into(),
        model: model.family().to_string(),
        robust_training: settings.robust_training,
        robust_dropped: fitted.dropped,
        fit_stride: fitted.stride,
        fitted_rows: model.points(),
        dataset: series.name.clone(),
        unit: series.unit,
        rows: n,
        data_start: format_ts(series.timestamps[0]),
        data_end: format_ts(series.timestamps[n - 1]),
        step_seconds: series.step_seconds(),
        data_notes: notes,
        parameters: settings.prophet.clone(),
        train_ratio: settings.train_ratio,
        seed: settings.seed,
        holdout: Holdout {
            split_at: format_ts(tail.timestamps[0]),
            train_points: split,
            test_points: n - split,
            metrics,
        },
        training_seconds: TrainingTime {
            optimizer_setup: setup,
            holdout_fit,
            final_fit,
        },
    };
    let meta_path = metadata_path(&settings.model_path);
    let json = serde_json::to_string_pretty(&metadata).expect("metadata serializes");
    std::fs::write(&meta_path, json + "\n").map_err(|source| TrainError::Io {
        path: meta_path.clone(),
        source,
    })?;
    files.push(meta_path);

    if !opts.no_plots {
        files.extend(draw_plots(
            series,
            &tail.values,
            &tail_forecast,
            &model,
            &settings.output_dir,
        )?);
    }
    print_report(&metadata, &files);
    Ok(TrainOutcome {
        model,
        metadata,
        files,
    })
}

fn draw_plots(
    series: &Series,
    tail_actual: &[f64],
    tail_forecast: &crate::forecast::Forecast,
    model: &Model,
    out: &Path,
) -> Result<Vec<PathBuf>, TrainError> {
    std::fs::create_dir_all(out).map_err(|source| TrainError::Io {
        path: out.to_path_buf(),
        source,
    })?;
    let label = series.unit.label();
    let f1 = out.join("forecast_vs_actual.png");
    plots::forecast_plot(
        &f1,
        "Held-back tail: actual vs forecast with prediction band",
        label,
        tail_actual,
        tail_forecast,
    )?;
    let start = series.timestamps[0];
    let step = series.step_seconds().max(60);
    let comps = model.components(&series.timestamps)?;
    let mut panels = vec![Panel {
        title: "Trend".into(),
        x_desc: "days since start".into(),
        xs: series
            .timestamps
            .iter()
            .map(|&t| (t - start) as f64 / 86_400.0)
            .collect(),
        ys: comps.trend,
    }];
    // Seasonal shapes over one cycle each, from a fine regular grid.
    for (name, period, unit_secs, desc) in [
        ("daily", 86_400, 3600.0, "hour of day (UTC)"),
        (
            "weekly",
            7 * 86_400,
            86_400.0,
            "days since Monday 00:00 UTC",
        ),
        ("yearly", 365 * 86_400, 86_400.0, "day of year"),
    ] {
        if !comps.seasonal.iter().any(|(n, _)| n == name) {
            continue;
        }
        // Monday 1970-01-05 00:00 UTC is the phase origin for all cycles.
        let origin = 4 * 86_400;
        let grid_step = (period / 288).max(step.min(period / 24));
        let grid: Vec<i64> = (0..period / grid_step)
            .map(|i| origin + i * grid_step)
            .collect();
        let c = model.components(&grid)?;
        if let Some((_, ys)) = c.seasonal.into_iter().find(|(n, _)| n == name) {
            panels.push(Panel {
                title: format!("{name} seasonality"),
                x_desc: desc.into(),
                xs: grid
                    .iter()
                    .map(|&t| (t - origin) as f64 / unit_secs)
                    .collect(),
                ys,
            });
        }
    }
    let f2 = out.join("components.png");
    plots::panels_plot(&f2, &format!("Model components ({label})"), &panels)?;
    Ok(vec![f1, f2])
}

fn print_report(m: &Metadata, files: &[PathBuf]) {
    let a = &m.holdout.metrics;
    let u = match m.unit {
        Unit::Fraction => "",
        Unit::Percent => " pp",
    };
    println!(
        "Model: {}{}",
        m.model,
        if m.robust_training {
            format!(
                " (robust training: {} outlying points left out of the final fit)",
                m.robust_dropped
            )
        } else {
            String::new()
        }
    );
    println!(
        "Holdout: fitted on {} points, tested on {} (from {})",
        m.holdout.train_points, m.holdout.test_points, m.holdout.split_at
    );
    println!("  MAE      {:.4}{u}", a.mae);
    println!("  MSE      {:.6}", a.mse);
    println!("  RMSE     {:.4}{u}", a.rmse);
    if a.mape.is_finite() {
        println!(
            "  MAPE     {:.2} %{}",
            a.mape,
            if a.mape_skipped > 0 {
                format!(" ({} zero actuals skipped)", a.mape_skipped)
            } else {
                String::new()
            }
        );
    } else {
        println!("  MAPE     undefined (every actual value in the tail is 0)");
    }
    println!(
        "  coverage {:.1} % of the tail inside the {:.0} % band",
        100.0 * a.coverage,
        100.0 * m.parameters.interval_width
    );
    let optimizer = if m.model == ModelFamily::Prophet.as_str() {
        format!(" ({} optimizer)", m.parameters.optimizer)
    } else {
        String::new()
    };
    let fitted_on = if m.fit_stride > 1 {
        format!(
            "{} points (every {}th of {})",
            m.fitted_rows, m.fit_stride, m.rows
        )
    } else {
        format!("{} points", m.rows)
    };
    println!(
        "Fit time{optimizer}: {:.3} s setup, {:.3} s holdout fit, {:.3} s final fit on {fitted_on}",
        m.training_seconds.optimizer_setup,
        m.training_seconds.holdout_fit,
        m.training_seconds.final_fit,
    );
    println!("Wrote:");
    for f in files {
        println!("  {}", f.display());
    }
}
