//! Sinks: where the monitor's points go. A background thread batches points
//! (by `batch_size` and `flush_interval`) and writes them either to InfluxDB
//! (v1 or v2 API) or, with InfluxDB disabled, to a line-protocol file under
//! `log_dir`.
//!
//! Nothing is lost:
//! - every poll's points are in the [`wal`] (synced) before they are queued,
//!   and leave it only once they are durable somewhere else, so a crash, a
//!   `kill -9` or a second Ctrl-C is replayed at the next start;
//! - a batch InfluxDB cannot take (down, 5xx, throttled after every retry)
//!   goes to the on-disk [`spool::Spool`] and is replayed, oldest first,
//!   before anything newer is written; a batch InfluxDB refuses for good (a
//!   4xx other than 408/429) goes to the dead-letter file with the server's
//!   reason; a batch that does not fit the spool's bound is dead-lettered
//!   too;
//! - an append to the points file that fails (a full disk) is cut back to
//!   where it started, so no line is ever half-written, and retried at the
//!   next flush.
//!
//! Memory is bounded: at most [`QUEUE_POLLS`] polls wait between the monitor
//! and this thread (a poll that finds the queue full stays in the log, and
//! the thread takes it from there), and a points file that cannot be
//! written holds at most [`MAX_BUFFER_BYTES`] (then the points are dropped
//! from memory, counted, and written from the log at the next start).
//!
//! Stopping ([`SinkHandle::close`]) takes a few seconds whatever InfluxDB
//! does: no more retries, what is pending is spooled, and after
//! [`CLOSE_WAIT`] the thread is left behind (what it held is in the log).
//! Repeating faults are logged at most once a minute.

pub mod influx;
pub mod influx2;
pub mod schema;
pub mod spool;
pub mod wal;

use std::{
    fs::OpenOptions,
    io::{Read, Seek, SeekFrom, Write},
    path::{Path, PathBuf},
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        mpsc, Arc, Mutex,
    },
    thread,
    time::{Duration, Instant},
};

use thiserror::Error;

use self::{
    influx::{Outcome, Writer},
    schema::Point,
    spool::Spool,
    wal::{Wal, WalDir},
};
use crate::logfile::throttle::{held_back, Throttle};

/// Polls queued between the monitor and the sink thread at most.
pub const QUEUE_POLLS: usize = 64;
/// Bytes held in memory while the points file cannot be written.
pub const MAX_BUFFER_BYTES: usize = 64 << 20;
/// How long [`SinkHandle::close`] waits for the sink thread.
pub const CLOSE_WAIT: Duration = Duration::from_secs(3);

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
    /// Spooled batches that could not be read, moved to `quarantine/`.
    pub batches_quarantined: AtomicU64,
    /// Tag values line protocol cannot carry as they are (cut, control
    /// characters, a final backslash): written altered.
    pub tags_altered: AtomicU64,
    /// Points dropped from memory (queue full or points file unwritable
    /// past [`MAX_BUFFER_BYTES`]); those in the write-ahead log are written
    /// at the next start.
    pub points_dropped: AtomicU64,
    /// Points taken from the write-ahead log of an earlier run.
    pub points_recovered: AtomicU64,
    /// Duration of the last successful write, microseconds.
    pub last_write_micros: AtomicU64,
    /// Why the last write that did not go through failed (empty: none yet).
    pub last_error: Mutex<String>,
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
    /// One poll's points as line protocol.
    Batch {
        text: String,
        points: u64,
        wal: Option<u64>,
    },
    Flush(mpsc::Sender<()>),
}

/// Rate limits of the repeating faults.
static WAL_LOG: Throttle = Throttle::new(Duration::from_secs(60));
static QUEUE_LOG: Throttle = Throttle::new(Duration::from_secs(60));
static APPEND_LOG: Throttle = Throttle::new(Duration::from_secs(60));
static SPOOL_LOG: Throttle = Throttle::new(Duration::from_secs(60));

/// Handle to the sink thread. Dropping it without [`SinkHandle::close`]
/// closes it too.
pub struct SinkHandle {
    tx: Option<mpsc::SyncSender<Msg>>,
    wal: Option<Mutex<Wal>>,
    deferred: Arc<Mutex<Vec<u64>>>,
    stopping: Arc<AtomicBool>,
    finished: Option<mpsc::Receiver<()>>,
    join: Option<thread::JoinHandle<()>>,
    /// Shared counters.
    pub stats: Arc<SinkStats>,
    /// Human description (`file logs/points.lp`, `influxdb v2 http://…`).
    pub describe: String,
}

