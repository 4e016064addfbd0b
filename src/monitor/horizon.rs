//! What a series keeps between fits, and the band detection reads.
//!
//! A [`Forecaster`] is the compact form of a fitted model: Prophet's
//! parameters or a level (a few hundred bytes, any horizon at any time), or
//! for MSTL, which keeps no parameters, a forecast table computed at fit
//! time (the series is refitted before it runs out). A [`Horizon`] is the
//! band on the training grid for the next hours; a sample's band is
//! interpolated from it, so the model never runs per sample.

use std::sync::Arc;

use crate::{
    dataset::Unit,
    forecast::{Forecast, ForecastError, LevelModel, Model, ProphetModel},
};

/// Hours of band a horizon holds; it is redrawn when half used.
pub const HORIZON_SECONDS: i64 = 6 * 3600;
/// Span of the forecast table kept for a model without parameters (MSTL).
pub const TABLE_SECONDS: i64 = 24 * 3600;

/// A forecast band on a regular grid (`f32`: plenty for percentages).
#[derive(Debug, Clone, PartialEq)]
pub struct Horizon {
    /// First grid timestamp.
    pub start: i64,
    /// Grid step, seconds.
    pub step: i64,
    yhat: Box<[f32]>,
    lower: Box<[f32]>,
    upper: Box<[f32]>,
}

/// The band at one timestamp.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Band {
    /// Point forecast.
    pub yhat: f64,
    /// Lower edge.
    pub lower: f64,
    /// Upper edge.
    pub upper: f64,
}

impl Horizon {
    /// From a forecast on `start + k·step`, multiplied by `scale`.
    pub fn from_forecast(start: i64, step: i64, f: &Forecast, scale: f64) -> Horizon {
        let conv = |v: &[f64]| v.iter().map(|x| (x * scale) as f32).collect();
        Horizon {
            start,
            step: step.max(1),
            yhat: conv(&f.yhat),
            lower: conv(&f.lower),
            upper: conv(&f.upper),
        }
    }

    /// Grid points.
    pub fn len(&self) -> usize {
        self.yhat.len()
    }

    /// Whether the grid is empty.
    pub fn is_empty(&self) -> bool {
        self.yhat.is_empty()
    }

    /// Last timestamp covered.
    pub fn end(&self) -> i64 {
        self.start + self.step * (self.len() as i64 - 1).max(0)
    }

    /// When to draw the next horizon: half of this one used.
    pub fn refresh_at(&self) -> i64 {
        self.start + (self.end() - self.start) / 2
    }

    /// Band at `ts`, linearly interpolated between grid points; `None`
    /// outside the grid.
    pub fn band_at(&self, ts: i64) -> Option<Band> {
        if self.is_empty() || ts < self.start || ts > self.end() {
            return None;
        }
        let x = (ts - self.start) as f64 / self.step as f64;
        let i = (x.floor() as usize).min(self.len() - 1);
        let j = (i + 1).min(self.len() - 1);
        let f = x - i as f64;
        let at = |v: &[f32]| f64::from(v[i]) + f * (f64::from(v[j]) - f64::from(v[i]));
        Some(Band {
            yhat: at(&self.yhat),
            lower: at(&self.lower),
            upper: at(&self.upper),
        })
    }
}

/// What a series forecasts from between fits.
#[derive(Debug, Clone)]
pub enum Forecaster {
    /// Prophet parameters.
    Prophet(Arc<ProphetModel>),
    /// A level and a noise band (short history).
    Level(Arc<LevelModel>),
    /// A forecast computed at fit time (MSTL).
    Table(Arc<Horizon>),
}

/// A forecaster and how its numbers map to the monitor's.
#[derive(Debug, Clone)]
pub struct Compact {
    /// The forecaster.
    pub forecaster: Forecaster,
    /// Multiplier to percent (100 for a model of fractions).
    pub scale: f64,
    /// Seconds the model's time is behind the monitor's: it forecasts `ts`
    /// as its own `ts − shift` (whole weeks, so daily and weekly phases hold).
    pub shift: i64,
    /// Last training timestamp, in the monitor's time.
    pub history_end: i64,
    /// Training points.
    pub points: usize,
    /// `prophet`, `mstl` or `level`.
    pub kind: &'static str,
}

