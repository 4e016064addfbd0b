//! Merging the layers: environment variables and flags as YAML scalars
//! of the right kind, set into the file's tree by dotted key.

use serde_yaml::{Mapping, Value};

use super::error::ConfigError;

/// The type a key has, so env/CLI text is parsed into the right YAML scalar.
#[derive(Clone, Copy)]
pub(super) enum Kind {
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
    ("DECISION_STATE_INTERVAL", "decision_state_interval"),
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
    ("ALERT_ROUTINE_FACTOR", "alert_routine_factor"),
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
    ("PROPHET_TREND_UNCERTAINTY", "prophet_trend_uncertainty"),
    ("SEED", "seed"),
];

pub(super) fn kind_of(key: &str) -> Kind {
    match key {
        "influxdb.enabled"
        | "band_calibration"
        | "robust_training"
        | "prophet_trend_uncertainty"
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

pub(super) fn scalar(kind: Kind, text: &str) -> Value {
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
pub(super) fn set_path(
    root: &mut Value,
    key: &str,
    v: Value,
    file_origin: &str,
) -> Result<(), ConfigError> {
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
