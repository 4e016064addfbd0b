//! Fits Prophet (daily + weekly seasonality, no yearly) on CSV files and
//! reports the fit time; the Rust half of `bench/prophet_vs_python.sh`.
//!
//! ```text
//! cargo run --release --example prophet_fit -- [--repeat N] [--optimizer native|wasmstan] OUT_DIR FILE.csv...
//! ```
//!
//! For each file: fits `N` times (default 5) with the project's
//! `ProphetTrainer` (what train, monitor and evaluate use), prints one JSON
//! line with the median and fastest fit, and writes
//! `OUT_DIR/<stem>.rust.csv` (`ds,yhat` over the history and the next 288
//! steps) for comparison with Python Prophet's forecast.

use std::{io::Write, path::PathBuf, time::Instant};

use anyhow::{bail, Context};
use cpu_anomaly::{
    dataset::{read_csv, ReadOptions, Unit},
    forecast::{optimizer::OptimizerKind, ProphetTrainer},
    forecast::{FutureTrend, ProphetSettings, Seasonality},
};

fn main() -> anyhow::Result<()> {
    let mut repeat = 5usize;
    let mut kind = OptimizerKind::Native;
    let mut positional = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--repeat" => repeat = args.next().context("--repeat needs a number")?.parse()?,
            "--optimizer" => {
                kind = match args.next().as_deref() {
                    Some("native") => OptimizerKind::Native,
                    Some("wasmstan") => OptimizerKind::Wasmstan,
                    other => bail!("--optimizer native|wasmstan, got {other:?}"),
                }
            }
            _ => positional.push(PathBuf::from(a)),
        }
    }
    if positional.len() < 2 {
        bail!("usage: prophet_fit [--repeat N] [--optimizer native|wasmstan] OUT_DIR FILE.csv...");
    }
    let out_dir = positional.remove(0);
    std::fs::create_dir_all(&out_dir)?;
    let settings = ProphetSettings {
        daily_seasonality: Seasonality::On,
        weekly_seasonality: Seasonality::On,
        yearly_seasonality: Seasonality::Off,
        // Python Prophet extrapolates the trend: compare like with like.
        future_trend: FutureTrend::Linear,
        ..ProphetSettings::default()
    };
    let trainer = ProphetTrainer::with_optimizer(kind)?;
    for path in positional {
        let opts = ReadOptions {
            unit: Some(Unit::Percent),
            ..ReadOptions::default()
        };
        let series = read_csv(&path, &opts)?;
        let (ts, ys) = (&series.timestamps, &series.values);
        let mut times = Vec::with_capacity(repeat);
        let mut model = None;
        for _ in 0..repeat.max(1) {
            let t = Instant::now();
            let m = trainer.fit(ts, ys, &settings, series.unit, 42)?;
            times.push(t.elapsed().as_secs_f64());
            model = Some(m);
        }
        let model = model.expect("fitted at least once");
        times.sort_by(f64::total_cmp);
        let step = series.step_seconds();
        let last = *ts.last().expect("non-empty series");
        let mut at = ts.clone();
        at.extend((1..=288).map(|i| last + i * step));
        let forecast = model.predict(&at)?;
        let stem = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("series");
        let out = out_dir.join(format!("{stem}.rust.csv"));
        let mut f = std::io::BufWriter::new(std::fs::File::create(&out)?);
        writeln!(f, "ds,yhat")?;
        for (t, y) in at.iter().zip(&forecast.yhat) {
            writeln!(f, "{t},{y}")?;
        }
        f.flush()?;
        println!(
            "{}",
            serde_json::json!({
                "file": path.display().to_string(),
                "points": ts.len(),
                "optimizer": kind.as_str(),
                "fit_seconds_median": times[times.len() / 2],
                "fit_seconds_min": times[0],
                "forecast": out.display().to_string(),
            })
        );
    }
    Ok(())
}
