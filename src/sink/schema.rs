//! The InfluxDB schema: every measurement, tag and field name the writer
//! uses, in one place. Dashboards, alert rules and their tests read these
//! names from here; renaming one here must break them.
//!
//! The original system's names are kept (`cpu_metrics` with tag
//! `metric_type` = `actual|forecasted` and field `cpu_usage`;
//! `anomaly_detection` with tag `severity` and fields `is_anomaly`,
//! `anomaly_score`, `confidence`, `threshold`); the band and the actual value
//! are added as extra fields.

use crate::detect::Detection;

/// Measurement of actual and forecast values.
pub const CPU_METRICS: &str = "cpu_metrics";
/// Measurement of detection results.
pub const ANOMALY_DETECTION: &str = "anomaly_detection";
/// Measurement of alert events: one point when an alert fires, one when it
/// resolves.
pub const ALERT_EVENT: &str = "alert_event";
/// Tag: `firing` or `resolved` (`alert_event`).
pub const TAG_EVENT: &str = "event";
/// `event` values.
pub const EVENT_FIRING: &str = "firing";
/// `event` values.
pub const EVENT_RESOLVED: &str = "resolved";

/// Measurement of capacity warnings: one point per sample while a warning
/// is in force (`warning` = 1), one with `warning` = 0 when it clears.
pub const CAPACITY_WARNING: &str = "capacity_warning";
/// Field: seconds to the predicted crossing (`capacity_warning`).
pub const FIELD_CROSSING_IN_SECONDS: &str = "crossing_in_seconds";
/// Field: the value predicted at the crossing (`capacity_warning`).
pub const FIELD_PREDICTED_VALUE: &str = "predicted_value";
/// Field: 1 while a capacity warning is in force, 0 when it clears.
pub const FIELD_WARNING: &str = "warning";

/// Tag: `actual` or `forecasted` (`cpu_metrics`).
pub const TAG_METRIC_TYPE: &str = "metric_type";
/// Tag: the series' host (Prometheus `instance`, or the series id).
pub const TAG_HOST: &str = "host";
/// Tag: `prometheus`, `simulation` or `dataset`.
pub const TAG_SOURCE: &str = "source";
/// Tag: severity of the sample (`anomaly_detection`).
pub const TAG_SEVERITY: &str = "severity";

/// `metric_type` values.
pub const METRIC_ACTUAL: &str = "actual";
/// `metric_type` values.
pub const METRIC_FORECASTED: &str = "forecasted";

/// Field: CPU value (actual) or forecast `yhat` (forecasted), in percent.
pub const FIELD_CPU_USAGE: &str = "cpu_usage";
/// Field: lower edge of the model's band (forecasted, anomaly_detection).
pub const FIELD_YHAT_LOWER: &str = "yhat_lower";
/// Field: upper edge of the model's band.
pub const FIELD_YHAT_UPPER: &str = "yhat_upper";
/// Field: outside the scaled band.
pub const FIELD_IS_ANOMALY: &str = "is_anomaly";
/// Field: normalised score (1 = scaled band edge).
pub const FIELD_ANOMALY_SCORE: &str = "anomaly_score";
/// Field: confidence in [0, 1].
pub const FIELD_CONFIDENCE: &str = "confidence";
/// Field: threshold multiplier in use.
pub const FIELD_THRESHOLD: &str = "threshold";
/// Field: scaled band, lower edge.
pub const FIELD_LOWER_THRESHOLD: &str = "lower_threshold";
/// Field: scaled band, upper edge.
pub const FIELD_UPPER_THRESHOLD: &str = "upper_threshold";
/// Field: the actual value (anomaly_detection).
pub const FIELD_ACTUAL: &str = "actual";
/// Field: the forecast (anomaly_detection).
pub const FIELD_YHAT: &str = "yhat";
/// Field: part of a sustained run (alert raised).
pub const FIELD_ALERT: &str = "alert";
/// Field: judged by a short-history model (a level and a noise band: less
/// than two days of the host's own data).
pub const FIELD_SHORT_HISTORY: &str = "short_history";
/// Field: `is_anomaly` as 1.0 / 0.0, for InfluxQL (`mean()` and `sum()` of
/// a boolean field fail there).
pub const FIELD_ANOMALY_FLAG: &str = "anomaly_flag";
/// Field: `alert` as 1.0 / 0.0.
pub const FIELD_ALERT_FLAG: &str = "alert_flag";
/// Field: `short_history` as 1.0 / 0.0.
pub const FIELD_SHORT_HISTORY_FLAG: &str = "short_history_flag";

