#!/usr/bin/env bash
# False alarms of each history stage on the development data: the model the
# monitor fits on a series' first H hours judges what follows until its next
# refit. See examples/short_history.rs.
#
#   bench/short_history.sh [NAB_DIR] [SEED_CSV]
set -euo pipefail
cd "$(dirname "$0")/.."
nab=${1:-../shared/datasets/nab}
seed=${2:-../shared/datasets/seed/dataset.csv}
cargo build --release --example short_history
exec target/release/examples/short_history "$nab/data" "$nab/labels.json" "$seed"
