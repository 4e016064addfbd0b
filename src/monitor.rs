//! `--mode monitor`: poll Prometheus, judge each sample against its series'
//! band, and hand the judged samples to the outputs.
//!
//! The pipeline, one stage per module:
//! - [`failover`]: which source serves a poll (Prometheus, or the simulation
//!   while it is unreachable);
//! - [`table`]: every series with its model, band and alert state, and a
//!   due-queue of what each needs next (train, refit, new horizon, drop);
//! - [`fetcher`]: history for many series at once, on an async runtime;
//! - [`workers`]: a pool of threads fitting models and drawing horizons;
//! - [`horizon`]: what a series keeps between fits (parameters, a band on
//!   the training grid);
//! - [`outputs`]: one judged record per sample, to the sink, the logs, the
//!   HTTP API and the live line.
//!
//! The poll loop (this file) never waits for a fetch or a fit: answers come
//! back on a channel and are applied between polls. Work per poll is O(1)
//! per series that reported plus the tasks that fell due.

pub mod failover;
pub mod fetcher;
pub mod horizon;
pub mod outputs;
pub mod table;
pub mod workers;

use std::{
    collections::BTreeMap,
    path::PathBuf,
    sync::{
        atomic::{AtomicBool, Ordering},
        mpsc, Arc,
    },
    time::{Duration, Instant},
};

use thiserror::Error;

