//! Fitting: [`Trainer`] fits the configured model family on a history
//! (strided down to [`MAX_FIT_POINTS`], a level model below
//! [`LEVEL_BELOW_SECONDS`] of history, robust training's fit-drop-refit).

use std::cell::OnceCell;

use super::*;

/// A fit and what robust training dropped from it.
#[derive(Debug)]
pub struct Fitted {
    /// The model.
    pub model: Model,
    /// Points robust training left out of the final fit.
    pub dropped: usize,
    /// Every `stride`-th point was fitted (1: all; see [`MAX_FIT_POINTS`]).
    pub stride: usize,
}

/// Indices of an evenly strided subsample of `n` points of at most `max`
/// points, first and last included, and the stride (1: all points).
pub fn subsample(n: usize, max: usize) -> (Vec<usize>, usize) {
    if n <= max || max < 2 {
        return ((0..n).collect(), 1);
    }
    let stride = (n - 1).div_ceil(max - 1);
    let mut idx: Vec<usize> = (0..n).step_by(stride).collect();
    if idx.last() != Some(&(n - 1)) {
        idx.push(n - 1);
    }
    (idx, stride)
}

/// Fits models of the configured family. Make one and reuse it: the Prophet
/// optimizer is set up on first use and kept (compiling the `wasmstan` one
/// takes ~0.5 s).
pub struct Trainer {
    family: ModelFamily,
    settings: ProphetSettings,
    robust: bool,
    seed: u64,
    prophet: OnceCell<ProphetTrainer>,
}

impl std::fmt::Debug for Trainer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Trainer")
            .field("family", &self.family)
            .field("robust", &self.robust)
            .finish()
    }
}

impl Trainer {
    /// A trainer for `family` with model `settings`; `robust` turns on
    /// fit-drop-refit; `seed` seeds Prophet's bands.
    pub fn new(family: ModelFamily, settings: ProphetSettings, robust: bool, seed: u64) -> Self {
        Trainer {
            family,
            settings,
            robust,
            seed,
            prophet: OnceCell::new(),
        }
    }

    /// What [`Trainer::new`] needs to make a trainer like this one on
    /// another thread (each thread sets up its own optimizer).
    pub fn recipe(&self) -> (ModelFamily, ProphetSettings, bool, u64) {
        (self.family, self.settings.clone(), self.robust, self.seed)
    }

    /// The family this trainer fits.
    pub fn family(&self) -> ModelFamily {
        self.family
    }

    /// Sets up the Prophet optimizer now rather than on the first fit (for
    /// timing reports: compiling the `wasmstan` one takes ~0.5 s). Does
    /// nothing for MSTL.
    pub fn prepare(&self) -> Result<(), ForecastError> {
        if self.family == ModelFamily::Prophet {
            self.prophet_trainer()?;
        }
        Ok(())
    }

    fn prophet_trainer(&self) -> Result<&ProphetTrainer, ForecastError> {
        if let Some(t) = self.prophet.get() {
            return Ok(t);
        }
        let trainer = ProphetTrainer::with_optimizer(self.settings.optimizer)?;
        Ok(self.prophet.get_or_init(|| trainer))
    }

    fn fit_once(
        &self,
        timestamps: &[i64],
        values: &[f64],
        unit: Unit,
    ) -> Result<Model, ForecastError> {
        Ok(match self.family {
            ModelFamily::Prophet => Model::Prophet(Box::new(self.prophet_trainer()?.fit(
                timestamps,
                values,
                &self.settings,
                unit,
                self.seed,
            )?)),
            ModelFamily::Mstl => Model::Mstl(Box::new(mstl::fit(
                timestamps,
                values,
                &self.settings,
                unit,
            )?)),
        })
    }

    /// Fits the model the history supports: a [`LevelModel`] below
    /// [`LEVEL_BELOW_SECONDS`] of history, otherwise [`Trainer::fit`].
    pub fn fit_staged(
        &self,
        timestamps: &[i64],
        values: &[f64],
        unit: Unit,
    ) -> Result<Fitted, ForecastError> {
        self.fit_staged_at_most(timestamps, values, unit, MAX_FIT_POINTS)
    }

