//! The model thread: owns every series' model (Prophet types are not
//! `Send`), trains, retrains and computes forecast horizons on request, and
//! answers with plain numbers. The poll loop never waits for it.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    rc::Rc,
    sync::{mpsc, Arc},
    thread,
    time::Instant,
};

use crate::{
    config::Settings,
    dataset::{self, ReadOptions, Unit},
    forecast::{Model, Trainer},
    source::prometheus::{Client, Labels},
};

/// Why a training did not happen.
enum TrainFail {
    /// Less history than `min_history` (seconds held).
    NotYet(i64),
    /// Anything else.
    Error(String),
}

/// Timestamps and values.
type Points = (Vec<i64>, Vec<f64>);

/// Seconds in a week.
const WEEK: i64 = 7 * 86_400;

/// Where a series' training history comes from.
#[derive(Debug, Clone)]
pub enum HistorySource {
    /// `query_range` of the monitor's query, picking this label set. With
    /// less than `min_history` of it the series keeps warming up: a model
    /// of another machine's data would flag this one's normal level.
    Prometheus(Labels),
    /// The configured dataset, shifted by whole weeks to end now (the
    /// simulated series).
    Dataset,
}

/// A request to the model thread.
#[derive(Debug)]
pub enum Request {
    /// Train (or retrain) a series and send a horizon starting at `from`.
    Train {
        /// Series id.
        id: String,
        /// Where its history comes from.
        history: HistorySource,
        /// First timestamp of the horizon.
        from: i64,
        /// Use a saved model of this series when it is fresh (its history
        /// ends less than `retrain_interval` ago) instead of fitting.
        reuse_saved: bool,
    },
    /// Forecast `from`, `from + step`, … (`len` points) with the current
    /// model.
    Horizon {
        /// Series id.
        id: String,
        /// First timestamp.
        from: i64,
    },
    /// Forget a series.
    Drop(String),
}

/// Forecast band on a regular grid.
#[derive(Debug, Clone)]
pub struct Horizon {
    /// First timestamp.
    pub start: i64,
    /// Grid step, seconds.
    pub step: i64,
    /// Point forecast.
    pub yhat: Vec<f64>,
    /// Band, lower edge.
    pub lower: Vec<f64>,
    /// Band, upper edge.
    pub upper: Vec<f64>,
}

impl Horizon {
    /// Band at `ts` (nearest grid point), or `None` outside the horizon.
    pub fn band_at(&self, ts: i64) -> Option<(f64, f64, f64)> {
        let k = ((ts - self.start) as f64 / self.step as f64).round();
        if k < 0.0 || k as usize >= self.yhat.len() {
            return None;
        }
        let k = k as usize;
        Some((self.yhat[k], self.lower[k], self.upper[k]))
    }

    /// Last timestamp covered.
    pub fn end(&self) -> i64 {
        self.start + self.step * (self.yhat.len() as i64 - 1)
    }
}

/// An answer from the model thread.
#[derive(Debug)]
pub enum Reply {
    /// A (re)trained model's first horizon.
    Trained {
        /// Series id.
        id: String,
        /// Where the training data came from (for logs and reports).
        trained_on: String,
        /// Points fitted.
        points: usize,
        /// Fit duration, seconds.
        seconds: f64,
        /// Horizon.
        horizon: Arc<Horizon>,
    },
    /// A refreshed horizon.
    Horizon {
        /// Series id.
        id: String,
        /// Horizon.
        horizon: Arc<Horizon>,
    },
    /// Not enough history yet to train (the series keeps warming up).
    NotYet {
        /// Series id.
        id: String,
        /// Seconds of history Prometheus holds for it.
        have: i64,
    },
    /// Training or forecasting failed (the old model, if any, stays).
    Failed {
        /// Series id.
        id: String,
        /// Why.
        error: String,
        /// Whether a model is still in use.
        kept_old: bool,
    },
}

/// Settings the model thread needs.
#[derive(Debug, Clone)]
pub struct ModelConfig {
    /// All settings.
    pub settings: Settings,
    /// Horizon grid step (the poll interval), seconds.
    pub step: i64,
    /// Points per horizon.
    pub len: usize,
    /// Where per-series models are saved.
    pub model_dir: PathBuf,
}

/// Starts the model thread.
pub fn spawn(cfg: ModelConfig) -> (mpsc::Sender<Request>, mpsc::Receiver<Reply>) {
    let (req_tx, req_rx) = mpsc::channel::<Request>();
    let (rep_tx, rep_rx) = mpsc::channel::<Reply>();
    thread::Builder::new()
        .name("models".into())
        .spawn(move || {
            let mut w = ModelWorker {
                trainer: cfg.settings.trainer(),
                client: Client::new(&cfg.settings.prometheus),
                models: HashMap::new(),
                dataset_model: None,
                horizon_cache: None,
                cfg,
            };
            for req in req_rx {
                let reply = w.handle(req);
                if let Some(r) = reply {
                    if rep_tx.send(r).is_err() {
                        return;
                    }
                }
            }
        })
        .expect("spawn the model thread");
    (req_tx, rep_rx)
}

