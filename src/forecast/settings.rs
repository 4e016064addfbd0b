//! The forecaster's own configuration section: seasonality switches, priors,
//! band width and optimizer. The config layer fills it; the forecasting code
//! never looks at the rest of the settings.

use serde::Deserialize;

use super::optimizer::OptimizerKind;

/// Whether to fit a seasonal component: `true`, `false`, or `auto` (Prophet's
/// rule: daily with ≥ 2 days of sub-daily history, yearly with ≥ 2 years;
/// weekly with ≥ 1 week, where Prophet waits for 2:
/// [`crate::forecast::prophet::WEEKLY_FROM`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Seasonality {
    /// Decide from the history's length and spacing.
    #[default]
    Auto,
    /// Always fit it.
    On,
    /// Never fit it.
    Off,
}

impl serde::Serialize for Seasonality {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Seasonality::Auto => s.serialize_str("auto"),
            Seasonality::On => s.serialize_bool(true),
            Seasonality::Off => s.serialize_bool(false),
        }
    }
}

impl<'de> Deserialize<'de> for Seasonality {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Bool(bool),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Bool(true) => Ok(Seasonality::On),
            Raw::Bool(false) => Ok(Seasonality::Off),
            Raw::Text(t) if t.eq_ignore_ascii_case("auto") => Ok(Seasonality::Auto),
            Raw::Text(t) => Err(serde::de::Error::custom(format!(
                "expected true, false or auto, got {t:?}"
            ))),
        }
    }
}

/// Prophet model settings.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ProphetSettings {
    /// Fit a daily cycle.
    pub daily_seasonality: Seasonality,
    /// Fit a weekly cycle.
    pub weekly_seasonality: Seasonality,
    /// Fit a yearly cycle.
    pub yearly_seasonality: Seasonality,
    /// Flexibility of the trend (Laplace prior scale on changepoint deltas).
    pub changepoint_prior_scale: f64,
    /// Strength of the seasonal components' prior.
    pub seasonality_prior_scale: f64,
    /// Probability mass inside the prediction band, in (0, 1).
    pub interval_width: f64,
    /// Monte Carlo samples used to draw the band.
    pub uncertainty_samples: u32,
    /// Which optimizer fits the model. Model files written before this
    /// setting existed (all fitted by `wasmstan`) read as `native`; it only
    /// matters when such a model is refitted.
    #[serde(default)]
    pub optimizer: OptimizerKind,
    /// How the trend continues after the history: `linear` (Prophet: the
    /// last slope, extrapolated) or `flat` (held at its last value). Model files written
    /// before this setting existed read as `linear`.
    #[serde(default)]
    pub future_trend: FutureTrend,
    /// Whether the band after the history also allows for future trend
    /// changes (Prophet's own band, which widens with the distance) or
    /// holds the observation noise's width at every distance. A detector's
    /// band should not: a change of level or slope is what it is there to
    /// see, and after a history with one the simulated changes widen the
    /// band past a second one. Model files written before this setting
    /// existed read as `true`.
    #[serde(default = "prophets_own")]
    pub trend_uncertainty: bool,
}

fn prophets_own() -> bool {
    true
}

/// How a Prophet trend continues after the history.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FutureTrend {
    /// The last slope, extrapolated (Prophet's own forecast).
    #[default]
    Linear,
    /// Held at the value at the end of the history.
    Flat,
}

impl FutureTrend {
    /// Name as written in config.
    pub fn as_str(self) -> &'static str {
        match self {
            FutureTrend::Linear => "linear",
            FutureTrend::Flat => "flat",
        }
    }
}

impl Default for ProphetSettings {
    /// The shipped defaults (the config layer's defaults must agree; a test
    /// in `config` checks it).
    fn default() -> Self {
        ProphetSettings {
            daily_seasonality: Seasonality::Auto,
            weekly_seasonality: Seasonality::Auto,
            yearly_seasonality: Seasonality::Off,
            changepoint_prior_scale: 0.05,
            seasonality_prior_scale: 10.0,
            interval_width: 0.95,
            uncertainty_samples: 1000,
            optimizer: OptimizerKind::Native,
            future_trend: FutureTrend::Flat,
            trend_uncertainty: false,
        }
    }
}
