//! A fitted Prophet model reduced to its parameters, and the forecast they
//! define: the piecewise-linear (or flat) trend plus Fourier seasonalities,
//! in Prophet's scaled units, times the value scale.
//!
//! augurs keeps the whole training history inside a fitted `Prophet` (several
//! copies of it: raw, scaled, feature matrix), about 3 MB for a week of
//! 5-minute data. Forecasting needs none of it: this type is a few hundred
//! bytes, plain data (`Send`), and predicts the same numbers as augurs (a
//! test checks it to 1e-9). Fitting still goes through augurs; the parameters
//! are read off what its optimizer returned ([`ProphetParams::from_fit`]).

use serde::{Deserialize, Serialize};

/// Seconds in a day: Prophet's Fourier features run on days since the epoch.
const DAY: f64 = 86_400.0;

/// The seasonalities augurs can add on its own (name, period in days, Fourier
/// order): Prophet's defaults.
const KNOWN_SEASONALITIES: &[(&str, f64, usize)] = &[
    ("daily", 1.0, 4),
    ("weekly", 7.0, 3),
    ("yearly", 365.25, 10),
];

/// Rows compared when matching a feature column to a seasonality.
const MATCH_ROWS: usize = 24;

/// Trend shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Growth {
    /// Piecewise linear with changepoints.
    Linear,
    /// Constant level `m`.
    Flat,
}

/// One Fourier seasonality: `Σᵢ βsinᵢ·sin(2π i t/P) + βcosᵢ·cos(2π i t/P)`,
/// `t` in days since the epoch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Fourier {
    /// `daily`, `weekly` or `yearly`.
    pub name: String,
    /// Period, days.
    pub period_days: f64,
    /// Coefficients in order sin 1, cos 1, sin 2, cos 2, … (scaled units).
    pub beta: Vec<f64>,
}

impl Fourier {
    /// The component at `ts` (Unix seconds), in scaled units.
    fn at(&self, ts: i64) -> f64 {
        let x = ts as f64 / DAY * std::f64::consts::TAU / self.period_days;
        self.beta
            .chunks_exact(2)
            .enumerate()
            .map(|(i, b)| {
                let a = x * (i + 1) as f64;
                b[0] * a.sin() + b[1] * a.cos()
            })
            .sum()
    }
}

/// Everything a fitted Prophet model forecasts from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProphetParams {
    /// First training timestamp (scaled time 0), Unix seconds.
    pub t_start: i64,
    /// Seconds between the first and last training timestamp (scaled time 1).
    pub t_scale: f64,
    /// Values were divided by this before fitting (augurs' AbsMax scaling).
    pub y_scale: f64,
    /// Trend shape.
    pub growth: Growth,
    /// Base growth rate (scaled).
    pub k: f64,
    /// Offset (scaled).
    pub m: f64,
    /// Changepoint times (scaled).
    pub t_change: Vec<f64>,
    /// Rate changes at the changepoints.
    pub delta: Vec<f64>,
    /// Observation noise sd (scaled).
    pub sigma_obs: f64,
    /// Seasonal components.
    pub seasonalities: Vec<Fourier>,
}

/// Why fitted parameters could not be read off an augurs fit.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ParamsError {
    /// A feature column is none of the seasonalities this project fits.
    #[error("feature column {column} of the fitted model is not a known seasonality")]
    UnknownFeature {
        /// Column index.
        column: usize,
    },
    /// The optimizer's data and answer disagree in shape.
    #[error("fitted model has an unexpected shape: {0}")]
    Shape(String),
    /// Logistic growth is not supported.
    #[error("logistic growth is not supported")]
    Logistic,
}

