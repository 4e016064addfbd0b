#!/usr/bin/env python3
"""Fault probes against the release binary and real servers on loopback.

Each probe replays one way the world breaks (issue 16) and prints one line:
PASS or FAIL, the probe, and what was measured. Exits 1 if any failed.
Run through bench/faults.sh (builds the binary, checks the servers).
"""

import datetime
import json
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target/release/cpu-anomaly")
DATASET = os.path.join(ROOT, "datasets/sample_cpu.csv")
RESULTS = []


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def http(url, data=None, timeout=10):
    req = urllib.request.Request(url, data=data)
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(req, timeout=timeout) as r:
            return r.status, r.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode("utf-8", "replace")
    except Exception as e:  # noqa: BLE001 - any failure is "no answer"
        return 0, str(e)


def wait_http(url, what, timeout=30):
    end = time.time() + timeout
    while time.time() < end:
        if 200 <= http(url, timeout=2)[0] < 300:
            return
        time.sleep(0.1)
    raise RuntimeError(f"{what} did not start")


class Influxd:
    def __init__(self, db="cpu"):
        self.dir = tempfile.mkdtemp(prefix="faults-influxd-")
        self.port = free_port()
        rpc = free_port()
        conf = os.path.join(self.dir, "influxdb.conf")
        d = self.dir
        with open(conf, "w") as f:
            f.write(
                f'reporting-disabled = true\nbind-address = "127.0.0.1:{rpc}"\n'
                f'[meta]\n  dir = "{d}/meta"\n[data]\n  dir = "{d}/data"\n  wal-dir = "{d}/wal"\n'
                f"  query-log-enabled = false\n[monitor]\n  store-enabled = false\n"
                f'[http]\n  bind-address = "127.0.0.1:{self.port}"\n  log-enabled = false\n'
            )
        self.proc = subprocess.Popen(
            ["influxd", "run", "-config", conf], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        wait_http(self.url + "/ping", "influxd")
        http(self.url + f"/query?q=CREATE+DATABASE+{db}", data=b"")
        self.db = db

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def query(self, q):
        status, body = http(self.url + "/query?" + urllib.parse.urlencode({"db": self.db, "q": q}))
        return json.loads(body) if status == 200 else {}

    def count(self, field, measurement, where=""):
        v = self.query(f"SELECT count({field}) FROM {measurement} {where}")
        try:
            return v["results"][0]["series"][0]["values"][0][1]
        except (KeyError, IndexError):
            return 0

    def stop(self):
        self.proc.terminate()
        self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


def black_hole():
    """A server that accepts connections and never answers (a hung InfluxDB)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(512)
    held = []

    def run():
        while True:
            c, _ = s.accept()
            held.append(c)

    threading.Thread(target=run, daemon=True).start()
    return f"http://127.0.0.1:{s.getsockname()[1]}"


def config(d, extra, prometheus="http://127.0.0.1:9", api='""', model="model: mstl\n"):
    path = os.path.join(d, "config.yaml")
    with open(path, "w") as f:
        f.write(
            f"prometheus_url: {prometheus}\nprometheus_timeout: 2\nprometheus_retries: 0\n"
            f"monitoring_interval: 1\nsimulation_after_failures: 1\nmin_history: 3\ntraining_step: 1\n"
            f"api_listen: {api}\nlog_dir: {d}/logs\nmodel_path: {d}/models/model.json\n"
            f"dataset: {DATASET}\n{model}{extra}"
        )
    return path


def influx_extra(url, more=""):
    return f"influxdb:\n  enabled: true\n  api: v1\n  url: {url}\n  bucket: cpu\n{more}"


def start(cfg, d, env=None):
    e = dict(os.environ, NO_COLOR="1")
    e.update(env or {})
    err = open(os.path.join(d, "stderr.log"), "ab")
    return subprocess.Popen(
        [BIN, "--mode", "monitor", "--config", cfg], stdout=subprocess.DEVNULL, stderr=err, env=e
    )


def run(cfg, ticks, env=None, timeout=120):
    e = dict(os.environ, NO_COLOR="1")
    e.update(env or {})
    return subprocess.run(
        [BIN, "--mode", "monitor", "--config", cfg, "--max-ticks", str(ticks)],
        capture_output=True,
        text=True,
        env=e,
        timeout=timeout,
    )


def judged(d):
    out = set()
    try:
        with open(os.path.join(d, "logs/metrics.jsonl")) as f:
            for line in f:
                v = json.loads(line)
                out.add((v["host"], v["timestamp"]))
    except FileNotFoundError:
        pass
    return out


def wait_judged(d, n, timeout=60):
    end = time.time() + timeout
    while time.time() < end:
        if len(judged(d)) >= n:
            return True
        time.sleep(0.1)
    return False


def term_and_time(p, sig=signal.SIGTERM):
    t0 = time.time()
    p.send_signal(sig)
    try:
        rc = p.wait(timeout=60)
    except subprocess.TimeoutExpired:
        p.kill()
        rc = p.wait()
    return rc, time.time() - t0


def report(name, ok, what):
    RESULTS.append(ok)
    print(f"{'PASS' if ok else 'FAIL'}  {name:<28} {what}", flush=True)


def rss_of(cmd, timeout):
    """Runs cmd; returns (rc, seconds, max RSS MB, stderr)."""
    t0 = time.time()
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        _, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        _, err = p.communicate()
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return p.returncode, time.time() - t0, ru.ru_maxrss / 1024, err


# --- probes ---------------------------------------------------------------


def probe_far_future():
    d = tempfile.mkdtemp(prefix="faults-")
    t = datetime.datetime(2024, 1, 1)
    far = os.path.join(d, "far.csv")
    with open(far, "w") as f:
        f.write("timestamp,cpu_usage\n")
        for i in range(400):
            f.write(f"{(t + datetime.timedelta(minutes=10 * i)).isoformat()},{0.3 + 0.01 * (i % 5)}\n")
        f.write("2100-01-01T00:00:00,0.4\n")
    mix = os.path.join(d, "mix.csv")
    with open(mix, "w") as f:
        f.write("timestamp,cpu_usage\n")
        for i in range(400):
            f.write(f"{1700000000 + 600 * i},0.3\n")
        for i in range(50):
            f.write(f"{1700300000000 + 600000 * i},0.35\n")
    worst = 0.0
    msgs = []
    ok = True
    for mode in ["train", "evaluate"]:
        for path in [far, mix]:
            rc, secs, _, err = rss_of(
                [BIN, "--mode", mode, "--dataset", path, "--model-path", f"{d}/m.json",
                 "--output-dir", f"{d}/out", "--no-plots"],
                timeout=60,
            )
            worst = max(worst, secs)
            if secs > 10 or "panicked" in err:
                ok = False
            if rc != 0:
                msgs.append(err.strip().splitlines()[-1][:90] if err.strip() else f"rc {rc}")
    maxrss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    ok = ok and maxrss < 500
    report("far-future timestamps", ok,
           f"train+evaluate on 2 files: slowest {worst:.2f} s, peak RSS <= {maxrss:.0f} MB; "
           f"e.g. {msgs[0] if msgs else 'all ran'}")
    shutil.rmtree(d, ignore_errors=True)


def probe_durations():
    d = tempfile.mkdtemp(prefix="faults-")
    cases = [
        ("retrain_interval: 1e20 (file)", "retrain_interval: 1e20\n", {}),
        ("MONITORING_INTERVAL=1e19", "", {"MONITORING_INTERVAL": "1e19"}),
        ("INFLUXDB_FLUSH_INTERVAL=1e19", "", {"INFLUXDB_FLUSH_INTERVAL": "1e19"}),
        ("series_grace_period: 400d (file)", "series_grace_period: 400d\n", {}),
    ]
    bad = []
    for name, extra, env in cases:
        cfg = config(d, extra)
        r = run(cfg, 1, env=env, timeout=30)
        if r.returncode != 2 or "panicked" in r.stderr or "366 days" not in r.stderr:
            bad.append(f"{name}: rc {r.returncode} {r.stderr.strip()[-80:]}")
    report("huge durations", not bad,
           f"{len(cases) - len(bad)}/{len(cases)} refused with exit 2 naming the key"
           + (f"; {bad}" if bad else ""))
    shutil.rmtree(d, ignore_errors=True)


def probe_sigterm_hung(series, more, label):
    d = tempfile.mkdtemp(prefix="faults-")
    cfg = config(d, f"simulation_series: {series}\n" + influx_extra(black_hole(), more))
    p = start(cfg, d)
    progressed = wait_judged(d, series * 5)
    rc, secs = term_and_time(p)
    before = judged(d)
    influx = Influxd()
    time.sleep(1.1)
    cfg = config(d, f"simulation_series: {series}\n" + influx_extra(influx.url, more))
    r = run(cfg, 1)
    after = judged(d)
    got = influx.count("cpu_usage", "cpu_metrics", "WHERE metric_type = 'actual'")
    influx.stop()
    ok = progressed and rc == 0 and secs <= 5 and r.returncode == 0 and got == len(after)
    report(f"SIGTERM, InfluxDB hung ({label})", ok,
           f"exit {rc} after {secs:.1f} s; {len(before)} samples judged before; next run wrote "
           f"{got} of {len(after)} judged")
    shutil.rmtree(d, ignore_errors=True)


def probe_second_signal():
    d = tempfile.mkdtemp(prefix="faults-")
    cfg = config(d, "simulation_series: 5\n" + influx_extra(black_hole(), "  batch_size: 50\n  flush_interval: 1\n"))
    p = start(cfg, d)
    progressed = wait_judged(d, 25)
    p.send_signal(signal.SIGTERM)
    time.sleep(0.05)
    rc, secs = term_and_time(p)
    influx = Influxd()
    time.sleep(1.1)
    cfg = config(d, "simulation_series: 5\n" + influx_extra(influx.url, "  batch_size: 50\n  flush_interval: 1\n"))
    r = run(cfg, 1)
    after = judged(d)
    got = influx.count("cpu_usage", "cpu_metrics", "WHERE metric_type = 'actual'")
    influx.stop()
    ok = progressed and rc == 130 and r.returncode == 0 and got == len(after)
    report("second SIGTERM", ok, f"exit {rc} after {secs:.2f} s; next run wrote {got} of {len(after)} judged")
    shutil.rmtree(d, ignore_errors=True)


def probe_kill9():
    influx = Influxd()
    d = tempfile.mkdtemp(prefix="faults-")
    cfg = config(d, "simulation_series: 5\n" + influx_extra(influx.url, "  batch_size: 5000\n  flush_interval: 10\n"))
    p = start(cfg, d)
    progressed = wait_judged(d, 40)
    p.kill()
    p.wait()
    before = len(judged(d))
    written_before = influx.count("cpu_usage", "cpu_metrics", "WHERE metric_type = 'actual'")
    # Restarted at once: a restart within the same second must not overwrite.
    r = run(cfg, 1)
    after = judged(d)
    got = influx.count("cpu_usage", "cpu_metrics", "WHERE metric_type = 'actual'")
    influx.stop()
    ok = progressed and r.returncode == 0 and got == len(after)
    report("kill -9 and restart", ok,
           f"{before} judged, {written_before} in InfluxDB at the kill; after the restart "
           f"{got} of {len(after)} judged are there")
    shutil.rmtree(d, ignore_errors=True)


def probe_spool():
    influx = Influxd()
    d = tempfile.mkdtemp(prefix="faults-")
    spool = os.path.join(d, "logs/spool")
    os.makedirs(spool)
    names = [f"{i:020}.lp" for i in range(20)]
    good = 0
    for i, n in enumerate(names):
        path = os.path.join(spool, n)
        if i == 3:
            open(path, "wb").write(b"cpu_metrics,host=\xff\xfe,metric_type=actual cpu_usage=1 1700000003\n")
        elif i == 7:
            os.mkdir(path)  # unreadable as a file
        else:
            open(path, "w").write(
                "".join(f"cpu_metrics,host=h{i},metric_type=actual cpu_usage={k} {1700000000 + k}\n" for k in range(10))
            )
            good += 10
    cfg = config(d, "simulation_series: 1\n" + influx_extra(influx.url, "  batch_size: 50\n  flush_interval: 1\n"))
    r = run(cfg, 2)
    got = influx.count("cpu_usage", "cpu_metrics", "WHERE host =~ /^h/")
    left = [n for n in os.listdir(spool) if n.endswith(".lp")]
    quarantined = os.listdir(os.path.join(spool, "quarantine")) if os.path.isdir(os.path.join(spool, "quarantine")) else []
    dead = os.path.exists(os.path.join(d, "logs/dead_letter.lp"))
    influx.stop()
    non_utf8 = "stored" if not dead else "dead-lettered with InfluxDB's reason"
    ok = r.returncode == 0 and got == good and not left and len(quarantined) == 1
    report("spool: non-UTF-8 + unreadable", ok,
           f"{got} of {good} good spooled points replayed, {len(quarantined)} file quarantined, "
           f"non-UTF-8 batch {non_utf8}, {len(left)} left")
    shutil.rmtree(d, ignore_errors=True)


def probe_disk_full():
    if os.geteuid() != 0 or shutil.which("mount") is None:
        report("disk full (2 MiB tmpfs)", True, "SKIPPED: needs root to mount a tmpfs")
        return
    d = tempfile.mkdtemp(prefix="faults-")
    logs = os.path.join(d, "logs")
    os.makedirs(logs)
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", logs]).returncode != 0:
        report("disk full (2 MiB tmpfs)", True, "SKIPPED: cannot mount a tmpfs here")
        return
    try:
        cfg = config(d, "simulation_series: 300\ninfluxdb:\n  enabled: false\n  batch_size: 500\n  flush_interval: 1\n")
        p = start(cfg, d)
        rss = []
        full_at = None
        t_end = time.time() + 40
        while time.time() < t_end:
            time.sleep(1)
            st = os.statvfs(logs)
            if full_at is None and st.f_bavail * st.f_frsize < 64 << 10:
                full_at = time.time()
            try:
                with open(f"/proc/{p.pid}/status") as f:
                    rss.append(next(int(l.split()[1]) for l in f if l.startswith("VmRSS")) / 1024)
            except (FileNotFoundError, StopIteration):
                break
        rc, secs = term_and_time(p)
        lines = open(os.path.join(logs, "points.lp"), "rb").read().split(b"\n")
        partial = lines[-1] != b""
        body = lines[:-1]
        malformed = sum(1 for l in body if len(l.split(b" ")) != 3)
        dups = len(body) - len(set(body))
        err = open(os.path.join(d, "stderr.log"), "rb").read().decode("utf-8", "replace")
        errors = sum(1 for l in err.splitlines() if "ERROR" in l)
        grow = rss[-1] - rss[len(rss) // 2] if len(rss) > 4 else 0
        ok = (full_at is not None and not partial and malformed == 0 and dups == 0
              and errors <= 20 and rc == 0 and secs <= 5 and grow < 50)
        report("disk full (2 MiB tmpfs)", ok,
               f"full after {full_at - (t_end - 40) if full_at else -1:.0f} s; {len(body)} lines, "
               f"{malformed} malformed, {'a' if partial else 'no'} partial last line, {dups} duplicates; "
               f"{errors} error lines in 40 s; RSS {rss[len(rss)//2] if rss else 0:.0f}->{rss[-1] if rss else 0:.0f} MB; "
               f"exit {rc} in {secs:.1f} s")
    finally:
        subprocess.run(["umount", logs])
        shutil.rmtree(d, ignore_errors=True)


EVIL = ["a,b", "a=b", "a b", "a\\b", "f\\", "\\", "a\\,b", "q\"x\"", "x'y", "#h", "é:9100",
        "tab\tx", "{i}", "a/../b", "%41", "k=v,k2=v2 v=1 1", "x" * 5000]


def probe_evil_labels():
    if shutil.which("victoria-metrics") is None:
        report("evil labels via Prometheus API", False, "victoria-metrics not installed")
        return
    vmdir = tempfile.mkdtemp(prefix="faults-vm-")
    port = free_port()
    vm = subprocess.Popen(["victoria-metrics", f"-httpListenAddr=127.0.0.1:{port}",
                           f"-storageDataPath={vmdir}/data", "-loggerLevel=ERROR",
                           "-search.latencyOffset=0s"],
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    vmurl = f"http://127.0.0.1:{port}"
    influx = Influxd()
    d = tempfile.mkdtemp(prefix="faults-")
    try:
        wait_http(vmurl + "/health", "victoria-metrics")
        now = int(time.time())
        lines = []
        for i, v in enumerate(EVIL):
            ts = [(now - 3600 + 60 * k) * 1000 for k in range(61)]
            lines.append(json.dumps({"metric": {"__name__": "cpu_busy", "instance": v},
                                     "values": [40.0 + (k % 5) + i for k in range(61)],
                                     "timestamps": ts}))
        http(vmurl + "/api/v1/import", data="\n".join(lines).encode())
        http(vmurl + "/internal/resetRollupResultCache")
        time.sleep(2)
        cfg = config(d, "prometheus_query: cpu_busy\n" +
                     influx_extra(influx.url, "  batch_size: 50\n  flush_interval: 1\n"),
                     prometheus=vmurl, model="")
        r = run(cfg, 3, timeout=120)
        tags = influx.query("SHOW TAG VALUES FROM cpu_metrics WITH KEY = host")
        try:
            hosts = [v[1] for v in tags["results"][0]["series"][0]["values"]]
        except (KeyError, IndexError):
            hosts = []
        dead = os.path.exists(os.path.join(d, "logs/dead_letter.lp"))
        ok = r.returncode == 0 and not dead and len(hosts) == len(EVIL)
        report("evil labels via Prometheus API", ok,
               f"{len(hosts)} of {len(EVIL)} hosts in InfluxDB, dead letters: {'yes' if dead else 'none'}"
               + ("" if r.returncode == 0 else f"; rc {r.returncode} {r.stderr[-200:]}"))
    finally:
        vm.terminate()
        vm.wait()
        influx.stop()
        shutil.rmtree(d, ignore_errors=True)
        shutil.rmtree(vmdir, ignore_errors=True)


def probe_slow_api():
    d = tempfile.mkdtemp(prefix="faults-")
    port = free_port()
    cfg = config(d, "simulation_series: 3\n", api=f"127.0.0.1:{port}")
    # A low open-files limit, where clients could starve the monitor's own files.
    p = subprocess.Popen(["sh", "-c", f'ulimit -n 256 && exec "$0" --mode monitor --config "$1"', BIN, cfg],
                         stdout=subprocess.DEVNULL, stderr=open(os.path.join(d, "stderr.log"), "ab"),
                         env=dict(os.environ, NO_COLOR="1"))
    base = f"http://127.0.0.1:{port}"
    try:
        end = time.time() + 30
        while http(base + "/health", timeout=2)[0] == 0 and time.time() < end:
            time.sleep(0.1)
        socks = []
        for _ in range(500):
            try:
                socks.append(socket.create_connection(("127.0.0.1", port), timeout=2))
            except OSError:
                break
        report_path = os.path.join(d, "logs/system_report.json")
        before = os.path.getmtime(report_path) if os.path.exists(report_path) else 0
        t0 = time.time()
        back = None
        while time.time() - t0 < 40:
            if http(base + "/health", timeout=2)[0] != 0:
                back = time.time() - t0
                break
            time.sleep(0.5)
        time.sleep(1.5)
        after = os.path.getmtime(report_path) if os.path.exists(report_path) else 0
        alive = p.poll() is None
        for s in socks:
            s.close()
        rc, secs = term_and_time(p)
        ok = back is not None and back <= 15 and after > before and alive and rc == 0
        report("500 silent API clients, 256 fds", ok,
               f"{len(socks)} connections opened; /health answered again after "
               f"{back if back is not None else -1:.1f} s; polls went on: {after > before}; exit {rc}")
    finally:
        if p.poll() is None:
            p.kill()
        shutil.rmtree(d, ignore_errors=True)


def main():
    probes = {
        "far_future": probe_far_future,
        "durations": probe_durations,
        "sigterm": lambda: probe_sigterm_hung(5, "  batch_size: 50\n  flush_interval: 1\n", "5 series, batch 50, flush 1 s"),
        "sigterm_defaults": lambda: probe_sigterm_hung(1, "", "InfluxDB settings as shipped, 1 series"),
        "second_signal": probe_second_signal,
        "kill9": probe_kill9,
        "spool": probe_spool,
        "disk_full": probe_disk_full,
        "evil_labels": probe_evil_labels,
        "slow_api": probe_slow_api,
    }
    chosen = sys.argv[1:] or list(probes)
    for name in chosen:
        try:
            probes[name]()
        except Exception as e:  # noqa: BLE001 - a probe that breaks is a failure
            report(name, False, f"probe error: {e!r}")
    print(f"{sum(RESULTS)}/{len(RESULTS)} probes passed")
    sys.exit(0 if all(RESULTS) else 1)


if __name__ == "__main__":
    main()
