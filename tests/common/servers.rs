//! Real servers for integration tests, started on free loopback ports with
//! temporary directories: InfluxDB 1.x (`influxd`), VictoriaMetrics,
//! Prometheus and node exporter (Debian packages; `scripts/test.sh`
//! installs them). A test that needs a missing server fails under
//! `CI=true` and skips loudly elsewhere.

use std::{
    net::TcpListener,
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Whether process `pid` holds the TCP socket listening on `port` (any
/// address): the listening socket's inode, from `/proc/net/tcp{,6}`, is one
/// of the process's open file descriptors. Linux only, like the tests.
pub fn listens(pid: u32, port: u16) -> bool {
    let mut inodes = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            // sl, local_address (hex addr:port), rem_address, st (0A = LISTEN), .., inode at 9.
            let local_port = f
                .get(1)
                .and_then(|a| a.rsplit(':').next())
                .and_then(|p| u16::from_str_radix(p, 16).ok());
            if local_port == Some(port) && f.get(3) == Some(&"0A") {
                if let Some(inode) = f.get(9) {
                    inodes.push(format!("socket:[{inode}]"));
                }
            }
        }
    }
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    fds.filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .any(|link| inodes.iter().any(|i| link.as_os_str() == i.as_str()))
}

/// Whether `binary` is on PATH. Missing: panics under `CI=true`, otherwise
/// prints a loud skip notice and returns false.
pub fn require(binary: &str, test: &str) -> bool {
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(binary).is_file()))
        .unwrap_or(false);
    if found {
        return true;
    }
    let msg = format!(
        "{test}: `{binary}` not found (install it with scripts/test.sh or apt-get); \
         this test needs the real server"
    );
    if std::env::var("CI").map(|v| v == "true").unwrap_or(false) {
        panic!("{msg}");
    }
    eprintln!("\n!!!!!!!! SKIPPED: {msg} !!!!!!!!\n");
    false
}

/// GET returning (status, body); connection errors as status 0.
pub fn get(url: &str) -> (u16, String) {
    match http().get(url).timeout(Duration::from_secs(5)).send() {
        Ok(r) => (r.status().as_u16(), r.text().unwrap_or_default()),
        Err(_) => (0, String::new()),
    }
}

/// A blocking client that ignores proxy variables (everything is loopback).
fn http() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .no_proxy()
        .build()
        .expect("an HTTP client")
}

/// POST with a body, returning (status, body).
pub fn post(url: &str, body: &str) -> (u16, String) {
    match http()
        .post(url)
        .timeout(Duration::from_secs(10))
        .body(body.to_string())
        .send()
    {
        Ok(r) => (r.status().as_u16(), r.text().unwrap_or_default()),
        Err(e) => (0, e.to_string()),
    }
}

/// Builds the command line of a server from its directory and port.
type CommandFn = Box<dyn Fn(&std::path::Path, u16) -> Command + Send>;

/// A server process that can be stopped and started again on the same port
/// and data directory.
pub struct Server {
    name: &'static str,
    /// Its data directory.
    pub dir: tempfile::TempDir,
    /// Its HTTP port.
    pub port: u16,
    child: Option<Child>,
    command: CommandFn,
    ready_path: &'static str,
}

impl Server {
    fn new(
        name: &'static str,
        ready_path: &'static str,
        command: impl Fn(&std::path::Path, u16) -> Command + Send + 'static,
    ) -> Server {
        let mut s = Server::unstarted(name, free_port(), ready_path, command);
        // Another test may take the port between `free_port` and the bind:
        // up to four ports are tried, the last error panics.
        const TRIES: usize = 4;
        for attempt in 1..=TRIES {
            match s.try_start() {
                Ok(()) => return s,
                Err(e) if attempt == TRIES => panic!("{e}"),
                Err(e) => eprintln!("{e}\nretrying {name} on another port"),
            }
            s.port = free_port();
        }
        unreachable!("the last try returns or panics")
    }

    fn with_port(
        name: &'static str,
        port: u16,
        ready_path: &'static str,
        command: impl Fn(&std::path::Path, u16) -> Command + Send + 'static,
    ) -> Server {
        let mut s = Server::unstarted(name, port, ready_path, command);
        s.start();
        s
    }

