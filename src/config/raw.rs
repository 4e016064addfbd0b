//! The file's sections as written (before validation): field names are
//! the YAML keys, defaults are the embedded ones.

use std::path::PathBuf;

use serde::Deserialize;
use serde_yaml::Value;

use crate::{
    detect::Side,
    forecast::{
        optimizer::OptimizerKind, settings::Seasonality, FutureTrend, ModelFamily, ProphetSettings,
    },
    secret::Secret,
};

/// Default PromQL: CPU busy percent per instance from node exporter.
pub const DEFAULT_QUERY: &str =
    r#"100 * (1 - avg by (instance) (rate(node_cpu_seconds_total{mode="idle"}[1m])))"#;

/// A duration as written: seconds (`90`, `0.5`) or a number with a unit
/// suffix (`30s`, `5m`, `12h`, `1d`). Range-checked once, where the
/// settings are built.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Secs(pub(super) f64);

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
pub(super) fn parse_secs(t: &str) -> Option<f64> {
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
pub(super) struct RawInflux {
    pub(super) enabled: bool,
    pub(super) api: crate::sink::influx::Api,
    pub(super) url: String,
    pub(super) token: Secret,
    pub(super) org: String,
    pub(super) bucket: String,
    pub(super) batch_size: i64,
    pub(super) flush_interval: Secs,
    pub(super) timeout: Secs,
    pub(super) retry_attempts: i64,
    pub(super) retry_interval: Secs,
    pub(super) spool_max_mb: f64,
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
pub(super) struct RawConfig {
    pub(super) influxdb: RawInflux,
    pub(super) prometheus_url: String,
    pub(super) prometheus_timeout: Secs,
    pub(super) prometheus_retries: i64,
    pub(super) prometheus_query: String,
    pub(super) prometheus_history: Secs,
    pub(super) training_step: Secs,
    pub(super) min_history: Secs,
    pub(super) model_selector: String,
    pub(super) model_workers: i64,
    pub(super) simulation_after_failures: i64,
    pub(super) simulation_series: i64,
    pub(super) series_grace_period: Secs,
    pub(super) decision_state_interval: Secs,
    pub(super) shard_count: i64,
    pub(super) shard_index: serde_yaml::Value,
    pub(super) replication_factor: i64,
    pub(super) capacity_threshold: f64,
    pub(super) capacity_horizon: Secs,
    pub(super) api_listen: String,
    pub(super) api_token: Secret,
    pub(super) api_token_file: PathBuf,
    pub(super) alertmanager_url: String,
    pub(super) webhook_url: String,
    pub(super) dashboard_url: String,
    pub(super) retrain_interval: Secs,
    pub(super) threshold_multiplier: f64,
    pub(super) sustained_samples: i64,
    pub(super) min_effect: f64,
    pub(super) min_effect_relative: f64,
    pub(super) min_effect_peak_factor: f64,
    pub(super) alert_direction: Side,
    pub(super) band_calibration: bool,
    pub(super) alert_clear_after: Secs,
    pub(super) alert_cooldown: Secs,
    pub(super) rebaseline_after: Secs,
    pub(super) alert_likelihood: f64,
    pub(super) alert_likelihood_alone: f64,
    pub(super) alert_routine_factor: f64,
    pub(super) alert_overrides: Vec<RawOverride>,
    pub(super) interval_width: f64,
    pub(super) train_ratio: f64,
    pub(super) monitoring_interval: Secs,
    pub(super) log_level: String,
    pub(super) log_dir: PathBuf,
    pub(super) dataset: PathBuf,
    pub(super) model_path: PathBuf,
    pub(super) output_dir: PathBuf,
    pub(super) model: ModelFamily,
    pub(super) robust_training: bool,
    pub(super) prophet_daily_seasonality: Seasonality,
    pub(super) prophet_weekly_seasonality: Seasonality,
    pub(super) prophet_yearly_seasonality: Seasonality,
    pub(super) prophet_changepoint_prior_scale: f64,
    pub(super) prophet_seasonality_prior_scale: f64,
    pub(super) prophet_uncertainty_samples: i64,
    pub(super) prophet_optimizer: OptimizerKind,
    pub(super) prophet_future_trend: FutureTrend,
    pub(super) prophet_trend_uncertainty: bool,
    pub(super) seed: u64,
}

impl RawConfig {
    /// The top-level alerting keys.
    pub(super) fn decision(&self) -> RawDecision {
        RawDecision {
            threshold_multiplier: self.threshold_multiplier,
            sustained_samples: self.sustained_samples,
            min_effect: self.min_effect,
            min_effect_relative: self.min_effect_relative,
            min_effect_peak_factor: self.min_effect_peak_factor,
            alert_direction: self.alert_direction,
            band_calibration: self.band_calibration,
            alert_clear_after: self.alert_clear_after,
            alert_cooldown: self.alert_cooldown,
            rebaseline_after: self.rebaseline_after,
            alert_likelihood: self.alert_likelihood,
            alert_likelihood_alone: self.alert_likelihood_alone,
            alert_routine_factor: self.alert_routine_factor,
        }
    }
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
            decision_state_interval: Secs(300.0),
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
            // (README "Detection quality", examples/cross_validate/).
            threshold_multiplier: 3.0,
            sustained_samples: 1,
            min_effect: 3.0,
            min_effect_relative: 0.25,
            min_effect_peak_factor: 1.5,
            alert_direction: Side::Both,
            band_calibration: false,
            alert_clear_after: Secs(1800.0),
            alert_cooldown: Secs(86_400.0),
            rebaseline_after: Secs(0.0),
            alert_likelihood: 0.05,
            alert_likelihood_alone: 0.001,
            alert_routine_factor: 1.5,
            alert_overrides: Vec::new(),
            interval_width: 0.95,
            train_ratio: 0.8,
            monitoring_interval: Secs(30.0),
            log_level: "info".into(),
            log_dir: "logs".into(),
            dataset: crate::dataset::BUNDLED_DATASET.into(),
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
            prophet_trend_uncertainty: false,
            seed: 42,
        }
    }
}