impl SinkHandle {
    /// Encodes one poll's points, makes them durable in the write-ahead log
    /// and queues them (never blocks on the network or a full queue).
    pub fn send(&self, points: Vec<Point>) {
        let mut text = String::with_capacity(points.len() * 160);
        let (mut n, mut altered) = (0u64, 0u64);
        for p in &points {
            let e = p.encode(&mut text);
            n += u64::from(e.written);
            altered += u64::from(e.tags_altered);
        }
        if altered > 0 {
            self.stats
                .tags_altered
                .fetch_add(altered, Ordering::Relaxed);
        }
        if n == 0 {
            return;
        }
        let wal = self.wal.as_ref().and_then(|w| {
            let mut w = w.lock().unwrap_or_else(|e| e.into_inner());
            match w.append(text.as_bytes()) {
                Ok(seq) => Some(seq),
                Err(e) => {
                    if let Some(held) = WAL_LOG.allow() {
                        tracing::error!(
                            "write-ahead log: {e}: this poll's points are only in memory until written{}",
                            held_back(held)
                        );
                    }
                    None
                }
            }
        });
        let Some(tx) = &self.tx else { return };
        let msg = Msg::Batch {
            text,
            points: n,
            wal,
        };
        let (full, msg) = match tx.try_send(msg) {
            Ok(()) => return,
            Err(mpsc::TrySendError::Full(m)) => (true, m),
            Err(mpsc::TrySendError::Disconnected(m)) => (false, m),
        };
        let Msg::Batch { points, wal, .. } = msg else {
            return;
        };
        self.stats
            .points_dropped
            .fetch_add(points, Ordering::Relaxed);
        if let (true, Some(seq)) = (full, wal) {
            self.deferred
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(seq);
        }
        if let Some(held) = QUEUE_LOG.allow() {
            tracing::error!(
                "the sink is {} behind: {points} points left in the write-ahead log only ({}){}",
                if full {
                    format!("{QUEUE_POLLS} polls")
                } else {
                    "gone".to_string()
                },
                if wal.is_some() {
                    "written from there"
                } else {
                    "and the log failed too: dropped"
                },
                held_back(held)
            );
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

    /// Stops the thread: no more retries, what is pending is written once
    /// or spooled. Waits at most [`CLOSE_WAIT`]; what the thread still holds
    /// then is in the write-ahead log.
    pub fn close(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.stopping.store(true, Ordering::SeqCst);
        if self.tx.take().is_none() {
            return;
        }
        let finished = self.finished.take().map(|f| f.recv_timeout(CLOSE_WAIT));
        match finished {
            Some(Err(mpsc::RecvTimeoutError::Timeout)) => {
                let dir = self
                    .wal
                    .as_ref()
                    .map(|w| {
                        let w = w.lock().unwrap_or_else(|e| e.into_inner());
                        w.dir().dir().display().to_string()
                    })
                    .unwrap_or_default();
                tracing::warn!(
                    "the sink is still writing after {} s: leaving it; what it holds is in the \
                     write-ahead log {dir} and is written at the next start",
                    CLOSE_WAIT.as_secs()
                );
            }
            _ => {
                if let Some(j) = self.join.take() {
                    let _ = j.join();
                }
            }
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
    buffered: u64,
    /// Log entries whose points are in `buf`.
    pending: Vec<u64>,
    wal: Option<WalDir>,
    deferred: Arc<Mutex<Vec<u64>>>,
    stopping: Arc<AtomicBool>,
    /// The last write went through (or none was tried yet).
    healthy: bool,
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

/// A destination checked on the caller's thread (errors are returned
/// there); the HTTP client is built on the sink thread.
enum Prepared {
    File(PathBuf),
    Influx {
        target: influx::Target,
        spool: Spool,
        dead_letter: PathBuf,
    },
}

/// Starts the sink thread. With `wal_dir`, every poll is written ahead
/// there, and entries left by an earlier run are written (or spooled) first.
pub fn spawn(
    dest: Destination,
    batching: Batching,
    wal_dir: Option<&Path>,
) -> Result<SinkHandle, SinkError> {
    let stats = Arc::new(SinkStats::default());
    let (describe, prepared) = match dest {
        Destination::File(path) => {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).map_err(|e| SinkError::io(dir, e))?;
            }
            repair_last_line(&path)?;
            (format!("file {}", path.display()), Prepared::File(path))
        }
        Destination::Influx {
            target,
            spool_dir,
            spool_max_bytes,
            dead_letter,
        } => {
            let spool = Spool::open(&spool_dir, spool_max_bytes)?;
            let pending = spool.len();
            if pending > 0 {
                tracing::warn!(
                    "{} batches left in the spool {} by an earlier run: replaying them first",
                    pending,
                    spool_dir.display()
                );
            }
            stats.spool_depth.store(pending as u64, Ordering::Relaxed);
            (
                format!("influxdb {} {}", target.api, target.url),
                Prepared::Influx {
                    target,
                    spool,
                    dead_letter,
                },
            )
        }
    };
    let wal = wal_dir.map(Wal::open).transpose()?;
    let leftovers = match &wal {
        Some(w) => w.dir().entries()?,
        None => Vec::new(),
    };
    let (tx, rx) = mpsc::sync_channel(QUEUE_POLLS);
    let (finished_tx, finished_rx) = mpsc::channel();
    let deferred = Arc::new(Mutex::new(Vec::new()));
    let stopping = Arc::new(AtomicBool::new(false));
    let parts = (
        prepared,
        wal.as_ref().map(Wal::dir),
        deferred.clone(),
        stopping.clone(),
        stats.clone(),
    );
    let join = thread::Builder::new()
        .name("sink".into())
        .spawn(move || {
            let (prepared, wal, deferred, stopping, stats) = parts;
            let dest = match prepared {
                Prepared::File(p) => Dest::File(p),
                Prepared::Influx {
                    target,
                    spool,
                    dead_letter,
                } => Dest::Influx {
                    writer: Writer::new(target),
                    spool,
                    dead_letter,
                },
            };
            let mut worker = Worker {
                dest,
                batching,
                buf: String::new(),
                buffered: 0,
                pending: Vec::new(),
                wal,
                deferred,
                stopping,
                healthy: true,
                stats,
            };
            worker.recover(&leftovers);
            worker.run(rx);
            let _ = finished_tx.send(());
        })
        .map_err(|e| SinkError::io(Path::new("sink thread"), e))?;
    Ok(SinkHandle {
        tx: Some(tx),
        wal: wal.map(Mutex::new),
        deferred,
        stopping,
        finished: Some(finished_rx),
        join: Some(join),
        stats,
        describe,
    })
}

/// Files `<number>.<ext>` in `dir`, sorted by number (the spool's and the
/// write-ahead log's entries).
fn numbered(dir: &Path, ext: &str) -> Result<Vec<(u64, PathBuf)>, SinkError> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).map_err(|e| SinkError::io(dir, e))? {
        let p = e.map_err(|e| SinkError::io(dir, e))?.path();
        if p.extension().and_then(|x| x.to_str()) != Some(ext) {
            continue;
        }
        if let Some(n) = p
            .file_stem()
            .and_then(|s| s.to_str())
            .and_then(|s| s.parse().ok())
        {
            out.push((n, p));
        }
    }
    out.sort();
    Ok(out)
}

/// Cuts a points file back to its last complete line (a run killed in the
/// middle of an append; the cut points are still in the write-ahead log).
fn repair_last_line(path: &Path) -> Result<(), SinkError> {
    let mut f = match OpenOptions::new().read(true).write(true).open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(SinkError::io(path, e)),
    };
    let io = |e| SinkError::io(path, e);
    let len = f.metadata().map_err(io)?.len();
    if len == 0 {
        return Ok(());
    }
    // Look back for the last newline, 64 KiB at a time.
    let mut end = len;
    let mut chunk = vec![0u8; 64 << 10];
    loop {
        let start = end.saturating_sub(chunk.len() as u64);
        let n = (end - start) as usize;
        f.seek(SeekFrom::Start(start)).map_err(io)?;
        f.read_exact(&mut chunk[..n]).map_err(io)?;
        if let Some(k) = chunk[..n].iter().rposition(|&b| b == b'\n') {
            let keep = start + k as u64 + 1;
            if keep < len {
                f.set_len(keep).map_err(io)?;
                tracing::warn!(
                    "{}: cut a partial last line ({} bytes) left by an interrupted run",
                    path.display(),
                    len - keep
                );
            }
            return Ok(());
        }
        if start == 0 {
            f.set_len(0).map_err(io)?;
            return Ok(());
        }
        end = start;
    }
}

