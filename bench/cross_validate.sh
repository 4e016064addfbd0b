#!/usr/bin/env bash
# Leave-series-out cross-validation of the alert decision settings over the
# development data (NAB dev series + generated incident series): prints the
# held-out NAB score and event metrics per fold, mean ± sd, and the setting
# chosen on all the data (the shipped default). See examples/cross_validate/.
#
#   bench/cross_validate.sh [NAB_DIR] [GENERATED_PER_KIND] [FOLDS]
set -euo pipefail
cd "$(dirname "$0")/.."
nab=${1:-../shared/datasets/nab}
cargo build --release --example cross_validate
exec target/release/examples/cross_validate "$nab" "${2:-5}" "${3:-5}"
