//! Write-ahead log: every poll's judged points are on disk before the poll
//! ends, so neither `kill -9` nor a second Ctrl-C loses them.
//!
//! One file per poll (`wal/<sequence>.lp`, line protocol), written and
//! `fdatasync`ed by the monitor's thread before the points are queued for
//! the sink thread. The sink deletes a poll's file once its points are
//! somewhere durable: accepted by the target, in the spool, or in the
//! dead-letter file. A file still present at start belongs to a run that
//! ended before that, and is handed to the sink first (into the spool, or
//! appended to the points file). A point may so be written twice, never
//! lost; InfluxDB keeps one of two identical points.
//!
//! Cost: one small file and one `fdatasync` per poll (the figure is in the
//! README); nothing per point.

use std::{
    fs,
    io::Write,
    path::{Path, PathBuf},
};

use super::SinkError;

const EXT: &str = "lp";

/// The log's directory (cheap to clone; the sink thread uses it to delete
/// and recover entries).
#[derive(Debug, Clone)]
pub struct WalDir {
    dir: PathBuf,
}

/// Appends entries (the monitor's side).
#[derive(Debug)]
pub struct Wal {
    dir: WalDir,
    next: u64,
}

impl WalDir {
    /// The file of entry `seq`.
    pub fn path(&self, seq: u64) -> PathBuf {
        self.dir.join(format!("{seq:020}.{EXT}"))
    }

    /// Entries present, oldest first.
    pub fn entries(&self) -> Result<Vec<u64>, SinkError> {
        Ok(super::numbered(&self.dir, EXT)?
            .into_iter()
            .map(|(n, _)| n)
            .collect())
    }

    /// The bytes of entry `seq`.
    pub fn read(&self, seq: u64) -> Result<Vec<u8>, SinkError> {
        let p = self.path(seq);
        fs::read(&p).map_err(|e| SinkError::io(&p, e))
    }

    /// Deletes entry `seq` (its points are durable elsewhere).
    pub fn remove(&self, seq: u64) -> Result<(), SinkError> {
        let p = self.path(seq);
        match fs::remove_file(&p) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(SinkError::io(&p, e)),
            _ => Ok(()),
        }
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Wal {
    /// Opens (creating) `dir`; entries left by an earlier run stay for
    /// [`WalDir::entries`], and numbering continues after them.
    pub fn open(dir: &Path) -> Result<Wal, SinkError> {
        fs::create_dir_all(dir).map_err(|e| SinkError::io(dir, e))?;
        let dir = WalDir {
            dir: dir.to_path_buf(),
        };
        let next = dir.entries()?.last().map_or(0, |n| n + 1);
        Ok(Wal { dir, next })
    }

    /// The directory, for the sink thread.
    pub fn dir(&self) -> WalDir {
        self.dir.clone()
    }

    /// Writes `bytes` as the next entry and syncs it; its sequence number.
    /// On error nothing is left behind.
    pub fn append(&mut self, bytes: &[u8]) -> Result<u64, SinkError> {
        let seq = self.next;
        let path = self.dir.path(seq);
        let res = fs::File::create(&path).and_then(|mut f| {
            f.write_all(bytes)?;
            f.sync_data()
        });
        if let Err(e) = res {
            let _ = fs::remove_file(&path);
            return Err(SinkError::io(&path, e));
        }
        self.next += 1;
        Ok(seq)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_survive_a_reopen_in_order_until_removed() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = Wal::open(dir.path()).unwrap();
        assert_eq!(w.append(b"a 1\n").unwrap(), 0);
        assert_eq!(w.append(b"b 2\n").unwrap(), 1);
        w.dir().remove(0).unwrap();
        drop(w);
        let mut w = Wal::open(dir.path()).unwrap();
        assert_eq!(w.dir().entries().unwrap(), [1]);
        assert_eq!(w.append(b"c 3\n").unwrap(), 2);
        let d = w.dir();
        assert_eq!(d.entries().unwrap(), [1, 2]);
        assert_eq!(d.read(2).unwrap(), b"c 3\n");
        d.remove(1).unwrap();
        d.remove(1).unwrap();
        assert_eq!(d.entries().unwrap(), [2]);
    }
}
