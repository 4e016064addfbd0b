//! The model workers: a pool of threads (one per core by default) that fit
//! models and draw horizons, so the poll loop never waits for either.
//!
//! Prophet's types are not `Send`, so each worker fits on its own thread
//! with its own trainer and hands back only the compact result
//! ([`Compact`]: parameters, or a forecast table), which is plain data. That
//! makes workers stateless: any worker takes the next job, and one queue
//! orders them: first fits (a series nobody judges yet) before horizon
//! refreshes before refits, oldest first within each.

use std::{
    collections::{BinaryHeap, HashMap},
    path::PathBuf,
    sync::{mpsc, Arc, Condvar, Mutex},
    thread,
    time::Instant,
};

use super::{
    horizon::{Compact, Horizon},
    table::{SeriesModel, Slot},
};
use crate::{
    dataset::{self, ReadOptions, Unit},
    forecast::{Model, ModelFamily, Trainer, MIN_FIT_POINTS},
    source::prometheus::history::SeriesHistory,
};

/// Seconds in a week (the dataset is shifted by whole weeks).
const WEEK: i64 = 7 * 86_400;
/// Horizons of shared models kept for reuse.
const HORIZON_CACHE: usize = 64;

/// Work for the pool.
#[derive(Debug)]
pub enum Job {
    /// Fit a series on its history.
    Fit {
        /// Series.
        slot: Slot,
        /// Its generation.
        generation: u32,
        /// Its id (for the saved model's file name and logs).
        id: Arc<str>,
        /// Its history on the training grid.
        history: SeriesHistory,
        /// No model yet (goes first).
        first: bool,
    },
    /// Give a simulated series the model of the dataset (fitted once per
    /// `retrain_interval`, shared by every simulated series).
    Dataset {
        /// Series.
        slot: Slot,
        /// Its generation.
        generation: u32,
        /// No model yet.
        first: bool,
    },
    /// Use the series' saved model if it is fresh enough.
    Saved {
        /// Series.
        slot: Slot,
        /// Its generation.
        generation: u32,
        /// The model file.
        path: PathBuf,
    },
    /// Give a series the model file of `--mode train` (`model_path`); it is
    /// refitted after `refit_in` ms if given.
    Preset {
        /// Series.
        slot: Slot,
        /// Its generation.
        generation: u32,
        /// Which use of the file.
        kind: PresetKind,
        /// When to refit it from the series' own history (`None`: by the
        /// usual rules).
        refit_in: Option<i64>,
    },
    /// Draw a new horizon from the series' model.
    Horizon {
        /// Series.
        slot: Slot,
        /// Its generation.
        generation: u32,
        /// Its model.
        model: Arc<SeriesModel>,
    },
}

impl Job {
    /// Queue class: 0 first fits, 1 horizons, 2 refits.
    fn class(&self) -> u8 {
        match self {
            Job::Fit { first: true, .. }
            | Job::Dataset { first: true, .. }
            | Job::Saved { .. }
            | Job::Preset { .. } => 0,
            Job::Horizon { .. } => 1,
            _ => 2,
        }
    }
}

/// How a series uses the model file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PresetKind {
    /// A simulated series: the model moved forward by whole weeks so its
    /// history ends within the last week (the simulation plays its data).
    Simulation,
    /// A Prometheus series matching `model_selector`: the model as it is.
    Selected,
}

/// An answer (from the workers or the history fetcher).
#[derive(Debug)]
pub enum Done {
    /// A model and its first horizon.
    Fitted {
        /// Series.
        slot: Slot,
        /// Its generation.
        generation: u32,
        /// The model.
        model: Arc<SeriesModel>,
        /// Its first horizon.
        horizon: Arc<Horizon>,
        /// Seconds the fit took (0 for a shared or saved model).
        seconds: f64,
        /// Refit after this many ms (`None`: by the table's rules).
        refit_in: Option<i64>,
    },
    /// Less history than `min_history` (seconds held).
    NotYet {
        /// Series.
        slot: Slot,
        /// Its generation.
        generation: u32,
        /// Seconds of history found.
        have: i64,
    },
    /// Fetching or fitting failed.
    Failed {
        /// Series.
        slot: Slot,
        /// Its generation.
        generation: u32,
        /// Why.
        error: String,
    },
    /// A new horizon.
    Horizon {
        /// Series.
        slot: Slot,
        /// Its generation.
        generation: u32,
        /// The horizon.
        horizon: Arc<Horizon>,
    },
    /// Drawing a horizon failed.
    HorizonFailed {
        /// Series.
        slot: Slot,
        /// Its generation.
        generation: u32,
        /// Why.
        error: String,
    },
    /// No fresh saved model: fetch history.
    NeedFetch {
        /// Series.
        slot: Slot,
        /// Its generation.
        generation: u32,
    },
    /// History arrived and went to the workers.
    Fetched {
        /// Series.
        slot: Slot,
        /// Its generation.
        generation: u32,
    },
}

