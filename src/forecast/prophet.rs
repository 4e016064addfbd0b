//! Prophet (trend + daily/weekly/yearly seasonality) through augurs-prophet,
//! fitted by the native optimizer ([`super::optimizer`]; Stan-in-WASM with the
//! `wasmstan` feature), with seeded bands and a JSON model file that reloads
//! to the identical forecast.
//!
//! augurs does not expose a fitted model's parameters, so fitting goes through
//! a capturing optimizer that reads them off what the optimizer returned
//! ([`params::ProphetParams`]); the augurs model, which holds several copies
//! of the history, is dropped right after the fit. A fitted model is those
//! parameters (a few hundred bytes): it forecasts, draws its band and is
//! saved without its history.

use std::{cell::RefCell, path::Path, rc::Rc};

use augurs_prophet::{
    optimizer::{InitialParams, OptimizeOpts, OptimizedParams},
    IntervalWidth, PositiveFloat, Prophet, ProphetOptions, SeasonalityOption, TrainingData,
};
use serde::{Deserialize, Serialize};

use super::settings::{ProphetSettings, Seasonality};
use super::{
    band::{BandModel, BandOffsets},
    optimizer::{NativeOptimizer, OptimizerKind},
    Components, Forecast, ForecastError,
};
use crate::dataset::Unit;

/// Identifies a model file.
pub const MODEL_FORMAT: &str = "cpu-anomaly/prophet";
/// Current model file version (2: parameters only; 1 also held the history).
pub const MODEL_VERSION: u32 = 2;

/// How far past its history a model forecasts, in lengths of that history
/// (an evaluate that learns on the first 15 % and never refits needs 5.7).
pub const MAX_HORIZON_SPANS: f64 = 20.0;
pub use super::MIN_FIT_POINTS;

/// Fits Prophet models with the optimizer the settings name. The WASM
/// optimizer is costly to create (~0.45 s, compiling the module): make one
/// trainer and reuse it for every fit. The native one costs nothing.
#[derive(Clone)]
pub struct ProphetTrainer {
    optimizer: Optimizer,
}

#[derive(Clone)]
enum Optimizer {
    Native,
    #[cfg(feature = "wasmstan")]
    Wasmstan(augurs_prophet::wasmstan::WasmstanOptimizer),
}

impl std::fmt::Debug for ProphetTrainer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ProphetTrainer({})", self.kind())
    }
}

impl Default for ProphetTrainer {
    fn default() -> Self {
        Self::new()
    }
}

impl ProphetTrainer {
    /// A trainer with the native optimizer.
    pub fn new() -> Self {
        ProphetTrainer {
            optimizer: Optimizer::Native,
        }
    }

    /// A trainer with optimizer `kind`; an error if this binary was built
    /// without it.
    pub fn with_optimizer(kind: OptimizerKind) -> Result<Self, ForecastError> {
        let optimizer =
            match kind {
                OptimizerKind::Native => Optimizer::Native,
                #[cfg(feature = "wasmstan")]
                OptimizerKind::Wasmstan => {
                    Optimizer::Wasmstan(augurs_prophet::wasmstan::WasmstanOptimizer::new())
                }
                #[cfg(not(feature = "wasmstan"))]
                OptimizerKind::Wasmstan => return Err(ForecastError::Prophet(
                    augurs_prophet::Error::OptimizationFailed(
                        "the wasmstan optimizer needs a binary built with `--features wasmstan`"
                            .into(),
                    ),
                )),
            };
        Ok(ProphetTrainer { optimizer })
    }

    /// The optimizer this trainer fits with.
    pub fn kind(&self) -> OptimizerKind {
        match self.optimizer {
            Optimizer::Native => OptimizerKind::Native,
            #[cfg(feature = "wasmstan")]
            Optimizer::Wasmstan(_) => OptimizerKind::Wasmstan,
        }
    }

    /// Fits a model on `timestamps`/`values` (Unix seconds, any unit).
    pub fn fit(
        &self,
        timestamps: &[i64],
        values: &[f64],
        settings: &ProphetSettings,
        unit: Unit,
        seed: u64,
    ) -> Result<ProphetModel, ForecastError> {
        match &self.optimizer {
            Optimizer::Native => {
                fit_with(NativeOptimizer, timestamps, values, settings, unit, seed)
            }
            #[cfg(feature = "wasmstan")]
            Optimizer::Wasmstan(o) => fit_with(
                wasm::Trimmed(o.clone()),
                timestamps,
                values,
                settings,
                unit,
                seed,
            ),
        }
    }
}