impl Worker {
    fn run(&mut self, rx: mpsc::Receiver<Msg>) {
        let mut deadline = Instant::now() + self.batching.flush_interval;
        loop {
            let wait = deadline.saturating_duration_since(Instant::now());
            let msg = rx.recv_timeout(wait);
            self.take_deferred();
            match msg {
                Ok(Msg::Batch { text, points, wal }) => {
                    self.buf.push_str(&text);
                    self.buffered += points;
                    self.pending.extend(wal);
                    if self.buffered >= self.batching.batch_size as u64 {
                        self.flush();
                        deadline = Instant::now() + self.batching.flush_interval;
                    }
                }
                Ok(Msg::Flush(done)) => {
                    self.flush();
                    let _ = done.send(());
                    deadline = Instant::now() + self.batching.flush_interval;
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    self.flush();
                    deadline = Instant::now() + self.batching.flush_interval;
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    self.flush();
                    return;
                }
            }
        }
    }

    /// Entries of an earlier run's log: written (file) or spooled (InfluxDB)
    /// before anything new.
    fn recover(&mut self, seqs: &[u64]) {
        let Some(wal) = self.wal.clone() else { return };
        let mut points = 0;
        for &seq in seqs {
            match wal.read(seq) {
                Ok(bytes) => {
                    let n = count_points(&bytes);
                    if self.store(&bytes, "left in the write-ahead log by an earlier run") {
                        points += n;
                        if let Err(e) = wal.remove(seq) {
                            tracing::error!("write-ahead log: {e}");
                        }
                    }
                }
                Err(e) => tracing::error!("write-ahead log: {e}"),
            }
        }
        if points > 0 {
            self.stats
                .points_recovered
                .fetch_add(points, Ordering::Relaxed);
            tracing::warn!(
                "{points} points of {} polls found in the write-ahead log {} (the last run ended \
                 before writing them): {}",
                seqs.len(),
                wal.dir().display(),
                match self.dest {
                    Dest::File(_) => "appended",
                    Dest::Influx { .. } => "spooled, written first",
                }
            );
        }
    }

