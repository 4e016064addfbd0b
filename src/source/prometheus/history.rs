//! History of many series at once, in bounded memory.
//!
//! One range query returns every series the PromQL selects, so training a
//! fleet asks for all of them together, in time windows small enough that
//! no reply exceeds about [`POINTS_PER_REPLY`] points (a few MB). A few new
//! series in a large fleet instead ask only for themselves: the query is
//! wrapped as `(Q) and on(labels) (their label sets)`, which any
//! Prometheus-compatible server evaluates. Replies are parsed as they arrive
//! straight into one `f32` row per wanted series on the training grid
//! (`start + k·step`); series nobody asked for are skipped.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use super::{reply::ResultSink, series_id, Client, Labels, PromError};

/// Target size of one range reply, in points (≈ 20 bytes of JSON each).
pub const POINTS_PER_REPLY: usize = 200_000;
/// Prometheus refuses more than 11,000 points per series in one query.
pub const MAX_POINTS_PER_SERIES: usize = 10_000;
/// At most this many series are fetched by their own label sets; bigger
/// jobs, or jobs covering a quarter of the fleet or more, fetch the whole
/// query and keep what they want.
pub const FILTER_MAX_SERIES: usize = 500;
/// Longest restricted query sent: VictoriaMetrics refuses queries over
/// 16 KiB by default (`-search.maxQueryLen`), so longer lists of label sets
/// are split over several queries.
pub const MAX_QUERY_BYTES: usize = 15_000;

/// The history of one series on the training grid.
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesHistory {
    /// Timestamp of `values[0]`.
    pub start: i64,
    /// Grid step, seconds.
    pub step: i64,
    /// Values; NaN where the server had none.
    pub values: Vec<f32>,
}

impl SeriesHistory {
    /// The points that exist, as timestamps and values.
    pub fn points(&self) -> (Vec<i64>, Vec<f64>) {
        self.values
            .iter()
            .enumerate()
            .filter(|(_, v)| !v.is_nan())
            .map(|(k, &v)| (self.start + k as i64 * self.step, f64::from(v)))
            .unzip()
    }

    /// Seconds between the first and last point (0 with fewer than two).
    pub fn span(&self) -> i64 {
        let first = self.values.iter().position(|v| !v.is_nan());
        let last = self.values.iter().rposition(|v| !v.is_nan());
        match (first, last) {
            (Some(a), Some(b)) => (b - a) as i64 * self.step,
            _ => 0,
        }
    }

    /// Points that exist.
    pub fn count(&self) -> usize {
        self.values.iter().filter(|v| !v.is_nan()).count()
    }
}

/// Wanted series and the rows their points go to.
#[derive(Debug)]
pub struct HistoryGrid {
    start: i64,
    step: i64,
    len: usize,
    index: HashMap<String, usize>,
    rows: Vec<Vec<f32>>,
    current: Option<usize>,
}

impl HistoryGrid {
    /// An empty grid `start, start + step, …` of `len` points for `ids`.
    pub fn new(start: i64, step: i64, len: usize, ids: impl IntoIterator<Item = String>) -> Self {
        let index: HashMap<String, usize> =
            ids.into_iter().enumerate().map(|(i, id)| (id, i)).collect();
        HistoryGrid {
            start,
            step: step.max(1),
            len,
            rows: vec![Vec::new(); index.len()],
            index,
            current: None,
        }
    }

    /// Takes the history of `id` out of the grid (`None`: not wanted; an
    /// empty history: the server had nothing for it).
    pub fn take(&mut self, id: &str) -> Option<SeriesHistory> {
        let &row = self.index.get(id)?;
        let mut values = std::mem::take(&mut self.rows[row]);
        if values.is_empty() {
            values = vec![f32::NAN; self.len];
        }
        Some(SeriesHistory {
            start: self.start,
            step: self.step,
            values,
        })
    }
}

impl ResultSink for HistoryGrid {
    fn series(&mut self, labels: Labels) -> bool {
        self.current = self.index.get(&series_id(&labels)).copied();
        self.current.is_some()
    }

    fn point(&mut self, t: f64, v: f64) {
        let Some(row) = self.current else { return };
        let k = ((t - self.start as f64) / self.step as f64).round();
        if k < 0.0 || k >= self.len as f64 {
            return;
        }
        let r = &mut self.rows[row];
        if r.is_empty() {
            // Allocated on the first point: series the server does not
            // have cost nothing.
            *r = vec![f32::NAN; self.len];
        }
        r[k as usize] = v as f32;
    }
}

