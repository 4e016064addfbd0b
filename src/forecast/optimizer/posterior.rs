//! The negative log-posterior of Prophet's Stan model and its exact gradient.
//!
//! Same model as `prophet.stan` (the file augurs and Python Prophet compile):
//!
//! ```text
//! k ~ normal(0, 5)            m ~ normal(0, 5)
//! delta ~ double_exponential(0, tau)
//! sigma_obs ~ normal(0, 0.5)  beta ~ normal(0, sigmas)
//! y ~ normal(trend .* (1 + X_sm * beta) + X_sa * beta, sigma_obs)
//! ```
//!
//! with a linear, logistic or flat trend. As Stan's `~` statements do, terms
//! that do not depend on the parameters are dropped, so the value matches the
//! objective Stan minimises. Parameters are Stan's unconstrained vector, in
//! Stan's order: `[k, m, delta[S], log(sigma_obs), beta[K]]`; with `jacobian`
//! the log-Jacobian of `sigma_obs = exp(u)` is included, as Stan's optimizer
//! does when asked to.
//!
//! Two ways to evaluate it, same numbers:
//!
//! - Prophet's usual model (linear or flat trend, additive features) is
//!   linear in `θ = [k, m, delta, beta]`: `mu = Z·θ` with
//!   `Z = [t, 1, (t − c_j)₊, X_sa]`. The residual sum of squares is then
//!   `yᵀy − 2θᵀZᵀy + θᵀ(ZᵀZ)θ`; `ZᵀZ` and `Zᵀy` are computed once per fit
//!   (O(T·P²), P = 2 + S + K), after which an evaluation costs O(P²)
//!   whatever the length of the series.
//! - Otherwise (logistic trend, multiplicative features) each evaluation is
//!   O(T·K + S): the changepoint matrix `A` is never built. Row `i` of `A` is
//!   ones up to the number of changepoints at or before `t[i]`, so `A·v` is a
//!   prefix sum of `v` picked per row and `Aᵀ·w` is a suffix sum of
//!   per-segment totals of `w`.

// Index loops read like the formulas they implement.
#![allow(clippy::needless_range_loop)]

use augurs_prophet::optimizer::{Data, TrendIndicator};

use super::gram::{Design, Gram};
pub use super::stan::SIGMA_FLOOR;
use super::stan::{dot, sign, KM_PRIOR_SD, SIGMA_PRIOR_SD};

mod trend;

/// What is wrong with the data handed to the optimizer.
#[derive(Debug, thiserror::Error, PartialEq)]
#[error("invalid Prophet optimizer input: {0}")]
pub struct DataError(String);

impl DataError {
    pub(crate) fn new(message: String) -> Self {
        DataError(message)
    }
}

/// Prophet's negative log-posterior over one fit's data, with buffers for
/// evaluating it. Build once per fit; evaluate many times.
#[derive(Debug)]
pub struct Posterior<'a> {
    t: &'a [f64],
    y: &'a [f64],
    cap: &'a [f64],
    x: &'a [f64],
    t_change: &'a [f64],
    trend_kind: TrendIndicator,
    /// Additive / multiplicative indicator of each feature column.
    s_a: Vec<f64>,
    s_m: Vec<f64>,
    any_multiplicative: bool,
    /// 1 / sigmas² per feature column.
    beta_precision: Vec<f64>,
    tau: f64,
    jacobian: bool,
    /// Changepoints at or before `t[i]` (the ones in row `i` of `A`).
    segment: Vec<usize>,
    /// Sufficient statistics when the mean is linear in the parameters.
    gram: Option<Gram>,
    // Scratch, length T or K or S + 1.
    trend: Vec<f64>,
    mult: Vec<f64>,
    weight: Vec<f64>,
    beta_a: Vec<f64>,
    beta_m: Vec<f64>,
    seg_sum: Vec<f64>,
    seg_sum_t: Vec<f64>,
    prefix: Vec<f64>,
    prefix_off: Vec<f64>,
}

