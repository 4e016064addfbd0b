//! Detection: from a forecast point (yhat, lower, upper) and an actual value,
//! the scaled band, a flag, a direction, a normalised score, a confidence and
//! a severity; plus the "sustained" state over consecutive samples.
//!
//! The band is the original system's: with multiplier `m`,
//! `upper' = upper + (upper − yhat)(m − 1)` and
//! `lower' = lower − (yhat − lower)(m − 1)`. The score is the distance from
//! yhat in units of the scaled half-band on the side of the deviation: 0 at
//! yhat, 1 at the scaled band's edge, above 1 outside. It means the same for
//! any model that produces a band.

pub mod capacity;
pub mod decide;

use serde::Serialize;

pub use decide::{Decider, DecisionSettings, Side, Verdict};

/// Severity of a flagged sample, from its score (see [`Severity::from_score`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Severity {
    /// Inside the scaled band.
    Normal,
    /// Score in (1, 1.5].
    Low,
    /// Score in (1.5, 2].
    Medium,
    /// Score in (2, 3].
    High,
    /// Score above 3.
    Critical,
}

/// Score above which a flagged sample is MEDIUM.
pub const MEDIUM_ABOVE: f64 = 1.5;
/// Score above which a flagged sample is HIGH.
pub const HIGH_ABOVE: f64 = 2.0;
/// Score above which a flagged sample is CRITICAL.
pub const CRITICAL_ABOVE: f64 = 3.0;

impl Severity {
    /// Cut-offs: ≤ 1 NORMAL, ≤ 1.5 LOW, ≤ 2 MEDIUM, ≤ 3 HIGH, above CRITICAL:
    /// a CRITICAL sample is more than three scaled half-bands from yhat.
    pub fn from_score(score: f64) -> Severity {
        if score.is_nan() || score <= 1.0 {
            Severity::Normal
        } else if score <= MEDIUM_ABOVE {
            Severity::Low
        } else if score <= HIGH_ABOVE {
            Severity::Medium
        } else if score <= CRITICAL_ABOVE {
            Severity::High
        } else {
            Severity::Critical
        }
    }

    /// The severity named `s` (upper-case, as [`Severity::as_str`] writes it).
    pub fn parse(s: &str) -> Option<Severity> {
        [
            Severity::Normal,
            Severity::Low,
            Severity::Medium,
            Severity::High,
            Severity::Critical,
        ]
        .into_iter()
        .find(|v| v.as_str() == s)
    }

    /// Upper-case name, as written to sinks and reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Normal => "NORMAL",
            Severity::Low => "LOW",
            Severity::Medium => "MEDIUM",
            Severity::High => "HIGH",
            Severity::Critical => "CRITICAL",
        }
    }
}

/// Which side of the forecast the actual value is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Above yhat.
    Above,
    /// Below yhat.
    Below,
}

impl Direction {
    /// `above` or `below`.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Above => "above",
            Direction::Below => "below",
        }
    }
}

/// The verdict on one sample.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Detection {
    /// Scaled band, lower edge.
    pub lower_threshold: f64,
    /// Scaled band, upper edge.
    pub upper_threshold: f64,
    /// Normalised distance from yhat (1 = scaled band edge).
    pub score: f64,
    /// Outside the scaled band.
    pub is_anomaly: bool,
    /// Side of the deviation.
    pub direction: Direction,
    /// 0 inside the band, rising towards 1 with the score: `1 − 1/score²`.
    pub confidence: f64,
    /// Grade from the score.
    pub severity: Severity,
}

/// The scaled band and score logic, for one multiplier.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, serde::Deserialize)]
pub struct Detector {
    multiplier: f64,
}

impl Detector {
    /// `multiplier` ≥ 1 (validated by the config layer; smaller values are clamped to 1).
    pub fn new(multiplier: f64) -> Self {
        Detector {
            multiplier: if multiplier.is_finite() {
                multiplier.max(1.0)
            } else {
                1.0
            },
        }
    }

