//! Config layers, precedence, validation and their errors.

use super::*;
use crate::{detect::Side, forecast::optimizer::OptimizerKind};

fn load(text: &str, env: &[(&str, &str)], cli: CliOverrides) -> Result<Settings, ConfigError> {
    let env: HashMap<String, String> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Settings::from_layers(
        text,
        Some("c.yaml".into()),
        "c.yaml",
        |k| env.get(k).cloned(),
        &cli,
    )
}

#[test]
fn alert_routing_urls_and_the_dashboard_link() {
    let s = load(
        "alertmanager_url: http://am:9093\nmonitoring_interval: 60\n",
        &[("WEBHOOK_URL", "https://hooks.example/x")],
        CliOverrides::default(),
    )
    .unwrap();
    assert_eq!(s.notify.alertmanager_url, "http://am:9093");
    assert_eq!(s.notify.webhook_url, "https://hooks.example/x");
    assert_eq!(s.notify.dashboard_url, "http://127.0.0.1:8080/");
    assert_eq!(s.notify.expire_after, Duration::from_secs(180));
    let e = load("webhook_url: hooks.example\n", &[], CliOverrides::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("c.yaml: key `webhook_url`"), "{e}");
    let off = load("", &[], CliOverrides::default()).unwrap();
    assert!(!off.notify.enabled());
}

#[test]
fn shard_and_capacity_keys_and_their_errors() {
    let s = load("", &[], CliOverrides::default()).unwrap();
    assert_eq!(s.monitor.shard, Shard::default());
    assert_eq!(s.monitor.capacity, CapacitySettings::default());
    let s = load(
        "shard_count: 3\nshard_index: 2\nreplication_factor: 2\ncapacity_threshold: 80\ncapacity_horizon: 15m\n",
        &[],
        CliOverrides::default(),
    )
    .unwrap();
    assert_eq!(s.monitor.shard, Shard::new(3, 2, 2).unwrap());
    assert_eq!(s.monitor.capacity.threshold, 80.0);
    assert_eq!(s.monitor.capacity.horizon, Duration::from_secs(900));
    let s = load(
        "shard_count: 4\n",
        &[("SHARD_INDEX", "3"), ("REPLICATION_FACTOR", "2")],
        CliOverrides::default(),
    )
    .unwrap();
    assert_eq!(s.monitor.shard, Shard::new(4, 3, 2).unwrap());
    let auto = "shard_count: 3\nshard_index: auto\n";
    let s = load(
        auto,
        &[("HOSTNAME", "cpu-anomaly-2")],
        CliOverrides::default(),
    )
    .unwrap();
    assert_eq!(s.monitor.shard.index(), 2);
    let e = load(auto, &[("HOSTNAME", "laptop")], CliOverrides::default()).unwrap_err();
    assert!(
        e.to_string().contains("shard_index") && e.to_string().contains("laptop"),
        "{e}"
    );
    for (text, env, key) in [
        ("shard_count: 3\nshard_index: 3\n", vec![], "shard_index"),
        ("shard_count: 0\n", vec![], "shard_count"),
        (
            "shard_count: 2\nreplication_factor: 3\n",
            vec![],
            "replication_factor",
        ),
        ("shard_index: [1]\n", vec![], "shard_index"),
        (
            "shard_count: 2\n",
            vec![("SHARD_INDEX", "two")],
            "shard_index",
        ),
        ("capacity_threshold: -1\n", vec![], "capacity_threshold"),
        ("capacity_horizon: 0\n", vec![], "capacity_horizon"),
    ] {
        let e = load(text, &env, CliOverrides::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains(key), "{text}: {e}");
    }
}

#[test]
fn a_blank_api_token_is_refused_without_echoing_it() {
    let e = load("", &[("API_TOKEN", "   ")], CliOverrides::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("API_TOKEN"), "{e}");
    assert!(e.contains("(blank)"), "{e}");
    let s = load("", &[("API_TOKEN", " t0k \n")], CliOverrides::default()).unwrap();
    assert_eq!(s.api_token.expose(), "t0k");
}