pub mod params;
mod v1;
/// Readable errors from the WASM optimizer.
#[cfg(feature = "wasmstan")]
mod wasm;

pub use params::ProphetParams;

fn fit_with<O: augurs_prophet::Optimizer>(
    optimizer: O,
    timestamps: &[i64],
    values: &[f64],
    settings: &ProphetSettings,
    unit: Unit,
    seed: u64,
) -> Result<ProphetModel, ForecastError> {
    if timestamps.len() < MIN_FIT_POINTS {
        return Err(ForecastError::TooShort {
            min: MIN_FIT_POINTS,
            got: timestamps.len(),
        });
    }
    let params = fit_params(optimizer, timestamps, values, settings)?;
    Ok(ProphetModel::from_stored(StoredModel {
        format: MODEL_FORMAT.into(),
        version: MODEL_VERSION,
        settings: settings.clone(),
        unit,
        seed,
        points: timestamps.len(),
        params,
        floor: super::floor_of(values),
        ceiling: super::ceiling_of(values, unit),
    }))
}

/// Fits augurs' Prophet with `optimizer` and reads the parameters off the
/// fit; the `Prophet` value (and its copies of the history) is dropped here.
fn fit_params<O: augurs_prophet::Optimizer>(
    optimizer: O,
    timestamps: &[i64],
    values: &[f64],
    settings: &ProphetSettings,
) -> Result<ProphetParams, ForecastError> {
    let (ds, y) = sorted(timestamps, values);
    let y_scale = y.iter().fold(0.0f64, |a, v| a.max(v.abs()));
    let captured = Rc::new(RefCell::new(None));
    let optimizer = Capturing {
        inner: optimizer,
        ds: Rc::new(ds.clone()),
        y_scale,
        captured: captured.clone(),
    };
    let span = match (ds.first(), ds.last()) {
        (Some(a), Some(b)) => b - a,
        _ => 0,
    };
    let options = prophet_options(settings, span)?;
    let mut prophet = Prophet::new(options, optimizer);
    prophet.fit(TrainingData::new(ds, y)?, OptimizeOpts::default())?;
    drop(prophet);
    let taken = captured.borrow_mut().take();
    taken.unwrap_or_else(|| {
        Err(ForecastError::Prophet(
            augurs_prophet::Error::OptimizationFailed("optimizer returned no parameters".into()),
        ))
    })
}

/// `timestamps`/`values` in time order (copies; sorted only if needed).
fn sorted(timestamps: &[i64], values: &[f64]) -> (Vec<i64>, Vec<f64>) {
    if timestamps.windows(2).all(|w| w[0] <= w[1]) {
        return (timestamps.to_vec(), values.to_vec());
    }
    let mut pairs: Vec<(i64, f64)> = timestamps
        .iter()
        .copied()
        .zip(values.iter().copied())
        .collect();
    pairs.sort_by_key(|p| p.0);
    pairs.into_iter().unzip()
}

/// How many seconds of history turn an `auto` weekly cycle on: one week.
/// Prophet waits for two, but the monitor fetches one week
/// (`prometheus_history`), and without a weekly cycle a host's weekend drop
/// is learnt as a level shift that its flat future then carries into
/// Monday.
pub const WEEKLY_FROM: i64 = 7 * 86_400;

fn seasonality(s: Seasonality) -> SeasonalityOption {
    match s {
        Seasonality::Auto => SeasonalityOption::Auto,
        Seasonality::On => SeasonalityOption::Manual(true),
        Seasonality::Off => SeasonalityOption::Manual(false),
    }
}

/// augurs' options for `s` on a history spanning `span` seconds.
fn prophet_options(s: &ProphetSettings, span: i64) -> Result<ProphetOptions, ForecastError> {
    let pf = |v: f64| {
        PositiveFloat::try_new(v).map_err(|e| {
            ForecastError::Prophet(augurs_prophet::Error::OptimizationFailed(e.to_string()))
        })
    };
    Ok(ProphetOptions {
        daily_seasonality: seasonality(s.daily_seasonality),
        weekly_seasonality: match s.weekly_seasonality {
            Seasonality::Auto if span >= WEEKLY_FROM => SeasonalityOption::Manual(true),
            other => seasonality(other),
        },
        yearly_seasonality: seasonality(s.yearly_seasonality),
        changepoint_prior_scale: pf(s.changepoint_prior_scale)?,
        seasonality_prior_scale: pf(s.seasonality_prior_scale)?,
        interval_width: IntervalWidth::try_new(s.interval_width)?,
        // Bands are drawn by `band::sample_band` with a seeded RNG instead.
        uncertainty_samples: 0,
        ..ProphetOptions::default()
    })
}