impl ProphetParams {
    /// Reads the parameters off an augurs fit: `ds` the (sorted) training
    /// timestamps, `y_scale` the largest absolute training value (augurs'
    /// AbsMax scale; 0 means 1), `data` what the optimizer was given and
    /// `fitted` what it returned. Each feature column is identified by
    /// recomputing the candidate Fourier terms at a few rows (augurs keeps
    /// seasonalities in a `HashMap`, so their column order varies).
    pub fn from_fit(
        ds: &[i64],
        y_scale: f64,
        data: &augurs_prophet::optimizer::Data,
        fitted: &augurs_prophet::optimizer::OptimizedParams,
    ) -> Result<Self, ParamsError> {
        use augurs_prophet::optimizer::TrendIndicator;
        let growth = match data.trend_indicator {
            TrendIndicator::Linear => Growth::Linear,
            TrendIndicator::Flat => Growth::Flat,
            TrendIndicator::Logistic => return Err(ParamsError::Logistic),
        };
        let n = ds.len();
        let k = data.K.max(0) as usize;
        if n < 2 || data.X.len() != n * k || fitted.beta.len() != k {
            return Err(ParamsError::Shape(format!(
                "{n} rows, {k} features, {} coefficients, X of {}",
                fitted.beta.len(),
                data.X.len()
            )));
        }
        let rows: Vec<usize> = (0..MATCH_ROWS.min(n))
            .map(|r| r * (n - 1) / (MATCH_ROWS.min(n) - 1).max(1))
            .collect();
        let mut seasonalities: Vec<Fourier> = Vec::new();
        for j in 0..k {
            let column: Vec<f64> = rows.iter().map(|&i| data.X[i * k + j]).collect();
            // Prophet adds one all-zero column when there is no seasonality
            // at all (its coefficient multiplies nothing).
            if (0..n).all(|i| data.X[i * k + j] == 0.0) {
                continue;
            }
            let (name, period, slot) =
                identify(ds, &rows, &column).ok_or(ParamsError::UnknownFeature { column: j })?;
            let s = match seasonalities.iter_mut().find(|s| s.name == name) {
                Some(s) => s,
                None => {
                    seasonalities.push(Fourier {
                        name: name.to_string(),
                        period_days: period,
                        beta: Vec::new(),
                    });
                    seasonalities.last_mut().expect("just pushed")
                }
            };
            if s.beta.len() <= slot {
                s.beta.resize(slot + 1, 0.0);
            }
            s.beta[slot] = fitted.beta[j];
        }
        for s in &mut seasonalities {
            // An order's sin and cos always come together.
            if s.beta.len() % 2 == 1 {
                s.beta.push(0.0);
            }
        }
        seasonalities.sort_by(|a, b| a.period_days.total_cmp(&b.period_days));
        Ok(ProphetParams {
            t_start: ds[0],
            t_scale: ((ds[n - 1] - ds[0]) as f64).max(1.0),
            y_scale: if y_scale == 0.0 { 1.0 } else { y_scale },
            growth,
            k: fitted.k,
            m: fitted.m,
            t_change: data.t_change.clone(),
            delta: fitted.delta.clone(),
            sigma_obs: *fitted.sigma_obs,
            seasonalities,
        })
    }

    /// First training timestamp.
    pub fn history_start(&self) -> i64 {
        self.t_start
    }

    /// Last training timestamp.
    pub fn history_end(&self) -> i64 {
        self.t_start + self.t_scale.round() as i64
    }

    /// Scaled time of `ts`.
    pub fn scaled_time(&self, ts: i64) -> f64 {
        (ts - self.t_start) as f64 / self.t_scale
    }

    /// Trend at scaled time `t`, scaled units.
    fn trend_scaled(&self, t: f64) -> f64 {
        match self.growth {
            Growth::Flat => self.m,
            Growth::Linear => {
                let (mut k, mut m) = (self.k, self.m);
                for (&c, &d) in self.t_change.iter().zip(&self.delta) {
                    if c <= t {
                        k += d;
                        m -= c * d;
                    }
                }
                k * t + m
            }
        }
    }

    /// Trend at `ts`, in the data's unit.
    pub fn trend(&self, ts: i64) -> f64 {
        self.trend_scaled(self.scaled_time(ts)) * self.y_scale
    }

    /// Trend at `ts` held at its last value after the history (the
    /// `future_trend: flat` forecast), in the data's unit.
    pub fn trend_held(&self, ts: i64) -> f64 {
        self.trend_scaled(self.scaled_time(ts).min(1.0)) * self.y_scale
    }

