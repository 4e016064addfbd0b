//! Predictive capacity warnings: "this host will reach 90 % CPU in 20
//! minutes", before it does.
//!
//! The forecast alone does not see a ramp: its trend is held flat after the
//! history (`prophet_future_trend: flat`) and it is refitted daily. So the
//! prediction is the forecast plus what the recent samples say about where
//! the series is heading relative to it: the residual (sample − forecast)
//! is smoothed into a level and a slope (Holt's linear smoothing on the
//! samples' own timestamps), and
//!
//! `predicted(t + h) = forecast(t + h) + level + slope · h`.
//!
//! A warning starts when that prediction reaches `capacity_threshold`
//! within `capacity_horizon` on [`CONFIRM`] samples in a row (one noisy
//! sample does not page), and carries the predicted crossing time. It
//! clears once no crossing has been predicted for a third of the horizon
//! and the smoothed value is back under the threshold: one warning per
//! episode. About fifty bytes per series.

use std::time::Duration;

/// Capacity warning settings (`capacity_threshold`, `capacity_horizon`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CapacitySettings {
    /// CPU level in percent (0: off). A series in fractions uses
    /// `threshold / 100`.
    pub threshold: f64,
    /// How far ahead a crossing is warned of.
    pub horizon: Duration,
}

impl Default for CapacitySettings {
    fn default() -> Self {
        CapacitySettings {
            threshold: 90.0,
            horizon: Duration::from_secs(1800),
        }
    }
}

impl CapacitySettings {
    /// Whether warnings are on.
    pub fn enabled(&self) -> bool {
        self.threshold > 0.0
    }

    /// The horizon in whole seconds (at least one).
    pub fn horizon_secs(&self) -> i64 {
        (self.horizon.as_secs() as i64).max(1)
    }
}

/// Samples in a row that must predict a crossing before a warning starts.
pub const CONFIRM: u8 = 2;
/// Points of the horizon at which the prediction is checked.
pub const CHECKS: i64 = 30;

/// A predicted crossing.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Crossing {
    /// Seconds from the sample to the predicted crossing (0: at or over
    /// the threshold now).
    pub in_seconds: i64,
    /// The threshold, in the series' unit.
    pub threshold: f64,
    /// The predicted value at the crossing.
    pub predicted: f64,
}

/// What one sample did to the warning.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Change {
    /// Nothing new.
    #[default]
    None,
    /// A warning started with this sample.
    Onset,
    /// The warning cleared with this sample.
    Cleared,
}

/// The verdict for one sample.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct CapacityVerdict {
    /// The warning in force after this sample, with the latest prediction.
    pub warning: Option<Crossing>,
    /// Whether it started or cleared here.
    pub change: Change,
}

/// One series' capacity watch.
#[derive(Debug, Clone, Copy, Default)]
pub struct CapacityWatch {
    level: f64,
    slope: f64,
    last_ts: i64,
    seen: bool,
    run: u8,
    active: bool,
    /// Last sample that predicted a crossing.
    last_crossing: i64,
    /// The prediction in force while active.
    current: Option<Crossing>,
}

impl CapacityWatch {
    /// A watch that has seen nothing.
    pub fn new() -> CapacityWatch {
        CapacityWatch::default()
    }

    /// Whether a warning is in force.
    pub fn is_active(&self) -> bool {
        self.active
    }

    /// Judges one sample: `actual` against the forecast `yhat` at `ts`;
    /// `forecast(t)` is the forecast at a later `t` (`None` past the band
    /// the series has). `threshold` is in the series' unit.
    pub fn update(
        &mut self,
        s: &CapacitySettings,
        threshold: f64,
        ts: i64,
        actual: f64,
        yhat: f64,
        forecast: impl Fn(i64) -> Option<f64>,
    ) -> CapacityVerdict {
        if !s.enabled() || !actual.is_finite() || !yhat.is_finite() {
            return self.verdict(Change::None);
        }
        let horizon = s.horizon_secs();
        let r = actual - yhat;
        if !self.seen {
            self.level = r;
            self.slope = 0.0;
            self.seen = true;
        } else if ts <= self.last_ts {
            // The same sample again (or an older one): nothing new.
            return self.verdict(Change::None);
        } else {
            let dt = (ts - self.last_ts) as f64;
            // The level follows within a tenth of the horizon, the slope
            // within half of it.
            let tau_level = (horizon as f64 / 10.0).max(1.0);
            let tau_slope = (horizon as f64 / 2.0).max(1.0);
            let a = 1.0 - (-dt / tau_level).exp();
            let b = 1.0 - (-dt / tau_slope).exp();
            let predicted = self.level + self.slope * dt;
            let level = predicted + a * (r - predicted);
            self.slope += b * ((level - self.level) / dt - self.slope);
            self.level = level;
        }
        self.last_ts = ts;
        let crossing = self.predict(threshold, ts, yhat, horizon, &forecast);
        if crossing.is_some() {
            self.last_crossing = ts;
            self.run = self.run.saturating_add(1);
        } else {
            self.run = 0;
        }
        if self.active {
            if let Some(c) = crossing {
                self.current = Some(c);
                return self.verdict(Change::None);
            }
            let quiet = ts - self.last_crossing >= horizon / 3;
            if quiet && yhat + self.level < threshold {
                self.active = false;
                self.current = None;
                return self.verdict(Change::Cleared);
            }
            return self.verdict(Change::None);
        }
        if self.run >= CONFIRM {
            self.active = true;
            self.current = crossing;
            return self.verdict(Change::Onset);
        }
        self.verdict(Change::None)
    }

