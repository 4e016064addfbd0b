//! The Prometheus HTTP API's JSON reply, parsed as a stream.
//!
//! A range query over a fleet can return hundreds of megabytes. Nothing here
//! holds the reply: the parser walks it once and hands each series' labels
//! and points to a [`ResultSink`], which keeps what it wants (a series it
//! does not want costs its labels only). Values are parsed from the API's
//! strings without allocating; NaN and infinite values are dropped, and so
//! is a point no CPU series can hold (see [`plausible`]): it is counted in
//! [`Envelope::rejected`], never handed on.
//!
//! Works for every result type the API documents: `matrix` (`values`),
//! `vector` (`value`) and `scalar` (`[t, "v"]`, delivered as one series with
//! no labels). Keys may come in any order; unknown keys are skipped.

use std::fmt;

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::Labels;

/// Receives a reply's series one at a time.
pub trait ResultSink {
    /// Starts a series; returns whether its points are wanted.
    fn series(&mut self, labels: Labels) -> bool;
    /// A point of the current (wanted) series: Unix seconds (fractional as
    /// the API sends them) and a finite value.
    fn point(&mut self, t: f64, v: f64);
}

/// Everything in a reply but the result.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Envelope {
    /// `success` or `error`.
    pub status: String,
    /// `matrix`, `vector`, `scalar` or `string` (absent on errors).
    pub result_type: Option<String>,
    /// Prometheus' `errorType`.
    pub error_type: Option<String>,
    /// Prometheus' `error`.
    pub error: Option<String>,
    /// Points dropped as implausible.
    pub rejected: u64,
}

/// Earliest timestamp taken (2000-01-01).
pub const MIN_TIMESTAMP: f64 = 946_684_800.0;
/// Latest timestamp taken (2100-01-01).
pub const MAX_TIMESTAMP: f64 = 4_102_444_800.0;
/// Largest magnitude of a value taken (a million percent is no CPU).
pub const MAX_VALUE: f64 = 1e6;

/// Whether a point can be a CPU sample: a timestamp between 2000 and 2100
/// and a finite value within ±[`MAX_VALUE`].
pub fn plausible(t: f64, v: f64) -> bool {
    (MIN_TIMESTAMP..MAX_TIMESTAMP).contains(&t) && v.is_finite() && v.abs() <= MAX_VALUE
}

/// Hands on plausible points only, counting the others.
struct Checked<'a> {
    inner: &'a mut dyn ResultSink,
    rejected: u64,
}

impl ResultSink for Checked<'_> {
    fn series(&mut self, labels: Labels) -> bool {
        self.inner.series(labels)
    }
    fn point(&mut self, t: f64, v: f64) {
        if plausible(t, v) {
            self.inner.point(t, v);
        } else {
            self.rejected += 1;
        }
    }
}

/// Parses a reply from `reader`, feeding its result to `sink`.
pub fn parse_reader<R: std::io::Read>(
    reader: R,
    sink: &mut dyn ResultSink,
) -> Result<Envelope, serde_json::Error> {
    let mut de = serde_json::Deserializer::from_reader(reader);
    let mut checked = Checked {
        inner: sink,
        rejected: 0,
    };
    let mut env = TopSeed(&mut checked).deserialize(&mut de)?;
    de.end()?;
    env.rejected = checked.rejected;
    Ok(env)
}

/// Parses a reply held in memory.
pub fn parse_slice(bytes: &[u8], sink: &mut dyn ResultSink) -> Result<Envelope, serde_json::Error> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let mut checked = Checked {
        inner: sink,
        rejected: 0,
    };
    let mut env = TopSeed(&mut checked).deserialize(&mut de)?;
    de.end()?;
    env.rejected = checked.rejected;
    Ok(env)
}

struct TopSeed<'a>(&'a mut dyn ResultSink);

impl<'de> DeserializeSeed<'de> for TopSeed<'_> {
    type Value = Envelope;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Envelope, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for TopSeed<'_> {
    type Value = Envelope;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a Prometheus API reply object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Envelope, A::Error> {
        let mut env = Envelope::default();
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "status" => env.status = map.next_value()?,
                "errorType" => env.error_type = map.next_value()?,
                "error" => env.error = map.next_value()?,
                "data" => env.result_type = map.next_value_seed(DataSeed(&mut *self.0))?,
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(env)
    }
}

struct DataSeed<'a>(&'a mut dyn ResultSink);

