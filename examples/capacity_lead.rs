//! How early capacity warnings come, and how often they are wrong.
//!
//! ```sh
//! cargo run --release --example capacity_lead -- [NAB_DATA_DIR [SEED_CSV]]
//! # e.g. ../shared/datasets/nab/data/realAWSCloudwatch ../shared/datasets/seed/dataset.csv
//! ```
//!
//! Each series is judged as the monitor judges it, with the shipped
//! `config.yaml` (`capacity_threshold: 90`, `capacity_horizon: 30m`): a
//! model fitted on the days before (`Trainer::fit_staged` on a 5-minute
//! grid, refitted daily), its band drawn as the monitor draws it
//! (`Compact::horizon`, redrawn every 3 hours), and the same
//! [`CapacityWatch`] fed every sample. Nothing after a sample is used to
//! judge it.
//!
//! - A **crossing** is a sample at or over the threshold after at least 30
//!   minutes under it. Its **lead** is how long before it the warning in
//!   force started (0: the warning came with the crossing sample; missed:
//!   none by then).
//! - A **false warning** starts with no crossing within two horizons.
//!
//! Generated series (seeded; one sample a minute, three days of history,
//! one day judged): ramps into saturation, step-ups to a high level that
//! then creeps into saturation, sudden jumps straight over the threshold
//! (nothing can warn before those), and clean hosts that never cross (daily
//! peaks, noise, short spikes and level shifts, all under 88 %). Real
//! series: the CPU series of the development data, walked forward daily
//! after three days.

use std::path::{Path, PathBuf};

use cpu_anomaly::{
    config::{CliOverrides, Settings},
    dataset::{self, ReadOptions, Unit},
    detect::capacity::{CapacitySettings, CapacityWatch, Change},
    forecast::Trainer,
    monitor::{
        horizon::{Compact, Horizon},
        workers::horizon_from,
    },
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};

const MIN: i64 = 60;
const HOUR: i64 = 3600;
const DAY: i64 = 86_400;
const STEP: i64 = 300;
const T0: i64 = 1_700_006_400; // a Wednesday, 00:00 UTC

/// What one series did.
#[derive(Default)]
struct Outcome {
    /// Per crossing: the lead in seconds (`None`: missed).
    leads: Vec<Option<i64>>,
    /// Missed crossings: how long after them the warning came.
    late: Vec<i64>,
    /// Predicted minus actual time to the crossing, at the warning's start.
    eta_errors: Vec<i64>,
    false_warnings: usize,
    judged_seconds: i64,
}

