//! Prophet's MAP fit in Rust: the default optimizer.
//!
//! [`NativeOptimizer`] implements augurs-prophet's `Optimizer` trait with the
//! log-posterior of Prophet's Stan model and its exact gradient
//! ([`Posterior`]), minimised by L-BFGS with Stan's initial step, line search
//! and stopping rules ([`lbfgs`]). It needs no compiled Stan program and no
//! WASM runtime; the Stan optimizer augurs ships (WASM, through wasmtime) is
//! still available with the `wasmstan` cargo feature, and the two are tested
//! against each other.

mod gram;
pub mod lbfgs;
pub mod posterior;
mod stan;

use augurs_prophet::{
    optimizer::{self, Data, InitialParams, OptimizeOpts, OptimizedParams},
    PositiveFloat,
};

pub use posterior::{DataError, Posterior};

/// Which optimizer fits Prophet models (`prophet.optimizer` in the config).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OptimizerKind {
    /// The Rust L-BFGS optimizer of this module.
    #[default]
    Native,
    /// Stan compiled to WASM, run by wasmtime (cargo feature `wasmstan`).
    Wasmstan,
}

impl OptimizerKind {
    /// Name as written in the config.
    pub fn as_str(self) -> &'static str {
        match self {
            OptimizerKind::Native => "native",
            OptimizerKind::Wasmstan => "wasmstan",
        }
    }

    /// Whether this binary can use it.
    pub fn available(self) -> bool {
        match self {
            OptimizerKind::Native => true,
            OptimizerKind::Wasmstan => cfg!(feature = "wasmstan"),
        }
    }
}

impl std::fmt::Display for OptimizerKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Prophet's MAP optimizer in Rust (see the module docs).
#[derive(Debug, Clone, Copy, Default)]
pub struct NativeOptimizer;

impl NativeOptimizer {
    /// Stan's defaults overridden by what augurs passes in `opts`.
    fn settings(opts: &OptimizeOpts) -> lbfgs::Settings {
        let d = lbfgs::Settings::default();
        lbfgs::Settings {
            init_alpha: opts.init_alpha.unwrap_or(d.init_alpha),
            tol_obj: opts.tol_obj.unwrap_or(d.tol_obj),
            tol_rel_obj: opts.tol_rel_obj.unwrap_or(d.tol_rel_obj),
            tol_grad: opts.tol_grad.unwrap_or(d.tol_grad),
            tol_rel_grad: opts.tol_rel_grad.unwrap_or(d.tol_rel_grad),
            tol_param: opts.tol_param.unwrap_or(d.tol_param),
            history: opts.history_size.map_or(d.history, |h| h as usize),
            max_iterations: opts.iter.map_or(d.max_iterations, |i| i as usize),
        }
    }

    /// Minimises Prophet's negative log-posterior from `init`; returns the
    /// optimum with the run's statistics (iterations, why it stopped).
    pub fn minimize(
        init: &InitialParams,
        data: &Data,
        opts: &OptimizeOpts,
    ) -> Result<(OptimizedParams, lbfgs::Minimum), optimizer::Error> {
        let mut posterior = Posterior::new(data, opts.jacobian.unwrap_or(false))
            .map_err(optimizer::Error::custom)?;
        // Exact where the model allows; OWL-QN otherwise, or to polish an
        // exact solve that did not settle.
        let mut start = pack(init, &posterior)?;
        let mut rounds = 0;
        if let Some((x, iterations, settled)) = posterior.solve_exact(&start) {
            let value = posterior.value(&x);
            if value.is_finite() {
                if settled {
                    let min = lbfgs::Minimum {
                        x,
                        value,
                        iterations,
                        evaluations: 0,
                        termination: lbfgs::Termination::Exact,
                    };
                    return Ok((unpack(&min.x, &mut posterior)?, min));
                }
                start = x;
                rounds = iterations;
            }
        }
        let l1 = lbfgs::L1 {
            range: posterior.delta_range(),
            weight: posterior.l1_weight(),
        };
        let mut min = lbfgs::minimize(
            |x, g| posterior.smooth_value_and_gradient(x, g),
            &start,
            &l1,
            &Self::settings(opts),
        )
        .map_err(optimizer::Error::custom)?;
        min.iterations += rounds;
        Ok((unpack(&min.x, &mut posterior)?, min))
    }
}

impl optimizer::Optimizer for NativeOptimizer {
    fn optimize(
        &self,
        init: &InitialParams,
        data: &Data,
        opts: &OptimizeOpts,
    ) -> Result<OptimizedParams, optimizer::Error> {
        let (params, min) = Self::minimize(init, data, opts)?;
        match min.termination {
            t if !t.converged() => tracing::warn!(
                iterations = min.iterations,
                termination = ?t,
                "Prophet fit stopped before its convergence tests passed; it may not be optimal"
            ),
            t => tracing::debug!(
                iterations = min.iterations,
                evaluations = min.evaluations,
                termination = ?t,
                objective = min.value,
                "Prophet fit"
            ),
        }
        Ok(params)
    }
}

/// Stan's negative log-posterior (constants dropped) of `params` on `data`:
/// the number both optimizers minimise, for comparing their answers.
pub fn objective(data: &Data, jacobian: bool, params: &OptimizedParams) -> Result<f64, DataError> {
    let mut posterior = Posterior::new(data, jacobian)?;
    let s = data.t_change.len();
    if params.delta.len() != s {
        return Err(DataError::new(format!(
            "parameters have {} deltas, the model has {s} changepoints",
            params.delta.len()
        )));
    }
    let mut x = Vec::with_capacity(posterior.dim());
    x.extend([params.k, params.m]);
    x.extend(&params.delta);
    x.push(params.sigma_obs.ln());
    x.extend(&params.beta);
    if x.len() != posterior.dim() {
        return Err(DataError::new(format!(
            "parameters have {} values, the model has {}",
            x.len(),
            posterior.dim()
        )));
    }
    Ok(posterior.value(&x))
}

/// `[k, m, delta, log(sigma_obs), beta]` from augurs' initial parameters.
fn pack(init: &InitialParams, posterior: &Posterior<'_>) -> Result<Vec<f64>, optimizer::Error> {
    let mut x = Vec::with_capacity(posterior.dim());
    x.extend([init.k, init.m]);
    x.extend(&init.delta);
    x.push(init.sigma_obs.ln());
    x.extend(&init.beta);
    if x.len() != posterior.dim() || x.len() != posterior.sigma_index() + 1 + init.beta.len() {
        return Err(optimizer::Error::string(format!(
            "initial parameters have {} values ({} deltas, {} betas), the model has {}",
            x.len(),
            init.delta.len(),
            init.beta.len(),
            posterior.dim()
        )));
    }
    Ok(x)
}

fn unpack(x: &[f64], posterior: &mut Posterior<'_>) -> Result<OptimizedParams, optimizer::Error> {
    let si = posterior.sigma_index();
    let sigma = PositiveFloat::try_new(x[si].exp().max(posterior::SIGMA_FLOOR))
        .map_err(|e| optimizer::Error::string(format!("fitted sigma_obs: {e}")))?;
    Ok(OptimizedParams {
        k: x[0],
        m: x[1],
        delta: x[2..si].to_vec(),
        sigma_obs: sigma,
        beta: x[si + 1..].to_vec(),
        trend: posterior.trend(x),
    })
}
