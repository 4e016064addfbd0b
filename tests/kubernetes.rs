//! `deploy/kubernetes/`: every manifest parses, the pieces refer to each
//! other correctly (Service ↔ StatefulSet, probes ↔ the API port, the token
//! ↔ the Secret, the mounted config ↔ `--config`), and the ConfigMap's
//! config.yaml loads with the binary's own validation in every pod of the
//! StatefulSet, each taking its shard from its pod name. (No Kubernetes API
//! server here: the manifests are checked, not applied.)

use std::path::Path;

use cpu_anomaly::config::{CliOverrides, Settings};
use serde_yaml::Value;

fn dir() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/kubernetes"))
}

fn manifest(name: &str) -> Value {
    let text = std::fs::read_to_string(dir().join(name)).unwrap();
    serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn s<'a>(v: &'a Value, path: &str) -> &'a Value {
    path.split('.').fold(v, |v, k| match k.parse::<usize>() {
        Ok(i) => &v[i],
        Err(_) => &v[k],
    })
}

fn load(config: &str, host: &str) -> Result<Settings, String> {
    let env = |k: &str| match k {
        "HOSTNAME" => Some(host.to_string()),
        "API_TOKEN" => Some("a-token".to_string()),
        "INFLUXDB_TOKEN" => Some("an-influx-token".to_string()),
        _ => None,
    };
    Settings::from_layers(
        config,
        None,
        "configmap.yaml",
        env,
        &CliOverrides::default(),
    )
    .map_err(|e| e.to_string())
}

#[test]
fn the_manifests_fit_together_and_every_pod_gets_its_shard() {
    let cm = manifest("configmap.yaml");
    let svc = manifest("service.yaml");
    let sts = manifest("statefulset.yaml");
    let secret = manifest("secret.example.yaml");
    let kustomization = manifest("kustomization.yaml");
    assert_eq!(s(&cm, "kind"), "ConfigMap");
    assert_eq!(s(&svc, "kind"), "Service");
    assert_eq!(s(&sts, "kind"), "StatefulSet");
    assert_eq!(s(&sts, "apiVersion"), "apps/v1");
    assert_eq!(s(&secret, "kind"), "Secret");
    for r in s(&kustomization, "resources").as_sequence().unwrap() {
        assert!(dir().join(r.as_str().unwrap()).exists(), "{r:?}");
    }

    // Service and StatefulSet.
    let name = s(&sts, "metadata.name").as_str().unwrap();
    assert_eq!(s(&sts, "spec.serviceName"), s(&svc, "metadata.name"));
    assert_eq!(s(&svc, "spec.clusterIP"), "None", "a headless Service");
    let labels = s(&sts, "spec.template.metadata.labels");
    assert_eq!(s(&sts, "spec.selector.matchLabels"), labels);
    for (k, v) in s(&svc, "spec.selector").as_mapping().unwrap() {
        assert_eq!(&labels[k], v, "the Service selects the pods");
    }

    // The container: config mounted where --config points, the API port,
    // probes on /health, tokens from the Secret.
    let c = s(&sts, "spec.template.spec.containers.0");
    let args: Vec<&str> = c["args"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    let config_arg = args[args.iter().position(|a| *a == "--config").unwrap() + 1];
    let mount = c["volumeMounts"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|m| m["name"] == "config")
        .unwrap();
    assert_eq!(
        Path::new(mount["mountPath"].as_str().unwrap()).join("config.yaml"),
        Path::new(config_arg)
    );
    let vol = s(&sts, "spec.template.spec.volumes")
        .as_sequence()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "config")
        .unwrap();
    assert_eq!(s(vol, "configMap.name"), s(&cm, "metadata.name"));
    let config = cm["data"]["config.yaml"].as_str().unwrap();
    let port = &c["ports"][0];
    let port_name = port["name"].as_str().unwrap();
    for probe in ["readinessProbe", "livenessProbe"] {
        assert_eq!(s(c, &format!("{probe}.httpGet.path")), "/health", "{probe}");
        assert_eq!(s(c, &format!("{probe}.httpGet.port")), port_name, "{probe}");
    }
    assert_eq!(s(&svc, "spec.ports.0.targetPort"), port_name);
    let secret_keys = s(&secret, "stringData").as_mapping().unwrap();
    for var in ["API_TOKEN", "INFLUXDB_TOKEN"] {
        let e = c["env"]
            .as_sequence()
            .unwrap()
            .iter()
            .find(|e| e["name"] == var)
            .unwrap_or_else(|| panic!("{var} not set"));
        let r = s(e, "valueFrom.secretKeyRef");
        assert_eq!(&r["name"], s(&secret, "metadata.name"), "{var}");
        assert!(
            secret_keys.contains_key(&r["key"]),
            "{var}: no key {:?}",
            r["key"]
        );
    }
    let data_mount = c["volumeMounts"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|m| m["name"] == "data")
        .unwrap();
    assert!(s(&sts, "spec.volumeClaimTemplates")
        .as_sequence()
        .unwrap()
        .iter()
        .any(|t| s(t, "metadata.name") == "data"));

    // Every pod loads the config and takes its shard from its name.
    let replicas = s(&sts, "spec.replicas").as_u64().unwrap() as u32;
    for i in 0..replicas {
        let settings = load(config, &format!("{name}-{i}")).unwrap();
        let shard = settings.monitor.shard;
        assert_eq!(shard.count(), replicas, "shard_count = spec.replicas");
        assert_eq!(shard.index(), i);
        assert!(shard.replication() >= 2, "one replica may be down");
        let api = settings.api_listen.expect("the API is on");
        assert_eq!(
            u64::from(api.port()),
            port["containerPort"].as_u64().unwrap()
        );
        assert!(!settings.api_token.is_empty());
        assert_eq!(
            settings.log_dir,
            Path::new(data_mount["mountPath"].as_str().unwrap()),
            "the write-ahead log and spool are on the volume"
        );
    }
    // A pod past shard_count (replicas raised, config not) is refused.
    let e = load(config, &format!("{name}-{replicas}")).unwrap_err();
    assert!(e.contains("shard_index"), "{e}");
}
