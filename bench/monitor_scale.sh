#!/usr/bin/env bash
# Monitor scale: polls with 100, 1,000 and 10,000 simulated series through the
# real binary (simulation source, file sink, every log), reporting the time
# per poll and the peak RSS of the whole process.
#
#   bench/monitor_scale.sh [TICKS] [MODEL]   (MODEL: prophet (default) or mstl)
set -euo pipefail
cd "$(dirname "$0")/.."
ticks=${1:-10}
model=${2:-prophet}
bin=target/release/cpu-anomaly
[ -x "$bin" ] || cargo build --release
dead_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
echo "model: $model"
printf '%8s %10s %12s %12s %10s\n' series ticks last_tick_s max_tick_s peak_rss_MB
for n in 100 1000 10000; do
    dir=$(mktemp -d)
    cat > "$dir/config.yaml" <<EOF
prometheus_url: http://127.0.0.1:$dead_port
prometheus_retries: 0
monitoring_interval: 3
simulation_series: $n
log_dir: $dir/logs
model_path: $dir/models/model.json
dataset: $PWD/datasets/sample_cpu.csv
model: $model
EOF
    /usr/bin/time -f '%M' -o "$dir/rss" "$bin" --mode monitor --config "$dir/config.yaml" \
        --max-ticks "$ticks" --log-level warn > /dev/null 2> "$dir/stderr" || {
        cat "$dir/stderr" >&2
        exit 1
    }
    python3 - "$dir" "$n" <<'PY'
import json, sys
d, n = sys.argv[1], sys.argv[2]
r = json.load(open(f"{d}/logs/system_report.json"))
rss = int(open(f"{d}/rss").read().split()[-1]) / 1024
warming = sum(1 for s in r["series"].values() if s["warming_up"])
assert len(r["series"]) == int(n) and warming == 0, (len(r["series"]), warming)
print(f'{n:>8} {r["ticks"]:>10} {r["last_tick_seconds"]:>12.4f} {r["max_tick_seconds"]:>12.4f} {rss:>10.1f}')
PY
    rm -rf "$dir"
done
