//! A fuzzer for the targets in `cpu_anomaly::fuzz` that runs on stable
//! Rust: seeded random mutation (bit flips, byte edits, inserted
//! dictionary tokens, splices of two inputs), every input run under
//! `catch_unwind`. A crashing input is saved to `fuzz/crashes/TARGET-HASH`
//! and the run fails.
//!
//! ```text
//! cargo run --release --example fuzz -- [TARGET|all] [--runs N] [--seconds S] [--seed K]
//! ```

use std::{
    panic,
    time::{Duration, Instant},
};

use cpu_anomaly::fuzz::{seeds, TARGETS};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Tokens worth inserting: separators, escapes, numbers at the edges.
const DICT: &[&str] = &[
    ",",
    "\n",
    "\r\n",
    "\"",
    "\\",
    " ",
    "=",
    ":",
    "{",
    "}",
    "[",
    "]",
    "%",
    "-",
    "0",
    "1e308",
    "-1e308",
    "NaN",
    "+Inf",
    "1e19",
    "1e300",
    "9223372036854775807",
    "-9223372036854775808",
    "4102444800",
    "1700000000",
    "2100-01-01",
    "1970-01-01T00:00:00Z",
    "true",
    "null",
    "\u{ff}",
    "\u{0}",
    "é",
    "  ",
    ": ",
    "- ",
    "influxdb:",
    "prometheus_url:",
    "30s",
    "1d",
    "\"values\":",
    "\"metric\":",
    "\"value\":",
    "\"result\":",
];

fn mutate(rng: &mut ChaCha8Rng, input: &mut Vec<u8>, pool: &[Vec<u8>]) {
    for _ in 0..rng.random_range(1..=4) {
        let len = input.len();
        match rng.random_range(0..7) {
            0 if len > 0 => {
                let i = rng.random_range(0..len);
                input[i] ^= 1 << rng.random_range(0..8);
            }
            1 if len > 0 => {
                let i = rng.random_range(0..len);
                input[i] = rng.random();
            }
            2 if len > 0 => {
                let i = rng.random_range(0..len);
                let n = rng.random_range(1..=len - i);
                input.drain(i..i + n.min(16));
            }
            3 => {
                let i = rng.random_range(0..=len);
                let t = DICT[rng.random_range(0..DICT.len())].as_bytes();
                input.splice(i..i, t.iter().copied());
            }
            4 if len > 0 => {
                // Repeat a slice (long fields, many rows).
                let i = rng.random_range(0..len);
                let n = rng.random_range(1..=(len - i).min(64));
                let chunk = input[i..i + n].to_vec();
                for _ in 0..rng.random_range(1..8) {
                    input.splice(i..i, chunk.iter().copied());
                }
            }
            5 if !pool.is_empty() => {
                let other = &pool[rng.random_range(0..pool.len())];
                let cut = rng.random_range(0..=len);
                let from = rng.random_range(0..=other.len());
                input.truncate(cut);
                input.extend_from_slice(&other[from..]);
            }
            _ => {
                let i = rng.random_range(0..=len);
                input.insert(i, rng.random());
            }
        }
    }
    input.truncate(1 << 16);
}

fn fnv(b: &[u8]) -> u64 {
    b.iter().fold(0xcbf2_9ce4_8422_2325, |h, &x| {
        (h ^ u64::from(x)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut which = "all".to_string();
    let (mut runs, mut seconds, mut seed) = (u64::MAX, f64::INFINITY, 1u64);
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut val = || it.next().and_then(|v| v.parse::<f64>().ok());
        match a.as_str() {
            "--runs" => runs = val().expect("--runs N") as u64,
            "--seconds" => seconds = val().expect("--seconds S"),
            "--seed" => seed = val().expect("--seed K") as u64,
            t => which = t.to_string(),
        }
    }
    if runs == u64::MAX && seconds.is_infinite() {
        runs = 100_000;
    }
    let targets: Vec<_> = TARGETS
        .iter()
        .filter(|(n, _)| which == "all" || *n == which)
        .collect();
    if targets.is_empty() {
        let names: Vec<_> = TARGETS.iter().map(|(n, _)| *n).collect();
        eprintln!("unknown target {which}; targets: {}", names.join(", "));
        std::process::exit(2);
    }
    panic::set_hook(Box::new(|_| {}));
    let crash_dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/crashes");
    let mut crashed = false;
    for (name, target) in targets {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut pool = seeds(name);
        let corpus = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fuzz/regressions")
            .join(name);
        if let Ok(rd) = std::fs::read_dir(&corpus) {
            pool.extend(rd.flatten().filter_map(|e| std::fs::read(e.path()).ok()));
        }
        let start = Instant::now();
        let limit = Duration::from_secs_f64(seconds.min(1e9));
        let (mut n, mut crashes) = (0u64, 0u64);
        while n < runs && start.elapsed() < limit {
            let mut input = pool[rng.random_range(0..pool.len())].clone();
            mutate(&mut rng, &mut input, &pool);
            let ok = panic::catch_unwind(|| target(&input)).is_ok();
            n += 1;
            if !ok {
                crashes += 1;
                let _ = std::fs::create_dir_all(&crash_dir);
                let path = crash_dir.join(format!("{name}-{:016x}", fnv(&input)));
                let _ = std::fs::write(&path, &input);
                if crashes <= 3 {
                    eprintln!("{name}: CRASH saved to {}", path.display());
                }
            } else if pool.len() < 4096 && rng.random_range(0..64) == 0 {
                // Keep some inputs that passed, to mutate further.
                pool.push(input);
            }
        }
        let secs = start.elapsed().as_secs_f64();
        println!(
            "{name}: {n} executions in {secs:.1} s ({:.0}/s), {crashes} crashes",
            n as f64 / secs.max(1e-9)
        );
        crashed |= crashes > 0;
    }
    if crashed {
        std::process::exit(1);
    }
}
