//! `--mode monitor`: poll Prometheus, look up each series' band in its
//! precomputed forecast horizon, detect, and hand the points to the sink.
//!
//! Threads: the poll loop (here), the model thread ([`models`]: training,
//! retraining, horizons; the loop never waits for it) and the sink thread
//! ([`crate::sink`]: batching, retries, spool). When Prometheus is
//! unreachable at start, or for `simulation_after_failures` polls in a row,
//! a simulated source takes over (points tagged `source=simulation`); each
//! poll still asks Prometheus first and switches back when it answers.

pub mod models;

use std::{
    collections::HashMap,
    fs::{File, OpenOptions},
    io::{BufWriter, Write},
    path::{Path, PathBuf},
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use serde::Serialize;
use thiserror::Error;

use self::models::{HistorySource, Horizon, ModelConfig, Reply, Request};
use crate::status::write_report;
pub use crate::status::{Report, SeriesReport};
use crate::{
    api,
    config::Settings,
    detect::{AlertPolicy, Detector, Severity},
    sink::{self, influx, schema, Batching, Destination, SinkHandle},
    source::{
        prometheus::{self, Client, Labels, PromError},
        simulation::{Simulator, SIM_HOST},
    },
};

/// Errors that stop the monitor.
#[derive(Debug, Error)]
pub enum MonitorError {
    /// The query is wrong (Prometheus refused it on the first poll).
    #[error("{0}\nfix `prometheus_query` (config, PROMETHEUS_QUERY)")]
    BadQuery(PromError),
    /// A sink could not start.
    #[error(transparent)]
    Sink(#[from] sink::SinkError),
    /// A log file could not be written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// Options of one run.
#[derive(Debug, Clone, Default)]
pub struct MonitorOptions {
    /// Stop after this many polls (default: run until SIGINT/SIGTERM).
    pub max_ticks: Option<u64>,
    /// Print the live line per poll on stdout.
    pub live: bool,
}

/// Where samples come from right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceKind {
    /// Prometheus answered the last poll.
    Prometheus,
    /// The simulated source.
    Simulation,
}

impl SourceKind {
    fn as_str(self) -> &'static str {
        match self {
            SourceKind::Prometheus => "prometheus",
            SourceKind::Simulation => "simulation",
        }
    }
}

/// Per-series state of the poll loop.
struct SeriesState {
    host: String,
    history: HistorySource,
    horizon: Option<Arc<Horizon>>,
    policy: AlertPolicy,
    last_seen: Instant,
    /// A train or horizon request is in flight.
    pending: bool,
    trained_at: Option<Instant>,
    /// After a failed first training, not before this.
    next_try: Option<Instant>,
    /// "Not enough history" was logged.
    said_not_yet: bool,
    trained_on: String,
    samples: u64,
    anomalies: u64,
}

#[derive(Serialize)]
struct MetricLine<'a> {
    timestamp: String,
    series: &'a str,
    host: &'a str,
    source: &'a str,
    cpu_usage: f64,
    yhat: Option<f64>,
    yhat_lower: Option<f64>,
    yhat_upper: Option<f64>,
    warming_up: bool,
}

#[derive(Serialize)]
struct AnomalyLine<'a> {
    timestamp: String,
    series: &'a str,
    host: &'a str,
    source: &'a str,
    cpu_usage: f64,
    yhat: f64,
    lower_threshold: f64,
    upper_threshold: f64,
    score: f64,
    confidence: f64,
    severity: &'a str,
    direction: &'a str,
    alert: bool,
}

struct Logs {
    metrics: BufWriter<File>,
    anomalies: BufWriter<File>,
    report: PathBuf,
}

fn open_append(path: &Path) -> Result<File, MonitorError> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|source| MonitorError::Io {
            path: path.to_path_buf(),
            source,
        })
}

/// Installs SIGINT/SIGTERM handling once; the flag turns true on a signal.
pub fn stop_flag() -> Arc<AtomicBool> {
    static FLAG: std::sync::OnceLock<Arc<AtomicBool>> = std::sync::OnceLock::new();
    FLAG.get_or_init(|| {
        let f = Arc::new(AtomicBool::new(false));
        let g = f.clone();
        if let Err(e) = ctrlc::set_handler(move || {
            if g.swap(true, Ordering::SeqCst) {
                // Second signal: the user insists.
                std::process::exit(130);
            }
        }) {
            tracing::warn!("cannot install the signal handler: {e}");
        }
        f
    })
    .clone()
}