    /// Polls the monitor could not queue: taken from the log into the spool
    /// or the file.
    fn take_deferred(&mut self) {
        let mut seqs =
            std::mem::take(&mut *self.deferred.lock().unwrap_or_else(|e| e.into_inner()));
        if seqs.is_empty() {
            return;
        }
        let Some(wal) = self.wal.clone() else { return };
        seqs.sort_unstable();
        for seq in seqs {
            let Ok(bytes) = wal.read(seq) else { continue };
            if self.store(&bytes, "taken from the write-ahead log: the queue was full") {
                let _ = wal.remove(seq);
            }
        }
    }

    /// Puts `bytes` somewhere durable without the network: appended to the
    /// file, or into the spool (dead-lettered if it does not fit). False
    /// when neither worked.
    fn store(&mut self, bytes: &[u8], why: &str) -> bool {
        let stats = self.stats.clone();
        match &mut self.dest {
            Dest::File(path) => match append(path, bytes) {
                Ok(()) => {
                    stats
                        .points_written
                        .fetch_add(count_points(bytes), Ordering::Relaxed);
                    true
                }
                Err(e) => {
                    if let Some(held) = APPEND_LOG.allow() {
                        tracing::error!(
                            "cannot append to {}: {e}{}",
                            path.display(),
                            held_back(held)
                        );
                    }
                    false
                }
            },
            Dest::Influx {
                spool, dead_letter, ..
            } => {
                let ok = spool_batch(spool, dead_letter, bytes, why, &stats);
                stats
                    .spool_depth
                    .store(spool.len() as u64, Ordering::Relaxed);
                ok
            }
        }
    }

