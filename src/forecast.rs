//! Forecasting: what normal looks like, as a point forecast with a
//! prediction band for any set of timestamps.
//!
//! Two model families, chosen with the `model` key: Prophet (default) and
//! MSTL + ETS. [`Trainer`] fits either (optionally robustly: fit, drop the
//! points far outside the band, refit) and returns a [`Model`]; the detector
//! downstream sees only [`Forecast`] values, never a model, so it does not
//! care which family produced the band.

pub mod band;
pub mod level;
pub mod mstl;
pub mod optimizer;
pub mod prophet;
pub mod settings;
mod trainer;

use std::path::Path;

use serde::{Deserialize, Serialize};

pub use level::LevelModel;
pub use mstl::MstlModel;
pub use prophet::{ProphetModel, ProphetTrainer};
pub use settings::{FutureTrend, ProphetSettings, Seasonality};
pub use trainer::{outliers, subsample, Fitted, Trainer};

use crate::dataset::Unit;

/// Fewest points a fit accepts.
pub const MIN_FIT_POINTS: usize = 10;
/// Robust training drops points whose score against the first fit's band
/// (multiplier 1) exceeds this: more than twice the band's half-width away
/// from the forecast, about 4 sigma for Gaussian noise.
pub const ROBUST_CUTOFF: f64 = 2.0;
/// Robust training drops at most this share of the history (worst first).
pub const ROBUST_MAX_DROP: f64 = 0.1;
/// A longer history is fitted on an evenly strided subsample of this many
/// points (first and last kept). A Prophet fit's cost and memory grow with
/// the points (augurs keeps several copies of the history and the feature
/// matrix: ~570 MB for 10⁶ points) while its parameters barely move past a
/// few ten thousand points: the likelihood already swamps the priors, and a
/// systematic subsample keeps the noise level (an average would not).
pub const MAX_FIT_POINTS: usize = 100_000;

/// Which model family forecasts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ModelFamily {
    /// Prophet: piecewise-linear trend + Fourier seasonalities, Stan MAP fit.
    #[default]
    Prophet,
    /// MSTL decomposition + AutoETS on the deseasonalised rest.
    Mstl,
}

impl ModelFamily {
    /// Name as written in config and model metadata.
    pub fn as_str(self) -> &'static str {
        match self {
            ModelFamily::Prophet => "prophet",
            ModelFamily::Mstl => "mstl",
        }
    }
}

impl std::fmt::Display for ModelFamily {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Training history stored with a model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct History {
    /// Unix seconds.
    pub ds: Vec<i64>,
    /// Values in the model's unit.
    pub y: Vec<f64>,
}

/// History span below which a series is fitted a [`LevelModel`] (Prophet's
/// daily seasonality needs two days of data).
pub const LEVEL_BELOW_SECONDS: i64 = 2 * 86_400;

/// A fitted model.
#[derive(Debug)]
pub enum Model {
    /// Prophet.
    Prophet(Box<ProphetModel>),
    /// MSTL + ETS.
    Mstl(Box<MstlModel>),
    /// A level and a noise band (a short history, see [`Trainer::fit_staged`]).
    Level(LevelModel),
}

impl Model {
    /// The family.
    pub fn family(&self) -> ModelFamily {
        match self {
            Model::Prophet(_) | Model::Level(_) => ModelFamily::Prophet,
            Model::Mstl(_) => ModelFamily::Mstl,
        }
    }

    /// What the model is, for logs: `prophet`, `mstl` or `level`.
    pub fn kind(&self) -> &'static str {
        match self {
            Model::Prophet(_) => "prophet",
            Model::Mstl(_) => "mstl",
            Model::Level(_) => "level",
        }
    }

    /// Forecast with band for `timestamps`.
    pub fn predict(&self, timestamps: &[i64]) -> Result<Forecast, ForecastError> {
        match self {
            Model::Prophet(m) => m.predict(timestamps),
            Model::Mstl(m) => m.predict(timestamps),
            Model::Level(m) => Ok(m.predict(timestamps)),
        }
    }

    /// Trend and seasonal parts at `timestamps`.
    pub fn components(&self, timestamps: &[i64]) -> Result<Components, ForecastError> {
        match self {
            Model::Prophet(m) => m.components(timestamps),
            Model::Mstl(m) => m.components(timestamps),
            Model::Level(m) => Ok(m.components(timestamps)),
        }
    }

    /// Unit of the training data and forecasts.
    pub fn unit(&self) -> Unit {
        match self {
            Model::Prophet(m) => m.unit(),
            Model::Mstl(m) => m.stored().unit,
            Model::Level(m) => m.unit,
        }
    }

