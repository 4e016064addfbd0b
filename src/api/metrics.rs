//! `/metrics` in the Prometheus text exposition format: the monitor's own
//! counters and, per series, the latest value, forecast, band and score.

use std::{collections::BTreeMap, fmt::Write as _, sync::atomic::Ordering};

use super::Snapshot;
use crate::sink::SinkStats;

/// Escapes a label value for the exposition format.
fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Renders the exposition text.
pub fn render_metrics(snap: &Snapshot, sink: &SinkStats) -> String {
    let r = &snap.report;
    let mut out = String::new();
    let mut metric = |name: &str, kind: &str, help: &str, samples: &[(String, f64)]| {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        for (labels, v) in samples {
            let _ = writeln!(out, "{name}{labels} {v}");
        }
    };
    let load = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed) as f64;
    // (name, type, help, value) of every unlabelled metric.
    let scalars = [
        (
            "cpu_anomaly_ticks_total",
            "counter",
            "Polls done.",
            r.ticks as f64,
        ),
        (
            "cpu_anomaly_samples_total",
            "counter",
            "Samples judged.",
            r.samples as f64,
        ),
        (
            "cpu_anomaly_alerts_total",
            "counter",
            "Samples judged while an alert was firing.",
            r.alerts as f64,
        ),
        (
            "cpu_anomaly_alert_onsets_total",
            "counter",
            "Alerts that fired.",
            r.alert_onsets as f64,
        ),
        (
            "cpu_anomaly_alert_resolutions_total",
            "counter",
            "Alerts that resolved.",
            r.alert_resolutions as f64,
        ),
        (
            "cpu_anomaly_samples_rejected_total",
            "counter",
            "Points from Prometheus dropped as implausible (timestamp outside 2000-2100, value beyond 1e6).",
            r.samples_rejected as f64,
        ),
        (
            "cpu_anomaly_points_written_total",
            "counter",
            "Points accepted by the sink's target.",
            load(&sink.points_written),
        ),
        (
            "cpu_anomaly_write_failures_total",
            "counter",
            "Writes still failing after their retries.",
            load(&sink.write_failures),
        ),
        (
            "cpu_anomaly_points_dead_lettered_total",
            "counter",
            "Points refused by InfluxDB and written to the dead-letter file.",
            load(&sink.points_dead_lettered),
        ),
        (
            "cpu_anomaly_points_dropped_total",
            "counter",
            "Points dropped from memory (sink queue full, or the points file unwritable past 64 MiB); those in the write-ahead log are written at the next start.",
            load(&sink.points_dropped),
        ),
        (
            "cpu_anomaly_points_recovered_total",
            "counter",
            "Points taken from the write-ahead log of an earlier run at start.",
            load(&sink.points_recovered),
        ),
        (
            "cpu_anomaly_spool_quarantined_total",
            "counter",
            "Spooled batches that could not be read, moved to spool/quarantine/.",
            load(&sink.batches_quarantined),
        ),
        (
            "cpu_anomaly_tags_altered_total",
            "counter",
            "Tag values written altered because line protocol cannot carry them (cut past 1024 bytes, control characters, a final backslash).",
            load(&sink.tags_altered),
        ),
        (
            "cpu_anomaly_write_duration_seconds",
            "gauge",
            "Duration of the last successful write.",
            load(&sink.last_write_micros) / 1e6,
        ),
        (
            "cpu_anomaly_spool_batches",
            "gauge",
            "Batches waiting in the on-disk spool.",
            load(&sink.spool_depth),
        ),
        (
            "cpu_anomaly_retrains_total",
            "counter",
            "Models (re)trained.",
            r.trainings as f64,
        ),
        (
            "cpu_anomaly_retrain_failures_total",
            "counter",
            "Failed trainings.",
            r.training_failures as f64,
        ),
        (
            "cpu_anomaly_retrain_seconds_total",
            "counter",
            "Time spent training.",
            r.training_seconds_total,
        ),
        (
            "cpu_anomaly_poll_duration_seconds",
            "gauge",
            "Wall time of the last poll.",
            r.last_tick_seconds,
        ),
        (
            "cpu_anomaly_series_owned",
            "gauge",
            "Series this replica judges (its shard of the query's series).",
            snap.series.len() as f64,
        ),
        (
            "cpu_anomaly_series_other_shards",
            "gauge",
            "Series of the last poll owned by other replicas (skipped here).",
            r.series_other_shards as f64,
        ),
    ];
    for (name, kind, help, v) in scalars {
        metric(name, kind, help, &[(String::new(), v)]);
    }
    let crossings: Vec<(String, f64)> = snap
        .series
        .iter()
        .filter_map(|(id, v)| {
            v.state.capacity.map(|w| {
                (
                    format!("{{series=\"{}\",host=\"{}\"}}", label(id), label(&v.host)),
                    w.crossing_in_seconds as f64,
                )
            })
        })
        .collect();
    metric(
        "cpu_anomaly_capacity_crossing_seconds",
        "gauge",
        "Seconds to the predicted crossing of capacity_threshold, for series with a capacity warning in force (absent otherwise).",
        &crossings,
    );
    metric(
        "cpu_anomaly_capacity_warnings_total",
        "counter",
        "Capacity warnings that started.",
        &[(String::new(), r.capacity_warnings as f64)],
    );
    metric(
        "cpu_anomaly_shard_info",
        "gauge",
        "This replica's shard (shard_count, shard_index, replication_factor).",
        &[(
            format!(
                "{{shard_index=\"{}\",shard_count=\"{}\",replication_factor=\"{}\"}}",
                r.shard_index,
                r.shard_count.max(1),
                r.replication_factor.max(1)
            ),
            1.0,
        )],
    );
    let by_sev: Vec<(String, f64)> = ["LOW", "MEDIUM", "HIGH", "CRITICAL"]
        .iter()
        .map(|s| {
            (
                format!("{{severity=\"{s}\"}}"),
                r.anomalies_by_severity.get(*s).copied().unwrap_or(0) as f64,
            )
        })
        .collect();
    metric(
        "cpu_anomaly_anomalies_total",
        "counter",
        "Flagged samples by severity.",
        &by_sev,
    );
    let src: Vec<(String, f64)> = ["prometheus", "simulation"]
        .iter()
        .map(|s| {
            (
                format!("{{source=\"{s}\"}}"),
                f64::from(u8::from(r.source == *s)),
            )
        })
        .collect();
    metric(
        "cpu_anomaly_source",
        "gauge",
        "1 for the source in use.",
        &src,
    );
    let mut gauges: BTreeMap<&str, Vec<(String, f64)>> = BTreeMap::new();
    for (id, s) in &snap.series {
        let Some(p) = s.latest() else { continue };
        let labels = format!("{{series=\"{}\",host=\"{}\"}}", label(id), label(&s.host));
        let mut put = |name: &'static str, v: Option<f64>| {
            if let Some(v) = v.filter(|v| v.is_finite()) {
                gauges.entry(name).or_default().push((labels.clone(), v));
            }
        };
        put("cpu_anomaly_actual", Some(p.actual));
        put("cpu_anomaly_yhat", p.yhat);
        put("cpu_anomaly_yhat_lower", p.yhat_lower);
        put("cpu_anomaly_yhat_upper", p.yhat_upper);
        put("cpu_anomaly_score", p.score);
        put(
            "cpu_anomaly_warming_up",
            Some(f64::from(u8::from(p.yhat.is_none()))),
        );
        put(
            "cpu_anomaly_short_history",
            Some(f64::from(u8::from(s.state.short_history))),
        );
        put(
            "cpu_anomaly_alert_firing",
            Some(f64::from(u8::from(s.alert_firing()))),
        );
    }
    for (name, help) in [
        (
            "cpu_anomaly_actual",
            "Latest CPU value of the series, percent.",
        ),
        ("cpu_anomaly_yhat", "Forecast for the latest sample."),
        ("cpu_anomaly_yhat_lower", "Lower edge of the model's band."),
        ("cpu_anomaly_yhat_upper", "Upper edge of the model's band."),
        (
            "cpu_anomaly_score",
            "Anomaly score of the latest sample (1 = scaled band edge).",
        ),
        (
            "cpu_anomaly_warming_up",
            "1 while the series has no model yet.",
        ),
        (
            "cpu_anomaly_alert_firing",
            "1 while an alert is firing for the series (from its onset to its resolution).",
        ),
        (
            "cpu_anomaly_short_history",
            "1 while the series is judged by a short-history model (level and noise band).",
        ),
    ] {
        metric(
            name,
            "gauge",
            help,
            gauges.get(name).map_or(&[][..], |v| v.as_slice()),
        );
    }
    out
}
