#!/usr/bin/env python3
"""A real fleet against the monitor: VictoriaMetrics on loopback holding N
distinct hosts with 7 days of 5-minute history, one fresh sample per host per
poll, and the release binary with the shipped config.yaml (only the
Prometheus URL and query, the log/model directories, the API port and the
refit period are overridden). Prints what a user meets.

    bench/fleet.sh N [REFIT_SECONDS]     (REFIT_SECONDS default 180)

Figures:
  judged_s     seconds from start until every host is judged (has a band)
  fits/s       models per second of fitting thread time (monitor counters)
  poll p50/p99 wall time of a poll once every host is judged
  rss peak / steady, KB/host   /proc VmRSS; steady = median before the refit
  cpu/poll     CPU seconds per poll in the steady window
  refit_s, cpu_s, cores   time for the whole fleet's refit (seen at poll
               granularity: an upper bound), the CPU seconds it took and the
               average number of cores it kept busy
"""
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target/release/cpu-anomaly")
FLEET = os.path.join(ROOT, "target/release/examples/fleet")
POLL = 30  # the shipped monitoring_interval


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def get(url, timeout=5):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.read()


def listening_pid(port):
    """PID of the process listening on 127.0.0.1:port (ss -ltnp)."""
    out = subprocess.run(["ss", "-ltnpH", f"sport = :{port}"], capture_output=True, text=True).stdout
    for part in out.split("pid=")[1:]:
        return int(part.split(",")[0])
    return None


def proc(pid):
    with open(f"/proc/{pid}/status") as f:
        rss = next(int(l.split()[1]) for l in f if l.startswith("VmRSS:"))
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    cpu = (int(fields[11]) + int(fields[12])) / ticks
    return rss, cpu