/// Every measurement with its tags and fields (for validating queries).
pub const SCHEMA: &[(&str, &[&str], &[&str])] = &[
    (
        CPU_METRICS,
        &[TAG_METRIC_TYPE, TAG_HOST, TAG_SOURCE],
        &[FIELD_CPU_USAGE, FIELD_YHAT_LOWER, FIELD_YHAT_UPPER],
    ),
    (
        CAPACITY_WARNING,
        &[TAG_HOST, TAG_SOURCE],
        &[
            FIELD_CROSSING_IN_SECONDS,
            FIELD_THRESHOLD,
            FIELD_PREDICTED_VALUE,
            FIELD_WARNING,
        ],
    ),
    (
        ALERT_EVENT,
        &[TAG_HOST, TAG_SOURCE, TAG_EVENT, TAG_SEVERITY],
        &[
            FIELD_ACTUAL,
            FIELD_YHAT,
            FIELD_ANOMALY_SCORE,
            FIELD_LOWER_THRESHOLD,
            FIELD_UPPER_THRESHOLD,
        ],
    ),
    (
        ANOMALY_DETECTION,
        &[TAG_HOST, TAG_SEVERITY, TAG_SOURCE],
        &[
            FIELD_IS_ANOMALY,
            FIELD_ANOMALY_SCORE,
            FIELD_CONFIDENCE,
            FIELD_THRESHOLD,
            FIELD_LOWER_THRESHOLD,
            FIELD_UPPER_THRESHOLD,
            FIELD_ACTUAL,
            FIELD_YHAT,
            FIELD_YHAT_LOWER,
            FIELD_YHAT_UPPER,
            FIELD_ALERT,
            FIELD_SHORT_HISTORY,
            FIELD_ANOMALY_FLAG,
            FIELD_ALERT_FLAG,
            FIELD_SHORT_HISTORY_FLAG,
        ],
    ),
];

/// A field value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum FieldValue {
    /// A float (non-finite values are left out of the line).
    Float(f64),
    /// A boolean.
    Bool(bool),
}

/// One point of line protocol.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    /// Measurement name.
    pub measurement: &'static str,
    /// Tags (sorted by key when encoded, as InfluxDB recommends).
    pub tags: Vec<(&'static str, String)>,
    /// Fields.
    pub fields: Vec<(&'static str, FieldValue)>,
    /// Unix seconds.
    pub timestamp: i64,
}

/// Longest tag value written, in bytes. A longer one (InfluxDB refuses a
/// series key past 64 KiB, and a label that long is a bug upstream) is cut
/// and ends with `~` and a hash of the whole value, so distinct values stay
/// distinct.
pub const MAX_TAG_VALUE_BYTES: usize = 1024;

/// Escapes a measurement name as InfluxDB reads it: commas and spaces get a
/// backslash; a backslash is literal.
fn escape_measurement(s: &str, out: &mut String) {
    for c in s.chars() {
        match c {
            ',' | ' ' => {
                out.push('\\');
                out.push(c);
            }
            c if c.is_control() => out.push_str("\\ "),
            _ => out.push(c),
        }
    }
}

/// Escapes a tag key or value, or a field key, exactly as InfluxDB's parser
/// reads it back: a comma, equals sign or space gets a backslash, and a
/// backslash is literal (InfluxDB unescapes only `\,`, `\=` and `\ `).
///
/// Three things cannot be carried and are altered (returns true):
/// - a control character (a newline would end the line) becomes a space;
/// - a value longer than [`MAX_TAG_VALUE_BYTES`] is cut as that says;
/// - a final backslash would escape the separator after it, so a space
///   follows it (`f\` is stored as `f\ `).
fn escape_tag(s: &str, out: &mut String) -> bool {
    let mut altered = false;
    let mut text = s;
    let mut suffix = String::new();
    if s.len() > MAX_TAG_VALUE_BYTES {
        let mut cut = MAX_TAG_VALUE_BYTES - 17;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        text = &s[..cut];
        suffix = format!("~{:016x}", fnv1a(s.as_bytes()));
        altered = true;
    }
    for c in text.chars().chain(suffix.chars()) {
        match c {
            ',' | '=' | ' ' => {
                out.push('\\');
                out.push(c);
            }
            c if c.is_control() => {
                out.push_str("\\ ");
                altered = true;
            }
            _ => out.push(c),
        }
    }
    if out.ends_with('\\') {
        // Only a backslash of the value itself can end the output here.
        out.push_str("\\ ");
        altered = true;
    }
    altered
}

/// FNV-1a, 64 bits: a stable hash for cut tag values.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// What encoding one point did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Encoded {
    /// A line was written (false: no finite field, nothing written).
    pub written: bool,
    /// Tag values that had to be altered (see [`MAX_TAG_VALUE_BYTES`]).
    pub tags_altered: u32,
}