impl<'de> DeserializeSeed<'de> for DataSeed<'_> {
    type Value = Option<String>;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Option<String>, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for DataSeed<'_> {
    type Value = Option<String>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("the `data` object")
    }
    fn visit_unit<E: de::Error>(self) -> Result<Option<String>, E> {
        Ok(None)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Option<String>, A::Error> {
        let mut result_type = None;
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "resultType" => result_type = Some(map.next_value()?),
                "result" => map.next_value_seed(ResultSeed(&mut *self.0))?,
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(result_type)
    }
}

/// The `result` array: series objects, or `[t, "v"]` for a scalar.
struct ResultSeed<'a>(&'a mut dyn ResultSink);

impl<'de> DeserializeSeed<'de> for ResultSeed<'_> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ResultSeed<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("the `result` array")
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut scalar_t = None;
        while let Some(item) = seq.next_element_seed(ItemSeed(&mut *self.0))? {
            match item {
                Item::Series => {}
                Item::Number(t) => scalar_t = Some(t),
                Item::Value(v) => {
                    if let (Some(t), Some(v)) = (scalar_t, v) {
                        if self.0.series(Labels::new()) {
                            self.0.point(t, v);
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

enum Item {
    /// A series object (already delivered).
    Series,
    /// A scalar's timestamp.
    Number(f64),
    /// A scalar's value (None: not finite).
    Value(Option<f64>),
}

struct ItemSeed<'a>(&'a mut dyn ResultSink);

impl<'de> DeserializeSeed<'de> for ItemSeed<'_> {
    type Value = Item;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Item, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ItemSeed<'_> {
    type Value = Item;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a series object or a scalar's timestamp and value")
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Item, E> {
        Ok(Item::Number(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Item, E> {
        Ok(Item::Number(v as f64))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Item, E> {
        Ok(Item::Number(v as f64))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Item, E> {
        Ok(Item::Value(parse_value(v)))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Item, A::Error> {
        // `metric` normally comes first; points seen before it wait here.
        let mut wanted: Option<bool> = None;
        let mut early: Vec<(f64, f64)> = Vec::new();
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "metric" => {
                    let labels: Labels = map.next_value()?;
                    let w = self.0.series(labels);
                    if w {
                        for &(t, v) in &early {
                            self.0.point(t, v);
                        }
                    }
                    early = Vec::new();
                    wanted = Some(w);
                }
                "value" => {
                    if let Some((t, Some(v))) = map.next_value_seed(PairSeed)? {
                        match wanted {
                            Some(true) => self.0.point(t, v),
                            Some(false) => {}
                            None => early.push((t, v)),
                        }
                    }
                }
                "values" => map.next_value_seed(PointsSeed {
                    sink: &mut *self.0,
                    wanted,
                    early: &mut early,
                })?,
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        if wanted.is_none() && !early.is_empty() {
            // No `metric` at all: a series without labels.
            if self.0.series(Labels::new()) {
                for (t, v) in early {
                    self.0.point(t, v);
                }
            }
        }
        Ok(Item::Series)
    }
}

/// A series' `values` array.
struct PointsSeed<'a, 'b> {
    sink: &'a mut dyn ResultSink,
    wanted: Option<bool>,
    early: &'b mut Vec<(f64, f64)>,
}

impl<'de> DeserializeSeed<'de> for PointsSeed<'_, '_> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for PointsSeed<'_, '_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an array of [timestamp, \"value\"] pairs")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while let Some(pair) = seq.next_element_seed(PairSeed)? {
            if let Some((t, Some(v))) = pair {
                match self.wanted {
                    Some(true) => self.sink.point(t, v),
                    Some(false) => {}
                    None => self.early.push((t, v)),
                }
            }
        }
        Ok(())
    }
}

/// `[timestamp, "value"]`; `None` for an empty array.
struct PairSeed;

impl<'de> DeserializeSeed<'de> for PairSeed {
    type Value = Option<(f64, Option<f64>)>;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for PairSeed {
    type Value = Option<(f64, Option<f64>)>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("[timestamp, \"value\"]")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let Some(t) = seq.next_element::<f64>()? else {
            return Ok(None);
        };
        let v = seq
            .next_element_seed(ValueSeed)?
            .ok_or_else(|| de::Error::invalid_length(1, &"[timestamp, \"value\"]"))?;
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Some((t, v)))
    }
}

/// A sample value: the API sends a string; a bare number is accepted too.
struct ValueSeed;

impl<'de> DeserializeSeed<'de> for ValueSeed {
    type Value = Option<f64>;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Option<f64>, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ValueSeed {
    type Value = Option<f64>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a sample value")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Option<f64>, E> {
        Ok(parse_value(v))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Option<f64>, E> {
        Ok(Some(v).filter(|v| v.is_finite()))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Option<f64>, E> {
        Ok(Some(v as f64))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Option<f64>, E> {
        Ok(Some(v as f64))
    }
}

/// A value string as a finite number (`NaN`, `+Inf`, garbage: `None`).
pub fn parse_value(s: &str) -> Option<f64> {
    s.parse::<f64>().ok().filter(|v| v.is_finite())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Keeps every series whose `instance` is not "skip".
    #[derive(Default)]
    struct Collect {
        series: Vec<(Labels, Vec<(f64, f64)>)>,
        on: bool,
    }

    impl ResultSink for Collect {
        fn series(&mut self, labels: Labels) -> bool {
            self.on = labels.get("instance").map(String::as_str) != Some("skip");
            if self.on {
                self.series.push((labels, Vec::new()));
            }
            self.on
        }
        fn point(&mut self, t: f64, v: f64) {
            assert!(self.on);
            self.series.last_mut().unwrap().1.push((t, v));
        }
    }

    #[test]
    fn a_matrix_is_delivered_series_by_series_and_unwanted_ones_skipped() {
        let body = br#"{"status":"success","data":{"resultType":"matrix","result":[
            {"metric":{"instance":"a"},"values":[[1700000000,"1.5"],[1700000300.5,"NaN"],[1700000600,"+Inf"],[1700000900,"2"]]},
            {"metric":{"instance":"skip"},"values":[[1,"9"]]},
            {"values":[[1700000005,"7"]],"metric":{"instance":"late"}}
        ]},"warnings":["x"]}"#;
        let mut c = Collect::default();
        let env = parse_reader(&body[..], &mut c).unwrap();
        assert_eq!(env.status, "success");
        assert_eq!(env.result_type.as_deref(), Some("matrix"));
        assert_eq!(c.series.len(), 2);
        assert_eq!(c.series[0].0["instance"], "a");
        assert_eq!(c.series[0].1, vec![(1.7e9, 1.5), (1_700_000_900.0, 2.0)]);
        assert_eq!(c.series[1].0["instance"], "late");
        assert_eq!(c.series[1].1, vec![(1_700_000_005.0, 7.0)]);
    }

    #[test]
    fn a_vector_and_a_scalar() {
        let body = br#"{"data":{"result":[{"metric":{},"value":[1700000003.2,"4"]}],"resultType":"vector"},"status":"success"}"#;
        let mut c = Collect::default();
        let env = parse_slice(body, &mut c).unwrap();
        assert_eq!(env.result_type.as_deref(), Some("vector"));
        assert_eq!(
            c.series,
            vec![(Labels::new(), vec![(1_700_000_003.2, 4.0)])]
        );
        let body =
            br#"{"status":"success","data":{"resultType":"scalar","result":[1700000007,"0.25"]}}"#;
        let mut c = Collect::default();
        parse_slice(body, &mut c).unwrap();
        assert_eq!(
            c.series,
            vec![(Labels::new(), vec![(1_700_000_007.0, 0.25)])]
        );
    }

    #[test]
    fn implausible_points_are_counted_not_delivered() {
        let body = br#"{"status":"success","data":{"resultType":"matrix","result":[
            {"metric":{"instance":"a"},"values":[[0,"1"],[1e300,"1"],[1700000000,"1e308"],
             [1700000060,"-2e6"],[1700000120,"55.5"],[4102444800,"1"]]}]}}"#;
        let mut c = Collect::default();
        let env = parse_slice(body, &mut c).unwrap();
        assert_eq!(c.series[0].1, vec![(1_700_000_120.0, 55.5)]);
        assert_eq!(env.rejected, 5);
    }

    #[test]
    fn an_error_reply_keeps_its_message() {
        let body = br#"{"status":"error","errorType":"bad_data","error":"parse error"}"#;
        let env = parse_slice(body, &mut Collect::default()).unwrap();
        assert_eq!(env.status, "error");
        assert_eq!(env.error_type.as_deref(), Some("bad_data"));
        assert_eq!(env.error.as_deref(), Some("parse error"));
        assert!(env.result_type.is_none());
    }

    #[test]
    fn malformed_replies_are_errors_not_panics() {
        for body in [
            &b"<html>"[..],
            br#"{"status":"success","data":{"result":[{"metric":{},"values":[["x","1"]]}]}}"#,
            br#"{"status":"success","data":{"result":[{"metric":[1]}]}}"#,
            br#"{"status":"success"} trailing"#,
            br#"{"status":"success","data":{"result":[{"metric":{},"values":[[1]]}]}}"#,
        ] {
            assert!(parse_reader(body, &mut Collect::default()).is_err());
        }
    }
}
