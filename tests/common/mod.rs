//! Helpers shared by the integration tests.
#![allow(dead_code)]

pub mod fleet;
pub mod servers;

use std::{io::Write, path::Path, process::Command};

use cpu_anomaly::simulate::Pattern;
use rand::SeedableRng;

/// The built binary.
pub fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_cpu-anomaly"));
    // Keep the tests independent of the developer's environment.
    for (var, _) in cpu_anomaly::config::ENV_VARS {
        c.env_remove(var);
    }
    c
}

/// Writes a clean generated series (percent) as `timestamp,cpu_usage`.
pub fn write_generated(path: &Path, pattern: &Pattern, seed: u64) {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let values = pattern.values(&mut rng);
    let mut f = std::fs::File::create(path).unwrap();
    writeln!(f, "timestamp,cpu_usage").unwrap();
    for (t, v) in pattern.timestamps().iter().zip(values) {
        writeln!(f, "{},{v:.3}", cpu_anomaly::dataset::format_ts(*t)).unwrap();
    }
}