fn judge(trainer: &Trainer, cap: &CapacitySettings, ts: &[i64], ys: &[f64], from: i64) -> Outcome {
    let horizon = cap.horizon_secs();
    let mut watch = CapacityWatch::new();
    let mut onsets: Vec<(i64, i64)> = Vec::new(); // (at, predicted seconds)
    let mut active_since: Option<i64> = None;
    let mut crossings: Vec<(i64, Option<i64>)> = Vec::new(); // (at, warning start)
    let mut last_over: Option<i64> = None;
    let mut prev_over = false;
    let mut overs: Vec<(i64, bool)> = Vec::new();
    let (mut compact, mut band): (Option<Compact>, Option<Horizon>) = (None, None);
    let mut segment_end = i64::MIN;
    for (i, (&t, &y)) in ts.iter().zip(ys).enumerate() {
        if t < from {
            continue;
        }
        if t >= segment_end {
            // A daily refit on the week before, at the monitor's 5-minute grid.
            let start = t - 7 * DAY;
            let (ht, hy): (Vec<i64>, Vec<f64>) = ts[..i]
                .iter()
                .zip(&ys[..i])
                .filter(|(&x, _)| x >= start && (x - ts[0]) % STEP == 0)
                .map(|(&x, &v)| (x, v))
                .unzip();
            compact = trainer
                .fit_staged(&ht, &hy, Unit::Percent)
                .ok()
                .and_then(|f| Compact::from_model(f.model, STEP, horizon_from(t, STEP)).ok());
            band = None;
            segment_end = t - t.rem_euclid(DAY) + DAY;
        }
        let Some(c) = &compact else { continue };
        if band.as_ref().map_or(true, |h| t >= h.refresh_at()) {
            band = c.horizon(horizon_from(t, STEP), STEP).ok();
        }
        let Some(h) = &band else { continue };
        let Some(b) = h.band_at(t) else { continue };
        let was_active = watch.is_active();
        let v = watch.update(cap, cap.threshold, t, y, b.yhat, |x| {
            h.band_at(x).map(|b| b.yhat)
        });
        match v.change {
            Change::Onset => {
                active_since = Some(t);
                onsets.push((t, v.warning.map_or(0, |w| w.in_seconds)));
            }
            Change::Cleared => active_since = None,
            Change::None => {}
        }
        let over = y >= cap.threshold;
        if over {
            if !prev_over && last_over.map_or(true, |o| t - o >= 30 * MIN) {
                // The warning counts if it was in force before this sample
                // or started with it.
                let warned = if was_active || v.change == Change::Onset {
                    active_since
                } else {
                    None
                };
                crossings.push((t, warned));
            }
            last_over = Some(t);
        }
        prev_over = over;
        overs.push((t, over));
    }
    let mut out = Outcome {
        judged_seconds: ts.last().copied().unwrap_or(from) - from,
        ..Outcome::default()
    };
    for &(at, warned) in &crossings {
        out.leads.push(warned.map(|w| at - w));
        if warned.is_none() {
            if let Some(&(o, _)) = onsets.iter().find(|(o, _)| *o >= at) {
                out.late.push(o - at);
            }
        }
        if let Some(w) = warned {
            if let Some(&(_, predicted)) = onsets.iter().find(|(o, _)| *o == w) {
                out.eta_errors.push(predicted - (at - w));
            }
        }
    }
    out.false_warnings = onsets
        .iter()
        .filter(|(o, _)| {
            !overs
                .iter()
                .any(|&(t, over)| over && t >= *o && t - *o <= 2 * horizon)
        })
        .count();
    out
}

/// A day-shaped host: level, daily swing peaking at 14:00, noise.
struct Host {
    base: f64,
    amp: f64,
    noise: Normal<f64>,
}

impl Host {
    fn new(rng: &mut ChaCha8Rng, base: (f64, f64), amp: (f64, f64), sd: (f64, f64)) -> Host {
        Host {
            base: rng.random_range(base.0..base.1),
            amp: rng.random_range(amp.0..amp.1),
            noise: Normal::new(0.0, rng.random_range(sd.0..sd.1)).unwrap(),
        }
    }

    fn normal(&self, t: i64) -> f64 {
        let hour = (t.rem_euclid(DAY)) as f64 / HOUR as f64;
        self.base + self.amp * ((hour - 14.0) / 24.0 * std::f64::consts::TAU).cos()
    }
}

/// Four days a minute apart: three of history, the fourth judged.
fn grid() -> Vec<i64> {
    (0..4 * DAY / MIN).map(|k| T0 + k * MIN).collect()
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Ramp,
    StepThenCreep,
    Jump,
    StepStays,
    Clean,
}

