//! The Numenta Anomaly Benchmark's score, from its published description
//! (Lavin & Ahmad 2015, and the scorer of NAB 1.1), so results can be put
//! next to the NAB scoreboard.
//!
//! A detector's detections are scored against label windows:
//! - a window's first detection earns `A_TP · σ(p) / σ(−1)`, where `p` is its
//!   position in the window (−1 at the first point, 0 just after the last)
//!   and `σ(x) = 2/(1 + e^{5x}) − 1`: early detections earn almost the full
//!   weight, late ones little; later detections in the same window count
//!   nothing;
//! - a detection outside every window costs `A_FP · σ(p)` (negative), where
//!   `p` is its distance after the previous window's end in window widths
//!   (−1 when no window precedes it, and past 3 widths): a detection just
//!   after a window costs little, one far from any costs the full weight;
//! - a window without a detection costs `A_FN`;
//! - nothing in the probationary period (the first 15 % of a series, at most
//!   750 points) is scored.
//!
//! Scores are summed over series and normalised: 0 is the null detector (no
//! detection: `−A_FN` per window), 100 the perfect one (every window detected
//! at its first point). Three profiles weigh the errors.

use serde::Serialize;

/// Weights of one scoring profile.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Profile {
    /// Name as NAB writes it.
    pub name: &'static str,
    /// Weight of a true positive.
    pub tp: f64,
    /// Weight of a false positive.
    pub fp: f64,
    /// Weight of a missed window.
    #[serde(rename = "fn")]
    pub fn_: f64,
}

/// NAB's three profiles.
pub const PROFILES: [Profile; 3] = [
    Profile {
        name: "standard",
        tp: 1.0,
        fp: 0.11,
        fn_: 1.0,
    },
    Profile {
        name: "reward_low_FP_rate",
        tp: 1.0,
        fp: 0.22,
        fn_: 1.0,
    },
    Profile {
        name: "reward_low_FN_rate",
        tp: 1.0,
        fp: 0.11,
        fn_: 2.0,
    },
];

/// Share of a series NAB does not score.
pub const PROBATION: f64 = 0.15;
/// Probationary period cap, points (15 % of 5000).
pub const PROBATION_MAX: usize = 750;

/// NAB's probationary period for a series of `n` points.
pub fn probation(n: usize) -> usize {
    ((PROBATION * n as f64).floor() as usize).min(PROBATION_MAX)
}

/// NAB's scaled sigmoid: 1 far before 0, −1 far after.
pub fn scaled_sigmoid(x: f64) -> f64 {
    if x >= 3.0 {
        -1.0
    } else {
        2.0 / (1.0 + (5.0 * x).exp()) - 1.0
    }
}

/// The raw score of one series under one profile.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct Raw {
    /// Sum of weighted TP, FP and FN terms.
    pub score: f64,
    /// Windows detected.
    pub tp: usize,
    /// Detections outside every window.
    pub fp: usize,
    /// Windows missed.
    #[serde(rename = "fn")]
    pub fn_: usize,
    /// Windows scored.
    pub windows: usize,
}

impl Raw {
    /// Adds another series' score.
    pub fn merge(&self, o: &Raw) -> Raw {
        Raw {
            score: self.score + o.score,
            tp: self.tp + o.tp,
            fp: self.fp + o.fp,
            fn_: self.fn_ + o.fn_,
            windows: self.windows + o.windows,
        }
    }

    /// 100 × (score − null) / (perfect − null): 0 for no detection, 100 for
    /// every window detected at its start (0 when there is no window).
    pub fn normalised(&self, p: &Profile) -> f64 {
        let null = -p.fn_ * self.windows as f64;
        let perfect = p.tp * self.windows as f64;
        if perfect > null {
            100.0 * (self.score - null) / (perfect - null)
        } else {
            0.0
        }
    }
}

/// Scores `detections` (one flag per point of `timestamps`; a detection is
/// a flagged point, so pass alert onsets, not alert states) against
/// `windows` (inclusive timestamps).
pub fn score(timestamps: &[i64], detections: &[bool], windows: &[(i64, i64)], p: &Profile) -> Raw {
    let n = timestamps.len();
    let start = probation(n);
    // Windows as index ranges (points inside each), in time order.
    let mut ranges: Vec<(usize, usize)> = windows
        .iter()
        .filter_map(|&(a, b)| {
            let lo = timestamps.partition_point(|&t| t < a);
            let hi = timestamps.partition_point(|&t| t <= b);
            (hi > lo).then(|| (lo, hi - 1))
        })
        .filter(|&(_, hi)| hi >= start)
        .collect();
    ranges.sort_unstable();
    let max_tp = scaled_sigmoid(-1.0);
    let mut raw = Raw {
        windows: ranges.len(),
        ..Raw::default()
    };
    let mut detected = vec![false; ranges.len()];
    let mut w = 0; // first window not yet ended
    for (i, &detected_here) in detections.iter().enumerate().take(n).skip(start) {
        while w < ranges.len() && ranges[w].1 < i {
            w += 1;
        }
        if !detected_here {
            continue;
        }
        match ranges.get(w) {
            Some(&(lo, hi)) if lo <= i => {
                if !detected[w] {
                    detected[w] = true;
                    raw.tp += 1;
                    let width = (hi - lo + 1) as f64;
                    let pos = -((hi - i + 1) as f64) / width;
                    raw.score += p.tp * scaled_sigmoid(pos) / max_tp;
                }
            }
            _ => {
                raw.fp += 1;
                let cost = match w.checked_sub(1).map(|k| ranges[k]) {
                    None => -1.0,
                    Some((lo, hi)) => {
                        // A one-point window puts every later point "far
                        // after" it (NAB divides by width − 1 = 0).
                        let width = (hi - lo + 1) as f64;
                        let past = if width > 1.0 {
                            (i - hi) as f64 / (width - 1.0)
                        } else {
                            f64::INFINITY
                        };
                        scaled_sigmoid(past)
                    }
                };
                raw.score += p.fp * cost;
            }
        }
    }
    let missed = detected.iter().filter(|d| !**d).count();
    raw.fn_ = missed;
    raw.score -= p.fn_ * missed as f64;
    raw
}

