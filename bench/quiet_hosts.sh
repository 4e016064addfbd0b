#!/usr/bin/env bash
# How often a healthy host pages as its history grows: 10 hosts each of the
# quiet kinds of the development set (clean, a daily job, bursty) over 8
# weeks, judged by `--mode evaluate` (learn on the first 15 %, daily refits),
# alert onsets counted per kind and week (every one is false). Runs the
# shipped defaults, the same with a stricter likelihood gate, and the
# original system's rule (band x 2, 3 flags in a row, Prophet's own band and
# linear trend, no cooldown), and prints the shipped rate as a ratio of the
# original's. See examples/quiet_hosts.rs.
#
#   bench/quiet_hosts.sh [DAYS] [HOSTS_PER_KIND]
set -euo pipefail
cd "$(dirname "$0")/.."
days=${1:-56}
hosts=${2:-10}
cargo build --release --example quiet_hosts
cargo build --release
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
target/release/examples/quiet_hosts write "$work/hosts" "$days" "$hosts"
run() {
    local name=$1
    shift
    env "$@" target/release/cpu-anomaly --mode evaluate --dataset "$work/hosts" \
        --labels "$work/hosts/labels.json" --output-dir "$work/$name" --no-plots >/dev/null
    echo "== $name${*:+ ($*)}"
    target/release/examples/quiet_hosts count "$work/$name" | tee "$work/$name.txt"
}
run shipped
run stricter ALERT_LIKELIHOOD=0.0001
run original THRESHOLD_MULTIPLIER=2 SUSTAINED_SAMPLES=3 MIN_EFFECT=0 MIN_EFFECT_RELATIVE=0 \
    ALERT_LIKELIHOOD=0 ALERT_LIKELIHOOD_ALONE=0 ALERT_ROUTINE_FACTOR=0 ALERT_CLEAR_AFTER=0 \
    ALERT_COOLDOWN=0 PROPHET_FUTURE_TREND=linear PROPHET_TREND_UNCERTAINTY=true
echo "== false alerts per host-week after week 2, shipped / original"
join <(awk 'NR>1 {print $1, $NF}' "$work/shipped.txt" | sort) \
    <(awk 'NR>1 {print $1, $NF}' "$work/original.txt" | sort) |
    awk '{ printf "%-8s %s / %s = %s\n", $1, $2, $3, ($3 > 0 ? sprintf("%.3f", $2 / $3) : "-") }'
