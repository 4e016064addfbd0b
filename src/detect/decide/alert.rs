//! Stages 5–7 of the decision path: one series' alert, from the flags the
//! earlier stages raise to onsets, resolutions and accepted level shifts.
//!
//! Fire after `sustained` flags in a row (at once for a CRITICAL sample)
//! when the likelihood stage lets the excursion through (or it has been
//! flagged for [`PERSIST`] in a row), not on the host's routine and not
//! within `cooldown` of the last resolution; resolve once nothing has been
//! flagged for `clear_after`; an alert firing for `rebaseline_after`, all on
//! one side, is a level shift (its mean residual is the new baseline).

use serde::{Deserialize, Serialize};

use super::{DecisionSettings, PERSIST};

/// The alert state of one series (flattened into the kept decision state,
/// so its fields sit where they always were in `decisions.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) struct AlertState {
    /// Flags in a row, and the time of the first of them (0: unknown, in
    /// a state kept before it was; the next flag sets it).
    run: u32,
    #[serde(default)]
    run_since: i64,
    firing: bool,
    /// When the alert fired, when it was last flagged, when it resolved.
    fired_at: i64,
    flagged_at: i64,
    resolved_at: Option<i64>,
    /// The alert's residuals since it fired (or since the last
    /// re-baselining): their sum, count and sides.
    sum: f64,
    count: u32,
    above: u32,
    below: u32,
}

/// What one sample did to the alert.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Step {
    /// The alert fired.
    pub onset: bool,
    /// The alert resolved.
    pub resolved: bool,
    /// A level shift was accepted: the baseline moves by this much.
    pub shift: Option<f64>,
}

/// One sample as the alert sees it.
#[derive(Debug, Clone, Copy)]
pub(super) struct Sample {
    /// Its time, Unix seconds.
    pub ts: i64,
    /// Its deviation from the (moved) forecast.
    pub residual: f64,
    /// Flagged by stages 3–4 (or a strong long deviation).
    pub flag: bool,
    /// The likelihood stage lets it through.
    pub improbable: bool,
    /// Within the host's routine at this time of day.
    pub routine: bool,
    /// A CRITICAL sample fires without waiting for `sustained`.
    pub critical: bool,
}

impl AlertState {
    /// No alert, no flags.
    pub(super) fn new() -> AlertState {
        AlertState {
            run: 0,
            run_since: 0,
            firing: false,
            fired_at: 0,
            flagged_at: 0,
            resolved_at: None,
            sum: 0.0,
            count: 0,
            above: 0,
            below: 0,
        }
    }

    /// An alert is firing.
    pub(super) fn firing(&self) -> bool {
        self.firing
    }

    /// No excursion under way: not firing and the last sample unflagged.
    pub(super) fn quiet(&self) -> bool {
        !self.firing && self.run == 0
    }

    /// Forgets the alert, the flags in a row and the last resolution (the
    /// end of a warm-up on history: history never pages).
    pub(super) fn clear(&mut self) {
        *self = AlertState {
            run_since: self.run_since,
            fired_at: self.fired_at,
            flagged_at: self.flagged_at,
            ..AlertState::new()
        };
    }

    /// Stages 5–7 for one sample under settings `s`.
    pub(super) fn step(&mut self, s: &DecisionSettings, x: Sample) -> Step {
        let Sample {
            ts, residual, flag, ..
        } = x;
        self.run = if flag { self.run + 1 } else { 0 };
        if flag {
            if self.run == 1 || self.run_since == 0 {
                self.run_since = ts;
            }
            self.flagged_at = ts;
        }
        let improbable = x.improbable || (flag && ts - self.run_since >= PERSIST);
        let mut step = Step {
            onset: false,
            resolved: false,
            shift: None,
        };
        if self.firing {
            self.sum += residual;
            self.count += 1;
            if residual >= 0.0 {
                self.above += 1;
            } else {
                self.below += 1;
            }
            let one_sided = self.above == 0 || self.below == 0;
            if s.rebaseline_after > 0 && ts - self.fired_at >= s.rebaseline_after && one_sided {
                step.shift = Some(self.sum / f64::from(self.count.max(1)));
                self.fired_at = ts;
                (self.sum, self.count, self.above, self.below) = (0.0, 0, 0, 0);
            }
            if !flag && ts - self.flagged_at >= s.clear_after {
                self.firing = false;
                step.resolved = true;
                self.resolved_at = Some(ts);
                self.run = 0;
            }
        } else {
            let cooling = self.resolved_at.is_some_and(|r| ts - r < s.cooldown);
            let fires = flag
                && improbable
                && !cooling
                && !x.routine
                && (self.run >= s.sustained.max(1) || x.critical);
            if fires {
                self.firing = true;
                step.onset = true;
                self.fired_at = ts;
                self.sum = residual;
                self.count = 1;
                self.above = u32::from(residual >= 0.0);
                self.below = u32::from(residual < 0.0);
            }
        }
        step
    }
}
