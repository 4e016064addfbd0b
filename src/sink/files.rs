//! The files the sink thread keeps: numbered entries (spool, write-ahead
//! log), the points file cut back to whole lines and appended to whole or
//! not at all, the spool replayed in order, batches spooled or
//! dead-lettered.

use std::{
    fs::OpenOptions,
    io::{Read, Seek, SeekFrom, Write},
    path::{Path, PathBuf},
    sync::atomic::{AtomicBool, Ordering},
};

use super::{
    influx::{Outcome, Writer},
    spool::Spool,
    SinkError, SinkStats, SPOOL_LOG,
};
use crate::logfile::throttle::held_back;

/// Files `<number>.<ext>` in `dir`, sorted by number (the spool's and the
/// write-ahead log's entries).
pub(super) fn numbered(dir: &Path, ext: &str) -> Result<Vec<(u64, PathBuf)>, SinkError> {
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
pub(super) fn repair_last_line(path: &Path) -> Result<(), SinkError> {
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

/// Appends `bytes` to `path` whole or not at all: on error the file is cut
/// back to its length before the append.
pub(super) fn append(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
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
pub(super) fn count_points(bytes: &[u8]) -> u64 {
    bytes
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty() && l[0] != b'#')
        .count() as u64
}

/// Replays the spool in order; false when the server is still unavailable
/// (or the spool cannot be read: order is kept, nothing newer goes ahead).
pub(super) fn replay(
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
pub(super) fn spool_batch(
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
pub(super) fn dead_letter_batch(
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
