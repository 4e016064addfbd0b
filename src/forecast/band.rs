//! Seeded Monte Carlo prediction bands for a fitted Prophet model.
//!
//! augurs' own uncertainty sampling draws from an unseeded thread RNG, so two
//! predictions of the same model differ. This module reproduces Prophet's
//! procedure (Python `sample_predictive_trend` + Gaussian observation noise)
//! with a seeded ChaCha RNG, so a band is a pure function of model, timestamps
//! and seed: a saved and reloaded model gives the same band.
//!
//! Per sample path: future changepoints arrive as a Poisson process with the
//! rate of the fitted ones (S per unit of scaled history), at uniform times
//! after the end of history, each with a Laplace(0, mean|δ|) slope change; the
//! path adds `y_scale · Σ δⱼ (t − cⱼ)₊` to the point forecast, plus N(0, σ·y_scale)
//! noise per point. The band is the per-point quantile pair of the paths.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal, Poisson};

/// Inputs the sampler needs from a fitted model, in Prophet's scaled units.
#[derive(Debug, Clone)]
pub struct BandModel {
    /// Observation noise (scaled).
    pub sigma_obs: f64,
    /// Number of changepoints of the fitted trend.
    pub n_changepoints: usize,
    /// Mean absolute changepoint delta (Laplace scale of future changes).
    pub mean_abs_delta: f64,
    /// Multiplier from scaled to original units.
    pub y_scale: f64,
    /// Probability mass inside the band.
    pub interval_width: f64,
    /// Paths to draw.
    pub samples: u32,
}

/// Draws lower and upper band edges around `yhat` for scaled times `t`
/// (history spans `[0, 1]`).
pub fn sample_band(model: &BandModel, t: &[f64], yhat: &[f64], seed: u64) -> (Vec<f64>, Vec<f64>) {
    let n = t.len();
    let samples = model.samples as usize;
    let sd = model.sigma_obs * model.y_scale;
    if samples == 0 || n == 0 {
        return (yhat.to_vec(), yhat.to_vec());
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let noise =
        Normal::new(0.0, sd.max(0.0)).unwrap_or_else(|_| Normal::new(0.0, 0.0).expect("valid"));
    let t_max = t.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let horizon = (t_max - 1.0).max(0.0);
    let rate = model.n_changepoints as f64 * horizon;
    let lambda = model.mean_abs_delta + 1e-8;

    // paths[i * samples + s]: sample s at point i, so each point's samples are contiguous.
    let mut paths = vec![0.0; n * samples];
    let mut changes: Vec<(f64, f64)> = Vec::new();
    for s in 0..samples {
        changes.clear();
        if rate > 0.0 {
            let k = Poisson::new(rate)
                .map(|p| p.sample(&mut rng))
                .unwrap_or(0.0) as usize;
            for _ in 0..k {
                let c = 1.0 + rng.random::<f64>() * horizon;
                // Laplace(0, λ) as the difference of two exponentials.
                let u: f64 = rng.random::<f64>() - 0.5;
                let delta =
                    -lambda * u.signum() * (1.0 - 2.0 * u.abs()).max(f64::MIN_POSITIVE).ln();
                changes.push((c, delta));
            }
        }
        for i in 0..n {
            let mut dev = 0.0;
            for &(c, d) in &changes {
                if t[i] > c {
                    dev += d * (t[i] - c);
                }
            }
            paths[i * samples + s] = yhat[i] + dev * model.y_scale + noise.sample(&mut rng);
        }
    }
    let lo_q = (1.0 - model.interval_width) / 2.0;
    let hi_q = 1.0 - lo_q;
    let mut lower = Vec::with_capacity(n);
    let mut upper = Vec::with_capacity(n);
    for chunk in paths.chunks_mut(samples) {
        lower.push(quantile(chunk, lo_q));
        upper.push(quantile(chunk, hi_q));
    }
    (lower, upper)
}

/// Linear-interpolated quantile (numpy's default) of `v`; reorders `v`.
fn quantile(v: &mut [f64], q: f64) -> f64 {
    let pos = q * (v.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let frac = pos - lo as f64;
    let (_, a, rest) = v.select_nth_unstable_by(lo, f64::total_cmp);
    let a = *a;
    if frac == 0.0 || rest.is_empty() {
        return a;
    }
    let b = rest.iter().copied().fold(f64::INFINITY, f64::min);
    a + frac * (b - a)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model() -> BandModel {
        BandModel {
            sigma_obs: 0.1,
            n_changepoints: 25,
            mean_abs_delta: 0.05,
            y_scale: 10.0,
            interval_width: 0.95,
            samples: 2000,
        }
    }

    #[test]
    fn in_history_band_is_gaussian_noise_quantile() {
        let t = vec![0.5; 1];
        let (lo, hi) = sample_band(&model(), &t, &[5.0], 1);
        // 1.96 * sigma * y_scale = 1.96; MC error with 2000 samples is a few percent.
        assert!((hi[0] - 5.0 - 1.96).abs() < 0.15, "{}", hi[0]);
        assert!((5.0 - lo[0] - 1.96).abs() < 0.15, "{}", lo[0]);
    }

    #[test]
    fn band_widens_with_horizon_and_is_seeded() {
        let t: Vec<f64> = (0..50).map(|i| 1.0 + i as f64 * 0.01).collect();
        let yhat = vec![5.0; 50];
        let (lo, hi) = sample_band(&model(), &t, &yhat, 7);
        assert!(hi[49] - lo[49] > hi[0] - lo[0]);
        let again = sample_band(&model(), &t, &yhat, 7);
        assert_eq!((lo.clone(), hi.clone()), again);
        let other = sample_band(&model(), &t, &yhat, 8);
        assert_ne!(lo, other.0);
    }

    #[test]
    fn quantile_matches_numpy_linear() {
        let mut v = vec![4.0, 1.0, 3.0, 2.0];
        assert_eq!(quantile(&mut v, 0.5), 2.5);
        assert_eq!(quantile(&mut v, 0.0), 1.0);
        assert_eq!(quantile(&mut v, 1.0), 4.0);
    }
}
