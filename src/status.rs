//! What a monitor run did: the counters published to the HTTP API after
//! every poll, and `system_report.json` (the counters and every series). A
//! leaf module: the monitor fills it, the API and the report file read it.

use std::{collections::BTreeMap, path::Path};

use serde::Serialize;

/// What a run did (also written to `system_report.json`).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    /// Start time (RFC 3339).
    pub started_at: String,
    /// Last update (RFC 3339).
    pub updated_at: String,
    /// Polls done.
    pub ticks: u64,
    /// Wall time of the last poll (query, detection, queueing, logs), seconds.
    pub last_tick_seconds: f64,
    /// Longest poll so far, seconds.
    pub max_tick_seconds: f64,
    /// Samples judged (warming-up samples included).
    pub samples: u64,
    /// Samples written while their series was warming up.
    pub warming_samples: u64,
    /// Flagged samples by severity.
    pub anomalies_by_severity: BTreeMap<String, u64>,
    /// Samples judged while an alert was firing.
    pub alerts: u64,
    /// Alerts that fired (onsets).
    pub alert_onsets: u64,
    /// Alerts that resolved.
    pub alert_resolutions: u64,
    /// Capacity warnings that started.
    pub capacity_warnings: u64,
    /// Capacity warnings that cleared.
    pub capacity_cleared: u64,
    /// Current source.
    pub source: String,
    /// Polls served by the simulation.
    pub simulation_ticks: u64,
    /// Source switches.
    pub source_switches: u64,
    /// Models (re)trained.
    pub trainings: u64,
    /// Failed trainings.
    pub training_failures: u64,
    /// Time spent training, seconds.
    pub training_seconds_total: f64,
    /// Series dropped after vanishing.
    pub series_dropped: u64,
    /// Bytes of history (range-query replies) read from Prometheus.
    pub history_bytes: u64,
    /// Points from Prometheus dropped as implausible (timestamp outside
    /// 2000–2100, value beyond ±10⁶).
    pub samples_rejected: u64,
    /// This replica (0 when not sharded).
    pub shard_index: u32,
    /// Replicas in the deployment (`shard_count`).
    pub shard_count: u32,
    /// Replicas judging each series.
    pub replication_factor: u32,
    /// Series in the last poll that other replicas own (skipped here).
    pub series_other_shards: usize,
    /// Series known now (owned by this replica).
    pub series_count: usize,
    /// Of which without a model (warming up).
    pub warming_up: usize,
    /// Of which fetching history.
    pub fetching: usize,
    /// Of which waiting for or in a fit.
    pub fitting: usize,
    /// Of which judged by a short-history model.
    pub short_history: usize,
    /// Sink.
    pub sink: String,
    /// Points accepted by the sink's target.
    pub points_written: u64,
    /// Batches waiting in the spool.
    pub spool_depth: u64,
    /// Points dead-lettered.
    pub points_dead_lettered: u64,
    /// Why the last failed write failed (empty: none).
    pub last_write_error: String,
}

/// One series in the report.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SeriesReport {
    /// Host tag.
    pub host: String,
    /// No band yet: nothing is flagged.
    pub warming_up: bool,
    /// Judged by a short-history model (a level and a noise band).
    pub short_history: bool,
    /// `prophet`, `mstl` or `level` (empty while warming up).
    pub model: String,
    /// What the model was trained on.
    pub trained_on: String,
    /// Seconds since the model was (re)trained.
    pub model_age_seconds: Option<f64>,
    /// Samples seen.
    pub samples: u64,
    /// Samples flagged.
    pub anomalies: u64,
    /// The selector of the `alert_overrides` entry it alerts with (`None`:
    /// the top-level settings).
    pub alert_override: Option<String>,
}

/// The report file: the run's counters and every series.
#[derive(Serialize)]
struct ReportFile<'a> {
    #[serde(flatten)]
    report: &'a Report,
    series: &'a BTreeMap<String, SeriesReport>,
}

/// Writes the report and the series atomically (temporary file, then
/// rename).
pub fn write_report(path: &Path, report: &Report, series: &BTreeMap<String, SeriesReport>) {
    let tmp = path.with_extension("json.tmp");
    let res = serde_json::to_vec_pretty(&ReportFile { report, series })
        .map_err(std::io::Error::other)
        .and_then(|b| std::fs::write(&tmp, b))
        .and_then(|_| std::fs::rename(&tmp, path));
    if let Err(e) = res {
        let _ = std::fs::remove_file(&tmp);
        static ERRORS: crate::logfile::throttle::Throttle =
            crate::logfile::throttle::Throttle::new(std::time::Duration::from_secs(60));
        if let Some(held) = ERRORS.allow() {
            tracing::error!(
                "cannot write {}: {e}{}",
                path.display(),
                crate::logfile::throttle::held_back(held)
            );
        }
    }
}