    /// The multiplier in use.
    pub fn multiplier(&self) -> f64 {
        self.multiplier
    }

    /// Judges `actual` against a forecast point.
    #[inline]
    pub fn check(&self, actual: f64, yhat: f64, lower: f64, upper: f64) -> Detection {
        let m1 = self.multiplier - 1.0;
        let upper_t = upper + (upper - yhat) * m1;
        let lower_t = lower - (yhat - lower) * m1;
        let (direction, dev, half) = if actual >= yhat {
            (Direction::Above, actual - yhat, upper_t - yhat)
        } else {
            (Direction::Below, yhat - actual, yhat - lower_t)
        };
        // A zero-width band (flat history) must not divide by zero: any
        // deviation beyond floating-point noise then scores as far outside.
        let half = half.max(1e-12 * (1.0 + yhat.abs()));
        let score = dev / half;
        let is_anomaly = actual > upper_t || actual < lower_t;
        Detection {
            lower_threshold: lower_t,
            upper_threshold: upper_t,
            score,
            is_anomaly,
            direction,
            confidence: if score > 1.0 {
                1.0 - 1.0 / (score * score)
            } else {
                0.0
            },
            severity: if is_anomaly {
                Severity::from_score(score.max(1.0 + f64::EPSILON))
            } else {
                Severity::Normal
            },
        }
    }
}

/// Tracks runs of consecutive anomalous samples: "sustained" once `needed`
/// in a row have been flagged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sustained {
    needed: u32,
    run: u32,
}

impl Sustained {
    /// `needed` ≥ 1 consecutive anomalies make a sustained anomaly.
    pub fn new(needed: u32) -> Self {
        Sustained {
            needed: needed.max(1),
            run: 0,
        }
    }

    /// Feeds the next sample's flag; returns whether the state is now sustained.
    pub fn update(&mut self, is_anomaly: bool) -> bool {
        self.run = if is_anomaly {
            self.run.saturating_add(1)
        } else {
            0
        };
        self.is_sustained()
    }

    /// Current consecutive count.
    pub fn run(&self) -> u32 {
        self.run
    }

    /// Whether the current run is long enough.
    pub fn is_sustained(&self) -> bool {
        self.run >= self.needed
    }
}

/// When flagged samples become alerts: after `sustained` consecutive flags
/// (a sustained anomaly), or at once for a CRITICAL sample (score above
/// [`CRITICAL_ABOVE`]). Single moderate excursions stay flags without paging
/// anyone, which is what keeps false alarms down on spiky hosts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AlertPolicy {
    state: Sustained,
}

impl AlertPolicy {
    /// `sustained` consecutive flagged samples raise an alert.
    pub fn new(sustained: u32) -> Self {
        AlertPolicy {
            state: Sustained::new(sustained),
        }
    }

    /// Feeds the next sample; returns whether it is an alert.
    pub fn update(&mut self, d: &Detection) -> bool {
        let sustained = self.state.update(d.is_anomaly);
        sustained || d.severity == Severity::Critical
    }

