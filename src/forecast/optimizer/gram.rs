//! Sufficient statistics of Prophet's usual model (linear or flat trend,
//! additive features), where the mean is linear in the parameters, and the
//! exact MAP solver they allow.

// Index loops read like the formulas they implement.
#![allow(clippy::needless_range_loop)]

use super::stan::{dot, sign, KM_PRIOR_SD, SIGMA_FLOOR};

/// The parts of one fit's data the statistics are built from (scaled, as
/// the posterior holds them).
#[derive(Debug, Clone, Copy)]
pub(super) struct Design<'a> {
    /// Times, `T`.
    pub t: &'a [f64],
    /// Values, `T`.
    pub y: &'a [f64],
    /// Features, `T × K` row-major.
    pub x: &'a [f64],
    /// Changepoint times, `S`.
    pub t_change: &'a [f64],
    /// Additive indicator per feature, `K`.
    pub s_a: &'a [f64],
    /// Changepoints at or before each `t[i]`, `T`.
    pub segment: &'a [usize],
    /// A linear trend (else flat: the `t` and changepoint columns are zero).
    pub linear: bool,
}

/// `ZᵀZ`, `Zᵀy` and `yᵀy` for `Z = [t, 1, (t − c_j)₊, X_sa]`, the design
/// matrix of a linear (or flat: `t` and the changepoint columns are zero)
/// trend with additive features; parameters `θ = [k, m, delta, beta]`.
#[derive(Debug)]
pub(super) struct Gram {
    /// P × P, row-major, symmetric.
    zz: Vec<f64>,
    zy: Vec<f64>,
    yy: f64,
    theta: Vec<f64>,
    z_theta: Vec<f64>,
}

impl Gram {
    pub(super) fn new(p: &Design<'_>) -> Self {
        let n = p.t.len();
        let s = p.t_change.len();
        let k = p.s_a.len();
        let dim = 2 + s + k;
        let linear = p.linear;
        // Column-major Z, each column from its first non-zero row (the
        // changepoint columns are zero before their changepoint when t is
        // sorted, which augurs guarantees; otherwise from row 0).
        let sorted = p.t.windows(2).all(|w| w[0] <= w[1]);
        let mut cols = vec![0.0; dim * n];
        let mut start = vec![0usize; dim];
        for i in 0..n {
            cols[i] = if linear { p.t[i] } else { 0.0 };
            cols[n + i] = 1.0;
            for j in 0..k {
                cols[(2 + s + j) * n + i] = p.x[i * k + j] * p.s_a[j];
            }
        }
        if linear {
            for j in 0..s {
                let col = &mut cols[(2 + j) * n..(3 + j) * n];
                for i in 0..n {
                    if p.segment[i] > j {
                        col[i] = p.t[i] - p.t_change[j];
                    }
                }
                if sorted {
                    start[2 + j] = p.segment.partition_point(|&seg| seg <= j);
                }
            }
        } else if sorted {
            for j in 0..s {
                start[2 + j] = n;
            }
        }
        let mut zz = vec![0.0; dim * dim];
        for a in 0..dim {
            let ca = &cols[a * n..(a + 1) * n];
            for b in a..dim {
                let from = start[a].max(start[b]);
                let cb = &cols[b * n..(b + 1) * n];
                let v = dot(&ca[from..], &cb[from..]);
                zz[a * dim + b] = v;
                zz[b * dim + a] = v;
            }
        }
        let zy = (0..dim)
            .map(|a| dot(&cols[a * n + start[a]..(a + 1) * n], &p.y[start[a]..]))
            .collect();
        Gram {
            zz,
            zy,
            yy: dot(p.y, p.y),
            theta: vec![0.0; dim],
            z_theta: vec![0.0; dim],
        }
    }

    /// The residual sum of squares at `x`, with its gradient over
    /// `2σ²` (the data part of the gradient of `k, m, delta, beta`) written
    /// into `grad`; `s` changepoints.
    pub(super) fn data_gradient(&mut self, x: &[f64], grad: &mut [f64], s: usize) -> f64 {
        let dim = self.theta.len();
        // θ = x without log(sigma).
        self.theta[..2 + s].copy_from_slice(&x[..2 + s]);
        self.theta[2 + s..].copy_from_slice(&x[3 + s..]);
        for a in 0..dim {
            self.z_theta[a] = dot(&self.zz[a * dim..(a + 1) * dim], &self.theta);
        }
        // RSS = yᵀy − 2θᵀZᵀy + θᵀZᵀZθ, ∇ = 2(ZᵀZθ − Zᵀy). Clamped: rounding
        // must not make a perfect fit better than perfect.
        let rss =
            (self.yy - 2.0 * dot(&self.theta, &self.zy) + dot(&self.theta, &self.z_theta)).max(0.0);
        let inv_var = (-2.0 * x[2 + s]).exp();
        for a in 0..dim {
            let at = if a < 2 + s { a } else { a + 1 };
            grad[at] = (self.z_theta[a] - self.zy[a]) * inv_var;
        }
        rss
    }
}

