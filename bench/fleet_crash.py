#!/usr/bin/env python3
"""Decision states through a crash on a real fleet: VictoriaMetrics on
loopback holding N distinct hosts with 7 days of 5-minute history (one fresh
sample per host per poll), the release binary with the shipped config.yaml
(Prometheus URL and query, log/model directories, API port overridden, and
DECISION_STATE_INTERVAL=20 so the periodic write comes within a minute).
Waits until every host is judged and a periodic write holds every host's
judged state, kills the monitor with SIGKILL (no clean stop), starts it
again and prints the restart's `resuming the decision state of N series`.

    bench/fleet_crash.sh N
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fleet as F  # noqa: E402

CONFIG = os.path.join(F.ROOT, "config.yaml")
n = int(sys.argv[1])
tmp = tempfile.mkdtemp(prefix="crash-fleet-")
vm_port, api_port = F.free_port(), F.free_port()
procs = []
try:
    vm = subprocess.Popen(["victoria-metrics", f"-httpListenAddr=127.0.0.1:{vm_port}", f"-storageDataPath={tmp}/vm", "-loggerLevel=ERROR"],
                          stdout=subprocess.DEVNULL, stderr=open(f"{tmp}/vm.log", "w"))
    procs.append(vm)
    url = f"http://127.0.0.1:{vm_port}"
    for _ in range(100):
        try: F.get(url + "/health"); break
        except OSError: time.sleep(0.1)
    assert F.listening_pid(vm_port) == vm.pid
    subprocess.run([F.FLEET, "load", url, str(n)], capture_output=True, text=True, check=True)
    q = url + "/api/v1/query?query=count(cpu_busy_percent)"
    for _ in range(300):
        r = json.loads(F.get(q))["data"]["result"]
        if r and int(float(r[0]["value"][1])) == n: break
        time.sleep(0.5)
    procs.append(subprocess.Popen([F.FLEET, "push", url, str(n), "30"], stdout=subprocess.DEVNULL, stderr=open(f"{tmp}/push.log", "w")))
    env = dict(os.environ, PROMETHEUS_URL=url, PROMETHEUS_QUERY="cpu_busy_percent", LOG_DIR=f"{tmp}/logs",
               MODEL_PATH=f"{tmp}/models/model.json", API_LISTEN=f"127.0.0.1:{api_port}", DECISION_STATE_INTERVAL="20")
    def start(tag):
        return subprocess.Popen([F.BIN, "--mode", "monitor", "--config", CONFIG], cwd=tmp, env=env,
                                stdout=open(f"{tmp}/stdout.{tag}", "w"), stderr=open(f"{tmp}/stderr.{tag}", "w"))
    t0 = time.time()
    mon = start(1); procs.append(mon)
    judged = None
    path = f"{tmp}/models/decisions.json"
    while time.time() - t0 < 600:
        time.sleep(1)
        try: st = json.loads(F.get(f"http://127.0.0.1:{api_port}/api/status"))
        except OSError: continue
        if judged is None and st["series_count"] >= n and st["warming_up"] == 0:
            judged = time.time() - t0
            assert F.listening_pid(api_port) == mon.pid
        if judged is not None and os.path.exists(path) and os.path.getmtime(path) > t0 + judged:
            v = json.load(open(path))
            seen = sum(1 for s in v["series"].values() if s.get("seen", 0) > 0)
            if seen >= n:
                wrote = time.time() - t0
                break
    else:
        raise SystemExit(f"no full periodic write within 10 minutes (KEEP=1 keeps {tmp})")
    size = os.path.getsize(path)
    mon.send_signal(signal.SIGKILL); mon.wait()
    err1 = open(f"{tmp}/stderr.1").read()
    assert "kept the decision state" not in err1, "the killed run stopped cleanly?"
    print(f"{n} hosts: every host judged {judged:.0f}s after start; a periodic write with all {n} judged states at {wrote:.0f}s ({size/1e6:.1f} MB); SIGKILL")
    mon2 = start(2); procs.append(mon2)
    t1 = time.time()
    line = None
    while time.time() - t1 < 120 and line is None:
        time.sleep(0.5)
        for l in open(f"{tmp}/stderr.2"):
            if "resuming the decision state" in l: line = l.strip(); break
    if line is None:
        raise SystemExit(f"the restart did not resume the decision states (KEEP=1 keeps {tmp})")
    print("restart:", line[line.find("resuming"):])
finally:
    for p in reversed(procs):
        if p.poll() is None:
            p.terminate()
            try: p.wait(10)
            except subprocess.TimeoutExpired: p.kill()
    if os.environ.get("KEEP") != "1":
        shutil.rmtree(tmp, ignore_errors=True)
