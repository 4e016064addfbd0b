//! Alert onsets and resolutions, and capacity warnings, to Alertmanager
//! and the webhook.

use std::collections::BTreeMap;

use super::{Judged, Output, PollEnd};
use crate::{
    detect::capacity::Change,
    notify::{Alert, CapacityAlert, Notifier},
};

/// Alert onsets and resolutions to Alertmanager and the webhook
/// ([`crate::notify`]): keeps the alerts firing now, so each poll refreshes
/// them; a series that vanishes while firing is resolved.
pub struct NotifyOutput {
    notifier: Notifier,
    firing: BTreeMap<String, Alert>,
    /// Capacity warnings in force.
    warnings: BTreeMap<String, Alert>,
    events: Vec<Alert>,
}

impl NotifyOutput {
    /// Routes through `notifier`.
    pub fn new(notifier: Notifier) -> Self {
        NotifyOutput {
            notifier,
            firing: BTreeMap::new(),
            warnings: BTreeMap::new(),
            events: Vec::new(),
        }
    }

    /// Delivers what is queued and stops (bounded in time).
    pub fn close(self) {
        self.notifier.close();
    }
}

impl NotifyOutput {
    /// Capacity warnings: started, refreshed, cleared.
    fn capacity(&mut self, j: &Judged<'_>) {
        let c = j.capacity;
        let info = c.warning.map(|w| CapacityAlert {
            crossing_in_seconds: w.in_seconds,
            threshold: w.threshold,
            predicted: w.predicted,
        });
        match (c.change, info) {
            (Change::Onset, Some(info)) => {
                let a = Alert {
                    series: j.series.to_string(),
                    host: j.host.to_string(),
                    severity: "warning".into(),
                    value: j.actual,
                    yhat: j.band.map_or(f64::NAN, |b| b.yhat),
                    lower: f64::NAN,
                    upper: f64::NAN,
                    score: f64::NAN,
                    started: j.timestamp,
                    resolved: None,
                    capacity: Some(info),
                };
                self.warnings.insert(a.series.clone(), a.clone());
                self.events.push(a);
            }
            (Change::Cleared, _) => {
                if let Some(mut a) = self.warnings.remove(j.series) {
                    a.value = j.actual;
                    a.resolved = Some(j.timestamp);
                    self.events.push(a);
                }
            }
            (_, Some(info)) => {
                if let Some(a) = self.warnings.get_mut(j.series) {
                    a.value = j.actual;
                    a.capacity = Some(info);
                }
            }
            _ => {}
        }
    }
}

impl Output for NotifyOutput {
    fn record(&mut self, j: &Judged<'_>) {
        self.capacity(j);
        let (Some(d), Some(b)) = (&j.detection, j.band) else {
            return;
        };
        let latest = |a: &mut Alert| {
            a.value = j.actual;
            a.yhat = b.yhat;
            a.lower = d.lower_threshold;
            a.upper = d.upper_threshold;
            a.score = d.score;
        };
        if j.onset {
            let mut a = Alert {
                series: j.series.to_string(),
                host: j.host.to_string(),
                severity: d.severity.as_str().to_string(),
                value: 0.0,
                yhat: 0.0,
                lower: 0.0,
                upper: 0.0,
                score: 0.0,
                started: j.timestamp,
                resolved: None,
                capacity: None,
            };
            latest(&mut a);
            self.firing.insert(a.series.clone(), a.clone());
            self.events.push(a);
        } else if j.resolved {
            if let Some(mut a) = self.firing.remove(j.series) {
                latest(&mut a);
                a.resolved = Some(j.timestamp);
                self.events.push(a);
            }
        } else if let Some(a) = self.firing.get_mut(j.series) {
            latest(a);
        }
    }

    fn end_poll(&mut self, end: &PollEnd<'_>) {
        for id in end.dropped {
            for map in [&mut self.firing, &mut self.warnings] {
                if let Some(mut a) = map.remove(&**id) {
                    a.resolved = Some(end.now);
                    self.events.push(a);
                }
            }
        }
        self.notifier.poll(
            end.now,
            self.firing
                .values()
                .chain(self.warnings.values())
                .cloned()
                .collect(),
            std::mem::take(&mut self.events),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        detect::{capacity::CapacityVerdict, Detector},
        monitor::{failover::SourceKind, horizon::Band, table::Counts},
        notify::NotifySettings,
        status::Report,
    };
    use std::{
        io::{BufRead, BufReader, Read, Write},
        sync::Arc,
    };

    /// A webhook receiver keeping every JSON body.
    fn receiver() -> (String, std::sync::mpsc::Receiver<serde_json::Value>) {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/", l.local_addr().unwrap());
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for s in l.incoming().flatten() {
                let mut r = BufReader::new(s.try_clone().unwrap());
                let mut len = 0;
                loop {
                    let mut line = String::new();
                    if r.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        len = v.trim().parse().unwrap();
                    }
                }
                let mut body = vec![0; len];
                r.read_exact(&mut body).unwrap();
                let _ = (&s).write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
                let _ = tx.send(serde_json::from_slice(&body).unwrap());
            }
        });
        (url, rx)
    }

    fn judged(series: &str, ts: i64, actual: f64, onset: bool, resolved: bool) -> Judged<'_> {
        Judged {
            series,
            host: series,
            source: SourceKind::Prometheus,
            timestamp: ts,
            actual,
            band: Some(Band {
                yhat: 40.0,
                lower: 35.0,
                upper: 45.0,
            }),
            detection: Some(Detector::new(2.0).check(actual, 40.0, 35.0, 45.0)),
            alert: onset,
            onset,
            resolved,
            short_history: false,
            trained_at: None,
            threshold: 2.0,
            alert_override: None,
            capacity: CapacityVerdict::default(),
        }
    }

    #[test]
    fn onsets_resolutions_and_vanished_series_reach_the_webhook() {
        let (url, rx) = receiver();
        let n = Notifier::spawn(NotifySettings {
            webhook_url: url,
            expire_after: std::time::Duration::from_secs(60),
            timeout: std::time::Duration::from_secs(5),
            ..NotifySettings::default()
        })
        .unwrap();
        let mut out = NotifyOutput::new(n);
        let report = Report::default();
        let end = |now, dropped| PollEnd {
            now,
            source: SourceKind::Prometheus,
            counts: Counts::default(),
            report: &report,
            dropped,
            prometheus_up: true,
        };
        out.record(&judged("a", 100, 95.0, true, false));
        out.record(&judged("b", 100, 96.0, true, false));
        out.end_poll(&end(100, &[]));
        out.record(&judged("a", 130, 41.0, false, true));
        out.end_poll(&end(130, &[]));
        let gone: [Arc<str>; 1] = [Arc::from("b")];
        out.end_poll(&end(160, &gone));
        let got: Vec<(String, String, Option<String>)> = (0..4)
            .map(|_| {
                let v = rx.recv_timeout(std::time::Duration::from_secs(10)).unwrap();
                (
                    v["series"].as_str().unwrap().to_string(),
                    v["event"].as_str().unwrap().to_string(),
                    v["resolved_at"].as_str().map(String::from),
                )
            })
            .collect();
        out.close();
        assert_eq!(
            got,
            [
                ("a".into(), "firing".into(), None),
                ("b".into(), "firing".into(), None),
                (
                    "a".into(),
                    "resolved".into(),
                    Some("1970-01-01T00:02:10Z".into())
                ),
                (
                    "b".into(),
                    "resolved".into(),
                    Some("1970-01-01T00:02:40Z".into())
                ),
            ]
        );
    }
}