#[test]
fn a_section_that_is_not_a_mapping_is_an_error_whatever_else_is_set() {
    for env in [&[][..], &[("INFLUXDB_URL", "http://x:8086")][..]] {
        let e = load("influxdb: hello\n", env, CliOverrides::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("c.yaml: key `influxdb`"), "{e}");
    }
    let e = load(
        "- a list\n",
        &[("INFLUXDB_URL", "u")],
        CliOverrides::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(e.starts_with("c.yaml: key `.`"), "{e}");
}

#[test]
fn model_family_and_robust_training_from_every_layer() {
    let s = load(
        "model: mstl\n",
        &[("ROBUST_TRAINING", "true")],
        CliOverrides::default(),
    )
    .unwrap();
    assert_eq!(s.model, ModelFamily::Mstl);
    assert!(s.robust_training);
    let e = load("model: arima\n", &[], CliOverrides::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("c.yaml: key `model`"), "{e}");
    assert!(e.contains("prophet"), "{e}");
}

#[test]
fn prophet_optimizer_from_file_and_env() {
    let d = load("", &[], CliOverrides::default()).unwrap();
    assert_eq!(d.prophet.optimizer, OptimizerKind::Native);
    let r = load(
        "prophet_optimizer: native\n",
        &[("PROPHET_OPTIMIZER", "wasmstan")],
        CliOverrides::default(),
    );
    if cfg!(feature = "wasmstan") {
        assert_eq!(r.unwrap().prophet.optimizer, OptimizerKind::Wasmstan);
    } else {
        let e = r.unwrap_err().to_string();
        assert!(e.contains("PROPHET_OPTIMIZER"), "{e}");
        assert!(e.contains("--features wasmstan"), "{e}");
    }
    let e = load("prophet_optimizer: lbfgs\n", &[], CliOverrides::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("c.yaml: key `prophet_optimizer`"), "{e}");
    assert!(e.contains("native"), "{e}");
}

#[test]
fn monitor_section_keys_and_their_errors() {
    let s = load(
        "model_selector: '{instance=\"web-1:9100\"}'\nmodel_workers: 3\n",
        &[("MIN_HISTORY", "7200"), ("TRAINING_STEP", "60")],
        CliOverrides::default(),
    )
    .unwrap();
    assert_eq!(s.monitor.min_history, Duration::from_secs(7200));
    assert_eq!(s.prometheus.training_step, Duration::from_secs(60));
    assert_eq!(s.monitor.model_workers, 3);
    let mut l = crate::source::prometheus::Labels::new();
    l.insert("instance".into(), "web-1:9100".into());
    assert!(s.monitor.model_selector.matches(&l));
    let d = load("", &[], CliOverrides::default()).unwrap();
    assert!(d.monitor.model_selector.is_empty());
    assert!(d.monitor.model_workers >= 1);
    assert_eq!(d.monitor.min_history, Duration::from_secs(3600));
    let e = load(
        "model_selector: 'instance=web'\n",
        &[],
        CliOverrides::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(e.starts_with("c.yaml: key `model_selector`"), "{e}");
    assert!(e.contains("quoted value"), "{e}");
    let mut cli = CliOverrides::default();
    cli.set("training_step", "--training-step", Some(0.5));
    let e = load("", &[], cli).unwrap_err().to_string();
    assert!(e.starts_with("flag --training-step"), "{e}");
    assert_eq!(
        d.monitor.decision_state_interval,
        Some(Duration::from_secs(300))
    );
    let s = load("decision_state_interval: 0\n", &[], CliOverrides::default()).unwrap();
    assert_eq!(s.monitor.decision_state_interval, None);
    let s = load(
        "",
        &[("DECISION_STATE_INTERVAL", "1m")],
        CliOverrides::default(),
    )
    .unwrap();
    assert_eq!(
        s.monitor.decision_state_interval,
        Some(Duration::from_secs(60))
    );
    let e = load(
        "decision_state_interval: -5\n",
        &[],
        CliOverrides::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.starts_with("c.yaml: key `decision_state_interval`")
            && e.contains("0 (at a clean stop only)"),
        "{e}"
    );
}

#[test]
fn forecast_section_defaults_agree_with_the_config_defaults() {
    let d = load("", &[], CliOverrides::default()).unwrap();
    assert_eq!(d.prophet, ProphetSettings::default());
}

#[test]
fn shipped_config_yaml_is_valid_and_matches_defaults() {
    let text = include_str!("../../config.yaml");
    let s = load(text, &[], CliOverrides::default()).unwrap();
    let d = load("", &[], CliOverrides::default()).unwrap();
    assert_eq!(s.prophet, d.prophet);
    assert_eq!(s.threshold_multiplier, d.threshold_multiplier);
    assert_eq!(s.monitoring_interval, d.monitoring_interval);
    assert_eq!(s.influxdb.batch_size, d.influxdb.batch_size);
    assert_eq!(s.monitor.min_history, d.monitor.min_history);
    assert_eq!(s.prometheus.training_step, d.prometheus.training_step);
    assert_eq!(s.prometheus.history, d.prometheus.history);
    assert_eq!(s.decision, d.decision);
    assert!(s.alert_groups.is_empty() && d.alert_groups.is_empty());
}

#[test]
fn durations_take_unit_suffixes_and_huge_ones_are_errors_not_panics() {
    let s = load(
        "monitoring_interval: 30s\nretrain_interval: 1d\nmin_history: 1.5h\n",
        &[("INFLUXDB_FLUSH_INTERVAL", "5m")],
        CliOverrides::default(),
    )
    .unwrap();
    assert_eq!(s.monitoring_interval, Duration::from_secs(30));
    assert_eq!(s.retrain_interval, Duration::from_secs(86_400));
    assert_eq!(s.monitor.min_history, Duration::from_secs(5400));
    assert_eq!(s.influxdb.flush_interval, Duration::from_secs(300));
    for (file, env) in [
        ("monitoring_interval: 1e20\n", None),
        ("", Some(("MONITORING_INTERVAL", "1e19"))),
        ("", Some(("INFLUXDB_FLUSH_INTERVAL", "1e19"))),
        ("series_grace_period: 400d\n", None),
        ("influxdb:\n  timeout: 0\n", None),
    ] {
        let env: Vec<(&str, &str)> = env.into_iter().collect();
        let e = load(file, &env, CliOverrides::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("at most 366 days"), "{file} {env:?}: {e}");
    }
    let e = load("monitoring_interval: soon\n", &[], CliOverrides::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("not a duration"), "{e}");
    let mut cli = CliOverrides::default();
    cli.set("min_history", "--min-history", Some("2h"));
    assert_eq!(
        load("", &[], cli).unwrap().monitor.min_history,
        Duration::from_secs(7200)
    );
}

#[test]
fn decision_keys_and_their_ranges() {
    let s = load(
        "alert_direction: above\nalert_cooldown: 600\nmin_effect: 5\n",
        &[("ALERT_LIKELIHOOD", "0.01"), ("BAND_CALIBRATION", "true")],
        CliOverrides::default(),
    )
    .unwrap();
    assert_eq!(s.decision.direction, Side::Above);
    assert_eq!(s.decision.cooldown, 600);
    assert_eq!(s.decision.min_effect, 5.0);
    assert_eq!(s.decision.likelihood, 0.01);
    assert!(s.decision.calibrate);
    let e = load("alert_direction: sideways\n", &[], CliOverrides::default())
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("c.yaml: key `alert_direction`"), "{e}");
    let e = load("", &[("ALERT_LIKELIHOOD", "0.7")], CliOverrides::default())
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("environment variable ALERT_LIKELIHOOD"),
        "{e}"
    );
    let e = load("alert_cooldown: -1\n", &[], CliOverrides::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("alert_cooldown"), "{e}");
    let s = load(
        "",
        &[("MIN_EFFECT_RELATIVE", "0.25")],
        CliOverrides::default(),
    )
    .unwrap();
    assert_eq!(s.decision.min_effect_relative, 0.25);
    for (text, key) in [
        ("min_effect_relative: -0.5\n", "min_effect_relative"),
        ("min_effect_peak_factor: 11\n", "min_effect_peak_factor"),
        ("alert_routine_factor: -1\n", "alert_routine_factor"),
    ] {
        let e = load(text, &[], CliOverrides::default())
            .unwrap_err()
            .to_string();
        assert!(e.starts_with(&format!("c.yaml: key `{key}`")), "{e}");
    }
}

