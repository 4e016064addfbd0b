//! Walking a history forward as the monitor would: [`walk_forward`] fits on
//! the rows before each refit boundary and forecasts up to the next (never
//! a point at or after the one forecast), and [`decide_all`] runs the decision
//! path over that forecast with one [`Decider`] per series, told when a new
//! model takes over. `--mode evaluate`, `--mode score` and the
//! cross-validation all judge a history through these two.

use crate::{
    dataset::{Series, Unit},
    detect::{Decider, DecisionSettings, Verdict},
    forecast::{Forecast, ForecastError, Model, Trainer},
};

/// Runs the decision path over a forecast: one [`Decider`] for the whole
/// series, told when a new model takes over (at `refits`, indices into the
/// points).
pub fn decide_all(
    forecast: &Forecast,
    values: &[f64],
    refits: &[usize],
    settings: &DecisionSettings,
    interval_width: f64,
    unit: Unit,
) -> Vec<Verdict> {
    let d = Decider::new(in_unit(settings, unit));
    decide_with(d, forecast, values, refits, interval_width)
}

/// `settings` for a series in `unit`: `min_effect` is in percentage
/// points, fractions of a CPU scale it.
pub fn in_unit(settings: &DecisionSettings, unit: Unit) -> DecisionSettings {
    DecisionSettings {
        min_effect: settings.min_effect * unit.full_scale() / 100.0,
        ..*settings
    }
}

/// [`decide_all`] from a given decision state `d` (settings already
/// [`in_unit`]).
pub fn decide_with(
    mut d: Decider,
    forecast: &Forecast,
    values: &[f64],
    refits: &[usize],
    interval_width: f64,
) -> Vec<Verdict> {
    let mut next = refits.iter().copied().peekable();
    values
        .iter()
        .enumerate()
        .map(|(i, &v)| {
            while next.peek().is_some_and(|&r| r <= i) {
                if next.next().is_some_and(|r| r == i && i > 0) {
                    d.refitted();
                }
            }
            d.update(
                forecast.timestamps[i],
                v,
                forecast.yhat[i],
                forecast.lower[i],
                forecast.upper[i],
                interval_width,
            )
        })
        .collect()
}

/// The forecasts of a walk-forward run.
#[derive(Debug, Clone, Default)]
pub struct WalkForward {
    /// In-sample fit of the first model over the learning period `ts[..first]`.
    pub learn: Forecast,
    /// Out-of-sample forecast for `ts[first..]`.
    pub scored: Forecast,
    /// Training points robust training dropped, summed over refits.
    pub dropped: usize,
    /// Indices into the scored points where each model starts.
    pub refits: Vec<usize>,
    /// Fits on under [`crate::forecast::LEVEL_BELOW_SECONDS`] of history, which are level
    /// models (as the monitor fits them): Prophet cannot fit a daily cycle
    /// from less.
    pub level_fits: usize,
}

/// A walk-forward fit sees at most this many points of the rows before its
/// segment (evenly strided). Hundreds of refits of a long history would
/// otherwise each fit up to [`crate::forecast::MAX_FIT_POINTS`]; Prophet's
/// parameters barely move past a few ten thousand points, and every series
/// of the NAB benchmark (at most 22,695 rows) is fitted whole.
pub const WALK_FORWARD_FIT_POINTS: usize = 25_000;

/// Fits on everything before each refit boundary (at most
/// [`WALK_FORWARD_FIT_POINTS`] of it) and forecasts up to the next one: the
/// forecast for `ts[first..]`, never using a point at or after the one
/// being forecast. A fit on under [`crate::forecast::LEVEL_BELOW_SECONDS`] of history is a
/// level model, as the monitor's first fits of a new host are.
pub fn walk_forward(
    trainer: &Trainer,
    series: &Series,
    first: usize,
    retrain_every: Option<i64>,
) -> Result<WalkForward, ForecastError> {
    let ts = &series.timestamps;
    let n = ts.len();
    // The segments [start, end) each fitted model forecasts.
    let mut segments = Vec::new();
    let mut i = first;
    while i < n {
        let end = match retrain_every {
            Some(d) if d > 0 => {
                let limit = ts[i] + d;
                i + ts[i..].iter().take_while(|&&t| t < limit).count().max(1)
            }
            _ => n,
        };
        segments.push((i, end));
        i = end;
    }
    // Each segment's fit sees only the points before it, so the fits are
    // independent: they run on every core (a model stays on the thread
    // that fitted it), and the result does not depend on the order.
    // (forecast, in-sample forecast of the first, points dropped, a level model)
    type Part = Result<(Forecast, Option<Forecast>, usize, bool), ForecastError>;
    let fit_one = |trainer: &Trainer, k: usize| -> Part {
        let (start, end) = segments[k];
        let fitted = trainer.fit_staged_at_most(
            &ts[..start],
            &series.values[..start],
            series.unit,
            WALK_FORWARD_FIT_POINTS,
        )?;
        let learn = (k == 0)
            .then(|| fitted.model.predict(&ts[..start]))
            .transpose()?;
        Ok((
            fitted.model.predict(&ts[start..end])?,
            learn,
            fitted.dropped,
            matches!(fitted.model, Model::Level(_)),
        ))
    };
    let workers = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(segments.len())
        .max(1);
    let mut parts: Vec<Option<Part>> = (0..segments.len()).map(|_| None).collect();
    if workers == 1 {
        for (k, p) in parts.iter_mut().enumerate() {
            *p = Some(fit_one(trainer, k));
        }
    } else {
        let next = std::sync::atomic::AtomicUsize::new(0);
        let recipe = trainer.recipe();
        let done: Vec<Vec<(usize, Part)>> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..workers)
                .map(|_| {
                    scope.spawn(|| {
                        let (family, settings, robust, seed) = recipe.clone();
                        let trainer = Trainer::new(family, settings, robust, seed);
                        let mut mine = Vec::new();
                        loop {
                            let k = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            if k >= segments.len() {
                                return mine;
                            }
                            mine.push((k, fit_one(&trainer, k)));
                        }
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_default())
                .collect()
        });
        for (k, p) in done.into_iter().flatten() {
            parts[k] = Some(p);
        }
    }
    let mut out = Forecast::default();
    let mut learn = None;
    let (mut dropped, mut level_fits) = (0, 0);
    for p in parts {
        let (f, l, d, level) =
            p.ok_or_else(|| ForecastError::Model("a fitting thread failed".into()))??;
        if learn.is_none() {
            learn = l;
        }
        dropped += d;
        level_fits += usize::from(level);
        out.timestamps.extend(f.timestamps);
        out.yhat.extend(f.yhat);
        out.lower.extend(f.lower);
        out.upper.extend(f.upper);
    }
    Ok(WalkForward {
        learn: learn.unwrap_or_default(),
        scored: out,
        dropped,
        refits: segments.iter().map(|(s, _)| s - first).collect(),
        level_fits,
    })
}