    /// Writes the buffer (and first the spool's backlog); once its points
    /// are durable, their log entries go.
    fn flush(&mut self) {
        let stopping = self.stopping.load(Ordering::Relaxed);
        let durable = match &mut self.dest {
            Dest::File(path) => {
                if self.buf.is_empty() {
                    return;
                }
                match append(path, self.buf.as_bytes()) {
                    Ok(()) => {
                        self.stats
                            .points_written
                            .fetch_add(self.buffered, Ordering::Relaxed);
                        self.stats.batches_written.fetch_add(1, Ordering::Relaxed);
                        true
                    }
                    Err(e) => {
                        self.stats.set_last_error(&e.to_string());
                        if stopping {
                            tracing::error!(
                                "cannot append {} points to {} at exit: {e}; {}",
                                self.buffered,
                                path.display(),
                                if self.pending.is_empty() {
                                    "they are lost".to_string()
                                } else {
                                    "they are in the write-ahead log, appended at the next start"
                                        .to_string()
                                }
                            );
                        } else if let Some(held) = APPEND_LOG.allow() {
                            tracing::error!(
                                "cannot append to {}: {e}; {} points held in memory and retried{}",
                                path.display(),
                                self.buffered,
                                held_back(held)
                            );
                        }
                        if self.buf.len() > MAX_BUFFER_BYTES {
                            self.stats
                                .points_dropped
                                .fetch_add(self.buffered, Ordering::Relaxed);
                            tracing::error!(
                                "{} points dropped from memory after {} MiB could not be written; \
                                 {} of {} polls are in the write-ahead log for the next start",
                                self.buffered,
                                MAX_BUFFER_BYTES >> 20,
                                self.pending.len(),
                                self.pending.len()
                            );
                            self.buf.clear();
                            self.buffered = 0;
                            self.pending.clear();
                        }
                        return;
                    }
                }
            }
            Dest::Influx {
                writer,
                spool,
                dead_letter,
            } => {
                let stats = self.stats.clone();
                let batch = std::mem::take(&mut self.buf);
                let points = std::mem::replace(&mut self.buffered, 0);
                let retries = stopping.then_some(0);
                // Stopping after a failure: straight to the spool.
                let try_network = !stopping || self.healthy;
                let up = try_network
                    && replay(writer, spool, dead_letter, &stats, retries, &self.stopping);
                if batch.is_empty() {
                    stats
                        .spool_depth
                        .store(spool.len() as u64, Ordering::Relaxed);
                    return;
                }
                let outcome = if up {
                    let (o, took) = writer.write(batch.as_bytes(), retries, &self.stopping);
                    if o == Outcome::Written {
                        stats
                            .last_write_micros
                            .store(took.as_micros() as u64, Ordering::Relaxed);
                    }
                    o
                } else if try_network {
                    Outcome::Unavailable("spool backlog not yet written".into())
                } else {
                    Outcome::Unavailable("stopping after a failed write".into())
                };
                let durable = match outcome {
                    Outcome::Written => {
                        self.healthy = true;
                        stats.points_written.fetch_add(points, Ordering::Relaxed);
                        stats.batches_written.fetch_add(1, Ordering::Relaxed);
                        true
                    }
                    Outcome::Rejected { status, reason } => {
                        self.healthy = true;
                        stats.set_last_error(&format!("HTTP {status}: {reason}"));
                        dead_letter_batch(dead_letter, batch.as_bytes(), status, &reason, &stats)
                    }
                    Outcome::Unavailable(reason) => {
                        self.healthy = false;
                        stats.write_failures.fetch_add(1, Ordering::Relaxed);
                        stats.set_last_error(&reason);
                        let why = format!("InfluxDB unavailable: {reason}");
                        spool_batch(spool, dead_letter, batch.as_bytes(), &why, &stats)
                    }
                };
                stats
                    .spool_depth
                    .store(spool.len() as u64, Ordering::Relaxed);
                stats
                    .batches_quarantined
                    .store(spool.quarantined(), Ordering::Relaxed);
                durable
            }
        };
        self.buf.clear();
        self.buffered = 0;
        let pending = std::mem::take(&mut self.pending);
        if !durable {
            // Neither the spool nor the dead-letter file took them: they
            // stay in the log for the next start.
            return;
        }
        if let Some(wal) = &self.wal {
            for seq in pending {
                if let Err(e) = wal.remove(seq) {
                    if let Some(held) = WAL_LOG.allow() {
                        tracing::error!("write-ahead log: {e}{}", held_back(held));
                    }
                }
            }
        }
    }
}

/// Appends `bytes` to `path` whole or not at all: on error the file is cut
/// back to its length before the append.
fn append(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut f = OpenOptions::new().create(true).append(true).open(path)?;
    let before = f.metadata()?.len();
    if let Err(e) = f.write_all(bytes) {
        if let Err(cut) = f.set_len(before) {
            tracing::error!(
                "{}: cannot cut a failed append back ({cut}): the last line may be partial until the next start",
                path.display()
            );
        }
        return Err(e);
    }
    Ok(())
}

/// Lines of line protocol in `bytes` (comments aside).
fn count_points(bytes: &[u8]) -> u64 {
    bytes
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty() && l[0] != b'#')
        .count() as u64
}

