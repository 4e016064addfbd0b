//! The alerting keys (`threshold_multiplier` … `alert_routine_factor`):
//! range-checked once into [`DecisionSettings`], at the top level and in
//! each entry of `alert_overrides`, which gives a group of series (by a
//! label selector) settings of its own.

use serde::Deserialize;

use super::{raw::Secs, ConfigError};
use crate::{
    detect::{DecisionSettings, Side},
    source::selector::Selector,
};

/// The alerting keys as written.
#[derive(Debug, Clone, Copy)]
pub(super) struct RawDecision {
    pub(super) threshold_multiplier: f64,
    pub(super) sustained_samples: i64,
    pub(super) min_effect: f64,
    pub(super) min_effect_relative: f64,
    pub(super) min_effect_peak_factor: f64,
    pub(super) alert_direction: Side,
    pub(super) band_calibration: bool,
    pub(super) alert_clear_after: Secs,
    pub(super) alert_cooldown: Secs,
    pub(super) rebaseline_after: Secs,
    pub(super) alert_likelihood: f64,
    pub(super) alert_likelihood_alone: f64,
    pub(super) alert_routine_factor: f64,
}

/// One entry of `alert_overrides`: a selector and the alerting keys it
/// changes (the others are the top level's).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawOverride {
    selector: String,
    #[serde(default)]
    threshold_multiplier: Option<f64>,
    #[serde(default)]
    sustained_samples: Option<i64>,
    #[serde(default)]
    min_effect: Option<f64>,
    #[serde(default)]
    min_effect_relative: Option<f64>,
    #[serde(default)]
    min_effect_peak_factor: Option<f64>,
    #[serde(default)]
    alert_direction: Option<Side>,
    #[serde(default)]
    band_calibration: Option<bool>,
    #[serde(default)]
    alert_clear_after: Option<Secs>,
    #[serde(default)]
    alert_cooldown: Option<Secs>,
    #[serde(default)]
    rebaseline_after: Option<Secs>,
    #[serde(default)]
    alert_likelihood: Option<f64>,
    #[serde(default)]
    alert_likelihood_alone: Option<f64>,
    #[serde(default)]
    alert_routine_factor: Option<f64>,
}

impl RawOverride {
    /// `base` with this entry's keys in place of its own.
    fn over(&self, base: RawDecision) -> RawDecision {
        RawDecision {
            threshold_multiplier: self
                .threshold_multiplier
                .unwrap_or(base.threshold_multiplier),
            sustained_samples: self.sustained_samples.unwrap_or(base.sustained_samples),
            min_effect: self.min_effect.unwrap_or(base.min_effect),
            min_effect_relative: self.min_effect_relative.unwrap_or(base.min_effect_relative),
            min_effect_peak_factor: self
                .min_effect_peak_factor
                .unwrap_or(base.min_effect_peak_factor),
            alert_direction: self.alert_direction.unwrap_or(base.alert_direction),
            band_calibration: self.band_calibration.unwrap_or(base.band_calibration),
            alert_clear_after: self.alert_clear_after.unwrap_or(base.alert_clear_after),
            alert_cooldown: self.alert_cooldown.unwrap_or(base.alert_cooldown),
            rebaseline_after: self.rebaseline_after.unwrap_or(base.rebaseline_after),
            alert_likelihood: self.alert_likelihood.unwrap_or(base.alert_likelihood),
            alert_likelihood_alone: self
                .alert_likelihood_alone
                .unwrap_or(base.alert_likelihood_alone),
            alert_routine_factor: self
                .alert_routine_factor
                .unwrap_or(base.alert_routine_factor),
        }
    }
}

/// A group of series with alert settings of its own.
#[derive(Debug, Clone)]
pub struct AlertGroup {
    /// The series it holds (PromQL label matchers).
    pub selector: Selector,
    /// Their settings.
    pub decision: DecisionSettings,
}