/// Largest sweeps of the alternation between the coefficients and the noise.
const MAX_OUTER: usize = 200;

impl Gram {
    /// The exact MAP of the model these statistics describe, from `x0`
    /// (Stan's parameter layout). Returns the point reached, the number of
    /// coefficient/noise alternations and whether the noise settled (if not,
    /// after [`MAX_OUTER`] rounds, the caller polishes with OWL-QN), or
    /// `None` if a linear system could not be solved (then the caller uses
    /// OWL-QN from the start).
    ///
    /// For a fixed noise level `sigma`, the objective in
    /// `θ = [k, m, delta, beta]` is a quadratic plus `Σ|delta| / tau`: a
    /// lasso problem in a few dozen unknowns, solved exactly by feature-sign
    /// search (Lee et al. 2007: solve the quadratic on the current sign
    /// pattern, step to the best point where a sign changes, add the zero
    /// coordinate that most violates optimality, repeat). For a fixed `θ`,
    /// the best `sigma² = (−(T − j) + √((T − j)² + 16·RSS)) / 8` in closed
    /// form (`j = 1` with the Jacobian; computed as
    /// `2·RSS / ((T − j) + √((T − j)² + 16·RSS))`, which does not cancel),
    /// floored at [`SIGMA_FLOOR`]² for a perfect fit (a constant series),
    /// where the posterior has no maximum. Alternating the two never
    /// increases the objective and stops when `log(sigma)` settles to 1e-13.
    pub(super) fn solve(
        &self,
        x0: &[f64],
        s: usize,
        beta_precision: &[f64],
        l1_weight: f64,
        n: usize,
        jacobian: bool,
    ) -> Option<(Vec<f64>, usize, bool)> {
        let dim = self.zy.len();
        let mut theta = Vec::with_capacity(dim);
        theta.extend_from_slice(&x0[..2 + s]);
        theta.extend_from_slice(&x0[3 + s..]);
        // Sign-consistent start: the lasso keeps zeros where they are.
        let mut prior = vec![0.0; dim];
        prior[0] = 1.0 / (KM_PRIOR_SD * KM_PRIOR_SD);
        prior[1] = prior[0];
        prior[2 + s..].copy_from_slice(beta_precision);
        let n_eff = n as f64 - if jacobian { 1.0 } else { 0.0 };
        let mut u = x0[2 + s];
        let mut h = vec![0.0; dim * dim];
        let mut c = vec![0.0; dim];
        let mut outer = 0;
        let settled = loop {
            outer += 1;
            let w = (-2.0 * u).exp();
            for a in 0..dim {
                for b in 0..dim {
                    h[a * dim + b] = w * self.zz[a * dim + b];
                }
                h[a * dim + a] += prior[a];
                c[a] = w * self.zy[a];
            }
            lasso(&h, &c, 2..2 + s, l1_weight, &mut theta)?;
            let mut z_theta = vec![0.0; dim];
            for a in 0..dim {
                z_theta[a] = dot(&self.zz[a * dim..(a + 1) * dim], &theta);
            }
            let rss = (self.yy - 2.0 * dot(&theta, &self.zy) + dot(&theta, &z_theta)).max(0.0);
            let var = 2.0 * rss / (n_eff + (n_eff * n_eff + 16.0 * rss).sqrt());
            let var = var.max(SIGMA_FLOOR * SIGMA_FLOOR);
            if !var.is_finite() {
                return None;
            }
            let u_new = 0.5 * var.ln();
            let settled = (u_new - u).abs() < 1e-13;
            u = u_new;
            if settled || outer >= MAX_OUTER {
                break settled;
            }
        };
        let mut x = Vec::with_capacity(x0.len());
        x.extend_from_slice(&theta[..2 + s]);
        x.push(u);
        x.extend_from_slice(&theta[2 + s..]);
        Some((x, outer, settled))
    }
}

