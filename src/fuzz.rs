//! Fuzz targets: each takes arbitrary bytes and must neither panic nor
//! break the property it checks. `examples/fuzz.rs` drives them on stable
//! Rust (seeded mutation, crashes saved as regression inputs); `.ci/run`
//! runs each for a few seconds. A crash found becomes a test in
//! `tests/fuzz_regressions.rs`.

use std::path::Path;

use crate::{
    config::{CliOverrides, Settings},
    dataset::{self, ReadOptions},
    sink::{
        schema::{FieldValue, Point},
        spool::Spool,
    },
    source::prometheus::{
        reply::{self, ResultSink},
        Labels,
    },
};

/// A fuzz target.
pub type Target = fn(&[u8]);

/// The targets by name.
pub const TARGETS: &[(&str, Target)] = &[
    ("csv", csv),
    ("config", config),
    ("prometheus_reply", prometheus_reply),
    ("line_protocol", line_protocol),
    ("spool", spool),
];

/// Valid inputs each mutation run starts from.
pub fn seeds(target: &str) -> Vec<Vec<u8>> {
    let s: &[&str] = match target {
        "csv" => &[
            "timestamp,cpu_usage\n2024-01-01 00:00:00,0.5\n2024-01-01 00:40:00,0.52\n2024-01-01 01:20:00,0.49\n",
            "time,value,label\n1700000000,55.5,0\n1700000600,90,1\n1700001200,54,0\n",
            "ts;cpu\n1700000000000;12\n1700000600000;13\n",
            "timestamp,cpu_usage\n2024-01-01T00:00:00Z,50\n2100-01-01T00:00:00Z,51\n",
        ],
        "config" => &[
            "monitoring_interval: 30s\nthreshold_multiplier: 2.5\ninfluxdb:\n  enabled: true\n  url: http://x:8086\n",
            "prometheus_url: http://p:9090\nmodel_selector: '{instance=\"a\"}'\nretrain_interval: 1d\n",
            "influxdb: hello\n",
            "api_listen: 0.0.0.0:8080\napi_token: x\nprophet:\n  interval_width: 0.9\n",
        ],
        "prometheus_reply" => &[
            r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{"instance":"a"},"value":[1700000000,"1.5"]}]}}"#,
            r#"{"status":"success","data":{"resultType":"matrix","result":[{"metric":{"instance":"a"},"values":[[1700000000,"1"],[1700000060,"NaN"]]}]}}"#,
            r#"{"status":"error","errorType":"bad_data","error":"parse error"}"#,
            r#"{"status":"success","data":{"resultType":"scalar","result":[1700000000,"0.25"]}}"#,
        ],
        "line_protocol" => &["web-1:9100\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}", "a\\,b=c d\\", "\u{1}"],
        "spool" => &["cpu_metrics,host=a v=1 1\n", "\u{ff}\u{fe}", ""],
        _ => &[],
    };
    s.iter().map(|x| x.as_bytes().to_vec()).collect()
}

/// The CSV reader: any bytes give a series or an error.
pub fn csv(data: &[u8]) {
    if let Ok(s) = dataset::read_csv_from(data, Path::new("fuzz.csv"), &ReadOptions::default()) {
        let _ = s.report.notes(s.unit);
        assert_eq!(s.timestamps.len(), s.values.len());
        assert!(s.timestamps.windows(2).all(|w| w[0] < w[1]));
    }
}

/// The config loader: any text gives settings or an error.
pub fn config(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let _ = Settings::from_layers(&text, None, "fuzz.yaml", |_| None, &CliOverrides::default());
}

/// The Prometheus reply parser: only plausible points come out.
pub fn prometheus_reply(data: &[u8]) {
    struct Check;
    impl ResultSink for Check {
        fn series(&mut self, _: Labels) -> bool {
            true
        }
        fn point(&mut self, t: f64, v: f64) {
            assert!(reply::plausible(t, v), "{t} {v}");
        }
    }
    let _ = reply::parse_slice(data, &mut Check);
    let _ = reply::parse_reader(data, &mut Check);
}

/// The line-protocol encoder: a label of any text gives one line that
/// InfluxDB's scanner splits into measurement+tags, fields and timestamp,
/// and whose tag value reads back as the label (unless reported altered).
pub fn line_protocol(data: &[u8]) {
    let (label, rest) = data.split_at(data.len().saturating_sub(8));
    let label = String::from_utf8_lossy(label).into_owned();
    let mut num = [0u8; 8];
    num[..rest.len()].copy_from_slice(rest);
    let p = Point {
        measurement: "m",
        tags: vec![("host", label.clone())],
        fields: vec![("v", FieldValue::Float(f64::from_le_bytes(num)))],
        timestamp: i64::from_le_bytes(num),
    };
    let mut out = String::new();
    let e = p.encode(&mut out);
    if !e.written {
        assert!(out.is_empty());
        return;
    }
    assert_eq!(out.matches('\n').count(), 1, "{out:?}");
    let line = out.strip_suffix('\n').expect("ends the line");
    // InfluxDB 1.x: a space or comma ends a section unless a backslash
    // precedes it; only `\,`, `\=` and `\ ` are unescaped.
    let b = line.as_bytes();
    let unescaped = |i: usize, c: u8| b[i] == c && (i == 0 || b[i - 1] != b'\\');
    let spaces: Vec<usize> = (0..b.len()).filter(|&i| unescaped(i, b' ')).collect();
    assert_eq!(spaces.len(), 2, "{line:?}");
    let key = &line[..spaces[0]];
    if label.is_empty() {
        // An empty tag is left out.
        assert_eq!(key, "m", "{line:?}");
        return;
    }
    let value = key.strip_prefix("m,host=").expect("measurement and tag");
    assert!(
        !(0..value.len()).any(|i| unescaped(i + 7, b',') || unescaped(i + 7, b'=')),
        "{line:?}"
    );
    let read_back = value
        .replace("\\,", ",")
        .replace("\\=", "=")
        .replace("\\ ", " ");
    if e.tags_altered == 0 {
        assert_eq!(read_back, label, "{line:?}");
    }
}

/// The spool: any bytes spooled come back unchanged, and a file of any
/// bytes under a spool name is replayed or quarantined, never a panic.
pub fn spool(data: &[u8]) {
    let Ok(dir) = tempfile_dir() else { return };
    let _ = std::fs::write(dir.join("00000000000000000000.lp"), data);
    let Ok(mut s) = Spool::open(&dir, u64::MAX) else {
        return;
    };
    if let Ok(true) = s.push(data) {
        let mut seen = 0;
        while let Ok(Some((p, bytes))) = s.peek() {
            assert_eq!(bytes, data);
            let _ = s.remove(&p);
            seen += 1;
        }
        assert_eq!(seen, 2);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

fn tempfile_dir() -> std::io::Result<std::path::PathBuf> {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let d = std::env::temp_dir().join(format!(
        "cpu-anomaly-fuzz-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&d)?;
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_seed_passes_its_target() {
        for (name, f) in TARGETS {
            let seeds = seeds(name);
            assert!(!seeds.is_empty(), "{name}");
            for s in seeds {
                f(&s);
            }
        }
    }
}