impl Point {
    /// Appends the point as one line (with `\n`) in second precision. A
    /// point without any finite field is skipped (`written` false): InfluxDB
    /// rejects lines without fields.
    pub fn encode(&self, out: &mut String) -> Encoded {
        use std::fmt::Write;
        let fields: Vec<_> = self
            .fields
            .iter()
            .filter(|(_, v)| !matches!(v, FieldValue::Float(f) if !f.is_finite()))
            .collect();
        if fields.is_empty() {
            return Encoded::default();
        }
        let mut tags_altered = 0;
        escape_measurement(self.measurement, out);
        let mut tags: Vec<_> = self.tags.iter().filter(|(_, v)| !v.is_empty()).collect();
        tags.sort_by_key(|(k, _)| *k);
        for (k, v) in tags {
            out.push(',');
            escape_tag(k, out);
            out.push('=');
            if escape_tag(v, out) {
                tags_altered += 1;
            }
        }
        for (i, (k, v)) in fields.iter().enumerate() {
            out.push(if i == 0 { ' ' } else { ',' });
            escape_tag(k, out);
            out.push('=');
            match v {
                FieldValue::Float(f) => {
                    // `{:?}` keeps a decimal point or exponent: always a float.
                    let _ = write!(out, "{f:?}");
                }
                FieldValue::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            }
        }
        let _ = writeln!(out, " {}", self.timestamp);
        Encoded {
            written: true,
            tags_altered,
        }
    }
}

/// Encodes points to line protocol text.
pub fn encode_all(points: &[Point]) -> String {
    let mut out = String::with_capacity(points.len() * 160);
    for p in points {
        p.encode(&mut out);
    }
    out
}

/// What one tick produced for one series.
#[derive(Debug, Clone, Copy)]
pub struct Sample<'a> {
    /// Host tag.
    pub host: &'a str,
    /// Source tag.
    pub source: &'a str,
    /// Unix seconds.
    pub timestamp: i64,
    /// Actual value (percent).
    pub actual: f64,
    /// Forecast.
    pub yhat: f64,
    /// Model band, lower edge.
    pub lower: f64,
    /// Model band, upper edge.
    pub upper: f64,
    /// Detection result (`None` while warming up: only the actual is written).
    pub detection: Option<&'a Detection>,
    /// Alert raised (sustained run or critical).
    pub alert: bool,
    /// Threshold multiplier.
    pub threshold: f64,
    /// Judged by a short-history model.
    pub short_history: bool,
    /// An alert fired with this sample.
    pub onset: bool,
    /// The series' alert resolved with this sample.
    pub resolved: bool,
    /// A capacity warning in force: (seconds to the crossing, threshold,
    /// predicted value).
    pub capacity: Option<(i64, f64, f64)>,
    /// The capacity warning cleared with this sample.
    pub capacity_cleared: bool,
}

fn flag(b: bool) -> f64 {
    if b {
        1.0
    } else {
        0.0
    }
}

