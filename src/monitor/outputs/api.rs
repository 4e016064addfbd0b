//! The HTTP API's snapshot of the fleet.

use std::sync::Arc;

use super::{Judged, Output, PollEnd};
use crate::api::{self, ApiState};

/// The HTTP API's snapshot, published once per poll.
pub struct ApiOutput {
    state: Arc<ApiState>,
    points: Vec<api::Published>,
}

impl ApiOutput {
    /// Publishes to `state`.
    pub fn new(state: Arc<ApiState>) -> Self {
        ApiOutput {
            state,
            points: Vec::new(),
        }
    }
}

impl Output for ApiOutput {
    fn record(&mut self, j: &Judged<'_>) {
        let d = j.detection.as_ref();
        self.points.push(api::Published {
            series: j.series.to_string(),
            host: j.host.to_string(),
            point: api::SeriesPoint {
                timestamp: j.timestamp,
                actual: j.actual,
                yhat: j.band.map(|b| b.yhat),
                yhat_lower: j.band.map(|b| b.lower),
                yhat_upper: j.band.map(|b| b.upper),
                score: d.map(|d| d.score),
                is_anomaly: d.is_some_and(|d| d.is_anomaly),
                severity: d.map(|d| d.severity.as_str()),
            },
            alert: j.alert,
            onset: j.onset,
            resolved: j.resolved,
            state: api::SeriesState {
                warming_up: j.band.is_none(),
                short_history: j.short_history,
                trained_at: j.trained_at,
                capacity: j.capacity.warning.map(|w| api::CapacityState {
                    crossing_in_seconds: w.in_seconds,
                    threshold: w.threshold,
                    predicted_value: w.predicted,
                    at: j.timestamp,
                }),
                alert_override: j.alert_override.map(str::to_string),
            },
            capacity_change: j.capacity.change.event(),
        });
    }

    fn end_poll(&mut self, end: &PollEnd<'_>) {
        let dropped: Vec<String> = end.dropped.iter().map(|d| d.to_string()).collect();
        self.state.publish(
            std::mem::take(&mut self.points),
            &dropped,
            end.prometheus_up,
            end.report,
            end.counts.warming,
        );
    }
}