/// Minimises `½θᵀHθ − cᵀθ + λ·Σ_{j∈l1}|θ_j|` (H symmetric positive definite
/// on the coordinates that end up non-zero) by feature-sign search, starting
/// from `theta`. `None` if a system is singular or the search does not
/// finish.
fn lasso(
    h: &[f64],
    c: &[f64],
    l1: std::ops::Range<usize>,
    lambda: f64,
    theta: &mut [f64],
) -> Option<()> {
    let dim = c.len();
    let penalised = |j: usize| l1.contains(&j);
    let objective = |th: &[f64]| {
        let mut q = 0.0;
        for a in 0..dim {
            q += th[a] * (0.5 * dot(&h[a * dim..(a + 1) * dim], th) - c[a]);
        }
        q + lambda * th[l1.clone()].iter().map(|v| v.abs()).sum::<f64>()
    };
    // Active: free coordinates plus non-zero penalised ones, with their signs.
    let mut active: Vec<bool> = (0..dim).map(|j| !penalised(j) || theta[j] != 0.0).collect();
    let mut signs: Vec<f64> = (0..dim)
        .map(|j| if penalised(j) { sign(theta[j]) } else { 0.0 })
        .collect();
    let mut target = vec![0.0; dim];
    for _ in 0..20 * dim + 100 {
        // Solve the quadratic on the active set with the current signs.
        let idx: Vec<usize> = (0..dim).filter(|&j| active[j]).collect();
        let m = idx.len();
        let mut sub = vec![0.0; m * m];
        let mut rhs = vec![0.0; m];
        for (a, &i) in idx.iter().enumerate() {
            for (b, &j) in idx.iter().enumerate() {
                sub[a * m + b] = h[i * dim + j];
            }
            rhs[a] = c[i] - lambda * signs[i];
        }
        cholesky_solve(&mut sub, &mut rhs, m)?;
        target.iter_mut().for_each(|v| *v = 0.0);
        for (a, &i) in idx.iter().enumerate() {
            target[i] = rhs[a];
        }
        let consistent = idx
            .iter()
            .all(|&i| !penalised(i) || sign(target[i]) == signs[i]);
        if consistent {
            theta.copy_from_slice(&target);
        } else {
            // Best of the target and the points where a coordinate hits zero.
            let mut best_t = 1.0;
            let mut best_q = objective(&target);
            let mut point = vec![0.0; dim];
            for &i in &idx {
                if penalised(i) && theta[i] != 0.0 && sign(target[i]) != sign(theta[i]) {
                    let t = theta[i] / (theta[i] - target[i]);
                    if t > 0.0 && t < 1.0 {
                        for j in 0..dim {
                            point[j] = theta[j] + t * (target[j] - theta[j]);
                        }
                        point[i] = 0.0;
                        let q = objective(&point);
                        if q < best_q {
                            best_q = q;
                            best_t = t;
                        }
                    }
                }
            }
            let start = theta.to_vec();
            for j in 0..dim {
                theta[j] = start[j] + best_t * (target[j] - start[j]);
                if penalised(j) && start[j] != 0.0 && sign(target[j]) != sign(start[j]) {
                    let t = start[j] / (start[j] - target[j]);
                    if (t - best_t).abs() <= 1e-15 {
                        theta[j] = 0.0;
                    }
                }
            }
            for j in l1.clone() {
                if theta[j] == 0.0 {
                    active[j] = false;
                    signs[j] = 0.0;
                } else {
                    signs[j] = sign(theta[j]);
                }
            }
            continue;
        }
        // Optimal on this sign pattern: does a zero coordinate want to move?
        let mut worst: Option<(usize, f64)> = None;
        for j in l1.clone() {
            if active[j] {
                continue;
            }
            let h_theta = dot(&h[j * dim..(j + 1) * dim], theta);
            let g = h_theta - c[j];
            let excess = g.abs() - lambda;
            // Relative to the terms g is the difference of, so rounding
            // cannot switch a coordinate on and off forever.
            let tolerance = 1e-10 * (h_theta.abs() + c[j].abs() + lambda);
            if excess > tolerance && worst.map_or(true, |(_, e)| excess > e) {
                worst = Some((j, excess));
            }
        }
        let Some((j, _)) = worst else {
            return Some(());
        };
        let g = dot(&h[j * dim..(j + 1) * dim], theta) - c[j];
        active[j] = true;
        signs[j] = -sign(g);
    }
    None
}

/// Solves `A·x = b` in place (`b` becomes `x`) for symmetric positive
/// definite `A` (m × m, row-major, overwritten by its Cholesky factor).
fn cholesky_solve(a: &mut [f64], b: &mut [f64], m: usize) -> Option<()> {
    for j in 0..m {
        let mut d = a[j * m + j];
        for k in 0..j {
            d -= a[j * m + k] * a[j * m + k];
        }
        if !(d > 0.0 && d.is_finite()) {
            return None;
        }
        let d = d.sqrt();
        a[j * m + j] = d;
        for i in j + 1..m {
            let mut v = a[i * m + j];
            for k in 0..j {
                v -= a[i * m + k] * a[j * m + k];
            }
            a[i * m + j] = v / d;
        }
    }
    for i in 0..m {
        let mut v = b[i];
        for k in 0..i {
            v -= a[i * m + k] * b[k];
        }
        b[i] = v / a[i * m + i];
    }
    for i in (0..m).rev() {
        let mut v = b[i];
        for k in i + 1..m {
            v -= a[k * m + i] * b[k];
        }
        b[i] = v / a[i * m + i];
    }
    Some(())
}
