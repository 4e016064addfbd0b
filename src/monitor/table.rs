//! The series table: every series the monitor knows, with its model, band
//! and alert state, and a due-queue of what each needs next (train, refit,
//! a new horizon, the grace-period check). A poll touches only the series it
//! has samples for and the tasks that fell due: O(1) per series per poll.
//!
//! Pure state on a caller-supplied clock (milliseconds), so every rule is
//! tested with a fake clock:
//! - a new series is due to train at once; a vanished one is dropped once
//!   it has not been seen for the grace period;
//! - after a fit: a refit after `retrain` (short-history stages sooner, as
//!   their history grows), a new horizon when half of it is used, a forecast
//!   table (MSTL) refitted before it runs out;
//! - too little history: retried once it can have enough; a failure: retried
//!   with exponential backoff, the old model (if any) kept meanwhile;
//! - one task in flight per series.

use std::{
    cmp::Reverse,
    collections::{BinaryHeap, HashMap},
    sync::Arc,
};

use super::horizon::{Compact, Horizon};
use crate::{
    detect::{capacity::CapacityWatch, Decider},
    source::prometheus::Labels,
};

/// Index of a series in the table.
pub type Slot = u32;

/// First retry after a failed fetch or fit, ms; doubles per failure.
const BACKOFF_BASE_MS: i64 = 30_000;
/// Longest retry wait, ms.
const BACKOFF_MAX_MS: i64 = 15 * 60_000;
/// A horizon that falls due while a fit is in flight waits this long, ms.
const DEFER_MS: i64 = 30_000;
/// A train that falls due while a horizon is being drawn (milliseconds of
/// work) waits this long, ms.
const DEFER_TRAIN_MS: i64 = 1_000;

/// Where a series' samples come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// A Prometheus series.
    Prometheus,
    /// The simulated source.
    Simulation,
}

/// What is in flight for a series.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pending {
    /// Nothing.
    None,
    /// History being fetched.
    Fetch,
    /// Waiting for a model worker.
    Fit,
    /// A new horizon being drawn.
    Horizon,
}

/// A series' model and where it came from.
#[derive(Debug, Clone)]
pub struct SeriesModel {
    /// The forecaster.
    pub compact: Compact,
    /// When it was made (Unix seconds).
    pub trained_at: i64,
    /// What it was trained on, for logs and reports.
    pub trained_on: Arc<str>,
}

/// One series.
#[derive(Debug)]
pub struct Entry {
    /// Series id.
    pub id: Arc<str>,
    /// Host tag.
    pub host: Arc<str>,
    /// Labels (empty for simulated series).
    pub labels: Labels,
    /// Source.
    pub origin: Origin,
    /// Model, once there is one.
    pub model: Option<Arc<SeriesModel>>,
    /// Band for the coming hours.
    pub horizon: Option<Arc<Horizon>>,
    /// The decision state (alerts, calibration, accepted level shift).
    pub decider: Decider,
    /// The `alert_overrides` entry it alerts with (`None`: the top level).
    pub alert_override: Option<Arc<str>>,
    /// The capacity-warning state.
    pub capacity: CapacityWatch,
    /// Last sample (table clock, ms).
    pub last_seen: i64,
    /// In flight.
    pub pending: Pending,
    /// Failures in a row.
    pub failures: u32,
    /// "Not enough history" was logged.
    pub said_not_yet: bool,
    /// Samples seen.
    pub samples: u64,
    /// Samples flagged.
    pub anomalies: u64,
    generation: u32,
    /// The train and horizon tasks that count (earlier ones in the queue
    /// were superseded).
    next_train: i64,
    next_horizon: i64,
}

/// What fell due.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Task {
    /// Fetch history and fit (`first`: the series has no model yet).
    Train {
        /// No model yet.
        first: bool,
    },
    /// Draw a new horizon from the model.
    Horizon,
}

/// A due task for a live series.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Due {
    /// The series.
    pub slot: Slot,
    /// Its generation (stale answers are ignored).
    pub generation: u32,
    /// What to do.
    pub task: Task,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Train,
    Horizon,
    Vanish,
}

/// Timing rules, ms.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// Refit period.
    pub retrain: i64,
    /// Unseen this long: dropped.
    pub grace: i64,
    /// Own history a series needs.
    pub min_history: i64,
    /// Training grid step.
    pub step: i64,
}

