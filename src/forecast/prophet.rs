//! Prophet (trend + daily/weekly/yearly seasonality) through augurs-prophet,
//! fitted by the native optimizer ([`super::optimizer`]; Stan-in-WASM with the
//! `wasmstan` feature), with seeded bands and a JSON model file that reloads
//! to the identical forecast.
//!
//! augurs does not expose a fitted model's parameters, so fitting goes through
//! a capturing optimizer that keeps a copy of what the optimizer returned. A
//! saved model is the training history plus those parameters; loading replays
//! preprocessing with an optimizer that returns the stored parameters, which
//! rebuilds exactly the same model without optimizing again.

use std::{cell::RefCell, path::Path, rc::Rc};

use augurs_prophet::{
    optimizer::{InitialParams, OptimizeOpts, OptimizedParams},
    IntervalWidth, PositiveFloat, PredictionData, Prophet, ProphetOptions, SeasonalityOption,
    TrainingData,
};
use serde::{Deserialize, Serialize};

use super::{
    band::{sample_band, BandModel},
    optimizer::{NativeOptimizer, OptimizerKind},
    Components, Forecast, ForecastError, History,
};
use super::settings::{ProphetSettings, Seasonality};
use crate::dataset::Unit;

/// Identifies a model file.
pub const MODEL_FORMAT: &str = "cpu-anomaly/prophet";
/// Current model file version.
pub const MODEL_VERSION: u32 = 1;
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

/// Readable errors from the WASM optimizer.
#[cfg(feature = "wasmstan")]
mod wasm;

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
    let captured = Rc::new(RefCell::new(None));
    let optimizer = Capturing {
        inner: optimizer,
        captured: captured.clone(),
    };
    let mut prophet = Prophet::new(prophet_options(settings)?, optimizer);
    let data = TrainingData::new(timestamps.to_vec(), values.to_vec())?;
    prophet.fit(data, OptimizeOpts::default())?;
    let (params, t_change, beta_columns) = captured.borrow_mut().take().ok_or_else(|| {
        ForecastError::Prophet(augurs_prophet::Error::OptimizationFailed(
            "optimizer returned no parameters".into(),
        ))
    })?;
    let stored = StoredModel {
        format: MODEL_FORMAT.into(),
        version: MODEL_VERSION,
        settings: settings.clone(),
        unit,
        seed,
        history: History {
            ds: timestamps.to_vec(),
            y: values.to_vec(),
        },
        params: StoredParams::from(&params),
        t_change,
        beta_columns,
    };
    ProphetModel::from_stored(stored)
}

fn seasonality(s: Seasonality) -> SeasonalityOption {
    match s {
        Seasonality::Auto => SeasonalityOption::Auto,
        Seasonality::On => SeasonalityOption::Manual(true),
        Seasonality::Off => SeasonalityOption::Manual(false),
    }
}

fn prophet_options(s: &ProphetSettings) -> Result<ProphetOptions, ForecastError> {
    let pf = |v: f64| {
        PositiveFloat::try_new(v).map_err(|e| {
            ForecastError::Prophet(augurs_prophet::Error::OptimizationFailed(e.to_string()))
        })
    };
    Ok(ProphetOptions {
        daily_seasonality: seasonality(s.daily_seasonality),
        weekly_seasonality: seasonality(s.weekly_seasonality),
        yearly_seasonality: seasonality(s.yearly_seasonality),
        changepoint_prior_scale: pf(s.changepoint_prior_scale)?,
        seasonality_prior_scale: pf(s.seasonality_prior_scale)?,
        interval_width: IntervalWidth::try_new(s.interval_width)?,
        // Bands are drawn by `band::sample_band` with a seeded RNG instead.
        uncertainty_samples: 0,
        ..ProphetOptions::default()
    })
}

/// Rows sampled from each feature column to identify it.
const SIGNATURE_ROWS: usize = 16;

/// Identifies each feature column of `X` by its values at a few spread-out
/// rows. augurs keeps seasonalities in a `HashMap`, so two `Prophet` instances
/// may order the columns differently; betas are matched to columns by these
/// signatures, not by position.
fn column_signatures(data: &augurs_prophet::optimizer::Data) -> Vec<Vec<f64>> {
    let k = data.K.max(0) as usize;
    let n = data.y.len();
    if k == 0 || n == 0 || data.X.len() < n * k {
        return Vec::new();
    }
    let rows: Vec<usize> = (0..SIGNATURE_ROWS.min(n))
        .map(|r| r * (n - 1) / (SIGNATURE_ROWS.min(n) - 1).max(1))
        .collect();
    (0..k)
        .map(|j| rows.iter().map(|&i| data.X[i * k + j]).collect())
        .collect()
}

