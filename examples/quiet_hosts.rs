//! How often a healthy host pages as its history grows. Writes hosts with
//! nothing wrong (clean, with a daily job, bursty: the quiet kinds of the
//! development set) over many days with an empty `labels.json`, and counts
//! the alert onsets that `--mode evaluate` wrote for them, per kind and week
//! (every one is false). `bench/quiet_hosts.sh` runs both steps:
//!
//! ```text
//! cargo run --release --example quiet_hosts -- write /tmp/quiet 56 10
//! cpu-anomaly --mode evaluate --dataset /tmp/quiet --labels /tmp/quiet/labels.json \
//!     --output-dir /tmp/quiet-out --no-plots
//! cargo run --release --example quiet_hosts -- count /tmp/quiet-out
//! ```
//!
//! `write DIR [DAYS] [HOSTS]`: days per host (56, at least 7) and hosts per
//! kind (10).
//! The hosts are `simulate::incident_series_over(kind, seed, DAYS)` for
//! seeds 1..=HOSTS. `count OUT_DIR`: a table of onsets per kind and week
//! since the series' start, and per host-week after the first two weeks.

use std::{collections::BTreeMap, io::Write, path::PathBuf};

use anyhow::Context;
use cpu_anomaly::{
    dataset,
    simulate::{incident_series_over, IncidentKind},
};

const WEEK: i64 = 7 * 86_400;

fn write(dir: PathBuf, days: usize, hosts: u64) -> anyhow::Result<()> {
    std::fs::create_dir_all(&dir)?;
    let mut labels = BTreeMap::new();
    for kind in IncidentKind::ALL.into_iter().filter(|k| k.is_quiet()) {
        for seed in 1..=hosts {
            let g = incident_series_over(kind, seed, days);
            let name = format!("{}_{seed}.csv", kind.as_str());
            let mut f = std::io::BufWriter::new(std::fs::File::create(dir.join(&name))?);
            writeln!(f, "timestamp,value")?;
            for (t, v) in g.timestamps.iter().zip(&g.values) {
                writeln!(f, "{},{v:.3}", dataset::format_ts(*t))?;
            }
            f.flush()?;
            labels.insert(name, Vec::<[String; 2]>::new());
        }
    }
    std::fs::write(
        dir.join("labels.json"),
        serde_json::to_string_pretty(&labels)? + "\n",
    )?;
    eprintln!("{} hosts of {days} days in {}", labels.len(), dir.display());
    Ok(())
}

/// Per kind: hosts, and onsets per week since the series' start.
type Counts = BTreeMap<String, (u32, BTreeMap<i64, u32>, i64)>;

fn count(dir: PathBuf) -> anyhow::Result<()> {
    let mut counts = Counts::new();
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .with_context(|| format!("{}: not a directory", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "csv"))
        .collect();
    files.sort();
    for path in files {
        let stem = path.file_stem().unwrap_or_default().to_string_lossy();
        let Some((kind, _)) = stem.rsplit_once('_') else {
            continue;
        };
        let text = std::fs::read_to_string(&path)?;
        let mut lines = text.lines();
        let header: Vec<&str> = lines.next().unwrap_or_default().split(',').collect();
        let col = |name: &str| {
            header
                .iter()
                .position(|h| *h == name)
                .with_context(|| format!("{}: no `{name}` column", path.display()))
        };
        let (ts_col, onset_col) = (col("timestamp")?, col("alert_onset")?);
        let entry = counts.entry(kind.to_string()).or_default();
        entry.0 += 1;
        let mut start = None;
        for (n, line) in lines.enumerate() {
            let fields: Vec<&str> = line.split(',').collect();
            let ts = dataset::parse_timestamp(fields[ts_col])
                .with_context(|| format!("{}:{}: bad timestamp", path.display(), n + 2))?;
            let start = *start.get_or_insert(ts);
            entry.2 = entry.2.max((ts - start) / WEEK + 1);
            if fields[onset_col] == "true" {
                *entry.1.entry((ts - start) / WEEK).or_default() += 1;
            }
        }
    }
    let weeks = counts.values().map(|c| c.2).max().unwrap_or(0);
    print!("{:<8} {:>5}", "kind", "hosts");
    for w in 1..=weeks {
        print!(" {:>4}", format!("w{w}"));
    }
    println!("  {:>5}  per host-week after week 2", "total");
    for (kind, (hosts, by_week, _)) in &counts {
        print!("{kind:<8} {hosts:>5}");
        for w in 0..weeks {
            print!(" {:>4}", by_week.get(&w).copied().unwrap_or(0));
        }
        let total: u32 = by_week.values().sum();
        let late: u32 = by_week.range(2..).map(|(_, n)| n).sum();
        let host_weeks = f64::from(*hosts) * (weeks - 2).max(1) as f64;
        println!("  {total:>5}  {:.2}", f64::from(late) / host_weeks);
    }
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |k: usize| args.get(k).map(String::as_str);
    match arg(0) {
        Some("write") => write(
            PathBuf::from(arg(1).unwrap_or("/tmp/quiet")),
            arg(2).map(str::parse).transpose()?.unwrap_or(56),
            arg(3).map(str::parse).transpose()?.unwrap_or(10),
        ),
        Some("count") => count(PathBuf::from(arg(1).context("count OUT_DIR")?)),
        _ => anyhow::bail!("usage: quiet_hosts write DIR [DAYS] [HOSTS] | count OUT_DIR"),
    }
}