/// The points of one sample: actual, forecasted, and the detection.
pub fn points(s: &Sample<'_>) -> Vec<Point> {
    let tags = |extra: Vec<(&'static str, String)>| {
        let mut t = vec![
            (TAG_HOST, s.host.to_string()),
            (TAG_SOURCE, s.source.to_string()),
        ];
        t.extend(extra);
        t
    };
    let mut out = vec![Point {
        measurement: CPU_METRICS,
        tags: tags(vec![(TAG_METRIC_TYPE, METRIC_ACTUAL.into())]),
        fields: vec![(FIELD_CPU_USAGE, FieldValue::Float(s.actual))],
        timestamp: s.timestamp,
    }];
    if let Some((secs, threshold, predicted)) = s.capacity {
        out.push(Point {
            measurement: CAPACITY_WARNING,
            tags: tags(Vec::new()),
            fields: vec![
                (FIELD_CROSSING_IN_SECONDS, FieldValue::Float(secs as f64)),
                (FIELD_THRESHOLD, FieldValue::Float(threshold)),
                (FIELD_PREDICTED_VALUE, FieldValue::Float(predicted)),
                (FIELD_WARNING, FieldValue::Float(1.0)),
            ],
            timestamp: s.timestamp,
        });
    } else if s.capacity_cleared {
        out.push(Point {
            measurement: CAPACITY_WARNING,
            tags: tags(Vec::new()),
            fields: vec![(FIELD_WARNING, FieldValue::Float(0.0))],
            timestamp: s.timestamp,
        });
    }
    let Some(d) = s.detection else {
        return out;
    };
    out.push(Point {
        measurement: CPU_METRICS,
        tags: tags(vec![(TAG_METRIC_TYPE, METRIC_FORECASTED.into())]),
        fields: vec![
            (FIELD_CPU_USAGE, FieldValue::Float(s.yhat)),
            (FIELD_YHAT_LOWER, FieldValue::Float(s.lower)),
            (FIELD_YHAT_UPPER, FieldValue::Float(s.upper)),
        ],
        timestamp: s.timestamp,
    });
    out.push(Point {
        measurement: ANOMALY_DETECTION,
        tags: tags(vec![(TAG_SEVERITY, d.severity.as_str().into())]),
        fields: vec![
            (FIELD_IS_ANOMALY, FieldValue::Bool(d.is_anomaly)),
            (FIELD_ANOMALY_SCORE, FieldValue::Float(d.score)),
            (FIELD_CONFIDENCE, FieldValue::Float(d.confidence)),
            (FIELD_THRESHOLD, FieldValue::Float(s.threshold)),
            (FIELD_LOWER_THRESHOLD, FieldValue::Float(d.lower_threshold)),
            (FIELD_UPPER_THRESHOLD, FieldValue::Float(d.upper_threshold)),
            (FIELD_ACTUAL, FieldValue::Float(s.actual)),
            (FIELD_YHAT, FieldValue::Float(s.yhat)),
            (FIELD_YHAT_LOWER, FieldValue::Float(s.lower)),
            (FIELD_YHAT_UPPER, FieldValue::Float(s.upper)),
            (FIELD_ALERT, FieldValue::Bool(s.alert)),
            (FIELD_SHORT_HISTORY, FieldValue::Bool(s.short_history)),
            (FIELD_ANOMALY_FLAG, FieldValue::Float(flag(d.is_anomaly))),
            (FIELD_ALERT_FLAG, FieldValue::Float(flag(s.alert))),
            (
                FIELD_SHORT_HISTORY_FLAG,
                FieldValue::Float(flag(s.short_history)),
            ),
        ],
        timestamp: s.timestamp,
    });
    for (happened, event) in [(s.onset, EVENT_FIRING), (s.resolved, EVENT_RESOLVED)] {
        if happened {
            out.push(Point {
                measurement: ALERT_EVENT,
                tags: tags(vec![
                    (TAG_EVENT, event.into()),
                    (TAG_SEVERITY, d.severity.as_str().into()),
                ]),
                fields: vec![
                    (FIELD_ACTUAL, FieldValue::Float(s.actual)),
                    (FIELD_YHAT, FieldValue::Float(s.yhat)),
                    (FIELD_ANOMALY_SCORE, FieldValue::Float(d.score)),
                    (FIELD_LOWER_THRESHOLD, FieldValue::Float(d.lower_threshold)),
                    (FIELD_UPPER_THRESHOLD, FieldValue::Float(d.upper_threshold)),
                ],
                timestamp: s.timestamp,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::Detector;

    #[test]
    fn escapes_and_sorts_tags() {
        let p = Point {
            measurement: "cpu metrics,x",
            tags: vec![
                ("host", "web 1,a=b".into()),
                ("empty", String::new()),
                ("a", "1".into()),
            ],
            fields: vec![
                ("v", FieldValue::Float(1.0)),
                ("nan", FieldValue::Float(f64::NAN)),
                ("ok", FieldValue::Bool(true)),
            ],
            timestamp: 17,
        };
        let mut s = String::new();
        assert!(p.encode(&mut s).written);
        assert_eq!(
            s,
            "cpu\\ metrics\\,x,a=1,host=web\\ 1\\,a\\=b v=1.0,ok=true 17\n"
        );
    }

    fn tag(v: &str) -> (String, bool) {
        let mut out = String::new();
        let altered = escape_tag(v, &mut out);
        (out, altered)
    }

    #[test]
    fn backslashes_are_literal_and_what_cannot_be_carried_is_altered() {
        assert_eq!(tag("a\\b"), ("a\\b".into(), false));
        assert_eq!(tag("a\\,b"), ("a\\\\,b".into(), false));
        assert_eq!(tag("f\\"), ("f\\\\ ".into(), true));
        assert_eq!(tag("x\ny"), ("x\\ y".into(), true));
        let long = "é".repeat(MAX_TAG_VALUE_BYTES);
        let (cut, altered) = tag(&long);
        assert!(altered);
        assert!(cut.len() <= MAX_TAG_VALUE_BYTES, "{}", cut.len());
        assert_ne!(
            cut,
            tag(&format!("{long}x")).0,
            "distinct values stay distinct"
        );
    }

    #[test]
    fn a_point_without_finite_fields_is_skipped() {
        let p = Point {
            measurement: "m",
            tags: vec![],
            fields: vec![("v", FieldValue::Float(f64::INFINITY))],
            timestamp: 1,
        };
        let mut s = String::new();
        assert!(!p.encode(&mut s).written);
        assert!(s.is_empty());
    }

    #[test]
    fn every_point_uses_only_schema_names() {
        let d = Detector::new(2.0).check(90.0, 50.0, 45.0, 55.0);
        let s = Sample {
            host: "h",
            source: "simulation",
            timestamp: 1,
            actual: 90.0,
            yhat: 50.0,
            lower: 45.0,
            upper: 55.0,
            detection: Some(&d),
            alert: true,
            threshold: 2.0,
            short_history: false,
            onset: true,
            resolved: false,
            capacity: Some((600, 90.0, 91.5)),
            capacity_cleared: false,
        };
        let pts = points(&s);
        assert_eq!(pts.len(), 5);
        assert!(pts.iter().any(|p| p.measurement == CAPACITY_WARNING
            && p.fields
                .contains(&(FIELD_CROSSING_IN_SECONDS, FieldValue::Float(600.0)))));
        for p in &pts {
            let (_, tags, fields) = SCHEMA
                .iter()
                .find(|(m, _, _)| *m == p.measurement)
                .expect("measurement in schema");
            for (k, _) in &p.tags {
                assert!(tags.contains(k), "{k}");
            }
            for (k, _) in &p.fields {
                assert!(fields.contains(k), "{k}");
            }
        }
        let text = encode_all(&pts);
        assert!(text.contains("anomaly_detection,host=h,severity=CRITICAL,source=simulation is_anomaly=true,anomaly_score=4.0"), "{text}");
        assert!(text.starts_with(
            "cpu_metrics,host=h,metric_type=actual,source=simulation cpu_usage=90.0 1\n"
        ));
        assert!(
            text.contains(
                "alert_event,event=firing,host=h,severity=CRITICAL,source=simulation actual=90.0"
            ),
            "{text}"
        );
    }
}