/// Series counts, kept as the table changes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Series known.
    pub series: usize,
    /// Without a model (warming up).
    pub warming: usize,
    /// Fetching history.
    pub fetching: usize,
    /// Waiting for or in a fit.
    pub fitting: usize,
    /// Judged with a short-history model.
    pub short: usize,
}

/// The table.
#[derive(Debug)]
pub struct Table {
    timing: Timing,
    index: HashMap<Arc<str>, Slot>,
    entries: Vec<Option<Entry>>,
    generations: Vec<u32>,
    free: Vec<Slot>,
    queue: BinaryHeap<Reverse<(i64, Slot, u32, Kind)>>,
    counts: Counts,
}

/// A series seen for the first time.
#[derive(Debug)]
pub struct NewSeries {
    /// Host tag.
    pub host: Arc<str>,
    /// Labels.
    pub labels: Labels,
    /// Source.
    pub origin: Origin,
    /// The decision state.
    pub decider: Decider,
    /// The `alert_overrides` entry whose settings it alerts with, as
    /// written (`None`: the top level's).
    pub alert_override: Option<Arc<str>>,
}

impl Table {
    /// An empty table.
    pub fn new(timing: Timing) -> Table {
        Table {
            timing,
            index: HashMap::new(),
            entries: Vec::new(),
            generations: Vec::new(),
            free: Vec::new(),
            queue: BinaryHeap::new(),
            counts: Counts::default(),
        }
    }

    /// Counts.
    pub fn counts(&self) -> Counts {
        self.counts
    }

    /// Slot of `id`, if known.
    pub fn slot(&self, id: &str) -> Option<Slot> {
        self.index.get(id).copied()
    }

    /// The entry in `slot`.
    pub fn get(&self, slot: Slot) -> Option<&Entry> {
        self.entries.get(slot as usize).and_then(Option::as_ref)
    }

    /// The entry in `slot`, mutable (model, horizon and pending go through
    /// the `on_*` methods, which keep the counts).
    pub fn get_mut(&mut self, slot: Slot) -> Option<&mut Entry> {
        self.entries.get_mut(slot as usize).and_then(Option::as_mut)
    }

    /// The entry in `slot` if it is still generation `generation`.
    fn live(&mut self, slot: Slot, generation: u32) -> Option<&mut Entry> {
        self.get_mut(slot).filter(|e| e.generation == generation)
    }

    /// Every live entry.
    pub fn iter(&self) -> impl Iterator<Item = &Entry> {
        self.entries.iter().flatten()
    }

    fn push(&mut self, at: i64, slot: Slot, kind: Kind) {
        let generation = self.generations[slot as usize];
        self.queue.push(Reverse((at, slot, generation, kind)));
    }

    /// Records a sample of `id` at `now`; a new series is created with
    /// `make()` and is due to train at once. Returns its slot and whether it
    /// is new.
    pub fn observe(
        &mut self,
        id: &str,
        now: i64,
        make: impl FnOnce() -> NewSeries,
    ) -> (Slot, bool) {
        if let Some(&slot) = self.index.get(id) {
            if let Some(e) = self.entries[slot as usize].as_mut() {
                e.last_seen = now;
                e.samples += 1;
            }
            return (slot, false);
        }
        let n = make();
        let id: Arc<str> = Arc::from(id);
        let slot = match self.free.pop() {
            Some(s) => s,
            None => {
                self.entries.push(None);
                self.generations.push(0);
                (self.entries.len() - 1) as Slot
            }
        };
        let generation = self.generations[slot as usize].wrapping_add(1);
        self.generations[slot as usize] = generation;
        self.entries[slot as usize] = Some(Entry {
            id: id.clone(),
            host: n.host,
            labels: n.labels,
            origin: n.origin,
            model: None,
            horizon: None,
            decider: n.decider,
            alert_override: n.alert_override,
            capacity: CapacityWatch::new(),
            last_seen: now,
            pending: Pending::None,
            failures: 0,
            said_not_yet: false,
            samples: 1,
            anomalies: 0,
            generation,
            next_train: now,
            next_horizon: i64::MAX,
        });
        self.index.insert(id, slot);
        self.counts.series += 1;
        self.counts.warming += 1;
        self.push(now, slot, Kind::Train);
        self.push(now + self.timing.grace, slot, Kind::Vanish);
        (slot, true)
    }