def main():
    n = int(sys.argv[1])
    refit = int(sys.argv[2]) if len(sys.argv) > 2 else 180
    tmp = tempfile.mkdtemp(prefix="fleet-bench-")
    vm_port, api_port = free_port(), free_port()
    procs = []
    try:
        vm = subprocess.Popen(
            ["victoria-metrics", f"-httpListenAddr=127.0.0.1:{vm_port}",
             f"-storageDataPath={tmp}/vm", "-loggerLevel=ERROR"],
            stdout=subprocess.DEVNULL, stderr=open(f"{tmp}/vm.log", "w"))
        procs.append(vm)
        url = f"http://127.0.0.1:{vm_port}"
        for _ in range(100):
            try:
                get(url + "/health")
                break
            except OSError:
                time.sleep(0.1)
        assert listening_pid(vm_port) == vm.pid, "another process holds the VictoriaMetrics port"
        load = subprocess.run([FLEET, "load", url, str(n)], capture_output=True, text=True, check=True)
        print(load.stdout.strip(), file=sys.stderr)
        # Wait until every host is queryable.
        q = url + "/api/v1/query?query=count(cpu_busy_percent)"
        for _ in range(300):
            r = json.loads(get(q))["data"]["result"]
            if r and int(float(r[0]["value"][1])) == n:
                break
            time.sleep(0.5)
        procs.append(subprocess.Popen([FLEET, "push", url, str(n), str(POLL)],
                                      stdout=subprocess.DEVNULL, stderr=open(f"{tmp}/push.log", "w")))
        env = dict(os.environ)
        env.update({
            "PROMETHEUS_URL": url,
            "PROMETHEUS_QUERY": "cpu_busy_percent",
            "LOG_DIR": f"{tmp}/logs",
            "MODEL_PATH": f"{tmp}/models/model.json",
            "API_LISTEN": f"127.0.0.1:{api_port}",
            "RETRAIN_INTERVAL": str(refit),
        })
        start = time.time()
        mon = subprocess.Popen([BIN, "--mode", "monitor", "--config", os.path.join(ROOT, "config.yaml"),
                                "--log-level", "warn"], cwd=tmp, env=env,
                               stdout=open(f"{tmp}/stdout", "w"), stderr=open(f"{tmp}/stderr", "w"))
        procs.append(mon)
        samples = []  # (t, rss_kb, cpu_s, status)
        judged_at = None
        polls = {}
        deadline = start + 900
        while time.time() < deadline and mon.poll() is None:
            time.sleep(1)
            try:
                st = json.loads(get(f"http://127.0.0.1:{api_port}/api/status"))
            except OSError:
                continue
            if judged_at is None and listening_pid(api_port) != mon.pid:
                raise SystemExit("the API port is not the monitor's")
            rss, cpu = proc(mon.pid)
            t = time.time() - start
            samples.append((t, rss, cpu, st))
            polls[st["ticks"]] = st["last_tick_seconds"]
            if judged_at is None and st["series_count"] >= n and st["warming_up"] == 0:
                judged_at = t
            if st["trainings"] >= 2 * n:
                break
        if judged_at is None:
            raise SystemExit(f"not every host was judged within {deadline - start:.0f}s; see {tmp}")
        first = min(s[0] for s in samples if s[3]["trainings"] > 0)
        warm = [s for s in samples if s[0] <= judged_at]
        fit_time = warm[-1][3]["training_seconds_total"]
        fits_per_s = warm[-1][3]["trainings"] / fit_time if fit_time > 0 else float("inf")
        # The refit starts with its history fetch.
        refit_start = next((s for s in samples if s[0] > judged_at and (s[3]["fetching"] > 0 or s[3]["trainings"] > n)), None)
        steady = [s for s in samples if s[0] > judged_at + POLL and (refit_start is None or s[0] < refit_start[0] - 1)]
        ticks_after = sorted(k for k in polls if k >= 3)
        durations = sorted(polls[k] for k in ticks_after) or [0.0]
        p = lambda q: durations[min(len(durations) - 1, int(q * len(durations)))]
        peak = max(s[1] for s in samples)
        steady_rss = statistics.median(s[1] for s in steady) if steady else float("nan")
        if len(steady) >= 2 and steady[-1][3]["ticks"] > steady[0][3]["ticks"]:
            cpu_poll = (steady[-1][2] - steady[0][2]) / (steady[-1][3]["ticks"] - steady[0][3]["ticks"])
        else:
            cpu_poll = float("nan")
        done = next((s for s in samples if s[3]["trainings"] >= 2 * n), None)
        if refit_start and done:
            before = max((s for s in samples if s[0] < refit_start[0] - 1), key=lambda s: s[0])
            refit_s = done[0] - before[0]
            refit_cores = (done[2] - before[2]) / refit_s if refit_s > 0 else float("nan")
        else:
            refit_s = refit_cores = float("nan")
        hist_mb = samples[-1][3]["history_bytes"] / 1e6
        print(f"{'hosts':>7} {'judged_s':>8} {'fits/s':>8} {'poll_p50':>8} {'poll_p99':>8} {'rss_peak':>8} "
              f"{'rss_st':>7} {'KB/host':>7} {'cpu/poll':>8} {'refit_s':>7} {'cpu_s':>6} {'cores':>5} {'hist_MB':>7}")
        print(f"{n:>7} {judged_at:>8.0f} {fits_per_s:>8.0f} {p(0.5):>8.3f} {p(0.99):>8.3f} {peak / 1024:>7.0f}M "
              f"{steady_rss / 1024:>6.0f}M {steady_rss / n:>7.1f} {cpu_poll:>8.3f} {refit_s:>7.0f} "
              f"{refit_cores * refit_s:>6.1f} {refit_cores:>5.2f} "
              f"{hist_mb:>7.0f}")
        print(f"(first model after {first:.0f}s; refit every {refit}s; logs in {tmp})", file=sys.stderr)
    finally:
        for p_ in reversed(procs):
            p_.terminate()
            try:
                p_.wait(10)
            except subprocess.TimeoutExpired:
                p_.kill()
        if os.environ.get("KEEP") != "1":
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
