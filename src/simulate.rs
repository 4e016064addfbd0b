//! Synthetic CPU usage: a daily and weekly pattern with noise and optional
//! injected anomalies. Generates the bundled sample dataset and test data.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};
use serde::{Deserialize, Serialize};

use crate::dataset::format_ts;

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
fn splitmix(mut x: u64) -> u64 {
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

/// Kinds of incident in the generated development series.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IncidentKind {
    /// A few points far above the normal.
    Spike,
    /// The level moves for good (a deploy, a new tenant).
    LevelShift,
    /// A slow climb over hours (a leak, a runaway job).
    Drift,
    /// The noise grows several times for hours (contention).
    Variance,
    /// The daily cycle breaks for a day (a stuck job, a missing batch).
    BrokenSeason,
    /// Nothing happens: every alert is false.
    Clean,
    /// Nothing happens but the host's routine: a job that lifts it 15 points
    /// or more for 10 to 30 minutes at the same hour every day (a backup, a
    /// batch run); every alert is false.
    Routine,
}

impl IncidentKind {
    /// Every kind, in a fixed order.
    pub const ALL: [IncidentKind; 7] = [
        IncidentKind::Spike,
        IncidentKind::LevelShift,
        IncidentKind::Drift,
        IncidentKind::Variance,
        IncidentKind::BrokenSeason,
        IncidentKind::Clean,
        IncidentKind::Routine,
    ];

    /// Name as used in file names.
    pub fn as_str(self) -> &'static str {
        match self {
            IncidentKind::Spike => "spike",
            IncidentKind::LevelShift => "level_shift",
            IncidentKind::Drift => "drift",
            IncidentKind::Variance => "variance",
            IncidentKind::BrokenSeason => "broken_season",
            IncidentKind::Clean => "clean",
            IncidentKind::Routine => "routine",
        }
    }
}

/// A generated series with NAB-style label windows.
#[derive(Debug, Clone)]
pub struct LabelledSeries {
    /// `generated/<kind>_<seed>.csv`.
    pub name: String,
    /// Unix seconds, 5-minute steps.
    pub timestamps: Vec<i64>,
    /// Percent.
    pub values: Vec<f64>,
    /// Label windows (inclusive timestamps), as NAB places them: 10 % of the
    /// series divided among the incidents, centred on each onset.
    pub windows: Vec<(i64, i64)>,
}

/// The host of [`incident_series`]`(kind, seed)`, starting at `start`.
fn incident_host(kind: IncidentKind, seed: u64, start: i64) -> FleetHost {
    let mut host = FleetHost::new(
        seed as usize,
        0xD1CE ^ (kind as u64) << 32,
        start,
        start + 1,
    );
    if kind == IncidentKind::BrokenSeason {
        // A cycle that can visibly break: a swing of at least the size every
        // other incident has (15 points or 6 noise sds), as far as the
        // host's level leaves room between 0 and 100 %.
        let swing = (15.0f64).max(6.0 * host.noise_sd);
        host.daily_amplitude = host
            .daily_amplitude
            .max(swing / 2.0)
            .min(host.base.min(100.0 - host.base));
    }
    host
}

