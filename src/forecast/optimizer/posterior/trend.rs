//! The three trends of `prophet.stan` (linear, logistic, flat) at every
//! observation, and the reverse pass from d objective / d trend to the
//! gradient of `k`, `m` and `delta`.

// Index loops read like the formulas they implement.
#![allow(clippy::needless_range_loop)]

use augurs_prophet::optimizer::TrendIndicator;

use super::Posterior;

impl Posterior<'_> {
    /// Fills `self.trend` for parameters `x`.
    pub(super) fn fill_trend(&mut self, x: &[f64]) {
        let s = self.n_changepoints();
        let (rate, offset) = (x[0], x[1]);
        let delta = &x[2..2 + s];
        match self.trend_kind {
            TrendIndicator::Flat => self.trend.iter_mut().for_each(|v| *v = offset),
            TrendIndicator::Linear => {
                // prefix[j]: rate after j changepoints; prefix_off[j]: offset.
                self.prefix[0] = rate;
                self.prefix_off[0] = offset;
                for j in 0..s {
                    self.prefix[j + 1] = self.prefix[j] + delta[j];
                    self.prefix_off[j + 1] = self.prefix_off[j] - self.t_change[j] * delta[j];
                }
                for i in 0..self.t.len() {
                    let seg = self.segment[i];
                    self.trend[i] = self.prefix[seg] * self.t[i] + self.prefix_off[seg];
                }
            }
            TrendIndicator::Logistic => {
                let gamma = logistic_gamma(rate, offset, delta, self.t_change);
                self.prefix[0] = rate;
                self.prefix_off[0] = offset;
                for j in 0..s {
                    self.prefix[j + 1] = self.prefix[j] + delta[j];
                    self.prefix_off[j + 1] = self.prefix_off[j] + gamma[j];
                }
                for i in 0..self.t.len() {
                    let seg = self.segment[i];
                    let z = self.prefix[seg] * (self.t[i] - self.prefix_off[seg]);
                    self.trend[i] = self.cap[i] * inv_logit(z);
                }
            }
        }
    }

    /// Adds the data part of the gradient of k, m and delta, given
    /// d objective / d trend in `self.weight` (and the trend from the same `x`).
    pub(super) fn trend_gradient(&mut self, x: &[f64], grad: &mut [f64]) {
        let s = self.n_changepoints();
        let (rate, offset) = (x[0], x[1]);
        let delta = &x[2..2 + s];
        match self.trend_kind {
            TrendIndicator::Flat => {
                grad[1] += self.weight.iter().sum::<f64>();
            }
            TrendIndicator::Linear => {
                // trend_i = rate(seg)·t_i + off(seg); per-segment totals of w and w·t.
                self.seg_sum.iter_mut().for_each(|v| *v = 0.0);
                self.seg_sum_t.iter_mut().for_each(|v| *v = 0.0);
                for i in 0..self.t.len() {
                    let w = self.weight[i];
                    self.seg_sum[self.segment[i]] += w;
                    self.seg_sum_t[self.segment[i]] += w * self.t[i];
                }
                grad[0] += self.seg_sum_t.iter().sum::<f64>();
                grad[1] += self.seg_sum.iter().sum::<f64>();
                // delta_j touches the rows after changepoint j: Σ w·(t − c_j).
                let (mut tail, mut tail_t) = (0.0, 0.0);
                for j in (0..s).rev() {
                    tail += self.seg_sum[j + 1];
                    tail_t += self.seg_sum_t[j + 1];
                    grad[2 + j] += tail_t - self.t_change[j] * tail;
                }
            }
            TrendIndicator::Logistic => {
                // trend_i = cap_i·σ(z_i), z_i = r(seg)·(t_i − o(seg)).
                // seg_sum: Σ dz·(t − o) (d rate); seg_sum_t: Σ −dz·r (d offset).
                self.seg_sum.iter_mut().for_each(|v| *v = 0.0);
                self.seg_sum_t.iter_mut().for_each(|v| *v = 0.0);
                for i in 0..self.t.len() {
                    let seg = self.segment[i];
                    let r = self.prefix[seg];
                    let o = self.prefix_off[seg];
                    let cap = self.cap[i];
                    let p = if cap != 0.0 { self.trend[i] / cap } else { 0.0 };
                    let dz = self.weight[i] * cap * p * (1.0 - p);
                    self.seg_sum[seg] += dz * (self.t[i] - o);
                    self.seg_sum_t[seg] -= dz * r;
                }
                grad[0] += self.seg_sum.iter().sum::<f64>();
                grad[1] += self.seg_sum_t.iter().sum::<f64>();
                // Rates: delta_j adds to every segment after j; gamma_j likewise
                // shifts every offset after j.
                let mut gamma_bar = vec![0.0; s];
                let (mut tail_r, mut tail_o) = (0.0, 0.0);
                for j in (0..s).rev() {
                    tail_r += self.seg_sum[j + 1];
                    tail_o += self.seg_sum_t[j + 1];
                    grad[2 + j] += tail_r;
                    gamma_bar[j] = tail_o;
                }
                let (dk, dm) = logistic_gamma_backward(
                    rate,
                    offset,
                    delta,
                    self.t_change,
                    &gamma_bar,
                    &mut grad[2..2 + s],
                );
                grad[0] += dk;
                grad[1] += dm;
            }
        }
    }
}