    fn unstarted(
        name: &'static str,
        port: u16,
        ready_path: &'static str,
        command: impl Fn(&std::path::Path, u16) -> Command + Send + 'static,
    ) -> Server {
        Server {
            name,
            dir: tempfile::tempdir().unwrap(),
            port,
            child: None,
            command: Box::new(command),
            ready_path,
        }
    }

    /// Base URL.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Starts the process and waits until it is ready: its endpoint answers
    /// and the socket listening on the port is the child's own, not another
    /// process's.
    pub fn start(&mut self) {
        if let Err(e) = self.try_start() {
            panic!("{e}");
        }
    }

    fn try_start(&mut self) -> Result<(), String> {
        assert!(self.child.is_none(), "{} already running", self.name);
        let log =
            std::fs::File::create(self.dir.path().join(format!("{}.log", self.name))).unwrap();
        let child = (self.command)(self.dir.path(), self.port)
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", self.name));
        let pid = child.id();
        self.child = Some(child);
        let url = format!("{}{}", self.url(), self.ready_path);
        let start = Instant::now();
        let timeout = Duration::from_secs(30);
        while start.elapsed() < timeout {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                self.child = None;
                return Err(format!(
                    "{} (pid {pid}) exited ({status}) before it was ready on port {}; its log:\n{}",
                    self.name,
                    self.port,
                    self.log()
                ));
            }
            if (200..300).contains(&get(&url).0) && listens(pid, self.port) {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        self.stop();
        Err(format!(
            "{} (pid {pid}) did not become ready at {url} within {timeout:?}, or another process holds the port; its log:\n{}",
            self.name,
            self.log()
        ))
    }

    /// The running process's id.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Kills the process (the data directory stays).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// The server's own log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join(format!("{}.log", self.name)))
            .unwrap_or_default()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// InfluxDB 1.x with database `db` created.
pub fn influxd(db: &str) -> Server {
    let s = Server::new("influxd", "/ping", |dir: &std::path::Path, port| {
        let rpc = free_port();
        let conf: PathBuf = dir.join("influxdb.conf");
        std::fs::write(
            &conf,
            format!(
                "reporting-disabled = true\nbind-address = \"127.0.0.1:{rpc}\"\n\
                 [meta]\n  dir = \"{d}/meta\"\n\
                 [data]\n  dir = \"{d}/data\"\n  wal-dir = \"{d}/wal\"\n  query-log-enabled = false\n\
                 [monitor]\n  store-enabled = false\n\
                 [http]\n  bind-address = \"127.0.0.1:{port}\"\n  log-enabled = false\n",
                d = dir.display()
            ),
        )
        .unwrap();
        let mut c = Command::new("influxd");
        c.arg("run").arg("-config").arg(conf);
        c
    });
    let (status, body) = post(&format!("{}/query?q=CREATE+DATABASE+{db}", s.url()), "");
    assert_eq!(status, 200, "CREATE DATABASE: {body}");
    s
}

/// Runs an InfluxQL query and returns the JSON reply.
pub fn influxql(server: &Server, db: &str, q: &str) -> serde_json::Value {
    let url = format!(
        "{}/query?db={db}&q={}",
        server.url(),
        q.replace(' ', "+")
            .replace('"', "%22")
            .replace('\'', "%27")
            .replace('=', "%3D")
    );
    let (status, body) = get(&url);
    assert_eq!(status, 200, "{q}: {body}");
    serde_json::from_str(&body).unwrap()
}

/// `SELECT count(field) FROM measurement` as a number (0 when empty).
pub fn influx_count(server: &Server, db: &str, field: &str, measurement: &str) -> u64 {
    let v = influxql(
        server,
        db,
        &format!("SELECT count({field}) FROM {measurement}"),
    );
    v["results"][0]["series"][0]["values"][0][1]
        .as_u64()
        .unwrap_or(0)
}

/// VictoriaMetrics (accepts the InfluxDB v2 write API).
pub fn victoria_metrics() -> Server {
    victoria_metrics_with(&[])
}

/// VictoriaMetrics with extra flags (e.g. `-search.latencyOffset=0s`: by
/// default an instant query at "now" hides the last 30 seconds).
pub fn victoria_metrics_with(flags: &'static [&'static str]) -> Server {
    Server::new(
        "victoria-metrics",
        "/health",
        move |dir: &std::path::Path, port| {
            let mut c = Command::new("victoria-metrics");
            c.arg(format!("-httpListenAddr=127.0.0.1:{port}"))
                .arg(format!("-storageDataPath={}", dir.join("data").display()))
                .arg("-loggerLevel=ERROR")
                .args(flags);
            c
        },
    )
}

/// node exporter with only the CPU collector.
pub fn node_exporter() -> Server {
    node_exporter_on(free_port())
}

/// node exporter on a given port.
pub fn node_exporter_on(port: u16) -> Server {
    Server::with_port(
        "node-exporter",
        port,
        "/metrics",
        |_dir: &std::path::Path, port| {
            let mut c = Command::new("prometheus-node-exporter");
            c.arg(format!("--web.listen-address=127.0.0.1:{port}"))
                .arg("--collector.disable-defaults")
                .arg("--collector.cpu");
            c
        },
    )
}

/// Prometheus with a config written by `config(dir)` (dir = its data dir).
pub fn prometheus_with(config: impl Fn(&std::path::Path) -> String + Send + 'static) -> Server {
    Server::new(
        "prometheus",
        "/-/ready",
        move |dir: &std::path::Path, port| {
            let conf = dir.join("prometheus.yml");
            std::fs::write(&conf, config(dir)).unwrap();
            let mut c = Command::new("prometheus");
            c.arg(format!("--config.file={}", conf.display()))
                .arg(format!(
                    "--storage.tsdb.path={}",
                    dir.join("data").display()
                ))
                .arg(format!("--web.listen-address=127.0.0.1:{port}"));
            c
        },
    )
}

/// Prometheus scraping `targets` every second.
pub fn prometheus(targets: &[String]) -> Server {
    let targets: Vec<String> = targets.iter().map(|t| format!("'{t}'")).collect();
    let targets = targets.join(", ");
    prometheus_with(move |_| {
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
             scrape_configs:\n  - job_name: node\n    static_configs:\n      - targets: [{targets}]\n"
        )
    })
}

