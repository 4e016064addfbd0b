//! The decision settings (the alerting keys of the config) and the side a
//! deviation must be on to alert.

use serde::{Deserialize, Serialize};

use crate::detect::Direction;

/// Which deviations may alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    /// Above and below the forecast.
    #[default]
    Both,
    /// Only above (high CPU).
    Above,
    /// Only below.
    Below,
}

impl Side {
    /// Name as written in config.
    pub fn as_str(self) -> &'static str {
        match self {
            Side::Both => "both",
            Side::Above => "above",
            Side::Below => "below",
        }
    }

    pub(super) fn allows(self, d: Direction) -> bool {
        matches!(
            (self, d),
            (Side::Both, _) | (Side::Above, Direction::Above) | (Side::Below, Direction::Below)
        )
    }
}

/// The decision settings (the alerting keys of the config).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct DecisionSettings {
    /// Band multiplier m ≥ 1.
    pub multiplier: f64,
    /// Flags in a row that fire an alert.
    pub sustained: u32,
    /// Smallest deviation from the forecast that can flag, in the series'
    /// unit.
    pub min_effect: f64,
    /// Where this fraction of the forecast is smaller than `min_effect`, it
    /// is the smallest deviation instead (but never under `min_effect_peak_factor`
    /// times the series' recent largest deviation): an idle host (forecast
    /// 0.5 %) whose whole range sits under `min_effect` can still alert on
    /// a jump that is large for it. 0: off.
    pub min_effect_relative: f64,
    /// With `min_effect_relative`, a deviation must also be this many times
    /// the largest one of about the past week outside the current
    /// excursion (decaying with [`LONG_TAU`]): an idle host whose normal
    /// day has spikes to 1.5 % does not page on the next one, only on one
    /// well above them. 0: no such bound.
    pub min_effect_peak_factor: f64,
    /// Which side may alert.
    pub direction: Side,
    /// Calibrate the band from recent out-of-sample residuals.
    pub calibrate: bool,
    /// Seconds without a flag that resolve an alert (0: the first
    /// unflagged sample).
    pub clear_after: i64,
    /// Seconds after a resolution during which no new alert fires.
    pub cooldown: i64,
    /// Seconds of one-sided firing after which the new level is accepted
    /// (0: never).
    pub rebaseline_after: i64,
    /// An alert fires only if the recent average score has a tail
    /// probability below this under the long-run score distribution
    /// (0: off).
    pub likelihood: f64,
    /// A deviation of at least `min_effect` whose recent average score has
    /// a tail probability below this counts as a flag even inside the
    /// scaled band (a long moderate deviation). 0: off.
    pub likelihood_alone: f64,
    /// An alert does not start on a deviation no larger than this many
    /// times what the series reached, in excursions that began within an
    /// hour of the same time of day (UTC), on each of the last two days: a
    /// host's daily job (a backup at 03:00) does not page every day, and
    /// a one-off at that hour yesterday raises no bar. 0: off.
    pub routine_factor: f64,
}

impl Default for DecisionSettings {
    /// The original system's rule: band × 2, 3 flags in a row, no
    /// calibration, likelihood, hysteresis, cooldown or re-baselining.
    fn default() -> Self {
        DecisionSettings {
            multiplier: 2.0,
            sustained: 3,
            min_effect: 0.0,
            min_effect_relative: 0.0,
            min_effect_peak_factor: 0.0,
            direction: Side::Both,
            calibrate: false,
            clear_after: 0,
            cooldown: 0,
            rebaseline_after: 0,
            likelihood: 0.0,
            likelihood_alone: 0.0,
            routine_factor: 0.0,
        }
    }
}

impl DecisionSettings {
    /// The smallest deviation that can flag where the forecast is `yhat`
    /// and the largest recent deviation (decayed) is `peak`.
    pub fn effect_floor(&self, yhat: f64, peak: f64) -> f64 {
        if self.min_effect_relative > 0.0 {
            let relative =
                (self.min_effect_relative * yhat.abs()).max(self.min_effect_peak_factor * peak);
            self.min_effect.min(relative)
        } else {
            self.min_effect
        }
    }
}