type Captured = (OptimizedParams, Vec<f64>, Vec<Vec<f64>>);

/// Wraps the real optimizer and keeps a copy of its answer, the changepoint
/// times and the feature-column signatures it was given.
#[derive(Debug)]
struct Capturing<O> {
    inner: O,
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
        *self.captured.borrow_mut() = Some((
            params.clone(),
            data.t_change.clone(),
            column_signatures(data),
        ));
        Ok(params)
    }
}

/// An "optimizer" that returns stored parameters: rebuilds a fitted model.
/// Betas are re-ordered to this instance's feature columns by signature.
#[derive(Debug, Clone)]
struct Fixed {
    params: OptimizedParams,
    signatures: Vec<Vec<f64>>,
}

impl augurs_prophet::Optimizer for Fixed {
    fn optimize(
        &self,
        _init: &InitialParams,
        data: &augurs_prophet::optimizer::Data,
        _opts: &OptimizeOpts,
    ) -> Result<OptimizedParams, augurs_prophet::optimizer::Error> {
        let mut params = self.params.clone();
        let now = column_signatures(data);
        if now.len() != self.signatures.len() || now.len() != params.beta.len() {
            return Err(augurs_prophet::optimizer::Error::string(format!(
                "model has {} seasonal coefficients but the rebuilt model has {} features",
                params.beta.len(),
                now.len()
            )));
        }
        let close = |a: &[f64], b: &[f64]| {
            a.iter()
                .zip(b)
                .all(|(x, y)| (x - y).abs() <= 1e-9 * (1.0 + x.abs()))
        };
        for (j, sig) in now.iter().enumerate() {
            let old = self
                .signatures
                .iter()
                .position(|s| close(s, sig))
                .ok_or_else(|| {
                    augurs_prophet::optimizer::Error::static_str(
                        "stored coefficients do not match the model's features",
                    )
                })?;
            params.beta[j] = self.params.beta[old];
        }
        Ok(params)
    }
}

/// Fitted parameters as stored in the model file (Prophet's scaled units).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredParams {
    /// Base growth rate.
    pub k: f64,
    /// Offset.
    pub m: f64,
    /// Observation noise.
    pub sigma_obs: f64,
    /// Changepoint rate adjustments.
    pub delta: Vec<f64>,
    /// Seasonal/regressor coefficients.
    pub beta: Vec<f64>,
    /// Trend over the history.
    pub trend: Vec<f64>,
}

impl From<&OptimizedParams> for StoredParams {
    fn from(p: &OptimizedParams) -> Self {
        StoredParams {
            k: p.k,
            m: p.m,
            sigma_obs: *p.sigma_obs,
            delta: p.delta.clone(),
            beta: p.beta.clone(),
            trend: p.trend.clone(),
        }
    }
}

/// The model file (JSON). See README "Model file".
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoredModel {
    /// Always [`MODEL_FORMAT`].
    pub format: String,
    /// [`MODEL_VERSION`] at save time.
    pub version: u32,
    /// Options the model was fitted with.
    pub settings: ProphetSettings,
    /// Unit of `history.y` and of every forecast.
    pub unit: Unit,
    /// Seed of the band sampler.
    pub seed: u64,
    /// Training data.
    pub history: History,
    /// Fitted parameters.
    pub params: StoredParams,
    /// Changepoint times (scaled).
    pub t_change: Vec<f64>,
    /// Signature of the feature column each `params.beta` entry belongs to.
    pub beta_columns: Vec<Vec<f64>>,
}

/// A fitted Prophet model, ready to forecast.
pub struct ProphetModel {
    stored: StoredModel,
    prophet: Prophet<Fixed>,
    t_start: i64,
    t_scale: f64,
    band: BandModel,
}

impl std::fmt::Debug for ProphetModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProphetModel")
            .field("points", &self.stored.history.ds.len())
            .field("unit", &self.stored.unit)
            .finish()
    }
}

