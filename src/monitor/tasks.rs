//! Model upkeep between polls: the workers' and the fetcher's answers
//! applied to the table, and the tasks that fell due (train, refit, new
//! horizon, drop) sent to them.

use std::sync::Arc;

use super::{
    fetcher,
    table::{self, Origin, Task},
    workers::{self, Done, Job, PresetKind},
    Monitor, LOG_EVERY_SERIES_UP_TO, LOG_LINES_PER_POLL,
};

impl Monitor<'_> {
    /// Applies the answers that arrived.
    pub(super) fn drain(&mut self) {
        while let Ok(d) = self.done.try_recv() {
            self.apply(d);
        }
    }

    pub(super) fn apply(&mut self, d: Done) {
        let now = self.now_ms();
        let small = self.table.counts().series <= LOG_EVERY_SERIES_UP_TO;
        match d {
            Done::Fitted {
                slot,
                generation,
                model,
                horizon,
                seconds,
                refit_in,
            } => {
                let Some(e) = self.live(slot, generation) else {
                    return;
                };
                if small || self.notes.lines < LOG_LINES_PER_POLL {
                    tracing::info!(
                        "model for {} ready: {} from {} ({} points){}",
                        e.id,
                        model.compact.kind,
                        model.trained_on,
                        model.compact.points,
                        if model.compact.is_short_history() {
                            ", short history: judged against its level until two days are in"
                        } else {
                            ""
                        }
                    );
                }
                let id = e.id.clone();
                self.notes.line();
                self.report.trainings += 1;
                self.report.training_seconds_total += seconds;
                self.notes.ready += 1;
                // Replicas of a series refit at the same wall-clock instants
                // (so on the same history, into the same model).
                let shard = self.settings.monitor.shard;
                let refit_in = refit_in.or_else(|| {
                    (shard.replication() > 1 && !model.compact.is_short_history()).then(|| {
                        let now_ms = chrono::Utc::now().timestamp_millis();
                        crate::shard::next_phase_ms(
                            &id,
                            now_ms,
                            self.settings.retrain_interval,
                            self.settings.prometheus.training_step,
                        ) - now_ms
                    })
                });
                self.table
                    .on_model(slot, generation, model, horizon, now, refit_in);
            }
            Done::NotYet {
                slot,
                generation,
                have,
            } => {
                let min = self.settings.monitor.min_history.as_secs();
                let id = self.table.get(slot).map(|e| e.id.clone());
                if self.table.on_not_yet(slot, generation, have, now) {
                    self.notes.not_yet += 1;
                    if let Some(id) = id.filter(|_| small || self.notes.line()) {
                        tracing::info!(
                            "{id}: {have}s of history in Prometheus, min_history is {min}s: warming up until then"
                        );
                    }
                }
            }
            Done::Failed {
                slot,
                generation,
                error,
            } => {
                let Some(e) = self.live(slot, generation) else {
                    return;
                };
                let (id, kept) = (e.id.clone(), e.model.is_some());
                self.report.training_failures += 1;
                self.notes.failed += 1;
                let wait = self.table.on_failed(slot, generation, now) / 1000;
                if small || self.notes.line() {
                    if kept {
                        tracing::error!(
                            "retraining {id} failed, keeping the old model: {error} (next try in {wait}s)"
                        );
                    } else {
                        tracing::error!(
                            "cannot train a model for {id} (still warming up): {error} (next try in {wait}s)"
                        );
                    }
                }
                self.notes.first_error.get_or_insert(error);
            }
            Done::Horizon {
                slot,
                generation,
                horizon,
            } => self.table.on_horizon(slot, generation, horizon, now),
            Done::HorizonFailed {
                slot,
                generation,
                error,
            } => {
                if let Some(e) = self.live(slot, generation) {
                    tracing::warn!("cannot draw a new band for {}: {error}", e.id);
                }
                self.table.on_horizon_failed(slot, generation, now);
            }
            Done::NeedFetch { slot, generation } => self.refetch.push((slot, generation)),
            Done::Fetched { slot, generation } => self.table.on_fetched(slot, generation),
        }
    }

    /// Runs what fell due; returns the series dropped for vanishing.
    pub(super) fn due(&mut self) -> Vec<Arc<str>> {
        let (due, dropped) = self.table.take_due(self.now_ms());
        self.dispatch(due);
        let grace = self.settings.monitor.series_grace_period.as_secs();
        for id in &dropped {
            self.report.series_dropped += 1;
            self.notes.dropped += 1;
            if self.notes.line() {
                tracing::warn!("series {id} has not been seen for {grace}s: dropped");
            }
        }
        self.notes.summarise();
        dropped
    }

    /// Sends the due tasks to the workers and the fetcher.
    fn dispatch(&mut self, due: Vec<table::Due>) {
        let mut firsts = Vec::new();
        let mut refits = Vec::new();
        for (slot, generation) in std::mem::take(&mut self.refetch) {
            if let Some(e) = self.live(slot, generation) {
                firsts.push((slot, generation, e.id.clone(), e.labels.clone()));
            }
        }
        let now_s = chrono::Utc::now().timestamp();
        for d in due {
            let Some(e) = self.table.get(d.slot) else {
                continue;
            };
            let (slot, generation) = (d.slot, d.generation);
            let job = match (d.task, e.origin) {
                (Task::Horizon, _) => match e.model.clone() {
                    Some(model) => Job::Horizon {
                        slot,
                        generation,
                        model,
                    },
                    None => continue,
                },
                (Task::Train { first }, Origin::Simulation) => {
                    if self.presets.simulation {
                        Job::Preset {
                            slot,
                            generation,
                            kind: PresetKind::Simulation,
                            refit_in: None,
                        }
                    } else {
                        Job::Dataset {
                            slot,
                            generation,
                            first,
                        }
                    }
                }
                (Task::Train { first: true }, Origin::Prometheus) => {
                    let selector = &self.settings.monitor.model_selector;
                    let saved = self
                        .model_dir
                        .as_ref()
                        .map(|dir| workers::model_file(dir, &e.id))
                        .filter(|p| p.exists());
                    if self.presets.selected && selector.matches(&e.labels) {
                        tracing::info!(
                            "{} matches model_selector: judged with {} (refitted from its own history at {})",
                            e.id,
                            self.settings.model_path.display(),
                            crate::dataset::format_ts(self.presets.stale_at.max(now_s))
                        );
                        Job::Preset {
                            slot,
                            generation,
                            kind: PresetKind::Selected,
                            refit_in: Some(self.presets.refit_in(now_s)),
                        }
                    } else if let Some(path) = saved {
                        Job::Saved {
                            slot,
                            generation,
                            path,
                        }
                    } else {
                        firsts.push((slot, generation, e.id.clone(), e.labels.clone()));
                        continue;
                    }
                }
                (Task::Train { first: false }, Origin::Prometheus) => {
                    refits.push((slot, generation, e.id.clone(), e.labels.clone()));
                    continue;
                }
            };
            if !matches!(job, Job::Horizon { .. }) {
                // No history to fetch: straight to the workers.
                self.table.on_fetched(slot, generation);
            }
            self.pool.submit(job);
        }
        let fleet = self.table.counts().series;
        for (first, series) in [(true, firsts), (false, refits)] {
            if !series.is_empty() {
                self.fetcher.submit(fetcher::Request {
                    first,
                    series,
                    fleet,
                });
            }
        }
    }
}