use self::{
    failover::{Decision, Event, Failover, Outcome, SourceKind},
    fetcher::{FetchConfig, Fetcher},
    outputs::{ApiOutput, Judged, LiveLine, LogFiles, Output, PollEnd, SinkOutput},
    table::{Counts, NewSeries, Origin, Slot, Table, Task, Timing},
    workers::{Done, Job, Pool, PresetKind, WorkerConfig},
};
pub use crate::status::{Report, SeriesReport};
use crate::{
    api,
    config::Settings,
    detect::{AlertPolicy, Detector, Severity},
    forecast::ForecastError,
    sink::{self, influx, Batching, Destination, SinkHandle},
    source::{
        prometheus::{self, Client, Labels, PromError},
        simulation::{Simulator, SIM_HOST},
    },
    status::write_report,
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
    /// The model at `model_path` cannot be used.
    #[error("model_path {path}: {source}\nrun `cpu-anomaly --mode train` to make it, or fix `model_path` / `model_selector`")]
    Model {
        /// The file.
        path: PathBuf,
        /// Why.
        source: ForecastError,
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

/// History points fetched per series at most: `prometheus_history` is cut
/// to this many training steps (34 days at 5 minutes).
pub const MAX_HISTORY_POINTS: i64 = 10_000;
/// Above this many series the report file is written at most every
/// [`REPORT_EVERY`] (it lists every series).
const REPORT_EVERY_POLL_UP_TO: usize = 1000;
/// See [`REPORT_EVERY_POLL_UP_TO`].
const REPORT_EVERY: Duration = Duration::from_secs(30);
/// Per-series log lines per poll before they are summarised.
const LOG_LINES_PER_POLL: usize = 10;

/// How the model file of `--mode train` is used.
struct Presets {
    /// By the simulated series.
    simulation: bool,
    /// By Prometheus series matching `model_selector`.
    selected: bool,
    /// When the model is older than `retrain_interval` (Unix seconds): a
    /// selected series is refitted from Prometheus then (at once if past).
    stale_at: i64,
}

/// Checks `model_path` if it exists (it must when `model_selector` is set)
/// and says how it will be used; the workers load it.
fn check_presets(settings: &Settings, step: i64) -> Result<Presets, MonitorError> {
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
    let m =
        workers::load_preset(path, step, workers::PresetKind::Selected, now).map_err(|source| {
            MonitorError::Model {
                path: path.clone(),
                source,
            }
        })?;
    let end = m.compact.history_end;
    let stale_at = end + settings.retrain_interval.as_secs() as i64;
    tracing::info!(
        "model {} ({}, {} points, history ending {}) used for the simulated series{}",
        path.display(),
        m.compact.kind,
        m.compact.points,
        crate::dataset::format_ts(end),
        if selector.is_empty() {
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
        }
    );
    Ok(Presets {
        simulation: true,
        selected: !selector.is_empty(),
        stale_at,
    })
}

/// Per-poll log lines that would flood a large fleet's log: the first few
/// are printed, the rest counted and summarised.
#[derive(Default)]
struct Notes {
    ready: usize,
    not_yet: usize,
    failed: usize,
    dropped: usize,
    lines: usize,
    first_error: Option<String>,
}

impl Notes {
    fn line(&mut self) -> bool {
        self.lines += 1;
        self.lines <= LOG_LINES_PER_POLL
    }

    fn summarise(&mut self) {
        if self.lines > LOG_LINES_PER_POLL {
            tracing::info!(
                "this poll: {} models ready, {} series waiting for history, {} failed{}, {} dropped",
                self.ready,
                self.not_yet,
                self.failed,
                self.first_error
                    .as_ref()
                    .map(|e| format!(" (first: {e})"))
                    .unwrap_or_default(),
                self.dropped
            );
        }
        *self = Notes::default();
    }
}

/// Everything the poll loop owns.
struct Monitor<'a> {
    settings: &'a Settings,
    table: Table,
    pool: Pool,
    fetcher: Fetcher,
    presets: Presets,
    report: Report,
    notes: Notes,
    started: Instant,
    /// Per-series model files (Prophet), if there is a place for them.
    model_dir: Option<PathBuf>,
    /// First fetches to send this poll (saved model missing or stale).
    refetch: Vec<(Slot, u32)>,
}

impl Monitor<'_> {
    /// Table clock: ms since start.
    fn now_ms(&self) -> i64 {
        self.started.elapsed().as_millis() as i64
    }

    fn apply(&mut self, d: Done) {
        let now = self.now_ms();
        let small = self.table.counts().series <= 20;
        match d {
            Done::Fitted {
                slot,
                generation,
                model,
                horizon,
                seconds,
                refit_in,
            } => {
                let Some(e) = self
                    .table
                    .get(slot)
                    .filter(|_| self.table.generation(slot) == generation)
                else {
                    return;
                };
                self.report.trainings += 1;
                self.report.training_seconds_total += seconds;
                self.notes.ready += 1;
                if small || self.notes.line() {
                    tracing::info!(
                        "model for {} ready: {} from {} ({} points){}",
                        e.id,
                        model.compact.kind,
                        model.trained_on,
                        model.compact.points,
                        if model.compact.is_short_history() {
                            ", short history: judged against its level until two days are in"
                        } else {
                            ""
                        }
                    );
                }
                self.table
                    .on_model(slot, generation, model, horizon, now, refit_in);
            }
            Done::NotYet {
                slot,
                generation,
                have,
            } => {
                let min = self.settings.monitor.min_history.as_secs();
                let id = self.table.get(slot).map(|e| e.id.clone());
                if self.table.on_not_yet(slot, generation, have, now) {
                    self.notes.not_yet += 1;
                    if let Some(id) = id {
                        if small || self.notes.line() {
                            tracing::info!(
                                "{id}: {have}s of history in Prometheus, min_history is {min}s: warming up until then"
                            );
                        }
                    }
                }
            }
            Done::Failed {
                slot,
                generation,
                error,
            } => {
                let Some(e) = self
                    .table
                    .get(slot)
                    .filter(|_| self.table.generation(slot) == generation)
                else {
                    return;
                };
                let (id, kept) = (e.id.clone(), e.model.is_some());
                self.report.training_failures += 1;
                self.notes.failed += 1;
                let wait = self.table.on_failed(slot, generation, now);
                if small || self.notes.line() {
                    if kept {
                        tracing::error!(
                            "retraining {id} failed, keeping the old model: {error} (next try in {}s)",
                            wait / 1000
                        );
                    } else {
                        tracing::error!(
                            "cannot train a model for {id} (still warming up): {error} (next try in {}s)",
                            wait / 1000
                        );
                    }
                }
                self.notes.first_error.get_or_insert(error);
            }
            Done::Horizon {
                slot,
                generation,
                horizon,
            } => self.table.on_horizon(slot, generation, horizon, now),
            Done::HorizonFailed {
                slot,
                generation,
                error,
            } => {
                tracing::warn!("cannot draw a new band for series slot {slot}: {error}");
                self.table.on_horizon_failed(slot, generation, now);
            }
            Done::NeedFetch { slot, generation } => self.refetch.push((slot, generation)),
            Done::Fetched { slot, generation } => self.table.on_fetched(slot, generation),
        }
    }

    /// Sends the due tasks to the workers and the fetcher.
    fn dispatch(&mut self, due: Vec<table::Due>) {
        let mut firsts = Vec::new();
        let mut refits = Vec::new();
        for (slot, generation) in std::mem::take(&mut self.refetch) {
            if let Some(e) = self
                .table
                .get(slot)
                .filter(|_| self.table.generation(slot) == generation)
            {
                firsts.push((slot, generation, e.id.clone(), e.labels.clone()));
            }
        }
        let now_s = chrono::Utc::now().timestamp();
        for d in due {
            let Some(e) = self.table.get(d.slot) else {
                continue;
            };
            let (slot, generation) = (d.slot, d.generation);
            match (d.task, e.origin) {
                (Task::Horizon, _) => {
                    if let Some(model) = e.model.clone() {
                        self.pool.submit(Job::Horizon {
                            slot,
                            generation,
                            model,
                        });
                    }
                }
                (Task::Train { first }, Origin::Simulation) => {
                    self.table.on_fetched(slot, generation);
                    self.pool.submit(if self.presets.simulation {
                        Job::Preset {
                            slot,
                            generation,
                            kind: PresetKind::Simulation,
                            refit_in: None,
                        }
                    } else {
                        Job::Dataset {
                            slot,
                            generation,
                            first,
                        }
                    });
                }
                (Task::Train { first: true }, Origin::Prometheus) => {
                    if self.presets.selected
                        && self.settings.monitor.model_selector.matches(&e.labels)
                    {
                        tracing::info!(
                            "{} matches model_selector: judged with {} (refitted from its own history {})",
                            e.id,
                            self.settings.model_path.display(),
                            if self.presets.stale_at <= now_s {
                                "now, in the background".to_string()
                            } else {
                                format!(
                                    "at {}",
                                    crate::dataset::format_ts(self.presets.stale_at)
                                )
                            }
                        );
                        let refit_in = 1000 * (self.presets.stale_at - now_s).max(0);
                        self.table.on_fetched(slot, generation);
                        self.pool.submit(Job::Preset {
                            slot,
                            generation,
                            kind: PresetKind::Selected,
                            refit_in: Some(refit_in),
                        });
                        continue;
                    }
                    let saved = self
                        .model_dir
                        .as_ref()
                        .map(|dir| workers::model_file(dir, &e.id))
                        .filter(|p| p.exists());
                    match saved {
                        Some(path) => {
                            self.table.on_fetched(slot, generation);
                            self.pool.submit(Job::Saved {
                                slot,
                                generation,
                                path,
                            });
                        }
                        None => firsts.push((slot, generation, e.id.clone(), e.labels.clone())),
                    }
                }
                (Task::Train { first: false }, Origin::Prometheus) => {
                    refits.push((slot, generation, e.id.clone(), e.labels.clone()))
                }
            }
        }
        let fleet = self.table.counts().series;
        for (first, series) in [(true, firsts), (false, refits)] {
            if !series.is_empty() {
                self.fetcher.submit(fetcher::Request {
                    first,
                    series,
                    fleet,
                });
            }
        }
    }

    /// Every series for the report file.
    fn series_report(&self) -> BTreeMap<String, SeriesReport> {
        let now = chrono::Utc::now().timestamp();
        self.table
            .iter()
            .map(|e| {
                let m = e.model.as_ref();
                (
                    e.id.to_string(),
                    SeriesReport {
                        host: e.host.to_string(),
                        warming_up: e.horizon.is_none(),
                        short_history: m.is_some_and(|m| m.compact.is_short_history()),
                        model: m.map(|m| m.compact.kind.to_string()).unwrap_or_default(),
                        trained_on: m.map(|m| m.trained_on.to_string()).unwrap_or_default(),
                        model_age_seconds: m.map(|m| (now - m.trained_at).max(0) as f64),
                        samples: e.samples,
                        anomalies: e.anomalies,
                    },
                )
            })
            .collect()
    }
}