    /// Last training timestamp.
    pub fn history_end(&self) -> i64 {
        match self {
            Model::Prophet(m) => m.history_end(),
            Model::Mstl(m) => m.stored().history.ds.last().copied().unwrap_or(0),
            Model::Level(m) => m.end,
        }
    }

    /// Points fitted (after robust dropping).
    pub fn points(&self) -> usize {
        match self {
            Model::Prophet(m) => m.points(),
            Model::Mstl(m) => m.stored().history.ds.len(),
            Model::Level(m) => m.points,
        }
    }

    /// Writes the model file (JSON), creating parent directories.
    pub fn save(&self, path: &Path) -> Result<(), ForecastError> {
        match self {
            Model::Prophet(m) => m.save(path),
            Model::Mstl(m) => write_model_file(path, m.stored()),
            Model::Level(m) => write_model_file(path, m),
        }
    }

    /// Reads a model file of either family.
    pub fn load(path: &Path) -> Result<Self, ForecastError> {
        let value = read_model_file(path)?;
        let format = value
            .get("format")
            .and_then(|f| f.as_str())
            .unwrap_or_default()
            .to_string();
        let bad = |e: serde_json::Error| ForecastError::Format {
            path: path.to_path_buf(),
            message: e.to_string(),
        };
        match format.as_str() {
            prophet::MODEL_FORMAT => Ok(Model::Prophet(Box::new(ProphetModel::from_value(
                value, path,
            )?))),
            mstl::MODEL_FORMAT => Ok(Model::Mstl(Box::new(mstl::load(
                serde_json::from_value(value).map_err(bad)?,
                path,
            )?))),
            level::MODEL_FORMAT => Ok(Model::Level(LevelModel::from_value(value, path)?)),
            other => Err(ForecastError::Format {
                path: path.to_path_buf(),
                message: format!(
                    "unknown format {other:?} (expected {:?}, {:?} or {:?})",
                    prophet::MODEL_FORMAT,
                    mstl::MODEL_FORMAT,
                    level::MODEL_FORMAT
                ),
            }),
        }
    }
}

/// Writes `value` as JSON to `path` through a temporary file and a rename,
/// so a crash never leaves a half-written model.
pub(crate) fn write_model_file(path: &Path, value: &impl Serialize) -> Result<(), ForecastError> {
    let io = |source| ForecastError::Io {
        path: path.to_path_buf(),
        source,
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let json = serde_json::to_vec(value).map_err(|e| io(std::io::Error::other(e)))?;
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, json).map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}