/// Wait before retrying a failed first training.
const RETRY_FIRST_TRAINING: Duration = Duration::from_secs(60);

/// Horizon length in polls: 6 hours, but 60 to 720 points (720 = 6 h at
/// the default 30 s; more points would only cost memory in the band
/// sampler, 1000 paths × points).
fn horizon_len(step: i64) -> usize {
    ((6 * 3600) / step.max(1)).clamp(60, 720) as usize
}

fn ts_text(ts: i64) -> String {
    crate::dataset::format_ts(ts)
}

/// The sink for these settings.
pub fn sink_for(settings: &Settings) -> Result<SinkHandle, MonitorError> {
    let i = &settings.influxdb;
    let dest = if i.enabled {
        Destination::Influx {
            target: influx::Target {
                api: i.api,
                url: i.url.clone(),
                org: i.org.clone(),
                bucket: i.bucket.clone(),
                token: i.token.clone(),
                timeout: i.timeout,
                retries: i.retry_attempts,
                backoff: i.retry_interval,
            },
            spool_dir: settings.log_dir.join("spool"),
            spool_max_bytes: i.spool_max_bytes,
            dead_letter: settings.log_dir.join("dead_letter.lp"),
        }
    } else {
        Destination::File(settings.log_dir.join("points.lp"))
    };
    Ok(sink::spawn(
        dest,
        Batching {
            batch_size: i.batch_size,
            flush_interval: i.flush_interval,
        },
    )?)
}

