//! What `prophet.stan` fixes (the prior scales of `k`, `m` and
//! `sigma_obs`, and the noise floor a fit returns), the derivative of `|d|`
//! as Stan takes it, and the dot product the posterior and the Gram solver
//! share. A leaf: it imports nothing of the optimizer.

// Index loops read like the formulas they implement.
#![allow(clippy::needless_range_loop)]

/// Prior scale of `k` and `m` in `prophet.stan`.
pub(super) const KM_PRIOR_SD: f64 = 5.0;
/// Smallest `sigma_obs` (scaled units) a fit returns. A perfectly fitted
/// series (constant, say) has no posterior maximum: the density grows
/// without bound as the noise shrinks. Stan returns whatever tiny value it
/// stopped at; this floor makes the answer defined.
pub const SIGMA_FLOOR: f64 = 1e-9;
/// Prior scale of `sigma_obs` in `prophet.stan`.
pub(super) const SIGMA_PRIOR_SD: f64 = 0.5;

/// Derivative of |d| as Stan's `fabs` takes it: 0 at 0.
pub(super) fn sign(d: f64) -> f64 {
    if d > 0.0 {
        1.0
    } else if d < 0.0 {
        -1.0
    } else {
        0.0
    }
}

#[inline]
pub(super) fn dot(a: &[f64], b: &[f64]) -> f64 {
    // Four accumulators let the compiler keep several multiply-adds in flight.
    let mut acc = [0.0; 4];
    let chunks = a.len() / 4;
    for c in 0..chunks {
        for l in 0..4 {
            acc[l] += a[4 * c + l] * b[4 * c + l];
        }
    }
    let mut sum = (acc[0] + acc[1]) + (acc[2] + acc[3]);
    for i in chunks * 4..a.len() {
        sum += a[i] * b[i];
    }
    sum
}
