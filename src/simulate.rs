//! Synthetic CPU usage: a daily and weekly pattern with noise and optional
//! injected anomalies. Generates the bundled sample dataset and test data.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};
use serde::{Deserialize, Serialize};

use crate::dataset::format_ts;

mod fleet;
mod incidents;

pub use fleet::FleetHost;
pub use incidents::{incident_series, incident_series_over, IncidentKind, LabelledSeries};

/// Shape of the synthetic series (values in percent, 0–100).
#[derive(Debug, Clone)]
pub struct Pattern {
    /// First timestamp (Unix seconds).
    pub start: i64,
    /// Step in seconds.
    pub step: i64,
    /// Number of samples.
    pub len: usize,
    /// Mean level on weekdays.
    pub base: f64,
    /// Half the daily swing (peak 14:00 UTC, trough 02:00).
    pub daily_amplitude: f64,
    /// How much lower Saturdays and Sundays sit.
    pub weekend_drop: f64,
    /// Standard deviation of the noise.
    pub noise_sd: f64,
    /// Level change over the whole series (slow growth).
    pub trend: f64,
}

impl Default for Pattern {
    fn default() -> Self {
        Pattern {
            // 2025-06-02 00:00:00 UTC, a Monday.
            start: 1_748_822_400,
            step: 600,
            len: 4032,
            base: 40.0,
            daily_amplitude: 15.0,
            weekend_drop: 12.0,
            noise_sd: 2.5,
            trend: 4.0,
        }
    }
}

/// Kind of injected anomaly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AnomalyKind {
    /// Short jump up.
    Spike,
    /// Short drop.
    Dip,
    /// Gradual shift over several samples.
    Drift,
}

/// One injected anomaly (indices are inclusive).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Injected {
    /// What was injected.
    pub kind: AnomalyKind,
    /// First affected timestamp, `YYYY-MM-DD HH:MM:SS` UTC.
    pub start: String,
    /// Last affected timestamp.
    pub end: String,
    /// First affected index.
    pub start_index: usize,
    /// Last affected index.
    pub end_index: usize,
    /// Largest added offset, in percent points.
    pub magnitude: f64,
}

impl Pattern {
    /// Noise-free expected value at index `i`.
    pub fn expected(&self, i: usize) -> f64 {
        let ts = self.start + i as i64 * self.step;
        self.shape_at(ts) + self.trend * i as f64 / self.len.max(1) as f64
    }

    /// Daily and weekly shape at Unix time `ts`, without trend or noise.
    pub fn shape_at(&self, ts: i64) -> f64 {
        let day_secs = ts.rem_euclid(86_400) as f64;
        let phase = (day_secs / 86_400.0 - 14.0 / 24.0) * std::f64::consts::TAU;
        // 1970-01-01 was a Thursday: (days + 3) % 7 gives 0 = Monday.
        let weekday = (ts.div_euclid(86_400) + 3).rem_euclid(7);
        let weekend = if weekday >= 5 { self.weekend_drop } else { 0.0 };
        self.base + self.daily_amplitude * phase.cos() - weekend
    }

    /// Timestamps of the series.
    pub fn timestamps(&self) -> Vec<i64> {
        (0..self.len)
            .map(|i| self.start + i as i64 * self.step)
            .collect()
    }

    /// Clean values (pattern + noise), clamped to 0–100.
    pub fn values(&self, rng: &mut impl Rng) -> Vec<f64> {
        let noise = Normal::new(0.0, self.noise_sd.max(0.0)).expect("finite sd");
        (0..self.len)
            .map(|i| (self.expected(i) + noise.sample(rng)).clamp(0.0, 100.0))
            .collect()
    }
}

/// Injects `count` anomalies of rotating kinds into `values` after index
/// `from`, each `sigma_min..sigma_max` noise SDs strong, and lists them.
pub fn inject(
    values: &mut [f64],
    timestamps: &[i64],
    noise_sd: f64,
    from: usize,
    count: usize,
    rng: &mut impl Rng,
) -> Vec<Injected> {
    let mut out = Vec::new();
    if values.len() <= from + 20 || count == 0 {
        return out;
    }
    let span = (values.len() - from) / count;
    for k in 0..count {
        let kind = [AnomalyKind::Spike, AnomalyKind::Dip, AnomalyKind::Drift][k % 3];
        let lo = from + k * span + span / 4;
        let hi = (from + (k + 1) * span).saturating_sub(span / 4).max(lo + 1);
        let start = rng.random_range(lo..hi).min(values.len() - 13);
        let (len, magnitude) = match kind {
            AnomalyKind::Spike | AnomalyKind::Dip => (
                rng.random_range(1..=3),
                rng.random_range(8.0..12.0) * noise_sd,
            ),
            AnomalyKind::Drift => (12, rng.random_range(5.0..8.0) * noise_sd),
        };
        let end = start + len - 1;
        for (j, v) in values[start..=end].iter_mut().enumerate() {
            let off = match kind {
                AnomalyKind::Spike => magnitude,
                AnomalyKind::Dip => -magnitude,
                AnomalyKind::Drift => magnitude * (j + 1) as f64 / len as f64,
            };
            *v = (*v + off).clamp(0.0, 100.0);
        }
        out.push(Injected {
            kind,
            start: format_ts(timestamps[start]),
            end: format_ts(timestamps[end]),
            start_index: start,
            end_index: end,
            magnitude,
        });
    }
    out
}