/// Runs the monitor until a signal (or `max_ticks`).
pub fn run(settings: &Settings, opts: &MonitorOptions) -> Result<Report, MonitorError> {
    let stop = stop_flag();
    let dir = &settings.log_dir;
    std::fs::create_dir_all(dir).map_err(|source| MonitorError::Io {
        path: dir.clone(),
        source,
    })?;
    let mut logs = Logs {
        metrics: BufWriter::new(open_append(&dir.join("metrics.jsonl"))?),
        anomalies: BufWriter::new(open_append(&dir.join("anomalies.jsonl"))?),
        report: dir.join("system_report.json"),
    };
    let sink = sink_for(settings)?;
    tracing::info!("writing points to {}", sink.describe);
    let api_state = Arc::new(api::ApiState::new(
        sink.stats.clone(),
        Some(settings.api_token.clone()),
    ));
    if let Some(addr) = settings.api_listen {
        match api::serve(addr, api_state.clone()) {
            Ok(a) => tracing::info!("HTTP API on http://{a} (/health, /metrics, /api/...)"),
            Err(e) => tracing::warn!(
                "HTTP API off: cannot listen on {addr}: {e} (set api_listen, or \"\" to disable)"
            ),
        }
    }
    let step = settings.monitoring_interval.as_secs().max(1) as i64;
    let model_dir = settings
        .model_path
        .parent()
        .map(|p| p.join("series"))
        .unwrap_or_else(|| PathBuf::from("models/series"));
    let (req, replies) = models::spawn(ModelConfig {
        settings: settings.clone(),
        step,
        len: horizon_len(step),
        model_dir,
    });
    let client = Client::new(&settings.prometheus);
    let probe = client.clone().with_retries(0);
    let mut sim = Simulator::new(settings.seed);
    let sim_hosts: Vec<String> = match settings.simulation_series {
        1 => vec![SIM_HOST.to_string()],
        n => (1..=n).map(|i| format!("{SIM_HOST}-{i}")).collect(),
    };
    let detector = Detector::new(settings.threshold_multiplier);
    let mut series: HashMap<String, SeriesState> = HashMap::new();
    let mut report = Report {
        started_at: chrono::Utc::now().to_rfc3339(),
        sink: sink.describe.clone(),
        ..Report::default()
    };
    let mut source = SourceKind::Prometheus;
    let mut failures = 0u32;
    let mut first = true;
    tracing::info!(
        "monitoring {} every {}s (query: {})",
        client.url(),
        step,
        settings.prometheus.query
    );
    loop {
        let tick_start = Instant::now();
        let now = chrono::Utc::now().timestamp();
        // 1. Poll.
        // While simulating, one quick attempt per poll is enough to notice
        // that Prometheus is back.
        let polled = if source == SourceKind::Simulation {
            probe.query(&settings.prometheus.query)
        } else {
            client.query(&settings.prometheus.query)
        };
        let samples: Vec<(String, Labels, i64, f64)> = match polled {
            Ok(rows) => {
                if source == SourceKind::Simulation {
                    tracing::warn!(
                        "Prometheus at {} answers again: back to real data",
                        client.url()
                    );
                    report.source_switches += 1;
                }
                source = SourceKind::Prometheus;
                failures = 0;
                if rows.is_empty() {
                    tracing::warn!(
                        "the query returned no series (yet); nothing to monitor this poll"
                    );
                }
                rows.into_iter()
                    .map(|r| {
                        (
                            prometheus::series_id(&r.labels),
                            r.labels,
                            r.timestamp,
                            r.value,
                        )
                    })
                    .collect()
            }
            Err(e) if e.is_unreachable() => {
                failures += 1;
                if source == SourceKind::Prometheus
                    && (first || failures >= settings.prometheus.simulation_after_failures)
                {
                    tracing::warn!(
                        "SIMULATION: {e}; switching to the simulated CPU source \
                         (points tagged source=simulation) until Prometheus answers"
                    );
                    source = SourceKind::Simulation;
                    report.source_switches += u64::from(!first);
                } else if source == SourceKind::Prometheus {
                    tracing::warn!(
                        "poll failed ({failures}/{}): {e}",
                        settings.prometheus.simulation_after_failures
                    );
                }
                Vec::new()
            }
            Err(e) => {
                if first {
                    sink.close();
                    return Err(MonitorError::BadQuery(e));
                }
                tracing::error!("{e}");
                Vec::new()
            }
        };
        first = false;
        let samples = if source == SourceKind::Simulation {
            report.simulation_ticks += 1;
            sim_hosts
                .iter()
                .map(|h| (h.clone(), Labels::new(), now, sim.sample(now).0))
                .collect()
        } else {
            samples
        };

        // 2. Models' answers.
        while let Ok(r) = replies.try_recv() {
            handle_reply(r, &mut series, &mut report, settings.prometheus.min_history);
        }

        // 3. Judge every sample.
        let series_count_hint = series.len();
        let mut flagged: Vec<String> = Vec::new();
        let mut api_points = Vec::new();
        let mut seen = Vec::new();
        for (id, labels, ts, value) in samples {
            seen.push(id.clone());
            let st = series.entry(id.clone()).or_insert_with(|| {
                let (host, history) = if source == SourceKind::Simulation {
                    (id.clone(), HistorySource::Dataset)
                } else {
                    (
                        prometheus::host_of(&labels),
                        HistorySource::Prometheus(labels),
                    )
                };
                if series_count_hint < 20 {
                    tracing::info!("new series {id}: warming up until its model is ready");
                }
                SeriesState {
                    host,
                    history,
                    horizon: None,
                    policy: AlertPolicy::new(settings.sustained_samples),
                    last_seen: Instant::now(),
                    pending: false,
                    trained_at: None,
                    next_try: None,
                    said_not_yet: false,
                    trained_on: String::new(),
                    samples: 0,
                    anomalies: 0,
                }
            });
            st.last_seen = Instant::now();
            st.samples += 1;
            report.samples += 1;
            let band = st.horizon.as_ref().and_then(|h| h.band_at(ts));
            let detection = band.map(|(y, lo, up)| detector.check(value, y, lo, up));
            let alert = detection.as_ref().is_some_and(|d| st.policy.update(d));
            let (yhat, lower, upper) = band.unwrap_or((f64::NAN, f64::NAN, f64::NAN));
            let src = source.as_str();
            sink.send(schema::points(&schema::Sample {
                host: &st.host,
                source: src,
                timestamp: ts,
                actual: value,
                yhat,
                lower,
                upper,
                detection: detection.as_ref(),
                alert,
                threshold: settings.threshold_multiplier,
            }));
            let line = MetricLine {
                timestamp: ts_text(ts),
                series: &id,
                host: &st.host,
                source: src,
                cpu_usage: value,
                yhat: band.map(|b| b.0),
                yhat_lower: band.map(|b| b.1),
                yhat_upper: band.map(|b| b.2),
                warming_up: band.is_none(),
            };
            write_json_line(&mut logs.metrics, &line);
            api_points.push((
                id.clone(),
                st.host.clone(),
                api::SeriesPoint {
                    timestamp: ts,
                    actual: value,
                    yhat: band.map(|b| b.0),
                    yhat_lower: band.map(|b| b.1),
                    yhat_upper: band.map(|b| b.2),
                    score: detection.as_ref().map(|d| d.score),
                    is_anomaly: detection.as_ref().is_some_and(|d| d.is_anomaly),
                    severity: detection.as_ref().map(|d| d.severity.as_str()),
                },
                alert,
            ));
            match &detection {
                None => report.warming_samples += 1,
                Some(d) if d.is_anomaly => {
                    st.anomalies += 1;
                    *report
                        .anomalies_by_severity
                        .entry(d.severity.as_str().to_string())
                        .or_default() += 1;
                    report.alerts += u64::from(alert);
                    flagged.push(format!(
                        "{} {:.1}% {} (score {:.2}){}",
                        st.host,
                        value,
                        d.severity.as_str(),
                        d.score,
                        if alert { " ALERT" } else { "" }
                    ));
                    write_json_line(
                        &mut logs.anomalies,
                        &AnomalyLine {
                            timestamp: ts_text(ts),
                            series: &id,
                            host: &st.host,
                            source: src,
                            cpu_usage: value,
                            yhat,
                            lower_threshold: d.lower_threshold,
                            upper_threshold: d.upper_threshold,
                            score: d.score,
                            confidence: d.confidence,
                            severity: d.severity.as_str(),
                            direction: d.direction.as_str(),
                            alert,
                        },
                    );
                    if d.severity == Severity::Critical || alert {
                        tracing::warn!(
                            "anomaly on {}: {:.1}% vs forecast {:.1} [{:.1}, {:.1}], {} score {:.2}",
                            st.host,
                            value,
                            yhat,
                            lower,
                            upper,
                            d.severity.as_str(),
                            d.score
                        );
                    }
                }
                Some(_) => {}
            }
        }

        // 4. Ask for models and horizons; retrain on schedule; drop the vanished.
        let grace = settings.prometheus.series_grace_period;
        let mut vanished = Vec::new();
        for (id, st) in series.iter_mut() {
            if !seen.contains(id) && st.last_seen.elapsed() > grace {
                vanished.push(id.clone());
                continue;
            }
            if st.pending {
                continue;
            }
            let due_retrain = st
                .trained_at
                .is_some_and(|t| t.elapsed() >= settings.retrain_interval);
            let may_try = st.next_try.map_or(true, |t| Instant::now() >= t);
            if (st.horizon.is_none() && may_try) || due_retrain {
                st.pending = true;
                let _ = req.send(Request::Train {
                    id: id.clone(),
                    history: st.history.clone(),
                    from: now,
                    reuse_saved: st.trained_at.is_none(),
                });
            } else if let Some(h) = &st.horizon {
                // Refresh when half of it is used up.
                if now >= h.start + (h.end() - h.start) / 2 {
                    st.pending = true;
                    let _ = req.send(Request::Horizon {
                        id: id.clone(),
                        from: now,
                    });
                }
            }
        }
        let dropped = vanished.clone();
        for id in vanished {
            tracing::warn!(
                "series {id} has not been seen for {}s: dropped",
                grace.as_secs()
            );
            series.remove(&id);
            report.series_dropped += 1;
            let _ = req.send(Request::Drop(id));
        }

        // 5. Report and live line.
        let _ = logs.metrics.flush();
        let _ = logs.anomalies.flush();
        let took = tick_start.elapsed().as_secs_f64();
        report.last_tick_seconds = took;
        report.max_tick_seconds = report.max_tick_seconds.max(took);
        report.ticks += 1;
        report.source = source.as_str().to_string();
        report.updated_at = chrono::Utc::now().to_rfc3339();
        report.points_written = sink.stats.points_written.load(Ordering::Relaxed);
        report.spool_depth = sink.stats.spool_depth.load(Ordering::Relaxed);
        report.points_dead_lettered = sink.stats.points_dead_lettered.load(Ordering::Relaxed);
        report.series = series
            .iter()
            .map(|(id, st)| {
                (
                    id.clone(),
                    SeriesReport {
                        host: st.host.clone(),
                        warming_up: st.horizon.is_none(),
                        trained_on: st.trained_on.clone(),
                        model_age_seconds: st.trained_at.map(|t| t.elapsed().as_secs_f64()),
                        samples: st.samples,
                        anomalies: st.anomalies,
                    },
                )
            })
            .collect();
        write_report(&logs.report, &report);
        api_state.publish(
            api_points,
            &dropped,
            source == SourceKind::Prometheus,
            &report,
        );
        if opts.live {
            let warming = series.values().filter(|s| s.horizon.is_none()).count();
            println!(
                "{} | {} | {} series ({} warming up) | {} | written {} spooled {}",
                ts_text(now),
                if source == SourceKind::Simulation {
                    "SIMULATION"
                } else {
                    "prometheus"
                },
                series.len(),
                warming,
                if flagged.is_empty() {
                    "no anomalies".to_string()
                } else {
                    format!("{} anomalies: {}", flagged.len(), flagged.join("; "))
                },
                report.points_written,
                report.spool_depth
            );
        }

        // 6. Wait for the next poll (or a signal).
        if opts.max_ticks.is_some_and(|m| report.ticks >= m) {
            break;
        }
        let next = tick_start + settings.monitoring_interval;
        while Instant::now() < next && !stop.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(50).min(next - Instant::now()));
            while let Ok(r) = replies.try_recv() {
                handle_reply(r, &mut series, &mut report, settings.prometheus.min_history);
            }
        }
        if stop.load(Ordering::SeqCst) {
            tracing::info!("signal received: flushing and stopping");
            break;
        }
    }
    drop(req);
    let stats = sink.stats.clone();
    sink.close();
    report.points_written = stats.points_written.load(Ordering::Relaxed);
    report.spool_depth = stats.spool_depth.load(Ordering::Relaxed);
    report.points_dead_lettered = stats.points_dead_lettered.load(Ordering::Relaxed);
    report.updated_at = chrono::Utc::now().to_rfc3339();
    write_report(&logs.report, &report);
    let _ = logs.metrics.flush();
    let _ = logs.anomalies.flush();
    Ok(report)
}

