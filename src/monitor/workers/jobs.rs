//! One job on a worker: a fit from fetched history (or the bundled
//! dataset, a preset model, a saved model file), or a new horizon from a
//! model, answered as a [`Done`].

use std::{path::PathBuf, sync::Arc, time::Instant};

use super::{
    horizon_from, now_s, Done, Job, PresetKind, Shared, WorkerConfig, HORIZON_CACHE, WEEK,
};
use crate::{
    dataset::{self, ReadOptions, Unit},
    forecast::{Model, Trainer, MIN_FIT_POINTS},
    monitor::{
        horizon::{Compact, Horizon, HORIZON_SECONDS},
        table::{SeriesModel, Slot},
    },
};

pub(super) fn run(job: Job, trainer: &Trainer, cfg: &WorkerConfig, shared: &Shared) -> Done {
    match job {
        Job::Fit {
            slot,
            generation,
            id,
            history,
            ..
        } => {
            let start = Instant::now();
            let have = history.span();
            let (ts, ys) = history.points();
            drop(history);
            if have < cfg.min_history || ts.len() < MIN_FIT_POINTS {
                return Done::NotYet {
                    slot,
                    generation,
                    have,
                };
            }
            let fitted = match trainer.fit_staged(&ts, &ys, Unit::Percent) {
                Ok(f) => f.model,
                Err(e) => {
                    return Done::Failed {
                        slot,
                        generation,
                        error: crate::forecast::first_line(&e.to_string()).to_string(),
                    }
                }
            };
            if let (Some(dir), Model::Prophet(_)) = (&cfg.model_dir, &fitted) {
                let path = model_file(dir, &id);
                if let Err(e) = fitted.save(&path) {
                    tracing::warn!("cannot save the model of {id} to {}: {e}", path.display());
                }
            }
            let trained_on = format!("{} points of its own history", ts.len());
            finish(slot, generation, fitted, trained_on, start, cfg)
        }
        Job::Dataset {
            slot, generation, ..
        } => {
            let start = Instant::now();
            let mut guard = shared.dataset.lock().unwrap_or_else(|e| e.into_inner());
            let fresh = guard
                .as_ref()
                .filter(|(_, at)| at.elapsed().as_secs() < cfg.retrain.max(1) as u64)
                .map(|(m, _)| m.clone());
            let model = match fresh {
                Some(m) => m,
                None => match fit_dataset(trainer, cfg) {
                    Ok(m) => {
                        *guard = Some((m.clone(), Instant::now()));
                        m
                    }
                    Err(error) => {
                        return Done::Failed {
                            slot,
                            generation,
                            error,
                        }
                    }
                },
            };
            drop(guard);
            match shared_horizon(shared, &model, horizon_from(now_s(), cfg.step), cfg.step) {
                Ok(horizon) => Done::Fitted {
                    slot,
                    generation,
                    model,
                    horizon,
                    seconds: start.elapsed().as_secs_f64(),
                    refit_in: None,
                },
                Err(error) => Done::Failed {
                    slot,
                    generation,
                    error,
                },
            }
        }
        Job::Saved {
            slot,
            generation,
            path,
        } => {
            let start = Instant::now();
            let model = match Model::load(&path) {
                Ok(m) => m,
                Err(e) => {
                    tracing::warn!("ignoring the saved model {}: {e}", path.display());
                    return Done::NeedFetch { slot, generation };
                }
            };
            let age = now_s() - model.history_end();
            if age > cfg.retrain || model.family() != trainer.family() {
                return Done::NeedFetch { slot, generation };
            }
            let on = format!("saved model {}", path.display());
            finish(slot, generation, model, on, start, cfg)
        }
        Job::Preset {
            slot,
            generation,
            kind,
            refit_in,
        } => match preset(shared, cfg, kind).and_then(|model| {
            let h = shared_horizon(shared, &model, horizon_from(now_s(), cfg.step), cfg.step)?;
            Ok((model, h))
        }) {
            Ok((model, horizon)) => Done::Fitted {
                slot,
                generation,
                model,
                horizon,
                seconds: 0.0,
                refit_in,
            },
            Err(error) => Done::Failed {
                slot,
                generation,
                error,
            },
        },
        Job::Horizon {
            slot,
            generation,
            model,
        } => match shared_horizon(shared, &model, horizon_from(now_s(), cfg.step), cfg.step) {
            Ok(horizon) => Done::Horizon {
                slot,
                generation,
                horizon,
            },
            Err(error) => Done::HorizonFailed {
                slot,
                generation,
                error,
            },
        },
    }
}