/// One sample of a poll: (series id, labels, timestamp, value).
type Sample = (String, Labels, i64, f64);

/// Runs the monitor until a signal (or `max_ticks`).
pub fn run(settings: &Settings, opts: &MonitorOptions) -> Result<Report, MonitorError> {
    let stop = stop_flag();
    let dir = &settings.log_dir;
    std::fs::create_dir_all(dir).map_err(|source| MonitorError::Io {
        path: dir.clone(),
        source,
    })?;
    let mut logs =
        LogFiles::open(dir).map_err(|(path, source)| MonitorError::Io { path, source })?;
    let step = settings.prometheus.training_step.as_secs().max(1) as i64;
    let presets = check_presets(settings, step)?;
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
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("io")
        .enable_all()
        .build()
        .map_err(|source| MonitorError::Io {
            path: "tokio runtime".into(),
            source,
        })?;
    let model_dir = settings.model_path.parent().map(|p| p.join("series"));
    let (done_tx, done_rx) = mpsc::channel::<Done>();
    let span = (settings.prometheus.history.as_secs() as i64).min(MAX_HISTORY_POINTS * step);
    let pool = Pool::start(
        settings.monitor.model_workers,
        WorkerConfig {
            family: settings.model,
            prophet: settings.prophet.clone(),
            robust: settings.robust_training,
            seed: settings.seed,
            min_history: settings.monitor.min_history.as_secs() as i64,
            step,
            retrain: settings.retrain_interval.as_secs() as i64,
            dataset: settings.dataset.clone(),
            model_dir: model_dir.clone(),
            model_path: settings.model_path.clone(),
        },
        done_tx.clone(),
    );
    let client = Client::new(&settings.prometheus);
    let probe = client.with_retries(0);
    let fetcher = Fetcher::start(
        rt.handle(),
        client.clone(),
        FetchConfig {
            query: settings.prometheus.query.clone(),
            span,
            step,
        },
        pool.clone(),
        done_tx,
    );
    let ms = |d: Duration| d.as_millis().min(i64::MAX as u128) as i64;
    let mut m = Monitor {
        settings,
        table: Table::new(Timing {
            retrain: ms(settings.retrain_interval),
            grace: ms(settings.monitor.series_grace_period),
            min_history: ms(settings.monitor.min_history),
            step,
        }),
        pool,
        fetcher,
        presets,
        report: Report {
            started_at: chrono::Utc::now().to_rfc3339(),
            sink: sink.describe.clone(),
            ..Report::default()
        },
        notes: Notes::default(),
        started: Instant::now(),
        model_dir,
        refetch: Vec::new(),
    };
    let mut sim = Simulator::new(settings.seed);
    let sim_hosts: Vec<String> = match settings.simulation_series {
        1 => vec![SIM_HOST.to_string()],
        n => (1..=n).map(|i| format!("{SIM_HOST}-{i}")).collect(),
    };
    let detector = Detector::new(settings.threshold_multiplier);
    let mut failover = Failover::new(settings.monitor.simulation_after_failures);
    let mut sink_out = SinkOutput::new(&sink);
    let mut api_out = ApiOutput::new(api_state);
    let mut live = LiveLine::default();
    let report_path = dir.join("system_report.json");
    let mut report_written: Option<Instant> = None;
    tracing::info!(
        "monitoring {} every {}s (query: {}; history: {}s at {}s steps; a series is judged once it has {}s of its own)",
        client.url(),
        settings.monitoring_interval.as_secs_f64(),
        settings.prometheus.query,
        span,
        step,
        settings.monitor.min_history.as_secs()
    );
    loop {
        let tick_start = Instant::now();
        let now = chrono::Utc::now().timestamp();
        // 1. Poll.
        let asked = if failover.probing() { &probe } else { &client };
        let polled = rt.block_on(asked.query(&settings.prometheus.query));
        let outcome = match &polled {
            Ok(rows) => Outcome::Answered(rows.len()),
            Err(e) if e.is_unreachable() => Outcome::Unreachable(e.to_string()),
            Err(e) => Outcome::Refused(e.to_string()),
        };
        let (decision, event) = failover.on_poll(outcome);
        match event {
            Some(Event::ToSimulation(reason)) => tracing::warn!(
                "SIMULATION: {reason}; switching to the simulated CPU source \
                 (points tagged source=simulation) until Prometheus answers"
            ),
            Some(Event::BackToPrometheus) => tracing::warn!(
                "Prometheus at {} answers again: back to real data",
                client.url()
            ),
            Some(Event::Failed { n, of, reason }) => {
                tracing::warn!("poll failed ({n}/{of}): {reason}")
            }
            Some(Event::Refused(message)) => tracing::error!("{message}"),
            Some(Event::Empty) => {
                tracing::warn!("the query returned no series (yet); nothing to monitor this poll")
            }
            None => {}
        }
        let (source, samples): (SourceKind, Vec<Sample>) = match decision {
            Decision::Real => (
                SourceKind::Prometheus,
                polled
                    .unwrap_or_default()
                    .into_iter()
                    .map(|r| {
                        (
                            prometheus::series_id(&r.labels),
                            r.labels,
                            r.timestamp,
                            r.value,
                        )
                    })
                    .collect(),
            ),
            Decision::Simulate => {
                m.report.simulation_ticks += 1;
                (
                    SourceKind::Simulation,
                    sim_hosts
                        .iter()
                        .map(|h| (h.clone(), Labels::new(), now, sim.sample(now).0))
                        .collect(),
                )
            }
            Decision::Skip => (failover.source(), Vec::new()),
            Decision::Fatal(_) => {
                sink.close();
                m.pool.close();
                rt.shutdown_background();
                return Err(MonitorError::BadQuery(
                    polled.expect_err("a refused poll is an error"),
                ));
            }
        };
        m.report.source_switches = failover.switches();

        // 2. Answers from the fetcher and the workers.
        while let Ok(d) = done_rx.try_recv() {
            m.apply(d);
        }

        // 3. Judge every sample.
        let now_ms = m.now_ms();
        let origin = match source {
            SourceKind::Prometheus => Origin::Prometheus,
            SourceKind::Simulation => Origin::Simulation,
        };
        for (id, labels, ts, value) in samples {
            let (slot, new) = m.table.observe(&id, now_ms, || NewSeries {
                host: Arc::from(match origin {
                    Origin::Prometheus => prometheus::host_of(&labels),
                    Origin::Simulation => id.clone(),
                }),
                labels,
                origin,
                policy: AlertPolicy::new(settings.sustained_samples),
            });
            if new && m.table.counts().series <= 20 {
                tracing::info!("new series {id}: warming up until its model is ready");
            }
            let Some(e) = m.table.get_mut(slot) else {
                continue;
            };
            let band = e.horizon.as_ref().and_then(|h| h.band_at(ts));
            let detection = band.map(|b| detector.check(value, b.yhat, b.lower, b.upper));
            let alert = detection.as_ref().is_some_and(|d| e.policy.update(d));
            let model = e.model.as_ref();
            let judged = Judged {
                series: &e.id,
                host: &e.host,
                source,
                timestamp: ts,
                actual: value,
                band,
                detection,
                alert,
                short_history: band.is_some()
                    && model.is_some_and(|m| m.compact.is_short_history()),
                trained_at: model.map(|m| m.trained_at),
                threshold: settings.threshold_multiplier,
            };
            sink_out.record(&judged);
            logs.record(&judged);
            api_out.record(&judged);
            if opts.live {
                live.record(&judged);
            }
            m.report.samples += 1;
            match &detection {
                None => m.report.warming_samples += 1,
                Some(d) if d.is_anomaly => {
                    *m.report
                        .anomalies_by_severity
                        .entry(d.severity.as_str().to_string())
                        .or_default() += 1;
                    m.report.alerts += u64::from(alert);
                    if (d.severity == Severity::Critical || alert) && m.notes.line() {
                        let b = band.expect("judged with a band");
                        tracing::warn!(
                            "anomaly on {}: {:.1}% vs forecast {:.1} [{:.1}, {:.1}], {} score {:.2}",
                            e.host,
                            value,
                            b.yhat,
                            b.lower,
                            b.upper,
                            d.severity.as_str(),
                            d.score
                        );
                    }
                    e.anomalies += 1;
                }
                Some(_) => {}
            }
        }

        // 4. What fell due: models, horizons, drops.
        let (due, dropped) = m.table.take_due(now_ms);
        m.dispatch(due);
        let grace = settings.monitor.series_grace_period.as_secs();
        for id in &dropped {
            m.report.series_dropped += 1;
            m.notes.dropped += 1;
            if m.notes.line() {
                tracing::warn!("series {id} has not been seen for {grace}s: dropped");
            }
        }
        m.notes.summarise();

        // 5. Report and outputs.
        let counts: Counts = m.table.counts();
        let took = tick_start.elapsed().as_secs_f64();
        let r = &mut m.report;
        r.last_tick_seconds = took;
        r.max_tick_seconds = r.max_tick_seconds.max(took);
        r.ticks += 1;
        r.source = source.as_str().to_string();
        r.updated_at = chrono::Utc::now().to_rfc3339();
        r.points_written = sink.stats.points_written.load(Ordering::Relaxed);
        r.spool_depth = sink.stats.spool_depth.load(Ordering::Relaxed);
        r.points_dead_lettered = sink.stats.points_dead_lettered.load(Ordering::Relaxed);
        r.history_bytes = client.range_bytes();
        r.series_count = counts.series;
        r.warming_up = counts.warming;
        r.fetching = counts.fetching;
        r.fitting = counts.fitting;
        r.short_history = counts.short;
        let end = PollEnd {
            now,
            source,
            counts,
            report: &m.report,
            dropped: &dropped,
            prometheus_up: source == SourceKind::Prometheus,
        };
        sink_out.end_poll(&end);
        logs.end_poll(&end);
        api_out.end_poll(&end);
        if opts.live {
            live.end_poll(&end);
        }
        let due_report = counts.series <= REPORT_EVERY_POLL_UP_TO
            || report_written.map_or(true, |t| t.elapsed() >= REPORT_EVERY);
        if due_report {
            write_report(&report_path, &m.report, &m.series_report());
            report_written = Some(Instant::now());
        }

        // 6. Wait for the next poll (or a signal), applying answers.
        if opts.max_ticks.is_some_and(|n| m.report.ticks >= n) {
            break;
        }
        let next = tick_start + settings.monitoring_interval;
        while Instant::now() < next && !stop.load(Ordering::SeqCst) {
            match done_rx.recv_timeout(Duration::from_millis(50).min(next - Instant::now())) {
                Ok(d) => m.apply(d),
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    std::thread::sleep(Duration::from_millis(50).min(next - Instant::now()))
                }
            }
        }
        if stop.load(Ordering::SeqCst) {
            tracing::info!("signal received: flushing and stopping");
            break;
        }
    }
    m.pool.close();
    rt.shutdown_background();
    let stats = sink.stats.clone();
    drop(sink_out);
    sink.close();
    let r = &mut m.report;
    r.points_written = stats.points_written.load(Ordering::Relaxed);
    r.spool_depth = stats.spool_depth.load(Ordering::Relaxed);
    r.points_dead_lettered = stats.points_dead_lettered.load(Ordering::Relaxed);
    r.updated_at = chrono::Utc::now().to_rfc3339();
    write_report(&report_path, &m.report, &m.series_report());
    logs.flush();
    Ok(m.report)
}
