//! Where this run's judged samples go: the sink the settings ask for
//! (InfluxDB with its spool and dead-letter file, or a local file), the
//! alert router, and the fan-out of every judged sample and poll end to
//! each output of [`super::outputs`].

use std::time::Duration;

use super::{
    outputs::{ApiOutput, Judged, LiveLine, LogFiles, NotifyOutput, Output, PollEnd, SinkOutput},
    MonitorError,
};
use crate::{
    config::Settings,
    notify::Notifier,
    sink::{self, influx, Batching, Destination, SinkHandle},
};

/// The alert router for these settings (`None`: nothing configured).
pub(super) fn notifier(settings: &Settings) -> Option<NotifyOutput> {
    let n = Notifier::spawn(settings.notify.clone())?;
    let s = &settings.notify;
    tracing::info!(
        "alerts go to {}{}{} (link: {})",
        if s.alertmanager_url.is_empty() {
            String::new()
        } else {
            format!("Alertmanager {}", s.alertmanager_url)
        },
        if s.alertmanager_url.is_empty() || s.webhook_url.is_empty() {
            ""
        } else {
            " and "
        },
        if s.webhook_url.is_empty() {
            String::new()
        } else {
            format!("webhook {}", s.webhook_url)
        },
        if s.dashboard_url.is_empty() {
            "none"
        } else {
            &s.dashboard_url
        }
    );
    Some(NotifyOutput::new(n))
}

/// The sink for these settings.
pub(super) fn sink_for(settings: &Settings) -> Result<SinkHandle, MonitorError> {
    let i = &settings.influxdb;
    let dest = if i.enabled {
        let target = influx::Target {
            api: i.api,
            url: i.url.clone(),
            org: i.org.clone(),
            bucket: i.bucket.clone(),
            token: i.token.clone(),
            timeout: i.timeout,
            retries: i.retry_attempts,
            backoff: i.retry_interval,
        };
        if target.api == influx::Api::V2 {
            match sink::influx2::check(&target, target.timeout.min(Duration::from_secs(5)))? {
                sink::influx2::Readiness::Ready { version } => tracing::info!(
                    "InfluxDB {version} at {}: organisation `{}` and bucket `{}` found",
                    target.url,
                    target.org,
                    target.bucket
                ),
                sink::influx2::Readiness::NotInfluxDb2(why) => tracing::warn!(
                    "{} does not answer as InfluxDB 2 does ({why}): writing with the v2 write \
                     API without checking the organisation and bucket",
                    target.url
                ),
                sink::influx2::Readiness::Unreachable(why) => tracing::warn!(
                    "InfluxDB at {} is not reachable ({why}): points are spooled until it is",
                    target.url
                ),
            }
        }
        Destination::Influx {
            target,
            spool_dir: settings.log_dir.join("spool"),
            spool_max_bytes: i.spool_max_bytes,
            dead_letter: settings.log_dir.join("dead_letter.lp"),
        }
    } else {
        Destination::File(settings.log_dir.join("points.lp"))
    };
    Ok(sink::spawn(
        dest,
        Batching {
            batch_size: i.batch_size,
            flush_interval: i.flush_interval,
        },
        Some(&settings.log_dir.join("wal")),
    )?)
}

/// The outputs every judged sample goes to.
pub(super) struct Outputs {
    pub(super) sink: SinkOutput,
    pub(super) logs: LogFiles,
    pub(super) api: ApiOutput,
    pub(super) notify: Option<NotifyOutput>,
    pub(super) live: Option<LiveLine>,
}

impl Outputs {
    /// Every output, in the order they are told.
    fn each(&mut self, mut f: impl FnMut(&mut dyn Output)) {
        f(&mut self.sink);
        f(&mut self.logs);
        f(&mut self.api);
        if let Some(n) = &mut self.notify {
            f(n);
        }
        if let Some(l) = &mut self.live {
            f(l);
        }
    }

    pub(super) fn record(&mut self, j: &Judged<'_>) {
        self.each(|o| o.record(j));
    }

    pub(super) fn end_poll(&mut self, end: &PollEnd<'_>) {
        self.each(|o| o.end_poll(end));
    }

    /// Stops the sink and the notifier (each bounded in time).
    pub(super) fn close(self) -> LogFiles {
        self.sink.close();
        if let Some(n) = self.notify {
            n.close();
        }
        self.logs
    }
}