fn generate(kind: Kind, seed: u64) -> (Vec<i64>, Vec<f64>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let ts = grid();
    let day4 = T0 + 3 * DAY;
    let start = day4 + rng.random_range(2 * HOUR..16 * HOUR);
    let ys = match kind {
        Kind::Ramp => {
            let h = Host::new(&mut rng, (20.0, 50.0), (3.0, 10.0), (0.5, 3.0));
            let slope = rng.random_range(0.1..1.0); // points a minute
            ts.iter()
                .map(|&t| {
                    let n = h.noise.sample(&mut rng);
                    if t < start {
                        return (h.normal(t) + n).clamp(0.0, 100.0);
                    }
                    let up = h.normal(t) + slope * ((t - start) / MIN) as f64;
                    (up.min(97.0) + n).clamp(0.0, 100.0)
                })
                .collect()
        }
        Kind::StepThenCreep => {
            let h = Host::new(&mut rng, (20.0, 45.0), (3.0, 8.0), (0.5, 2.5));
            let level = rng.random_range(70.0..84.0);
            let creep = rng.random_range(0.05..0.3);
            ts.iter()
                .map(|&t| {
                    let n = h.noise.sample(&mut rng);
                    if t < start {
                        return (h.normal(t) + n).clamp(0.0, 100.0);
                    }
                    let v = level + creep * ((t - start) / MIN) as f64;
                    (v.min(97.0) + n).clamp(0.0, 100.0)
                })
                .collect()
        }
        Kind::Jump => {
            let h = Host::new(&mut rng, (20.0, 50.0), (3.0, 10.0), (0.5, 2.5));
            let to = rng.random_range(93.0..99.0);
            let dur = rng.random_range(30 * MIN..3 * HOUR);
            ts.iter()
                .map(|&t| {
                    let n = h.noise.sample(&mut rng) * 0.5;
                    if (start..start + dur).contains(&t) {
                        (to + n).clamp(90.5, 100.0)
                    } else {
                        (h.normal(t) + h.noise.sample(&mut rng)).clamp(0.0, 88.0)
                    }
                })
                .collect()
        }
        Kind::StepStays => {
            let h = Host::new(&mut rng, (20.0, 45.0), (3.0, 8.0), (0.5, 2.5));
            let level = rng.random_range(70.0..84.0);
            ts.iter()
                .map(|&t| {
                    let n = h.noise.sample(&mut rng);
                    let v = if t < start { h.normal(t) } else { level };
                    (v + n).clamp(0.0, 88.0)
                })
                .collect()
        }
        Kind::Clean => {
            let h = Host::new(&mut rng, (20.0, 60.0), (2.0, 15.0), (0.5, 4.0));
            let shift_at = day4 + rng.random_range(0..DAY);
            let shift = if rng.random_bool(0.3) {
                rng.random_range(5.0..12.0)
            } else {
                0.0
            };
            ts.iter()
                .map(|&t| {
                    let mut v = h.normal(t) + h.noise.sample(&mut rng);
                    if t >= shift_at {
                        v += shift;
                    }
                    if rng.random_bool(0.002) {
                        v += rng.random_range(10.0..40.0); // a one-minute spike
                    }
                    v.clamp(0.0, 88.0)
                })
                .collect()
        }
    };
    (ts, ys)
}

fn median(v: &mut [i64]) -> Option<i64> {
    if v.is_empty() {
        return None;
    }
    v.sort_unstable();
    Some(v[v.len() / 2])
}

fn minutes(s: Option<i64>) -> String {
    s.map_or("–".into(), |s| format!("{:.1} min", s as f64 / 60.0))
}

fn report(name: &str, outcomes: &[Outcome]) {
    let leads: Vec<Option<i64>> = outcomes.iter().flat_map(|o| o.leads.clone()).collect();
    let warned: Vec<i64> = leads.iter().flatten().copied().collect();
    let before = warned.iter().filter(|&&l| l > 0).count();
    let at = warned.iter().filter(|&&l| l == 0).count();
    let missed = leads.iter().filter(|l| l.is_none()).count();
    // Lead figures are over the crossings warned of before they happened.
    let mut ahead: Vec<i64> = warned.iter().copied().filter(|&l| l > 0).collect();
    let worst = ahead.iter().min().copied();
    let med = median(&mut ahead);
    let mut eta: Vec<i64> = outcomes
        .iter()
        .flat_map(|o| o.eta_errors.clone())
        .map(i64::abs)
        .collect();
    let mut late: Vec<i64> = outcomes.iter().flat_map(|o| o.late.clone()).collect();
    let false_w: usize = outcomes.iter().map(|o| o.false_warnings).sum();
    let days: f64 = outcomes
        .iter()
        .map(|o| o.judged_seconds as f64)
        .sum::<f64>()
        / DAY as f64;
    println!(
        "| {name} | {} | {} | {before} | {at} | {missed}{} | {} | {} | {} | {false_w} ({:.3}/host-day) |",
        outcomes.len(),
        leads.len(),
        if late.is_empty() {
            String::new()
        } else {
            format!(" (warned {} after)", minutes(median(&mut late)))
        },
        minutes(med),
        minutes(worst),
        minutes(median(&mut eta)),
        false_w as f64 / days.max(1e-9),
    );
}

