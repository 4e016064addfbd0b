#!/usr/bin/env bash
# The decision states through a kill -9 on a real VictoriaMetrics fleet of N
# hosts (see bench/fleet_crash.py).
#
#   bench/fleet_crash.sh N
set -euo pipefail
cd "$(dirname "$0")/.."
command -v victoria-metrics >/dev/null || {
    echo "victoria-metrics not found: apt-get install victoria-metrics (or run scripts/test.sh)" >&2
    exit 1
}
cargo build --release --bin cpu-anomaly --example fleet
exec python3 bench/fleet_crash.py "${1:-1000}"
