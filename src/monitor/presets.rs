//! The model file of `--mode train` in the monitor: which series it judges
//! (the simulated ones, and Prometheus series matching `model_selector`) and
//! when a selected series is refitted from its own history.

use super::{
    workers::{load_preset, PresetKind},
    MonitorError,
};
use crate::config::Settings;

/// How the model file is used.
#[derive(Debug, Clone, Copy)]
pub struct Presets {
    /// By the simulated series.
    pub simulation: bool,
    /// By Prometheus series matching `model_selector`.
    pub selected: bool,
    /// When the model is older than `retrain_interval` (Unix seconds): a
    /// selected series is refitted from Prometheus then (at once if past).
    pub stale_at: i64,
}

impl Presets {
    /// Checks `model_path` if it exists (it must when `model_selector` is
    /// set) and says how it will be used; the workers load it.
    pub fn check(settings: &Settings, step: i64) -> Result<Presets, MonitorError> {
        let path = &settings.model_path;
        let selector = &settings.monitor.model_selector;
        if !path.exists() && selector.is_empty() {
            tracing::info!(
                "no trained model at {} (--mode train makes one): the simulated series trains on {}",
                path.display(),
                settings.dataset.display()
            );
            return Ok(Presets {
                simulation: false,
                selected: false,
                stale_at: 0,
            });
        }
        let now = chrono::Utc::now().timestamp();
        let m = load_preset(path, step, PresetKind::Selected, now).map_err(|source| {
            MonitorError::Model {
                path: path.clone(),
                source,
            }
        })?;
        let end = m.compact.history_end;
        let stale_at = end + settings.retrain_interval.as_secs() as i64;
        let selected = if selector.is_empty() {
            String::new()
        } else {
            format!(
                " and Prometheus series matching {selector}{}",
                if now >= stale_at {
                    " (older than retrain_interval: each is refitted from Prometheus in the background)"
                } else {
                    ""
                }
            )
        };
        tracing::info!(
            "model {} ({}, {} points, history ending {}) used for the simulated series{selected}",
            path.display(),
            m.compact.kind,
            m.compact.points,
            crate::dataset::format_ts(end),
        );
        Ok(Presets {
            simulation: true,
            selected: !selector.is_empty(),
            stale_at,
        })
    }

    /// Milliseconds until a selected series is refitted from its history.
    pub fn refit_in(&self, now: i64) -> i64 {
        1000 * (self.stale_at - now).max(0)
    }
}
