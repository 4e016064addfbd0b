//! Configuration: `config.yaml` → environment variables → CLI flags, merged
//! once and validated into typed [`Settings`].
//!
//! Layers are merged as YAML values so that one deserializer (with
//! `deny_unknown_fields`) and one validator see the final result; every key
//! remembers which layer set it, so an error can say "environment variable
//! MONITORING_INTERVAL" rather than blaming the file.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    time::Duration,
};

use serde::Deserialize;
use serde_yaml::{Mapping, Value};

use crate::{
    detect::capacity::CapacitySettings,
    notify::NotifySettings,
    secret::Secret,
    shard::{IndexSpec, Shard},
};
use crate::{
    detect::{DecisionSettings, Side},
    forecast::{
        optimizer::OptimizerKind, settings::Seasonality, FutureTrend, ModelFamily, ProphetSettings,
        Trainer,
    },
    source::{prometheus::PrometheusSettings, selector::Selector},
};

/// The file read when `--config` is not given.
pub const DEFAULT_CONFIG_PATH: &str = "config.yaml";

/// What went wrong while loading configuration.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The config file could not be read.
    #[error("{path}: cannot read config: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Underlying error.
        source: std::io::Error,
    },
    /// The file is not valid YAML.
    #[error("{path}: invalid YAML: {message}")]
    Syntax {
        /// The file.
        path: PathBuf,
        /// Parser message, with line and column.
        message: String,
    },
    /// A key is unknown or has the wrong type.
    #[error("{origin}: key `{key}`: {message}")]
    Key {
        /// Where the value came from (file, env var or flag).
        origin: String,
        /// Dotted key path.
        key: String,
        /// What is wrong.
        message: String,
    },
    /// A value is outside its allowed range.
    #[error("{origin}: key `{key}` = {value}: must be {expected}")]
    OutOfRange {
        /// Where the value came from (file, env var or flag).
        origin: String,
        /// Dotted key path.
        key: String,
        /// The offending value as text (never a secret).
        value: String,
        /// What is allowed.
        expected: &'static str,
    },
}

/// Longest duration any key accepts, seconds (366 days): far beyond any
/// sensible value, and safely inside what timers and clocks can add.
pub const MAX_DURATION_SECS: f64 = 366.0 * 86_400.0;

/// A duration as written: seconds (`90`, `0.5`) or a number with a unit
/// suffix (`30s`, `5m`, `12h`, `1d`). Range-checked once, where the
/// settings are built.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Secs(f64);

impl<'de> Deserialize<'de> for Secs {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Num(f64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Num(v) => Ok(Secs(v)),
            Raw::Text(t) => parse_secs(&t).map(Secs).ok_or_else(|| {
                serde::de::Error::custom(format!(
                    "{t:?} is not a duration: seconds, or a number with s, m, h or d (30s, 5m, 12h, 1d)"
                ))
            }),
        }
    }
}

/// `90`, `1.5`, `30s`, `5m`, `12h`, `1d` → seconds.
fn parse_secs(t: &str) -> Option<f64> {
    let t = t.trim();
    let (num, mult) = match t.char_indices().last() {
        Some((i, 's')) => (&t[..i], 1.0),
        Some((i, 'm')) => (&t[..i], 60.0),
        Some((i, 'h')) => (&t[..i], 3600.0),
        Some((i, 'd')) => (&t[..i], 86_400.0),
        _ => (t, 1.0),
    };
    num.trim().parse::<f64>().ok().map(|v| v * mult)
}

/// `influxdb:` section as written in the file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawInflux {
    enabled: bool,
    api: crate::sink::influx::Api,
    url: String,
    token: Secret,
    org: String,
    bucket: String,
    batch_size: i64,
    flush_interval: Secs,
    timeout: Secs,
    retry_attempts: i64,
    retry_interval: Secs,
    spool_max_mb: f64,
}

impl Default for RawInflux {
    fn default() -> Self {
        RawInflux {
            enabled: false,
            api: crate::sink::influx::Api::V2,
            url: "http://localhost:8086".into(),
            token: Secret::default(),
            org: "cpu-anomaly".into(),
            bucket: "cpu_metrics".into(),
            batch_size: 5000,
            flush_interval: Secs(10.0),
            timeout: Secs(10.0),
            retry_attempts: 3,
            retry_interval: Secs(5.0),
            spool_max_mb: 256.0,
        }
    }
}

/// The whole file as written. Field names are the YAML keys.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawConfig {
    influxdb: RawInflux,
    prometheus_url: String,
    prometheus_timeout: Secs,
    prometheus_retries: i64,
    prometheus_query: String,
    prometheus_history: Secs,
    training_step: Secs,
    min_history: Secs,
    model_selector: String,
    model_workers: i64,
    simulation_after_failures: i64,
    simulation_series: i64,
    series_grace_period: Secs,
    shard_count: i64,
    shard_index: serde_yaml::Value,
    replication_factor: i64,
    capacity_threshold: f64,
    capacity_horizon: Secs,
    api_listen: String,
    api_token: Secret,
    api_token_file: PathBuf,
    alertmanager_url: String,
    webhook_url: String,
    dashboard_url: String,
    retrain_interval: Secs,
    threshold_multiplier: f64,
    sustained_samples: i64,
    min_effect: f64,
    min_effect_relative: f64,
    min_effect_peak_factor: f64,
    alert_direction: Side,
    band_calibration: bool,
    alert_clear_after: Secs,
    alert_cooldown: Secs,
    rebaseline_after: Secs,
    alert_likelihood: f64,
    alert_likelihood_alone: f64,
    interval_width: f64,
    train_ratio: f64,
    monitoring_interval: Secs,
    log_level: String,
    log_dir: PathBuf,
    dataset: PathBuf,
    model_path: PathBuf,
    output_dir: PathBuf,
    model: ModelFamily,
    robust_training: bool,
    prophet_daily_seasonality: Seasonality,
    prophet_weekly_seasonality: Seasonality,
    prophet_yearly_seasonality: Seasonality,
    prophet_changepoint_prior_scale: f64,
    prophet_seasonality_prior_scale: f64,
    prophet_uncertainty_samples: i64,
    prophet_optimizer: OptimizerKind,
    prophet_future_trend: FutureTrend,
    seed: u64,
}

