//! Command-line interface: flags, their help, and how they override settings.

use std::path::PathBuf;

use clap::{Parser, ValueEnum};

use crate::{config::CliOverrides, dataset::Unit};

/// What to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Mode {
    /// Fit the forecaster on a CSV history, report accuracy, save the model and plots.
    Train,
    /// Poll Prometheus (or a simulation), judge every host against its own model, write to
    /// InfluxDB (v1 or v2 API) or local files.
    Monitor,
    /// Measure detection quality: simulated spikes/dips/drifts, or labelled data with --labels.
    Evaluate,
    /// Judge a history without labels (a CSV or a directory of them): writes
    /// OUTPUT_DIR/<name>.scored.csv and <name>.summary.json. With --model-path the saved model
    /// judges every row; without, a walk-forward fit like evaluate's.
    Score,
}

/// Format of the application log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Unit of the CSV values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum UnitArg {
    /// Fractions if every value is within 0-1, percent otherwise.
    Auto,
    /// Fractions of one CPU, 0-1.
    Fraction,
    /// Percent, 0-100.
    Percent,
}

impl UnitArg {
    /// `None` means detect.
    pub fn unit(self) -> Option<Unit> {
        match self {
            UnitArg::Auto => None,
            UnitArg::Fraction => Some(Unit::Fraction),
            UnitArg::Percent => Some(Unit::Percent),
        }
    }
}

/// Learns what normal CPU usage looks like and says when a machine stops behaving normally.
///
/// Settings come from config.yaml (or --config), then environment variables
/// (INFLUXDB_URL, INFLUXDB_TOKEN, INFLUXDB_ORG, INFLUXDB_BUCKET, PROMETHEUS_URL,
/// MONITORING_INTERVAL, LOG_LEVEL, LOG_DIR, THRESHOLD_MULTIPLIER, DATASET,
/// MODEL_PATH, OUTPUT_DIR, ...), then these flags; later ones win. Without a
/// config file the embedded defaults are used.
///
/// Monitor mode polls Prometheus (falling back to a simulated source, tagged
/// as such, while it is unreachable), judges every sample against its
/// series' forecast band and writes the points to InfluxDB (v1 or v2 API) or,
/// with InfluxDB disabled, to line-protocol files under log_dir; alert
/// onsets and resolutions go to Alertmanager (ALERTMANAGER_URL) and/or a
/// webhook (WEBHOOK_URL) when set, and so do capacity warnings (a host
/// predicted to reach CAPACITY_THRESHOLD within CAPACITY_HORIZON). Run as N
/// replicas, each judges its share of the series (SHARD_COUNT, SHARD_INDEX
/// or `auto` from the host name, REPLICATION_FACTOR). Every poll is in a write-ahead log under
/// log_dir before it ends. Ctrl-C or SIGTERM writes once or spools what is
/// pending and exits 0 within seconds; a second one exits at once (nothing
/// judged is lost: the next start writes it).
///
/// Exit codes: 0 success, 1 runtime failure, 2 bad flags or configuration
/// (including PromQL that Prometheus refuses), 3 bad input data.
#[derive(Debug, Parser)]
#[command(version, about, long_about)]
pub struct Cli {
    /// What to run.
    #[arg(long, value_enum, default_value = "train")]
    pub mode: Mode,
    /// Configuration file [default: config.yaml if present, else embedded defaults].
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// CSV history to train on (columns timestamp,cpu_usage or timestamp,value) [config: dataset].
    #[arg(long, value_name = "FILE")]
    pub dataset: Option<PathBuf>,
    /// Where the model is saved / loaded (JSON) [config: model_path].
    #[arg(long, value_name = "FILE")]
    pub model_path: Option<PathBuf>,
    /// Directory for plots and reports [config: output_dir].
    #[arg(long, value_name = "DIR")]
    pub output_dir: Option<PathBuf>,
    /// Prometheus base URL [config: prometheus_url].
    #[arg(long, value_name = "URL")]
    pub prometheus_url: Option<String>,
    /// Time between polls in monitor mode: seconds, or 30s, 5m, 1h [config: monitoring_interval].
    #[arg(long, value_name = "DURATION")]
    pub monitoring_interval: Option<String>,
    /// trace, debug, info, warn or error [config: log_level].
    #[arg(long, value_name = "LEVEL")]
    pub log_level: Option<String>,
    /// Band scaling m >= 1: a point is anomalous outside the band widened m times [config: threshold_multiplier].
    #[arg(long, value_name = "M")]
    pub threshold_multiplier: Option<f64>,
    /// Consecutive flagged samples that raise an alert [config: sustained_samples].
    #[arg(long, value_name = "N")]
    pub sustained_samples: Option<u32>,
    /// Model family: prophet or mstl (MSTL + ETS) [config: model].
    #[arg(long, value_name = "FAMILY")]
    pub model: Option<String>,
    /// Fit, drop points far outside the band, refit: true or false [config: robust_training].
    #[arg(long, value_name = "BOOL")]
    pub robust_training: Option<bool>,
    /// Name of the time column (default: first of timestamp, ds, time, date).
    #[arg(long, value_name = "NAME")]
    pub time_column: Option<String>,
    /// Name of the value column (default: first of cpu_usage, value, y, cpu).
    #[arg(long, value_name = "NAME")]
    pub value_column: Option<String>,
    /// Evaluate: name of a 0/1 label column (default: first of label, is_anomaly, anomaly, if present);
    /// runs of labelled rows become label windows.
    #[arg(long, value_name = "NAME")]
    pub label_column: Option<String>,
    /// Unit of the CSV values.
    #[arg(long, value_enum, default_value = "auto")]
    pub unit: UnitArg,
    /// Evaluate: NAB-format label windows (JSON: file path -> [[start, end], ...]); without it
    /// the simulated protocol runs.
    #[arg(long, value_name = "FILE")]
    pub labels: Option<PathBuf>,
    /// Evaluate and score: share of each series learned before walking forward.
    #[arg(long, value_name = "FRACTION", default_value_t = 0.15)]
    pub train_fraction: f64,
    /// Evaluate and score: refit on all past data this often while walking forward (e.g. 1d, 12h, 30m, 3600;
    /// `never`: fit once) [default: retrain_interval, the monitor's refit period].
    #[arg(long, value_name = "DURATION", value_parser = parse_retrain)]
    pub retrain_every: Option<i64>,
    /// Seed of simulated anomalies [config: seed].
    #[arg(long, value_name = "N")]
    pub seed: Option<u64>,
    /// Evaluate: run the simulated protocol (inject anomalies) even when labels are given;
    /// labelled points then count as real anomalies beside the injected ones.
    #[arg(long)]
    pub inject: bool,
    /// Monitor: stop after this many polls (default: until Ctrl-C / SIGTERM).
    #[arg(long, value_name = "N")]
    pub max_ticks: Option<u64>,
    /// Monitor: PromQL whose every series is monitored [config: prometheus_query].
    #[arg(long, value_name = "PROMQL")]
    pub prometheus_query: Option<String>,
    /// Monitor: a series' own history needed before it is judged (seconds, or 30m, 1h, 1d)
    /// [config: min_history].
    #[arg(long, value_name = "DURATION")]
    pub min_history: Option<String>,
    /// Monitor: resolution of the history models are fitted on (seconds, or 1m, 5m)
    /// [config: training_step].
    #[arg(long, value_name = "DURATION")]
    pub training_step: Option<String>,
    /// Monitor: Prometheus series judged by the model at --model-path, as label matchers,
    /// e.g. '{instance="web-1:9100"}' [config: model_selector].
    #[arg(long, value_name = "MATCHERS")]
    pub model_selector: Option<String>,
    /// Directory for logs, local point files and the spool [config: log_dir].
    #[arg(long, value_name = "DIR")]
    pub log_dir: Option<PathBuf>,
    /// Log format on stderr: text or json (one JSON object per line).
    #[arg(long, value_enum, default_value = "text")]
    pub log_format: LogFormat,
    /// Skip PNG plots.
    #[arg(long)]
    pub no_plots: bool,
    /// Skip the data summary.
    #[arg(long)]
    pub no_eda: bool,
}