impl RawConfig {
    pub(super) fn prophet(&self) -> ProphetSettings {
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
            trend_uncertainty: self.prophet_trend_uncertainty,
        }
    }
}

/// The alerting keys as written.
#[derive(Debug, Clone, Copy)]
pub(super) struct RawDecision {
    pub(super) threshold_multiplier: f64,
    pub(super) sustained_samples: i64,
    pub(super) min_effect: f64,
    pub(super) min_effect_relative: f64,
    pub(super) min_effect_peak_factor: f64,
    pub(super) alert_direction: Side,
    pub(super) band_calibration: bool,
    pub(super) alert_clear_after: Secs,
    pub(super) alert_cooldown: Secs,
    pub(super) rebaseline_after: Secs,
    pub(super) alert_likelihood: f64,
    pub(super) alert_likelihood_alone: f64,
    pub(super) alert_routine_factor: f64,
}

/// One entry of `alert_overrides`: a selector and the alerting keys it
/// changes (the others are the top level's).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawOverride {
    pub(super) selector: String,
    #[serde(default)]
    threshold_multiplier: Option<f64>,
    #[serde(default)]
    sustained_samples: Option<i64>,
    #[serde(default)]
    min_effect: Option<f64>,
    #[serde(default)]
    min_effect_relative: Option<f64>,
    #[serde(default)]
    min_effect_peak_factor: Option<f64>,
    #[serde(default)]
    alert_direction: Option<Side>,
    #[serde(default)]
    band_calibration: Option<bool>,
    #[serde(default)]
    alert_clear_after: Option<Secs>,
    #[serde(default)]
    alert_cooldown: Option<Secs>,
    #[serde(default)]
    rebaseline_after: Option<Secs>,
    #[serde(default)]
    alert_likelihood: Option<f64>,
    #[serde(default)]
    alert_likelihood_alone: Option<f64>,
    #[serde(default)]
    alert_routine_factor: Option<f64>,
}

impl RawOverride {
    /// `base` with this entry's keys in place of its own.
    pub(super) fn over(&self, base: RawDecision) -> RawDecision {
        RawDecision {
            threshold_multiplier: self
                .threshold_multiplier
                .unwrap_or(base.threshold_multiplier),
            sustained_samples: self.sustained_samples.unwrap_or(base.sustained_samples),
            min_effect: self.min_effect.unwrap_or(base.min_effect),
            min_effect_relative: self.min_effect_relative.unwrap_or(base.min_effect_relative),
            min_effect_peak_factor: self
                .min_effect_peak_factor
                .unwrap_or(base.min_effect_peak_factor),
            alert_direction: self.alert_direction.unwrap_or(base.alert_direction),
            band_calibration: self.band_calibration.unwrap_or(base.band_calibration),
            alert_clear_after: self.alert_clear_after.unwrap_or(base.alert_clear_after),
            alert_cooldown: self.alert_cooldown.unwrap_or(base.alert_cooldown),
            rebaseline_after: self.rebaseline_after.unwrap_or(base.rebaseline_after),
            alert_likelihood: self.alert_likelihood.unwrap_or(base.alert_likelihood),
            alert_likelihood_alone: self
                .alert_likelihood_alone
                .unwrap_or(base.alert_likelihood_alone),
            alert_routine_factor: self
                .alert_routine_factor
                .unwrap_or(base.alert_routine_factor),
        }
    }
}
