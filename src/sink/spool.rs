//! Durable on-disk spool of line-protocol batches that could not be written.
//!
//! One file per batch, named by a zero-padded sequence number, written to a
//! temporary name and renamed (so a crash never leaves half a batch under a
//! real name). Replay takes the lowest number first and deletes a file only
//! after the server accepted it. The total size is bounded: a batch that
//! does not fit is refused and the caller dead-letters it.
//!
//! Batches are opaque bytes (whatever the encoder or an earlier version
//! wrote). A file that cannot be read is moved aside to `quarantine/`,
//! counted and logged once, and replay goes on with the next one, oldest
//! first.

use std::{
    fs,
    io::Write,
    path::{Path, PathBuf},
};

use super::SinkError;

/// The spool directory.
#[derive(Debug)]
pub struct Spool {
    dir: PathBuf,
    max_bytes: u64,
    next: u64,
    quarantined: u64,
}

const EXT: &str = "lp";
/// Where unreadable batches are moved.
pub const QUARANTINE: &str = "quarantine";

impl Spool {
    /// Opens (creating) `dir`; batches left by an earlier run are kept for
    /// replay.
    pub fn open(dir: &Path, max_bytes: u64) -> Result<Spool, SinkError> {
        fs::create_dir_all(dir).map_err(|e| SinkError::io(dir, e))?;
        let mut s = Spool {
            dir: dir.to_path_buf(),
            max_bytes,
            next: 0,
            quarantined: 0,
        };
        s.next = s.entries()?.last().map_or(0, |(n, _)| n + 1);
        Ok(s)
    }

    /// Spooled batches in order: (sequence number, path).
    fn entries(&self) -> Result<Vec<(u64, PathBuf)>, SinkError> {
        super::numbered(&self.dir, EXT)
    }

    /// Number of spooled batches.
    pub fn len(&self) -> usize {
        self.entries().map(|e| e.len()).unwrap_or(0)
    }

    /// Whether nothing is spooled.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes spooled.
    pub fn bytes(&self) -> u64 {
        self.entries()
            .map(|e| {
                e.iter()
                    .filter_map(|(_, p)| fs::metadata(p).ok())
                    .map(|m| m.len())
                    .sum()
            })
            .unwrap_or(0)
    }

    /// Appends a batch. Returns false (nothing written) when it would push
    /// the spool over its bound.
    pub fn push(&mut self, batch: &[u8]) -> Result<bool, SinkError> {
        if self.bytes() + batch.len() as u64 > self.max_bytes {
            return Ok(false);
        }
        let name = self.dir.join(format!("{:020}.{EXT}", self.next));
        let tmp = self.dir.join(format!("{:020}.tmp", self.next));
        let written = fs::File::create(&tmp).and_then(|mut f| {
            f.write_all(batch)?;
            f.sync_data()
        });
        if let Err(e) = written {
            // Nothing half-written stays behind (a full disk).
            let _ = fs::remove_file(&tmp);
            return Err(SinkError::io(&tmp, e));
        }
        if let Err(e) = fs::rename(&tmp, &name) {
            let _ = fs::remove_file(&tmp);
            return Err(SinkError::io(&name, e));
        }
        self.next += 1;
        Ok(true)
    }

    /// The oldest readable batch, if any: (its path, its bytes). A file that
    /// cannot be read is quarantined (see [`Spool::quarantined`]) and the
    /// next one taken.
    pub fn peek(&mut self) -> Result<Option<(PathBuf, Vec<u8>)>, SinkError> {
        for (_, p) in self.entries()? {
            match fs::read(&p) {
                Ok(bytes) => return Ok(Some((p, bytes))),
                Err(e) => self.quarantine(&p, &e)?,
            }
        }
        Ok(None)
    }

    /// Moves an unreadable batch to `quarantine/` (logged once, counted).
    fn quarantine(&mut self, path: &Path, why: &std::io::Error) -> Result<(), SinkError> {
        let dir = self.dir.join(QUARANTINE);
        fs::create_dir_all(&dir).map_err(|e| SinkError::io(&dir, e))?;
        let to = dir.join(path.file_name().unwrap_or_default());
        fs::rename(path, &to).map_err(|e| SinkError::io(path, e))?;
        self.quarantined += 1;
        tracing::error!(
            "spool: cannot read {} ({why}): moved to {}; replay goes on with the next batch",
            path.display(),
            to.display()
        );
        Ok(())
    }

    /// Batches moved to `quarantine/` since this spool was opened.
    pub fn quarantined(&self) -> u64 {
        self.quarantined
    }

    /// Removes a batch returned by [`Spool::peek`] once it is written.
    pub fn remove(&self, path: &Path) -> Result<(), SinkError> {
        fs::remove_file(path).map_err(|e| SinkError::io(path, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replays_in_order_across_reopen_and_respects_the_bound() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Spool::open(dir.path(), 20).unwrap();
        assert!(s.push(b"a 1\n").unwrap());
        assert!(s.push(b"b 2\n").unwrap());
        assert!(!s.push(b"c much too long for the bound\n").unwrap());
        drop(s);
        // A restart sees what was left and keeps numbering after it.
        let mut s = Spool::open(dir.path(), 20).unwrap();
        assert_eq!(s.len(), 2);
        assert!(s.push(b"c 3\n").unwrap());
        let mut seen = Vec::new();
        while let Some((p, t)) = s.peek().unwrap() {
            seen.push(t);
            s.remove(&p).unwrap();
        }
        assert_eq!(seen, [&b"a 1\n"[..], b"b 2\n", b"c 3\n"]);
        assert!(s.is_empty());
    }

    #[test]
    fn any_bytes_are_kept_and_an_unreadable_batch_is_quarantined_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Spool::open(dir.path(), 1 << 20).unwrap();
        assert!(s.push(b"a \xff\xfe 1\n").unwrap());
        assert!(s.push(b"b 2\n").unwrap());
        assert!(s.push(b"c 3\n").unwrap());
        // The middle batch becomes unreadable (a directory under its name).
        let (_, mid) = s.entries().unwrap()[1].clone();
        fs::remove_file(&mid).unwrap();
        fs::create_dir(&mid).unwrap();
        let mut seen = Vec::new();
        while let Some((p, t)) = s.peek().unwrap() {
            seen.push(t);
            s.remove(&p).unwrap();
        }
        assert_eq!(seen, [&b"a \xff\xfe 1\n"[..], b"c 3\n"]);
        assert_eq!(s.quarantined(), 1);
        assert!(dir
            .path()
            .join(QUARANTINE)
            .join(mid.file_name().unwrap())
            .exists());
        assert!(s.is_empty());
    }
}