/// The three profiles' normalised scores of a total.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct NabScores {
    /// Standard profile.
    pub standard: f64,
    /// Reward low false-positive rate.
    pub reward_low_fp: f64,
    /// Reward low false-negative rate.
    pub reward_low_fn: f64,
    /// Windows detected, detections outside windows, windows missed (standard).
    pub counts: Raw,
}

/// Raw scores of one series under each profile.
pub fn score_all(timestamps: &[i64], detections: &[bool], windows: &[(i64, i64)]) -> [Raw; 3] {
    PROFILES.map(|p| score(timestamps, detections, windows, &p))
}

/// Normalised scores from summed raw scores (one per profile).
pub fn normalise(raw: &[Raw; 3]) -> NabScores {
    NabScores {
        standard: raw[0].normalised(&PROFILES[0]),
        reward_low_fp: raw[1].normalised(&PROFILES[1]),
        reward_low_fn: raw[2].normalised(&PROFILES[2]),
        counts: raw[0],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STD: Profile = PROFILES[0];

    /// 1,000 points (probation 150), one window over points 500–599.
    fn series() -> (Vec<i64>, Vec<(i64, i64)>) {
        let ts: Vec<i64> = (0..1000).map(|i| i * 60).collect();
        (ts, vec![(500 * 60, 599 * 60)])
    }

    fn at(points: &[usize]) -> Vec<bool> {
        let mut d = vec![false; 1000];
        for &p in points {
            d[p] = true;
        }
        d
    }

    #[test]
    fn null_is_0_and_perfect_is_100() {
        let (ts, w) = series();
        let null = score(&ts, &at(&[]), &w, &STD);
        assert_eq!((null.score, null.fn_), (-1.0, 1));
        assert_eq!(null.normalised(&STD), 0.0);
        let perfect = score(&ts, &at(&[500]), &w, &STD);
        assert!((perfect.score - 1.0).abs() < 1e-12);
        assert!((perfect.normalised(&STD) - 100.0).abs() < 1e-9);
        // Later detections in the same window change nothing.
        assert_eq!(score(&ts, &at(&[500, 510, 599]), &w, &STD), perfect);
    }

    #[test]
    fn early_and_late_detections_by_hand() {
        let (ts, w) = series();
        // At the 26th point: position −75/100 = −0.75;
        // σ(−0.75) = 2/(1 + e^{−3.75}) − 1 = 0.954045; / σ(−1) (0.986614) = 0.966990.
        let early = score(&ts, &at(&[525]), &w, &STD);
        assert!((early.score - 0.966_990).abs() < 1e-5, "{}", early.score);
        // Normalised: 100 × (0.966990 + 1) / 2 = 98.35.
        assert!((early.normalised(&STD) - 98.3495).abs() < 1e-3);
        // At the last point: position −1/100; σ(−0.01) = 0.024995 → 0.025334.
        let late = score(&ts, &at(&[599]), &w, &STD);
        assert!((late.score - 0.025_334).abs() < 1e-5, "{}", late.score);
        assert_eq!(late.tp, 1);
    }

    #[test]
    fn false_positives_cost_by_distance_from_the_last_window() {
        let (ts, w) = series();
        // Before any window: the full FP weight, 0.11.
        let before = score(&ts, &at(&[300]), &w, &STD);
        assert!((before.score - (-1.0 - 0.11)).abs() < 1e-12);
        assert_eq!(before.fp, 1);
        // 10 points after the window's end: 10/99 widths; σ(0.10101) = −0.24729.
        let after = score(&ts, &at(&[609]), &w, &STD);
        assert!(
            (after.score - (-1.0 - 0.11 * 0.247_29)).abs() < 1e-5,
            "{}",
            after.score
        );
        // Far after (past 3 widths): −1 × 0.11.
        let far = score(&ts, &at(&[999]), &w, &STD);
        assert!((far.score - (-1.11)).abs() < 1e-12);
        // In the probationary period: not scored.
        assert_eq!(
            score(&ts, &at(&[100]), &w, &STD),
            score(&ts, &at(&[]), &w, &STD)
        );
    }

    #[test]
    fn profiles_and_totals() {
        let (ts, w) = series();
        let raw = score_all(&ts, &at(&[300]), &w);
        // reward_low_FP: 0.22 per FP; reward_low_FN: a miss costs 2.
        assert!((raw[1].score - (-1.22)).abs() < 1e-12);
        assert!((raw[2].score - (-2.11)).abs() < 1e-12);
        let total = normalise(&[
            raw[0].merge(&raw[0]),
            raw[1].merge(&raw[1]),
            raw[2].merge(&raw[2]),
        ]);
        // 100 × (−2.22 + 2) / (2 + 2) = −5.5.
        assert!((total.standard - (-5.5)).abs() < 1e-9, "{}", total.standard);
        assert_eq!(probation(1000), 150);
        assert_eq!(probation(100_000), 750);
    }
}
