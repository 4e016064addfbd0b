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
//! The poll loop (this file) asks `intake` for a poll's samples and has
//! them judged there, and `tasks` applies the workers' answers and sends
//! them what fell due. It never waits for a fetch or a fit: answers come
//! back on a channel and are applied between polls. Work per poll is O(1)
//! per series that reported plus the tasks that fell due.

pub mod decisions;
pub mod failover;
mod fanout;
pub mod fetcher;
pub mod horizon;
mod intake;
pub mod outputs;
pub mod presets;
pub mod table;
mod tasks;
pub mod workers;

pub use intake::judge_sample;

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
    failover::{Failover, SourceKind},
    fanout::{notifier, sink_for, Outputs},
    fetcher::{FetchConfig, Fetcher},
    outputs::{ApiOutput, LiveLine, LogFiles, PollEnd, SinkOutput},
    presets::Presets,
    table::{Slot, Table, Timing},
    workers::{Done, Pool, WorkerConfig},
};
pub use crate::status::{Report, SeriesReport};
use crate::{
    api,
    config::Settings,
    forecast::ForecastError,
    sink::{self, SinkHandle},
    source::{
        prometheus::{Client, Labels, PromError},
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
                &settings.decisions_in_use(),
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
        for (i, g) in settings.alert_groups.iter().enumerate() {
            tracing::info!(
                "alert_overrides[{i}]: series matching {} alert with their own settings (multiplier {}, likelihood {}, direction {})",
                g.text,
                g.decision.multiplier,
                g.decision.likelihood,
                g.decision.direction.as_str()
            );
        }
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
                        alert_override: e.alert_override.as_deref().map(str::to_string),
                    },
                )
            })
            .collect()
    }
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
