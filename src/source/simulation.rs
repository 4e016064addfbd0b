//! The simulated CPU source the monitor falls back to when Prometheus is
//! unreachable: the bundled sample's daily/weekly shape, Gaussian noise and
//! occasional anomalies (spikes, dips), seeded. Every point it produces is
//! tagged `source=simulation`.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};

use crate::simulate::Pattern;

/// Host tag of the simulated series.
pub const SIM_HOST: &str = "simulated";

/// Share of simulated samples that are anomalous.
pub const ANOMALY_RATE: f64 = 0.01;

/// A seeded generator of CPU percent values at any time.
#[derive(Debug)]
pub struct Simulator {
    pattern: Pattern,
    rng: ChaCha8Rng,
    noise: Normal<f64>,
}

impl Simulator {
    /// A generator with the sample's shape, seeded.
    pub fn new(seed: u64) -> Simulator {
        let pattern = Pattern::default();
        Simulator {
            noise: Normal::new(0.0, pattern.noise_sd).expect("finite sd"),
            pattern,
            rng: ChaCha8Rng::seed_from_u64(seed),
        }
    }

    /// A live sample at `ts`: pattern + noise, and now and then an anomaly
    /// (returned as `true`).
    pub fn sample(&mut self, ts: i64) -> (f64, bool) {
        let mut v = self.pattern.shape_at(ts) + self.noise.sample(&mut self.rng);
        let anomalous = self.rng.random_bool(ANOMALY_RATE);
        if anomalous {
            let size = self.rng.random_range(8.0..12.0) * self.pattern.noise_sd;
            v += if self.rng.random_bool(0.7) {
                size
            } else {
                -size
            };
        }
        (v.clamp(0.0, 100.0), anomalous)
    }

    /// Clean history (no anomalies) on [start, end] every `step` seconds, to
    /// train a model for the simulated series.
    pub fn history(&mut self, start: i64, end: i64, step: i64) -> (Vec<i64>, Vec<f64>) {
        let ts: Vec<i64> = (start..=end).step_by(step.max(1) as usize).collect();
        let vs = ts
            .iter()
            .map(|&t| {
                (self.pattern.shape_at(t) + self.noise.sample(&mut self.rng)).clamp(0.0, 100.0)
            })
            .collect();
        (ts, vs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeded_and_mostly_normal() {
        let mut a = Simulator::new(1);
        let mut b = Simulator::new(1);
        let t0 = 1_750_000_000;
        let mut anomalies = 0;
        for i in 0..5000 {
            let (va, fa) = a.sample(t0 + i * 30);
            assert_eq!((va, fa), b.sample(t0 + i * 30));
            assert!((0.0..=100.0).contains(&va));
            anomalies += usize::from(fa);
        }
        assert!((20..=90).contains(&anomalies), "{anomalies}");
        let (ts, vs) = a.history(t0, t0 + 3600, 60);
        assert_eq!(ts.len(), 61);
        assert_eq!(vs.len(), 61);
    }
}