impl<'a> Posterior<'a> {
    /// Checks `data` for consistent sizes and builds the evaluator (with the
    /// O(P²) evaluation when the model allows it).
    pub fn new(data: &'a Data, jacobian: bool) -> Result<Self, DataError> {
        let mut p = Self::direct(data, jacobian)?;
        if p.trend_kind != TrendIndicator::Logistic && !p.any_multiplicative {
            p.gram = Some(Gram::new(&Design {
                t: p.t,
                y: p.y,
                x: p.x,
                t_change: p.t_change,
                s_a: &p.s_a,
                segment: &p.segment,
                linear: p.trend_kind == TrendIndicator::Linear,
            }));
        }
        Ok(p)
    }

    /// Like [`Posterior::new`], always evaluating over the data (O(T·K) per
    /// evaluation). For testing one path against the other.
    pub fn direct(data: &'a Data, jacobian: bool) -> Result<Self, DataError> {
        let n = usize::try_from(data.T).map_err(|_| DataError(format!("T = {}", data.T)))?;
        let k = usize::try_from(data.K).map_err(|_| DataError(format!("K = {}", data.K)))?;
        let s = usize::try_from(data.S).map_err(|_| DataError(format!("S = {}", data.S)))?;
        let check = |name: &str, got: usize, want: usize| {
            if got == want {
                Ok(())
            } else {
                Err(DataError(format!(
                    "{name} has {got} values, expected {want}"
                )))
            }
        };
        check("y", data.y.len(), n)?;
        check("t", data.t.len(), n)?;
        check("cap", data.cap.len(), n)?;
        check("X", data.X.len(), n * k)?;
        check("t_change", data.t_change.len(), s)?;
        check("s_a", data.s_a.len(), k)?;
        check("s_m", data.s_m.len(), k)?;
        check("sigmas", data.sigmas.len(), k)?;
        if n == 0 {
            return Err(DataError("no observations".into()));
        }
        if data.t_change.windows(2).any(|w| w[1] < w[0]) {
            return Err(DataError("changepoint times are not sorted".into()));
        }
        // prophet.stan builds its changepoint matrix assuming sorted times.
        if data.t.windows(2).any(|w| w[1] < w[0]) {
            return Err(DataError("times are not sorted".into()));
        }
        let segment = data
            .t
            .iter()
            .map(|&ti| data.t_change.partition_point(|&c| c <= ti))
            .collect();
        let s_a: Vec<f64> = data.s_a.iter().map(|&v| f64::from(v)).collect();
        let s_m: Vec<f64> = data.s_m.iter().map(|&v| f64::from(v)).collect();
        let any_multiplicative = s_m.iter().any(|&v| v != 0.0);
        Ok(Posterior {
            t: &data.t,
            y: &data.y,
            cap: &data.cap,
            x: &data.X,
            t_change: &data.t_change,
            trend_kind: data.trend_indicator,
            s_a,
            s_m,
            any_multiplicative,
            beta_precision: data.sigmas.iter().map(|s| 1.0 / (**s * **s)).collect(),
            tau: *data.tau,
            jacobian,
            segment,
            gram: None,
            trend: vec![0.0; n],
            mult: vec![0.0; if any_multiplicative { n } else { 0 }],
            weight: vec![0.0; n],
            beta_a: vec![0.0; k],
            beta_m: vec![0.0; k],
            seg_sum: vec![0.0; s + 1],
            seg_sum_t: vec![0.0; s + 1],
            prefix: vec![0.0; s + 1],
            prefix_off: vec![0.0; s + 1],
        })
    }

    /// Number of unconstrained parameters: `2 + S + 1 + K`.
    pub fn dim(&self) -> usize {
        3 + self.t_change.len() + self.s_a.len()
    }

    fn n_changepoints(&self) -> usize {
        self.t_change.len()
    }

    /// Index of `log(sigma_obs)` in the parameter vector.
    pub fn sigma_index(&self) -> usize {
        2 + self.n_changepoints()
    }

    /// The trend at every observation for parameters `x` (scaled units).
    pub fn trend(&mut self, x: &[f64]) -> Vec<f64> {
        self.fill_trend(x);
        self.trend.clone()
    }

    /// Negative log-posterior at `x` (Stan's objective, constants dropped).
    pub fn value(&mut self, x: &[f64]) -> f64 {
        let mut g = vec![0.0; x.len()];
        self.value_and_gradient(x, &mut g)
    }

