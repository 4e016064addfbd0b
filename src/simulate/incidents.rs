//! Generated development series with NAB-style label windows: spikes,
//! level shifts, slow drifts, variance changes, broken daily cycles, clean,
//! routine and bursty hosts.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};
use serde::{Deserialize, Serialize};

use super::fleet::{splitmix, FleetHost};

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
    /// Nothing happens but short bursts at random times, a few a day, of
    /// the size incidents have (requests, compactions, garbage collection):
    /// its normal is bursty, every alert is false.
    Bursty,
}

impl IncidentKind {
    /// Every kind, in a fixed order.
    pub const ALL: [IncidentKind; 8] = [
        IncidentKind::Spike,
        IncidentKind::LevelShift,
        IncidentKind::Drift,
        IncidentKind::Variance,
        IncidentKind::BrokenSeason,
        IncidentKind::Clean,
        IncidentKind::Routine,
        IncidentKind::Bursty,
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
            IncidentKind::Bursty => "bursty",
        }
    }

    /// A host with no incident, whose every alert is false.
    pub fn is_quiet(self) -> bool {
        matches!(
            self,
            IncidentKind::Clean | IncidentKind::Routine | IncidentKind::Bursty
        )
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
    incident_series_over(kind, seed, 14)
}

/// [`incident_series`] over `days` days (at least 7): the same host, its
/// incidents placed the same way in the longer series (used to measure how
/// often a quiet host pages once it has weeks of history).
pub fn incident_series_over(kind: IncidentKind, seed: u64, days: usize) -> LabelledSeries {
    const STEP: i64 = 300;
    let n = days.max(7) * 288;
    let start = 1_748_822_400; // a Monday
    let host = incident_host(kind, seed, start);
    let mut rng = ChaCha8Rng::seed_from_u64(splitmix(seed ^ ((kind as u64) << 40)));
    let timestamps: Vec<i64> = (0..n as i64).map(|k| start + k * STEP).collect();
    let noise = Normal::new(0.0, host.noise_sd).expect("finite sd");
    let mut values: Vec<f64> = timestamps
        .iter()
        .map(|&t| host.normal_at(t) + noise.sample(&mut rng))
        .collect();
    let day = 288;
    let mut onsets = Vec::new();
    if !kind.is_quiet() {
        let a = rng.random_range(n / 5 + day..n / 2);
        let b = rng.random_range(a + 2 * day..n - day);
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
                    if o + j < n {
                        values[o + j] += m * ((j + 1) as f64 / ramp as f64).min(1.0);
                    }
                }
            }
            IncidentKind::Variance => {
                let extra = Normal::new(0.0, rng.random_range(3.0..5.0) * sd.max(2.0)).expect("sd");
                for v in &mut values[o..(o + 72).min(n)] {
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
                while o < n - day && visible(timestamps[o]).abs() > 6.0 {
                    o += 1;
                }
                *onset = o;
                let night = host.normal_at(
                    timestamps[o] - timestamps[o] % 86_400
                        + ((host.peak_hour as i64 + 12) % 24) * 3600,
                );
                for j in 0..day {
                    if o + j < n {
                        let t = timestamps[o + j];
                        values[o + j] += night - host.normal_at(t);
                    }
                }
            }
            IncidentKind::Clean | IncidentKind::Routine | IncidentKind::Bursty => {}
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
    if kind == IncidentKind::Bursty {
        // 2 to 8 bursts a day at random times, 5 to 20 minutes each, their
        // heights spread around the host's own burst size (log-normal).
        let scale = rng.random_range(0.5..1.5) * (15.0f64).max(6.0 * sd);
        let per_day: f64 = rng.random_range(2.0..8.0);
        let spread = Normal::new(0.0f64, 0.3).expect("sd");
        let mut k = 0;
        while k < n {
            if rng.random_bool(per_day / day as f64) {
                let m = scale * f64::exp(spread.sample(&mut rng));
                let len = rng.random_range(1..=4);
                for v in &mut values[k..(k + len).min(n)] {
                    *v += m;
                }
                k += len;
            } else {
                k += 1;
            }
        }
    }
    for v in &mut values {
        *v = v.clamp(0.0, 100.0);
    }
    let half = (n / 10 / onsets.len().max(1)) / 2;
    let windows = onsets
        .iter()
        .map(|&o| {
            let a = o.saturating_sub(half);
            let b = (o + half).min(n - 1);
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
            let expected = if kind.is_quiet() { 0 } else { 2 };
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
    fn a_longer_series_is_the_same_kind_of_host_for_longer() {
        for kind in IncidentKind::ALL {
            assert_eq!(
                incident_series_over(kind, 2, 14).values,
                incident_series(kind, 2).values,
                "{kind:?}: 14 days is the development series"
            );
            let g = incident_series_over(kind, 2, 56);
            assert_eq!(g.timestamps.len(), 56 * 288);
            assert_eq!(g.windows.len(), if kind.is_quiet() { 0 } else { 2 });
            assert!(g.values.iter().all(|v| (0.0..=100.0).contains(v)));
        }
        // The shortest span still places both incidents.
        for kind in IncidentKind::ALL {
            let g = incident_series_over(kind, 9, 1);
            assert_eq!(g.timestamps.len(), 7 * 288, "{kind:?}: a week at least");
        }
        // A bursty host keeps bursting: every week has bursts.
        let kind = IncidentKind::Bursty;
        let g = incident_series_over(kind, 4, 56);
        let host = incident_host(kind, 4, g.timestamps[0]);
        for week in g.values.chunks(7 * 288).zip(g.timestamps.chunks(7 * 288)) {
            let bursts = week
                .0
                .iter()
                .zip(week.1)
                .filter(|(v, t)| **v - host.normal_at(**t) >= 10.0)
                .count();
            assert!(bursts >= 7, "{bursts} burst samples in a week");
        }
    }

    #[test]
    fn a_bursty_host_bursts_a_few_times_a_day_at_random_hours() {
        for seed in 1..=5 {
            let kind = IncidentKind::Bursty;
            let g = incident_series(kind, seed);
            let host = incident_host(kind, seed, g.timestamps[0]);
            // A burst is a run of samples at least 10 points above the host's
            // usual day (most bursts are well above that, noise a few).
            let high: Vec<bool> = (0..g.values.len())
                .map(|i| g.values[i] - host.normal_at(g.timestamps[i]) >= 10.0)
                .collect();
            let starts: Vec<usize> = (0..high.len())
                .filter(|&i| high[i] && (i == 0 || !high[i - 1]))
                .collect();
            let per_day = starts.len() as f64 / 14.0;
            assert!(
                (1.0..=10.0).contains(&per_day),
                "seed {seed}: {per_day:.1}/day"
            );
            // Not a daily job: the bursts land at many different hours.
            let hours: std::collections::BTreeSet<usize> =
                starts.iter().map(|i| (i % 288) / 12).collect();
            assert!(hours.len() >= 12, "seed {seed}: bursts at {hours:?}");
        }
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