impl ProphetModel {
    fn from_stored(stored: StoredModel) -> Result<Self, ForecastError> {
        let p = &stored.params;
        let params = OptimizedParams {
            k: p.k,
            m: p.m,
            sigma_obs: PositiveFloat::try_new(p.sigma_obs.max(1e-12)).map_err(|e| {
                ForecastError::Prophet(augurs_prophet::Error::OptimizationFailed(e.to_string()))
            })?,
            delta: p.delta.clone(),
            beta: p.beta.clone(),
            trend: p.trend.clone(),
        };
        let fixed = Fixed {
            params,
            signatures: stored.beta_columns.clone(),
        };
        let mut prophet = Prophet::new(prophet_options(&stored.settings)?, fixed);
        let data = TrainingData::new(stored.history.ds.clone(), stored.history.y.clone())?;
        prophet.fit(data, OptimizeOpts::default())?;
        let ds = &stored.history.ds;
        let t_start = *ds.iter().min().unwrap_or(&0);
        let t_end = *ds.iter().max().unwrap_or(&0);
        // AbsMax scaling (augurs' default): y is divided by max |y|, 1 if all zero.
        let y_scale = stored.history.y.iter().fold(0.0f64, |a, v| a.max(v.abs()));
        let y_scale = if y_scale == 0.0 { 1.0 } else { y_scale };
        let mean_abs_delta = if p.delta.is_empty() {
            0.0
        } else {
            p.delta.iter().map(|d| d.abs()).sum::<f64>() / p.delta.len() as f64
        };
        let band = BandModel {
            sigma_obs: p.sigma_obs,
            n_changepoints: stored.t_change.len(),
            mean_abs_delta,
            y_scale,
            interval_width: stored.settings.interval_width,
            samples: stored.settings.uncertainty_samples,
        };
        Ok(ProphetModel {
            t_start,
            t_scale: ((t_end - t_start) as f64).max(1.0),
            band,
            prophet,
            stored,
        })
    }

    /// The stored form (parameters, history, settings).
    pub fn stored(&self) -> &StoredModel {
        &self.stored
    }

    /// Unit of the training data and forecasts.
    pub fn unit(&self) -> Unit {
        self.stored.unit
    }

    /// Last training timestamp.
    pub fn history_end(&self) -> i64 {
        self.stored.history.ds.last().copied().unwrap_or(0)
    }

    /// Forecast with band for `timestamps` (any order, inside or beyond the history).
    pub fn predict(&self, timestamps: &[i64]) -> Result<Forecast, ForecastError> {
        if timestamps.is_empty() {
            return Ok(Forecast::default());
        }
        let preds = self
            .prophet
            .predict(PredictionData::new(timestamps.to_vec()))?;
        let yhat = preds.yhat.point;
        let t: Vec<f64> = timestamps
            .iter()
            .map(|&ts| (ts - self.t_start) as f64 / self.t_scale)
            .collect();
        let (lower, upper) = sample_band(&self.band, &t, &yhat, self.stored.seed);
        Ok(Forecast {
            timestamps: timestamps.to_vec(),
            yhat,
            lower,
            upper,
        })
    }

    /// Trend and seasonal components at `timestamps`.
    pub fn components(&self, timestamps: &[i64]) -> Result<Components, ForecastError> {
        let preds = self
            .prophet
            .predict(PredictionData::new(timestamps.to_vec()))?;
        let mut seasonal: Vec<(String, Vec<f64>)> = preds
            .seasonalities
            .into_iter()
            .map(|(name, p)| (name, p.point))
            .collect();
        seasonal.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(Components {
            timestamps: timestamps.to_vec(),
            trend: preds.trend.point,
            seasonal,
        })
    }

    /// Writes the model file (JSON), creating parent directories.
    pub fn save(&self, path: &Path) -> Result<(), ForecastError> {
        super::write_model_file(path, &self.stored)
    }

    /// Reads a Prophet model file written by [`ProphetModel::save`].
    pub fn load(path: &Path) -> Result<Self, ForecastError> {
        let value = super::read_model_file(path)?;
        let stored: StoredModel =
            serde_json::from_value(value).map_err(|e| ForecastError::Format {
                path: path.to_path_buf(),
                message: e.to_string(),
            })?;
        Self::from_checked(stored, path)
    }

    /// Rebuilds a model from its parsed file, checking format and version.
    pub(super) fn from_checked(stored: StoredModel, path: &Path) -> Result<Self, ForecastError> {
        if stored.format != MODEL_FORMAT || stored.version != MODEL_VERSION {
            return Err(ForecastError::Format {
                path: path.to_path_buf(),
                message: format!(
                    "format {:?} version {}, expected {MODEL_FORMAT:?} version {MODEL_VERSION}",
                    stored.format, stored.version
                ),
            });
        }
        Self::from_stored(stored)
    }
}
