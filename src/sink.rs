//! Sinks: where the monitor's points go. A background thread batches points
//! (by `batch_size` and `flush_interval`) and writes them either to InfluxDB
//! (v1 or v2 API) or, with InfluxDB disabled, to a line-protocol file under
//! `log_dir`.
//!
//! Nothing is lost: a batch InfluxDB cannot take (down, 5xx, throttled after
//! every retry) goes to the on-disk [`spool::Spool`] and is replayed, oldest
//! first, before anything newer is written; a batch InfluxDB refuses for good
//! (a 4xx other than 408/429) goes to the dead-letter file with the server's
//! reason; a batch that does not fit the spool's bound is dead-lettered too.
//! Every one of these is logged.

pub mod influx;
pub mod schema;
pub mod spool;

use std::{
    fs::OpenOptions,
    io::Write,
    path::{Path, PathBuf},
    sync::{
        atomic::{AtomicU64, Ordering},
        mpsc, Arc,
    },
    thread,
    time::{Duration, Instant},
};

use thiserror::Error;

use self::{
    influx::{Outcome, Writer},
    schema::Point,
    spool::Spool,
};

/// Errors of the sinks.
#[derive(Debug, Error)]
pub enum SinkError {
    /// A file or directory could not be used.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

impl SinkError {
    fn io(path: &Path, source: std::io::Error) -> SinkError {
        SinkError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// Counters shared with the monitor (and `/metrics`).
#[derive(Debug, Default)]
pub struct SinkStats {
    /// Points accepted by the target (file or server).
    pub points_written: AtomicU64,
    /// Batches accepted.
    pub batches_written: AtomicU64,
    /// Batches put in the spool.
    pub batches_spooled: AtomicU64,
    /// Spooled batches replayed successfully.
    pub batches_replayed: AtomicU64,
    /// Points dead-lettered.
    pub points_dead_lettered: AtomicU64,
    /// Writes that ended unavailable (after retries).
    pub write_failures: AtomicU64,
    /// Batches currently spooled.
    pub spool_depth: AtomicU64,
    /// Tag values line protocol cannot carry as they are (cut, control
    /// characters, a final backslash): written altered.
    pub tags_altered: AtomicU64,
    /// Duration of the last successful write, microseconds.
    pub last_write_micros: AtomicU64,
    /// Why the last write that did not go through failed (empty: none yet).
    pub last_error: std::sync::Mutex<String>,
}

impl SinkStats {
    /// Records why a write failed.
    pub fn set_last_error(&self, why: &str) {
        if let Ok(mut e) = self.last_error.lock() {
            why.clone_into(&mut e);
        }
    }

    /// Why the last failed write failed (empty: none yet).
    pub fn last_error(&self) -> String {
        self.last_error
            .lock()
            .map(|e| e.clone())
            .unwrap_or_default()
    }
}

/// Where a sink writes.
#[derive(Debug, Clone)]
pub enum Destination {
    /// Append line protocol to this file.
    File(PathBuf),
    /// InfluxDB.
    Influx {
        /// The server and API.
        target: influx::Target,
        /// Spool directory.
        spool_dir: PathBuf,
        /// Bound of the spool in bytes.
        spool_max_bytes: u64,
        /// Dead-letter file.
        dead_letter: PathBuf,
    },
}

/// Batching settings.
#[derive(Debug, Clone, Copy)]
pub struct Batching {
    /// Points per write.
    pub batch_size: usize,
    /// Longest a point waits before a write.
    pub flush_interval: Duration,
}

enum Msg {
    Points(Vec<Point>),
    Flush(mpsc::Sender<()>),
}

/// Handle to the sink thread. Dropping it without [`SinkHandle::close`]
/// still flushes (the thread sees the channel close).
pub struct SinkHandle {
    tx: Option<mpsc::Sender<Msg>>,
    join: Option<thread::JoinHandle<()>>,
    /// Shared counters.
    pub stats: Arc<SinkStats>,
    /// Human description (`file logs/points.lp`, `influxdb v2 http://…`).
    pub describe: String,
}

impl SinkHandle {
    /// Queues points (never blocks on the network).
    pub fn send(&self, points: Vec<Point>) {
        if let Some(tx) = &self.tx {
            let _ = tx.send(Msg::Points(points));
        }
    }

    /// Writes everything queued so far and waits for it.
    pub fn flush(&self) {
        if let Some(tx) = &self.tx {
            let (done_tx, done_rx) = mpsc::channel();
            if tx.send(Msg::Flush(done_tx)).is_ok() {
                let _ = done_rx.recv();
            }
        }
    }

    /// Flushes (spooling what cannot be written) and stops the thread.
    pub fn close(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.tx.take();
        if let Some(j) = self.join.take() {
            let _ = j.join();
        }
    }
}

impl Drop for SinkHandle {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// The state owned by the sink thread.
struct Worker {
    dest: Dest,
    batching: Batching,
    buf: String,
    buffered: usize,
    stats: Arc<SinkStats>,
}

#[allow(clippy::large_enum_variant)] // one per sink thread
enum Dest {
    File(PathBuf),
    Influx {
        writer: Writer,
        spool: Spool,
        dead_letter: PathBuf,
    },
}

/// Starts the sink thread.
pub fn spawn(dest: Destination, batching: Batching) -> Result<SinkHandle, SinkError> {
    let (describe, dest) = match dest {
        Destination::File(path) => {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).map_err(|e| SinkError::io(dir, e))?;
            }
            (format!("file {}", path.display()), Dest::File(path))
        }
        Destination::Influx {
            target,
            spool_dir,
            spool_max_bytes,
            dead_letter,
        } => {
            let spool = Spool::open(&spool_dir, spool_max_bytes)?;
            let writer = Writer::new(target.clone());
            let pending = spool.len();
            if pending > 0 {
                tracing::warn!(
                    "{} batches left in the spool {} by an earlier run: replaying them first",
                    pending,
                    spool_dir.display()
                );
            }
            (
                format!("influxdb {} {}", target.api, target.url),
                Dest::Influx {
                    writer,
                    spool,
                    dead_letter,
                },
            )
        }
    };
    let stats = Arc::new(SinkStats::default());
    let (tx, rx) = mpsc::channel();
    let mut worker = Worker {
        dest,
        batching,
        buf: String::new(),
        buffered: 0,
        stats: stats.clone(),
    };
    if let Dest::Influx { spool, .. } = &worker.dest {
        stats
            .spool_depth
            .store(spool.len() as u64, Ordering::Relaxed);
    }
    let join = thread::Builder::new()
        .name("sink".into())
        .spawn(move || worker.run(rx))
        .map_err(|e| SinkError::io(Path::new("sink thread"), e))?;
    Ok(SinkHandle {
        tx: Some(tx),
        join: Some(join),
        stats,
        describe,
    })
}

impl Worker {
    fn run(&mut self, rx: mpsc::Receiver<Msg>) {
        let mut deadline = Instant::now() + self.batching.flush_interval;
        loop {
            let wait = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(wait) {
                Ok(Msg::Points(points)) => {
                    for p in &points {
                        let e = p.encode(&mut self.buf);
                        self.buffered += usize::from(e.written);
                        if e.tags_altered > 0 {
                            self.stats
                                .tags_altered
                                .fetch_add(u64::from(e.tags_altered), Ordering::Relaxed);
                        }
                    }
                    if self.buffered >= self.batching.batch_size {
                        self.flush(None);
                        deadline = Instant::now() + self.batching.flush_interval;
                    }
                }
                Ok(Msg::Flush(done)) => {
                    self.flush(None);
                    let _ = done.send(());
                    deadline = Instant::now() + self.batching.flush_interval;
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    self.flush(None);
                    deadline = Instant::now() + self.batching.flush_interval;
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    // Shutting down: one quick try each, the rest is spooled.
                    self.flush(Some(0));
                    return;
                }
            }
        }
    }