    /// Negative log-posterior at `x`; its gradient goes into `grad`.
    /// Non-finite values (e.g. a logistic rate crossing zero) come back as
    /// they are, for the line search to step back from.
    pub fn value_and_gradient(&mut self, x: &[f64], grad: &mut [f64]) -> f64 {
        self.evaluate(x, grad, true)
    }

    /// Like [`Posterior::value_and_gradient`] without the Laplace prior on
    /// `delta`, the non-smooth part: `value = smooth + l1_weight · Σ|delta|`.
    pub fn smooth_value_and_gradient(&mut self, x: &[f64], grad: &mut [f64]) -> f64 {
        self.evaluate(x, grad, false)
    }

    /// Weight of `Σ|delta|` in the objective (`1 / tau`).
    pub fn l1_weight(&self) -> f64 {
        1.0 / self.tau
    }

    /// The exact optimum from `x0` when the mean is linear in the
    /// parameters (linear or flat trend, additive features): see
    /// `Gram::solve`. `None` for other models, or if the solve failed.
    /// The flag says whether it settled (else polish iteratively).
    pub fn solve_exact(&self, x0: &[f64]) -> Option<(Vec<f64>, usize, bool)> {
        self.gram.as_ref()?.solve(
            x0,
            self.n_changepoints(),
            &self.beta_precision,
            self.l1_weight(),
            self.t.len(),
            self.jacobian,
        )
    }

    /// Where `delta` sits in the parameter vector.
    pub fn delta_range(&self) -> std::ops::Range<usize> {
        2..2 + self.n_changepoints()
    }

    fn evaluate(&mut self, x: &[f64], grad: &mut [f64], l1: bool) -> f64 {
        let tau = if l1 { Some(self.tau) } else { None };
        debug_assert_eq!(x.len(), self.dim());
        debug_assert_eq!(grad.len(), self.dim());
        let s = self.n_changepoints();
        let kk = self.s_a.len();
        let n = self.t.len();
        let sigma = x[2 + s].exp();
        let beta = &x[3 + s..];

        if let Some(mut gram) = self.gram.take() {
            let rss = gram.data_gradient(x, grad, s);
            self.gram = Some(gram);
            return self.finish(x, rss, tau, grad);
        }

        self.fill_trend(x);

        // Seasonal/regressor parts and residuals.
        for j in 0..kk {
            self.beta_a[j] = beta[j] * self.s_a[j];
            self.beta_m[j] = beta[j] * self.s_m[j];
        }
        let inv_var = 1.0 / (sigma * sigma);
        let mut rss = 0.0;
        for i in 0..n {
            let row = &self.x[i * kk..(i + 1) * kk];
            let additive = dot(row, &self.beta_a);
            let mu = if self.any_multiplicative {
                let m = dot(row, &self.beta_m);
                self.mult[i] = m;
                self.trend[i] * (1.0 + m) + additive
            } else {
                self.trend[i] + additive
            };
            let r = self.y[i] - mu;
            rss += r * r;
            // d objective / d mu
            self.weight[i] = -r * inv_var;
        }

        // Gradient: beta (data part), then trend parameters.
        grad.iter_mut().for_each(|g| *g = 0.0);
        {
            let g_beta = &mut grad[3 + s..];
            for i in 0..n {
                let row = &self.x[i * kk..(i + 1) * kk];
                let w = self.weight[i];
                if self.any_multiplicative {
                    let wm = w * self.trend[i];
                    for j in 0..kk {
                        g_beta[j] += row[j] * (w * self.s_a[j] + wm * self.s_m[j]);
                    }
                } else {
                    for j in 0..kk {
                        g_beta[j] += row[j] * w;
                    }
                }
            }
            if !self.any_multiplicative {
                for j in 0..kk {
                    g_beta[j] *= self.s_a[j];
                }
            }
        }
        // d objective / d trend, in place of the weights.
        if self.any_multiplicative {
            for i in 0..n {
                self.weight[i] *= 1.0 + self.mult[i];
            }
        }
        self.trend_gradient(x, grad);
        self.finish(x, rss, tau, grad)
    }

