//! Version 1 model files, which held the training history next to the
//! parameters (with the feature columns identified by their values at a
//! few rows). Loading one replays augurs' preprocessing of that history
//! with an "optimizer" that returns the stored parameters, and reads the
//! version 2 parameters off the replay.

use augurs_prophet::optimizer::{InitialParams, OptimizeOpts, OptimizedParams};
use serde::Deserialize;

use super::super::{settings::ProphetSettings, History};
use crate::dataset::Unit;

/// Rows sampled from each feature column to identify it (version 1).
const SIGNATURE_ROWS: usize = 16;

/// Fitted parameters as version 1 stored them (Prophet's scaled units).
#[derive(Debug, Clone, Deserialize)]
pub(super) struct StoredParamsV1 {
    k: f64,
    m: f64,
    sigma_obs: f64,
    delta: Vec<f64>,
    beta: Vec<f64>,
    trend: Vec<f64>,
}

/// A version 1 model file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct StoredModelV1 {
    #[allow(dead_code)]
    format: String,
    #[allow(dead_code)]
    version: u32,
    pub settings: ProphetSettings,
    pub unit: Unit,
    pub seed: u64,
    pub history: History,
    params: StoredParamsV1,
    #[allow(dead_code)]
    t_change: Vec<f64>,
    beta_columns: Vec<Vec<f64>>,
}

/// Identifies each feature column of `X` by its values at a few rows.
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

/// An "optimizer" that returns the stored parameters, with the betas put in
/// this instance's feature-column order by signature.
#[derive(Debug, Clone)]
pub(super) struct Fixed {
    params: OptimizedParams,
    signatures: Vec<Vec<f64>>,
}

impl From<&StoredModelV1> for Fixed {
    fn from(m: &StoredModelV1) -> Self {
        let p = &m.params;
        Fixed {
            params: OptimizedParams {
                k: p.k,
                m: p.m,
                sigma_obs: augurs_prophet::PositiveFloat::try_new(p.sigma_obs.max(1e-12))
                    .unwrap_or_else(|_| {
                        augurs_prophet::PositiveFloat::try_new(1e-12).expect("positive")
                    }),
                delta: p.delta.clone(),
                beta: p.beta.clone(),
                trend: p.trend.clone(),
            },
            signatures: m.beta_columns.clone(),
        }
    }
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