    /// [`Trainer::fit_staged`], the model family's fit on an evenly strided
    /// subsample of at most `max_points` points.
    pub fn fit_staged_at_most(
        &self,
        timestamps: &[i64],
        values: &[f64],
        unit: Unit,
        max_points: usize,
    ) -> Result<Fitted, ForecastError> {
        let span = match (timestamps.iter().min(), timestamps.iter().max()) {
            (Some(a), Some(b)) => b - a,
            _ => 0,
        };
        if span < LEVEL_BELOW_SECONDS {
            return Ok(Fitted {
                model: Model::Level(LevelModel::fit(
                    timestamps,
                    values,
                    self.settings.interval_width,
                    unit,
                )?),
                dropped: 0,
                stride: 1,
            });
        }
        self.fit_at_most(timestamps, values, unit, max_points)
    }

    /// Fits on `timestamps`/`values`; with robust training, fits once, drops
    /// the points scoring above [`ROBUST_CUTOFF`] against that fit's band (at
    /// most [`ROBUST_MAX_DROP`] of them, worst first) and fits again.
    pub fn fit(
        &self,
        timestamps: &[i64],
        values: &[f64],
        unit: Unit,
    ) -> Result<Fitted, ForecastError> {
        self.fit_at_most(timestamps, values, unit, MAX_FIT_POINTS)
    }

    /// [`Trainer::fit`] on an evenly strided subsample of at most
    /// `max_points` points.
    pub fn fit_at_most(
        &self,
        timestamps: &[i64],
        values: &[f64],
        unit: Unit,
        max_points: usize,
    ) -> Result<Fitted, ForecastError> {
        let (idx, stride) = subsample(timestamps.len(), max_points.max(MIN_FIT_POINTS));
        if stride > 1 {
            let ts: Vec<i64> = idx.iter().map(|&i| timestamps[i]).collect();
            let ys: Vec<f64> = idx.iter().map(|&i| values[i]).collect();
            let mut fitted = self.fit_all(&ts, &ys, unit)?;
            fitted.stride = stride;
            return Ok(fitted);
        }
        self.fit_all(timestamps, values, unit)
    }

    fn fit_all(
        &self,
        timestamps: &[i64],
        values: &[f64],
        unit: Unit,
    ) -> Result<Fitted, ForecastError> {
        let first = self.fit_once(timestamps, values, unit)?;
        if !self.robust {
            return Ok(Fitted {
                model: first,
                dropped: 0,
                stride: 1,
            });
        }
        let f = first.predict(timestamps)?;
        let drop = outliers(values, &f, ROBUST_CUTOFF, ROBUST_MAX_DROP);
        if drop.is_empty() || timestamps.len() - drop.len() < MIN_FIT_POINTS {
            return Ok(Fitted {
                model: first,
                dropped: 0,
                stride: 1,
            });
        }
        let mut keep = vec![true; timestamps.len()];
        for &i in &drop {
            keep[i] = false;
        }
        let (ts, ys): (Vec<i64>, Vec<f64>) = timestamps
            .iter()
            .zip(values)
            .zip(&keep)
            .filter(|(_, &k)| k)
            .map(|((&t, &v), _)| (t, v))
            .unzip();
        // The refit can fail where the first fit did not (e.g. Prophet on a
        // history that is constant once its spikes are gone): keep the first.
        match self.fit_once(&ts, &ys, unit) {
            Ok(model) => Ok(Fitted {
                model,
                dropped: drop.len(),
                stride: 1,
            }),
            Err(e) => {
                tracing::warn!(
                    "robust refit without {} outliers failed, keeping the plain fit: {}",
                    drop.len(),
                    first_line(&e.to_string())
                );
                Ok(Fitted {
                    model: first,
                    dropped: 0,
                    stride: 1,
                })
            }
        }
    }
}

/// Indices of points whose band score (distance from yhat over the band's
/// half-width on that side) exceeds `cutoff`, worst first, at most
/// `max_share` of all points.
pub fn outliers(values: &[f64], f: &Forecast, cutoff: f64, max_share: f64) -> Vec<usize> {
    let mut scored: Vec<(usize, f64)> = values
        .iter()
        .enumerate()
        .filter_map(|(i, &v)| {
            let half = if v >= f.yhat[i] {
                f.upper[i] - f.yhat[i]
            } else {
                f.yhat[i] - f.lower[i]
            };
            let z = if half > 0.0 {
                (v - f.yhat[i]).abs() / half
            } else if v == f.yhat[i] {
                0.0
            } else {
                f64::INFINITY
            };
            (z > cutoff).then_some((i, z))
        })
        .collect();
    scored.sort_by(|a, b| b.1.total_cmp(&a.1));
    scored.truncate((values.len() as f64 * max_share).floor() as usize);
    let mut idx: Vec<usize> = scored.into_iter().map(|(i, _)| i).collect();
    idx.sort_unstable();
    idx
}