/// 14 days of 5-minute CPU (4032 points, like NAB's AWS series) of a host
/// with its own shape (as [`FleetHost`]), and two incidents of `kind` in the
/// scored part (after the first 20 %), at least two days apart.
pub fn incident_series(kind: IncidentKind, seed: u64) -> LabelledSeries {
    const STEP: i64 = 300;
    const LEN: usize = 4032;
    let start = 1_748_822_400; // a Monday
    let host = incident_host(kind, seed, start);
    let mut rng = ChaCha8Rng::seed_from_u64(splitmix(seed ^ ((kind as u64) << 40)));
    let timestamps: Vec<i64> = (0..LEN as i64).map(|k| start + k * STEP).collect();
    let noise = Normal::new(0.0, host.noise_sd).expect("finite sd");
    let mut values: Vec<f64> = timestamps
        .iter()
        .map(|&t| host.normal_at(t) + noise.sample(&mut rng))
        .collect();
    let day = 288;
    let mut onsets = Vec::new();
    if !matches!(kind, IncidentKind::Clean | IncidentKind::Routine) {
        let a = rng.random_range(LEN / 5 + day..LEN / 2);
        let b = rng.random_range(a + 2 * day..LEN - day);
        onsets = vec![a, b];
    }
    let sd = host.noise_sd;
    // Big enough to matter to an SRE, small enough to be a test: at least
    // 15 points, or 6 noise sds if the host is noisy.
    let size = |rng: &mut ChaCha8Rng| rng.random_range(1.0..2.0) * (15.0f64).max(6.0 * sd);
    for onset in &mut onsets {
        let mut o = *onset;
        let sign = if host.base > 50.0 || rng.random_bool(0.3) {
            -1.0
        } else {
            1.0
        };
        match kind {
            IncidentKind::Spike => {
                let m = size(&mut rng);
                for v in &mut values[o..o + rng.random_range(1..=3)] {
                    *v += m;
                }
            }
            IncidentKind::LevelShift => {
                let m = sign * size(&mut rng);
                for v in &mut values[o..] {
                    *v += m;
                }
            }
            IncidentKind::Drift => {
                let m = size(&mut rng);
                let ramp = rng.random_range(48..144); // 4 to 12 hours
                let hold = rng.random_range(12..72);
                for j in 0..ramp + hold {
                    if o + j < LEN {
                        values[o + j] += m * ((j + 1) as f64 / ramp as f64).min(1.0);
                    }
                }
            }
            IncidentKind::Variance => {
                let extra = Normal::new(0.0, rng.random_range(3.0..5.0) * sd.max(2.0)).expect("sd");
                for v in &mut values[o..(o + 72).min(LEN)] {
                    *v += extra.sample(&mut rng);
                }
            }
            IncidentKind::BrokenSeason => {
                // The day's cycle is replaced by the night's level, from the
                // first moment the missing day is visible: half its swing
                // away, 6 hours either side of the busiest hour.
                let visible = |t: i64| {
                    let hour = t.rem_euclid(86_400) as f64 / 3600.0;
                    (hour - host.peak_hour + 36.0).rem_euclid(24.0) - 12.0
                };
                while o < LEN - day && visible(timestamps[o]).abs() > 6.0 {
                    o += 1;
                }
                *onset = o;
                let night = host.normal_at(
                    timestamps[o] - timestamps[o] % 86_400
                        + ((host.peak_hour as i64 + 12) % 24) * 3600,
                );
                for j in 0..day {
                    if o + j < LEN {
                        let t = timestamps[o + j];
                        values[o + j] += night - host.normal_at(t);
                    }
                }
            }
            IncidentKind::Clean | IncidentKind::Routine => {}
        }
    }
    if kind == IncidentKind::Routine {
        let m = size(&mut rng);
        let hour = rng.random_range(0..24 * 12); // of the day, in 5-minute steps
        let len = rng.random_range(2..=6);
        for (v, &t) in values.iter_mut().zip(&timestamps) {
            let at = (t.rem_euclid(86_400) / STEP) as usize;
            if (hour..hour + len).contains(&at) {
                *v += m;
            }
        }
    }
    for v in &mut values {
        *v = v.clamp(0.0, 100.0);
    }
    let half = (LEN / 10 / onsets.len().max(1)) / 2;
    let windows = onsets
        .iter()
        .map(|&o| {
            let a = o.saturating_sub(half);
            let b = (o + half).min(LEN - 1);
            (timestamps[a], timestamps[b])
        })
        .collect();
    LabelledSeries {
        name: format!("generated/{}_{seed}.csv", kind.as_str()),
        timestamps,
        values,
        windows,
    }
}

#[cfg(test)]
mod incident_tests {
    use super::*;

    #[test]
    fn incidents_are_reproducible_and_labelled() {
        for kind in IncidentKind::ALL {
            let a = incident_series(kind, 3);
            let b = incident_series(kind, 3);
            assert_eq!(a.values, b.values);
            assert_eq!(a.timestamps.len(), 4032);
            assert!(a.values.iter().all(|v| (0.0..=100.0).contains(v)));
            let expected = match kind {
                IncidentKind::Clean | IncidentKind::Routine => 0,
                _ => 2,
            };
            assert_eq!(a.windows.len(), expected, "{kind:?}");
            for &(s, e) in &a.windows {
                assert!(s >= a.timestamps[4032 / 5] && e > s);
            }
        }
        assert_ne!(
            incident_series(IncidentKind::Spike, 1).values,
            incident_series(IncidentKind::Spike, 2).values
        );
    }

    #[test]
    fn a_broken_cycle_is_visible_from_its_labelled_onset() {
        let kind = IncidentKind::BrokenSeason;
        for seed in 1..=10 {
            let g = incident_series(kind, seed);
            let host = incident_host(kind, seed, g.timestamps[0]);
            for &(a, b) in &g.windows {
                // The onset is the window's centre; over its first half hour
                // the series sits well below the host's usual day.
                let o = g.timestamps.iter().position(|&t| t >= (a + b) / 2).unwrap();
                let gap: f64 = (o..o + 6)
                    .map(|i| host.normal_at(g.timestamps[i]) - g.values[i])
                    .sum::<f64>()
                    / 6.0;
                assert!(gap >= 5.0, "seed {seed}: {gap:.1} points below at {o}");
            }
        }
    }
}
