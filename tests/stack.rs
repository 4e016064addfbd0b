//! The compose stack, validated by real tools where they exist here
//! (`docker-compose config -q`, `promtool check config`) and by parsing:
//! every Grafana file parses, and every InfluxQL query in the dashboard and the
//! alert rules names only measurements, fields and tags that the writer's
//! schema (`sink::schema`, the one source of truth) defines.

use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
    process::Command,
};

use crate::common::servers;
use cpu_anomaly::sink::schema;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(root().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

fn yaml(rel: &str) -> serde_yaml::Value {
    serde_yaml::from_str(&read(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

#[test]
fn compose_file_is_valid_for_docker_compose() {
    if !servers::require("docker-compose", "compose_file_is_valid_for_docker_compose") {
        return;
    }
    let out = Command::new("docker-compose")
        .current_dir(root())
        .args([
            "--env-file",
            ".env.example",
            "-f",
            "docker-compose.yml",
            "config",
            "-q",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Without the secrets, compose refuses to start rather than run with defaults.
    let empty = tempfile::NamedTempFile::new().unwrap();
    let out = Command::new("docker-compose")
        .current_dir(root())
        .arg("--env-file")
        .arg(empty.path())
        .args(["-f", "docker-compose.yml", "config", "-q"])
        .env_remove("INFLUXDB_TOKEN")
        .env_remove("INFLUXDB_ADMIN_PASSWORD")
        .env_remove("GRAFANA_ADMIN_PASSWORD")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("in .env"));
}

#[test]
fn compose_services_start_in_order_with_health_checks() {
    let c = yaml("docker-compose.yml");
    let services = c["services"].as_mapping().unwrap();
    for s in ["influxdb", "prometheus", "node-exporter", "grafana", "app"] {
        assert!(services.contains_key(s), "service {s}");
    }
    assert_eq!(c["services"]["influxdb"]["image"], "influxdb:2.7");
    assert!(c["services"]["influxdb"]["healthcheck"]["test"].is_sequence());
    assert_eq!(
        c["services"]["app"]["depends_on"]["influxdb"]["condition"],
        "service_healthy"
    );
    assert_eq!(c["services"]["app"]["build"], ".");
    assert_eq!(c["services"]["app"]["command"][1], "monitor");
    // Prometheus and the app share the API token through the secret file.
    assert_eq!(
        c["services"]["app"]["environment"]["API_TOKEN_FILE"],
        "/run/secrets/api_token"
    );
    assert_eq!(
        c["services"]["app"]["environment"]["API_LISTEN"],
        "0.0.0.0:8080"
    );
    assert_eq!(c["services"]["prometheus"]["secrets"][0], "api_token");
    assert_eq!(c["secrets"]["api_token"]["file"], "./secrets/api_token");
    // The app's env vars are ones it reads.
    let known: BTreeSet<&str> = cpu_anomaly::config::ENV_VARS
        .iter()
        .map(|(v, _)| *v)
        .collect();
    for (k, _) in c["services"]["app"]["environment"].as_mapping().unwrap() {
        let k = k.as_str().unwrap();
        assert!(
            known.contains(k),
            "app env {k} is not a cpu-anomaly variable"
        );
    }
    // Every ${VAR} the compose file needs is in .env.example, and no secret
    // is written into the compose file itself.
    let compose = read("docker-compose.yml");
    let example = read(".env.example");
    for var in compose.split("${").skip(1).map(|s| {
        s.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .next()
            .unwrap()
    }) {
        assert!(
            example.lines().any(|l| l.starts_with(&format!("{var}="))),
            "{var} missing from .env.example"
        );
    }
    assert!(!compose.contains("replace-with-a-long-random-token"));
}

#[test]
fn prometheus_config_is_valid_and_scrapes_node_exporter_and_the_app() {
    if !servers::require("promtool", "prometheus_config_is_valid") {
        return;
    }
    // The token file is a compose secret mounted at /run/secrets; check a
    // copy whose path points at a stand-in token.
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("api_token");
    std::fs::write(&token, "stand-in").unwrap();
    let text = read("prometheus/prometheus.yml");
    assert!(text.contains("credentials_file: /run/secrets/api_token"));
    std::fs::write(
        dir.path().join("prometheus.yml"),
        text.replace("/run/secrets/api_token", &token.display().to_string()),
    )
    .unwrap();
    std::fs::copy(
        root().join("prometheus/rules.yml"),
        dir.path().join("rules.yml"),
    )
    .unwrap();
    let out = Command::new("promtool")
        .args(["check", "config"])
        .arg(dir.path().join("prometheus.yml"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let text = read("prometheus/prometheus.yml");
    assert!(text.contains("node-exporter:9100"));
    assert!(text.contains("app:8080"));
    // The rules notify Alertmanager.
    let p = yaml("prometheus/prometheus.yml");
    assert_eq!(
        p["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"][0],
        "alertmanager:9093"
    );
}

#[test]
fn alertmanager_routes_the_app_and_the_rules_by_host() {
    if !servers::require(
        "amtool",
        "alertmanager_routes_the_app_and_the_rules_by_host",
    ) {
        return;
    }
    let out = Command::new("amtool")
        .args(["check-config"])
        .arg(root().join("alertmanager/alertmanager.yml"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let am = yaml("alertmanager/alertmanager.yml");
    assert!(am["route"]["group_by"]
        .as_sequence()
        .unwrap()
        .iter()
        .any(|v| v == "host"));
    let c = yaml("docker-compose.yml");
    assert!(c["services"]["alertmanager"]["image"]
        .as_str()
        .unwrap()
        .starts_with("prom/alertmanager:"));
    assert_eq!(
        c["services"]["app"]["environment"]["ALERTMANAGER_URL"],
        "http://alertmanager:9093"
    );
}

/// Every InfluxQL query of the dashboard (targets and variables) and the
/// alert rules, with where it came from.
fn influxql_queries() -> Vec<(String, String)> {
    let mut out = Vec::new();
    let dash: serde_json::Value =
        serde_json::from_str(&read("grafana/dashboards/cpu-anomaly.json")).unwrap();
    for p in dash["panels"].as_array().unwrap() {
        for t in p["targets"].as_array().unwrap() {
            out.push((
                format!("panel {:?} {}", p["title"], t["refId"]),
                t["query"].as_str().unwrap().to_string(),
            ));
        }
    }
    for v in dash["templating"]["list"].as_array().unwrap() {
        out.push((
            format!("variable {}", v["name"]),
            v["query"].as_str().unwrap().to_string(),
        ));
    }
    let alerts = yaml("grafana/provisioning/alerting/cpu-anomaly.yml");
    for g in alerts["groups"].as_sequence().unwrap() {
        for r in g["rules"].as_sequence().unwrap() {
            for d in r["data"].as_sequence().unwrap() {
                if let Some(q) = d["model"]["query"].as_str() {
                    out.push((format!("alert {:?}", r["title"]), q.to_string()));
                }
            }
        }
    }
    out
}

/// Identifiers in double quotes, and the identifiers right after `AS`.
fn identifiers(q: &str) -> (Vec<String>, Vec<String>) {
    let quoted: Vec<String> = q.split('"').skip(1).step_by(2).map(String::from).collect();
    let aliases = q
        .match_indices(" AS \"")
        .map(|(i, m)| q[i + m.len()..].split('"').next().unwrap().to_string())
        .collect();
    (quoted, aliases)
}

/// `'value'` compared with the identifier `name` (`"name" = 'value'`).
fn compared(q: &str, name: &str) -> Vec<String> {
    let key = format!("\"{name}\" = '");
    q.match_indices(&key)
        .map(|(i, m)| q[i + m.len()..].split('\'').next().unwrap().to_string())
        .collect()
}

/// Checks one query against the schema; returns what is wrong.
fn check_query(q: &str) -> Vec<String> {
    let mut problems = Vec::new();
    let measurements: Vec<String> = q
        .match_indices("FROM \"")
        .map(|(i, m)| q[i + m.len()..].split('"').next().unwrap().to_string())
        .collect();
    if measurements.is_empty() {
        problems.push("no FROM \"measurement\"".to_string());
    }
    let mut names = BTreeSet::new();
    for m in &measurements {
        match schema::SCHEMA.iter().find(|(name, _, _)| name == m) {
            Some((_, t, f)) => {
                names.extend(t.iter().copied());
                names.extend(f.iter().copied());
            }
            None => problems.push(format!("measurement {m:?} is not written")),
        }
    }
    let (quoted, aliases) = identifiers(q);
    for id in quoted {
        if !(measurements.contains(&id) || names.contains(id.as_str()) || aliases.contains(&id)) {
            problems.push(format!(
                "{id:?} is neither a tag nor a field of {measurements:?}"
            ));
        }
    }
    for v in compared(q, schema::TAG_METRIC_TYPE) {
        if ![schema::METRIC_ACTUAL, schema::METRIC_FORECASTED].contains(&v.as_str()) {
            problems.push(format!("metric_type {v:?} is never written"));
        }
    }
    for v in compared(q, schema::TAG_EVENT) {
        if ![schema::EVENT_FIRING, schema::EVENT_RESOLVED].contains(&v.as_str()) {
            problems.push(format!("event {v:?} is never written"));
        }
    }
    problems
}

#[test]
fn every_query_names_only_what_the_writer_writes() {
    let queries = influxql_queries();
    assert!(queries.len() >= 15, "{}", queries.len());
    let mut problems = Vec::new();
    for (at, q) in &queries {
        for p in check_query(q) {
            problems.push(format!("{at}: {p}"));
        }
    }
    assert!(problems.is_empty(), "{problems:#?}");
}

#[test]
fn the_query_check_catches_a_renamed_field_or_tag() {
    // What the check would say if the writer renamed anomaly_score or host.
    let q =
        r#"SELECT last("score") FROM "anomaly_detection" WHERE "hostname" =~ /x/ GROUP BY "host""#;
    let p = check_query(q);
    assert!(p.iter().any(|s| s.contains("\"score\"")), "{p:?}");
    assert!(p.iter().any(|s| s.contains("\"hostname\"")), "{p:?}");
    let q = r#"SELECT mean("cpu_usage") FROM "cpu" WHERE "metric_type" = 'predicted'"#;
    let p = check_query(q);
    assert!(p.iter().any(|s| s.contains("measurement \"cpu\"")), "{p:?}");
    assert!(p.iter().any(|s| s.contains("\"predicted\"")), "{p:?}");
}

#[test]
fn dashboard_has_the_panels_and_the_host_variable() {
    let dash: serde_json::Value =
        serde_json::from_str(&read("grafana/dashboards/cpu-anomaly.json")).unwrap();
    let titles: Vec<&str> = dash["panels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["title"].as_str().unwrap())
        .collect();
    for want in [
        "actual vs forecast",
        "Anomaly points",
        "Current status",
        "Anomalies (last 1 h)",
        "Confidence",
        "Anomaly rate (24 h)",
        "Severity breakdown",
        "Alert onsets",
        "Short-history hosts",
    ] {
        assert!(
            titles.iter().any(|t| t.contains(want)),
            "panel {want}: {titles:?}"
        );
    }
    assert_eq!(dash["templating"]["list"][0]["name"], "host");
    // Every panel filters by the host variable (the variable itself lists hosts).
    for p in dash["panels"].as_array().unwrap() {
        for t in p["targets"].as_array().unwrap() {
            assert!(
                t["query"].as_str().unwrap().contains("${host:regex}"),
                "{}",
                p["title"]
            );
            assert_eq!(t["rawQuery"], true, "{}", p["title"]);
        }
    }
    let uid = "cpu-anomaly-influxdb";
    let ds = yaml("grafana/provisioning/datasources/influxdb.yml");
    assert_eq!(ds["datasources"][0]["uid"], uid);
    assert_eq!(ds["datasources"][0]["jsonData"]["version"], "InfluxQL");
    assert_eq!(
        ds["datasources"][0]["jsonData"]["dbName"],
        "${INFLUXDB_BUCKET}"
    );
    assert_eq!(
        ds["datasources"][0]["jsonData"]["httpHeaderName1"],
        "Authorization"
    );
    assert_eq!(
        ds["datasources"][0]["secureJsonData"]["httpHeaderValue1"],
        "Token ${INFLUXDB_TOKEN}"
    );
    assert!(read("grafana/dashboards/cpu-anomaly.json").contains(uid));
    let prov = yaml("grafana/provisioning/dashboards/cpu-anomaly.yml");
    assert_eq!(
        prov["providers"][0]["options"]["path"],
        "/var/lib/grafana/dashboards"
    );
}

#[test]
fn alert_rules_and_contact_point_are_provisioned() {
    let a = yaml("grafana/provisioning/alerting/cpu-anomaly.yml");
    let rules = a["groups"][0]["rules"].as_sequence().unwrap();
    let uids: Vec<&str> = rules.iter().map(|r| r["uid"].as_str().unwrap()).collect();
    assert_eq!(
        uids,
        [
            "cpu-anomaly-rate-high",
            "cpu-anomaly-no-data",
            "cpu-anomaly-alert",
            "cpu-anomaly-sustained",
            "cpu-anomaly-capacity"
        ]
    );
    for r in rules {
        let cond = r["condition"].as_str().unwrap();
        assert!(
            r["data"]
                .as_sequence()
                .unwrap()
                .iter()
                .any(|d| d["refId"] == cond),
            "{:?}: condition {cond} is one of its queries",
            r["title"]
        );
    }
    // The thresholds: > 10 %, < 1 sample in 5 min, any alert onset, > 5 in a row.
    let threshold =
        |i: usize| rules[i]["data"][2]["model"]["conditions"][0]["evaluator"]["params"][0].as_f64();
    assert_eq!(threshold(0), Some(0.1));
    assert_eq!(threshold(1), Some(1.0));
    assert_eq!(threshold(2), Some(0.0));
    assert_eq!(threshold(3), Some(5.0));
    assert_eq!(rules[1]["noDataState"], "Alerting");
    assert_eq!(
        a["contactPoints"][0]["receivers"][0]["settings"]["url"],
        "http://alertmanager:9093"
    );
    assert_eq!(a["policies"][0]["receiver"], a["contactPoints"][0]["name"]);
    for f in walk(&root().join("grafana")) {
        let text = std::fs::read_to_string(&f).unwrap();
        match f.extension().and_then(|e| e.to_str()) {
            Some("json") => {
                serde_json::from_str::<serde_json::Value>(&text)
                    .unwrap_or_else(|e| panic!("{f:?}: {e}"));
            }
            Some("yml" | "yaml") => {
                serde_yaml::from_str::<serde_yaml::Value>(&text)
                    .unwrap_or_else(|e| panic!("{f:?}: {e}"));
            }
            _ => {}
        }
    }
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

fn promtool(args: &[&str]) -> (bool, String) {
    let out = Command::new("promtool")
        .current_dir(root().join("prometheus"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn prometheus_alert_rules_pass_promtool_check_and_unit_tests() {
    if !servers::require("promtool", "prometheus_alert_rules_pass_promtool") {
        return;
    }
    let (ok, out) = promtool(&["check", "rules", "rules.yml"]);
    assert!(ok && out.contains("5 rules found"), "{out}");
    let (ok, out) = promtool(&["test", "rules", "rules_test.yml"]);
    assert!(ok && out.contains("SUCCESS"), "{out}");
}

#[test]
fn prometheus_rules_use_only_metrics_the_monitor_exports() {
    let exported = cpu_anomaly::api::render_metrics(
        &cpu_anomaly::api::Snapshot::default(),
        &cpu_anomaly::sink::SinkStats::default(),
    );
    let names: BTreeSet<&str> = exported
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split(' ').next())
        .collect();
    let rules = read("prometheus/rules.yml");
    let used: BTreeSet<&str> = rules
        .match_indices("cpu_anomaly_")
        .map(|(i, _)| {
            let rest = &rules[i..];
            let end = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            &rest[..end]
        })
        .collect();
    assert!(used.len() >= 2, "{used:?}");
    for u in &used {
        assert!(
            names.contains(u),
            "rules.yml uses {u}, which /metrics does not export"
        );
    }
}