    /// Pops every task due at `now`. Returns the tasks to run and the ids of
    /// series dropped for not being seen for the grace period.
    pub fn take_due(&mut self, now: i64) -> (Vec<Due>, Vec<Arc<str>>) {
        let mut due = Vec::new();
        let mut dropped = Vec::new();
        while let Some(&Reverse((at, slot, generation, kind))) = self.queue.peek() {
            if at > now {
                break;
            }
            self.queue.pop();
            let grace = self.timing.grace;
            let Some(e) = self.live(slot, generation) else {
                continue;
            };
            match kind {
                Kind::Vanish => {
                    if now - e.last_seen >= grace {
                        dropped.push(e.id.clone());
                        self.remove(slot);
                    } else {
                        let at = e.last_seen + grace;
                        self.push(at, slot, Kind::Vanish);
                    }
                }
                Kind::Train if at != e.next_train => {}
                Kind::Horizon if at != e.next_horizon => {}
                Kind::Train => match e.pending {
                    Pending::None => {
                        let first = e.model.is_none();
                        self.set_pending(slot, Pending::Fetch);
                        due.push(Due {
                            slot,
                            generation,
                            task: Task::Train { first },
                        });
                    }
                    // The fit in flight schedules the next train.
                    Pending::Fetch | Pending::Fit => {}
                    Pending::Horizon => self.schedule_train(slot, now + DEFER_TRAIN_MS),
                },
                Kind::Horizon => match (e.pending, e.model.is_some()) {
                    (Pending::None, true) => {
                        self.set_pending(slot, Pending::Horizon);
                        due.push(Due {
                            slot,
                            generation,
                            task: Task::Horizon,
                        });
                    }
                    (Pending::None, false) => {}
                    // Keep drawing bands if the fit in flight fails.
                    _ => self.defer_horizon(slot, now + DEFER_MS),
                },
            }
        }
        (due, dropped)
    }

    fn remove(&mut self, slot: Slot) {
        if let Some(e) = self.entries[slot as usize].take() {
            self.index.remove(&e.id);
            self.free.push(slot);
            self.counts.series -= 1;
            if e.model.is_none() {
                self.counts.warming -= 1;
            }
            if e.model
                .as_ref()
                .is_some_and(|m| m.compact.is_short_history())
            {
                self.counts.short -= 1;
            }
            match e.pending {
                Pending::Fetch => self.counts.fetching -= 1,
                Pending::Fit => self.counts.fitting -= 1,
                _ => {}
            }
        }
    }

    /// Marks what is in flight for `slot` (keeps the counts).
    pub fn set_pending(&mut self, slot: Slot, p: Pending) {
        let Some(e) = self.entries.get_mut(slot as usize).and_then(Option::as_mut) else {
            return;
        };
        match e.pending {
            Pending::Fetch => self.counts.fetching -= 1,
            Pending::Fit => self.counts.fitting -= 1,
            _ => {}
        }
        e.pending = p;
        match p {
            Pending::Fetch => self.counts.fetching += 1,
            Pending::Fit => self.counts.fitting += 1,
            _ => {}
        }
    }

    /// History arrived for `slot`: it waits for a model worker now.
    pub fn on_fetched(&mut self, slot: Slot, generation: u32) {
        if self.live(slot, generation).is_some() {
            self.set_pending(slot, Pending::Fit);
        }
    }

