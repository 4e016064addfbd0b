//! A generated fleet: hosts with their own level, daily swing, busiest
//! hour, weekend drop, noise and a few anomalies, as pure functions of
//! (seed, index, time).

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// One host of a generated fleet: its own level, daily swing, busiest hour,
/// weekend drop and noise, and a few anomalies (spikes, a drop, a plateau).
/// Values are a pure function of (seed, index, time), so a test or bench can
/// load a host's history and push its live samples independently.
#[derive(Debug, Clone, PartialEq)]
pub struct FleetHost {
    /// Position in the fleet.
    pub index: usize,
    /// Mean level, percent.
    pub base: f64,
    /// Half the daily swing.
    pub daily_amplitude: f64,
    /// Busiest hour of the day (UTC).
    pub peak_hour: f64,
    /// How much lower weekends sit.
    pub weekend_drop: f64,
    /// Noise sd.
    pub noise_sd: f64,
    /// (start, end, offset): anomalies over [start, end) (Unix seconds).
    pub anomalies: Vec<(i64, i64, f64)>,
    seed: u64,
}

/// SplitMix64: a fast, well-mixed hash of a 64-bit value.
pub(crate) fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = x;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl FleetHost {
    /// Host `index` of the fleet seeded `seed`, with anomalies placed in
    /// [`from`, `to`).
    pub fn new(index: usize, seed: u64, from: i64, to: i64) -> FleetHost {
        let mut rng =
            ChaCha8Rng::seed_from_u64(splitmix(seed ^ (index as u64).wrapping_mul(0x1000_0001)));
        // The shape first, then the anomalies: the shape does not depend on
        // the span the anomalies are placed in.
        let base: f64 = rng.random_range(5.0..75.0);
        let daily_amplitude = rng.random_range(0.0..0.4) * base.min(100.0 - base);
        let peak_hour = rng.random_range(8.0..20.0);
        let weekend_drop = rng.random_range(0.0..0.3) * base;
        let noise_sd = rng.random_range(0.5..4.0);
        let mut anomalies = Vec::new();
        let span = (to - from).max(1);
        for k in 0..rng.random_range(1..=3) {
            let start = from + rng.random_range(0..span);
            let (len, offset) = match k % 3 {
                0 => (rng.random_range(300..1800), rng.random_range(25.0..50.0)),
                1 => (rng.random_range(1800..7200), -base * 0.8),
                _ => (
                    rng.random_range(3600..4 * 3600),
                    rng.random_range(15.0..30.0),
                ),
            };
            anomalies.push((start, start + len, offset));
        }
        FleetHost {
            index,
            base,
            daily_amplitude,
            peak_hour,
            weekend_drop,
            noise_sd,
            anomalies,
            seed,
        }
    }

    /// The host's `instance` label.
    pub fn instance(&self) -> String {
        format!("host-{:05}:9100", self.index)
    }

    /// Appends the host's values at `timestamps` as one line of
    /// VictoriaMetrics' `/api/v1/import` JSON (metric `cpu_busy_percent`).
    pub fn import_line(&self, out: &mut String, timestamps: &[i64]) {
        use std::fmt::Write;
        let _ = write!(
            out,
            r#"{{"metric":{{"__name__":"cpu_busy_percent","instance":"{}"}},"values":["#,
            self.instance()
        );
        for (i, &t) in timestamps.iter().enumerate() {
            let sep = if i > 0 { "," } else { "" };
            let _ = write!(out, "{sep}{:.4}", self.value_at(t));
        }
        out.push_str(r#"],"timestamps":["#);
        for (i, &t) in timestamps.iter().enumerate() {
            let sep = if i > 0 { "," } else { "" };
            let _ = write!(out, "{sep}{}", t * 1000);
        }
        out.push_str("]}\n");
    }

    /// Value at `ts` without anomalies or noise.
    pub fn normal_at(&self, ts: i64) -> f64 {
        let day = ts.rem_euclid(86_400) as f64 / 3600.0;
        let phase = (day - self.peak_hour) / 24.0 * std::f64::consts::TAU;
        let weekday = (ts.div_euclid(86_400) + 3).rem_euclid(7);
        let weekend = if weekday >= 5 { self.weekend_drop } else { 0.0 };
        self.base + self.daily_amplitude * phase.cos() - weekend
    }

    /// Value at `ts`: shape, noise and anomalies, clamped to 0–100.
    pub fn value_at(&self, ts: i64) -> f64 {
        let h = splitmix(
            self.seed
                ^ splitmix(self.index as u64)
                ^ (ts as u64).wrapping_mul(0x2545_F491_4F6C_DD1D),
        );
        // Box–Muller from two 32-bit halves.
        let u1 = ((h >> 32) as f64 + 0.5) / 4_294_967_296.0;
        let u2 = ((h & 0xFFFF_FFFF) as f64 + 0.5) / 4_294_967_296.0;
        let z = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
        let anomaly: f64 = self
            .anomalies
            .iter()
            .filter(|(a, b, _)| (*a..*b).contains(&ts))
            .map(|(_, _, o)| o)
            .sum();
        (self.normal_at(ts) + self.noise_sd * z + anomaly).clamp(0.0, 100.0)
    }
}

#[cfg(test)]
mod fleet_tests {
    use super::*;

    #[test]
    fn fleet_hosts_differ_and_are_deterministic() {
        let a = FleetHost::new(1, 7, 0, 7 * 86_400);
        let b = FleetHost::new(2, 7, 0, 7 * 86_400);
        assert_ne!(a.base, b.base);
        assert_eq!(a, FleetHost::new(1, 7, 0, 7 * 86_400));
        assert_eq!(a.value_at(123_456), a.value_at(123_456));
        assert_ne!(a.value_at(123_456), a.value_at(123_756));
        assert_eq!(a.instance(), "host-00001:9100");
        // The noise has the configured spread.
        let n = 20_000;
        let dev: Vec<f64> = (0..n)
            .map(|i| {
                let t = 3_000_000 + i * 300;
                a.value_at(t) - a.normal_at(t)
            })
            .filter(|d| d.abs() < 10.0 * a.noise_sd)
            .collect();
        let sd = (dev.iter().map(|d| d * d).sum::<f64>() / dev.len() as f64).sqrt();
        assert!(
            (sd / a.noise_sd - 1.0).abs() < 0.1,
            "{sd} vs {}",
            a.noise_sd
        );
    }
}
