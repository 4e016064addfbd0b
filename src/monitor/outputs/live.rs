//! The live line on stdout.

use super::{Judged, Output, PollEnd};
use crate::{detect::Severity, monitor::failover::SourceKind};

/// Flagged samples listed on the live line at most; the rest are counted.
const LIVE_LIST: usize = 5;

/// One line per poll on stdout.
#[derive(Default)]
pub struct LiveLine {
    flagged: usize,
    listed: Vec<String>,
    fired: Vec<String>,
    resolved: usize,
}

impl Output for LiveLine {
    fn record(&mut self, j: &Judged<'_>) {
        if j.onset {
            self.fired.push(j.host.to_string());
        }
        self.resolved += usize::from(j.resolved);
        let Some(d) = j.detection.filter(|d| d.is_anomaly) else {
            return;
        };
        self.flagged += 1;
        // Alerts and CRITICAL samples are listed before the line fills up
        // with others (at most four times as many).
        let wanted = self.listed.len() < LIVE_LIST || d.severity == Severity::Critical || j.onset;
        if wanted && self.listed.len() < 4 * LIVE_LIST {
            self.listed.push(format!(
                "{} {:.1}% {} (score {:.2}){}",
                j.host,
                j.actual,
                d.severity.as_str(),
                d.score,
                if j.onset { " ALERT" } else { "" }
            ));
        }
    }

    fn end_poll(&mut self, end: &PollEnd<'_>) {
        let c = end.counts;
        let mut state = format!("{} series", c.series);
        if c.series > 0 {
            let mut parts = Vec::new();
            if c.warming > 0 {
                let mut w = format!("{} warming up", c.warming);
                if c.fetching + c.fitting > 0 {
                    w.push_str(&format!(": {} fetching, {} fitting", c.fetching, c.fitting));
                }
                parts.push(w);
            }
            if c.short > 0 {
                parts.push(format!("{} short history", c.short));
            }
            if !parts.is_empty() {
                state.push_str(&format!(" ({})", parts.join(", ")));
            }
        }
        let anomalies = if self.flagged == 0 {
            "no anomalies".to_string()
        } else {
            let more = self.flagged.saturating_sub(self.listed.len());
            format!(
                "{} anomalies: {}{}",
                self.flagged,
                self.listed.join("; "),
                if more > 0 {
                    format!("; … {more} more")
                } else {
                    String::new()
                }
            )
        };
        let alerts = match (self.fired.len(), self.resolved) {
            (0, 0) => String::new(),
            (f, r) => {
                let mut names = self.fired.clone();
                names.truncate(LIVE_LIST);
                let more = f.saturating_sub(names.len());
                format!(
                    " | alerts: {f} fired{}{}, {r} resolved",
                    if f > 0 {
                        format!(" ({})", names.join(", "))
                    } else {
                        String::new()
                    },
                    if more > 0 {
                        format!(" +{more}")
                    } else {
                        String::new()
                    }
                )
            }
        };
        let r = end.report;
        let mut writes = format!("written {} spooled {}", r.points_written, r.spool_depth);
        if r.points_dead_lettered > 0 {
            writes.push_str(&format!(" dead-lettered {}", r.points_dead_lettered));
        }
        let trouble = r.spool_depth > 0 || r.points_dead_lettered > 0;
        if trouble && !r.last_write_error.is_empty() {
            writes.push_str(&format!(" (last error: {})", r.last_write_error));
        }
        println!(
            "{} | {} | {state} | {anomalies}{alerts} | {writes} | poll {:.3}s",
            crate::dataset::format_ts(end.now),
            if end.source == SourceKind::Simulation {
                "SIMULATION"
            } else {
                "prometheus"
            },
            r.last_tick_seconds
        );
        self.flagged = 0;
        self.listed.clear();
        self.fired.clear();
        self.resolved = 0;
    }
}
