#!/usr/bin/env bash
# A real fleet: VictoriaMetrics on loopback with N distinct hosts (7 days of
# 5-minute history each, one fresh sample per host per poll) and the monitor
# with the shipped config. Prints seconds until every host is judged, fits/s,
# poll p50/p99, peak and steady RSS, KB per host, CPU per poll, and the time
# and average cores of a whole-fleet refit. See bench/fleet.py.
#
#   bench/fleet.sh N [REFIT_SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
command -v victoria-metrics >/dev/null || {
    echo "victoria-metrics not found: apt-get install victoria-metrics (or run scripts/test.sh)" >&2
    exit 1
}
[ -x target/release/cpu-anomaly ] && [ -x target/release/examples/fleet ] ||
    cargo build --release --bin cpu-anomaly --example fleet
exec python3 bench/fleet.py "$@"