/// `logistic_gamma` of `prophet.stan`: offsets that keep the piecewise
/// logistic trend continuous at each changepoint.
fn logistic_gamma(k: f64, m: f64, delta: &[f64], t_change: &[f64]) -> Vec<f64> {
    let mut gamma = Vec::with_capacity(delta.len());
    let mut rate = k;
    let mut m_pr = m;
    for (d, c) in delta.iter().zip(t_change) {
        let next = rate + d;
        let g = (c - m_pr) * (1.0 - rate / next);
        gamma.push(g);
        m_pr += g;
        rate = next;
    }
    gamma
}

/// Reverse pass through [`logistic_gamma`]: given d objective / d gamma,
/// adds d objective / d delta into `delta_grad` and returns (d/dk, d/dm).
fn logistic_gamma_backward(
    k: f64,
    m: f64,
    delta: &[f64],
    t_change: &[f64],
    gamma_bar: &[f64],
    delta_grad: &mut [f64],
) -> (f64, f64) {
    let s = delta.len();
    // Forward values: rates[j] = k_s[j] (j = 0..=S), m_pr[j] before step j.
    let mut rates = Vec::with_capacity(s + 1);
    rates.push(k);
    for d in delta {
        let last = *rates.last().expect("non-empty");
        rates.push(last + d);
    }
    let mut m_pr = Vec::with_capacity(s + 1);
    m_pr.push(m);
    for j in 0..s {
        let g = (t_change[j] - m_pr[j]) * (1.0 - rates[j] / rates[j + 1]);
        m_pr.push(m_pr[j] + g);
    }
    // Backward.
    let mut rates_bar = vec![0.0; s + 1];
    let mut m_pr_bar = 0.0; // adjoint of m_pr[j + 1] while at step j
    for j in (0..s).rev() {
        let g_bar = gamma_bar[j] + m_pr_bar;
        let q = 1.0 - rates[j] / rates[j + 1];
        // m_pr[j+1] = m_pr[j] + gamma_j, gamma_j = (c_j − m_pr[j])·q.
        m_pr_bar += -g_bar * q;
        let q_bar = g_bar * (t_change[j] - m_pr[j]);
        rates_bar[j] += -q_bar / rates[j + 1];
        rates_bar[j + 1] += q_bar * rates[j] / (rates[j + 1] * rates[j + 1]);
    }
    // rates[j] = k + Σ_{l<j} delta_l.
    let dk = rates_bar.iter().sum::<f64>();
    let mut tail = 0.0;
    for l in (0..s).rev() {
        tail += rates_bar[l + 1];
        delta_grad[l] += tail;
    }
    (dk, m_pr_bar)
}

fn inv_logit(z: f64) -> f64 {
    if z >= 0.0 {
        1.0 / (1.0 + (-z).exp())
    } else {
        let e = z.exp();
        e / (1.0 + e)
    }
}