fn finish(
    slot: Slot,
    generation: u32,
    model: Model,
    trained_on: String,
    start: Instant,
    cfg: &WorkerConfig,
) -> Done {
    let from = horizon_from(now_s(), cfg.step);
    let made = Compact::from_model(model, cfg.step, from).and_then(|compact| {
        let horizon = compact.horizon(from, cfg.step)?;
        Ok((compact, horizon))
    });
    match made {
        Ok((compact, horizon)) => Done::Fitted {
            slot,
            generation,
            model: Arc::new(SeriesModel {
                compact,
                trained_at: now_s(),
                trained_on: Arc::from(trained_on),
            }),
            horizon: Arc::new(horizon),
            seconds: start.elapsed().as_secs_f64(),
            refit_in: None,
        },
        Err(e) => Done::Failed {
            slot,
            generation,
            error: e.to_string(),
        },
    }
}

/// A horizon of `model` from `from`, reused across series sharing the model.
fn shared_horizon(
    shared: &Shared,
    model: &Arc<SeriesModel>,
    from: i64,
    step: i64,
) -> Result<Arc<Horizon>, String> {
    let key = (Arc::as_ptr(model) as usize, from);
    if let Some(h) = shared
        .horizons
        .lock()
        .ok()
        .and_then(|c| c.get(&key).cloned())
    {
        return Ok(h);
    }
    let h = Arc::new(
        model
            .compact
            .horizon(from, step)
            .map_err(|e| e.to_string())?,
    );
    if let Ok(mut c) = shared.horizons.lock() {
        if c.len() >= HORIZON_CACHE {
            c.clear();
        }
        c.insert(key, h.clone());
    }
    Ok(h)
}

/// The model file as `kind` uses it, loaded once and reloaded when older
/// than `retrain_interval` or when its forecast table (MSTL) runs low.
fn preset(
    shared: &Shared,
    cfg: &WorkerConfig,
    kind: PresetKind,
) -> Result<Arc<SeriesModel>, String> {
    let now = now_s();
    let mut cache = shared.presets.lock().unwrap_or_else(|e| e.into_inner());
    let key = kind as u8;
    if let Some(m) = cache.get(&key) {
        let fresh = now - m.trained_at < cfg.retrain.max(1)
            && m.compact
                .table_end()
                .map_or(true, |end| end - now > HORIZON_SECONDS);
        if fresh {
            return Ok(m.clone());
        }
    }
    let m = Arc::new(load_preset(&cfg.model_path, cfg.step, kind, now).map_err(|e| e.to_string())?);
    cache.insert(key, m.clone());
    Ok(m)
}

/// Loads the model file for `kind` at `now`.
pub fn load_preset(
    path: &std::path::Path,
    step: i64,
    kind: PresetKind,
    now: i64,
) -> Result<SeriesModel, crate::forecast::ForecastError> {
    let model = Model::load(path)?;
    let shift = match kind {
        PresetKind::Simulation => (now - model.history_end()).div_euclid(WEEK).max(0) * WEEK,
        PresetKind::Selected => 0,
    };
    let compact = Compact::from_model(model, step, horizon_from(now, step) - shift)?.shifted(shift);
    Ok(SeriesModel {
        compact,
        trained_at: now,
        trained_on: Arc::from(format!("model file {}", path.display())),
    })
}

/// The dataset in percent, shifted by whole weeks to end within the last
/// week, fitted.
fn fit_dataset(trainer: &Trainer, cfg: &WorkerConfig) -> Result<Arc<SeriesModel>, String> {
    let s = dataset::read_csv(&cfg.dataset, &ReadOptions::default()).map_err(|e| e.to_string())?;
    let last = *s.timestamps.last().ok_or("empty dataset")?;
    let shift = (now_s() - last).div_euclid(WEEK) * WEEK;
    let scale = if s.unit == Unit::Fraction { 100.0 } else { 1.0 };
    let ts: Vec<i64> = s.timestamps.iter().map(|t| t + shift).collect();
    let ys: Vec<f64> = s.values.iter().map(|v| v * scale).collect();
    let fitted = trainer
        .fit(&ts, &ys, Unit::Percent)
        .map_err(|e| crate::forecast::first_line(&e.to_string()).to_string())?;
    let compact = Compact::from_model(fitted.model, cfg.step, horizon_from(now_s(), cfg.step))
        .map_err(|e| e.to_string())?;
    Ok(Arc::new(SeriesModel {
        compact,
        trained_at: now_s(),
        trained_on: Arc::from(cfg.dataset.display().to_string()),
    }))
}

/// A file name for a series id.
pub fn model_file(dir: &std::path::Path, id: &str) -> PathBuf {
    let safe: String = id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect();
    dir.join(format!("{safe}.json"))
}