impl Default for RawConfig {
    fn default() -> Self {
        RawConfig {
            influxdb: RawInflux::default(),
            prometheus_url: "http://localhost:9090".into(),
            prometheus_timeout: Secs(10.0),
            prometheus_retries: 3,
            prometheus_query: DEFAULT_QUERY.into(),
            prometheus_history: Secs(7.0 * 86_400.0),
            training_step: Secs(300.0),
            min_history: Secs(3600.0),
            model_selector: String::new(),
            model_workers: 0,
            simulation_after_failures: 3,
            simulation_series: 1,
            series_grace_period: Secs(300.0),
            shard_count: 1,
            shard_index: Value::Number(0.into()),
            replication_factor: 1,
            capacity_threshold: 90.0,
            capacity_horizon: Secs(1800.0),
            api_listen: "127.0.0.1:8080".into(),
            api_token: Secret::default(),
            api_token_file: PathBuf::new(),
            alertmanager_url: String::new(),
            webhook_url: String::new(),
            dashboard_url: String::new(),
            retrain_interval: Secs(86_400.0),
            // The decision path chosen by leave-series-out cross-validation
            // (README "Detection quality", examples/cross_validate.rs).
            threshold_multiplier: 2.5,
            sustained_samples: 1,
            min_effect: 3.0,
            min_effect_relative: 0.25,
            min_effect_peak_factor: 1.5,
            alert_direction: Side::Both,
            band_calibration: false,
            alert_clear_after: Secs(1800.0),
            alert_cooldown: Secs(7200.0),
            rebaseline_after: Secs(7200.0),
            alert_likelihood: 0.05,
            alert_likelihood_alone: 0.0001,
            interval_width: 0.95,
            train_ratio: 0.8,
            monitoring_interval: Secs(30.0),
            log_level: "info".into(),
            log_dir: "logs".into(),
            dataset: "datasets/sample_cpu.csv".into(),
            model_path: "models/prophet_model.json".into(),
            output_dir: "output".into(),
            model: ModelFamily::Prophet,
            robust_training: false,
            prophet_daily_seasonality: Seasonality::Auto,
            prophet_weekly_seasonality: Seasonality::Auto,
            prophet_yearly_seasonality: Seasonality::Off,
            prophet_changepoint_prior_scale: 0.05,
            prophet_seasonality_prior_scale: 10.0,
            prophet_uncertainty_samples: 1000,
            prophet_optimizer: OptimizerKind::Native,
            prophet_future_trend: FutureTrend::Flat,
            seed: 42,
        }
    }
}

/// Default PromQL: CPU busy percent per instance from node exporter.
pub const DEFAULT_QUERY: &str =
    r#"100 * (1 - avg by (instance) (rate(node_cpu_seconds_total{mode="idle"}[1m])))"#;

/// InfluxDB sink settings.
#[derive(Debug, Clone)]
pub struct InfluxSettings {
    /// Whether to write to InfluxDB at all.
    pub enabled: bool,
    /// Write API (v1 `/write?db=`, v2 `/api/v2/write`).
    pub api: crate::sink::influx::Api,
    /// Base URL.
    pub url: String,
    /// API token (never logged).
    pub token: Secret,
    /// Organisation (v2).
    pub org: String,
    /// Bucket (v2) or database (v1).
    pub bucket: String,
    /// Points per write.
    pub batch_size: usize,
    /// Longest time a point waits in a batch.
    pub flush_interval: Duration,
    /// Per-request timeout.
    pub timeout: Duration,
    /// Retries per batch before it is spooled.
    pub retry_attempts: u32,
    /// Base delay between retries.
    pub retry_interval: Duration,
    /// Bound of the on-disk spool, bytes.
    pub spool_max_bytes: u64,
}

/// How the monitor handles series (`min_history`, `series_grace_period`, …).
#[derive(Debug, Clone)]
pub struct MonitorSettings {
    /// Own history a series needs before it is judged.
    pub min_history: Duration,
    /// Failed polls in a row before switching to the simulation source.
    pub simulation_after_failures: u32,
    /// How long a vanished series is kept before it is dropped.
    pub series_grace_period: Duration,
    /// Prometheus series that use the model at `model_path` (none when empty).
    pub model_selector: Selector,
    /// This replica's share of the series (`shard_count`, `shard_index`,
    /// `replication_factor`).
    pub shard: Shard,
    /// Predictive capacity warnings.
    pub capacity: CapacitySettings,
    /// Threads fitting models (0 in the file: one per core).
    pub model_workers: usize,
}

/// Validated settings for every mode.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Where the file layer came from (`None`: embedded defaults).
    pub config_path: Option<PathBuf>,
    /// InfluxDB sink.
    pub influxdb: InfluxSettings,
    /// Prometheus source.
    pub prometheus: PrometheusSettings,
    /// Band scaling factor `m` (≥ 1).
    pub threshold_multiplier: f64,
    /// Consecutive flagged samples that make a sustained anomaly (an alert).
    pub sustained_samples: u32,
    /// The whole decision path (multiplier, sustained, effect size,
    /// direction, calibration, hysteresis, cooldown, re-baselining).
    pub decision: DecisionSettings,
    /// Share of history used for fitting when measuring accuracy, in (0, 1).
    pub train_ratio: f64,
    /// Poll interval of the monitor.
    pub monitoring_interval: Duration,
    /// Background retraining period of the monitor.
    pub retrain_interval: Duration,
    /// Hosts the simulated source produces (1: `simulated`; n: `simulated-1…n`).
    pub simulation_series: usize,
    /// The monitor's series handling.
    pub monitor: MonitorSettings,
    /// Address of the monitor's HTTP API (`None`: off).
    pub api_listen: Option<std::net::SocketAddr>,
    /// Bearer token for the API (required off loopback; never logged).
    pub api_token: Secret,
    /// Alert routing (Alertmanager, webhook).
    pub notify: NotifySettings,
    /// Log level filter (trace|debug|info|warn|error).
    pub log_level: String,
    /// Directory for logs and local sink files.
    pub log_dir: PathBuf,
    /// Default training dataset.
    pub dataset: PathBuf,
    /// Where the model is saved and loaded.
    pub model_path: PathBuf,
    /// Where plots and reports go.
    pub output_dir: PathBuf,
    /// Model family that forecasts.
    pub model: ModelFamily,
    /// Fit, drop points far outside the band, refit.
    pub robust_training: bool,
    /// Model options (seasonality keys and band width apply to both families).
    pub prophet: ProphetSettings,
    /// Seed for every random draw (bands, simulations).
    pub seed: u64,
}

