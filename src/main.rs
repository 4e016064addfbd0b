//! Binary entry point: parse flags, load settings, dispatch, map errors to exit codes.

use std::process::ExitCode;

use clap::Parser;
use cpu_anomaly::{
    cli::{Cli, LogFormat, Mode},
    config::{ConfigError, Settings},
    dataset::{DatasetError, ReadOptions},
    errors,
    evaluate::{self, EvalOptions, EvaluateError},
    monitor::{self, MonitorError, MonitorOptions},
    score::{self, ScoreError, ScoreOptions},
    train::{self, TrainError, TrainOptions},
};

/// Exit code for bad flags or configuration (same as clap's usage errors).
const EXIT_CONFIG: u8 = 2;
/// Exit code for bad input data.
const EXIT_DATA: u8 = 3;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let settings = match Settings::load(
        cli.config.as_deref(),
        |k| std::env::var(k).ok(),
        &cli.overrides(),
    ) {
        Ok(s) => s,
        Err(e) => return fail(&anyhow::Error::new(e)),
    };
    let log_file = (cli.mode == Mode::Monitor).then(|| settings.log_dir.join("cpu-anomaly.log"));
    init_logging(&settings.log_level, cli.log_format, log_file.as_deref());
    tracing::debug!(?settings, "settings loaded");
    let read = ReadOptions {
        time_column: cli.time_column.clone(),
        value_column: cli.value_column.clone(),
        label_column: cli.label_column.clone(),
        unit: cli.unit.unit(),
    };
    let result = match cli.mode {
        Mode::Train => {
            let opts = TrainOptions {
                read,
                no_plots: cli.no_plots,
                no_eda: cli.no_eda,
            };
            train::run(&settings.dataset, &settings, &opts)
                .map(|_| ())
                .map_err(anyhow::Error::new)
        }
        Mode::Evaluate => {
            let opts = EvalOptions {
                dataset: settings.dataset.clone(),
                labels: cli.labels.clone(),
                output_dir: settings.output_dir.clone(),
                train_fraction: Some(cli.train_fraction),
                retrain_every: cli.retrain_every,
                seed: settings.seed,
                read,
                no_plots: cli.no_plots,
                inject: cli.inject,
            };
            evaluate::run(&settings, &opts)
                .map(|_| ())
                .map_err(anyhow::Error::new)
        }
        Mode::Score => {
            let opts = ScoreOptions {
                dataset: settings.dataset.clone(),
                // Only an explicit --model-path judges with a saved model.
                model: cli.model_path.as_ref().map(|_| settings.model_path.clone()),
                output_dir: settings.output_dir.clone(),
                train_fraction: cli.train_fraction,
                retrain_every: match cli.retrain_every {
                    None => Some(settings.retrain_interval.as_secs().max(1) as i64),
                    Some(0) => None,
                    Some(d) => Some(d),
                },
                read,
            };
            score::run(&settings, &opts)
                .map(|_| ())
                .map_err(anyhow::Error::new)
        }
        Mode::Monitor => {
            let opts = MonitorOptions {
                max_ticks: cli.max_ticks,
                live: true,
            };
            monitor::run(&settings, &opts)
                .map(|_| ())
                .map_err(anyhow::Error::new)
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&e),
    }
}

/// Application log file: rotated at this size…
const LOG_FILE_MAX_BYTES: u64 = 10 * 1024 * 1024;
/// …keeping this many old files.
const LOG_FILE_KEEP: usize = 5;

/// Logs to stderr, and in monitor mode also to `log_file` (rotated by size,
/// always JSON lines so it can be shipped and parsed).
fn init_logging(level: &str, format: LogFormat, log_file: Option<&std::path::Path>) {
    use tracing_subscriber::{layer::SubscriberExt, util::SubscriberInitExt, Layer};
    let filter = || {
        tracing_subscriber::EnvFilter::try_from_env("RUST_LOG").unwrap_or_else(|_| {
            tracing_subscriber::EnvFilter::new(format!("cpu_anomaly={level},warn"))
        })
    };
    // Colour only for a person at a terminal (https://no-color.org).
    let colour = std::io::IsTerminal::is_terminal(&std::io::stderr())
        && std::env::var_os("NO_COLOR").map_or(true, |v| v.is_empty());
    let stderr = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(colour);
    let stderr = match format {
        LogFormat::Text => stderr.with_filter(filter()).boxed(),
        LogFormat::Json => stderr.json().with_filter(filter()).boxed(),
    };
    let file = log_file.and_then(|path| {
        match cpu_anomaly::logfile::RotatingFile::open(path, LOG_FILE_MAX_BYTES, LOG_FILE_KEEP) {
            Ok(f) => Some(
                tracing_subscriber::fmt::layer()
                    .json()
                    .with_writer(std::sync::Mutex::new(f))
                    .with_filter(filter()),
            ),
            Err(e) => {
                eprintln!("warning: cannot open the log file {}: {e}", path.display());
                None
            }
        }
    });
    tracing_subscriber::registry()
        .with(stderr)
        .with(file)
        .init();
}

fn fail(e: &anyhow::Error) -> ExitCode {
    eprintln!("error: {}", errors::error_line(e.as_ref()));
    let data_error = e.downcast_ref::<DatasetError>().is_some()
        || matches!(
            e.downcast_ref::<TrainError>(),
            Some(TrainError::Dataset(_) | TrainError::Split { .. })
        )
        || matches!(
            e.downcast_ref::<EvaluateError>(),
            Some(EvaluateError::Dataset(_) | EvaluateError::Labels(_) | EvaluateError::Invalid(_))
        )
        || matches!(
            e.downcast_ref::<ScoreError>(),
            Some(
                ScoreError::Dataset(_)
                    | ScoreError::Evaluate(EvaluateError::Dataset(_) | EvaluateError::Invalid(_))
            )
        );
    let code = if e.downcast_ref::<ConfigError>().is_some()
        || matches!(
            e.downcast_ref::<MonitorError>(),
            Some(MonitorError::BadQuery(_) | MonitorError::Model { .. } | MonitorError::Influx(_))
        )
        || matches!(
            e.downcast_ref::<ScoreError>(),
            Some(ScoreError::Model { .. } | ScoreError::Unit { .. })
        ) {
        EXIT_CONFIG
    } else if data_error {
        EXIT_DATA
    } else {
        1
    };
    ExitCode::from(code)
}
