"""Python half of bench/prophet_vs_python.sh: generate the benchmark CSVs, fit
them with Python Prophet, and compare with the Rust results.

    prophet_fit.py generate OUT_DIR SIZE...
    prophet_fit.py fit [--repeat N] OUT_DIR FILE.csv...
    prophet_fit.py compare OUT_DIR RUST_JSONL PYTHON_JSONL
"""

import argparse
import json
import logging
import math
import sys
import time
from pathlib import Path

STEP = 300  # 5-minute samples
FUTURE = 288  # one day ahead, as the Rust side forecasts


def generate(out_dir: Path, sizes: list[int]) -> None:
    import numpy as np

    out_dir.mkdir(parents=True, exist_ok=True)
    start = 1_704_067_200  # 2024-01-01T00:00:00Z
    for n in sizes:
        rng = np.random.default_rng(n)
        t = start + STEP * np.arange(n)
        day = (t % 86_400) / 86_400
        dow = ((t // 86_400) + 3) % 7  # 2024-01-01 is a Monday: 0..4 weekdays
        y = (
            35
            + 15 * np.sin(2 * math.pi * (day - 0.3))
            + 4 * np.sin(4 * math.pi * day)
            - 8 * (dow >= 5)
            + 3 * (t - start) / (86_400 * 30)
            + rng.normal(0, 3, n)
        )
        y = np.clip(y, 0, 100)
        path = out_dir / f"cpu_{n}.csv"
        with path.open("w") as f:
            f.write("timestamp,cpu_usage\n")
            for ts, v in zip(t, y):
                stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(int(ts)))
                f.write(f"{stamp},{v:.3f}\n")
        print(path)


def fit(out_dir: Path, files: list[Path], repeat: int) -> None:
    import pandas as pd
    import prophet
    from prophet import Prophet

    # cmdstanpy logs two INFO lines per fit and resets its level on use.
    logging.getLogger("cmdstanpy").disabled = True
    logging.getLogger("prophet").setLevel(logging.WARNING)
    out_dir.mkdir(parents=True, exist_ok=True)
    for path in files:
        df = pd.read_csv(path)
        df = pd.DataFrame({"ds": pd.to_datetime(df["timestamp"]), "y": df["cpu_usage"]})
        times = []
        model = None
        for _ in range(max(repeat, 1)):
            model = Prophet(
                daily_seasonality=True,
                weekly_seasonality=True,
                yearly_seasonality=False,
                uncertainty_samples=0,
            )
            t0 = time.perf_counter()
            model.fit(df)
            times.append(time.perf_counter() - t0)
        times.sort()
        future = model.make_future_dataframe(periods=FUTURE, freq=f"{STEP}s")
        fc = model.predict(future)
        out = out_dir / f"{path.stem}.python.csv"
        secs = (fc["ds"] - pd.Timestamp("1970-01-01")) // pd.Timedelta("1s")
        pd.DataFrame({"ds": secs, "yhat": fc["yhat"]}).to_csv(out, index=False)
        print(
            json.dumps(
                {
                    "file": str(path),
                    "points": len(df),
                    "prophet": prophet.__version__,
                    "fit_seconds_median": times[len(times) // 2],
                    "fit_seconds_min": times[0],
                    "forecast": str(out),
                }
            ),
            flush=True,
        )


def compare(rust_jsonl: Path, python_jsonl: Path) -> int:
    import pandas as pd

    def load(p: Path) -> dict:
        rows = [json.loads(line) for line in p.read_text().splitlines() if line.startswith("{")]
        return {Path(r["file"]).name: r for r in rows}

    rust, py = load(rust_jsonl), load(python_jsonl)
    print(
        f"{'points':>7} {'python fit s':>13} {'rust fit s':>11} {'speed-up':>9} "
        f"{'max |Δyhat|/range: history':>27} {'day ahead':>10}  verdict"
    )
    failed = 0
    for name in sorted(rust, key=lambda n: rust[n]["points"]):
        if name not in py:
            continue
        r, p = rust[name], py[name]
        data = pd.read_csv(Path(r["file"]))
        span = float(data["cpu_usage"].max() - data["cpu_usage"].min()) or 1.0
        a = pd.read_csv(r["forecast"]).set_index("ds")["yhat"]
        b = pd.read_csv(p["forecast"]).set_index("ds")["yhat"]
        both = pd.concat([a, b], axis=1, join="inner")
        gap = (both.iloc[:, 0] - both.iloc[:, 1]).abs() / span
        n = r["points"]
        hist, ahead = float(gap.iloc[:n].max()), float(gap.iloc[n:].max())
        ratio = p["fit_seconds_median"] / r["fit_seconds_median"]
        missed = []
        if ratio < 10:
            missed.append("speed-up < 10x")
        if hist > 0.01 or ahead > 0.01 or len(both) != len(a):
            missed.append("forecasts > 1 % apart")
        failed += bool(missed)
        print(
            f"{n:>7} {p['fit_seconds_median']:>13.4f} {r['fit_seconds_median']:>11.4f} "
            f"{ratio:>8.1f}x {100 * hist:>26.3f}% {100 * ahead:>9.3f}%  "
            f"{'ok' if not missed else 'MISSED: ' + ', '.join(missed)}"
        )
    return 1 if failed else 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    g = sub.add_parser("generate")
    g.add_argument("out_dir", type=Path)
    g.add_argument("sizes", type=int, nargs="+")
    f = sub.add_parser("fit")
    f.add_argument("--repeat", type=int, default=5)
    f.add_argument("out_dir", type=Path)
    f.add_argument("files", type=Path, nargs="+")
    c = sub.add_parser("compare")
    c.add_argument("out_dir", type=Path)
    c.add_argument("rust_jsonl", type=Path)
    c.add_argument("python_jsonl", type=Path)
    a = ap.parse_args()
    if a.cmd == "generate":
        generate(a.out_dir, a.sizes)
    elif a.cmd == "fit":
        fit(a.out_dir, a.files, a.repeat)
    else:
        return compare(a.rust_jsonl, a.python_jsonl)
    return 0


if __name__ == "__main__":
    sys.exit(main())
