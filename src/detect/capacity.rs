//! Predictive capacity warnings: "this host will reach 90 % CPU in 20
//! minutes", before it does.
//!
//! The forecast alone does not see a ramp: its trend is held flat after the
//! history (`prophet_future_trend: flat`) and it is refitted daily. So the
//! prediction is the forecast plus where the recent samples are heading
//! relative to it. The residuals (sample − forecast) of the last half
//! horizon (at most [`WINDOW`] samples) give a line by Theil–Sen (the
//! median of the pairwise slopes, and the median intercept), and
//!
//! `predicted(t + h) = forecast(t + h) + intercept + slope · h`.
//!
//! The median makes the line robust: a one-sample spike does not tilt it,
//! and a step to a new level tilts it only while the step sits near the
//! middle of the window, which is shorter than the confirmation below.
//!
//! A warning starts when the prediction reaches `capacity_threshold` within
//! `capacity_horizon` on consecutive samples spanning a sixth of the
//! horizon (two samples in a row when the value is already over it), and
//! carries the predicted crossing time. It clears once no crossing has been
//! predicted for a third of the horizon and the value is back under the
//! threshold: one warning per episode. About 300 bytes per series.

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
/// A prediction must hold over this fraction of the horizon (a sixth: five
/// minutes of a 30-minute horizon) before a warning starts.
pub const CONFIRM_FRACTION: i64 = 6;
/// How far (in median absolute deviations of the window) two samples in a
/// row must sit to be a step to a new level.
pub const STEP_MADS: f64 = 6.0;
/// Smallest MAD a step is measured in, as a share of the threshold.
pub const STEP_MAD_FLOOR: f64 = 0.005;
/// Standard errors a slope must stand out by to be extrapolated.
pub const SLOPE_SES: f64 = 2.0;
/// Below this share of the threshold nothing is predicted.
pub const GATE: f64 = 0.4;

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

impl Change {
    /// The event's name in logs and the API (`capacity_warning`,
    /// `capacity_cleared`; `None`: nothing happened).
    pub fn event(self) -> Option<&'static str> {
        match self {
            Change::Onset => Some("capacity_warning"),
            Change::Cleared => Some("capacity_cleared"),
            Change::None => None,
        }
    }
}

/// The verdict for one sample.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct CapacityVerdict {
    /// The warning in force after this sample, with the latest prediction.
    pub warning: Option<Crossing>,
    /// Whether it started or cleared here.
    pub change: Change,
}

/// Residuals kept per series at most (the half horizon's samples).
pub const WINDOW: usize = 32;
/// Residuals kept however old (a series sampled every 5 minutes keeps half
/// an hour).
pub const MIN_SAMPLES: usize = 6;

/// One series' capacity watch.
#[derive(Debug, Clone, Copy)]
pub struct CapacityWatch {
    /// Ring of (timestamp, residual), oldest at `head` (Unix seconds fit
    /// 32 bits until 2106; the Prometheus reader refuses later ones).
    ring: [(u32, f32); WINDOW],
    head: u8,
    len: u8,
    /// Start of the current run of samples predicting a crossing.
    run_since: Option<i64>,
    run: u8,
    active: bool,
    /// Last sample that predicted a crossing.
    last_crossing: i64,
    /// The prediction in force while active.
    current: Option<Crossing>,
}

impl Default for CapacityWatch {
    fn default() -> Self {
        CapacityWatch {
            ring: [(0, 0.0); WINDOW],
            head: 0,
            len: 0,
            run_since: None,
            run: 0,
            active: false,
            last_crossing: 0,
            current: None,
        }
    }
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

    fn last_ts(&self) -> Option<i64> {
        (self.len > 0)
            .then(|| i64::from(self.ring[(self.head as usize + self.len as usize - 1) % WINDOW].0))
    }

    fn push(&mut self, ts: i64, r: f64, keep: i64) {
        if self.len as usize == WINDOW {
            self.head = ((self.head as usize + 1) % WINDOW) as u8;
            self.len -= 1;
        }
        let at = (self.head as usize + self.len as usize) % WINDOW;
        self.ring[at] = (ts.clamp(0, i64::from(u32::MAX)) as u32, r as f32);
        self.len += 1;
        // Forget what is older than the window (keeping a few samples of
        // a sparse series).
        while self.len as usize > MIN_SAMPLES
            && ts - i64::from(self.ring[self.head as usize].0) > keep
        {
            self.head = ((self.head as usize + 1) % WINDOW) as u8;
            self.len -= 1;
        }
    }

    /// The residuals in the window, oldest first.
    fn points(&self) -> Vec<(i64, f64)> {
        (0..self.len as usize)
            .map(|k| {
                let (t, r) = self.ring[(self.head as usize + k) % WINDOW];
                (i64::from(t), f64::from(r))
            })
            .collect()
    }

    /// The Theil–Sen line of the residuals, as (value at `now`, slope per
    /// second); no slope under [`MIN_SAMPLES`] residuals.
    fn line(&self, now: i64) -> (f64, f64) {
        let pts = self.points();
        let slope = if pts.len() >= MIN_SAMPLES {
            theil_sen(&pts).unwrap_or(0.0)
        } else {
            0.0
        };
        // Noise tilts a line too: a slope counts only if it stands out of
        // the scatter around it (Theil–Sen with a MAD-based standard error).
        let slope = if significant(&pts, slope) { slope } else { 0.0 };
        let mut at_now: Vec<f64> = pts
            .iter()
            .map(|(t, r)| r + slope * (now - t) as f64)
            .collect();
        (median(&mut at_now).unwrap_or(0.0), slope)
    }

