//! The anomaly likelihood's statistics (after Numenta's): a long-run mean
//! and variance of a series' scores and a short-term average, as running
//! means over the samples' own time, so the same settings mean the same at
//! 30-second polls and on 5-minute history.

/// Time constant of the long-run score statistics, seconds (a week).
pub const LONG_TAU: f64 = 7.0 * 86_400.0;
/// Time constant of the short-term average score, seconds (~22 minutes).
pub const SHORT_TAU: f64 = 1_350.0;

/// Weight of a new value in a running mean with time constant `tau` after
/// `dt` seconds, never less than an average of the `seen` values so far.
pub(super) fn weight(dt: f64, tau: f64, seen: u32) -> f64 {
    let a = 1.0 - (-dt.max(0.0) / tau).exp();
    a.max(1.0 / f64::from(seen.max(1)))
}

/// Long-run mean and variance of the score, and its short-term average.
#[derive(Debug, Clone, Copy, PartialEq, Default, serde::Serialize, serde::Deserialize)]
pub(super) struct ScoreStats {
    long_mean: f64,
    long_var: f64,
    short: f64,
}

impl ScoreStats {
    /// Learns `score`, `dt` seconds after the last one, as the `seen`-th
    /// (from 1).
    pub(super) fn learn(&mut self, score: f64, dt: f64, seen: u32) {
        if seen <= 1 {
            *self = ScoreStats {
                long_mean: score,
                long_var: 0.0,
                short: score,
            };
            return;
        }
        let a = weight(dt, LONG_TAU, seen);
        let dev = score - self.long_mean;
        self.long_mean += a * dev;
        self.long_var = (1.0 - a) * (self.long_var + a * dev * dev);
        self.short += weight(dt, SHORT_TAU, seen) * (score - self.short);
    }

    /// Tail probability of the short-term average under a normal of the
    /// long-run mean and variance (its sd at least 0.001).
    pub(super) fn tail(&self) -> f64 {
        let sd = self.long_var.sqrt().max(1e-3);
        let z = (self.short - self.long_mean) / sd;
        1.0 - distrs::Normal::cdf(z, 0.0, 1.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_weight_follows_time_but_starts_as_a_plain_average() {
        assert_eq!(weight(300.0, 1e9, 1), 1.0);
        assert_eq!(weight(300.0, 1e9, 4), 0.25);
        let w = weight(SHORT_TAU, SHORT_TAU, 1_000_000);
        assert!((w - (1.0 - (-1.0f64).exp())).abs() < 1e-12, "{w}");
        assert_eq!(
            weight(-5.0, SHORT_TAU, 1_000_000),
            1e-6,
            "time never goes back"
        );
    }

    #[test]
    fn a_run_of_high_scores_is_improbable_under_a_quiet_history() {
        let mut s = ScoreStats::default();
        let mut seen = 0;
        for k in 0..2016 {
            seen += 1;
            s.learn(0.1 + 0.05 * f64::from(k % 3), 300.0, seen);
        }
        assert!(
            s.tail() > 0.05,
            "a quiet series is not improbable: {}",
            s.tail()
        );
        for _ in 0..6 {
            seen += 1;
            s.learn(2.0, 300.0, seen);
        }
        assert!(s.tail() < 1e-4, "half an hour of high scores: {}", s.tail());
    }
}
