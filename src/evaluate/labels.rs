//! Anomaly labels: NAB-style window files (JSON: file name or relative path →
//! list of `[start, end]` timestamps) and per-point label columns.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};

use crate::dataset::parse_timestamp;

/// What went wrong while reading labels.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LabelError {
    /// The file could not be read.
    #[error("{path}: cannot read labels: {source}")]
    Io {
        /// File.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// Not the expected JSON shape.
    #[error("{path}: labels must be a JSON object mapping file paths to lists of [start, end] pairs: {message}")]
    Format {
        /// File.
        path: PathBuf,
        /// Parser message.
        message: String,
    },
    /// A window bound is not a timestamp.
    #[error("{path}: series `{series}`, window {index}: {value:?} is not a timestamp")]
    BadTime {
        /// File.
        path: PathBuf,
        /// Key in the JSON.
        series: String,
        /// 0-based window index.
        index: usize,
        /// Raw text.
        value: String,
    },
}

/// Label windows per series key, inclusive `[start, end]` in Unix seconds.
#[derive(Debug, Clone, Default)]
pub struct Labels {
    windows: BTreeMap<String, Vec<(i64, i64)>>,
}

impl Labels {
    /// Reads a NAB-format labels file.
    pub fn read(path: &Path) -> Result<Labels, LabelError> {
        let text = std::fs::read_to_string(path).map_err(|source| LabelError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let raw: BTreeMap<String, Vec<Vec<String>>> =
            serde_json::from_str(&text).map_err(|e| LabelError::Format {
                path: path.to_path_buf(),
                message: e.to_string(),
            })?;
        let mut windows = BTreeMap::new();
        for (series, list) in raw {
            let mut out = Vec::new();
            for (index, pair) in list.iter().enumerate() {
                let bad = |value: &str| LabelError::BadTime {
                    path: path.to_path_buf(),
                    series: series.clone(),
                    index,
                    value: value.to_string(),
                };
                if pair.len() != 2 {
                    return Err(LabelError::Format {
                        path: path.to_path_buf(),
                        message: format!(
                            "series `{series}`, window {index}: expected [start, end]"
                        ),
                    });
                }
                let a = parse_timestamp(&pair[0]).ok_or_else(|| bad(&pair[0]))?;
                let b = parse_timestamp(&pair[1]).ok_or_else(|| bad(&pair[1]))?;
                out.push((a.min(b), a.max(b)));
            }
            windows.insert(series.replace('\\', "/"), out);
        }
        Ok(Labels { windows })
    }

    /// Builds labels directly (tests, simulations).
    pub fn from_windows(windows: BTreeMap<String, Vec<(i64, i64)>>) -> Labels {
        Labels { windows }
    }

    /// Windows for a data file: matched by its path relative to the dataset
    /// root, then by any key that is a path suffix of it, then by file name.
    pub fn for_file(&self, relative: &str) -> Option<&Vec<(i64, i64)>> {
        let rel = relative.replace('\\', "/");
        if let Some(w) = self.windows.get(&rel) {
            return Some(w);
        }
        if let Some((_, w)) = self
            .windows
            .iter()
            .find(|(k, _)| rel.ends_with(&format!("/{k}")) || k.ends_with(&format!("/{rel}")))
        {
            return Some(w);
        }
        let name = rel.rsplit('/').next().unwrap_or(&rel);
        self.windows
            .iter()
            .find(|(k, _)| k.rsplit('/').next() == Some(name))
            .map(|(_, w)| w)
    }

    /// Number of series with labels.
    pub fn len(&self) -> usize {
        self.windows.len()
    }

    /// Whether there are no labelled series.
    pub fn is_empty(&self) -> bool {
        self.windows.is_empty()
    }
}

/// Per-point labels from windows: a point is anomalous if it lies in any window.
pub fn point_labels(ts: &[i64], windows: &[(i64, i64)]) -> Vec<bool> {
    ts.iter()
        .map(|&t| windows.iter().any(|&(a, b)| a <= t && t <= b))
        .collect()
}

/// Turns per-point labels into windows (runs of true), for event metrics on
/// label-column data.
pub fn windows_from_points(ts: &[i64], labels: &[bool]) -> Vec<(i64, i64)> {
    let mut out = Vec::new();
    let mut start: Option<i64> = None;
    for (i, (&t, &l)) in ts.iter().zip(labels).enumerate() {
        match (l, start) {
            (true, None) => start = Some(t),
            (false, Some(s)) => {
                out.push((s, ts[i - 1]));
                start = None;
            }
            _ => {}
        }
    }
    if let (Some(s), Some(&last)) = (start, ts.last()) {
        out.push((s, last));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_by_relative_path_suffix_and_name() {
        let mut m = BTreeMap::new();
        m.insert("realAWSCloudwatch/a.csv".to_string(), vec![(1, 2)]);
        m.insert("b.csv".to_string(), vec![(3, 4)]);
        let l = Labels::from_windows(m);
        assert_eq!(l.for_file("realAWSCloudwatch/a.csv"), Some(&vec![(1, 2)]));
        assert_eq!(
            l.for_file("nab/data/realAWSCloudwatch/a.csv"),
            Some(&vec![(1, 2)])
        );
        assert_eq!(l.for_file("x/b.csv"), Some(&vec![(3, 4)]));
        assert_eq!(l.for_file("c.csv"), None);
    }

    #[test]
    fn reads_nab_file_and_reports_bad_times() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("l.json");
        std::fs::write(&p, r#"{"a.csv": [["2014-02-26 13:45:00.000000", "2014-02-27 06:25:00.000000"]], "b.csv": []}"#).unwrap();
        let l = Labels::read(&p).unwrap();
        assert_eq!(l.len(), 2);
        assert_eq!(
            l.for_file("a.csv").unwrap()[0].1 - l.for_file("a.csv").unwrap()[0].0,
            16 * 3600 + 40 * 60
        );
        std::fs::write(&p, r#"{"a.csv": [["soon", "later"]]}"#).unwrap();
        let e = Labels::read(&p).unwrap_err().to_string();
        assert!(e.contains("series `a.csv`, window 0: \"soon\""), "{e}");
    }

    #[test]
    fn points_and_windows_round_trip() {
        let ts: Vec<i64> = (0..10).collect();
        let labels = point_labels(&ts, &[(2, 4), (8, 20)]);
        assert_eq!(
            labels,
            vec![false, false, true, true, true, false, false, false, true, true]
        );
        assert_eq!(windows_from_points(&ts, &labels), vec![(2, 4), (8, 9)]);
    }
}
