//! The series' decision states kept across a restart: written when the
//! monitor stops cleanly (SIGINT/SIGTERM or `--ticks`) and every
//! `decision_state_interval` while it runs (so a crash loses at most that
//! much), read when it starts ([`Keeper`]). Without them every restart would begin each series afresh: a
//! week of score statistics, the largest deviations and the per-hour
//! record of daily jobs forgotten, so each host's first daily job or
//! first burst after a restart would page, and an alert firing at the stop
//! would page again.
//!
//! One JSON file, `{"format", "version", "saved_at", "series": {id:
//! state}}`; a state that does not read back (another version, a value
//! JSON cannot hold) or was kept under other decision settings starts
//! afresh, the others are kept.

use std::{
    collections::HashMap,
    io::Write,
    path::{Path, PathBuf},
    sync::Arc,
    thread::JoinHandle,
    time::{Duration, Instant},
};

use serde_json::{Map, Value};

use crate::detect::{Decider, DecisionSettings};

/// The file's `format`.
pub const FORMAT: &str = "cpu-anomaly-decisions";
/// The file's `version`.
pub const VERSION: u64 = 1;

/// A kept state no series has claimed since the start (the series has not
/// reappeared: Prometheus down, a host being rebuilt) is written back with
/// the others while its last sample is under this old (seconds): a week,
/// the span of its score statistics. Older ones are dropped, so the file
/// does not keep every host that ever went away.
pub const UNCLAIMED_KEPT_FOR: i64 = 7 * 86_400;

/// The monitor's keeper of the decision states: what the last run kept
/// (until each series claims its own), a snapshot written on a thread of
/// its own every `every` while running, and the final write at a clean
/// stop.
#[derive(Debug)]
pub struct Keeper {
    path: PathBuf,
    /// States read at the start that no series has claimed yet.
    unclaimed: HashMap<String, Decider>,
    every: Option<Duration>,
    written: Instant,
    writer: Option<JoinHandle<()>>,
}

impl Keeper {
    /// Reads what the last run kept at `path` under any of `settings` (the
    /// top level's and each `alert_overrides` group's; logged: how many
    /// resume, how many start afresh); a file that does not read is said
    /// once and every series starts afresh.
    pub fn open(path: PathBuf, settings: &[DecisionSettings], every: Option<Duration>) -> Keeper {
        let unclaimed = match load(&path, settings) {
            Ok((kept, left)) => {
                if !kept.is_empty() || left > 0 {
                    tracing::info!(
                        "resuming the decision state of {} series from {}{}",
                        kept.len(),
                        path.display(),
                        if left > 0 {
                            format!(
                                " ({left} start afresh: kept under other alert settings or unreadable)"
                            )
                        } else {
                            String::new()
                        }
                    );
                }
                kept
            }
            Err(e) => {
                tracing::warn!("{e}; every series starts its decision state afresh");
                HashMap::new()
            }
        };
        Keeper {
            path,
            unclaimed,
            every,
            written: Instant::now(),
            writer: None,
        }
    }

    /// The state the last run kept for series `id`, once, if it was kept
    /// under `settings` (the series' own: a series that moved to another
    /// `alert_overrides` group starts afresh).
    pub fn claim(&mut self, id: &str, settings: &DecisionSettings) -> Option<Decider> {
        self.unclaimed.remove(id).and_then(|d| d.resume(settings))
    }

    /// A periodic write is due.
    pub fn due(&self) -> bool {
        self.every
            .is_some_and(|every| self.written.elapsed() >= every)
    }