    fn verdict(&self, change: Change) -> CapacityVerdict {
        CapacityVerdict {
            warning: if self.active { self.current } else { None },
            change,
        }
    }

    /// The first checked point of the horizon where the prediction reaches
    /// the threshold.
    fn predict(
        &self,
        threshold: f64,
        ts: i64,
        yhat: f64,
        horizon: i64,
        forecast: &impl Fn(i64) -> Option<f64>,
    ) -> Option<Crossing> {
        let now = yhat + self.level;
        if now >= threshold {
            return Some(Crossing {
                in_seconds: 0,
                threshold,
                predicted: now,
            });
        }
        let step = (horizon / CHECKS).max(1);
        let mut h = step;
        while h <= horizon {
            let Some(f) = forecast(ts + h) else { break };
            let p = f + self.level + self.slope * h as f64;
            if p >= threshold {
                return Some(Crossing {
                    in_seconds: h,
                    threshold,
                    predicted: p,
                });
            }
            h += step;
        }
        None
    }
}

/// `0s`, `45s`, `20m`, `1h05m`: a crossing time for people.
pub fn human_duration(secs: i64) -> String {
    let s = secs.max(0);
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m", (s + 30) / 60),
        _ => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> CapacitySettings {
        CapacitySettings::default()
    }

    /// Runs `values` (one a minute) against a flat forecast at `base`;
    /// returns (onset index, crossing seconds at onset, clear indices).
    fn run(values: &[f64], base: f64) -> (Vec<(usize, i64)>, Vec<usize>) {
        let mut w = CapacityWatch::new();
        let (mut onsets, mut clears) = (Vec::new(), Vec::new());
        for (i, &v) in values.iter().enumerate() {
            let ts = 1_700_000_000 + 60 * i as i64;
            let out = w.update(&settings(), 90.0, ts, v, base, |_| Some(base));
            match out.change {
                Change::Onset => onsets.push((i, out.warning.unwrap().in_seconds)),
                Change::Cleared => clears.push(i),
                Change::None => {}
            }
        }
        (onsets, clears)
    }

    #[test]
    fn a_ramp_is_warned_of_before_it_crosses_once() {
        // 40 % flat for an hour, then +0.5 points a minute: 90 % at minute 160.
        let values: Vec<f64> = (0..240)
            .map(|i| {
                if i < 60 {
                    40.0
                } else {
                    (40.0 + 0.5 * (i - 60) as f64).min(100.0)
                }
            })
            .collect();
        let (onsets, _) = run(&values, 40.0);
        assert_eq!(onsets.len(), 1, "{onsets:?}");
        let (i, eta) = onsets[0];
        let crossed = values.iter().position(|&v| v >= 90.0).unwrap();
        assert!(i < crossed, "warned at {i}, crossed at {crossed}");
        let lead = crossed - i;
        assert!((10..=31).contains(&lead), "lead {lead} min");
        // The predicted crossing time is about right (within 10 minutes).
        assert!(
            (eta / 60 - lead as i64).abs() <= 10,
            "eta {eta}s, lead {lead} min"
        );
    }

    #[test]
    fn noise_and_a_single_spike_near_the_threshold_do_not_warn() {
        let mut values: Vec<f64> = (0..2000)
            .map(|i| 70.0 + 6.0 * ((i as f64) * 1.7).sin() + 4.0 * ((i as f64) * 0.31).cos())
            .collect();
        values[500] = 99.0;
        let (onsets, _) = run(&values, 70.0);
        assert!(onsets.is_empty(), "{onsets:?}");
    }

    #[test]
    fn the_warning_clears_when_the_load_falls_back_and_a_new_episode_warns_again() {
        let mut values = vec![40.0; 30];
        values.extend((0..60).map(|i| 40.0 + i as f64));
        values.extend(vec![95.0; 20]);
        values.extend(vec![40.0; 60]);
        values.extend((0..60).map(|i| 40.0 + i as f64));
        let (onsets, clears) = run(&values, 40.0);
        assert_eq!(onsets.len(), 2, "{onsets:?}");
        assert_eq!(clears.len(), 1, "{clears:?}");
        assert!(onsets[0].0 < clears[0] && clears[0] < onsets[1].0);
    }

    #[test]
    fn a_forecast_that_peaks_over_the_threshold_is_warned_of() {
        // The daily peak of the forecast reaches 95 % in 20 minutes.
        let mut w = CapacityWatch::new();
        let t0 = 1_700_000_000;
        let forecast = |t: i64| Some(if t >= t0 + 1200 { 95.0 } else { 60.0 });
        let mut out = CapacityVerdict::default();
        for k in 0..3 {
            out = w.update(&settings(), 90.0, t0 + 30 * k, 60.0, 60.0, forecast);
        }
        let c = out.warning.expect("warned");
        assert!((1080..=1200).contains(&c.in_seconds), "{c:?}");
        assert_eq!(c.threshold, 90.0);
    }

    #[test]
    fn off_means_off() {
        let mut w = CapacityWatch::new();
        let s = CapacitySettings {
            threshold: 0.0,
            ..settings()
        };
        for k in 0..10 {
            assert_eq!(
                w.update(&s, 0.0, k * 60, 99.0, 10.0, |_| Some(10.0)).change,
                Change::None
            );
        }
    }
}