    /// Point forecast at `ts` with the trend held after the history.
    pub fn yhat_held(&self, ts: i64) -> f64 {
        let seasonal: f64 = self.seasonalities.iter().map(|s| s.at(ts)).sum();
        (self.trend_scaled(self.scaled_time(ts).min(1.0)) + seasonal) * self.y_scale
    }

    /// Each seasonality at `ts`, in the data's unit.
    pub fn seasonal(&self, ts: i64) -> impl Iterator<Item = (&str, f64)> + '_ {
        self.seasonalities
            .iter()
            .map(move |s| (s.name.as_str(), s.at(ts) * self.y_scale))
    }

    /// Point forecast at `ts`, in the data's unit.
    pub fn yhat(&self, ts: i64) -> f64 {
        let seasonal: f64 = self.seasonalities.iter().map(|s| s.at(ts)).sum();
        (self.trend_scaled(self.scaled_time(ts)) + seasonal) * self.y_scale
    }

    /// Mean absolute changepoint delta: the Laplace scale of future trend
    /// changes in the band.
    pub fn mean_abs_delta(&self) -> f64 {
        if self.delta.is_empty() {
            0.0
        } else {
            self.delta.iter().map(|d| d.abs()).sum::<f64>() / self.delta.len() as f64
        }
    }
}

/// Which Fourier term `column` (values at `rows` of `ds`) is: (seasonality,
/// period, slot in its coefficient list).
fn identify(ds: &[i64], rows: &[usize], column: &[f64]) -> Option<(&'static str, f64, usize)> {
    for &(name, period, order) in KNOWN_SEASONALITIES {
        for i in 0..order {
            for (slot, f) in [(2 * i, f64::sin as fn(f64) -> f64), (2 * i + 1, f64::cos)] {
                let same = rows.iter().zip(column).all(|(&r, &v)| {
                    let x = ds[r] as f64 / DAY * std::f64::consts::TAU / period * (i + 1) as f64;
                    (f(x) - v).abs() <= 1e-9
                });
                if same {
                    return Some((name, period, slot));
                }
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn piecewise_linear_trend_as_prophet_defines_it() {
        // Same case as augurs' own test: k 1, m 0, one change of +0.5 at t 5.
        let p = ProphetParams {
            t_start: 0,
            t_scale: 1.0,
            y_scale: 1.0,
            growth: Growth::Linear,
            k: 1.0,
            m: 0.0,
            t_change: vec![5.0],
            delta: vec![0.5],
            sigma_obs: 0.1,
            seasonalities: vec![],
        };
        let got: Vec<f64> = (0..11).map(|t| p.trend(t)).collect();
        assert_eq!(
            got,
            vec![0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.5, 8.0, 9.5, 11.0, 12.5]
        );
        let flat = ProphetParams {
            growth: Growth::Flat,
            m: 0.3,
            ..p
        };
        assert_eq!(flat.trend(7), 0.3);
    }

    #[test]
    fn fourier_terms_are_identified_by_their_values() {
        let ds: Vec<i64> = (0..100).map(|i| 1_700_000_000 + i * 3_000).collect();
        let rows: Vec<usize> = (0..10).map(|i| i * 11).collect();
        let col = |period: f64, i: usize, cos: bool| -> Vec<f64> {
            rows.iter()
                .map(|&r| {
                    let x = ds[r] as f64 / DAY * std::f64::consts::TAU / period * (i + 1) as f64;
                    if cos {
                        x.cos()
                    } else {
                        x.sin()
                    }
                })
                .collect()
        };
        assert_eq!(
            identify(&ds, &rows, &col(7.0, 2, true)),
            Some(("weekly", 7.0, 5))
        );
        assert_eq!(
            identify(&ds, &rows, &col(1.0, 0, false)),
            Some(("daily", 1.0, 0))
        );
        assert_eq!(identify(&ds, &rows, &col(3.0, 0, false)), None);
    }
}