/// Injects anomalies the way the original system's evaluation did, until
/// about `rate` of the points are anomalous: single-point spikes and dips of
/// 2–4 σ, and drifts (a shift of 1.5–3 σ held over 5–10 points), with σ the
/// standard deviation of `values`. Returns the per-point labels.
pub fn inject_protocol(values: &mut [f64], rate: f64, rng: &mut impl Rng) -> Vec<bool> {
    let n = values.len();
    let mut labels = vec![false; n];
    if n < 20 {
        return labels;
    }
    let mean = values.iter().sum::<f64>() / n as f64;
    let sigma = (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n as f64).sqrt();
    let target = ((n as f64) * rate).round() as usize;
    let mut placed = 0;
    let mut attempts = 0;
    while placed < target && attempts < 100 * n {
        attempts += 1;
        let kind = rng.random_range(0..10);
        let len = if kind < 8 {
            1
        } else {
            rng.random_range(5..=10)
        };
        let start = rng.random_range(1..n - len - 1);
        // Keep one clean point around each anomaly so they stay separable.
        if labels[start - 1..=start + len].iter().any(|&l| l) {
            continue;
        }
        let sign = if rng.random::<bool>() { 1.0 } else { -1.0 };
        let offset = match kind {
            0..=3 => rng.random_range(2.0..=4.0) * sigma,
            4..=7 => -rng.random_range(2.0..=4.0) * sigma,
            _ => sign * rng.random_range(1.5..=3.0) * sigma,
        };
        for i in start..start + len {
            values[i] += offset;
            labels[i] = true;
        }
        placed += len;
    }
    labels
}

/// The bundled sample: 28 days at 10-minute steps, six anomalies in the last
/// 40 %, seeded so the file is reproducible byte for byte.
pub fn sample_dataset(seed: u64) -> (Vec<i64>, Vec<f64>, Vec<Injected>) {
    let pattern = Pattern::default();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let ts = pattern.timestamps();
    let mut values = pattern.values(&mut rng);
    let from = pattern.len * 6 / 10;
    let injected = inject(&mut values, &ts, pattern.noise_sd, from, 6, &mut rng);
    (ts, values, injected)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protocol_injects_about_five_percent() {
        let p = Pattern::default();
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let clean = p.values(&mut rng);
        let mut v = clean.clone();
        let labels = inject_protocol(&mut v, 0.05, &mut rng);
        let share = labels.iter().filter(|&&l| l).count() as f64 / v.len() as f64;
        assert!((0.045..=0.06).contains(&share), "{share}");
        for i in 0..v.len() {
            assert_eq!(labels[i], v[i] != clean[i], "label matches change at {i}");
        }
    }

    #[test]
    fn pattern_has_daily_and_weekly_shape() {
        let p = Pattern::default();
        // Monday 14:00 is a peak, Monday 02:00 a trough, Saturday 14:00 lower than Monday.
        let at = |day: usize, hour: usize| p.expected(day * 144 + hour * 6);
        assert!(at(0, 14) - at(0, 2) > 25.0);
        assert!((at(0, 14) - at(5, 14)) > 10.0);
    }

    #[test]
    fn sample_is_reproducible_and_anomalies_are_where_listed() {
        let (ts, v, inj) = sample_dataset(7);
        let (_, v2, inj2) = sample_dataset(7);
        assert_eq!(v, v2);
        assert_eq!(inj, inj2);
        assert_eq!(ts.len(), 4032);
        assert_eq!(inj.len(), 6);
        let p = Pattern::default();
        for a in inj.iter().filter(|a| a.kind == AnomalyKind::Spike) {
            let i = a.start_index;
            assert!(v[i] - p.expected(i) > 4.0 * p.noise_sd);
        }
    }
}