fn handle_reply(
    r: Reply,
    series: &mut HashMap<String, SeriesState>,
    report: &mut Report,
    min_history: Duration,
) {
    let retry = (min_history / 4).clamp(Duration::from_secs(1), RETRY_FIRST_TRAINING);
    match r {
        Reply::Trained {
            id,
            trained_on,
            points,
            seconds,
            horizon,
        } => {
            report.trainings += 1;
            report.training_seconds_total += seconds;
            if let Some(st) = series.get_mut(&id) {
                tracing::info!(
                    "model for {id} ready: {points} points from {trained_on} in {seconds:.2}s"
                );
                st.horizon = Some(horizon);
                st.pending = false;
                st.trained_at = Some(Instant::now());
                st.trained_on = trained_on;
            }
        }
        Reply::NotYet { id, have } => {
            if let Some(st) = series.get_mut(&id) {
                st.pending = false;
                st.next_try = Some(Instant::now() + retry);
                if !st.said_not_yet {
                    st.said_not_yet = true;
                    tracing::info!(
                        "{id}: {have}s of history in Prometheus, min_history is {}s: warming up until then",
                        min_history.as_secs()
                    );
                }
            }
        }
        Reply::Horizon { id, horizon } => {
            if let Some(st) = series.get_mut(&id) {
                st.horizon = Some(horizon);
                st.pending = false;
            }
        }
        Reply::Failed {
            id,
            error,
            kept_old,
        } => {
            report.training_failures += 1;
            if kept_old {
                tracing::error!("retraining {id} failed, keeping the old model: {error}");
            } else {
                tracing::error!("cannot train a model for {id} (still warming up): {error}");
            }
            if let Some(st) = series.get_mut(&id) {
                st.pending = false;
                if kept_old {
                    // Next attempt at the next retrain time.
                    st.trained_at = Some(Instant::now());
                } else {
                    st.next_try = Some(Instant::now() + RETRY_FIRST_TRAINING);
                }
            }
        }
    }
}

fn write_json_line(f: &mut impl Write, v: &impl Serialize) {
    if let Ok(mut s) = serde_json::to_string(v) {
        s.push('\n');
        if let Err(e) = f.write_all(s.as_bytes()) {
            tracing::error!("cannot append to a log file: {e}");
        }
    }
}
