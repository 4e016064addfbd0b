//! Fetches history for series that need a model, many at a time, on the
//! async runtime: a few fetches run at once (a slow or failing one never
//! blocks the others), first fits before refits. Each fetched history goes
//! straight to the model workers; a series without enough history, or
//! whose fetch failed, is reported back to the poll loop.

use std::{
    collections::VecDeque,
    sync::{mpsc, Arc},
    time::Instant,
};

use tokio::sync::Semaphore;

use super::{
    table::Slot,
    workers::{Done, Job, Pool},
};
use crate::source::prometheus::{history, Client, Labels};

/// History fetches running at once.
pub const CONCURRENT_FETCHES: usize = 2;

/// Series whose history is wanted.
#[derive(Debug)]
pub struct Request {
    /// None of them has a model yet.
    pub first: bool,
    /// (slot, generation, id, labels).
    pub series: Vec<(Slot, u32, Arc<str>, Labels)>,
    /// Series the query returns in all (sizes the windows).
    pub fleet: usize,
}

/// What the fetcher needs.
#[derive(Debug, Clone)]
pub struct FetchConfig {
    /// The monitor's PromQL.
    pub query: String,
    /// Seconds of history.
    pub span: i64,
    /// Training grid step, seconds.
    pub step: i64,
}

/// Handle to the fetcher task.
#[derive(Debug, Clone)]
pub struct Fetcher {
    tx: tokio::sync::mpsc::UnboundedSender<Request>,
}

impl Fetcher {
    /// Starts the fetcher on `rt`.
    pub fn start(
        rt: &tokio::runtime::Handle,
        client: Client,
        cfg: FetchConfig,
        pool: Pool,
        done: mpsc::Sender<Done>,
    ) -> Fetcher {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Request>();
        let inner = rt.clone();
        rt.spawn(async move {
            let permits = Arc::new(Semaphore::new(CONCURRENT_FETCHES));
            let mut firsts: VecDeque<Request> = VecDeque::new();
            let mut refits: VecDeque<Request> = VecDeque::new();
            loop {
                let waiting = !firsts.is_empty() || !refits.is_empty();
                tokio::select! {
                    biased;
                    req = rx.recv() => match req {
                        Some(r) if r.first => firsts.push_back(r),
                        Some(r) => refits.push_back(r),
                        None => return,
                    },
                    permit = permits.clone().acquire_owned(), if waiting => {
                        let Ok(permit) = permit else { return };
                        let Some(req) = firsts.pop_front().or_else(|| refits.pop_front()) else {
                            continue;
                        };
                        let (client, cfg, pool, done) =
                            (client.clone(), cfg.clone(), pool.clone(), done.clone());
                        inner.spawn(async move {
                            run(&client, &cfg, req, &pool, &done).await;
                            drop(permit);
                        });
                    }
                }
            }
        });
        Fetcher { tx }
    }

    /// Queues a request.
    pub fn submit(&self, req: Request) {
        // The task only ends with the runtime, i.e. at shutdown.
        let _ = self.tx.send(req);
    }
}

async fn run(
    client: &Client,
    cfg: &FetchConfig,
    req: Request,
    pool: &Pool,
    done: &mpsc::Sender<Done>,
) {
    let started = Instant::now();
    let wanted: Vec<(String, Labels)> = req
        .series
        .iter()
        .map(|(_, _, id, labels)| (id.to_string(), labels.clone()))
        .collect();
    let now = chrono::Utc::now().timestamp();
    let kind = if req.first { "new" } else { "refit" };
    match history::fetch(
        client, &cfg.query, &wanted, req.fleet, now, cfg.span, cfg.step,
    )
    .await
    {
        Ok((mut grid, stats)) => {
            drop(wanted);
            let mut found = 0usize;
            for (slot, generation, id, _) in req.series {
                match grid.take(&id) {
                    Some(h) if h.count() > 0 => {
                        found += 1;
                        let _ = done.send(Done::Fetched { slot, generation });
                        pool.submit(Job::Fit {
                            slot,
                            generation,
                            id,
                            history: h,
                            first: req.first,
                        });
                    }
                    _ => {
                        let _ = done.send(Done::NotYet {
                            slot,
                            generation,
                            have: 0,
                        });
                    }
                }
            }
            let level = found >= 100 || started.elapsed().as_secs() >= 5;
            let text = format!(
                "history of {found} {kind} series fetched in {:.1}s ({} range queries{})",
                started.elapsed().as_secs_f64(),
                stats.requests,
                if stats.filtered {
                    ", restricted to them"
                } else {
                    ", whole query"
                }
            );
            if level {
                tracing::info!("{text}");
            } else {
                tracing::debug!("{text}");
            }
        }
        Err(e) => {
            tracing::warn!(
                "fetching the history of {} {kind} series failed after {:.1}s: {e} (retried with backoff)",
                req.series.len(),
                started.elapsed().as_secs_f64()
            );
            let error = e.to_string();
            for (slot, generation, _, _) in req.series {
                let _ = done.send(Done::Failed {
                    slot,
                    generation,
                    error: error.clone(),
                });
            }
        }
    }
}