impl Compact {
    /// The compact form of a fitted model; MSTL becomes a forecast table of
    /// [`TABLE_SECONDS`] at `step` from `from` (or the end of its history, if
    /// later).
    pub fn from_model(model: Model, step: i64, from: i64) -> Result<Compact, ForecastError> {
        let scale = if model.unit() == Unit::Fraction {
            100.0
        } else {
            1.0
        };
        let (history_end, points, kind) = (model.history_end(), model.points(), model.kind());
        let forecaster = match model {
            Model::Prophet(m) => Forecaster::Prophet(Arc::new(*m)),
            Model::Level(m) => Forecaster::Level(Arc::new(m)),
            Model::Mstl(m) => {
                let step = step.max(1);
                let start = from.max(history_end);
                let ts: Vec<i64> = (0..=TABLE_SECONDS / step)
                    .map(|k| start + k * step)
                    .collect();
                let f = m.predict(&ts)?;
                Forecaster::Table(Arc::new(Horizon::from_forecast(start, step, &f, 1.0)))
            }
        };
        Ok(Compact {
            forecaster,
            scale,
            shift: 0,
            history_end,
            points,
            kind,
        })
    }

    /// The same forecaster moved forward by `shift` seconds.
    pub fn shifted(mut self, shift: i64) -> Compact {
        self.shift += shift;
        self.history_end += shift;
        self
    }

    /// Whether this is the short-history stage.
    pub fn is_short_history(&self) -> bool {
        matches!(self.forecaster, Forecaster::Level(_))
    }

    /// Last timestamp a table covers (`None`: any horizon can be drawn).
    pub fn table_end(&self) -> Option<i64> {
        match &self.forecaster {
            Forecaster::Table(t) => Some(t.end() + self.shift),
            _ => None,
        }
    }

    /// The band on `from, from + step, …` over [`HORIZON_SECONDS`].
    pub fn horizon(&self, from: i64, step: i64) -> Result<Horizon, ForecastError> {
        let step = step.max(1);
        let n = (HORIZON_SECONDS / step).max(2) + 1;
        let ts: Vec<i64> = (0..n).map(|k| from + k * step - self.shift).collect();
        let f = match &self.forecaster {
            Forecaster::Prophet(m) => m.predict(&ts)?,
            Forecaster::Level(m) => m.predict(&ts),
            Forecaster::Table(t) => {
                let mut f = Forecast {
                    timestamps: ts.clone(),
                    ..Forecast::default()
                };
                for &x in &ts {
                    let b = t.band_at(x).ok_or_else(|| {
                        ForecastError::Model(format!(
                            "the forecast table covers {} to {}, not {}: the model needs a refit",
                            crate::dataset::format_ts(t.start + self.shift),
                            crate::dataset::format_ts(t.end() + self.shift),
                            crate::dataset::format_ts(x + self.shift)
                        ))
                    })?;
                    f.yhat.push(b.yhat);
                    f.lower.push(b.lower);
                    f.upper.push(b.upper);
                }
                f
            }
        };
        Ok(Horizon::from_forecast(from, step, &f, self.scale))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grid() -> Horizon {
        let f = Forecast {
            timestamps: vec![100, 110, 120],
            yhat: vec![1.0, 2.0, 4.0],
            lower: vec![0.0; 3],
            upper: vec![9.0; 3],
        };
        Horizon::from_forecast(100, 10, &f, 1.0)
    }

    #[test]
    fn bands_interpolate_on_the_grid_and_stop_at_its_ends() {
        let h = grid();
        assert_eq!(h.band_at(100).unwrap().yhat, 1.0);
        assert_eq!(h.band_at(105).unwrap().yhat, 1.5);
        assert_eq!(h.band_at(115).unwrap().yhat, 3.0);
        assert_eq!(h.band_at(120).unwrap().yhat, 4.0);
        assert!(h.band_at(121).is_none());
        assert!(h.band_at(99).is_none());
        assert_eq!(h.end(), 120);
        assert_eq!(h.refresh_at(), 110);
    }

    #[test]
    fn a_level_forecaster_draws_horizons_shifted_and_scaled() {
        let ts: Vec<i64> = (0..24).map(|i| i * 300).collect();
        let m = LevelModel::fit(&ts, &[0.25; 24], 0.95, Unit::Fraction).unwrap();
        let c = Compact::from_model(Model::Level(m), 300, 0).unwrap();
        assert!(c.is_short_history());
        assert_eq!(c.scale, 100.0);
        let c = c.shifted(7 * 86_400);
        assert_eq!(c.history_end, 23 * 300 + 7 * 86_400);
        let h = c.horizon(c.history_end, 300).unwrap();
        assert_eq!(h.len() as i64, HORIZON_SECONDS / 300 + 1);
        let b = h.band_at(c.history_end).unwrap();
        assert!((b.yhat - 25.0).abs() < 1e-4, "{b:?}");
    }
}