/// Alertmanager 0.25 (Debian `prometheus-alertmanager`), clustering off,
/// with the routing file `config` returns.
#[allow(dead_code)]
pub fn alertmanager(config: String) -> Server {
    Server::new(
        "prometheus-alertmanager",
        "/-/ready",
        move |dir: &std::path::Path, port| {
            let conf = dir.join("alertmanager.yml");
            std::fs::write(&conf, &config).unwrap();
            let mut c = Command::new("prometheus-alertmanager");
            c.arg(format!("--config.file={}", conf.display()))
                .arg(format!("--storage.path={}", dir.join("data").display()))
                .arg(format!("--web.listen-address=127.0.0.1:{port}"))
                .arg("--cluster.listen-address=");
            c
        },
    )
}

/// A second server started on a port another one holds exits on its bind;
/// it is never taken for ready because the first one answers there.
#[test]
fn a_port_another_process_answers_on_is_not_taken_for_ready() {
    if !require("victoria-metrics", "a_port_another_process_answers_on") {
        return;
    }
    let first = victoria_metrics();
    let pid = first.pid().unwrap();
    assert!(listens(pid, first.port));
    assert!(!listens(std::process::id(), first.port));
    let mut second = Server::unstarted(
        "victoria-metrics",
        first.port,
        "/health",
        |dir: &std::path::Path, port| {
            let mut c = Command::new("victoria-metrics");
            c.arg(format!("-httpListenAddr=127.0.0.1:{port}"))
                .arg(format!("-storageDataPath={}", dir.join("data").display()));
            c
        },
    );
    let e = second.try_start().unwrap_err();
    assert!(e.contains("exited"), "{e}");
    assert_eq!(get(&format!("{}/health", first.url())).0, 200);
}