/// Parses a refit period: a duration, or `never` (0: fit once).
pub fn parse_retrain(s: &str) -> Result<i64, String> {
    if s.trim().eq_ignore_ascii_case("never") {
        Ok(0)
    } else {
        parse_duration(s)
    }
}

/// Parses `90`, `90s`, `30m`, `12h`, `1d` into seconds.
pub fn parse_duration(s: &str) -> Result<i64, String> {
    let s = s.trim();
    let (num, mult) = match s.chars().last() {
        Some('s') => (&s[..s.len() - 1], 1),
        Some('m') => (&s[..s.len() - 1], 60),
        Some('h') => (&s[..s.len() - 1], 3600),
        Some('d') => (&s[..s.len() - 1], 86_400),
        _ => (s, 1),
    };
    match num.trim().parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 => Ok((v * mult as f64).round() as i64),
        _ => Err(format!(
            "{s:?} is not a positive duration (examples: 3600, 30m, 12h, 1d)"
        )),
    }
}

impl Cli {
    /// The flags that override configuration keys.
    pub fn overrides(&self) -> CliOverrides {
        let mut o = CliOverrides::default();
        let path = |p: &Option<PathBuf>| p.as_ref().map(|p| p.display().to_string());
        o.set("dataset", "--dataset", path(&self.dataset));
        o.set("model_path", "--model-path", path(&self.model_path));
        o.set("output_dir", "--output-dir", path(&self.output_dir));
        o.set(
            "prometheus_url",
            "--prometheus-url",
            self.prometheus_url.clone(),
        );
        o.set(
            "monitoring_interval",
            "--monitoring-interval",
            self.monitoring_interval.clone(),
        );
        o.set("log_level", "--log-level", self.log_level.clone());
        o.set(
            "prometheus_query",
            "--prometheus-query",
            self.prometheus_query.clone(),
        );
        o.set("min_history", "--min-history", self.min_history.clone());
        o.set(
            "training_step",
            "--training-step",
            self.training_step.clone(),
        );
        o.set(
            "model_selector",
            "--model-selector",
            self.model_selector.clone(),
        );
        o.set(
            "log_dir",
            "--log-dir",
            self.log_dir.as_ref().map(|p| p.display().to_string()),
        );
        o.set(
            "threshold_multiplier",
            "--threshold-multiplier",
            self.threshold_multiplier,
        );
        o.set(
            "sustained_samples",
            "--sustained-samples",
            self.sustained_samples,
        );
        o.set("model", "--model", self.model.clone());
        o.set("seed", "--seed", self.seed);
        o.set("robust_training", "--robust-training", self.robust_training);
        o
    }
}
