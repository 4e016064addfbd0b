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

use serde_yaml::{Mapping, Value};

use crate::{
    detect::capacity::CapacitySettings,
    notify::NotifySettings,
    secret::Secret,
    shard::{IndexSpec, Shard},
};
use crate::{
    detect::DecisionSettings,
    forecast::{ModelFamily, ProphetSettings, Trainer},
    source::{prometheus::PrometheusSettings, selector::Selector},
};

mod decision;
mod error;
mod layers;
mod raw;

pub use decision::AlertGroup;
pub use error::ConfigError;
pub use layers::ENV_VARS;
use layers::{kind_of, scalar, set_path};
pub use raw::DEFAULT_QUERY;
use raw::{RawConfig, Secs};

/// The file read when `--config` is not given.
pub const DEFAULT_CONFIG_PATH: &str = "config.yaml";

/// Longest duration any key accepts, seconds (366 days): far beyond any
/// sensible value, and safely inside what timers and clocks can add.
pub const MAX_DURATION_SECS: f64 = 366.0 * 86_400.0;

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
    /// How often the series' decision states are written while running
    /// (`None`: only at a clean stop), so a crash loses at most this much.
    pub decision_state_interval: Option<Duration>,
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
    /// `alert_overrides`: groups of series with settings of their own
    /// (monitor only; the first match wins, see [`Settings::decision_for`]).
    pub alert_groups: Vec<AlertGroup>,
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

impl Settings {
    /// The alert settings of a series with `labels`: those of the first
    /// `alert_overrides` entry whose selector matches, else the top level's.
    pub fn decision_for(&self, labels: &crate::source::prometheus::Labels) -> DecisionSettings {
        self.decision_of(self.alert_group_of(labels))
    }

    /// The alert settings of `alert_overrides` entry `group` (`None`: the
    /// top level's).
    pub fn decision_of(&self, group: Option<usize>) -> DecisionSettings {
        group.map_or(self.decision, |i| self.alert_groups[i].decision)
    }

    /// The index of the first `alert_overrides` entry whose selector
    /// matches `labels` (`None`: the top-level settings).
    pub fn alert_group_of(&self, labels: &crate::source::prometheus::Labels) -> Option<usize> {
        self.alert_groups
            .iter()
            .position(|g| g.selector.matches(labels))
    }

    /// Every distinct alert setting in use, the top level's first.
    pub fn decisions_in_use(&self) -> Vec<DecisionSettings> {
        let mut out = vec![self.decision];
        for g in &self.alert_groups {
            if !out.contains(&g.decision) {
                out.push(g.decision);
            }
        }
        out
    }

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
        let (decision, alert_groups) = decision::alert_settings(
            raw.decision(),
            &raw.alert_overrides,
            &|key: String, value, expected| ConfigError::OutOfRange {
                origin: origin_of(&key),
                key,
                value,
                expected,
            },
            &|key: String, message| ConfigError::Key {
                origin: origin_of(&key),
                key,
                message,
            },
        )?;
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
        let decision_state_interval = match raw.decision_state_interval.0 {
            0.0 => None,
            v if v.is_finite() && v > 0.0 && v <= MAX_DURATION_SECS => {
                Some(Duration::from_secs_f64(v))
            }
            v => {
                return Err(range(
                    "decision_state_interval",
                    v.to_string(),
                    "0 (at a clean stop only) or a duration of at most 366 days (seconds, or 30s, 5m, 12h, 1d)",
                ))
            }
        };
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
                decision_state_interval,
                model_selector,
                model_workers,
                shard,
                capacity,
            },
            threshold_multiplier: decision.multiplier,
            sustained_samples: decision.sustained,
            decision,
            alert_groups,
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
mod tests;