impl RawConfig {
    fn prophet(&self) -> ProphetSettings {
        ProphetSettings {
            daily_seasonality: self.prophet_daily_seasonality,
            weekly_seasonality: self.prophet_weekly_seasonality,
            yearly_seasonality: self.prophet_yearly_seasonality,
            changepoint_prior_scale: self.prophet_changepoint_prior_scale,
            seasonality_prior_scale: self.prophet_seasonality_prior_scale,
            interval_width: self.interval_width,
            uncertainty_samples: self.prophet_uncertainty_samples.clamp(0, u32::MAX as i64) as u32,
            optimizer: self.prophet_optimizer,
            future_trend: self.prophet_future_trend,
        }
    }
}

/// The type a key has, so env/CLI text is parsed into the right YAML scalar.
#[derive(Clone, Copy)]
enum Kind {
    Str,
    Num,
    Bool,
}

/// Environment variables that override keys: (variable, dotted key, kind).
pub const ENV_VARS: &[(&str, &str)] = &[
    ("INFLUXDB_ENABLED", "influxdb.enabled"),
    ("INFLUXDB_URL", "influxdb.url"),
    ("INFLUXDB_TOKEN", "influxdb.token"),
    ("INFLUXDB_ORG", "influxdb.org"),
    ("INFLUXDB_BUCKET", "influxdb.bucket"),
    ("INFLUXDB_BATCH_SIZE", "influxdb.batch_size"),
    ("INFLUXDB_FLUSH_INTERVAL", "influxdb.flush_interval"),
    ("PROMETHEUS_URL", "prometheus_url"),
    ("PROMETHEUS_TIMEOUT", "prometheus_timeout"),
    ("PROMETHEUS_RETRIES", "prometheus_retries"),
    ("PROMETHEUS_QUERY", "prometheus_query"),
    ("PROMETHEUS_HISTORY", "prometheus_history"),
    ("MIN_HISTORY", "min_history"),
    ("TRAINING_STEP", "training_step"),
    ("MODEL_SELECTOR", "model_selector"),
    ("MODEL_WORKERS", "model_workers"),
    ("RETRAIN_INTERVAL", "retrain_interval"),
    ("SIMULATION_SERIES", "simulation_series"),
    ("SHARD_COUNT", "shard_count"),
    ("SHARD_INDEX", "shard_index"),
    ("REPLICATION_FACTOR", "replication_factor"),
    ("CAPACITY_THRESHOLD", "capacity_threshold"),
    ("CAPACITY_HORIZON", "capacity_horizon"),
    ("API_LISTEN", "api_listen"),
    ("API_TOKEN", "api_token"),
    ("API_TOKEN_FILE", "api_token_file"),
    ("ALERTMANAGER_URL", "alertmanager_url"),
    ("WEBHOOK_URL", "webhook_url"),
    ("DASHBOARD_URL", "dashboard_url"),
    ("INFLUXDB_API", "influxdb.api"),
    ("THRESHOLD_MULTIPLIER", "threshold_multiplier"),
    ("INTERVAL_WIDTH", "interval_width"),
    ("SUSTAINED_SAMPLES", "sustained_samples"),
    ("MIN_EFFECT", "min_effect"),
    ("MIN_EFFECT_RELATIVE", "min_effect_relative"),
    ("MIN_EFFECT_PEAK_FACTOR", "min_effect_peak_factor"),
    ("ALERT_DIRECTION", "alert_direction"),
    ("BAND_CALIBRATION", "band_calibration"),
    ("ALERT_CLEAR_AFTER", "alert_clear_after"),
    ("ALERT_COOLDOWN", "alert_cooldown"),
    ("REBASELINE_AFTER", "rebaseline_after"),
    ("ALERT_LIKELIHOOD", "alert_likelihood"),
    ("ALERT_LIKELIHOOD_ALONE", "alert_likelihood_alone"),
    ("TRAIN_RATIO", "train_ratio"),
    ("MONITORING_INTERVAL", "monitoring_interval"),
    ("LOG_LEVEL", "log_level"),
    ("LOG_DIR", "log_dir"),
    ("DATASET", "dataset"),
    ("MODEL_PATH", "model_path"),
    ("OUTPUT_DIR", "output_dir"),
    ("MODEL", "model"),
    ("ROBUST_TRAINING", "robust_training"),
    ("PROPHET_OPTIMIZER", "prophet_optimizer"),
    ("PROPHET_FUTURE_TREND", "prophet_future_trend"),
    ("SEED", "seed"),
];

fn kind_of(key: &str) -> Kind {
    match key {
        "influxdb.enabled"
        | "band_calibration"
        | "robust_training"
        | "prophet_daily_seasonality"
        | "prophet_weekly_seasonality"
        | "prophet_yearly_seasonality" => Kind::Bool,
        "influxdb.url"
        | "influxdb.token"
        | "influxdb.org"
        | "influxdb.bucket"
        | "influxdb.api"
        | "prometheus_query"
        | "prometheus_url"
        | "api_listen"
        | "api_token"
        | "api_token_file"
        | "alertmanager_url"
        | "webhook_url"
        | "dashboard_url"
        | "model"
        | "prophet_optimizer"
        | "prophet_future_trend"
        | "log_level"
        | "log_dir"
        | "dataset"
        | "model_path"
        | "model_selector"
        | "shard_index"
        | "output_dir"
        | "alert_direction" => Kind::Str,
        _ => Kind::Num,
    }
}

/// Values given on the command line (highest precedence): (dotted key, flag, text).
#[derive(Debug, Clone, Default)]
pub struct CliOverrides(pub Vec<(&'static str, &'static str, String)>);

impl CliOverrides {
    /// Records `--flag value` for `key` when the flag was given.
    pub fn set(&mut self, key: &'static str, flag: &'static str, value: Option<impl ToString>) {
        if let Some(v) = value {
            self.0.push((key, flag, v.to_string()));
        }
    }
}

fn scalar(kind: Kind, text: &str) -> Value {
    match kind {
        Kind::Str => Value::String(text.to_string()),
        Kind::Bool => match text.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => Value::Bool(true),
            "false" | "0" | "no" | "off" => Value::Bool(false),
            _ => Value::String(text.to_string()),
        },
        Kind::Num => serde_yaml::from_str::<Value>(text)
            .ok()
            .filter(Value::is_number)
            .unwrap_or_else(|| Value::String(text.to_string())),
    }
}

