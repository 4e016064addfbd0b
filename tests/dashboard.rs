//! The live dashboard in a real browser: a monitor on the simulation source
//! serves `/`, headless Chromium (driven over the DevTools protocol) loads
//! it, the test waits for pushed updates
//! and checks the chart and the anomaly list are in the DOM, then saves a
//! screenshot to `target/test-artifacts/dashboard.png`.

use std::{
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use crate::common::servers;

/// Headless Chromium driven over the DevTools protocol (a plain
/// `--dump-dom` cannot wait: the page's event stream never finishes loading).
struct Browser {
    child: std::process::Child,
    ws: tungstenite::WebSocket<std::net::TcpStream>,
    next_id: u64,
    _profile: tempfile::TempDir,
}

impl Browser {
    fn open(url: &str) -> Browser {
        let port = servers::free_port();
        let profile = tempfile::tempdir().unwrap();
        let child = Command::new("chromium")
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--hide-scrollbars",
            ])
            .args(["--window-size=1400,900", "--no-first-run"])
            .arg(format!("--remote-debugging-port={port}"))
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let start = Instant::now();
        let target = loop {
            let (s, body) = servers::get(&format!("http://127.0.0.1:{port}/json/list"));
            if s == 200 {
                let v: serde_json::Value = serde_json::from_str(&body).unwrap();
                if let Some(t) = v
                    .as_array()
                    .and_then(|a| a.iter().find(|t| t["type"] == "page"))
                {
                    break t["webSocketDebuggerUrl"].as_str().unwrap().to_string();
                }
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "chromium did not start"
            );
            std::thread::sleep(Duration::from_millis(200));
        };
        let addr = target
            .trim_start_matches("ws://")
            .split('/')
            .next()
            .unwrap()
            .to_string();
        let stream = std::net::TcpStream::connect(addr).unwrap();
        let (ws, _) = tungstenite::client(target.as_str(), stream).unwrap();
        let mut b = Browser {
            child,
            ws,
            next_id: 0,
            _profile: profile,
        };
        b.call("Page.enable", serde_json::json!({}));
        b.call("Page.navigate", serde_json::json!({ "url": url }));
        b
    }

    /// Sends a DevTools command and returns its result.
    fn call(&mut self, method: &str, params: serde_json::Value) -> serde_json::Value {
        self.next_id += 1;
        let id = self.next_id;
        let msg = serde_json::json!({ "id": id, "method": method, "params": params });
        self.ws
            .send(tungstenite::Message::Text(msg.to_string()))
            .unwrap();
        loop {
            if let tungstenite::Message::Text(t) = self.ws.read().unwrap() {
                let v: serde_json::Value = serde_json::from_str(&t).unwrap();
                if v["id"] == id {
                    assert!(v.get("error").is_none(), "{method}: {v}");
                    return v["result"].clone();
                }
            }
        }
    }

    /// Evaluates a JavaScript expression in the page.
    fn eval(&mut self, expr: &str) -> serde_json::Value {
        self.call(
            "Runtime.evaluate",
            serde_json::json!({ "expression": expr, "returnByValue": true }),
        )["result"]["value"]
            .clone()
    }

    fn screenshot(&mut self, path: &Path) {
        use base64::Engine;
        let r = self.call(
            "Page.captureScreenshot",
            serde_json::json!({ "format": "png" }),
        );
        let png = base64::engine::general_purpose::STANDARD
            .decode(r["data"].as_str().unwrap())
            .unwrap();
        std::fs::write(path, png).unwrap();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn dashboard_shows_live_charts_and_anomalies_in_a_real_browser() {
    if !servers::require("chromium", "dashboard_shows_live_charts_and_anomalies") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let port = servers::free_port();
    let cfg = dir.path().join("config.yaml");
    std::fs::write(
        &cfg,
        format!(
            "prometheus_url: http://127.0.0.1:{}\nprometheus_retries: 0\nmonitoring_interval: 1\n\
             simulation_series: 4\nthreshold_multiplier: 1.0\nmodel: mstl\ncapacity_threshold: 1\napi_listen: 127.0.0.1:{port}\n\
             log_dir: {logs}\nmodel_path: {models}/m.json\ndataset: {data}\n",
            servers::free_port(),
            logs = dir.path().join("logs").display(),
            models = dir.path().join("models").display(),
            data = Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("datasets/sample_cpu.csv")
                .display(),
        ),
    )
    .unwrap();
    let mut child = crate::common::bin()
        .args(["--mode", "monitor", "--config"])
        .arg(&cfg)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let url = format!("http://127.0.0.1:{port}");
    // Wait for models and at least one anomaly, so the page has both to show.
    let start = Instant::now();
    loop {
        let (_, body) = servers::get(&format!("{url}/api/anomalies/summary"));
        let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
        if v["anomalies"].as_u64().unwrap_or(0) >= 1 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(90),
            "no anomaly: {body}"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    let mut browser = Browser::open(&format!("{url}/"));
    // Live data: wait until the page has received pushed updates and
    // lists a capacity warning (confirmed over a few polls, so it can come
    // after the first anomaly on a busy machine).
    let start = Instant::now();
    while browser
        .eval("Number(document.body.dataset.updates)")
        .as_u64()
        .unwrap_or(0)
        < 3
        || !browser
            .eval("document.querySelector('.capacity-item') !== null")
            .as_bool()
            .unwrap_or(false)
    {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "no pushed updates with a capacity warning reached the page"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    let dom = browser
        .eval("document.documentElement.outerHTML")
        .as_str()
        .unwrap()
        .to_string();
    let shot: PathBuf = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/test-artifacts");
    std::fs::create_dir_all(&shot).unwrap();
    let png = shot.join("dashboard.png");
    browser.screenshot(&png);
    drop(browser);
    let _ = child.kill();
    let _ = child.wait();

    assert!(dom.contains("class=\"card series\""), "{dom}");
    assert!(
        dom.contains("<polyline class=\"actual\""),
        "chart drawn: {dom}"
    );
    assert!(dom.contains("<polygon class=\"band\""), "band drawn: {dom}");
    assert!(
        dom.contains("class=\"anomaly-item\""),
        "anomaly list: {dom}"
    );
    assert!(dom.contains("SIMULATED DATA"), "source shown: {dom}");
    // A 1 % capacity threshold: every host is over it, so each is listed.
    assert!(
        dom.contains("class=\"capacity-item\"") && dom.contains("is at or over 1 %"),
        "capacity warnings listed: {dom}"
    );
    let updates: u64 = dom
        .split("data-updates=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    assert!(
        updates >= 2,
        "pushed updates received by the page: {updates}"
    );
    let meta = std::fs::metadata(&png).unwrap();
    assert!(
        meta.len() > 10_000,
        "screenshot written: {} bytes",
        meta.len()
    );
}