type Captured = Result<ProphetParams, ForecastError>;

/// Wraps the real optimizer and reads the fitted parameters off its answer
/// (the feature columns are identified while the optimizer's data is at
/// hand, so nothing of the size of the history is copied).
#[derive(Debug)]
struct Capturing<O> {
    inner: O,
    ds: Rc<Vec<i64>>,
    y_scale: f64,
    captured: Rc<RefCell<Option<Captured>>>,
}

impl<O: augurs_prophet::Optimizer> augurs_prophet::Optimizer for Capturing<O> {
    fn optimize(
        &self,
        init: &InitialParams,
        data: &augurs_prophet::optimizer::Data,
        opts: &OptimizeOpts,
    ) -> Result<OptimizedParams, augurs_prophet::optimizer::Error> {
        let params = self.inner.optimize(init, data, opts)?;
        *self.captured.borrow_mut() = Some(
            ProphetParams::from_fit(&self.ds, self.y_scale, data, &params)
                .map_err(|e| ForecastError::Model(e.to_string())),
        );
        Ok(params)
    }
}

/// The model file (JSON, version 2): settings and fitted parameters, not the
/// history. See README "Model file".
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoredModel {
    /// Always [`MODEL_FORMAT`].
    pub format: String,
    /// [`MODEL_VERSION`] at save time.
    pub version: u32,
    /// Options the model was fitted with.
    pub settings: ProphetSettings,
    /// Unit of the training values and of every forecast.
    pub unit: Unit,
    /// Seed of the band sampler.
    pub seed: u64,
    /// Training points.
    pub points: usize,
    /// Fitted parameters.
    pub params: ProphetParams,
    /// The forecast is never below this: 0 when no training value was
    /// negative (CPU usage cannot be), so that a fit ending on a drop to
    /// idle does not forecast negative CPU and flag the host's return.
    /// Absent (no floor) in files written before it and where the history
    /// went below 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub floor: Option<f64>,
    /// The forecast is never above this: the unit's full scale (100 %, or 1
    /// in fractions) when no training value was above it, so that a daily
    /// cycle fitted on a host that saturated does not forecast 138 % and
    /// flag its 99 % as a drop. Absent in files written before it and where
    /// the history went above full scale.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ceiling: Option<f64>,
}

/// A fitted Prophet model, ready to forecast: its parameters only.
#[derive(Debug, Clone)]
pub struct ProphetModel {
    stored: StoredModel,
    band: BandModel,
}

impl ProphetModel {
    fn from_stored(stored: StoredModel) -> Self {
        let p = &stored.params;
        let band = BandModel {
            sigma_obs: p.sigma_obs,
            n_changepoints: p.t_change.len(),
            mean_abs_delta: p.mean_abs_delta(),
            y_scale: p.y_scale,
            interval_width: stored.settings.interval_width,
            samples: stored.settings.uncertainty_samples,
        };
        ProphetModel { stored, band }
    }

    /// The stored form (settings, parameters).
    pub fn stored(&self) -> &StoredModel {
        &self.stored
    }

    /// The fitted parameters.
    pub fn params(&self) -> &ProphetParams {
        &self.stored.params
    }

    /// Unit of the training data and forecasts.
    pub fn unit(&self) -> Unit {
        self.stored.unit
    }

    /// Last training timestamp.
    pub fn history_end(&self) -> i64 {
        self.stored.params.history_end()
    }

    /// Training points.
    pub fn points(&self) -> usize {
        self.stored.points
    }

