//! The application log file: `log_dir/cpu-anomaly.log`, rotated by size
//! (`.1` is the newest old file, `.{keep}` the oldest; older ones are
//! deleted), so a monitor running for months never fills the disk.
//! [`throttle`] keeps a repeating fault from flooding it.

pub mod throttle;

use std::{
    fs::{self, File, OpenOptions},
    io::{self, Write},
    path::{Path, PathBuf},
};

/// A log file that rotates when it grows past `max_bytes`.
#[derive(Debug)]
pub struct RotatingFile {
    path: PathBuf,
    max_bytes: u64,
    keep: usize,
    file: File,
    size: u64,
}

impl RotatingFile {
    /// Opens (appending to) `path`.
    pub fn open(path: &Path, max_bytes: u64, keep: usize) -> io::Result<RotatingFile> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            fs::create_dir_all(dir)?;
        }
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        let size = file.metadata()?.len();
        Ok(RotatingFile {
            path: path.to_path_buf(),
            max_bytes,
            keep,
            file,
            size,
        })
    }

    fn numbered(&self, n: usize) -> PathBuf {
        let mut p = self.path.clone().into_os_string();
        p.push(format!(".{n}"));
        p.into()
    }

    fn rotate(&mut self) -> io::Result<()> {
        self.file.flush()?;
        let _ = fs::remove_file(self.numbered(self.keep));
        for n in (1..self.keep).rev() {
            let from = self.numbered(n);
            if from.exists() {
                fs::rename(&from, self.numbered(n + 1))?;
            }
        }
        if self.keep > 0 {
            fs::rename(&self.path, self.numbered(1))?;
        }
        self.file = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .open(&self.path)?;
        self.size = 0;
        Ok(())
    }
}

impl Write for RotatingFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.write(buf)?;
        self.size += n as u64;
        // Rotate only after a newline, so no line is split across files: a
        // file ends at most one line past `max_bytes`.
        if n > 0 && buf[n - 1] == b'\n' && self.size >= self.max_bytes {
            self.rotate()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotates_and_keeps_a_bounded_number_of_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app.log");
        let mut f = RotatingFile::open(&path, 100, 2).unwrap();
        for i in 0..10 {
            // In pieces, as `writeln!` does: rotation waits for the newline.
            write!(f, "{i}: ").unwrap();
            writeln!(f, "{}", "x".repeat(45)).unwrap();
        }
        f.flush().unwrap();
        let names: Vec<String> = {
            let mut v: Vec<String> = fs::read_dir(dir.path())
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            v.sort();
            v
        };
        assert_eq!(names, ["app.log", "app.log.1", "app.log.2"]);
        // 49-byte lines, rotation once a file reaches 100 bytes: three lines
        // per file, the newest in the live file, the oldest ones deleted.
        let read = |name: &str| fs::read_to_string(dir.path().join(name)).unwrap();
        assert_eq!(read("app.log").lines().next().unwrap()[..3], *"9: ");
        assert_eq!(read("app.log.1").lines().next().unwrap()[..3], *"6: ");
        assert_eq!(read("app.log.2").lines().next().unwrap()[..3], *"3: ");
        for name in ["app.log.1", "app.log.2"] {
            assert_eq!(read(name).lines().count(), 3);
        }
    }
}
