//! `--mode train` end to end through the binary: outputs, exit codes, messages.

use crate::common::{bin, write_generated};
use cpu_anomaly::simulate::Pattern;

fn small_pattern() -> Pattern {
    // 18 days at 20 minutes: the 80 % head holds over two weeks, enough for
    // the `auto` rule to fit weekly seasonality.
    Pattern {
        step: 1200,
        len: 18 * 72,
        ..Pattern::default()
    }
}

#[test]
fn train_writes_model_metadata_and_plots() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("cpu.csv");
    write_generated(&csv, &small_pattern(), 1);
    let model = dir.path().join("m/model.json");
    let out = dir.path().join("out");
    let o = bin()
        .current_dir(dir.path())
        .args(["--mode", "train", "--dataset"])
        .arg(&csv)
        .arg("--model-path")
        .arg(&model)
        .arg("--output-dir")
        .arg(&out)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    for word in [
        "MAE",
        "MSE",
        "RMSE",
        "MAPE",
        "coverage",
        "Data summary",
        "unit percent",
    ] {
        assert!(stdout.contains(word), "missing {word}: {stdout}");
    }
    let meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("m/model.meta.json")).unwrap())
            .unwrap();
    assert_eq!(meta["unit"], "percent");
    assert_eq!(meta["rows"], 1296);
    assert_eq!(meta["step_seconds"], 1200);
    assert!(meta["holdout"]["metrics"]["mape"].as_f64().unwrap() < 15.0);
    assert!(meta["training_seconds"]["final_fit"].as_f64().unwrap() > 0.0);
    assert!(model.exists());
    for png in ["forecast_vs_actual.png", "components.png"] {
        let bytes = std::fs::read(out.join(png)).unwrap();
        assert_eq!(&bytes[1..4], b"PNG", "{png} is a PNG");
        assert!(bytes.len() > 10_000, "{png} has content");
    }
}

#[test]
fn no_plots_and_no_eda_are_honoured() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("cpu.csv");
    write_generated(&csv, &small_pattern(), 2);
    let o = bin()
        .current_dir(dir.path())
        .args([
            "--mode",
            "train",
            "--no-plots",
            "--no-eda",
            "--dataset",
            "cpu.csv",
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(!stdout.contains("Data summary"));
    assert!(!dir.path().join("output").exists());
    assert!(dir.path().join("models/prophet_model.json").exists());
}

#[test]
fn the_default_dataset_is_built_in_when_the_directory_has_none() {
    // A bare machine: the binary in an empty directory, no config file.
    let dir = tempfile::tempdir().unwrap();
    let o = bin()
        .current_dir(dir.path())
        .args(["--mode", "train", "--no-plots", "--no-eda"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{stderr}");
    assert!(
        stderr.contains("datasets/sample_cpu.csv is not in the working directory; using the copy built into the binary"),
        "{stderr}"
    );
    let meta: serde_json::Value = serde_json::from_slice(
        &std::fs::read(dir.path().join("models/prophet_model.meta.json")).unwrap(),
    )
    .unwrap();
    let bundled = include_str!("../datasets/sample_cpu.csv").lines().count() - 1;
    assert_eq!(meta["rows"], bundled as u64);
    assert!(!dir.path().join("datasets").exists());
}

#[test]
fn bad_csv_exits_3_with_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("bad.csv");
    std::fs::write(
        &csv,
        "timestamp,cpu_usage\n2024-01-01 00:00:00,0.5\n2024-01-01 00:05:00,oops\n",
    )
    .unwrap();
    let o = bin()
        .current_dir(dir.path())
        .args(["--mode", "train", "--dataset", "bad.csv"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(3));
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        stderr.contains("bad.csv:3: column `cpu_usage`: not a number: \"oops\""),
        "{stderr}"
    );
}

#[test]
fn missing_dataset_file_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let o = bin()
        .current_dir(dir.path())
        .args(["--mode", "train", "--dataset", "nope.csv"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&o.stderr).contains("nope.csv: cannot read"));
}

#[test]
fn config_errors_exit_2_and_name_key_and_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("c.yaml"), "interval_width: 2\n").unwrap();
    let o = bin()
        .current_dir(dir.path())
        .args(["--mode", "train", "--config", "c.yaml"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        stderr.contains("c.yaml: key `interval_width` = 2"),
        "{stderr}"
    );

    std::fs::write(dir.path().join("c.yaml"), "prophet_daily: true\n").unwrap();
    let o = bin()
        .current_dir(dir.path())
        .args(["--mode", "train", "--config", "c.yaml"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("key `prophet_daily`: unknown field"));

    let o = bin()
        .current_dir(dir.path())
        .env("MONITORING_INTERVAL", "-1")
        .args(["--mode", "train"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("environment variable MONITORING_INTERVAL"));
}

#[test]
fn secrets_are_not_printed_even_at_debug() {
    let dir = tempfile::tempdir().unwrap();
    let o = bin()
        .current_dir(dir.path())
        .env("INFLUXDB_TOKEN", "tok-very-secret")
        // Writes that fail and are retried are logged at debug: with the
        // token in their requests, it must still not show.
        .env("INFLUXDB_ENABLED", "true")
        .env(
            "INFLUXDB_URL",
            format!("http://127.0.0.1:{}", crate::common::servers::free_port()),
        )
        .env("INFLUXDB_FLUSH_INTERVAL", "0.2")
        .env("PROMETHEUS_RETRIES", "0")
        // No API: a test never binds a fixed port (the default is 8080).
        .env("API_LISTEN", "")
        .env(
            "PROMETHEUS_URL",
            format!("http://127.0.0.1:{}", crate::common::servers::free_port()),
        )
        .args([
            "--mode",
            "monitor",
            "--log-level",
            "debug",
            "--max-ticks",
            "2",
        ])
        .args(["--monitoring-interval", "0.5"])
        .output()
        .unwrap();
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(!all.contains("tok-very-secret"), "{all}");
    assert!(all.contains("spooled"), "the writes did fail: {all}");
    assert!(
        all.contains("settings loaded"),
        "debug log shows settings: {all}"
    );
}

#[test]
fn help_explains_modes_and_exit_codes() {
    let o = bin().arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&o.stdout);
    for w in [
        "--mode",
        "--dataset",
        "--model-path",
        "--prometheus-url",
        "--monitoring-interval",
        "--log-level",
        "--threshold-multiplier",
        "--no-plots",
        "--no-eda",
        "--config",
        "Exit codes",
        "INFLUXDB_TOKEN",
    ] {
        assert!(help.contains(w), "help lacks {w}");
    }
}