    /// A step to a new level: the last two residuals sit on the same side of
    /// the line through the samples before them, more than [`STEP_MADS`]
    /// median absolute deviations (of those samples around their line)
    /// away. The window then restarts at the step, so the step is a new
    /// level, not a trend; a ramp stays on its line and keeps its window.
    fn cut_at_step(&mut self, threshold: f64) {
        if (self.len as usize) < MIN_SAMPLES + 2 {
            return;
        }
        let pts = self.points();
        let (before, last) = pts.split_at(pts.len() - 2);
        let slope = theil_sen(before).unwrap_or(0.0);
        let t0 = before[before.len() - 1].0;
        let mut off: Vec<f64> = before
            .iter()
            .map(|(t, r)| r - slope * (t - t0) as f64)
            .collect();
        let Some(mid) = median(&mut off) else { return };
        let mut dev: Vec<f64> = off.iter().map(|o| (o - mid).abs()).collect();
        // A very smooth series has almost no scatter: a step must still be
        // a few points (half a percent of the threshold per MAD).
        let mad = median(&mut dev)
            .unwrap_or(0.0)
            .max(STEP_MAD_FLOOR * threshold.abs());
        let away = |(t, r): (i64, f64)| r - (mid + slope * (t - t0) as f64);
        let (a, b) = (away(last[0]), away(last[1]));
        if a.signum() == b.signum() && a.abs().min(b.abs()) > STEP_MADS * mad {
            let keep = 2;
            self.head = ((self.head as usize + self.len as usize - keep) % WINDOW) as u8;
            self.len = keep as u8;
        }
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
        if self.last_ts().is_some_and(|last| ts <= last) {
            // The same sample again (or an older one): nothing new.
            return self.verdict(Change::None);
        }
        let horizon = s.horizon_secs();
        self.push(ts, actual - yhat, horizon / 2);
        self.cut_at_step(threshold);
        let crossing = if actual >= threshold {
            Some(Crossing {
                in_seconds: 0,
                threshold,
                predicted: actual,
            })
        } else if actual < threshold * GATE {
            // Far below: no line needed (a fleet's idle hosts cost nothing).
            None
        } else {
            let (level, slope) = self.line(ts);
            predict(threshold, ts, level, slope, horizon, &forecast)
        };
        match crossing {
            Some(_) => {
                self.last_crossing = ts;
                self.run = self.run.saturating_add(1);
                self.run_since.get_or_insert(ts);
            }
            None => {
                self.run = 0;
                self.run_since = None;
            }
        }
        if self.active {
            if let Some(c) = crossing {
                self.current = Some(c);
                return self.verdict(Change::None);
            }
            if ts - self.last_crossing >= horizon / 3 && actual < threshold {
                self.active = false;
                self.current = None;
                return self.verdict(Change::Cleared);
            }
            return self.verdict(Change::None);
        }
        let confirmed = self.run >= CONFIRM
            && match crossing {
                Some(c) if c.in_seconds == 0 => true,
                _ => self
                    .run_since
                    .is_some_and(|since| ts - since >= horizon / CONFIRM_FRACTION),
            };
        if confirmed {
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
}

/// The first checked point of the horizon where the prediction reaches the
/// threshold.
fn predict(
    threshold: f64,
    ts: i64,
    level: f64,
    slope: f64,
    horizon: i64,
    forecast: &impl Fn(i64) -> Option<f64>,
) -> Option<Crossing> {
    let step = (horizon / CHECKS).max(1);
    let mut h = step;
    while h <= horizon {
        let Some(f) = forecast(ts + h) else { break };
        let p = f + level + slope * h as f64;
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

/// Whether `slope` is more than [`SLOPE_SES`] standard errors from zero,
/// the scatter measured robustly (1.4826 · MAD of the residuals around the
/// line).
fn significant(pts: &[(i64, f64)], slope: f64) -> bool {
    if slope == 0.0 || pts.len() < 3 {
        return false;
    }
    let tm = pts.iter().map(|p| p.0 as f64).sum::<f64>() / pts.len() as f64;
    let sxx: f64 = pts.iter().map(|p| (p.0 as f64 - tm).powi(2)).sum();
    let mut off: Vec<f64> = pts
        .iter()
        .map(|(t, r)| r - slope * (*t as f64 - tm))
        .collect();
    let Some(mid) = median(&mut off) else {
        return false;
    };
    let mut dev: Vec<f64> = off.iter().map(|o| (o - mid).abs()).collect();
    let sd = 1.4826 * median(&mut dev).unwrap_or(0.0);
    sxx > 0.0 && slope.abs() > SLOPE_SES * sd / sxx.sqrt()
}

/// The median of the pairwise slopes (`None` under two points).
fn theil_sen(pts: &[(i64, f64)]) -> Option<f64> {
    // On the stack: this runs for every sample of every host near its
    // threshold (at most WINDOW points, so this many pairs).
    let mut slopes = [0.0f64; WINDOW * (WINDOW - 1) / 2];
    let mut n = 0;
    for (i, a) in pts.iter().enumerate() {
        for b in &pts[i + 1..] {
            if b.0 > a.0 && n < slopes.len() {
                slopes[n] = (b.1 - a.1) / (b.0 - a.0) as f64;
                n += 1;
            }
        }
    }
    median(&mut slopes[..n])
}

fn median(v: &mut [f64]) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    let mid = v.len() / 2;
    let (_, m, _) = v.select_nth_unstable_by(mid, f64::total_cmp);
    Some(*m)
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
        for k in 0..12 {
            out = w.update(&settings(), 90.0, t0 + 30 * k, 60.0, 60.0, forecast);
        }
        let c = out.warning.expect("warned");
        assert!((780..=900).contains(&c.in_seconds), "{c:?}");
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
