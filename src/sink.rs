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
//!
//! This file holds the handle the monitor writes through; `worker` is the
//! sink thread, `files` the files it keeps (points file, spool replay,
//! dead letters).

mod files;
pub mod influx;
pub mod influx2;
pub mod schema;
pub mod spool;
pub mod wal;
mod worker;

use files::numbered;
pub use worker::spawn;

use std::{
    path::{Path, PathBuf},
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        mpsc, Arc, Mutex,
    },
    thread,
    time::Duration,
};

use thiserror::Error;

use self::{schema::Point, wal::Wal};
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