    /// Completes an evaluation from the residual sum of squares, given the
    /// data part of the gradient of `k, m, delta, beta` already in `grad`:
    /// returns the objective (priors + likelihood) and adds the priors'
    /// gradient; the `log(sigma)` entry is written whole. Shared by the
    /// direct and the sufficient-statistics evaluation.
    pub(super) fn finish(&self, x: &[f64], rss: f64, tau: Option<f64>, grad: &mut [f64]) -> f64 {
        let s = self.n_changepoints();
        let n = self.t.len() as f64;
        let (rate, offset) = (x[0], x[1]);
        let delta = &x[2..2 + s];
        let u = x[2 + s];
        let sigma = u.exp();
        let inv_var = 1.0 / (sigma * sigma);
        let beta = &x[3 + s..];
        let jacobian = if self.jacobian { 1.0 } else { 0.0 };

        let km = 1.0 / (KM_PRIOR_SD * KM_PRIOR_SD);
        let mut f = 0.5 * (rate * rate + offset * offset) * km;
        grad[0] += rate * km;
        grad[1] += offset * km;
        if let Some(tau) = tau {
            f += delta.iter().map(|d| d.abs()).sum::<f64>() / tau;
            for (g, d) in grad[2..2 + s].iter_mut().zip(delta) {
                *g += sign(*d) / tau;
            }
        }
        for ((g, b), p) in grad[3 + s..].iter_mut().zip(beta).zip(&self.beta_precision) {
            f += 0.5 * b * b * p;
            *g += b * p;
        }
        // sigma: 2σ² + T·u + RSS/(2σ²) [− u], and d/du of it.
        let sigma_precision = 1.0 / (SIGMA_PRIOR_SD * SIGMA_PRIOR_SD);
        f += 0.5 * sigma * sigma * sigma_precision + (n - jacobian) * u + 0.5 * rss * inv_var;
        grad[2 + s] = sigma * sigma * sigma_precision + n - jacobian - rss * inv_var;
        f
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use augurs_prophet::PositiveFloat;
    use rand::{Rng, SeedableRng};

    /// A random problem: `n` points, 8 changepoints, 6 feature columns of
    /// which those in `multiplicative` are multiplicative.
    fn problem(trend: TrendIndicator, multiplicative: &[usize], seed: u64) -> Data {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let n = 300;
        let k = 6;
        let t: Vec<f64> = (0..n).map(|i| i as f64 / (n - 1) as f64).collect();
        let x: Vec<f64> = (0..n * k).map(|_| rng.random_range(-1.0..1.0)).collect();
        let y: Vec<f64> = (0..n).map(|_| rng.random_range(0.2..0.9)).collect();
        let s_m: Vec<i32> = (0..k)
            .map(|j| i32::from(multiplicative.contains(&j)))
            .collect();
        Data {
            T: n as i32,
            y,
            t,
            cap: vec![1.2; n],
            S: 8,
            t_change: (1..=8).map(|j| j as f64 / 10.0).collect(),
            trend_indicator: trend,
            K: k as i32,
            s_a: s_m.iter().map(|m| 1 - m).collect(),
            s_m,
            X: x,
            sigmas: (0..k)
                .map(|j| PositiveFloat::try_new(1.0 + j as f64).unwrap())
                .collect(),
            tau: PositiveFloat::try_new(0.05).unwrap(),
        }
    }

    fn params(dim: usize, s: usize, seed: u64) -> Vec<f64> {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let mut x: Vec<f64> = (0..dim).map(|_| rng.random_range(-0.5..0.5)).collect();
        // A positive rate that stays positive (logistic), deltas away from
        // the kink of |δ|, a plausible noise level.
        x[0] = 3.0;
        for d in &mut x[2..2 + s] {
            *d = d.signum() * (0.05 + d.abs() * 0.4);
        }
        x[2 + s] = -2.0;
        x
    }

    fn check_gradient(data: &Data, jacobian: bool) {
        let mut post = Posterior::new(data, jacobian).unwrap();
        let s = data.t_change.len();
        for seed in 0..3 {
            let x = params(post.dim(), s, seed);
            let mut g = vec![0.0; x.len()];
            let f = post.value_and_gradient(&x, &mut g);
            assert!(f.is_finite());
            for i in 0..x.len() {
                let h = 1e-6 * x[i].abs().max(1.0);
                let (mut up, mut down) = (x.clone(), x.clone());
                up[i] += h;
                down[i] -= h;
                let numeric = (post.value(&up) - post.value(&down)) / (2.0 * h);
                let tol = 1e-6 * numeric.abs().max(g[i].abs()).max(1.0);
                assert!(
                    (numeric - g[i]).abs() <= tol,
                    "{:?} parameter {i}: analytic {} numeric {numeric}",
                    data.trend_indicator,
                    g[i]
                );
            }
        }
    }

    #[test]
    fn gradient_matches_finite_differences_linear() {
        check_gradient(&problem(TrendIndicator::Linear, &[], 1), false);
        check_gradient(&problem(TrendIndicator::Linear, &[], 2), true);
    }

    #[test]
    fn gradient_matches_finite_differences_multiplicative() {
        check_gradient(&problem(TrendIndicator::Linear, &[1, 4], 3), true);
        check_gradient(&problem(TrendIndicator::Logistic, &[0, 5], 4), false);
    }

    #[test]
    fn gradient_matches_finite_differences_logistic() {
        check_gradient(&problem(TrendIndicator::Logistic, &[], 5), true);
    }

    #[test]
    fn gradient_matches_finite_differences_flat() {
        check_gradient(&problem(TrendIndicator::Flat, &[], 6), false);
        check_gradient(&problem(TrendIndicator::Flat, &[2], 7), true);
    }

    /// The value against a direct transcription of `prophet.stan`, with the
    /// changepoint matrix built explicitly.
    #[test]
    fn value_matches_the_stan_model_written_out() {
        for (trend, mult, jac) in [
            (TrendIndicator::Linear, vec![], false),
            (TrendIndicator::Logistic, vec![3], true),
            (TrendIndicator::Flat, vec![0, 1], false),
        ] {
            let data = problem(trend, &mult, 11);
            let mut post = Posterior::new(&data, jac).unwrap();
            let x = params(post.dim(), 8, 12);
            let (n, k, s) = (300, 6, 8);
            let (kr, m) = (x[0], x[1]);
            let delta = &x[2..2 + s];
            let sigma = x[2 + s].exp();
            let beta = &x[3 + s..];
            let a = |i: usize, j: usize| f64::from(u8::from(data.t[i] >= data.t_change[j]));
            // gamma as prophet.stan's logistic_gamma computes it.
            let mut k_s = vec![kr];
            for d in delta {
                k_s.push(k_s.last().unwrap() + d);
            }
            let mut gamma = vec![0.0; s];
            let mut m_pr = m;
            for i in 0..s {
                gamma[i] = (data.t_change[i] - m_pr) * (1.0 - k_s[i] / k_s[i + 1]);
                m_pr += gamma[i];
            }
            let mut lp = -(kr * kr) / 50.0 - (m * m) / 50.0;
            lp -= delta.iter().map(|d| d.abs() / 0.05).sum::<f64>();
            lp -= sigma * sigma / (2.0 * 0.25);
            for j in 0..k {
                let sd = 1.0 + j as f64;
                lp -= beta[j] * beta[j] / (2.0 * sd * sd);
            }
            for i in 0..n {
                let ad: f64 = (0..s).map(|j| a(i, j) * delta[j]).sum();
                let trend_i = match trend {
                    TrendIndicator::Linear => {
                        let off: f64 = (0..s).map(|j| a(i, j) * -data.t_change[j] * delta[j]).sum();
                        (kr + ad) * data.t[i] + (m + off)
                    }
                    TrendIndicator::Logistic => {
                        let ag: f64 = (0..s).map(|j| a(i, j) * gamma[j]).sum();
                        data.cap[i] / (1.0 + (-(kr + ad) * (data.t[i] - (m + ag))).exp())
                    }
                    TrendIndicator::Flat => m,
                };
                let row = &data.X[i * k..(i + 1) * k];
                let xsa: f64 = (0..k).map(|j| row[j] * data.s_a[j] as f64 * beta[j]).sum();
                let xsm: f64 = (0..k).map(|j| row[j] * data.s_m[j] as f64 * beta[j]).sum();
                let mu = trend_i * (1.0 + xsm) + xsa;
                let r = data.y[i] - mu;
                lp -= sigma.ln() + r * r / (2.0 * sigma * sigma);
            }
            if jac {
                lp += sigma.ln();
            }
            let f = post.value(&x);
            assert!(
                (f + lp).abs() <= 1e-9 * lp.abs().max(1.0),
                "{trend:?}: {f} vs {}",
                -lp
            );
        }
    }

    /// The sufficient-statistics evaluation gives the direct one's numbers.
    #[test]
    fn gram_evaluation_matches_direct_evaluation() {
        for (trend, jac) in [
            (TrendIndicator::Linear, false),
            (TrendIndicator::Flat, true),
        ] {
            let mut data = problem(trend, &[], 21);
            // A zero-indicator column (neither additive nor multiplicative).
            data.s_a[2] = 0;
            let mut fast = Posterior::new(&data, jac).unwrap();
            assert!(fast.gram.is_some());
            let mut slow = Posterior::direct(&data, jac).unwrap();
            for seed in 0..3 {
                let x = params(fast.dim(), 8, seed);
                let (mut g1, mut g2) = (vec![0.0; x.len()], vec![0.0; x.len()]);
                let f1 = fast.value_and_gradient(&x, &mut g1);
                let f2 = slow.value_and_gradient(&x, &mut g2);
                assert!((f1 - f2).abs() <= 1e-9 * f2.abs().max(1.0), "{f1} vs {f2}");
                for (i, (a, b)) in g1.iter().zip(&g2).enumerate() {
                    assert!(
                        (a - b).abs() <= 1e-8 * b.abs().max(1.0),
                        "{trend:?} {i}: {a} vs {b}"
                    );
                }
            }
        }
        let data = problem(TrendIndicator::Linear, &[1], 1);
        assert!(Posterior::new(&data, false).unwrap().gram.is_none());
    }

    /// The exact solve meets the optimality conditions of the penalised
    /// problem, and no iterative run from there or from the start does better.
    #[test]
    fn exact_solution_is_optimal() {
        for (trend, tau, jac, seed) in [
            (TrendIndicator::Linear, 0.05, false, 31),
            (TrendIndicator::Linear, 5.0, true, 32),
            (TrendIndicator::Flat, 0.05, true, 33),
        ] {
            let mut data = problem(trend, &[], seed);
            data.tau = PositiveFloat::try_new(tau).unwrap();
            // Some signal for the trend to follow: a kink at t = 0.5.
            for (y, t) in data.y.iter_mut().zip(&data.t) {
                *y += 0.8 * (t - 0.5).max(0.0);
            }
            let mut post = Posterior::new(&data, jac).unwrap();
            let mut x0 = vec![0.0; post.dim()];
            x0[post.sigma_index()] = 0.0;
            let (x, _, settled) = post.solve_exact(&x0).expect("solvable");
            assert!(settled);
            let mut g = vec![0.0; x.len()];
            post.smooth_value_and_gradient(&x, &mut g);
            let lambda = post.l1_weight();
            let deltas = post.delta_range();
            let mut nonzero = 0;
            for i in 0..x.len() {
                let residual = if deltas.contains(&i) {
                    if x[i] == 0.0 {
                        (g[i].abs() - lambda).max(0.0)
                    } else {
                        nonzero += 1;
                        (g[i] + lambda * x[i].signum()).abs()
                    }
                } else {
                    g[i].abs()
                };
                assert!(
                    residual < 1e-7,
                    "{trend:?} tau {tau}: coordinate {i} residual {residual}"
                );
            }
            if trend == TrendIndicator::Linear && tau > 1.0 {
                assert!(nonzero > 0, "a weak prior keeps some changepoints");
            }
            let f_exact = post.value(&x);
            let l1 = super::super::lbfgs::L1 {
                range: deltas,
                weight: lambda,
            };
            let settings = super::super::lbfgs::Settings::default();
            for start in [&x0, &x] {
                let m = super::super::lbfgs::minimize(
                    |x, g| post.smooth_value_and_gradient(x, g),
                    start,
                    &l1,
                    &settings,
                )
                .unwrap();
                assert!(
                    f_exact <= m.value + 1e-9 * m.value.abs(),
                    "{trend:?}: exact {f_exact} vs OWL-QN {}",
                    m.value
                );
            }
        }
    }

    #[test]
    fn rejects_inconsistent_sizes() {
        let mut data = problem(TrendIndicator::Linear, &[], 1);
        data.X.pop();
        let err = Posterior::new(&data, false).unwrap_err();
        assert!(
            err.to_string().contains("X has 1799 values, expected 1800"),
            "{err}"
        );
    }
}