    /// A model (and its first horizon) for `slot`, fitted at `now`.
    /// Schedules the refit (after `refit_in` ms if given, else by the
    /// rules) and the next horizon.
    pub fn on_model(
        &mut self,
        slot: Slot,
        generation: u32,
        model: Arc<SeriesModel>,
        horizon: Arc<Horizon>,
        now: i64,
        refit_in: Option<i64>,
    ) {
        let t = self.timing;
        let Some(e) = self.live(slot, generation) else {
            return;
        };
        let was_warming = e.model.is_none();
        let was_short = e
            .model
            .as_ref()
            .is_some_and(|m| m.compact.is_short_history());
        let is_short = model.compact.is_short_history();
        // A short history is refitted as it doubles (each fit then sees
        // twice the data), a table before it runs out.
        let mut refit = t.retrain;
        if is_short {
            let have = 1000 * model.compact.points as i64 * t.step;
            refit = refit.min(have.max(t.min_history));
        }
        if let Some(end) = model.compact.table_end() {
            let left = 1000 * (end - horizon.start) - 1000 * super::horizon::HORIZON_SECONDS;
            refit = refit.min(left.max(t.step * 1000));
        }
        if !was_warming {
            // The new model saw the latest level: an accepted shift goes.
            e.decider.refitted();
        }
        e.model = Some(model);
        e.horizon = Some(horizon.clone());
        e.failures = 0;
        e.said_not_yet = false;
        self.set_pending(slot, Pending::None);
        if was_warming {
            self.counts.warming -= 1;
        }
        self.counts.short = self.counts.short + usize::from(is_short) - usize::from(was_short);
        self.schedule_train(slot, now + refit_in.unwrap_or(refit).max(0));
        self.schedule_horizon(slot, &horizon, now);
    }

    fn schedule_train(&mut self, slot: Slot, at: i64) {
        if let Some(e) = self.get_mut(slot) {
            e.next_train = at;
        }
        self.push(at, slot, Kind::Train);
    }

    fn defer_horizon(&mut self, slot: Slot, at: i64) {
        if let Some(e) = self.get_mut(slot) {
            e.next_horizon = at;
        }
        self.push(at, slot, Kind::Horizon);
    }

    fn schedule_horizon(&mut self, slot: Slot, horizon: &Horizon, now: i64) {
        // The grid is in data time (s), the clock in ms: the refresh is due
        // when half of the grid's span has passed on the clock.
        let at = now + (1000 * (horizon.refresh_at() - horizon.start)).max(1000);
        if let Some(e) = self.get_mut(slot) {
            e.next_horizon = at;
        }
        self.push(at, slot, Kind::Horizon);
    }

    /// A new horizon for `slot`.
    pub fn on_horizon(&mut self, slot: Slot, generation: u32, horizon: Arc<Horizon>, now: i64) {
        let Some(e) = self.live(slot, generation) else {
            return;
        };
        e.horizon = Some(horizon.clone());
        if e.pending == Pending::Horizon {
            self.set_pending(slot, Pending::None);
        }
        self.schedule_horizon(slot, &horizon, now);
    }

    /// `slot` has `have` seconds of history, less than it needs: tried again
    /// once it can have enough. Returns whether this is news (first time).
    pub fn on_not_yet(&mut self, slot: Slot, generation: u32, have: i64, now: i64) -> bool {
        let t = self.timing;
        let Some(e) = self.live(slot, generation) else {
            return false;
        };
        let news = !std::mem::replace(&mut e.said_not_yet, true);
        self.set_pending(slot, Pending::None);
        let wait = (t.min_history - 1000 * have).max(t.step * 1000).max(1000);
        self.schedule_train(slot, now + wait);
        news
    }

    /// Fetching or fitting `slot` failed: retried with backoff; returns the
    /// wait in ms.
    pub fn on_failed(&mut self, slot: Slot, generation: u32, now: i64) -> i64 {
        let t = self.timing;
        let Some(e) = self.live(slot, generation) else {
            return 0;
        };
        e.failures = e.failures.saturating_add(1);
        // Never later than the next regular refit would be.
        let base = BACKOFF_BASE_MS.min(t.retrain).max(1000);
        let wait = (base << (e.failures - 1).min(10)).min(BACKOFF_MAX_MS);
        self.set_pending(slot, Pending::None);
        self.schedule_train(slot, now + wait);
        wait
    }

    /// A horizon could not be drawn: retried soon.
    pub fn on_horizon_failed(&mut self, slot: Slot, generation: u32, now: i64) {
        if self.live(slot, generation).is_some() {
            self.set_pending(slot, Pending::None);
            self.defer_horizon(slot, now + BACKOFF_BASE_MS);
        }
    }

    /// Generation of the entry in `slot`.
    pub fn generation(&self, slot: Slot) -> u32 {
        self.generations.get(slot as usize).copied().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests;
