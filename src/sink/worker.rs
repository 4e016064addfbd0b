//! The sink thread: batches points by size and age, writes them to the
//! points file or to InfluxDB, spools what InfluxDB cannot take now,
//! dead-letters what it refuses for good, replays the write-ahead log and
//! the spool, and owns each poll's log entry until its points are durable.

use std::{
    path::{Path, PathBuf},
    sync::{
        atomic::{AtomicBool, Ordering},
        mpsc, Arc, Mutex,
    },
    thread,
    time::Instant,
};

use super::files::{
    append, count_points, dead_letter_batch, repair_last_line, replay, spool_batch,
};
use super::{
    influx::{self, Outcome, Writer},
    spool::Spool,
    wal::{Wal, WalDir},
    Batching, Destination, Msg, SinkError, SinkHandle, SinkStats, APPEND_LOG, MAX_BUFFER_BYTES,
    QUEUE_POLLS, WAL_LOG,
};
use crate::logfile::throttle::held_back;

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
