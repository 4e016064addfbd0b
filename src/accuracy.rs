//! Forecast accuracy on a held-back tail: MAE, MSE, RMSE, MAPE and band coverage.

use serde::Serialize;

use crate::forecast::Forecast;

/// Accuracy of a forecast against what actually happened.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Accuracy {
    /// Points compared.
    pub points: usize,
    /// Mean absolute error, in the data's unit.
    pub mae: f64,
    /// Mean squared error.
    pub mse: f64,
    /// Root mean squared error, in the data's unit.
    pub rmse: f64,
    /// Mean absolute percentage error, in percent, over points whose actual
    /// value is not zero (a zero actual has no defined percentage error).
    pub mape: f64,
    /// Points left out of MAPE because the actual value was zero.
    pub mape_skipped: usize,
    /// Share of actual values inside the band, 0–1.
    pub coverage: f64,
}

/// Compares `actual` with `forecast` point by point (same length and order).
pub fn accuracy(actual: &[f64], forecast: &Forecast) -> Accuracy {
    let n = actual.len().min(forecast.len());
    if n == 0 {
        return Accuracy {
            points: 0,
            mae: f64::NAN,
            mse: f64::NAN,
            rmse: f64::NAN,
            mape: f64::NAN,
            mape_skipped: 0,
            coverage: f64::NAN,
        };
    }
    let (mut abs, mut sq, mut pct, mut pct_n, mut inside) = (0.0, 0.0, 0.0, 0usize, 0usize);
    let rows = actual
        .iter()
        .zip(&forecast.yhat)
        .zip(forecast.lower.iter().zip(&forecast.upper));
    for ((&a, &yhat), (&lower, &upper)) in rows.take(n) {
        let e = a - yhat;
        abs += e.abs();
        sq += e * e;
        if a != 0.0 {
            pct += (e / a).abs();
            pct_n += 1;
        }
        if a >= lower && a <= upper {
            inside += 1;
        }
    }
    let nf = n as f64;
    Accuracy {
        points: n,
        mae: abs / nf,
        mse: sq / nf,
        rmse: (sq / nf).sqrt(),
        mape: if pct_n > 0 {
            100.0 * pct / pct_n as f64
        } else {
            f64::NAN
        },
        mape_skipped: n - pct_n,
        coverage: inside as f64 / nf,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_computed_case() {
        let f = Forecast {
            timestamps: vec![0, 1, 2, 3],
            yhat: vec![10.0, 10.0, 10.0, 10.0],
            lower: vec![9.0, 9.0, 9.0, 9.0],
            upper: vec![11.0, 11.0, 11.0, 11.0],
        };
        let a = accuracy(&[10.0, 12.0, 8.0, 0.0], &f);
        assert_eq!(a.points, 4);
        assert!((a.mae - 3.5).abs() < 1e-12); // (0+2+2+10)/4
        assert!((a.mse - 27.0).abs() < 1e-12); // (0+4+4+100)/4
        assert!((a.rmse - 27f64.sqrt()).abs() < 1e-12);
        // MAPE over the three non-zero actuals: (0 + 2/12 + 2/8) / 3.
        assert!((a.mape - 100.0 * (2.0 / 12.0 + 0.25) / 3.0).abs() < 1e-9);
        assert_eq!(a.mape_skipped, 1);
        assert_eq!(a.coverage, 0.25);
    }
}