/// What an out-of-range value becomes: key (as the user must find it),
/// value, what is allowed.
pub(super) type Range<'a> = &'a dyn Fn(String, String, &'static str) -> ConfigError;

/// The top level's settings and `alert_overrides`' groups, validated.
pub(super) fn alert_settings(
    top: RawDecision,
    overrides: &[RawOverride],
    range: Range<'_>,
    bad_selector: &dyn Fn(String, String) -> ConfigError,
) -> Result<(DecisionSettings, Vec<AlertGroup>), ConfigError> {
    let default = validate(&top, "", range)?;
    let mut groups = Vec::with_capacity(overrides.len());
    for (i, o) in overrides.iter().enumerate() {
        let at = format!("alert_overrides[{i}].");
        let selector = Selector::parse(&o.selector)
            .map_err(|e| bad_selector(format!("{at}selector"), e.to_string()))?;
        if selector.is_empty() {
            return Err(bad_selector(
                format!("{at}selector"),
                "empty: give the label matchers of the series this entry is for, e.g. '{job=\"batch\"}'"
                    .into(),
            ));
        }
        groups.push(AlertGroup {
            selector,
            decision: validate(&o.over(top), &at, range)?,
        });
    }
    Ok((default, groups))
}

/// Range-checks one set of alerting keys (`at`: the prefix naming where
/// they are, "" at the top level).
fn validate(d: &RawDecision, at: &str, range: Range<'_>) -> Result<DecisionSettings, ConfigError> {
    let key = |k: &str| format!("{at}{k}");
    if !(d.threshold_multiplier.is_finite() && d.threshold_multiplier >= 1.0) {
        return Err(range(
            key("threshold_multiplier"),
            d.threshold_multiplier.to_string(),
            "a number >= 1",
        ));
    }
    if !(1..=10_000).contains(&d.sustained_samples) {
        return Err(range(
            key("sustained_samples"),
            d.sustained_samples.to_string(),
            "between 1 and 10000",
        ));
    }
    if !(d.min_effect.is_finite() && (0.0..=100.0).contains(&d.min_effect)) {
        return Err(range(
            key("min_effect"),
            d.min_effect.to_string(),
            "between 0 and 100 (percentage points)",
        ));
    }
    for (k, v, expected) in [
        (
            "min_effect_relative",
            d.min_effect_relative,
            "between 0 and 10 (a fraction of the forecast; 0 is off)",
        ),
        (
            "min_effect_peak_factor",
            d.min_effect_peak_factor,
            "between 0 and 10 (times the recent largest deviation; 0 is off)",
        ),
        (
            "alert_routine_factor",
            d.alert_routine_factor,
            "between 0 and 10 (times the largest excursion at the same hour; 0 is off)",
        ),
    ] {
        if !(v.is_finite() && (0.0..=10.0).contains(&v)) {
            return Err(range(key(k), v.to_string(), expected));
        }
    }
    for (k, v) in [
        ("alert_clear_after", d.alert_clear_after.0),
        ("alert_cooldown", d.alert_cooldown.0),
        ("rebaseline_after", d.rebaseline_after.0),
    ] {
        if !(v.is_finite() && (0.0..=30.0 * 86_400.0).contains(&v)) {
            return Err(range(
                key(k),
                v.to_string(),
                "between 0 and 30 days (2592000 s; or 30m, 12h, 1d)",
            ));
        }
    }
    for (k, v) in [
        ("alert_likelihood_alone", d.alert_likelihood_alone),
        ("alert_likelihood", d.alert_likelihood),
    ] {
        if !(v.is_finite() && (0.0..0.5).contains(&v)) {
            return Err(range(
                key(k),
                v.to_string(),
                "a tail probability in [0, 0.5) (0: off)",
            ));
        }
    }
    Ok(DecisionSettings {
        multiplier: d.threshold_multiplier,
        sustained: d.sustained_samples as u32,
        min_effect: d.min_effect,
        min_effect_relative: d.min_effect_relative,
        min_effect_peak_factor: d.min_effect_peak_factor,
        direction: d.alert_direction,
        calibrate: d.band_calibration,
        clear_after: d.alert_clear_after.0.round() as i64,
        cooldown: d.alert_cooldown.0.round() as i64,
        rebaseline_after: d.rebaseline_after.0.round() as i64,
        likelihood: d.alert_likelihood,
        likelihood_alone: d.alert_likelihood_alone,
        routine_factor: d.alert_routine_factor,
    })
}
