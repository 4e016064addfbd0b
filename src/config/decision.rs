//! The alerting keys (`threshold_multiplier` … `alert_routine_factor`):
//! range-checked once into [`DecisionSettings`], at the top level and in
//! each entry of `alert_overrides`, which gives a group of series (by a
//! label selector) settings of its own.

use super::{
    raw::{RawDecision, RawOverride},
    ConfigError,
};
use crate::{detect::DecisionSettings, source::selector::Selector};

/// A group of series with alert settings of its own.
#[derive(Debug, Clone)]
pub struct AlertGroup {
    /// The series it holds (PromQL label matchers).
    pub selector: Selector,
    /// The selector as written, shared by the series it holds (logs,
    /// report, API).
    pub text: std::sync::Arc<str>,
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
            text: selector.to_string().into(),
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
