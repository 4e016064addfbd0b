#!/usr/bin/env bash
# Fault probes (issue 16) against the release binary and real servers on
# loopback: far-future timestamps, huge durations, SIGTERM with InfluxDB hung,
# a second signal, kill -9 and restart, a spool with non-UTF-8 and unreadable
# batches, a full disk (2 MiB tmpfs; needs root), evil labels through a real
# Prometheus-API server (VictoriaMetrics), 500 silent API clients. One line
# per probe; exits 1 if any failed. See bench/faults.py.
#
#   bench/faults.sh [PROBE ...]
set -euo pipefail
cd "$(dirname "$0")/.."
for b in influxd victoria-metrics; do
    command -v "$b" >/dev/null || {
        echo "$b not found: run scripts/test.sh (it installs the test servers)" >&2
        exit 1
    }
done
[ -x target/release/cpu-anomaly ] || cargo build --release --bin cpu-anomaly
exec python3 bench/faults.py "$@"
