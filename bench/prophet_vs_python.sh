#!/usr/bin/env bash
# Prophet fit: this project vs Python Prophet, on the same CSVs, in one run.
#
#   bench/prophet_vs_python.sh [REPEAT] [SIZES...]     (defaults: 5; 2000 4000 8000 32000)
#
# Generates 5-minute CPU-like series (daily + weekly cycle, slow trend, noise)
# of each size, fits each REPEAT times with Python Prophet (from PyPI, in a
# virtualenv under ~/.cache/cpu-anomaly, made on first use) and with this
# project's ProphetTrainer (examples/prophet_fit.rs, native optimizer), and
# prints per size: median fit seconds of both, the speed-up, and the largest
# forecast difference (history + one day ahead) as a share of the data range.
# Exits 1 if any size misses the targets (>= 10x faster, <= 1 % apart).
# Set OPTIMIZER=wasmstan to time the WASM Stan optimizer instead (needs a
# build with --features wasmstan; the script passes it).
set -euo pipefail
cd "$(dirname "$0")/.."
repeat=${1:-5}
shift || true
sizes=("$@")
[ ${#sizes[@]} -gt 0 ] || sizes=(2000 4000 8000 32000)
optimizer=${OPTIMIZER:-native}
venv=${PROPHET_VENV:-$HOME/.cache/cpu-anomaly/prophet-venv}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import prophet' 2>/dev/null; then
    echo "== installing Python Prophet into $venv" >&2
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q --upgrade pip >&2
    "$venv/bin/pip" install -q 'prophet==1.5.0' >&2
fi
py="$venv/bin/python"

features=()
[ "$optimizer" = wasmstan ] && features=(--features wasmstan)
echo "== building examples/prophet_fit (release)" >&2
cargo build --release -q --example prophet_fit "${features[@]}"

"$py" bench/prophet_fit.py generate "$work/data" "${sizes[@]}" > "$work/files"
mapfile -t files < "$work/files"

echo "== Python Prophet $("$py" -c 'import prophet; print(prophet.__version__)'): ${#files[@]} files x $repeat fits" >&2
"$py" bench/prophet_fit.py fit --repeat "$repeat" "$work/out" "${files[@]}" > "$work/python.jsonl"
echo "== cpu-anomaly ($optimizer optimizer): ${#files[@]} files x $repeat fits" >&2
target/release/examples/prophet_fit --repeat "$repeat" --optimizer "$optimizer" \
    "$work/out" "${files[@]}" > "$work/rust.jsonl"

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
"$py" bench/prophet_fit.py compare "$work/out" "$work/rust.jsonl" "$work/python.jsonl"
