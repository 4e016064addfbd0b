#!/usr/bin/env bash
# The project's one test command (README, second command; .ci/run calls it).
# Installs what is missing, then runs the gates: rustfmt, clippy -D warnings,
# and the whole test suite, with the `wasmstan` feature so the native Prophet
# optimizer is checked against Stan's. Tests build in release mode (the WASM
# Stan optimizer is far too slow unoptimised).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo >/dev/null; then
    echo "cargo not found: install Rust first (https://rustup.rs)" >&2
    exit 1
fi
for component in rustfmt clippy; do
    if ! cargo "${component/rustfmt/fmt}" --version >/dev/null 2>&1; then
        echo "installing missing rustup component $component"
        rustup component add "$component"
    fi
done

# Real servers the integration tests start on loopback ports, and the tools
# that validate the compose stack, and the browser of the dashboard test
# (Debian packages).
missing=()
for pair in influxd:influxdb victoria-metrics:victoria-metrics prometheus:prometheus \
    prometheus-node-exporter:prometheus-node-exporter promtool:prometheus \
    docker-compose:docker-compose chromium:chromium prometheus-alertmanager:prometheus-alertmanager; do
    if ! command -v "${pair%%:*}" >/dev/null; then
        missing+=("${pair#*:}")
    fi
done
if ((${#missing[@]})); then
    mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
    echo "== installing test servers: ${missing[*]}"
    sudo=""
    if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi
    if [ -z "$sudo" ] || command -v sudo >/dev/null; then
        $sudo apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    else
        echo "cannot install ${missing[*]} (not root, no sudo): tests that need them will skip (or fail under CI=true)" >&2
    fi
fi

echo "== cargo fmt --check"
cargo fmt --all --check
echo "== cargo clippy --all-targets -- -D warnings"
cargo clippy --release --all-targets -- -D warnings
# Linting with `--features wasmstan` too checks the wasmtime stack once more
# (about 130 s of a 15-minute CI budget) for a few feature-gated blocks; the
# tests below compile them. Run it before a change that touches them:
#   cargo clippy --release --all-targets --features wasmstan -- -D warnings
# The wasmstan feature adds Stan's own optimizer (WASM), which
# tests/prophet_optimizer.rs compares the native one against.
# The integration tests are one binary (tests/main.rs). Most of them wait on
# the servers and binaries they start, so 8 run at once on a 2-core machine:
# the integration binary takes about 50 s instead of about 3 min with 2.
echo "== cargo test --features wasmstan"
cargo test --release --features wasmstan -- --test-threads=8
# Each fuzz target for a few seconds (stable Rust; `examples/fuzz.rs`). The
# example was built by the tests above, so this only runs it.
echo "== fuzz: every target for 3 s"
cargo run --release --features wasmstan --example fuzz -- all --seconds 3