    /// Forecast with band for `timestamps` (any order, inside or beyond the
    /// history). A timestamp more than [`MAX_HORIZON_SPANS`] training spans
    /// past the history is an error ([`ForecastError::HorizonTooFar`]): the
    /// band's cost grows with the distance, and such a forecast means little.
    pub fn predict(&self, timestamps: &[i64]) -> Result<Forecast, ForecastError> {
        let p = &self.stored.params;
        let (t_max, ts_max) = timestamps.iter().map(|&ts| (p.scaled_time(ts), ts)).fold(
            (f64::NEG_INFINITY, i64::MIN),
            |a, b| if b.0 > a.0 { b } else { a },
        );
        if t_max - 1.0 > MAX_HORIZON_SPANS {
            return Err(ForecastError::HorizonTooFar {
                asked: ts_max,
                history_start: p.history_start(),
                history_end: p.history_end(),
                spans: MAX_HORIZON_SPANS,
            });
        }
        // Without trend uncertainty the band's offsets are the history's
        // (the noise) at every distance.
        let t_band = if self.stored.settings.trend_uncertainty {
            t_max
        } else {
            t_max.min(1.0)
        };
        let offsets = BandOffsets::new(&self.band, t_band, self.stored.seed);
        let mut out = Forecast {
            timestamps: timestamps.to_vec(),
            yhat: Vec::with_capacity(timestamps.len()),
            lower: Vec::with_capacity(timestamps.len()),
            upper: Vec::with_capacity(timestamps.len()),
        };
        let flat = self.stored.settings.future_trend == super::settings::FutureTrend::Flat;
        for &ts in timestamps {
            let y = if flat { p.yhat_held(ts) } else { p.yhat(ts) };
            let (lo, up) = offsets.at(p.scaled_time(ts));
            let y = y + super::shift_into(self.stored.floor, self.stored.ceiling, y);
            out.yhat.push(y);
            out.lower.push(y + lo);
            out.upper.push(y + up);
        }
        Ok(out)
    }

    /// Trend and seasonal components at `timestamps`.
    pub fn components(&self, timestamps: &[i64]) -> Result<Components, ForecastError> {
        let p = &self.stored.params;
        let seasonal = p
            .seasonalities
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let vals = timestamps
                    .iter()
                    .map(|&ts| p.seasonal(ts).nth(i).map_or(0.0, |(_, v)| v))
                    .collect();
                (s.name.clone(), vals)
            })
            .collect();
        Ok(Components {
            timestamps: timestamps.to_vec(),
            trend: timestamps
                .iter()
                .map(|&ts| {
                    if self.stored.settings.future_trend == super::settings::FutureTrend::Flat {
                        p.trend_held(ts)
                    } else {
                        p.trend(ts)
                    }
                })
                .collect(),
            seasonal,
        })
    }

    /// Writes the model file (JSON), creating parent directories.
    pub fn save(&self, path: &Path) -> Result<(), ForecastError> {
        super::write_model_file(path, &self.stored)
    }

    /// Reads a Prophet model file written by [`ProphetModel::save`] (or a
    /// version 1 file, which held the history: its parameters are read off
    /// a replay of that fit).
    pub fn load(path: &Path) -> Result<Self, ForecastError> {
        Self::from_value(super::read_model_file(path)?, path)
    }

    /// Rebuilds a model from its parsed file, checking format and version.
    pub(super) fn from_value(value: serde_json::Value, path: &Path) -> Result<Self, ForecastError> {
        let bad = |message: String| ForecastError::Format {
            path: path.to_path_buf(),
            message,
        };
        let format = value
            .get("format")
            .and_then(|f| f.as_str())
            .unwrap_or_default();
        let version = value.get("version").and_then(|v| v.as_u64()).unwrap_or(0);
        if format != MODEL_FORMAT {
            return Err(bad(format!("format {format:?}, expected {MODEL_FORMAT:?}")));
        }
        match version {
            2 => Ok(Self::from_stored(
                serde_json::from_value(value).map_err(|e| bad(e.to_string()))?,
            )),
            1 => {
                let v1: v1::StoredModelV1 =
                    serde_json::from_value(value).map_err(|e| bad(e.to_string()))?;
                let points = v1.history.ds.len();
                let floor = super::floor_of(&v1.history.y);
                let ceiling = super::ceiling_of(&v1.history.y, v1.unit);
                let (settings, unit, seed) = (v1.settings.clone(), v1.unit, v1.seed);
                let params = fit_params(
                    v1::Fixed::from(&v1),
                    &v1.history.ds,
                    &v1.history.y,
                    &settings,
                )?;
                Ok(Self::from_stored(StoredModel {
                    format: MODEL_FORMAT.into(),
                    version: MODEL_VERSION,
                    settings,
                    unit,
                    seed,
                    points,
                    params,
                    floor,
                    ceiling,
                }))
            }
            other => Err(bad(format!(
                "version {other}, this build reads versions 1 and {MODEL_VERSION}"
            ))),
        }
    }
}

#[cfg(test)]
mod tests;