#[test]
fn alert_overrides_give_a_group_of_series_its_own_settings_first_match_wins() {
    let text = concat!(
        "alert_likelihood: 0.05\n",
        "min_effect: 3\n",
        "alert_overrides:\n",
        "  - selector: '{job=\"batch\"}'\n",
        "    alert_likelihood: 0.0001\n",
        "    alert_cooldown: 2h\n",
        "  - selector: '{job=~\"batch|db\"}'\n",
        "    alert_direction: above\n",
    );
    let s = load(text, &[("MIN_EFFECT", "4")], CliOverrides::default()).unwrap();
    let labels = |job: &str| {
        crate::source::prometheus::Labels::from([
            ("instance".to_string(), "h:9100".to_string()),
            ("job".to_string(), job.to_string()),
        ])
    };
    let batch = s.decision_for(&labels("batch"));
    // The entry's keys, the top level's (with its env layer) for the rest.
    assert_eq!(batch.likelihood, 0.0001);
    assert_eq!(batch.cooldown, 7200);
    assert_eq!(batch.min_effect, 4.0);
    assert_eq!(batch.direction, Side::Both, "the first match wins");
    let db = s.decision_for(&labels("db"));
    assert_eq!(db.direction, Side::Above);
    assert_eq!(db.likelihood, 0.05);
    assert_eq!(s.decision_for(&labels("web")), s.decision);
    assert_eq!(s.decisions_in_use(), vec![s.decision, batch, db]);

    // Errors name the entry and the key.
    for (entry, key) in [
        (
            "alert_likelihood: 0.9",
            "alert_overrides[0].alert_likelihood",
        ),
        (
            "threshold_multiplier: 0.5",
            "alert_overrides[0].threshold_multiplier",
        ),
        ("alert_likelyhood: 0.01", "alert_overrides[0]"),
    ] {
        let e = load(
            &format!("alert_overrides:\n  - selector: '{{job=\"a\"}}'\n    {entry}\n"),
            &[],
            CliOverrides::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(e.starts_with(&format!("c.yaml: key `{key}")), "{e}");
    }
    for selector in ["''", "'job=batch'"] {
        let e = load(
            &format!("alert_overrides:\n  - selector: {selector}\n    min_effect: 5\n"),
            &[],
            CliOverrides::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.starts_with("c.yaml: key `alert_overrides[0].selector`"),
            "{e}"
        );
    }
    let e = load(
        "alert_overrides:\n  - min_effect: 5\n",
        &[],
        CliOverrides::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("selector"), "{e}");
}

#[test]
fn precedence_file_then_env_then_cli() {
    let text = "monitoring_interval: 10\nlog_level: debug\ninfluxdb:\n  url: http://file:8086\n";
    let s = load(text, &[], CliOverrides::default()).unwrap();
    assert_eq!(s.monitoring_interval, Duration::from_secs(10));
    let s = load(
        text,
        &[
            ("MONITORING_INTERVAL", "20"),
            ("INFLUXDB_URL", "http://env:8086"),
        ],
        CliOverrides::default(),
    )
    .unwrap();
    assert_eq!(s.monitoring_interval, Duration::from_secs(20));
    assert_eq!(s.influxdb.url, "http://env:8086");
    let mut cli = CliOverrides::default();
    cli.set("monitoring_interval", "--monitoring-interval", Some(5));
    let s = load(text, &[("MONITORING_INTERVAL", "20")], cli).unwrap();
    assert_eq!(s.monitoring_interval, Duration::from_secs(5));
    assert_eq!(s.log_level, "debug");
}

#[test]
fn unknown_key_is_named_with_file() {
    let err = load("influxdb:\n  batchsize: 5\n", &[], CliOverrides::default())
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("c.yaml: key `influxdb.batchsize`"), "{err}");
    assert!(err.contains("unknown field"), "{err}");
}