    /// A snapshot of the series' states (and the recent unclaimed ones)
    /// written on a thread of its own: 10,000 series are ~10 MB of JSON, a
    /// quarter of a second or more with the sync, which the poll loop does
    /// not wait for. A write still in progress is not overlapped.
    pub fn write_behind<'a>(&mut self, series: impl Iterator<Item = (&'a str, &'a Decider)>) {
        self.written = Instant::now();
        if self.writer.as_ref().is_some_and(|w| !w.is_finished()) {
            return;
        }
        let own = |(id, d): (&str, &Decider)| (Arc::<str>::from(id), d.clone());
        let mut snapshot: Vec<(Arc<str>, Decider)> = series.map(own).collect();
        snapshot.extend(self.recent_unclaimed().map(own));
        let path = self.path.clone();
        let writer = std::thread::Builder::new()
            .name("decisions".into())
            .spawn(move || {
                let start = Instant::now();
                match save(&path, snapshot.iter().map(|(id, d)| (&**id, d))) {
                    Ok(n) => tracing::debug!(
                        "wrote the decision state of {n} series to {} in {:.3} s",
                        path.display(),
                        start.elapsed().as_secs_f64()
                    ),
                    Err(e) => tracing::warn!("cannot keep the series' decision states: {e}"),
                }
            });
        match writer {
            Ok(w) => self.writer = Some(w),
            Err(e) => tracing::warn!("cannot start writing the series' decision states: {e}"),
        }
    }

    /// The write at a clean stop, after the periodic one in progress.
    pub fn write_final<'a>(mut self, series: impl Iterator<Item = (&'a str, &'a Decider)>) {
        if let Some(w) = self.writer.take() {
            let _ = w.join();
        }
        let mut all: Vec<(&str, &Decider)> = Vec::new();
        for kept in series {
            all.push(kept);
        }
        all.extend(self.recent_unclaimed());
        match save(&self.path, all.into_iter()) {
            Ok(n) => tracing::info!(
                "kept the decision state of {n} series in {}",
                self.path.display()
            ),
            Err(e) => tracing::warn!("cannot keep the series' decision states: {e}"),
        }
    }

    /// The unclaimed states whose last sample is under
    /// [`UNCLAIMED_KEPT_FOR`] old.
    fn recent_unclaimed(&self) -> impl Iterator<Item = (&str, &Decider)> + '_ {
        let now = chrono::Utc::now().timestamp();
        self.unclaimed
            .iter()
            .filter(move |(_, d)| d.last_seen().is_some_and(|t| now - t < UNCLAIMED_KEPT_FOR))
            .map(|(id, d)| (id.as_str(), d))
    }
}

/// Why the file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// Reading or writing failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// Not a decision-state file this version reads.
    #[error("{path}: {message} (delete it to start every series afresh)")]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

/// The file for a replica: `decisions.json` beside the per-series model
/// directory, or `decisions-shard-<i>-of-<n>.json` for a sharded replica
/// (replicas may share the directory).
pub fn path_for(dir: &Path, shard: Option<(u32, u32)>) -> PathBuf {
    match shard {
        Some((i, n)) => dir.join(format!("decisions-shard-{i}-of-{n}.json")),
        None => dir.join("decisions.json"),
    }
}

/// The states read from `path` that were kept under one of `settings`,
/// and how many were left out (unreadable or kept under other settings). A
/// missing file is no state.
pub fn load(
    path: &Path,
    settings: &[DecisionSettings],
) -> Result<(HashMap<String, Decider>, usize), StateError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((HashMap::new(), 0)),
        Err(source) => {
            return Err(StateError::Io {
                path: path.to_path_buf(),
                source,
            })
        }
    };
    let bad = |message: String| StateError::Format {
        path: path.to_path_buf(),
        message,
    };
    let value: Value = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
    let format = value.get("format").and_then(Value::as_str);
    if format != Some(FORMAT) {
        return Err(bad(format!("format {format:?}, expected {FORMAT:?}")));
    }
    let version = value.get("version").and_then(Value::as_u64);
    if version != Some(VERSION) {
        return Err(bad(format!("version {version:?}, expected {VERSION}")));
    }
    let Some(series) = value.get("series").and_then(Value::as_object) else {
        return Err(bad("no \"series\" object".into()));
    };
    let mut kept = HashMap::with_capacity(series.len());
    let mut left = 0;
    for (id, state) in series {
        match serde_json::from_value::<Decider>(state.clone())
            .ok()
            .and_then(|d| {
                let s = *settings.iter().find(|s| *s == d.settings())?;
                d.resume(&s)
            }) {
            Some(d) => {
                kept.insert(id.clone(), d);
            }
            None => left += 1,
        }
    }
    Ok((kept, left))
}

