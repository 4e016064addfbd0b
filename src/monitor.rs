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
//!   HTTP API and the live line; `fanout`: the sink and alert router the
//!   settings ask for, and the fan-out to every output.
//!
//! The poll loop (this file) never waits for a fetch or a fit: answers come
//! back on a channel and are applied between polls. Work per poll is O(1)
//! per series that reported plus the tasks that fell due.

pub mod decisions;
pub mod failover;
mod fanout;
pub mod fetcher;
pub mod horizon;
pub mod outputs;
pub mod presets;
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
    fanout::{notifier, sink_for, Outputs},
    fetcher::{FetchConfig, Fetcher},
    outputs::{ApiOutput, Judged, LiveLine, LogFiles, PollEnd, SinkOutput},
    presets::Presets,
    table::{NewSeries, Origin, Slot, Table, Task, Timing},
    workers::{Done, Job, Pool, PresetKind, WorkerConfig},
};
pub use crate::status::{Report, SeriesReport};
use crate::{
    api,
    config::Settings,
    detect::{
        capacity::{CapacityVerdict, Change},
        Decider, Severity,
    },
    forecast::ForecastError,
    sink::{self, SinkHandle},
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
    /// The InfluxDB 2 target can never be written to (no such bucket or
    /// organisation, token refused).
    #[error(transparent)]
    Influx(#[from] sink::influx2::CheckError),
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
/// Up to this many series every model and new series is logged.
const LOG_EVERY_SERIES_UP_TO: usize = 20;

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

/// One sample of a poll: (series id, labels, timestamp, value).
type Sample = (String, Labels, i64, f64);

/// The monitor: its stages and the run's counters.
struct Monitor<'a> {
    settings: &'a Settings,
    rt: tokio::runtime::Runtime,
    client: Client,
    probe: Client,
    failover: Failover,
    simulator: Simulator,
    /// Timestamp of the last simulated poll (at start: the second this run
    /// started). Simulated samples are stamped later, so neither two polls
    /// nor a restart within the same second overwrite earlier points.
    last_sim_ts: i64,
    sim_hosts: Vec<String>,
    table: Table,
    pool: Pool,
    fetcher: Fetcher,
    done: mpsc::Receiver<Done>,
    presets: Presets,
    report: Report,
    report_path: PathBuf,
    report_written: Option<Instant>,
    notes: Notes,
    started: Instant,
    /// Per-series model files (Prophet), if there is a place for them.
    model_dir: Option<PathBuf>,
    /// First fetches to send this poll (saved model missing or stale).
    refetch: Vec<(Slot, u32)>,
    /// The series' decision states kept across a restart (none without a
    /// directory for them).
    decisions: Option<decisions::Keeper>,
}

impl<'a> Monitor<'a> {
    /// Starts the runtime, the model workers and the history fetcher.
    fn start(settings: &'a Settings, sink: &SinkHandle) -> Result<Monitor<'a>, MonitorError> {
        let step = settings.prometheus.training_step.as_secs().max(1) as i64;
        let presets = Presets::check(settings, step)?;
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
        let shard = &settings.monitor.shard;
        let decisions = settings.model_path.parent().map(|p| {
            decisions::Keeper::open(
                decisions::path_for(
                    p,
                    shard.is_sharded().then(|| (shard.index(), shard.count())),
                ),
                &settings.decision,
                settings.monitor.decision_state_interval,
            )
        });
        let (done_tx, done) = mpsc::channel::<Done>();
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
        let span = (settings.prometheus.history.as_secs() as i64).min(MAX_HISTORY_POINTS * step);
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
        tracing::info!(
            "monitoring {} every {}s (query: {}; history: {span}s at {step}s steps; a series is judged once it has {}s of its own)",
            client.url(),
            settings.monitoring_interval.as_secs_f64(),
            settings.prometheus.query,
            settings.monitor.min_history.as_secs()
        );
        Ok(Monitor {
            settings,
            rt,
            probe: client.with_retries(0),
            client,
            failover: Failover::new(settings.monitor.simulation_after_failures),
            simulator: Simulator::new(settings.seed),
            last_sim_ts: chrono::Utc::now().timestamp(),
            sim_hosts: match settings.simulation_series {
                1 => vec![SIM_HOST.to_string()],
                n => (1..=n).map(|i| format!("{SIM_HOST}-{i}")).collect(),
            },
            table: Table::new(Timing {
                retrain: ms(settings.retrain_interval),
                grace: ms(settings.monitor.series_grace_period),
                min_history: ms(settings.monitor.min_history),
                step,
            }),
            pool,
            fetcher,
            done,
            presets,
            report: Report {
                shard_index: settings.monitor.shard.index(),
                shard_count: settings.monitor.shard.count(),
                replication_factor: settings.monitor.shard.replication(),
                started_at: chrono::Utc::now().to_rfc3339(),
                sink: sink.describe.clone(),
                ..Report::default()
            },
            report_path: settings.log_dir.join("system_report.json"),
            report_written: None,
            notes: Notes::default(),
            started: Instant::now(),
            model_dir,
            refetch: Vec::new(),
            decisions,
        })
    }

    /// Table clock: ms since start.
    fn now_ms(&self) -> i64 {
        self.started.elapsed().as_millis() as i64
    }

    /// The live entry in `slot`, if it is still generation `generation`.
    fn live(&self, slot: Slot, generation: u32) -> Option<&table::Entry> {
        self.table
            .get(slot)
            .filter(|_| self.table.generation(slot) == generation)
    }

    /// Asks the source for this poll's samples.
    fn poll(&mut self, now: i64) -> Result<(SourceKind, Vec<Sample>), MonitorError> {
        let query = &self.settings.prometheus.query;
        let asked = if self.failover.probing() {
            &self.probe
        } else {
            &self.client
        };
        // Replicas evaluate the query at the same instants (multiples of
        // the interval), so the replicas of a series write identical points.
        let at = self
            .settings
            .monitor
            .shard
            .is_sharded()
            .then(|| aligned(now, self.settings.monitoring_interval));
        let polled = self.rt.block_on(asked.query_at(query, at));
        let outcome = match &polled {
            Ok(rows) => Outcome::Answered(rows.len()),
            Err(e) if e.is_unreachable() => Outcome::Unreachable(e.to_string()),
            Err(e) => Outcome::Refused(e.to_string()),
        };
        let (decision, event) = self.failover.on_poll(outcome);
        match event {
            Some(Event::ToSimulation(reason)) => tracing::warn!(
                "SIMULATION: {reason}; switching to the simulated CPU source \
                 (points tagged source=simulation) until Prometheus answers"
            ),
            Some(Event::BackToPrometheus) => tracing::warn!(
                "Prometheus at {} answers again: back to real data",
                self.client.url()
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
        self.report.source_switches = self.failover.switches();
        Ok(match decision {
            Decision::Real => (
                SourceKind::Prometheus,
                polled
                    .unwrap_or_default()
                    .into_iter()
                    .map(|r| {
                        let id = prometheus::series_id(&r.labels);
                        (id, r.labels, r.timestamp, r.value)
                    })
                    .collect(),
            ),
            Decision::Simulate => {
                self.report.simulation_ticks += 1;
                // Never two simulated polls in one second, and none in the
                // second this run started (a run killed in it may have
                // stamped it): wait for the next second rather than stamp
                // the future.
                let mut ts = now;
                if ts <= self.last_sim_ts {
                    let wall = chrono::Utc::now();
                    let wait_ms = (self.last_sim_ts + 1 - wall.timestamp()) * 1000
                        - i64::from(wall.timestamp_subsec_millis());
                    std::thread::sleep(Duration::from_millis(wait_ms.max(0) as u64));
                    ts = self.last_sim_ts + 1;
                }
                self.last_sim_ts = ts;
                let sim = &mut self.simulator;
                let samples = self
                    .sim_hosts
                    .iter()
                    .map(|h| (h.clone(), Labels::new(), ts, sim.sample(ts).0))
                    .collect();
                (SourceKind::Simulation, samples)
            }
            Decision::Skip => (self.failover.source(), Vec::new()),
            Decision::Fatal(_) => {
                return Err(MonitorError::BadQuery(
                    polled.expect_err("a refused poll is an error"),
                ))
            }
        })
    }

    /// Judges every sample against its series' band.
    fn judge(&mut self, source: SourceKind, samples: Vec<Sample>, out: &mut Outputs) {
        let now_ms = self.now_ms();
        let origin = match source {
            SourceKind::Prometheus => Origin::Prometheus,
            SourceKind::Simulation => Origin::Simulation,
        };
        let decision = self.settings.decision;
        let interval_width = self.settings.prophet.interval_width;
        let threshold = self.settings.threshold_multiplier;
        let shard = self.settings.monitor.shard;
        let mut others = 0usize;
        let decisions = &mut self.decisions;
        for (id, labels, ts, value) in samples {
            if !shard.owns(&id) {
                others += 1;
                continue;
            }
            let (slot, new) = self.table.observe(&id, now_ms, || NewSeries {
                host: Arc::from(match origin {
                    Origin::Prometheus => prometheus::host_of(&labels),
                    Origin::Simulation => id.clone(),
                }),
                labels,
                origin,
                decider: decisions
                    .as_mut()
                    .and_then(|k| k.claim(&id))
                    .unwrap_or_else(|| Decider::new(decision)),
            });
            if new && self.table.counts().series <= LOG_EVERY_SERIES_UP_TO {
                tracing::info!("new series {id}: warming up until its model is ready");
            }
            let Some(e) = self.table.get_mut(slot) else {
                continue;
            };
            let (band, verdict) = match e.horizon.as_deref() {
                Some(h) => judge_sample(&mut e.decider, h, ts, value, interval_width),
                None => (None, None),
            };
            let detection = verdict.map(|v| v.detection);
            let alert = verdict.is_some_and(|v| v.alert);
            let capacity = match (band, e.horizon.as_deref()) {
                (Some(b), Some(h)) => e.capacity.update(
                    &self.settings.monitor.capacity,
                    self.settings.monitor.capacity.threshold,
                    ts,
                    value,
                    b.yhat,
                    |t| h.band_at(t).map(|b| b.yhat),
                ),
                _ => CapacityVerdict::default(),
            };
            let model = e.model.as_ref();
            out.record(&Judged {
                series: &e.id,
                host: &e.host,
                source,
                timestamp: ts,
                actual: value,
                band,
                detection,
                alert,
                onset: verdict.is_some_and(|v| v.onset),
                resolved: verdict.is_some_and(|v| v.resolved),
                short_history: band.is_some()
                    && model.is_some_and(|m| m.compact.is_short_history()),
                trained_at: model.map(|m| m.trained_at),
                threshold,
                capacity,
            });
            let r = &mut self.report;
            r.samples += 1;
            r.alert_onsets += u64::from(verdict.is_some_and(|v| v.onset));
            r.alert_resolutions += u64::from(verdict.is_some_and(|v| v.resolved));
            match capacity.change {
                Change::Onset => {
                    r.capacity_warnings += 1;
                    if let (Some(c), true) = (capacity.warning, self.notes.line()) {
                        tracing::warn!(
                            "capacity warning for {}: {value:.1}% now, predicted to reach {:.0}% in {}",
                            e.host,
                            c.threshold,
                            crate::detect::capacity::human_duration(c.in_seconds)
                        );
                    }
                }
                Change::Cleared => r.capacity_cleared += 1,
                Change::None => {}
            }
            let (Some(d), Some(b)) = (detection, band) else {
                r.warming_samples += 1;
                continue;
            };
            if !d.is_anomaly {
                continue;
            }
            e.anomalies += 1;
            *r.anomalies_by_severity
                .entry(d.severity.as_str().to_string())
                .or_default() += 1;
            r.alerts += u64::from(alert);
            if (d.severity == Severity::Critical || alert) && self.notes.line() {
                tracing::warn!(
                    "anomaly on {}: {value:.1}% vs forecast {:.1} [{:.1}, {:.1}], {} score {:.2}",
                    e.host,
                    b.yhat,
                    b.lower,
                    b.upper,
                    d.severity.as_str(),
                    d.score
                );
            }
        }
        if others > 0 || shard.is_sharded() {
            self.report.series_other_shards = others;
        }
    }

    /// Applies the answers that arrived.
    fn drain(&mut self) {
        while let Ok(d) = self.done.try_recv() {
            self.apply(d);
        }
    }

    fn apply(&mut self, d: Done) {
        let now = self.now_ms();
        let small = self.table.counts().series <= LOG_EVERY_SERIES_UP_TO;
        match d {
            Done::Fitted {
                slot,
                generation,
                model,
                horizon,
                seconds,
                refit_in,
            } => {
                let Some(e) = self.live(slot, generation) else {
                    return;
                };
                if small || self.notes.lines < LOG_LINES_PER_POLL {
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
                let id = e.id.clone();
                self.notes.line();
                self.report.trainings += 1;
                self.report.training_seconds_total += seconds;
                self.notes.ready += 1;
                // Replicas of a series refit at the same wall-clock instants
                // (so on the same history, into the same model).
                let shard = self.settings.monitor.shard;
                let refit_in = refit_in.or_else(|| {
                    (shard.replication() > 1 && !model.compact.is_short_history()).then(|| {
                        let now_ms = chrono::Utc::now().timestamp_millis();
                        crate::shard::next_phase_ms(
                            &id,
                            now_ms,
                            self.settings.retrain_interval,
                            self.settings.prometheus.training_step,
                        ) - now_ms
                    })
                });
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
                    if let Some(id) = id.filter(|_| small || self.notes.line()) {
                        tracing::info!(
                            "{id}: {have}s of history in Prometheus, min_history is {min}s: warming up until then"
                        );
                    }
                }
            }
            Done::Failed {
                slot,
                generation,
                error,
            } => {
                let Some(e) = self.live(slot, generation) else {
                    return;
                };
                let (id, kept) = (e.id.clone(), e.model.is_some());
                self.report.training_failures += 1;
                self.notes.failed += 1;
                let wait = self.table.on_failed(slot, generation, now) / 1000;
                if small || self.notes.line() {
                    if kept {
                        tracing::error!(
                            "retraining {id} failed, keeping the old model: {error} (next try in {wait}s)"
                        );
                    } else {
                        tracing::error!(
                            "cannot train a model for {id} (still warming up): {error} (next try in {wait}s)"
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
                if let Some(e) = self.live(slot, generation) {
                    tracing::warn!("cannot draw a new band for {}: {error}", e.id);
                }
                self.table.on_horizon_failed(slot, generation, now);
            }
            Done::NeedFetch { slot, generation } => self.refetch.push((slot, generation)),
            Done::Fetched { slot, generation } => self.table.on_fetched(slot, generation),
        }
    }

    /// Runs what fell due; returns the series dropped for vanishing.
    fn due(&mut self) -> Vec<Arc<str>> {
        let (due, dropped) = self.table.take_due(self.now_ms());
        self.dispatch(due);
        let grace = self.settings.monitor.series_grace_period.as_secs();
        for id in &dropped {
            self.report.series_dropped += 1;
            self.notes.dropped += 1;
            if self.notes.line() {
                tracing::warn!("series {id} has not been seen for {grace}s: dropped");
            }
        }
        self.notes.summarise();
        dropped
    }

    /// Sends the due tasks to the workers and the fetcher.
    fn dispatch(&mut self, due: Vec<table::Due>) {
        let mut firsts = Vec::new();
        let mut refits = Vec::new();
        for (slot, generation) in std::mem::take(&mut self.refetch) {
            if let Some(e) = self.live(slot, generation) {
                firsts.push((slot, generation, e.id.clone(), e.labels.clone()));
            }
        }
        let now_s = chrono::Utc::now().timestamp();
        for d in due {
            let Some(e) = self.table.get(d.slot) else {
                continue;
            };
            let (slot, generation) = (d.slot, d.generation);
            let job = match (d.task, e.origin) {
                (Task::Horizon, _) => match e.model.clone() {
                    Some(model) => Job::Horizon {
                        slot,
                        generation,
                        model,
                    },
                    None => continue,
                },
                (Task::Train { first }, Origin::Simulation) => {
                    if self.presets.simulation {
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
                    }
                }
                (Task::Train { first: true }, Origin::Prometheus) => {
                    let selector = &self.settings.monitor.model_selector;
                    let saved = self
                        .model_dir
                        .as_ref()
                        .map(|dir| workers::model_file(dir, &e.id))
                        .filter(|p| p.exists());
                    if self.presets.selected && selector.matches(&e.labels) {
                        tracing::info!(
                            "{} matches model_selector: judged with {} (refitted from its own history at {})",
                            e.id,
                            self.settings.model_path.display(),
                            crate::dataset::format_ts(self.presets.stale_at.max(now_s))
                        );
                        Job::Preset {
                            slot,
                            generation,
                            kind: PresetKind::Selected,
                            refit_in: Some(self.presets.refit_in(now_s)),
                        }
                    } else if let Some(path) = saved {
                        Job::Saved {
                            slot,
                            generation,
                            path,
                        }
                    } else {
                        firsts.push((slot, generation, e.id.clone(), e.labels.clone()));
                        continue;
                    }
                }
                (Task::Train { first: false }, Origin::Prometheus) => {
                    refits.push((slot, generation, e.id.clone(), e.labels.clone()));
                    continue;
                }
            };
            if !matches!(job, Job::Horizon { .. }) {
                // No history to fetch: straight to the workers.
                self.table.on_fetched(slot, generation);
            }
            self.pool.submit(job);
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

    /// Counters for this poll, the outputs' end of poll, the report file.
    fn end_poll(
        &mut self,
        now: i64,
        source: SourceKind,
        dropped: &[Arc<str>],
        took: f64,
        stats: &sink::SinkStats,
        out: &mut Outputs,
    ) {
        let counts = self.table.counts();
        let r = &mut self.report;
        r.last_tick_seconds = took;
        r.max_tick_seconds = r.max_tick_seconds.max(took);
        r.ticks += 1;
        r.source = source.as_str().to_string();
        r.updated_at = chrono::Utc::now().to_rfc3339();
        r.points_written = stats.points_written.load(Ordering::Relaxed);
        r.spool_depth = stats.spool_depth.load(Ordering::Relaxed);
        r.points_dead_lettered = stats.points_dead_lettered.load(Ordering::Relaxed);
        r.last_write_error = stats.last_error();
        r.history_bytes = self.client.range_bytes();
        r.samples_rejected = self.client.samples_rejected();
        r.series_count = counts.series;
        r.warming_up = counts.warming;
        r.fetching = counts.fetching;
        r.fitting = counts.fitting;
        r.short_history = counts.short;
        out.end_poll(&PollEnd {
            now,
            source,
            counts,
            report: &self.report,
            dropped,
            prometheus_up: source == SourceKind::Prometheus,
        });
        let due = counts.series <= REPORT_EVERY_POLL_UP_TO
            || self
                .report_written
                .map_or(true, |t| t.elapsed() >= REPORT_EVERY);
        if due {
            self.write_report();
        }
        if let Some(k) = self.decisions.as_mut().filter(|k| k.due()) {
            k.write_behind(self.table.iter().map(|e| (&*e.id, &e.decider)));
        }
    }

    fn write_report(&mut self) {
        write_report(&self.report_path, &self.report, &self.series_report());
        self.report_written = Some(Instant::now());
    }

    /// Waits until `next` (or a signal), applying answers meanwhile.
    fn wait(&mut self, next: Instant, stop: &AtomicBool) {
        while Instant::now() < next && !stop.load(Ordering::SeqCst) {
            let left =
                Duration::from_millis(50).min(next.saturating_duration_since(Instant::now()));
            match self.done.recv_timeout(left) {
                Ok(d) => self.apply(d),
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => std::thread::sleep(left),
            }
        }
    }

    /// Stops the workers and the runtime (fits and fetches in flight are
    /// abandoned: nothing of theirs is owed to the sink).
    fn stop(mut self) -> (Report, PathBuf, BTreeMap<String, SeriesReport>) {
        self.pool.close();
        if let Some(k) = self.decisions.take() {
            k.write_final(self.table.iter().map(|e| (&*e.id, &e.decider)));
        }
        let series = self.series_report();
        self.rt.shutdown_background();
        (self.report, self.report_path, series)
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

/// Judges one sample of a series: its band from the horizon (none outside
/// it) and the decision path's verdict, the same implementation
/// `--mode evaluate` runs ([`crate::evaluate::decide_all`]).
pub fn judge_sample(
    decider: &mut Decider,
    horizon: &horizon::Horizon,
    ts: i64,
    value: f64,
    interval_width: f64,
) -> (Option<horizon::Band>, Option<crate::detect::Verdict>) {
    let band = horizon.band_at(ts);
    let verdict = band.map(|b| decider.update(ts, value, b.yhat, b.lower, b.upper, interval_width));
    (band, verdict)
}

/// The last multiple of `interval` at or before `now` (Unix seconds).
fn aligned(now: i64, interval: Duration) -> i64 {
    let i = (interval.as_secs() as i64).max(1);
    now.div_euclid(i) * i
}

/// When a sharded replica polls next: [`SHARD_POLL_DELAY`] after the next
/// multiple of `interval` on the wall clock, so every replica evaluates
/// the query at the same instants.
fn next_aligned_poll(interval: Duration) -> Instant {
    let i = (interval.as_millis() as i64).max(1000);
    let now = chrono::Utc::now().timestamp_millis();
    let next = (now.div_euclid(i) + 1) * i;
    Instant::now() + Duration::from_millis((next - now) as u64) + SHARD_POLL_DELAY
}

/// How long after an aligned instant a sharded replica asks for it (the
/// last scrapes before it are stored by then).
const SHARD_POLL_DELAY: Duration = Duration::from_secs(2);

/// Runs the monitor until a signal (or `max_ticks`).
pub fn run(settings: &Settings, opts: &MonitorOptions) -> Result<Report, MonitorError> {
    let stop = stop_flag();
    let dir = &settings.log_dir;
    std::fs::create_dir_all(dir).map_err(|source| MonitorError::Io {
        path: dir.clone(),
        source,
    })?;
    let logs = LogFiles::open(dir).map_err(|(path, source)| MonitorError::Io { path, source })?;
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
    let mut m = match Monitor::start(settings, &sink) {
        Ok(m) => m,
        Err(e) => {
            sink.close();
            return Err(e);
        }
    };
    let stats = sink.stats.clone();
    let mut out = Outputs {
        sink: SinkOutput::new(sink),
        logs,
        api: ApiOutput::new(api_state),
        notify: notifier(settings),
        live: opts.live.then(LiveLine::default),
    };
    loop {
        let tick = Instant::now();
        let now = chrono::Utc::now().timestamp();
        let (source, samples) = match m.poll(now) {
            Ok(x) => x,
            Err(e) => {
                m.stop();
                out.close();
                return Err(e);
            }
        };
        m.drain();
        m.judge(source, samples, &mut out);
        let dropped = m.due();
        let took = tick.elapsed().as_secs_f64();
        m.end_poll(now, source, &dropped, took, &stats, &mut out);
        if opts.max_ticks.is_some_and(|n| m.report.ticks >= n) {
            break;
        }
        let next = if settings.monitor.shard.is_sharded() {
            next_aligned_poll(settings.monitoring_interval)
        } else {
            tick + settings.monitoring_interval
        };
        m.wait(next, &stop);
        if stop.load(Ordering::SeqCst) {
            tracing::info!("signal received: flushing and stopping");
            break;
        }
    }
    let (mut report, path, series) = m.stop();
    let mut logs = out.close();
    report.points_written = stats.points_written.load(Ordering::Relaxed);
    report.spool_depth = stats.spool_depth.load(Ordering::Relaxed);
    report.points_dead_lettered = stats.points_dead_lettered.load(Ordering::Relaxed);
    report.last_write_error = stats.last_error();
    report.updated_at = chrono::Utc::now().to_rfc3339();
    write_report(&path, &report, &series);
    logs.flush();
    let wal_depth = std::fs::read_dir(settings.log_dir.join("wal")).map_or(0, |d| d.count());
    tracing::info!(
        "stopped after {} polls: {} points written, {} batches in the spool and {} polls in the \
         write-ahead log (both written at the next start), {} points dead-lettered{}",
        report.ticks,
        report.points_written,
        report.spool_depth,
        wal_depth,
        report.points_dead_lettered,
        if report.points_dead_lettered > 0 {
            format!(" ({})", settings.log_dir.join("dead_letter.lp").display())
        } else {
            String::new()
        }
    );
    Ok(report)
}
