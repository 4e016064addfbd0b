//! A level and a noise band: the model a few hours of history support.
//!
//! With less than two days of a host's own data no daily cycle can be
//! learned (Prophet's `auto` rule wants two cycles) and a fitted trend would
//! extrapolate an afternoon's climb into the night. So a short history gets
//! its median as the forecast and a band from its robust spread (1.4826 ×
//! MAD, never narrower than the point-to-point noise), widened with the
//! distance from the history as `√(1 + h/span)`: the further from what was
//! seen, the less it says. The monitor refits such a series as its history
//! grows and moves it to Prophet once two days are there.

use serde::{Deserialize, Serialize};

use super::{Components, Forecast, ForecastError};
use crate::dataset::Unit;

/// Identifies a level model file.
pub const MODEL_FORMAT: &str = "cpu-anomaly/level";
/// Current level model file version.
pub const MODEL_VERSION: u32 = 1;

/// Narrowest half-width of the band, as a share of the unit's full scale
/// (5 percentage points): a few hours of a host say little about the next
/// few, and a move smaller than this is rarely an incident.
pub const MIN_HALF_WIDTH: f64 = 0.05;

/// Median absolute deviation to standard deviation, for normal data.
const MAD_TO_SD: f64 = 1.4826;

/// A fitted level model (also its file format).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LevelModel {
    /// Always [`MODEL_FORMAT`].
    pub format: String,
    /// [`MODEL_VERSION`].
    pub version: u32,
    /// Unit of values and forecasts.
    pub unit: Unit,
    /// Forecast (median of the history).
    pub level: f64,
    /// Spread of the history (robust sd).
    pub sd: f64,
    /// First and last training timestamp.
    pub start: i64,
    /// Last training timestamp.
    pub end: i64,
    /// Training points.
    pub points: usize,
    /// Probability mass inside the band.
    pub interval_width: f64,
}

fn median(v: &mut [f64]) -> f64 {
    let n = v.len();
    let (_, m, _) = v.select_nth_unstable_by(n / 2, f64::total_cmp);
    let m = *m;
    if n % 2 == 1 {
        m
    } else {
        let below = v[..n / 2].iter().copied().fold(f64::NEG_INFINITY, f64::max);
        (m + below) / 2.0
    }
}

impl LevelModel {
    /// Fits on `timestamps`/`values` (at least [`super::MIN_FIT_POINTS`]).
    pub fn fit(
        timestamps: &[i64],
        values: &[f64],
        interval_width: f64,
        unit: Unit,
    ) -> Result<LevelModel, ForecastError> {
        if timestamps.len() < super::MIN_FIT_POINTS {
            return Err(ForecastError::TooShort {
                min: super::MIN_FIT_POINTS,
                got: timestamps.len(),
            });
        }
        let mut v = values.to_vec();
        let level = median(&mut v);
        let mut dev: Vec<f64> = values.iter().map(|x| (x - level).abs()).collect();
        let spread = MAD_TO_SD * median(&mut dev);
        let mut diffs: Vec<f64> = values.windows(2).map(|w| (w[1] - w[0]).abs()).collect();
        // Differences of white noise have sd σ√2.
        let noise = MAD_TO_SD * median(&mut diffs) / std::f64::consts::SQRT_2;
        let floor = 1e-6 * level.abs().max(1e-3);
        Ok(LevelModel {
            format: MODEL_FORMAT.into(),
            version: MODEL_VERSION,
            unit,
            level,
            sd: spread.max(noise).max(floor),
            start: *timestamps.iter().min().expect("non-empty"),
            end: *timestamps.iter().max().expect("non-empty"),
            points: timestamps.len(),
            interval_width,
        })
    }

    /// Forecast with band for `timestamps`.
    pub fn predict(&self, timestamps: &[i64]) -> Forecast {
        let z = distrs::Normal::ppf(0.5 + self.interval_width / 2.0, 0.0, 1.0);
        let span = (self.end - self.start).max(1) as f64;
        let mut f = Forecast {
            timestamps: timestamps.to_vec(),
            ..Forecast::default()
        };
        let floor = MIN_HALF_WIDTH * self.unit.full_scale();
        for &t in timestamps {
            let h = (t - self.end).max(0) as f64;
            let half = (z * self.sd).max(floor) * (1.0 + h / span).sqrt();
            f.yhat.push(self.level);
            f.lower.push(self.level - half);
            f.upper.push(self.level + half);
        }
        f
    }

    /// The level as the trend; no seasonality.
    pub fn components(&self, timestamps: &[i64]) -> Components {
        Components {
            timestamps: timestamps.to_vec(),
            trend: vec![self.level; timestamps.len()],
            seasonal: Vec::new(),
        }
    }

    /// Reads a parsed model file.
    pub(super) fn from_value(
        value: serde_json::Value,
        path: &std::path::Path,
    ) -> Result<Self, ForecastError> {
        let m: LevelModel = serde_json::from_value(value).map_err(|e| ForecastError::Format {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        if m.version != MODEL_VERSION {
            return Err(ForecastError::Format {
                path: path.to_path_buf(),
                message: format!(
                    "level model version {}, expected {MODEL_VERSION}",
                    m.version
                ),
            });
        }
        Ok(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_and_robust_spread() {
        let ts: Vec<i64> = (0..20).map(|i| i * 300).collect();
        let mut ys: Vec<f64> = (0..20).map(|i| 10.0 + (i % 4) as f64).collect();
        ys[7] = 95.0; // one spike moves neither the level nor the band much
        let m = LevelModel::fit(&ts, &ys, 0.95, Unit::Percent).unwrap();
        assert!((m.level - 11.5).abs() < 1e-9, "{}", m.level);
        assert!(m.sd > 0.5 && m.sd < 3.0, "{}", m.sd);
        let f = m.predict(&[ts[19], ts[19] + 5700]);
        assert_eq!(f.yhat, vec![m.level; 2]);
        // Widens with the distance from the history: √(1 + 5700/5700).
        let w0 = f.upper[0] - f.yhat[0];
        let w1 = f.upper[1] - f.yhat[1];
        assert!((w1 / w0 - 2f64.sqrt()).abs() < 1e-9);
        assert!((f.yhat[0] - f.lower[0] - w0).abs() < 1e-12);
    }

    #[test]
    fn a_constant_history_still_has_a_band() {
        let ts: Vec<i64> = (0..12).map(|i| i * 60).collect();
        let m = LevelModel::fit(&ts, &[3.0; 12], 0.95, Unit::Percent).unwrap();
        let f = m.predict(&[700]);
        assert!(f.upper[0] > 3.0 && f.lower[0] < 3.0);
        assert!(LevelModel::fit(&ts[..5], &[1.0; 5], 0.95, Unit::Percent).is_err());
    }
}