/// Writes the states to `path` (through a temporary file renamed over
/// it, so a crash mid-write leaves the previous file), creating its
/// directory. Returns how many were written.
pub fn save<'a>(
    path: &Path,
    states: impl Iterator<Item = (&'a str, &'a Decider)>,
) -> Result<usize, StateError> {
    let io = |source| StateError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut series = Map::new();
    for (id, d) in states {
        if let Ok(v) = serde_json::to_value(d) {
            series.insert(id.to_string(), v);
        }
    }
    let n = series.len();
    let file = serde_json::json!({
        "format": FORMAT,
        "version": VERSION,
        "saved_at": chrono::Utc::now().to_rfc3339(),
        "series": series,
    });
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let tmp = path.with_extension("json.tmp");
    let mut f = std::io::BufWriter::new(std::fs::File::create(&tmp).map_err(io)?);
    serde_json::to_writer(&mut f, &file).map_err(|e| io(e.into()))?;
    f.flush().map_err(io)?;
    f.get_ref().sync_all().map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)?;
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> DecisionSettings {
        DecisionSettings::default()
    }

    fn learnt(k: i64) -> Decider {
        let mut d = Decider::new(settings());
        for i in 0..50 {
            d.update(i * 300, 50.0 + (i % 3) as f64, 50.0, 48.0, 52.0, 0.95);
        }
        d.update(50 * 300 + k, 90.0, 50.0, 48.0, 52.0, 0.95);
        d
    }

    #[test]
    fn states_read_back_as_written_and_other_settings_start_afresh() {
        let dir = tempfile::tempdir().unwrap();
        let path = path_for(dir.path(), None);
        assert_eq!(
            load(&path, &[settings()]).unwrap().0.len(),
            0,
            "no file, no state"
        );
        let (a, b) = (learnt(0), learnt(7));
        let n = save(
            &path,
            [("host-a:9100", &a), ("host-b:9100", &b)].into_iter(),
        )
        .unwrap();
        assert_eq!(n, 2);
        let (kept, left) = load(&path, &[settings()]).unwrap();
        assert_eq!((kept.len(), left), (2, 0));
        assert_eq!(kept["host-a:9100"], a);
        assert_eq!(kept["host-b:9100"], b);
        let other = DecisionSettings {
            multiplier: settings().multiplier + 1.0,
            ..settings()
        };
        let (kept, left) = load(&path, &[other]).unwrap();
        assert_eq!((kept.len(), left), (0, 2));
        assert!(!path.with_extension("json.tmp").exists());
    }

    #[test]
    fn a_state_resumes_only_under_its_own_groups_settings() {
        let dir = tempfile::tempdir().unwrap();
        let path = path_for(dir.path(), None);
        let group = DecisionSettings {
            likelihood: 0.0001,
            ..settings()
        };
        let mut b = Decider::new(group);
        b.update(0, 50.0, 50.0, 48.0, 52.0, 0.95);
        save(&path, [("a", &learnt(0)), ("b", &b)].into_iter()).unwrap();
        let mut k = Keeper::open(path.clone(), &[settings(), group], None);
        assert_eq!(k.claim("b", &group), Some(b.clone()));
        assert_eq!(k.claim("a", &group), None, "a moved to the group: afresh");
        assert_eq!(k.claim("a", &settings()), None, "claimed once");
        let mut k = Keeper::open(path, &[settings()], None);
        assert!(k.claim("a", &settings()).is_some());
        assert_eq!(k.claim("b", &group), None, "the group is gone");
    }

    #[test]
    fn a_damaged_state_is_left_out_and_a_foreign_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = path_for(dir.path(), Some((1, 3)));
        assert!(path.ends_with("decisions-shard-1-of-3.json"));
        save(&path, [("a", &learnt(0))].into_iter()).unwrap();
        let mut v: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        v["series"]["b"] = serde_json::json!({"seen": "many"});
        std::fs::write(&path, v.to_string()).unwrap();
        let (kept, left) = load(&path, &[settings()]).unwrap();
        assert_eq!((kept.len(), left), (1, 1));
        std::fs::write(&path, r#"{"format": "something-else"}"#).unwrap();
        let e = load(&path, &[settings()]).unwrap_err().to_string();
        assert!(
            e.contains("decisions-shard-1-of-3.json") && e.contains("something-else"),
            "{e}"
        );
        std::fs::write(&path, "{").unwrap();
        let e = load(&path, &[settings()]).unwrap_err().to_string();
        assert!(e.contains("delete it"), "{e}");
    }
}
