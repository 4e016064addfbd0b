//! The decision path: from a sample and its forecast band to a verdict and
//! alert events. One implementation, used by `--mode evaluate` and by the
//! monitor (per series, 560 bytes of state with its settings).
//!
//! Durations are in seconds of the samples' own timestamps, so one
//! configuration means the same at 30-second polls and on 5-minute history.
//!
//! Stages, in order:
//! 1. **Re-baseline**: the band is moved by the level shift accepted so far
//!    (see 7), so a host that settled at a new level is judged against it
//!    instead of against a trend that keeps extrapolating the jump.
//! 2. **Calibration** (optional): the band is widened (or narrowed) by how
//!    the model's own recent out-of-sample residuals compare with it: a
//!    running mean of `|residual| / half-width` against what a calibrated
//!    band gives (`E|Z|/z`), clamped to [`CAL_MIN`, `CAL_MAX`].
//! 3. **Flag**: outside the band scaled by the multiplier (the original
//!    rule), by at least `min_effect` (a move from 2 % to 4 % CPU is rarely an
//!    incident), on a side `direction` allows. With `min_effect_relative`
//!    the minimum is at most that fraction of the forecast (an idle host
//!    can alert) but at least `min_effect_peak_factor` times its recent largest
//!    deviation (its normal spikes do not), once a day of the series has
//!    been seen ([`RELATIVE_WARMUP`]).
//! 4. **Likelihood** (optional): how improbable the recent average score is
//!    under the series' long-run score distribution (Numenta's anomaly
//!    likelihood). A host that is often outside its band needs a larger
//!    excursion to page, unless the deviation is more than [`NOVEL_FACTOR`]
//!    times the host's largest of the past week: a bursty host's usual
//!    bursts need an improbable run of scores, a deviation bigger than any
//!    it has had pages at once, and so does an excursion flagged for
//!    [`PERSIST`] in a row (an hour outside the band is an incident, however
//!    high an earlier incident has set the host's long-run scores).
//! 5. **Fire**: after `sustained` flags in a row, or at once for a CRITICAL
//!    sample, if improbable enough; not within `cooldown` of the last
//!    resolution. A deviation of at least `min_effect` inside the scaled
//!    band counts as a flag when the recent scores are far more improbable
//!    still (`likelihood_alone`): a long moderate deviation. Not on a
//!    deviation within `routine_factor` times what the series reached at
//!    the same time of day on each of the last two days: the host's daily
//!    job does not page every day.
//! 6. **Resolve**: once no sample has been flagged for `clear_after`
//!    (hysteresis): one incident is one alert.
//! 7. **Accept a new level**: an alert still firing after `rebaseline_after`,
//!    all on one side, is a level shift: the mean residual of the alert is
//!    taken as the new baseline (until the next refit, which sees the new
//!    level) and the alert resolves once samples sit inside the moved band.
//!    A series back inside the model's own band, on the far side of the
//!    moved one, has recovered: the shift is dropped and the return does
//!    not page.

use serde::{Deserialize, Serialize};

use super::{Detection, Detector, Direction, Severity};

mod alert;
mod likelihood;
mod routine;
mod settings;

use alert::{AlertState, Sample};
use likelihood::{weight, ScoreStats};
pub use likelihood::{LONG_TAU, SHORT_TAU};
use routine::DailyRecord;
pub use settings::{DecisionSettings, Side};

/// Smallest calibration factor (a band narrowed at most to half).
pub const CAL_MIN: f64 = 0.5;
/// Largest calibration factor.
pub const CAL_MAX: f64 = 5.0;
/// Time constant of the calibration's running mean, seconds (~17 hours).
pub const CAL_TAU: f64 = 60_000.0;
/// Samples before the calibration and the likelihood are used.
pub const WARMUP: u32 = 30;
/// A residual counts at most this many half-widths in the calibration, so
/// an anomaly widens the band only a little.
pub const CAL_CLIP: f64 = 3.0;
/// Scores above this count as this much in the likelihood statistics.
pub const SCORE_CLIP: f64 = 10.0;
/// A deviation more than this many times the host's largest of the past
/// week (decayed, the current excursion excluded) passes the likelihood
/// stage once the likelihood's warm-up is over: it is new for the host
/// however often the host leaves its band.
/// Chosen a priori, not in the cross-validation grid.
pub const NOVEL_FACTOR: f64 = 2.0;
/// Seconds of flags in a row after which an excursion passes the
/// likelihood stage: an hour outside the band is an incident however often
/// the host has left it before (a burst or a daily job is minutes long; an
/// earlier incident's scores must not hide a second one).
/// Chosen a priori, not in the cross-validation grid.
pub const PERSIST: i64 = 3_600;
/// Seconds of a series' own samples before a minimum effect below
/// `min_effect` (the relative floor) applies: a day, so the peak bound
/// has seen the host's normal daily spikes (a restarted monitor does not
/// page once for every idle host's first spike).
pub const RELATIVE_WARMUP: i64 = 86_400;