/// Sets `key` (dotted) in `root`. A section on the way that the file made
/// something other than a mapping is an error naming it, never replaced.
fn set_path(root: &mut Value, key: &str, v: Value, file_origin: &str) -> Result<(), ConfigError> {
    let mut cur = root;
    let parts: Vec<&str> = key.split('.').collect();
    for (i, part) in parts.iter().enumerate() {
        if cur.is_null() {
            *cur = Value::Mapping(Mapping::new());
        }
        let Some(map) = cur.as_mapping_mut() else {
            let section = parts[..i].join(".");
            return Err(ConfigError::Key {
                origin: file_origin.to_string(),
                key: if section.is_empty() {
                    ".".into()
                } else {
                    section
                },
                message: format!("expected a section (a mapping of keys) holding `{part}`"),
            });
        };
        let k = Value::String(part.to_string());
        if i + 1 == parts.len() {
            map.insert(k, v);
            return Ok(());
        }
        if !map.contains_key(&k) {
            map.insert(k.clone(), Value::Mapping(Mapping::new()));
        }
        cur = map.get_mut(&k).expect("inserted above");
    }
    Ok(())
}

impl Settings {
    /// A model trainer for these settings (family, model options, robust
    /// training, seed).
    pub fn trainer(&self) -> Trainer {
        Trainer::new(
            self.model,
            self.prophet.clone(),
            self.robust_training,
            self.seed,
        )
    }