#[test]
fn wrong_type_is_named() {
    let err = load("monitoring_interval: soon\n", &[], CliOverrides::default())
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("c.yaml: key `monitoring_interval`"),
        "{err}"
    );
}

#[test]
fn out_of_range_names_key_and_origin() {
    let err = load("interval_width: 1.5\n", &[], CliOverrides::default())
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        "c.yaml: key `interval_width` = 1.5: must be strictly between 0 and 1"
    );
    let err = load(
        "",
        &[("MONITORING_INTERVAL", "-3")],
        CliOverrides::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.starts_with("environment variable MONITORING_INTERVAL: key `monitoring_interval` = -3"),
        "{err}"
    );
    let mut cli = CliOverrides::default();
    cli.set("threshold_multiplier", "--threshold-multiplier", Some(0.5));
    let err = load("", &[], cli).unwrap_err().to_string();
    assert!(err.starts_with("flag --threshold-multiplier"), "{err}");
}

#[test]
fn syntax_error_names_file() {
    let err = load("influxdb: [\n", &[], CliOverrides::default())
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("c.yaml: invalid YAML"), "{err}");
}

#[test]
fn token_from_env_is_never_printed() {
    let s = load(
        "",
        &[("INFLUXDB_TOKEN", "s3cr3t-t0ken")],
        CliOverrides::default(),
    )
    .unwrap();
    assert_eq!(s.influxdb.token.expose(), "s3cr3t-t0ken");
    let dbg = format!("{s:?}");
    assert!(!dbg.contains("s3cr3t"), "{dbg}");
}

#[test]
fn numeric_looking_token_stays_a_string() {
    let s = load("", &[("INFLUXDB_TOKEN", "12345")], CliOverrides::default()).unwrap();
    assert_eq!(s.influxdb.token.expose(), "12345");
}