    /// Writes the buffer (and first the spool's backlog).
    fn flush(&mut self, retries: Option<u32>) {
        let batch = std::mem::take(&mut self.buf);
        let points = std::mem::replace(&mut self.buffered, 0) as u64;
        let stats = self.stats.clone();
        match &mut self.dest {
            Dest::File(path) => {
                if batch.is_empty() {
                    return;
                }
                let res = OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&*path)
                    .and_then(|mut f| f.write_all(batch.as_bytes()));
                match res {
                    Ok(()) => {
                        stats.points_written.fetch_add(points, Ordering::Relaxed);
                        stats.batches_written.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => {
                        // Keep it for the next flush rather than lose it.
                        tracing::error!("cannot append to {}: {e}", path.display());
                        self.buf = batch;
                        self.buffered = points as usize;
                    }
                }
            }
            Dest::Influx {
                writer,
                spool,
                dead_letter,
            } => {
                let up = replay(writer, spool, dead_letter, &stats, retries);
                if batch.is_empty() {
                    return;
                }
                let outcome = if up {
                    let (o, took) = writer.write(&batch, retries);
                    if o == Outcome::Written {
                        stats
                            .last_write_micros
                            .store(took.as_micros() as u64, Ordering::Relaxed);
                    }
                    o
                } else {
                    Outcome::Unavailable("spool backlog not yet written".into())
                };
                match outcome {
                    Outcome::Written => {
                        stats.points_written.fetch_add(points, Ordering::Relaxed);
                        stats.batches_written.fetch_add(1, Ordering::Relaxed);
                    }
                    Outcome::Rejected { status, reason } => {
                        stats.set_last_error(&format!("HTTP {status}: {reason}"));
                        dead_letter_batch(dead_letter, &batch, status, &reason, &stats);
                    }
                    Outcome::Unavailable(reason) => {
                        stats.write_failures.fetch_add(1, Ordering::Relaxed);
                        stats.set_last_error(&reason);
                        spool_batch(spool, dead_letter, &batch, &reason, &stats);
                    }
                }
                stats
                    .spool_depth
                    .store(spool.len() as u64, Ordering::Relaxed);
            }
        }
    }
}

/// Replays the spool in order; false when the server is still unavailable.
fn replay(
    writer: &Writer,
    spool: &mut Spool,
    dead_letter: &Path,
    stats: &SinkStats,
    retries: Option<u32>,
) -> bool {
    loop {
        let (path, text) = match spool.peek() {
            Ok(Some(x)) => x,
            Ok(None) => return true,
            Err(e) => {
                tracing::error!("spool: {e}");
                return true;
            }
        };
        let points = text.lines().filter(|l| !l.starts_with('#')).count() as u64;
        match writer.write(&text, retries).0 {
            Outcome::Written => {
                stats.points_written.fetch_add(points, Ordering::Relaxed);
                stats.batches_replayed.fetch_add(1, Ordering::Relaxed);
                tracing::info!("replayed a spooled batch of {points} points");
            }
            Outcome::Rejected { status, reason } => {
                dead_letter_batch(dead_letter, &text, status, &reason, stats);
            }
            Outcome::Unavailable(_) => {
                stats.write_failures.fetch_add(1, Ordering::Relaxed);
                return false;
            }
        }
        if let Err(e) = spool.remove(&path) {
            tracing::error!("spool: {e}");
            return true;
        }
        stats
            .spool_depth
            .store(spool.len() as u64, Ordering::Relaxed);
    }
}

fn spool_batch(spool: &mut Spool, dead_letter: &Path, batch: &str, why: &str, stats: &SinkStats) {
    match spool.push(batch) {
        Ok(true) => {
            stats.batches_spooled.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                "InfluxDB unavailable ({why}): batch of {} points spooled ({} batches waiting)",
                batch.lines().count(),
                spool.len()
            );
        }
        Ok(false) => dead_letter_batch(dead_letter, batch, 0, "spool full", stats),
        Err(e) => {
            tracing::error!("spool: {e}");
            dead_letter_batch(dead_letter, batch, 0, &format!("spool failed: {e}"), stats);
        }
    }
}

fn dead_letter_batch(path: &Path, batch: &str, status: u16, reason: &str, stats: &SinkStats) {
    let points = batch.lines().filter(|l| !l.starts_with('#')).count() as u64;
    stats
        .points_dead_lettered
        .fetch_add(points, Ordering::Relaxed);
    tracing::error!(
        "{points} points dead-lettered to {} (status {status}: {reason})",
        path.display()
    );
    let reason = reason.replace('\n', " ");
    let res = (|| {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let mut f = OpenOptions::new().create(true).append(true).open(path)?;
        writeln!(
            f,
            "# {} status {status}: {reason}",
            chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ")
        )?;
        f.write_all(batch.as_bytes())
    })();
    if let Err(e) = res {
        tracing::error!(
            "cannot write the dead-letter file {}: {e}; the batch follows on stderr",
            path.display()
        );
        eprintln!("{batch}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use schema::FieldValue;

    fn point(t: i64) -> Point {
        Point {
            measurement: schema::CPU_METRICS,
            tags: vec![(schema::TAG_HOST, "h".into())],
            fields: vec![(schema::FIELD_CPU_USAGE, FieldValue::Float(t as f64))],
            timestamp: t,
        }
    }

    #[test]
    fn file_sink_batches_and_flushes_on_close() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/points.lp");
        let h = spawn(
            Destination::File(path.clone()),
            Batching {
                batch_size: 2,
                flush_interval: Duration::from_secs(3600),
            },
        )
        .unwrap();
        h.send(vec![point(1), point(2)]);
        h.flush();
        assert_eq!(std::fs::read_to_string(&path).unwrap().lines().count(), 2);
        h.send(vec![point(3)]);
        let stats = h.stats.clone();
        h.close();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 3);
        assert!(text.ends_with("cpu_metrics,host=h cpu_usage=3.0 3\n"));
        assert_eq!(stats.points_written.load(Ordering::Relaxed), 3);
    }

    #[test]
    fn unreachable_influx_spools_and_a_restart_finds_the_batches() {
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let dest = Destination::Influx {
            target: influx::Target {
                api: influx::Api::V1,
                url: format!("http://127.0.0.1:{port}"),
                org: String::new(),
                bucket: "db".into(),
                token: crate::secret::Secret::default(),
                timeout: Duration::from_secs(1),
                retries: 1,
                backoff: Duration::from_millis(1),
            },
            spool_dir: dir.path().join("spool"),
            spool_max_bytes: 1 << 20,
            dead_letter: dir.path().join("dead.lp"),
        };
        let batching = Batching {
            batch_size: 2,
            flush_interval: Duration::from_secs(3600),
        };
        let h = spawn(dest.clone(), batching).unwrap();
        h.send(vec![point(1), point(2)]);
        h.send(vec![point(3)]);
        let stats = h.stats.clone();
        h.close();
        assert_eq!(stats.batches_spooled.load(Ordering::Relaxed), 2);
        assert_eq!(stats.points_written.load(Ordering::Relaxed), 0);
        assert!(!dir.path().join("dead.lp").exists());
        let h = spawn(dest, batching).unwrap();
        assert_eq!(h.stats.spool_depth.load(Ordering::Relaxed), 2);
    }
}
