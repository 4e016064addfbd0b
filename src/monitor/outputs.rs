//! Where judged samples go. The poll loop makes one [`Judged`] record per
//! sample and hands it to every [`Output`]: the sink (InfluxDB or the
//! line-protocol file), the JSON-lines logs, the HTTP API and the live line
//! on stdout. Each output batches what it needs and acts once per poll.

mod api;
mod live;
mod logs;
mod notify;
mod sink;

pub use self::{
    api::ApiOutput, live::LiveLine, logs::LogFiles, notify::NotifyOutput, sink::SinkOutput,
};

use std::sync::Arc;

use super::{failover::SourceKind, horizon::Band, table::Counts};
use crate::{
    detect::{capacity::CapacityVerdict, Detection},
    status::Report,
};

/// One sample as judged.
#[derive(Debug, Clone, Copy)]
pub struct Judged<'a> {
    /// Series id.
    pub series: &'a str,
    /// Host tag.
    pub host: &'a str,
    /// Where it came from.
    pub source: SourceKind,
    /// Unix seconds.
    pub timestamp: i64,
    /// Value, percent.
    pub actual: f64,
    /// The band (`None` while warming up).
    pub band: Option<Band>,
    /// The verdict (`None` while warming up).
    pub detection: Option<Detection>,
    /// An alert is firing for the series (the state).
    pub alert: bool,
    /// An alert fired with this sample.
    pub onset: bool,
    /// The series' alert resolved with this sample.
    pub resolved: bool,
    /// Judged by a short-history model.
    pub short_history: bool,
    /// When the series' model was made (Unix seconds).
    pub trained_at: Option<i64>,
    /// The threshold multiplier.
    pub threshold: f64,
    /// The `alert_overrides` entry the series alerts with (`None`: the
    /// top level).
    pub alert_override: Option<&'a str>,
    /// The capacity warning in force after this sample, and whether it
    /// started or cleared with it.
    pub capacity: CapacityVerdict,
}

/// What a poll ended with.
#[derive(Debug, Clone, Copy)]
pub struct PollEnd<'a> {
    /// Wall clock, Unix seconds.
    pub now: i64,
    /// Source of this poll.
    pub source: SourceKind,
    /// Series counts.
    pub counts: Counts,
    /// The run's counters.
    pub report: &'a Report,
    /// Series dropped this poll.
    pub dropped: &'a [Arc<str>],
    /// Prometheus answered this poll.
    pub prometheus_up: bool,
}

/// A consumer of judged samples.
pub trait Output {
    /// One judged sample.
    fn record(&mut self, j: &Judged<'_>);
    /// The poll is over.
    fn end_poll(&mut self, end: &PollEnd<'_>);
}
