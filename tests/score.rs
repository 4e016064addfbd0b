//! `--mode score` through the binary: a history without labels is judged
//! row by row, walking forward or with a saved model, for a file or a
//! directory, and the summary agrees with the scored CSV.

use std::path::Path;

use crate::common::bin;

/// Five days of 5-minute CPU with a daily cycle; with `incident`, two
/// hours 40 points higher on the fourth day.
fn write_series(path: &Path, incident: bool) {
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    let t0 = 1_717_200_000; // 2024-06-01 00:00 UTC
    let mut text = String::from("timestamp,cpu_usage\n");
    for i in 0..5 * 288 {
        let t = t0 + 300 * i;
        let day = (t % 86_400) as f64 / 86_400.0;
        let mut v =
            40.0 + 15.0 * (2.0 * std::f64::consts::PI * day).sin() + rng.random_range(-2.0..2.0);
        if incident && (3 * 288 + 120..3 * 288 + 144).contains(&i) {
            v += 40.0;
        }
        text.push_str(&format!("{t},{v:.2}\n"));
    }
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

fn summary(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// (rows, is_anomaly count, alert_onset count) of a scored CSV.
fn counts(path: &Path) -> (usize, usize, usize) {
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    for want in [
        "timestamp",
        "value",
        "yhat",
        "yhat_lower",
        "yhat_upper",
        "score",
        "is_anomaly",
        "severity",
        "alert",
        "alert_onset",
    ] {
        assert!(header.contains(&want), "{want}: {header:?}");
    }
    let col = |name: &str| header.iter().position(|h| *h == name).unwrap();
    let (a, o) = (col("is_anomaly"), col("alert_onset"));
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    (
        rows.len(),
        rows.iter().filter(|r| r[a] == "true").count(),
        rows.iter().filter(|r| r[o] == "true").count(),
    )
}

#[test]
fn a_history_is_scored_walking_forward_and_the_summary_agrees() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("week.csv");
    write_series(&data, true);
    let out = bin()
        .args(["--mode", "score", "--retrain-every", "12h", "--dataset"])
        .arg(&data)
        .arg("--output-dir")
        .arg(dir.path().join("out"))
        .current_dir(dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(!stdout.to_lowercase().contains("precision"), "{stdout}");
    assert!(!stdout.to_lowercase().contains("recall"), "{stdout}");
    let s = summary(&dir.path().join("out/week.summary.json"));
    let (rows, anomalies, onsets) = counts(&dir.path().join("out/week.scored.csv"));
    assert_eq!(rows, 1440);
    assert_eq!(s["rows"], 1440);
    assert_eq!(s["learned_rows"], 216, "the first 15 % only learned from");
    assert_eq!(s["scored_rows"], 1440 - 216);
    assert_eq!(s["anomalies"], anomalies as u64);
    assert_eq!(s["alerts"], onsets as u64);
    assert!(onsets >= 1, "the incident raised no alert: {s}");
    let first = s["first_anomaly"].as_str().unwrap();
    assert!(first.starts_with("2024-06-04"), "{s}");
    assert!(
        s["model"].as_str().unwrap().starts_with("walk-forward"),
        "{s}"
    );
    assert!(stdout.contains("216 only learned from"), "{stdout}");
}

#[test]
fn a_directory_keeps_its_tree_and_a_saved_model_judges_every_row() {
    let dir = tempfile::tempdir().unwrap();
    write_series(&dir.path().join("in/a.csv"), false);
    write_series(&dir.path().join("in/sub/b.csv"), true);
    let model = dir.path().join("model.json");
    let out = bin()
        .args(["--mode", "train", "--no-plots", "--dataset"])
        .arg(dir.path().join("in/a.csv"))
        .arg("--model-path")
        .arg(&model)
        .arg("--output-dir")
        .arg(dir.path().join("train"))
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = bin()
        .args(["--mode", "score", "--dataset"])
        .arg(dir.path().join("in"))
        .arg("--model-path")
        .arg(&model)
        .arg("--output-dir")
        .arg(dir.path().join("out"))
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for name in ["a", "sub/b"] {
        let s = summary(&dir.path().join(format!("out/{name}.summary.json")));
        assert_eq!(s["learned_rows"], 0, "{s}");
        assert_eq!(s["scored_rows"], 1440, "{s}");
        assert!(s["model"].as_str().unwrap().starts_with("saved"), "{s}");
        let (rows, anomalies, _) = counts(&dir.path().join(format!("out/{name}.scored.csv")));
        assert_eq!(rows, 1440);
        assert_eq!(s["anomalies"], anomalies as u64);
    }
    let b = summary(&dir.path().join("out/sub/b.summary.json"));
    assert!(b["anomalies"].as_u64().unwrap() > 0, "{b}");
    // A missing model is a configuration error naming the file.
    let out = bin()
        .args(["--mode", "score", "--dataset"])
        .arg(dir.path().join("in"))
        .arg("--model-path")
        .arg(dir.path().join("nope.json"))
        .current_dir(dir.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("nope.json"), "{stderr}");
}