/// What the decision path says about one sample.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Verdict {
    /// The sample against the (moved, calibrated, scaled) band.
    pub detection: Detection,
    /// The forecast the sample was judged against (with the accepted level
    /// shift).
    pub yhat: f64,
    /// An alert is firing (the state).
    pub alert: bool,
    /// An alert fired with this sample.
    pub onset: bool,
    /// The alert resolved with this sample.
    pub resolved: bool,
    /// A new level was accepted with this sample.
    pub rebaselined: bool,
}

/// The per-series decision state. It serialises (with its settings), so
/// the monitor keeps it across a restart.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decider {
    s: DecisionSettings,
    detector: Detector,
    /// Stages 5–7 (see [`alert`]).
    #[serde(flatten)]
    alert: AlertState,
    /// Accepted level shift.
    offset: f64,
    /// Running mean of |residual| / half-width.
    ratio: f64,
    /// The likelihood's score statistics.
    scores: ScoreStats,
    /// Samples seen and the last one's time.
    seen: u32,
    last_ts: Option<i64>,
    /// Largest |residual| so far, decaying with [`LONG_TAU`], and the
    /// largest of the current excursion (flags in a row or a firing alert),
    /// which joins `peak` once the excursion is over: an incident does not
    /// raise the bar against itself.
    peak: f64,
    pending: f64,
    /// Per hour of the day, the largest excursion that began in it on the
    /// last three days; and the hour the current excursion began.
    daily: DailyRecord,
    pending_hour: u8,
    /// The first sample's time (for [`RELATIVE_WARMUP`]).
    first_ts: Option<i64>,
}

/// Mean |Z| / z for a normal band of mass `w`: the ratio a calibrated band
/// shows.
fn calibrated_ratio(w: f64) -> f64 {
    let z = distrs::Normal::ppf(0.5 + w / 2.0, 0.0, 1.0);
    (2.0 / std::f64::consts::PI).sqrt() / z
}

impl Decider {
    /// A fresh state.
    pub fn new(s: DecisionSettings) -> Decider {
        Decider {
            detector: Detector::new(s.multiplier),
            s,
            alert: AlertState::new(),
            offset: 0.0,
            ratio: 0.0,
            scores: ScoreStats::default(),
            seen: 0,
            last_ts: None,
            peak: 0.0,
            pending: 0.0,
            daily: DailyRecord::new(),
            pending_hour: 0,
            first_ts: None,
        }
    }

    /// The band's calibration factor now (1 when off or warming up).
    pub fn calibration(&self, interval_width: f64) -> f64 {
        if !self.s.calibrate || self.seen < WARMUP {
            return 1.0;
        }
        (self.ratio / calibrated_ratio(interval_width)).clamp(CAL_MIN, CAL_MAX)
    }

    /// Tail probability of the recent average score under the long-run
    /// score distribution (1 while there is too little to say).
    pub fn tail(&self) -> f64 {
        if self.seen < WARMUP {
            return 1.0;
        }
        self.scores.tail()
    }

    /// Ends a warm-up on a series' history (its samples judged against the
    /// model's in-sample forecast): what was learnt about the series stays
    /// (score statistics, calibration, largest deviation, first sample
    /// time), the alert state and any accepted level are forgotten, so
    /// history never pages. Used by `examples/cross_validate/` (`WARM=1`);
    /// neither evaluate nor the monitor warms up yet.
    pub fn end_warm_up(&mut self) {
        self.alert.clear();
        self.offset = 0.0;
        self.end_excursion();
    }

    /// The current excursion (or quiet sample) is over: its largest
    /// deviation joins the week's peak and its hour's.
    fn end_excursion(&mut self) {
        self.peak = self.peak.max(self.pending);
        self.daily.record(self.pending_hour, self.pending);
        self.pending = 0.0;
    }

    /// The settings this state decides with.
    pub fn settings(&self) -> &DecisionSettings {
        &self.s
    }

    /// A state kept from an earlier run (deserialised), if it was kept
    /// with the settings `s`: a state learnt under other settings (another
    /// multiplier, say) starts afresh instead.
    pub fn resume(mut self, s: &DecisionSettings) -> Option<Decider> {
        (self.s == *s).then(|| {
            self.detector = Detector::new(s.multiplier);
            self
        })
    }