struct ModelWorker {
    cfg: ModelConfig,
    trainer: Trainer,
    client: Client,
    models: HashMap<String, Rc<Model>>,
    /// The model fitted on the dataset, shared by every series trained on
    /// it (the simulated series): (model, when, what, points).
    dataset_model: Option<(Rc<Model>, Instant, String, usize)>,
    /// Last horizon computed, shared by series with the same model and start.
    horizon_cache: Option<(*const Model, i64, Arc<Horizon>)>,
}

/// A file name for a series id.
pub fn model_file(dir: &Path, id: &str) -> PathBuf {
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

impl ModelWorker {
    fn handle(&mut self, req: Request) -> Option<Reply> {
        match req {
            Request::Drop(id) => {
                self.models.remove(&id);
                None
            }
            Request::Horizon { id, from } => Some(match self.horizon(&id, from) {
                Ok(horizon) => Reply::Horizon { id, horizon },
                Err(error) => Reply::Failed {
                    kept_old: self.models.contains_key(&id),
                    id,
                    error,
                },
            }),
            Request::Train {
                id,
                history,
                from,
                reuse_saved,
            } => {
                let start = Instant::now();
                let saved = if reuse_saved {
                    self.load_fresh(&id)
                } else {
                    None
                };
                let res = match saved {
                    Some(x) => Ok(x),
                    None => match self.train(&id, &history) {
                        Err(TrainFail::NotYet(have)) if !self.models.contains_key(&id) => {
                            return Some(Reply::NotYet { id, have });
                        }
                        Err(TrainFail::NotYet(have)) => Err(format!(
                            "only {have}s of history in Prometheus, less than min_history"
                        )),
                        Err(TrainFail::Error(e)) => Err(e),
                        Ok(x) => Ok(x),
                    },
                };
                let res = res.and_then(|(on, n)| self.horizon(&id, from).map(|h| (on, n, h)));
                Some(match res {
                    Ok((trained_on, points, horizon)) => Reply::Trained {
                        id,
                        trained_on,
                        points,
                        seconds: start.elapsed().as_secs_f64(),
                        horizon,
                    },
                    Err(error) => Reply::Failed {
                        kept_old: self.models.contains_key(&id),
                        id,
                        error,
                    },
                })
            }
        }
    }

    fn horizon(&mut self, id: &str, from: i64) -> Result<Arc<Horizon>, String> {
        let model = self
            .models
            .get(id)
            .ok_or_else(|| format!("no model for {id}"))?
            .clone();
        if let Some((m, f, h)) = &self.horizon_cache {
            if std::ptr::eq(*m, Rc::as_ptr(&model)) && *f == from {
                return Ok(h.clone());
            }
        }
        let h = Arc::new(self.compute_horizon(&model, from)?);
        self.horizon_cache = Some((Rc::as_ptr(&model), from, h.clone()));
        Ok(h)
    }

    fn compute_horizon(&self, model: &Model, from: i64) -> Result<Horizon, String> {
        let step = self.cfg.step;
        let ts: Vec<i64> = (0..self.cfg.len as i64).map(|k| from + k * step).collect();
        let f = model.predict(&ts).map_err(|e| e.to_string())?;
        let scale = if model.unit() == Unit::Fraction {
            100.0
        } else {
            1.0
        };
        Ok(Horizon {
            start: from,
            step,
            yhat: f.yhat.iter().map(|v| v * scale).collect(),
            lower: f.lower.iter().map(|v| v * scale).collect(),
            upper: f.upper.iter().map(|v| v * scale).collect(),
        })
    }

    /// Loads the saved model of `id` if its history ends less than
    /// `retrain_interval` ago.
    fn load_fresh(&mut self, id: &str) -> Option<(String, usize)> {
        let path = model_file(&self.cfg.model_dir, id);
        if !path.exists() {
            return None;
        }
        let model = match Model::load(&path).map(Rc::new) {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!("ignoring the saved model of {id}: {e}");
                return None;
            }
        };
        let last = model.history_end();
        let age = chrono::Utc::now().timestamp() - last;
        if age > self.cfg.settings.retrain_interval.as_secs() as i64
            || model.family() != self.trainer.family()
        {
            return None;
        }
        let n = model.points();
        self.models.insert(id.to_string(), model);
        Some((format!("saved model {}", path.display()), n))
    }

    /// Fetches history, fits, swaps the model in, saves it.
    fn train(&mut self, id: &str, history: &HistorySource) -> Result<(String, usize), TrainFail> {
        let now = chrono::Utc::now().timestamp();
        let HistorySource::Prometheus(labels) = history else {
            return self.train_on_dataset(id, now).map_err(TrainFail::Error);
        };
        let (ts, ys) = self.prometheus_history(labels, now)?;
        let on = format!("Prometheus history of {id}");
        let n = ts.len();
        let fitted = self.trainer.fit(&ts, &ys, Unit::Percent).map_err(|e| {
            TrainFail::Error(crate::forecast::first_line(&e.to_string()).to_string())
        })?;
        let path = model_file(&self.cfg.model_dir, id);
        if let Err(e) = fitted.model.save(&path) {
            tracing::warn!("cannot save the model of {id} to {}: {e}", path.display());
        }
        // The swap: the old model served until this line.
        self.models.insert(id.to_string(), Rc::new(fitted.model));
        Ok((on, n))
    }

    /// Series trained on the dataset share one model, refitted at most once
    /// per `retrain_interval` (it is the same data for all of them).
    fn train_on_dataset(&mut self, id: &str, now: i64) -> Result<(String, usize), String> {
        let fresh = self
            .dataset_model
            .as_ref()
            .filter(|(_, at, _, _)| at.elapsed() < self.cfg.settings.retrain_interval);
        if let Some((m, _, on, n)) = fresh {
            self.models.insert(id.to_string(), m.clone());
            return Ok((on.clone(), *n));
        }
        let (ts, ys) = self.dataset_history(now)?;
        let fitted = self
            .trainer
            .fit(&ts, &ys, Unit::Percent)
            .map_err(|e| crate::forecast::first_line(&e.to_string()).to_string())?;
        let model = Rc::new(fitted.model);
        let on = self.cfg.settings.dataset.display().to_string();
        self.dataset_model = Some((model.clone(), Instant::now(), on.clone(), ts.len()));
        self.models.insert(id.to_string(), model);
        Ok((on, ts.len()))
    }

    /// History of one series: first the most recent 10,000 polls at the
    /// poll interval; if the series is older than that window, the whole
    /// `prometheus_history` at a coarser step (Prometheus returns at most
    /// 11,000 points per series and query).
    fn prometheus_history(&self, labels: &Labels, now: i64) -> Result<Points, TrainFail> {
        let span = self.cfg.settings.prometheus.history.as_secs() as i64;
        let fine_step = self.cfg.step.max(1);
        let fine_span = span.min(fine_step * 10_000);
        let (mut ts, mut ys) = self.range(labels, now - fine_span, now, fine_step)?;
        let reaches_back = ts
            .first()
            .is_some_and(|&f| f <= now - fine_span + 2 * fine_step);
        if reaches_back && span > fine_span {
            (ts, ys) = self.range(labels, now - span, now, (span / 10_000).max(fine_step))?;
        }
        let covered = ts.last().zip(ts.first()).map_or(0, |(l, f)| l - f);
        let min = self.cfg.settings.prometheus.min_history.as_secs() as i64;
        if covered < min || ts.len() < crate::forecast::MIN_FIT_POINTS {
            return Err(TrainFail::NotYet(covered));
        }
        Ok((ts, ys))
    }

    fn range(&self, labels: &Labels, start: i64, end: i64, step: i64) -> Result<Points, TrainFail> {
        let ranges = self
            .client
            .query_range(&self.cfg.settings.prometheus.query, start, end, step)
            .map_err(|e| TrainFail::Error(e.to_string()))?;
        Ok(ranges
            .into_iter()
            .find(|r| &r.labels == labels)
            .map(|r| r.points.into_iter().unzip())
            .unwrap_or_default())
    }

    /// The dataset in percent, shifted by whole weeks so that it ends within
    /// the last week (daily and weekly phases stay right).
    fn dataset_history(&self, now: i64) -> Result<Points, String> {
        let s = dataset::read_csv(&self.cfg.settings.dataset, &ReadOptions::default())
            .map_err(|e| e.to_string())?;
        let last = *s.timestamps.last().ok_or("empty dataset")?;
        let shift = (now - last).div_euclid(WEEK) * WEEK;
        let scale = if s.unit == Unit::Fraction { 100.0 } else { 1.0 };
        Ok((
            s.timestamps.iter().map(|t| t + shift).collect(),
            s.values.iter().map(|v| v * scale).collect(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn band_lookup_snaps_to_the_grid_and_stops_at_the_end() {
        let h = Horizon {
            start: 100,
            step: 10,
            yhat: vec![1.0, 2.0, 3.0],
            lower: vec![0.0; 3],
            upper: vec![9.0; 3],
        };
        assert_eq!(h.band_at(100).unwrap().0, 1.0);
        assert_eq!(h.band_at(114).unwrap().0, 2.0);
        assert_eq!(h.band_at(124).unwrap().0, 3.0);
        assert!(h.band_at(126).is_none());
        assert!(h.band_at(94).is_none());
        assert_eq!(h.end(), 120);
    }

    #[test]
    fn model_files_are_safe_names() {
        let p = model_file(Path::new("m"), r#"{instance="a:9100",job="x/y"}"#);
        assert_eq!(p, Path::new("m/_instance__a_9100__job__x_y__.json"));
    }
}
