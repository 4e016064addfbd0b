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
    horizon::Horizon,
    table::{SeriesModel, Slot},
};
use crate::{
    forecast::{ModelFamily, Trainer},
    source::prometheus::history::SeriesHistory,
};

mod jobs;

use self::jobs::run;
pub use self::jobs::{load_preset, model_file};

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