    /// Loads settings. `config` is the `--config` value; when it is `None` the
    /// default path is used if it exists, otherwise embedded defaults (so the
    /// binary runs on a bare machine). `env` looks up environment variables.
    pub fn load(
        config: Option<&Path>,
        env: impl Fn(&str) -> Option<String>,
        cli: &CliOverrides,
    ) -> Result<Settings, ConfigError> {
        let (path, text) = match config {
            Some(p) => {
                let text = std::fs::read_to_string(p).map_err(|source| ConfigError::Io {
                    path: p.to_path_buf(),
                    source,
                })?;
                (Some(p.to_path_buf()), text)
            }
            None => match std::fs::read_to_string(DEFAULT_CONFIG_PATH) {
                Ok(t) => (Some(PathBuf::from(DEFAULT_CONFIG_PATH)), t),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => (None, String::new()),
                Err(source) => {
                    return Err(ConfigError::Io {
                        path: DEFAULT_CONFIG_PATH.into(),
                        source,
                    })
                }
            },
        };
        let file_origin = path
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "embedded defaults".into());
        Self::from_layers(&text, path, &file_origin, env, cli)
    }

    /// Merges the layers from already-read file text.
    pub fn from_layers(
        text: &str,
        path: Option<PathBuf>,
        file_origin: &str,
        env: impl Fn(&str) -> Option<String>,
        cli: &CliOverrides,
    ) -> Result<Settings, ConfigError> {
        let mut root: Value = if text.trim().is_empty() {
            Value::Mapping(Mapping::new())
        } else {
            serde_yaml::from_str(text).map_err(|e| ConfigError::Syntax {
                path: path.clone().unwrap_or_else(|| file_origin.into()),
                message: e.to_string(),
            })?
        };
        if root.is_null() {
            root = Value::Mapping(Mapping::new());
        }
        let mut origins: HashMap<String, String> = HashMap::new();
        for (var, key) in ENV_VARS {
            if let Some(v) = env(var) {
                set_path(&mut root, key, scalar(kind_of(key), &v), file_origin)?;
                origins.insert(key.to_string(), format!("environment variable {var}"));
            }
        }
        for (key, flag, v) in &cli.0 {
            set_path(&mut root, key, scalar(kind_of(key), v), file_origin)?;
            origins.insert(key.to_string(), format!("flag {flag}"));
        }
        let origin_of = |key: &str| {
            origins
                .get(key)
                .cloned()
                .unwrap_or_else(|| file_origin.to_string())
        };
        let raw: RawConfig = serde_path_to_error::deserialize(root).map_err(|e| {
            let key = e.path().to_string();
            let message = e.inner().to_string();
            ConfigError::Key {
                origin: origin_of(&key),
                key,
                message,
            }
        })?;
        let range =
            |key: &'static str, value: String, expected: &'static str| ConfigError::OutOfRange {
                origin: origin_of(key),
                key: key.to_string(),
                value,
                expected,
            };
        let positive_secs = |key: &'static str, v: Secs| {
            let v = v.0;
            if v.is_finite() && v > 0.0 && v <= MAX_DURATION_SECS {
                Ok(Duration::from_secs_f64(v))
            } else {
                Err(range(
                    key,
                    v.to_string(),
                    "a positive duration of at most 366 days (seconds, or 30s, 5m, 12h, 1d)",
                ))
            }
        };
        if !(raw.interval_width > 0.0 && raw.interval_width < 1.0) {
            return Err(range(
                "interval_width",
                raw.interval_width.to_string(),
                "strictly between 0 and 1",
            ));
        }
        if !(raw.train_ratio > 0.0 && raw.train_ratio < 1.0) {
            return Err(range(
                "train_ratio",
                raw.train_ratio.to_string(),
                "strictly between 0 and 1",
            ));
        }
        if !(raw.threshold_multiplier.is_finite() && raw.threshold_multiplier >= 1.0) {
            return Err(range(
                "threshold_multiplier",
                raw.threshold_multiplier.to_string(),
                "a number >= 1",
            ));
        }
        for (key, v) in [
            (
                "prophet_changepoint_prior_scale",
                raw.prophet_changepoint_prior_scale,
            ),
            (
                "prophet_seasonality_prior_scale",
                raw.prophet_seasonality_prior_scale,
            ),
        ] {
            if !(v.is_finite() && v > 0.0) {
                return Err(range(key, v.to_string(), "a positive number"));
            }
        }
        if !(0..=100_000).contains(&raw.prophet_uncertainty_samples) {
            return Err(range(
                "prophet_uncertainty_samples",
                raw.prophet_uncertainty_samples.to_string(),
                "between 0 and 100000",
            ));
        }
        if !raw.prophet_optimizer.available() {
            return Err(range(
                "prophet_optimizer",
                raw.prophet_optimizer.to_string(),
                "`native` (this binary was built without the `wasmstan` cargo feature; \
                 rebuild with `cargo build --release --features wasmstan` to use it)",
            ));
        }
        if !["trace", "debug", "info", "warn", "error"]
            .contains(&raw.log_level.to_lowercase().as_str())
        {
            return Err(range(
                "log_level",
                raw.log_level.clone(),
                "one of trace, debug, info, warn, error",
            ));
        }
        if !(1..=1_000_000).contains(&raw.influxdb.batch_size) {
            return Err(range(
                "influxdb.batch_size",
                raw.influxdb.batch_size.to_string(),
                "between 1 and 1000000",
            ));
        }
        if !(0..=100).contains(&raw.influxdb.retry_attempts) {
            return Err(range(
                "influxdb.retry_attempts",
                raw.influxdb.retry_attempts.to_string(),
                "between 0 and 100",
            ));
        }
        if !(raw.min_effect.is_finite() && (0.0..=100.0).contains(&raw.min_effect)) {
            return Err(range(
                "min_effect",
                raw.min_effect.to_string(),
                "between 0 and 100 (percentage points)",
            ));
        }
        for (key, v, expected) in [
            (
                "min_effect_relative",
                raw.min_effect_relative,
                "between 0 and 10 (a fraction of the forecast; 0 is off)",
            ),
            (
                "min_effect_peak_factor",
                raw.min_effect_peak_factor,
                "between 0 and 10 (times the recent largest deviation; 0 is off)",
            ),
        ] {
            if !(v.is_finite() && (0.0..=10.0).contains(&v)) {
                return Err(range(key, v.to_string(), expected));
            }
        }
        for (key, v) in [
            ("alert_clear_after", raw.alert_clear_after.0),
            ("alert_cooldown", raw.alert_cooldown.0),
            ("rebaseline_after", raw.rebaseline_after.0),
        ] {
            if !(v.is_finite() && (0.0..=30.0 * 86_400.0).contains(&v)) {
                return Err(range(
                    key,
                    v.to_string(),
                    "between 0 and 30 days (2592000 s; or 30m, 12h, 1d)",
                ));
            }
        }
        if !(raw.alert_likelihood_alone.is_finite()
            && (0.0..0.5).contains(&raw.alert_likelihood_alone))
        {
            return Err(range(
                "alert_likelihood_alone",
                raw.alert_likelihood_alone.to_string(),
                "a tail probability in [0, 0.5) (0: off)",
            ));
        }
        if !(raw.alert_likelihood.is_finite() && (0.0..0.5).contains(&raw.alert_likelihood)) {
            return Err(range(
                "alert_likelihood",
                raw.alert_likelihood.to_string(),
                "a tail probability in [0, 0.5) (0: off)",
            ));
        }
        if !(1..=10_000).contains(&raw.sustained_samples) {
            return Err(range(
                "sustained_samples",
                raw.sustained_samples.to_string(),
                "between 1 and 10000",
            ));
        }
        if !(1..=100_000).contains(&raw.simulation_series) {
            return Err(range(
                "simulation_series",
                raw.simulation_series.to_string(),
                "between 1 and 100000",
            ));
        }
        if !(1..=1_000_000).contains(&raw.simulation_after_failures) {
            return Err(range(
                "simulation_after_failures",
                raw.simulation_after_failures.to_string(),
                "between 1 and 1000000",
            ));
        }
        if !(raw.influxdb.spool_max_mb.is_finite() && raw.influxdb.spool_max_mb > 0.0) {
            return Err(range(
                "influxdb.spool_max_mb",
                raw.influxdb.spool_max_mb.to_string(),
                "a positive number of MiB",
            ));
        }
        if raw.prometheus_query.trim().is_empty() {
            return Err(range(
                "prometheus_query",
                String::new(),
                "a PromQL expression",
            ));
        }
        if !(0..=100).contains(&raw.prometheus_retries) {
            return Err(range(
                "prometheus_retries",
                raw.prometheus_retries.to_string(),
                "between 0 and 100",
            ));
        }
        let api_listen = match raw.api_listen.trim() {
            "" => None,
            text => Some(text.parse::<std::net::SocketAddr>().map_err(|_| {
                range(
                    "api_listen",
                    text.to_string(),
                    "host:port, e.g. 127.0.0.1:8080, or empty to disable",
                )
            })?),
        };
        // A token file (a Docker/Kubernetes secret) fills an empty api_token.
        let api_token = if raw.api_token.is_empty() && !raw.api_token_file.as_os_str().is_empty() {
            let text =
                std::fs::read_to_string(&raw.api_token_file).map_err(|source| ConfigError::Io {
                    path: raw.api_token_file.clone(),
                    source,
                })?;
            if text.trim().is_empty() {
                return Err(range(
                    "api_token_file",
                    raw.api_token_file.display().to_string(),
                    "a file holding a token (this one is empty or blank)",
                ));
            }
            Secret::new(text.trim())
        } else if !raw.api_token.is_empty() && raw.api_token.expose().trim().is_empty() {
            // The value is never echoed, even a blank one.
            return Err(range(
                "api_token",
                "(blank)".into(),
                "a token with more than whitespace, or empty to disable",
            ));
        } else {
            Secret::new(raw.api_token.expose().trim())
        };
        if api_listen.is_some_and(|a| !a.ip().is_loopback()) && api_token.is_empty() {
            return Err(range(
                "api_listen",
                raw.api_listen.clone(),
                "a loopback address unless api_token (API_TOKEN) or api_token_file is set",
            ));
        }
        let training_step = positive_secs("training_step", raw.training_step)?;
        if training_step < Duration::from_secs(1) {
            return Err(range(
                "training_step",
                raw.training_step.0.to_string(),
                "at least 1 second",
            ));
        }
        let model_selector =
            Selector::parse(&raw.model_selector).map_err(|e| ConfigError::Key {
                origin: origin_of("model_selector"),
                key: "model_selector".into(),
                message: e.to_string(),
            })?;
        if !(0..=256).contains(&raw.model_workers) {
            return Err(range(
                "model_workers",
                raw.model_workers.to_string(),
                "between 0 (one per core) and 256",
            ));
        }
        let model_workers = match raw.model_workers as usize {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        };
        let prophet = raw.prophet();
        for (key, v) in [
            ("alertmanager_url", &raw.alertmanager_url),
            ("webhook_url", &raw.webhook_url),
            ("dashboard_url", &raw.dashboard_url),
        ] {
            let v = v.trim();
            if !(v.is_empty() || v.starts_with("http://") || v.starts_with("https://")) {
                return Err(range(
                    key,
                    v.to_string(),
                    "an http:// or https:// URL, or empty",
                ));
            }
        }
        let monitoring_interval = positive_secs("monitoring_interval", raw.monitoring_interval)?;
        let host = env("HOSTNAME")
            .filter(|h| !h.trim().is_empty())
            .unwrap_or_else(crate::shard::kernel_hostname);
        let shard = shard_of(&raw, &host, &origin_of)?;
        if !(raw.capacity_threshold.is_finite() && (0.0..=1000.0).contains(&raw.capacity_threshold))
        {
            return Err(range(
                "capacity_threshold",
                raw.capacity_threshold.to_string(),
                "a CPU level in percent, e.g. 90 (0: no capacity warnings)",
            ));
        }
        let capacity = CapacitySettings {
            threshold: raw.capacity_threshold,
            horizon: positive_secs("capacity_horizon", raw.capacity_horizon)?,
        };
        let notify = NotifySettings {
            alertmanager_url: raw.alertmanager_url.trim().to_string(),
            webhook_url: raw.webhook_url.trim().to_string(),
            dashboard_url: match (raw.dashboard_url.trim(), api_listen) {
                ("", Some(a)) => format!("http://{a}/"),
                (u, _) => u.to_string(),
            },
            // Three missed polls (at least two minutes) and an alert expires.
            expire_after: (monitoring_interval * 3).max(Duration::from_secs(120)),
            timeout: Duration::from_secs(10),
        };
        Ok(Settings {
            config_path: path,
            influxdb: InfluxSettings {
                enabled: raw.influxdb.enabled,
                api: raw.influxdb.api,
                spool_max_bytes: (raw.influxdb.spool_max_mb * 1024.0 * 1024.0) as u64,
                url: raw.influxdb.url.clone(),
                token: raw.influxdb.token.clone(),
                org: raw.influxdb.org.clone(),
                bucket: raw.influxdb.bucket.clone(),
                batch_size: raw.influxdb.batch_size as usize,
                flush_interval: positive_secs(
                    "influxdb.flush_interval",
                    raw.influxdb.flush_interval,
                )?,
                timeout: positive_secs("influxdb.timeout", raw.influxdb.timeout)?,
                retry_attempts: raw.influxdb.retry_attempts as u32,
                retry_interval: positive_secs(
                    "influxdb.retry_interval",
                    raw.influxdb.retry_interval,
                )?,
            },
            prometheus: PrometheusSettings {
                url: raw.prometheus_url.clone(),
                timeout: positive_secs("prometheus_timeout", raw.prometheus_timeout)?,
                retries: raw.prometheus_retries as u32,
                query: raw.prometheus_query.clone(),
                history: positive_secs("prometheus_history", raw.prometheus_history)?,
                training_step,
            },
            monitor: MonitorSettings {
                min_history: positive_secs("min_history", raw.min_history)?,
                simulation_after_failures: raw.simulation_after_failures as u32,
                series_grace_period: positive_secs("series_grace_period", raw.series_grace_period)?,
                model_selector,
                model_workers,
                shard,
                capacity,
            },
            threshold_multiplier: raw.threshold_multiplier,
            sustained_samples: raw.sustained_samples as u32,
            decision: DecisionSettings {
                multiplier: raw.threshold_multiplier,
                sustained: raw.sustained_samples as u32,
                min_effect: raw.min_effect,
                min_effect_relative: raw.min_effect_relative,
                min_effect_peak_factor: raw.min_effect_peak_factor,
                direction: raw.alert_direction,
                calibrate: raw.band_calibration,
                clear_after: raw.alert_clear_after.0.round() as i64,
                cooldown: raw.alert_cooldown.0.round() as i64,
                rebaseline_after: raw.rebaseline_after.0.round() as i64,
                likelihood: raw.alert_likelihood,
                likelihood_alone: raw.alert_likelihood_alone,
            },
            train_ratio: raw.train_ratio,
            monitoring_interval,
            retrain_interval: positive_secs("retrain_interval", raw.retrain_interval)?,
            simulation_series: raw.simulation_series as usize,
            api_listen,
            api_token,
            notify,
            log_level: raw.log_level.to_lowercase(),
            log_dir: raw.log_dir,
            dataset: raw.dataset,
            model_path: raw.model_path,
            output_dir: raw.output_dir,
            model: raw.model,
            robust_training: raw.robust_training,
            prophet,
            seed: raw.seed,
        })
    }
}

