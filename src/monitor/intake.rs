//! Series intake: each poll's samples from the source that serves it
//! (Prometheus, or the simulation while it is unreachable), and each
//! sample judged against its series' band on the way to the outputs.

use std::{sync::Arc, time::Duration};

use super::{
    failover::{Decision, Event, Outcome, SourceKind},
    fanout::Outputs,
    horizon,
    outputs::Judged,
    table::{NewSeries, Origin},
    Monitor, MonitorError, Sample, LOG_EVERY_SERIES_UP_TO,
};
use crate::{
    detect::{
        capacity::{CapacityVerdict, Change},
        Decider, Severity,
    },
    source::prometheus::{self, Labels},
};

impl Monitor<'_> {
    /// Asks the source for this poll's samples.
    pub(super) fn poll(&mut self, now: i64) -> Result<(SourceKind, Vec<Sample>), MonitorError> {
        let query = &self.settings.prometheus.query;
        let asked = if self.failover.probing() {
            &self.probe
        } else {
            &self.client
        };
        // Replicas evaluate the query at the same instants (multiples of
        // the interval), so the replicas of a series write identical points.
        let at = self
            .settings
            .monitor
            .shard
            .is_sharded()
            .then(|| aligned(now, self.settings.monitoring_interval));
        let polled = self.rt.block_on(asked.query_at(query, at));
        let outcome = match &polled {
            Ok(rows) => Outcome::Answered(rows.len()),
            Err(e) if e.is_unreachable() => Outcome::Unreachable(e.to_string()),
            Err(e) => Outcome::Refused(e.to_string()),
        };
        let (decision, event) = self.failover.on_poll(outcome);
        match event {
            Some(Event::ToSimulation(reason)) => tracing::warn!(
                "SIMULATION: {reason}; switching to the simulated CPU source \
                 (points tagged source=simulation) until Prometheus answers"
            ),
            Some(Event::BackToPrometheus) => tracing::warn!(
                "Prometheus at {} answers again: back to real data",
                self.client.url()
            ),
            Some(Event::Failed { n, of, reason }) => {
                tracing::warn!("poll failed ({n}/{of}): {reason}")
            }
            Some(Event::Refused(message)) => tracing::error!("{message}"),
            Some(Event::Empty) => {
                tracing::warn!("the query returned no series (yet); nothing to monitor this poll")
            }
            None => {}
        }
        self.report.source_switches = self.failover.switches();
        Ok(match decision {
            Decision::Real => (
                SourceKind::Prometheus,
                polled
                    .unwrap_or_default()
                    .into_iter()
                    .map(|r| {
                        let id = prometheus::series_id(&r.labels);
                        (id, r.labels, r.timestamp, r.value)
                    })
                    .collect(),
            ),
            Decision::Simulate => {
                self.report.simulation_ticks += 1;
                // Never two simulated polls in one second, and none in the
                // second this run started (a run killed in it may have
                // stamped it): wait for the next second rather than stamp
                // the future.
                let mut ts = now;
                if ts <= self.last_sim_ts {
                    let wall = chrono::Utc::now();
                    let wait_ms = (self.last_sim_ts + 1 - wall.timestamp()) * 1000
                        - i64::from(wall.timestamp_subsec_millis());
                    std::thread::sleep(Duration::from_millis(wait_ms.max(0) as u64));
                    ts = self.last_sim_ts + 1;
                }
                self.last_sim_ts = ts;
                let sim = &mut self.simulator;
                let samples = self
                    .sim_hosts
                    .iter()
                    .map(|h| (h.clone(), Labels::new(), ts, sim.sample(ts).0))
                    .collect();
                (SourceKind::Simulation, samples)
            }
            Decision::Skip => (self.failover.source(), Vec::new()),
            Decision::Fatal(_) => {
                return Err(MonitorError::BadQuery(
                    polled.expect_err("a refused poll is an error"),
                ))
            }
        })
    }

    /// Judges every sample against its series' band.
    pub(super) fn judge(&mut self, source: SourceKind, samples: Vec<Sample>, out: &mut Outputs) {
        let now_ms = self.now_ms();
        let origin = match source {
            SourceKind::Prometheus => Origin::Prometheus,
            SourceKind::Simulation => Origin::Simulation,
        };
        let interval_width = self.settings.prophet.interval_width;
        let shard = self.settings.monitor.shard;
        let mut others = 0usize;
        let decisions = &mut self.decisions;
        for (id, labels, ts, value) in samples {
            if !shard.owns(&id) {
                others += 1;
                continue;
            }
            let settings = &self.settings;
            let (slot, new) = self.table.observe(&id, now_ms, || {
                let group = settings.alert_group_of(&labels);
                let decision = settings.decision_of(group);
                NewSeries {
                    host: Arc::from(match origin {
                        Origin::Prometheus => prometheus::host_of(&labels),
                        Origin::Simulation => id.clone(),
                    }),
                    labels,
                    origin,
                    alert_override: group.map(|i| settings.alert_groups[i].text.clone()),
                    decider: decisions
                        .as_mut()
                        .and_then(|k| k.claim(&id, &decision))
                        .unwrap_or_else(|| Decider::new(decision)),
                }
            });
            if new && self.table.counts().series <= LOG_EVERY_SERIES_UP_TO {
                tracing::info!("new series {id}: warming up until its model is ready");
            }
            let Some(e) = self.table.get_mut(slot) else {
                continue;
            };
            let (band, verdict) = match e.horizon.as_deref() {
                Some(h) => judge_sample(&mut e.decider, h, ts, value, interval_width),
                None => (None, None),
            };
            let detection = verdict.map(|v| v.detection);
            let alert = verdict.is_some_and(|v| v.alert);
            let capacity = match (band, e.horizon.as_deref()) {
                (Some(b), Some(h)) => e.capacity.update(
                    &self.settings.monitor.capacity,
                    self.settings.monitor.capacity.threshold,
                    ts,
                    value,
                    b.yhat,
                    |t| h.band_at(t).map(|b| b.yhat),
                ),
                _ => CapacityVerdict::default(),
            };
            let model = e.model.as_ref();
            out.record(&Judged {
                series: &e.id,
                host: &e.host,
                source,
                timestamp: ts,
                actual: value,
                band,
                detection,
                alert,
                onset: verdict.is_some_and(|v| v.onset),
                resolved: verdict.is_some_and(|v| v.resolved),
                short_history: band.is_some()
                    && model.is_some_and(|m| m.compact.is_short_history()),
                trained_at: model.map(|m| m.trained_at),
                threshold: e.decider.settings().multiplier,
                alert_override: e.alert_override.as_deref(),
                capacity,
            });
            let r = &mut self.report;
            r.samples += 1;
            r.alert_onsets += u64::from(verdict.is_some_and(|v| v.onset));
            r.alert_resolutions += u64::from(verdict.is_some_and(|v| v.resolved));
            match capacity.change {
                Change::Onset => {
                    r.capacity_warnings += 1;
                    if let (Some(c), true) = (capacity.warning, self.notes.line()) {
                        tracing::warn!(
                            "capacity warning for {}: {value:.1}% now, predicted to reach {:.0}% in {}",
                            e.host,
                            c.threshold,
                            crate::detect::capacity::human_duration(c.in_seconds)
                        );
                    }
                }
                Change::Cleared => r.capacity_cleared += 1,
                Change::None => {}
            }
            let (Some(d), Some(b)) = (detection, band) else {
                r.warming_samples += 1;
                continue;
            };
            if !d.is_anomaly {
                continue;
            }
            e.anomalies += 1;
            *r.anomalies_by_severity
                .entry(d.severity.as_str().to_string())
                .or_default() += 1;
            r.alerts += u64::from(alert);
            if (d.severity == Severity::Critical || alert) && self.notes.line() {
                tracing::warn!(
                    "anomaly on {}: {value:.1}% vs forecast {:.1} [{:.1}, {:.1}], {} score {:.2}",
                    e.host,
                    b.yhat,
                    b.lower,
                    b.upper,
                    d.severity.as_str(),
                    d.score
                );
            }
        }
        if others > 0 || shard.is_sharded() {
            self.report.series_other_shards = others;
        }
    }
}

/// Judges one sample of a series: its band from the horizon (none outside
/// it) and the decision path's verdict, the same implementation
/// `--mode evaluate` runs ([`crate::evaluate::decide_all`]).
pub fn judge_sample(
    decider: &mut Decider,
    horizon: &horizon::Horizon,
    ts: i64,
    value: f64,
    interval_width: f64,
) -> (Option<horizon::Band>, Option<crate::detect::Verdict>) {
    let band = horizon.band_at(ts);
    let verdict = band.map(|b| decider.update(ts, value, b.yhat, b.lower, b.upper, interval_width));
    (band, verdict)
}

/// The last multiple of `interval` at or before `now` (Unix seconds).
fn aligned(now: i64, interval: Duration) -> i64 {
    let i = (interval.as_secs() as i64).max(1);
    now.div_euclid(i) * i
}
