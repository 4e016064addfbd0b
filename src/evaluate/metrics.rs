//! Detection-quality metrics: point-level confusion matrix and rates, ROC and
//! precision–recall curves with their areas, and the event-level metrics for
//! windowed labels (defined exactly as `shared/tools/score_events.py`).

use serde::Serialize;

/// Point-level confusion matrix and rates. Rates with an empty denominator are 0.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Default)]
pub struct PointMetrics {
    /// Flagged and labelled anomalous.
    pub tp: u64,
    /// Flagged, labelled normal.
    pub fp: u64,
    /// Not flagged, labelled normal.
    pub tn: u64,
    /// Not flagged, labelled anomalous.
    #[serde(rename = "fn")]
    pub fn_: u64,
    /// TP / (TP + FP).
    pub precision: f64,
    /// TP / (TP + FN).
    pub recall: f64,
    /// Harmonic mean of precision and recall.
    pub f1: f64,
    /// TN / (TN + FP).
    pub specificity: f64,
    /// FP / (FP + TN).
    pub fpr: f64,
    /// FN / (FN + TP).
    pub fnr: f64,
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 {
        0.0
    } else {
        a as f64 / b as f64
    }
}

/// F1 from precision and recall (0 when both are 0).
pub fn f1(precision: f64, recall: f64) -> f64 {
    if precision + recall > 0.0 {
        2.0 * precision * recall / (precision + recall)
    } else {
        0.0
    }
}

impl PointMetrics {
    /// Builds the rates from counts.
    pub fn from_counts(tp: u64, fp: u64, tn: u64, fn_: u64) -> Self {
        let precision = ratio(tp, tp + fp);
        let recall = ratio(tp, tp + fn_);
        PointMetrics {
            tp,
            fp,
            tn,
            fn_,
            precision,
            recall,
            f1: f1(precision, recall),
            specificity: ratio(tn, tn + fp),
            fpr: ratio(fp, fp + tn),
            fnr: ratio(fn_, fn_ + tp),
        }
    }

    /// Counts flags against labels (same length).
    pub fn compute(labels: &[bool], flags: &[bool]) -> Self {
        let (mut tp, mut fp, mut tn, mut fn_) = (0, 0, 0, 0);
        for (&l, &f) in labels.iter().zip(flags) {
            match (l, f) {
                (true, true) => tp += 1,
                (false, true) => fp += 1,
                (false, false) => tn += 1,
                (true, false) => fn_ += 1,
            }
        }
        Self::from_counts(tp, fp, tn, fn_)
    }

    /// Adds another matrix's counts (for totals over series).
    pub fn merge(&self, o: &PointMetrics) -> Self {
        Self::from_counts(
            self.tp + o.tp,
            self.fp + o.fp,
            self.tn + o.tn,
            self.fn_ + o.fn_,
        )
    }
}

/// A curve with its area.
#[derive(Debug, Clone, PartialEq, Serialize, Default)]
pub struct Curve {
    /// Points (x, y): (FPR, TPR) for ROC, (recall, precision) for PR.
    pub points: Vec<(f64, f64)>,
    /// Area under the ROC curve (trapezoids) or average precision for PR.
    pub area: f64,
}

/// Cumulative (TP, FP) counts at each distinct score, highest score first:
/// the confusion counts of every possible threshold. Ties share one point;
/// NaN scores rank lowest.
fn cumulative_counts(labels: &[bool], scores: &[f64]) -> Vec<(f64, f64)> {
    let mut v: Vec<(f64, bool)> = scores
        .iter()
        .zip(labels)
        .map(|(&s, &l)| (if s.is_nan() { f64::NEG_INFINITY } else { s }, l))
        .collect();
    v.sort_by(|a, b| b.0.total_cmp(&a.0));
    let mut out: Vec<(f64, f64)> = Vec::new();
    let (mut tp, mut fp) = (0.0, 0.0);
    for (i, &(s, l)) in v.iter().enumerate() {
        if l {
            tp += 1.0;
        } else {
            fp += 1.0;
        }
        if v.get(i + 1).map_or(true, |next| next.0 != s) {
            out.push((tp, fp));
        }
    }
    out
}