/// What the workers need to know.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Trainer settings: family, Prophet options, robust training, seed.
    pub family: ModelFamily,
    /// Model options.
    pub prophet: crate::forecast::ProphetSettings,
    /// Fit, drop outliers, refit.
    pub robust: bool,
    /// Band seed.
    pub seed: u64,
    /// Own history a series needs, seconds.
    pub min_history: i64,
    /// Training grid step, seconds.
    pub step: i64,
    /// Refit period, seconds (saved and dataset models older than this are
    /// not reused).
    pub retrain: i64,
    /// Dataset the simulated series are trained on.
    pub dataset: PathBuf,
    /// Where per-series Prophet models are saved (`None`: not saved).
    pub model_dir: Option<PathBuf>,
    /// The model file of `--mode train`, for [`Job::Preset`].
    pub model_path: PathBuf,
}

struct Queued {
    class: u8,
    seq: u64,
    job: Job,
}

impl PartialEq for Queued {
    fn eq(&self, o: &Self) -> bool {
        (self.class, self.seq) == (o.class, o.seq)
    }
}
impl Eq for Queued {}
impl PartialOrd for Queued {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Queued {
    /// The max-heap pops the lowest class, then the oldest.
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        (o.class, o.seq).cmp(&(self.class, self.seq))
    }
}

#[derive(Default)]
struct Queue {
    heap: BinaryHeap<Queued>,
    seq: u64,
    closed: bool,
}

/// Shared between workers: the dataset model and recent horizons of shared
/// models (every simulated series asks for the same one).
#[derive(Default)]
struct Shared {
    dataset: Mutex<Option<(Arc<SeriesModel>, Instant)>>,
    presets: Mutex<HashMap<u8, Arc<SeriesModel>>>,
    horizons: Mutex<HashMap<(usize, i64), Arc<Horizon>>>,
}

struct Inner {
    queue: Mutex<Queue>,
    ready: Condvar,
    shared: Shared,
}

/// Handle to the pool; cheap to clone. Dropping the last handle does not
/// stop the workers: call [`Pool::close`].
#[derive(Clone)]
pub struct Pool {
    inner: Arc<Inner>,
}

impl Pool {
    /// Starts `threads` workers sending answers to `done`.
    pub fn start(threads: usize, cfg: WorkerConfig, done: mpsc::Sender<Done>) -> Pool {
        let inner = Arc::new(Inner {
            queue: Mutex::new(Queue::default()),
            ready: Condvar::new(),
            shared: Shared::default(),
        });
        for i in 0..threads.max(1) {
            let inner = inner.clone();
            let cfg = cfg.clone();
            let done = done.clone();
            let spawned = thread::Builder::new()
                .name(format!("model-{i}"))
                .spawn(move || worker(&inner, &cfg, &done));
            if let Err(e) = spawned {
                tracing::error!("cannot start model worker {i}: {e}");
            }
        }
        Pool { inner }
    }

    /// Queues a job.
    pub fn submit(&self, job: Job) {
        let mut q = self.inner.queue.lock().unwrap_or_else(|e| e.into_inner());
        let seq = q.seq;
        q.seq += 1;
        q.heap.push(Queued {
            class: job.class(),
            seq,
            job,
        });
        drop(q);
        self.inner.ready.notify_one();
    }

    /// Stops the workers after the job each is on (queued jobs are dropped).
    pub fn close(&self) {
        let mut q = self.inner.queue.lock().unwrap_or_else(|e| e.into_inner());
        q.closed = true;
        q.heap.clear();
        drop(q);
        self.inner.ready.notify_all();
    }
}

fn worker(inner: &Inner, cfg: &WorkerConfig, done: &mpsc::Sender<Done>) {
    let trainer = Trainer::new(cfg.family, cfg.prophet.clone(), cfg.robust, cfg.seed);
    loop {
        let job = {
            let mut q = inner.queue.lock().unwrap_or_else(|e| e.into_inner());
            loop {
                if q.closed {
                    return;
                }
                if let Some(j) = q.heap.pop() {
                    break j.job;
                }
                q = inner.ready.wait(q).unwrap_or_else(|e| e.into_inner());
            }
        };
        let answer = run(job, &trainer, cfg, &inner.shared);
        if done.send(answer).is_err() {
            return;
        }
    }
}