/// The windows one history fetch runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// First grid timestamp.
    pub start: i64,
    /// Grid step.
    pub step: i64,
    /// Grid points.
    pub len: usize,
    /// (start, end) of each range query, inclusive, on the grid.
    pub windows: Vec<(i64, i64)>,
}

/// Plans `span` seconds of history ending at `now` (aligned down to `step`)
/// for replies holding about `series` series each.
pub fn plan(now: i64, span: i64, step: i64, series: usize) -> Plan {
    let step = step.max(1);
    let end = now.div_euclid(step) * step;
    let len = (span / step).max(1) as usize + 1;
    let start = end - (len as i64 - 1) * step;
    let per = (POINTS_PER_REPLY / series.max(1)).clamp(1, MAX_POINTS_PER_SERIES);
    let windows = (0..len)
        .step_by(per)
        .map(|k0| {
            let k1 = (k0 + per - 1).min(len - 1);
            (start + k0 as i64 * step, start + k1 as i64 * step)
        })
        .collect();
    Plan {
        start,
        step,
        len,
        windows,
    }
}

/// `query` restricted to the series with these label sets: `(query) and
/// on(…) (one 1-valued sample per label set)`. `__name__` is left out of
/// the match (a selector's result carries it; the wanted series are picked
/// by their full labels when the reply is read).
pub fn filtered(query: &str, series: &[&Labels]) -> String {
    let names = match_names(series);
    if names.is_empty() || series.is_empty() {
        return query.to_string();
    }
    let terms: Vec<String> = series.iter().map(|l| term(l, &names)).collect();
    wrap(query, &names, &terms)
}

/// `query` restricted to `series`, split into queries of at most
/// [`MAX_QUERY_BYTES`] (each with at least one label set); returns each
/// query with the number of series it asks for.
pub fn filtered_chunks(query: &str, series: &[&Labels]) -> Vec<(String, usize)> {
    let names = match_names(series);
    if names.is_empty() || series.is_empty() {
        return vec![(query.to_string(), series.len())];
    }
    let base = wrap(query, &names, &[]).len();
    let mut out = Vec::new();
    let mut terms: Vec<String> = Vec::new();
    let mut len = base;
    for l in series {
        let t = term(l, &names);
        if !terms.is_empty() && len + t.len() + 4 > MAX_QUERY_BYTES {
            out.push((wrap(query, &names, &terms), terms.len()));
            terms.clear();
            len = base;
        }
        len += t.len() + 4;
        terms.push(t);
    }
    if !terms.is_empty() {
        out.push((wrap(query, &names, &terms), terms.len()));
    }
    out
}

fn match_names<'a>(series: &[&'a Labels]) -> Vec<&'a str> {
    let mut names: Vec<&str> = series
        .iter()
        .flat_map(|l| l.keys().map(String::as_str))
        .filter(|k| *k != "__name__")
        .collect();
    names.sort_unstable();
    names.dedup();
    names
}

fn term(labels: &Labels, names: &[&str]) -> String {
    let mut e = "vector(1)".to_string();
    for name in names {
        if let Some(v) = labels.get(*name) {
            e = format!(
                "label_replace({e}, \"{name}\", \"{}\", \"\", \"\")",
                escape(&v.replace('$', "$$"))
            );
        }
    }
    e
}

fn wrap(query: &str, names: &[&str], terms: &[String]) -> String {
    format!(
        "({query}) and on({}) ({})",
        names.join(", "),
        terms.join(" or ")
    )
}

/// A PromQL double-quoted string's content.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c => out.push(c),
        }
    }
    out
}

/// What one fetch did.
#[derive(Debug, Clone, Default)]
pub struct FetchStats {
    /// Range queries run.
    pub requests: usize,
    /// Whether the query was restricted to the wanted series.
    pub filtered: bool,
}