/// The shard settings, checked together (`auto` resolved from the host
/// name); an error names the key at fault and where it was set.
fn shard_of(
    raw: &RawConfig,
    hostname: &str,
    origin_of: &dyn Fn(&str) -> String,
) -> Result<Shard, ConfigError> {
    let err = |key: &str, message: String| ConfigError::Key {
        origin: origin_of(key),
        key: key.to_string(),
        message,
    };
    let index_text = match &raw.shard_index {
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        other => {
            return Err(err(
                "shard_index",
                format!("expected a number or `auto`, got {other:?}"),
            ))
        }
    };
    let index = IndexSpec::parse(&index_text)
        .and_then(|spec| spec.resolve(hostname))
        .map_err(|e| err("shard_index", e.to_string()))?;
    let count = u32::try_from(raw.shard_count).unwrap_or(0);
    let replication = u32::try_from(raw.replication_factor).unwrap_or(0);
    Shard::new(count, index, replication).map_err(|message| {
        let key = if message.starts_with("shard_count") {
            "shard_count"
        } else if message.starts_with("shard_index") {
            "shard_index"
        } else {
            "replication_factor"
        };
        err(key, message)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str, env: &[(&str, &str)], cli: CliOverrides) -> Result<Settings, ConfigError> {
        let env: HashMap<String, String> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Settings::from_layers(
            text,
            Some("c.yaml".into()),
            "c.yaml",
            |k| env.get(k).cloned(),
            &cli,
        )
    }

    #[test]
    fn alert_routing_urls_and_the_dashboard_link() {
        let s = load(
            "alertmanager_url: http://am:9093\nmonitoring_interval: 60\n",
            &[("WEBHOOK_URL", "https://hooks.example/x")],
            CliOverrides::default(),
        )
        .unwrap();
        assert_eq!(s.notify.alertmanager_url, "http://am:9093");
        assert_eq!(s.notify.webhook_url, "https://hooks.example/x");
        assert_eq!(s.notify.dashboard_url, "http://127.0.0.1:8080/");
        assert_eq!(s.notify.expire_after, Duration::from_secs(180));
        let e = load("webhook_url: hooks.example\n", &[], CliOverrides::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("c.yaml: key `webhook_url`"), "{e}");
        let off = load("", &[], CliOverrides::default()).unwrap();
        assert!(!off.notify.enabled());
    }

    #[test]
    fn shard_and_capacity_keys_and_their_errors() {
        let s = load("", &[], CliOverrides::default()).unwrap();
        assert_eq!(s.monitor.shard, Shard::default());
        assert_eq!(s.monitor.capacity, CapacitySettings::default());
        let s = load(
            "shard_count: 3\nshard_index: 2\nreplication_factor: 2\ncapacity_threshold: 80\ncapacity_horizon: 15m\n",
            &[],
            CliOverrides::default(),
        )
        .unwrap();
        assert_eq!(s.monitor.shard, Shard::new(3, 2, 2).unwrap());
        assert_eq!(s.monitor.capacity.threshold, 80.0);
        assert_eq!(s.monitor.capacity.horizon, Duration::from_secs(900));
        let s = load(
            "shard_count: 4\n",
            &[("SHARD_INDEX", "3"), ("REPLICATION_FACTOR", "2")],
            CliOverrides::default(),
        )
        .unwrap();
        assert_eq!(s.monitor.shard, Shard::new(4, 3, 2).unwrap());
        let auto = "shard_count: 3\nshard_index: auto\n";
        let s = load(
            auto,
            &[("HOSTNAME", "cpu-anomaly-2")],
            CliOverrides::default(),
        )
        .unwrap();
        assert_eq!(s.monitor.shard.index(), 2);
        let e = load(auto, &[("HOSTNAME", "laptop")], CliOverrides::default()).unwrap_err();
        assert!(
            e.to_string().contains("shard_index") && e.to_string().contains("laptop"),
            "{e}"
        );
        for (text, env, key) in [
            ("shard_count: 3\nshard_index: 3\n", vec![], "shard_index"),
            ("shard_count: 0\n", vec![], "shard_count"),
            (
                "shard_count: 2\nreplication_factor: 3\n",
                vec![],
                "replication_factor",
            ),
            ("shard_index: [1]\n", vec![], "shard_index"),
            (
                "shard_count: 2\n",
                vec![("SHARD_INDEX", "two")],
                "shard_index",
            ),
            ("capacity_threshold: -1\n", vec![], "capacity_threshold"),
            ("capacity_horizon: 0\n", vec![], "capacity_horizon"),
        ] {
            let e = load(text, &env, CliOverrides::default())
                .unwrap_err()
                .to_string();
            assert!(e.contains(key), "{text}: {e}");
        }
    }

    #[test]
    fn a_blank_api_token_is_refused_without_echoing_it() {
        let e = load("", &[("API_TOKEN", "   ")], CliOverrides::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("API_TOKEN"), "{e}");
        assert!(e.contains("(blank)"), "{e}");
        let s = load("", &[("API_TOKEN", " t0k \n")], CliOverrides::default()).unwrap();
        assert_eq!(s.api_token.expose(), "t0k");
    }

    #[test]
    fn a_section_that_is_not_a_mapping_is_an_error_whatever_else_is_set() {
        for env in [&[][..], &[("INFLUXDB_URL", "http://x:8086")][..]] {
            let e = load("influxdb: hello\n", env, CliOverrides::default())
                .unwrap_err()
                .to_string();
            assert!(e.contains("c.yaml: key `influxdb`"), "{e}");
        }
        let e = load(
            "- a list\n",
            &[("INFLUXDB_URL", "u")],
            CliOverrides::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(e.starts_with("c.yaml: key `.`"), "{e}");
    }

    #[test]
    fn model_family_and_robust_training_from_every_layer() {
        let s = load(
            "model: mstl\n",
            &[("ROBUST_TRAINING", "true")],
            CliOverrides::default(),
        )
        .unwrap();
        assert_eq!(s.model, ModelFamily::Mstl);
        assert!(s.robust_training);
        let e = load("model: arima\n", &[], CliOverrides::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("c.yaml: key `model`"), "{e}");
        assert!(e.contains("prophet"), "{e}");
    }

    #[test]
    fn prophet_optimizer_from_file_and_env() {
        let d = load("", &[], CliOverrides::default()).unwrap();
        assert_eq!(d.prophet.optimizer, OptimizerKind::Native);
        let r = load(
            "prophet_optimizer: native\n",
            &[("PROPHET_OPTIMIZER", "wasmstan")],
            CliOverrides::default(),
        );
        if cfg!(feature = "wasmstan") {
            assert_eq!(r.unwrap().prophet.optimizer, OptimizerKind::Wasmstan);
        } else {
            let e = r.unwrap_err().to_string();
            assert!(e.contains("PROPHET_OPTIMIZER"), "{e}");
            assert!(e.contains("--features wasmstan"), "{e}");
        }
        let e = load("prophet_optimizer: lbfgs\n", &[], CliOverrides::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("c.yaml: key `prophet_optimizer`"), "{e}");
        assert!(e.contains("native"), "{e}");
    }

    #[test]
    fn monitor_section_keys_and_their_errors() {
        let s = load(
            "model_selector: '{instance=\"web-1:9100\"}'\nmodel_workers: 3\n",
            &[("MIN_HISTORY", "7200"), ("TRAINING_STEP", "60")],
            CliOverrides::default(),
        )
        .unwrap();
        assert_eq!(s.monitor.min_history, Duration::from_secs(7200));
        assert_eq!(s.prometheus.training_step, Duration::from_secs(60));
        assert_eq!(s.monitor.model_workers, 3);
        let mut l = crate::source::prometheus::Labels::new();
        l.insert("instance".into(), "web-1:9100".into());
        assert!(s.monitor.model_selector.matches(&l));
        let d = load("", &[], CliOverrides::default()).unwrap();
        assert!(d.monitor.model_selector.is_empty());
        assert!(d.monitor.model_workers >= 1);
        assert_eq!(d.monitor.min_history, Duration::from_secs(3600));
        let e = load(
            "model_selector: 'instance=web'\n",
            &[],
            CliOverrides::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(e.starts_with("c.yaml: key `model_selector`"), "{e}");
        assert!(e.contains("quoted value"), "{e}");
        let mut cli = CliOverrides::default();
        cli.set("training_step", "--training-step", Some(0.5));
        let e = load("", &[], cli).unwrap_err().to_string();
        assert!(e.starts_with("flag --training-step"), "{e}");
    }

    #[test]
    fn forecast_section_defaults_agree_with_the_config_defaults() {
        let d = load("", &[], CliOverrides::default()).unwrap();
        assert_eq!(d.prophet, ProphetSettings::default());
    }

    #[test]
    fn shipped_config_yaml_is_valid_and_matches_defaults() {
        let text = include_str!("../config.yaml");
        let s = load(text, &[], CliOverrides::default()).unwrap();
        let d = load("", &[], CliOverrides::default()).unwrap();
        assert_eq!(s.prophet, d.prophet);
        assert_eq!(s.threshold_multiplier, d.threshold_multiplier);
        assert_eq!(s.monitoring_interval, d.monitoring_interval);
        assert_eq!(s.influxdb.batch_size, d.influxdb.batch_size);
        assert_eq!(s.monitor.min_history, d.monitor.min_history);
        assert_eq!(s.prometheus.training_step, d.prometheus.training_step);
        assert_eq!(s.prometheus.history, d.prometheus.history);
        assert_eq!(s.decision, d.decision);
    }

    #[test]
    fn durations_take_unit_suffixes_and_huge_ones_are_errors_not_panics() {
        let s = load(
            "monitoring_interval: 30s\nretrain_interval: 1d\nmin_history: 1.5h\n",
            &[("INFLUXDB_FLUSH_INTERVAL", "5m")],
            CliOverrides::default(),
        )
        .unwrap();
        assert_eq!(s.monitoring_interval, Duration::from_secs(30));
        assert_eq!(s.retrain_interval, Duration::from_secs(86_400));
        assert_eq!(s.monitor.min_history, Duration::from_secs(5400));
        assert_eq!(s.influxdb.flush_interval, Duration::from_secs(300));
        for (file, env) in [
            ("monitoring_interval: 1e20\n", None),
            ("", Some(("MONITORING_INTERVAL", "1e19"))),
            ("", Some(("INFLUXDB_FLUSH_INTERVAL", "1e19"))),
            ("series_grace_period: 400d\n", None),
            ("influxdb:\n  timeout: 0\n", None),
        ] {
            let env: Vec<(&str, &str)> = env.into_iter().collect();
            let e = load(file, &env, CliOverrides::default())
                .unwrap_err()
                .to_string();
            assert!(e.contains("at most 366 days"), "{file} {env:?}: {e}");
        }
        let e = load("monitoring_interval: soon\n", &[], CliOverrides::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("not a duration"), "{e}");
        let mut cli = CliOverrides::default();
        cli.set("min_history", "--min-history", Some("2h"));
        assert_eq!(
            load("", &[], cli).unwrap().monitor.min_history,
            Duration::from_secs(7200)
        );
    }

    #[test]
    fn decision_keys_and_their_ranges() {
        let s = load(
            "alert_direction: above\nalert_cooldown: 600\nmin_effect: 5\n",
            &[("ALERT_LIKELIHOOD", "0.01"), ("BAND_CALIBRATION", "true")],
            CliOverrides::default(),
        )
        .unwrap();
        assert_eq!(s.decision.direction, Side::Above);
        assert_eq!(s.decision.cooldown, 600);
        assert_eq!(s.decision.min_effect, 5.0);
        assert_eq!(s.decision.likelihood, 0.01);
        assert!(s.decision.calibrate);
        let e = load("alert_direction: sideways\n", &[], CliOverrides::default())
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("c.yaml: key `alert_direction`"), "{e}");
        let e = load("", &[("ALERT_LIKELIHOOD", "0.7")], CliOverrides::default())
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("environment variable ALERT_LIKELIHOOD"),
            "{e}"
        );
        let e = load("alert_cooldown: -1\n", &[], CliOverrides::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("alert_cooldown"), "{e}");
        let s = load(
            "",
            &[("MIN_EFFECT_RELATIVE", "0.25")],
            CliOverrides::default(),
        )
        .unwrap();
        assert_eq!(s.decision.min_effect_relative, 0.25);
        for (text, key) in [
            ("min_effect_relative: -0.5\n", "min_effect_relative"),
            ("min_effect_peak_factor: 11\n", "min_effect_peak_factor"),
        ] {
            let e = load(text, &[], CliOverrides::default())
                .unwrap_err()
                .to_string();
            assert!(e.starts_with(&format!("c.yaml: key `{key}`")), "{e}");
        }
    }

    #[test]
    fn precedence_file_then_env_then_cli() {
        let text =
            "monitoring_interval: 10\nlog_level: debug\ninfluxdb:\n  url: http://file:8086\n";
        let s = load(text, &[], CliOverrides::default()).unwrap();
        assert_eq!(s.monitoring_interval, Duration::from_secs(10));
        let s = load(
            text,
            &[
                ("MONITORING_INTERVAL", "20"),
                ("INFLUXDB_URL", "http://env:8086"),
            ],
            CliOverrides::default(),
        )
        .unwrap();
        assert_eq!(s.monitoring_interval, Duration::from_secs(20));
        assert_eq!(s.influxdb.url, "http://env:8086");
        let mut cli = CliOverrides::default();
        cli.set("monitoring_interval", "--monitoring-interval", Some(5));
        let s = load(text, &[("MONITORING_INTERVAL", "20")], cli).unwrap();
        assert_eq!(s.monitoring_interval, Duration::from_secs(5));
        assert_eq!(s.log_level, "debug");
    }

    #[test]
    fn unknown_key_is_named_with_file() {
        let err = load("influxdb:\n  batchsize: 5\n", &[], CliOverrides::default())
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("c.yaml: key `influxdb.batchsize`"), "{err}");
        assert!(err.contains("unknown field"), "{err}");
    }

    #[test]
    fn wrong_type_is_named() {
        let err = load("monitoring_interval: soon\n", &[], CliOverrides::default())
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("c.yaml: key `monitoring_interval`"),
            "{err}"
        );
    }

    #[test]
    fn out_of_range_names_key_and_origin() {
        let err = load("interval_width: 1.5\n", &[], CliOverrides::default())
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "c.yaml: key `interval_width` = 1.5: must be strictly between 0 and 1"
        );
        let err = load(
            "",
            &[("MONITORING_INTERVAL", "-3")],
            CliOverrides::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.starts_with(
                "environment variable MONITORING_INTERVAL: key `monitoring_interval` = -3"
            ),
            "{err}"
        );
        let mut cli = CliOverrides::default();
        cli.set("threshold_multiplier", "--threshold-multiplier", Some(0.5));
        let err = load("", &[], cli).unwrap_err().to_string();
        assert!(err.starts_with("flag --threshold-multiplier"), "{err}");
    }

    #[test]
    fn syntax_error_names_file() {
        let err = load("influxdb: [\n", &[], CliOverrides::default())
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("c.yaml: invalid YAML"), "{err}");
    }

    #[test]
    fn token_from_env_is_never_printed() {
        let s = load(
            "",
            &[("INFLUXDB_TOKEN", "s3cr3t-t0ken")],
            CliOverrides::default(),
        )
        .unwrap();
        assert_eq!(s.influxdb.token.expose(), "s3cr3t-t0ken");
        let dbg = format!("{s:?}");
        assert!(!dbg.contains("s3cr3t"), "{dbg}");
    }

    #[test]
    fn numeric_looking_token_stays_a_string() {
        let s = load("", &[("INFLUXDB_TOKEN", "12345")], CliOverrides::default()).unwrap();
        assert_eq!(s.influxdb.token.expose(), "12345");
    }
}