/// ROC curve of `scores` against `labels` and its area (0.5 = chance). With
/// no positive or no negative label the area is undefined and reported as NaN.
pub fn roc(labels: &[bool], scores: &[f64]) -> Curve {
    let pos = labels.iter().filter(|&&l| l).count() as f64;
    let neg = labels.len() as f64 - pos;
    if pos == 0.0 || neg == 0.0 {
        return Curve {
            points: vec![],
            area: f64::NAN,
        };
    }
    let mut points = vec![(0.0, 0.0)];
    let mut area = 0.0;
    for (tp, fp) in cumulative_counts(labels, scores) {
        let (x0, y0) = *points.last().expect("starts non-empty");
        let (x1, y1) = (fp / neg, tp / pos);
        area += (x1 - x0) * (y0 + y1) / 2.0;
        points.push((x1, y1));
    }
    Curve { points, area }
}

/// Precision–recall curve and average precision (Σ ΔR · P, as scikit-learn).
pub fn pr(labels: &[bool], scores: &[f64]) -> Curve {
    let pos = labels.iter().filter(|&&l| l).count() as f64;
    if pos == 0.0 {
        return Curve {
            points: vec![],
            area: f64::NAN,
        };
    }
    let mut points = Vec::new();
    let (mut area, mut last_r) = (0.0, 0.0);
    for (tp, fp) in cumulative_counts(labels, scores) {
        let (r, p) = (tp / pos, tp / (tp + fp));
        area += (r - last_r) * p;
        last_r = r;
        points.push((r, p));
    }
    Curve { points, area }
}

/// Event-level counts and rates for one series or a total.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Default)]
pub struct EventMetrics {
    /// Label windows scored (those ending after the probation period).
    pub windows: u64,
    /// Windows with at least one flagged point inside.
    pub hit: u64,
    /// Alert events (runs of flags, gaps up to [`EVENT_GAP`] samples bridged).
    pub events: u64,
    /// Events whose first point is outside every window.
    pub fp_events: u64,
    /// (events − fp_events) / events.
    pub precision: f64,
    /// hit / windows.
    pub recall: f64,
    /// F1 of the two.
    pub f1: f64,
}

/// Flags at most this many samples apart belong to one alert event.
pub const EVENT_GAP: usize = 3;
/// Share of each series ignored at its start (NAB's probationary period).
pub const PROBATION: f64 = 0.15;

impl EventMetrics {
    /// Rates from counts.
    pub fn from_counts(windows: u64, hit: u64, events: u64, fp_events: u64) -> Self {
        let precision = ratio(events - fp_events, events);
        let recall = ratio(hit, windows);
        EventMetrics {
            windows,
            hit,
            events,
            fp_events,
            precision,
            recall,
            f1: f1(precision, recall),
        }
    }

    /// Scores one series: `ts` sorted, `flags` aligned, `windows` inclusive
    /// `[start, end]` in the same time unit. The first [`PROBATION`] of the
    /// points are ignored; a window counts if it ends at or after the first
    /// scored point.
    pub fn compute(ts: &[i64], flags: &[bool], windows: &[(i64, i64)]) -> Self {
        let n = ts.len();
        if n == 0 {
            return Self::from_counts(0, 0, 0, 0);
        }
        let start = (n as f64 * PROBATION) as usize;
        let scored: Vec<(i64, i64)> = match ts.get(start) {
            Some(&t0) => windows.iter().copied().filter(|w| w.1 >= t0).collect(),
            None => Vec::new(),
        };
        let inside = |t: i64| scored.iter().position(|&(a, b)| a <= t && t <= b);
        let mut hit = vec![false; scored.len()];
        let (mut events, mut fp_events) = (0u64, 0u64);
        let mut last: Option<usize> = None;
        for i in start..n {
            if !flags[i] {
                continue;
            }
            for (k, &(a, b)) in scored.iter().enumerate() {
                if a <= ts[i] && ts[i] <= b {
                    hit[k] = true;
                }
            }
            let continues = matches!(last, Some(l) if i - l <= EVENT_GAP);
            if !continues {
                events += 1;
                if inside(ts[i]).is_none() {
                    fp_events += 1;
                }
            }
            last = Some(i);
        }
        let hits = hit.iter().filter(|&&h| h).count() as u64;
        Self::from_counts(scored.len() as u64, hits, events, fp_events)
    }