/// Reads a model file as JSON.
pub(crate) fn read_model_file(path: &Path) -> Result<serde_json::Value, ForecastError> {
    let text = std::fs::read(path).map_err(|source| ForecastError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    serde_json::from_slice(&text).map_err(|e| ForecastError::Format {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

/// The first line of a (possibly multi-line) error message.
pub(crate) fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or("")
}

/// The floor under the forecasts of a model fitted on `values`: 0 when
/// none is negative (CPU usage cannot be), none otherwise (README "Model
/// file").
fn floor_of(values: &[f64]) -> Option<f64> {
    values.iter().all(|&v| v >= 0.0).then_some(0.0)
}

/// The ceiling over the forecasts of a model fitted on `values` in `unit`:
/// its full scale (100 %, or 1 in fractions) when no training value is
/// above it (one CPU's usage cannot be), none otherwise (README "Model
/// file").
fn ceiling_of(values: &[f64], unit: Unit) -> Option<f64> {
    let top = unit.full_scale();
    values.iter().all(|&v| v <= top).then_some(top)
}

/// How far a point forecast `y` (and its band, whose width is kept) moves
/// to stay at or above `floor` and at or below `ceiling`.
fn shift_into(floor: Option<f64>, ceiling: Option<f64>, y: f64) -> f64 {
    let up = floor.map_or(0.0, |f| (f - y).max(0.0));
    let down = ceiling.map_or(0.0, |c| (c - y).min(0.0));
    up + down
}

/// Test helper: `bounded` is `free` kept within a floor or ceiling, its
/// band moved with its forecast, the band's width at every point kept.
#[cfg(test)]
fn assert_band_moved_with_forecast(bounded: &Forecast, free: &Forecast) {
    assert_eq!(bounded.len(), free.len());
    for i in 0..free.len() {
        let width = |g: &Forecast| (g.upper[i] - g.yhat[i], g.yhat[i] - g.lower[i]);
        let ((a, b), (c, d)) = (width(bounded), width(free));
        assert!((a - c).abs() < 1e-9 && (b - d).abs() < 1e-9, "point {i}");
    }
}

/// A point forecast with its prediction band, aligned to `timestamps`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Forecast {
    /// Unix seconds.
    pub timestamps: Vec<i64>,
    /// Point forecast.
    pub yhat: Vec<f64>,
    /// Lower edge of the band.
    pub lower: Vec<f64>,
    /// Upper edge of the band.
    pub upper: Vec<f64>,
}

impl Forecast {
    /// Number of forecast points.
    pub fn len(&self) -> usize {
        self.timestamps.len()
    }

    /// Whether there are no points.
    pub fn is_empty(&self) -> bool {
        self.timestamps.is_empty()
    }
}

/// The additive parts a forecast is made of, for plots and reports.
#[derive(Debug, Clone, Default)]
pub struct Components {
    /// Unix seconds.
    pub timestamps: Vec<i64>,
    /// Trend.
    pub trend: Vec<f64>,
    /// Named seasonal components ("daily", "weekly", "yearly").
    pub seasonal: Vec<(String, Vec<f64>)>,
}

/// What went wrong while fitting, predicting or persisting a model.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ForecastError {
    /// Prophet rejected the data or the fit failed.
    #[error("prophet: {0}")]
    Prophet(#[from] augurs_prophet::Error),
    /// The model file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The model file.
        path: std::path::PathBuf,
        /// Underlying error.
        source: std::io::Error,
    },
    /// The model file is not a model this version can read.
    #[error("{path}: not a cpu-anomaly model: {message}")]
    Format {
        /// The model file.
        path: std::path::PathBuf,
        /// What was wrong.
        message: String,
    },
    /// The model could not be built from this data.
    #[error("{0}")]
    Model(String),
    /// A forecast asked for too far past the training data.
    #[error(
        "cannot forecast {} from a model trained on {} .. {}: that is more than {spans} times \
         the training span past its end; check the timestamps or refit on recent data",
        crate::dataset::format_ts(*asked),
        crate::dataset::format_ts(*history_start),
        crate::dataset::format_ts(*history_end)
    )]
    HorizonTooFar {
        /// The farthest timestamp asked for.
        asked: i64,
        /// First training timestamp.
        history_start: i64,
        /// Last training timestamp.
        history_end: i64,
        /// The limit, in training spans.
        spans: f64,
    },
    /// Too little data to fit.
    #[error("need at least {min} points to fit, got {got}")]
    TooShort {
        /// Minimum.
        min: usize,
        /// Given.
        got: usize,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_histories_are_subsampled_evenly_with_both_ends() {
        assert_eq!(subsample(5, 10), (vec![0, 1, 2, 3, 4], 1));
        let (idx, stride) = subsample(1_000_000, MAX_FIT_POINTS);
        assert_eq!(stride, 11);
        assert!(idx.len() <= MAX_FIT_POINTS);
        assert_eq!(idx[0], 0);
        assert_eq!(*idx.last().unwrap(), 999_999);
        assert!(idx.windows(2).all(|w| w[1] - w[0] <= stride));
        let (idx, _) = subsample(21, 5);
        assert_eq!(idx, vec![0, 5, 10, 15, 20]);
    }

    #[test]
    fn a_forecast_is_shifted_into_its_floor_and_ceiling() {
        assert_eq!(shift_into(Some(0.0), Some(100.0), -3.0), 3.0);
        assert_eq!(shift_into(Some(0.0), Some(100.0), 138.0), -38.0);
        assert_eq!(shift_into(Some(0.0), Some(100.0), 50.0), 0.0);
        assert_eq!(shift_into(None, None, -3.0), 0.0);
        assert_eq!(shift_into(None, None, 138.0), 0.0);
        assert_eq!(floor_of(&[0.0, 5.0]), Some(0.0));
        assert_eq!(floor_of(&[-0.1, 5.0]), None);
        assert_eq!(ceiling_of(&[0.2, 100.0], Unit::Percent), Some(100.0));
        assert_eq!(ceiling_of(&[0.2, 100.5], Unit::Percent), None);
        assert_eq!(ceiling_of(&[0.2, 0.9], Unit::Fraction), Some(1.0));
        assert_eq!(ceiling_of(&[0.2, 1.2], Unit::Fraction), None);
    }

    #[test]
    fn outliers_are_worst_first_and_capped() {
        let f = Forecast {
            timestamps: (0..10).collect(),
            yhat: vec![0.0; 10],
            lower: vec![-1.0; 10],
            upper: vec![1.0; 10],
        };
        let mut v = vec![0.5; 10];
        v[2] = 2.5; // score 2.5 > 2
        v[7] = -9.0; // score 9
        v[4] = 1.9; // inside the cut-off
        assert_eq!(outliers(&v, &f, 2.0, 1.0), vec![2, 7]);
        // 10 % of 10 points: only the worst one goes.
        assert_eq!(outliers(&v, &f, 2.0, 0.1), vec![7]);
    }
}