/// Fetches `span` seconds of history ending at `now` at `step` for
/// `wanted` (series id and labels) from `query`, whose whole result holds
/// about `fleet` series.
pub async fn fetch(
    client: &Client,
    query: &str,
    wanted: &[(String, Labels)],
    fleet: usize,
    now: i64,
    span: i64,
    step: i64,
) -> Result<(HistoryGrid, FetchStats), PromError> {
    let small = wanted.len() <= FILTER_MAX_SERIES && wanted.len() * 4 < fleet;
    let queries = if small {
        let labels: Vec<&Labels> = wanted.iter().map(|(_, l)| l).collect();
        filtered_chunks(query, &labels)
    } else {
        // New series may have appeared since `fleet` was counted.
        vec![(query.to_string(), fleet.max(wanted.len()) + fleet / 10)]
    };
    let grid_plan = plan(now, span, step, 1);
    let grid = Arc::new(Mutex::new(HistoryGrid::new(
        grid_plan.start,
        grid_plan.step,
        grid_plan.len,
        wanted.iter().map(|(id, _)| id.clone()),
    )));
    let mut stats = FetchStats {
        requests: 0,
        filtered: small,
    };
    for (promql, per_reply) in queries {
        for &(ws, we) in &plan(now, span, step, per_reply).windows {
            stats.requests += 1;
            client
                .query_range_into(&promql, ws, we, step.max(1), &grid)
                .await?;
        }
    }
    // Every request waited for its parser: the rows are ours again.
    let grid = std::mem::replace(
        &mut *grid.lock().unwrap_or_else(|e| e.into_inner()),
        HistoryGrid::new(0, 1, 0, Vec::new()),
    );
    Ok((grid, stats))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn plans_cover_the_span_in_windows_sized_for_the_fleet() {
        let p = plan(1_000_123, 7 * 86_400, 300, 10_000);
        assert_eq!(p.step, 300);
        assert_eq!(p.start % 300, 0);
        assert_eq!(p.len, 2017);
        // 200,000 points / 10,000 series: 20 grid points per window.
        assert_eq!(p.windows.len(), 2017usize.div_ceil(20));
        assert_eq!(p.windows[0], (p.start, p.start + 19 * 300));
        assert_eq!(p.windows[1].0, p.start + 20 * 300);
        assert_eq!(p.windows.last().unwrap().1, 1_000_123 / 300 * 300);
        // One series: one window (Prometheus' 11,000-point limit aside).
        assert_eq!(plan(1_000_123, 7 * 86_400, 300, 1).windows.len(), 1);
        assert_eq!(plan(1_000_123, 70 * 86_400, 60, 1).windows.len(), 11);
    }

    #[test]
    fn the_grid_keeps_only_wanted_series_on_their_slots() {
        let mut g = HistoryGrid::new(100, 10, 5, ["a".to_string(), "b".to_string()]);
        assert!(g.series(labels(&[("instance", "a")])));
        g.point(100.0, 1.0);
        g.point(119.9, 3.0); // nearest slot 2
        g.point(150.0, 9.0); // past the grid
        g.point(90.0, 9.0); // before it
        assert!(!g.series(labels(&[("instance", "zzz")])));
        g.point(110.0, 7.0); // not wanted: dropped
        let a = g.take("a").unwrap();
        assert_eq!(a.start, 100);
        assert_eq!(a.values.len(), 5);
        assert_eq!(a.values[0], 1.0);
        assert!(a.values[1].is_nan());
        assert_eq!(a.values[2], 3.0);
        assert_eq!(a.points(), (vec![100, 120], vec![1.0, 3.0]));
        assert_eq!(a.span(), 20);
        assert_eq!(a.count(), 2);
        // Wanted but absent: an empty history, not an error.
        let b = g.take("b").unwrap();
        assert_eq!(b.count(), 0);
        assert_eq!(b.span(), 0);
        assert!(g.take("c").is_none());
    }

    #[test]
    fn filtered_queries_name_each_label_set() {
        let a = labels(&[("instance", "web-1:9100"), ("__name__", "cpu")]);
        let b = labels(&[("instance", "we\"ird$1\\"), ("job", "x")]);
        let q = filtered("cpu", &[&a, &b]);
        assert_eq!(
            q,
            "(cpu) and on(instance, job) (label_replace(vector(1), \"instance\", \"web-1:9100\", \"\", \"\") or \
             label_replace(label_replace(vector(1), \"instance\", \"we\\\"ird$$1\\\\\", \"\", \"\"), \"job\", \"x\", \"\", \"\"))"
        );
        assert_eq!(filtered("up", &[&Labels::new()]), "up");
    }

    #[test]
    fn long_lists_of_label_sets_are_split_under_the_query_limit() {
        let hosts: Vec<Labels> = (0..500)
            .map(|i| labels(&[("instance", &format!("host-{i:05}:9100"))]))
            .collect();
        let refs: Vec<&Labels> = hosts.iter().collect();
        let chunks = filtered_chunks("cpu_busy_percent", &refs);
        assert!(chunks.len() > 1);
        assert_eq!(chunks.iter().map(|(_, n)| n).sum::<usize>(), 500);
        for (q, n) in &chunks {
            assert!(q.len() <= MAX_QUERY_BYTES, "{}", q.len());
            assert_eq!(q.matches("label_replace").count(), *n);
        }
        // Together they name every host once.
        let all: String = chunks.iter().map(|(q, _)| q.as_str()).collect();
        for h in &hosts {
            assert_eq!(all.matches(&format!("\"{}\"", h["instance"])).count(), 1);
        }
    }
}