    /// The time of the last sample judged (Unix seconds), if any.
    pub fn last_seen(&self) -> Option<i64> {
        self.last_ts
    }

    /// The accepted level shift.
    pub fn offset(&self) -> f64 {
        self.offset
    }

    /// A new model replaced the old one: it saw the new level, so the
    /// accepted shift is dropped (the calibration and alert state stay).
    pub fn refitted(&mut self) {
        self.offset = 0.0;
    }

    fn learn(&mut self, residual: f64, half: f64, score: f64, dt: f64) {
        self.seen = self.seen.saturating_add(1);
        if half > 0.0 && half.is_finite() {
            let r = (residual.abs() / half).min(CAL_CLIP);
            self.ratio += weight(dt, CAL_TAU, self.seen) * (r - self.ratio);
        }
        self.scores.learn(score.min(SCORE_CLIP), dt, self.seen);
    }

    /// Judges `actual` at `ts` (Unix seconds) against the band (`yhat`,
    /// `lower`, `upper`) of a model with probability mass `interval_width`
    /// inside its band.
    pub fn update(
        &mut self,
        ts: i64,
        actual: f64,
        yhat: f64,
        lower: f64,
        upper: f64,
        interval_width: f64,
    ) -> Verdict {
        let dt = self.last_ts.map_or(0.0, |t| (ts - t) as f64);
        self.last_ts = Some(ts);
        let first_ts = *self.first_ts.get_or_insert(ts);
        // The calibration factor from past residuals (this one is learnt
        // after), used in 1 and 2.
        let k = self.calibration(interval_width);
        // 1. The accepted level, unless the series is back inside the
        // model's own band on the far side of the moved one: the shift
        // ended, the host recovered (not a new incident).
        if self.offset != 0.0 {
            let inside = |off: f64| {
                let y = yhat + off;
                let (lo, up) = (y - k * (yhat - lower), y + k * (upper - yhat));
                !self.detector.check(actual, y, lo, up).is_anomaly
            };
            let back = (actual - yhat - self.offset) * self.offset < 0.0;
            if back && inside(0.0) && !inside(self.offset) {
                self.offset = 0.0;
            }
        }
        let (yhat, lower, upper) = (yhat + self.offset, lower + self.offset, upper + self.offset);
        // 2. Calibration.
        let (lo, up) = (yhat - k * (yhat - lower), yhat + k * (upper - yhat));
        let residual = actual - yhat;
        let half = if residual >= 0.0 {
            upper - yhat
        } else {
            yhat - lower
        };
        // 3. Flag.
        let mut d = self.detector.check(actual, yhat, lo, up);
        // 4. The likelihood statistics, on the score at the band's own width.
        self.learn(residual, half, d.score * self.s.multiplier, dt);
        self.peak *= (-dt.max(0.0) / LONG_TAU).exp();
        self.daily.roll(ts);
        if self.pending == 0.0 {
            self.pending_hour = DailyRecord::hour_of(ts);
        }
        let routine = self.s.routine_factor > 0.0
            && residual.abs() <= self.s.routine_factor * self.daily.usual_at(self.pending_hour);
        let min_effect = if ts - first_ts >= RELATIVE_WARMUP {
            self.s.effect_floor(yhat, self.peak)
        } else {
            self.s.min_effect
        };
        self.pending = self.pending.max(residual.abs());
        if d.is_anomaly && (residual.abs() < min_effect || !self.s.direction.allows(d.direction)) {
            d.is_anomaly = false;
            d.severity = Severity::Normal;
            d.confidence = 0.0;
        }
        let improbable = self.s.likelihood <= 0.0
            || self.tail() < self.s.likelihood
            || (self.seen >= WARMUP && residual.abs() > NOVEL_FACTOR * self.peak);
        let side = if residual >= 0.0 {
            Direction::Above
        } else {
            Direction::Below
        };
        let strong = self.s.likelihood_alone > 0.0
            && self.tail() < self.s.likelihood_alone
            && residual.abs() >= min_effect
            && self.s.direction.allows(side);
        let flag = d.is_anomaly || strong;
        // 5.–7. The alert state.
        let step = self.alert.step(
            &self.s,
            Sample {
                ts,
                residual,
                flag,
                improbable,
                routine,
                critical: d.severity == Severity::Critical,
            },
        );
        if let Some(shift) = step.shift {
            self.offset += shift;
        }
        if self.alert.quiet() {
            self.end_excursion();
        }
        Verdict {
            detection: d,
            yhat,
            alert: self.alert.firing(),
            onset: step.onset,
            resolved: step.resolved,
            rebaselined: step.shift.is_some(),
        }
    }
}

#[cfg(test)]
mod tests;
