//! Forecasting: what normal looks like, as a point forecast with a
//! prediction band for any set of timestamps.
//!
//! The detector downstream sees only [`Forecast`] values, never a model, so it
//! does not care which model family produced the band.

pub mod band;
pub mod prophet;

pub use prophet::{ProphetModel, ProphetTrainer};

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
    /// Too little data to fit.
    #[error("need at least {min} points to fit, got {got}")]
    TooShort {
        /// Minimum.
        min: usize,
        /// Given.
        got: usize,
    },
}