/// First horizon start for a model made now: one step back, so the
/// current poll's samples fall inside it.
pub fn horizon_from(now: i64, step: i64) -> i64 {
    let step = step.max(1);
    now.div_euclid(step) * step - step
}

fn now_s() -> i64 {
    chrono::Utc::now().timestamp()
}

fn run(job: Job, trainer: &Trainer, cfg: &WorkerConfig, shared: &Shared) -> Done {
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
                .map_or(true, |end| end - now > super::horizon::HORIZON_SECONDS);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_fits_go_before_horizons_before_refits() {
        let mut heap = BinaryHeap::new();
        let h = || SeriesHistory {
            start: 0,
            step: 1,
            values: vec![],
        };
        let jobs = [
            (
                2,
                Job::Dataset {
                    slot: 1,
                    generation: 1,
                    first: false,
                },
            ),
            (
                1,
                Job::Saved {
                    slot: 9,
                    generation: 1,
                    path: "x".into(),
                },
            ),
            (
                4,
                Job::Preset {
                    slot: 8,
                    generation: 1,
                    kind: PresetKind::Selected,
                    refit_in: None,
                },
            ),
            (
                0,
                Job::Fit {
                    slot: 2,
                    generation: 1,
                    id: Arc::from("a"),
                    history: h(),
                    first: true,
                },
            ),
            (
                3,
                Job::Fit {
                    slot: 3,
                    generation: 1,
                    id: Arc::from("b"),
                    history: h(),
                    first: false,
                },
            ),
        ];
        for (seq, job) in jobs {
            heap.push(Queued {
                class: job.class(),
                seq,
                job,
            });
        }
        let order: Vec<(u8, u64)> = std::iter::from_fn(|| heap.pop())
            .map(|q| (q.class, q.seq))
            .collect();
        assert_eq!(order, vec![(0, 0), (0, 1), (0, 4), (2, 2), (2, 3)]);
    }

    #[test]
    fn model_files_are_safe_names() {
        let p = model_file(
            std::path::Path::new("m"),
            r#"{instance="a:9100",job="x/y"}"#,
        );
        assert_eq!(
            p,
            std::path::Path::new("m/_instance__a_9100__job__x_y__.json")
        );
    }

    #[test]
    fn horizons_start_one_step_back_on_the_grid() {
        assert_eq!(horizon_from(1000, 300), 600);
        assert_eq!(horizon_from(900, 300), 600);
    }

    #[test]
    fn a_short_history_waits_and_a_longer_one_fits_a_level() {
        let (tx, rx) = mpsc::channel();
        let cfg = WorkerConfig {
            family: ModelFamily::Prophet,
            prophet: Default::default(),
            robust: false,
            seed: 1,
            min_history: 3600,
            step: 300,
            retrain: 86_400,
            dataset: "none".into(),
            model_dir: None,
            model_path: "none".into(),
        };
        let pool = Pool::start(2, cfg, tx);
        let now = now_s() / 300 * 300;
        let hist = |hours: i64| SeriesHistory {
            start: now - hours * 3600,
            step: 300,
            values: (0..=hours * 12).map(|k| 20.0 + (k % 3) as f32).collect(),
        };
        pool.submit(Job::Fit {
            slot: 1,
            generation: 1,
            id: Arc::from("short"),
            history: hist(0),
            first: true,
        });
        pool.submit(Job::Fit {
            slot: 2,
            generation: 1,
            id: Arc::from("two-hours"),
            history: hist(2),
            first: true,
        });
        let mut got = [rx.recv().unwrap(), rx.recv().unwrap()];
        got.sort_by_key(|d| match d {
            Done::NotYet { slot, .. } | Done::Fitted { slot, .. } => *slot,
            _ => 99,
        });
        assert!(
            matches!(
                got[0],
                Done::NotYet {
                    slot: 1,
                    have: 0,
                    ..
                }
            ),
            "{:?}",
            got[0]
        );
        match &got[1] {
            Done::Fitted { model, horizon, .. } => {
                assert!(model.compact.is_short_history());
                let b = horizon.band_at(now).unwrap();
                assert!((b.yhat - 21.0).abs() < 1e-6, "{b:?}");
            }
            other => panic!("{other:?}"),
        }
        pool.close();
    }
}