fn csvs(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    v.retain(|p| p.extension().is_some_and(|e| e == "csv"));
    v.sort();
    v
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let shipped = Settings::from_layers(
        include_str!("../config.yaml"),
        None,
        "config.yaml",
        |_| None,
        &CliOverrides::default(),
    )
    .expect("config.yaml");
    let trainer = shipped.trainer();
    let cap = shipped.monitor.capacity;
    // The watch's constants were chosen on seed set 0; the figures reported
    // (README) are seed set 1, series never looked at while choosing.
    let set: u64 = std::env::var("CAPACITY_SEED_SET")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    println!("generated series: seed set {set}");
    println!(
        "capacity_threshold {} %, capacity_horizon {} s (shipped config.yaml)\n",
        cap.threshold,
        cap.horizon_secs()
    );
    println!("| series | hosts | crossings | warned before | warned at the crossing | missed (median delay) | median lead | worst lead | median ETA error | false warnings |");
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for (name, kind, n) in [
        ("ramp into saturation (0.1–1 pt/min)", Kind::Ramp, 100),
        ("step to 70–84 %, then creeping up", Kind::StepThenCreep, 50),
        ("sudden jump over 90 %", Kind::Jump, 30),
        (
            "step to 70–84 % that stays (never over 88 %)",
            Kind::StepStays,
            50,
        ),
        ("clean, never over 88 %", Kind::Clean, 100),
    ] {
        let outcomes: Vec<Outcome> = (0..n)
            .map(|i| {
                let (ts, ys) = generate(kind, 1_000_000 * set + 1000 * kind as u64 + i as u64);
                judge(&trainer, &cap, &ts, &ys, T0 + 3 * DAY)
            })
            .collect();
        report(name, &outcomes);
    }
    let mut real: Vec<PathBuf> = args.first().map(|d| csvs(Path::new(d))).unwrap_or_default();
    if let Some(seed) = args.get(1) {
        real.push(PathBuf::from(seed));
    }
    let mut never = Vec::new();
    for p in &real {
        let s = dataset::read_csv(p, &ReadOptions::default()).expect("csv");
        let scale = if s.unit == Unit::Fraction { 100.0 } else { 1.0 };
        let ys: Vec<f64> = s.values.iter().map(|v| v * scale).collect();
        let from = s.timestamps[0] + 3 * DAY;
        let o = judge(&trainer, &cap, &s.timestamps, &ys, from);
        let name = p.file_stem().unwrap().to_string_lossy().to_string();
        let max = ys.iter().copied().fold(f64::MIN, f64::max);
        eprintln!(
            "{name}: max {max:.1} %, {} crossings judged, leads {:?}, {} false warnings",
            o.leads.len(),
            o.leads,
            o.false_warnings
        );
        if o.leads.is_empty() {
            never.push(o);
        } else {
            let step = s.timestamps.get(1).map_or(0, |b| b - s.timestamps[0]) / MIN;
            report(&format!("real: {name} ({step}-minute steps)"), &[o]);
        }
    }
    if !never.is_empty() {
        report("real series that never cross", &never);
    }
}