    /// Sums counts (totals over series).
    pub fn merge(&self, o: &EventMetrics) -> Self {
        Self::from_counts(
            self.windows + o.windows,
            self.hit + o.hit,
            self.events + o.events,
            self.fp_events + o.fp_events,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn point_metrics_hand_computed() {
        let labels = [true, true, true, false, false, false, false, false];
        let flags = [true, true, false, true, false, false, false, false];
        let m = PointMetrics::compute(&labels, &flags);
        assert_eq!((m.tp, m.fp, m.tn, m.fn_), (2, 1, 4, 1));
        assert!((m.precision - 2.0 / 3.0).abs() < 1e-12);
        assert!((m.recall - 2.0 / 3.0).abs() < 1e-12);
        assert!((m.f1 - 2.0 / 3.0).abs() < 1e-12);
        assert!((m.specificity - 0.8).abs() < 1e-12);
        assert!((m.fpr - 0.2).abs() < 1e-12);
        assert!((m.fnr - 1.0 / 3.0).abs() < 1e-12);
        let no_flags = PointMetrics::compute(&labels, &[false; 8]);
        assert_eq!((no_flags.precision, no_flags.f1), (0.0, 0.0));
    }

    #[test]
    fn roc_and_pr_areas() {
        // Perfect ranking.
        let labels = [true, true, false, false];
        let r = roc(&labels, &[0.9, 0.8, 0.2, 0.1]);
        assert_eq!(r.area, 1.0);
        assert_eq!(pr(&labels, &[0.9, 0.8, 0.2, 0.1]).area, 1.0);
        // Reversed ranking.
        assert_eq!(roc(&labels, &[0.1, 0.2, 0.8, 0.9]).area, 0.0);
        // Hand case: scores 0.9(+) 0.8(-) 0.7(+) 0.1(-): AUC = 3/4 pairs ordered.
        let labels = [true, false, true, false];
        let scores = [0.9, 0.8, 0.7, 0.1];
        assert!((roc(&labels, &scores).area - 0.75).abs() < 1e-12);
        // AP = 0.5·1 + 0.5·(2/3).
        assert!((pr(&labels, &scores).area - (0.5 + 1.0 / 3.0)).abs() < 1e-12);
        // All tied: chance.
        assert!((roc(&labels, &[0.5; 4]).area - 0.5).abs() < 1e-12);
    }

    #[test]
    fn event_metrics_follow_the_reference_definition() {
        // 20 samples at t = 0..19; probation = first 3 (0.15·20).
        let ts: Vec<i64> = (0..20).collect();
        let mut flags = vec![false; 20];
        // Inside probation: ignored, even though it is in window A.
        flags[1] = true;
        // Event 1: 5,6 then 9 (gap 3 bridged) → one event, onset 5 in window B (4..7).
        flags[5] = true;
        flags[6] = true;
        flags[9] = true;
        // Event 2: 14 (gap 5 from 9) → onset outside windows: false alarm.
        flags[14] = true;
        // Event 3: 18, onset inside window C (17..19).
        flags[18] = true;
        let windows = [(0, 2), (4, 7), (17, 19), (11, 12)];
        let m = EventMetrics::compute(&ts, &flags, &windows);
        // Window (0,2) ends before the first scored point (t=3): not counted.
        assert_eq!(m.windows, 3);
        assert_eq!(m.hit, 2); // B and C; (11,12) missed
        assert_eq!(m.events, 3);
        assert_eq!(m.fp_events, 1);
        assert!((m.precision - 2.0 / 3.0).abs() < 1e-12);
        assert!((m.recall - 2.0 / 3.0).abs() < 1e-12);
    }

    #[test]
    fn an_event_starting_before_a_window_is_a_false_alarm_even_if_it_runs_into_it() {
        let ts: Vec<i64> = (0..20).collect();
        let mut flags = vec![false; 20];
        for f in flags.iter_mut().take(12).skip(8) {
            *f = true; // 8..11, window starts at 10
        }
        let m = EventMetrics::compute(&ts, &flags, &[(10, 15)]);
        assert_eq!((m.events, m.fp_events, m.hit), (1, 1, 1));
        assert_eq!(m.precision, 0.0);
    }

    #[test]
    fn flagging_everything_scores_near_zero() {
        let ts: Vec<i64> = (0..1000).collect();
        let flags = vec![true; 1000];
        let m = EventMetrics::compute(&ts, &flags, &[(500, 520)]);
        // One event starting at the probation edge, outside the window.
        assert_eq!((m.events, m.fp_events), (1, 1));
        assert_eq!(m.f1, 0.0);
    }
}