    /// Alerts for a run of base scores (score at multiplier 1) judged at
    /// multiplier `m`: the same decisions [`AlertPolicy::update`] makes.
    pub fn alerts_from_base_scores(sustained: u32, base_scores: &[f64], m: f64) -> Vec<bool> {
        let mut state = Sustained::new(sustained);
        base_scores
            .iter()
            .map(|&z| {
                let flagged = z > m;
                state.update(flagged) || z > CRITICAL_ABOVE * m
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scaled_band_matches_original_formula() {
        // yhat 50, band 40..60, m = 2: scaled band 30..70.
        let d = Detector::new(2.0).check(50.0, 50.0, 40.0, 60.0);
        assert_eq!((d.lower_threshold, d.upper_threshold), (30.0, 70.0));
        // Asymmetric band: yhat 50, band 45..60, m = 3 → lower 35, upper 80.
        let d = Detector::new(3.0).check(50.0, 50.0, 45.0, 60.0);
        assert_eq!((d.lower_threshold, d.upper_threshold), (35.0, 80.0));
        // m = 1 keeps the band.
        let d = Detector::new(1.0).check(50.0, 50.0, 45.0, 60.0);
        assert_eq!((d.lower_threshold, d.upper_threshold), (45.0, 60.0));
    }

    #[test]
    fn score_is_zero_at_yhat_one_at_edge() {
        let det = Detector::new(2.0);
        assert_eq!(det.check(50.0, 50.0, 40.0, 60.0).score, 0.0);
        let edge = det.check(70.0, 50.0, 40.0, 60.0);
        assert_eq!(edge.score, 1.0);
        assert!(!edge.is_anomaly, "the edge itself is inside");
        let below = det.check(20.0, 50.0, 40.0, 60.0);
        assert_eq!(below.score, 1.5);
        assert!(below.is_anomaly);
        assert_eq!(below.direction, Direction::Below);
        assert_eq!(below.severity, Severity::Low);
        // Asymmetric: the score uses the half-band on the deviation's side.
        let d = Detector::new(1.0).check(55.0, 50.0, 30.0, 55.0);
        assert_eq!(d.score, 1.0);
    }

    #[test]
    fn severity_cut_offs() {
        let det = Detector::new(1.0);
        let sev = |a: f64| det.check(a, 0.0, -1.0, 1.0).severity;
        assert_eq!(sev(0.5), Severity::Normal);
        assert_eq!(sev(1.0), Severity::Normal);
        assert_eq!(sev(1.2), Severity::Low);
        assert_eq!(sev(1.5), Severity::Low);
        assert_eq!(sev(1.8), Severity::Medium);
        assert_eq!(sev(2.0), Severity::Medium);
        assert_eq!(sev(2.5), Severity::High);
        assert_eq!(sev(3.0), Severity::High);
        assert_eq!(sev(-3.5), Severity::Critical);
    }

    #[test]
    fn confidence_rises_with_score() {
        let det = Detector::new(1.0);
        assert_eq!(det.check(0.5, 0.0, -1.0, 1.0).confidence, 0.0);
        assert_eq!(det.check(2.0, 0.0, -1.0, 1.0).confidence, 0.75);
        let c = det.check(100.0, 0.0, -1.0, 1.0).confidence;
        assert!(c > 0.999 && c <= 1.0);
    }

    #[test]
    fn zero_width_band_does_not_divide_by_zero() {
        let det = Detector::new(2.0);
        let same = det.check(5.0, 5.0, 5.0, 5.0);
        assert_eq!(same.score, 0.0);
        assert!(!same.is_anomaly);
        let off = det.check(5.1, 5.0, 5.0, 5.0);
        assert!(off.is_anomaly && off.score.is_finite() && off.severity == Severity::Critical);
    }

    #[test]
    fn alert_policy_sustained_or_critical() {
        let det = Detector::new(2.0);
        let mut p = AlertPolicy::new(3);
        // yhat 0, band ±1, m 2: scaled band ±2; critical above score 3 (|x| > 6).
        let seq = [2.5, 2.5, 2.5, 0.0, 7.0, 0.0, 2.5];
        let got: Vec<bool> = seq
            .iter()
            .map(|&x| p.update(&det.check(x, 0.0, -1.0, 1.0)))
            .collect();
        assert_eq!(got, vec![false, false, true, false, true, false, false]);
        // The score-based form agrees (base score = |x| for a unit band).
        let z: Vec<f64> = seq.iter().map(|x: &f64| x.abs()).collect();
        assert_eq!(AlertPolicy::alerts_from_base_scores(3, &z, 2.0), got);
    }

    #[test]
    fn sustained_after_n_in_a_row() {
        let mut s = Sustained::new(3);
        assert!(!s.update(true));
        assert!(!s.update(true));
        assert!(s.update(true));
        assert!(s.update(true));
        assert!(!s.update(false));
        assert_eq!(s.run(), 0);
        assert!(!s.update(true));
    }
}