/// Replays the spool in order; false when the server is still unavailable
/// (or the spool cannot be read: order is kept, nothing newer goes ahead).
fn replay(
    writer: &Writer,
    spool: &mut Spool,
    dead_letter: &Path,
    stats: &SinkStats,
    retries: Option<u32>,
    stop: &AtomicBool,
) -> bool {
    loop {
        let peeked = spool.peek();
        stats
            .batches_quarantined
            .store(spool.quarantined(), Ordering::Relaxed);
        let (path, bytes) = match peeked {
            Ok(Some(x)) => x,
            Ok(None) => return true,
            Err(e) => {
                if let Some(held) = SPOOL_LOG.allow() {
                    tracing::error!("spool: {e}{}", held_back(held));
                }
                return false;
            }
        };
        let points = count_points(&bytes);
        match writer.write(&bytes, retries, stop).0 {
            Outcome::Written => {
                stats.points_written.fetch_add(points, Ordering::Relaxed);
                stats.batches_replayed.fetch_add(1, Ordering::Relaxed);
                tracing::info!("replayed a spooled batch of {points} points");
            }
            Outcome::Rejected { status, reason } => {
                if !dead_letter_batch(dead_letter, &bytes, status, &reason, stats) {
                    return false;
                }
            }
            Outcome::Unavailable(_) => {
                stats.write_failures.fetch_add(1, Ordering::Relaxed);
                return false;
            }
        }
        if let Err(e) = spool.remove(&path) {
            if let Some(held) = SPOOL_LOG.allow() {
                tracing::error!("spool: {e}{}", held_back(held));
            }
            return false;
        }
        stats
            .spool_depth
            .store(spool.len() as u64, Ordering::Relaxed);
    }
}

/// Spools a batch (dead-letters it when the spool is full or failing).
/// True when it is durable in one of them.
fn spool_batch(
    spool: &mut Spool,
    dead_letter: &Path,
    batch: &[u8],
    why: &str,
    stats: &SinkStats,
) -> bool {
    match spool.push(batch) {
        Ok(true) => {
            stats.batches_spooled.fetch_add(1, Ordering::Relaxed);
            if let Some(held) = SPOOL_LOG.allow() {
                tracing::warn!(
                    "batch of {} points spooled ({why}; {} batches waiting){}",
                    count_points(batch),
                    spool.len(),
                    held_back(held)
                );
            }
            true
        }
        Ok(false) => dead_letter_batch(dead_letter, batch, 0, "spool full", stats),
        Err(e) => {
            if let Some(held) = SPOOL_LOG.allow() {
                tracing::error!("spool: {e}{}", held_back(held));
            }
            dead_letter_batch(dead_letter, batch, 0, &format!("spool failed: {e}"), stats)
        }
    }
}

/// Appends a batch to the dead-letter file with the reason; true when it
/// is there.
fn dead_letter_batch(
    path: &Path,
    batch: &[u8],
    status: u16,
    reason: &str,
    stats: &SinkStats,
) -> bool {
    let points = count_points(batch);
    let reason = reason.replace('\n', " ");
    let res = (|| {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let mut text = format!(
            "# {} status {status}: {reason}\n",
            chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ")
        )
        .into_bytes();
        text.extend_from_slice(batch);
        append(path, &text)
    })();
    match res {
        Ok(()) => {
            stats
                .points_dead_lettered
                .fetch_add(points, Ordering::Relaxed);
            tracing::error!(
                "{points} points dead-lettered to {} (status {status}: {reason})",
                path.display()
            );
            true
        }
        Err(e) => {
            if let Some(held) = SPOOL_LOG.allow() {
                tracing::error!(
                    "cannot write the dead-letter file {}: {e} ({points} points, status {status}: \
                     {reason}){}",
                    path.display(),
                    held_back(held)
                );
            }
            false
        }
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
            None,
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
        let h = spawn(dest.clone(), batching, None).unwrap();
        h.send(vec![point(1), point(2)]);
        h.send(vec![point(3)]);
        let stats = h.stats.clone();
        h.close();
        assert_eq!(stats.batches_spooled.load(Ordering::Relaxed), 2);
        assert_eq!(stats.points_written.load(Ordering::Relaxed), 0);
        assert!(!dir.path().join("dead.lp").exists());
        let h = spawn(dest, batching, None).unwrap();
        assert_eq!(h.stats.spool_depth.load(Ordering::Relaxed), 2);
    }
}
