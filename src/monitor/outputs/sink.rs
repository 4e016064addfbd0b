//! Line protocol to the sink thread (InfluxDB or the line-protocol file).

use super::{Judged, Output, PollEnd};
use crate::{
    detect::capacity::Change,
    monitor::horizon::Band,
    sink::{schema, SinkHandle},
};

/// Line protocol to the sink thread, one message per poll.
pub struct SinkOutput {
    sink: SinkHandle,
    batch: Vec<schema::Point>,
}

impl SinkOutput {
    /// Writes to `sink`.
    pub fn new(sink: SinkHandle) -> Self {
        SinkOutput {
            sink,
            batch: Vec::new(),
        }
    }

    /// Sends what is batched, flushes, spools what cannot be written and
    /// stops the sink thread.
    pub fn close(self) {
        if !self.batch.is_empty() {
            self.sink.send(self.batch);
        }
        self.sink.close();
    }
}

impl Output for SinkOutput {
    fn record(&mut self, j: &Judged<'_>) {
        let b = j.band.unwrap_or(Band {
            yhat: f64::NAN,
            lower: f64::NAN,
            upper: f64::NAN,
        });
        self.batch.extend(schema::points(&schema::Sample {
            host: j.host,
            source: j.source.as_str(),
            timestamp: j.timestamp,
            actual: j.actual,
            yhat: b.yhat,
            lower: b.lower,
            upper: b.upper,
            detection: j.detection.as_ref(),
            alert: j.alert,
            threshold: j.threshold,
            short_history: j.short_history,
            onset: j.onset,
            resolved: j.resolved,
            capacity: j
                .capacity
                .warning
                .map(|w| (w.in_seconds, w.threshold, w.predicted)),
            capacity_cleared: j.capacity.change == Change::Cleared,
        }));
    }

    fn end_poll(&mut self, _: &PollEnd<'_>) {
        if !self.batch.is_empty() {
            self.sink.send(std::mem::take(&mut self.batch));
        }
    }
}
