//! Regenerates the bundled sample dataset:
//!
//! ```text
//! cargo run --release --example generate_dataset -- datasets/sample_cpu.csv
//! ```
//!
//! Writes the CSV (`timestamp,cpu_usage` in percent, 10-minute steps, 28 days),
//! `<name>.anomalies.json` (what was injected, where) and `<name>.labels.json`
//! (the same windows in NAB label format, for `--mode evaluate --labels`).

use std::{io::Write, path::PathBuf};

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let out = PathBuf::from(
        args.next()
            .unwrap_or_else(|| "datasets/sample_cpu.csv".into()),
    );
    let seed: u64 = args.next().map(|s| s.parse()).transpose()?.unwrap_or(7);
    let (ts, values, injected) = cpu_anomaly::simulate::sample_dataset(seed);
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let mut f = std::io::BufWriter::new(std::fs::File::create(&out)?);
    writeln!(f, "timestamp,cpu_usage")?;
    for (t, v) in ts.iter().zip(&values) {
        writeln!(f, "{},{:.2}", cpu_anomaly::dataset::format_ts(*t), v)?;
    }
    f.flush()?;
    let stem = out.with_extension("");
    std::fs::write(
        stem.with_extension("anomalies.json"),
        serde_json::to_string_pretty(&injected)? + "\n",
    )?;
    let name = out
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    let windows: Vec<[String; 2]> = injected
        .iter()
        .map(|a| [a.start.clone(), a.end.clone()])
        .collect();
    let labels = serde_json::json!({ name: windows });
    std::fs::write(
        stem.with_extension("labels.json"),
        serde_json::to_string_pretty(&labels)? + "\n",
    )?;
    println!(
        "wrote {} ({} rows, {} anomalies)",
        out.display(),
        ts.len(),
        injected.len()
    );
    Ok(())
}
