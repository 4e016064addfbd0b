//! The candidate settings: the trend variant × the decision settings.

use cpu_anomaly::{
    detect::{DecisionSettings, Side},
    forecast::FutureTrend,
};

/// A candidate: the trend variant and the decision settings.
#[derive(Clone, Copy)]
pub(crate) struct Candidate {
    pub(crate) trend: FutureTrend,
    pub(crate) decision: DecisionSettings,
}

pub(crate) fn grid() -> Vec<Candidate> {
    let mut out = Vec::new();
    for trend in [FutureTrend::Linear, FutureTrend::Flat] {
        for decision in decisions() {
            out.push(Candidate { trend, decision });
        }
    }
    out
}

pub(crate) fn decisions() -> Vec<DecisionSettings> {
    const HOUR: i64 = 3600;
    let relative: Vec<f64> = std::env::var("RELATIVE")
        .unwrap_or_else(|_| "0,0.25".into())
        .split(',')
        .map(|v| v.trim().parse().expect("RELATIVE: comma-separated numbers"))
        .collect();
    let peaks: Vec<f64> = std::env::var("PEAKS")
        .unwrap_or_else(|_| "1,1.5,2".into())
        .split(',')
        .map(|v| v.trim().parse().expect("PEAKS: comma-separated numbers"))
        .collect();
    let multipliers: Vec<f64> = std::env::var("MULTIPLIERS")
        .unwrap_or_else(|_| "2,2.5,3".into())
        .split(',')
        .map(|v| {
            v.trim()
                .parse()
                .expect("MULTIPLIERS: comma-separated numbers")
        })
        .collect();
    let alones: Vec<f64> = std::env::var("ALONE")
        .unwrap_or_else(|_| "0,0.001,0.0001".into())
        .split(',')
        .map(|v| v.trim().parse().expect("ALONE: comma-separated numbers"))
        .collect();
    let routines: Vec<f64> = std::env::var("ROUTINE")
        .unwrap_or_else(|_| "0,1.5".into())
        .split(',')
        .map(|v| v.trim().parse().expect("ROUTINE: comma-separated numbers"))
        .collect();
    // The peak factor matters only with the relative floor.
    let floors: Vec<(f64, f64)> = relative
        .iter()
        .flat_map(|&r| {
            if r > 0.0 {
                peaks.iter().map(|&p| (r, p)).collect()
            } else {
                vec![(0.0, 0.0)]
            }
        })
        .collect();
    let mut out = Vec::new();
    for &multiplier in &multipliers {
        for &sustained in &[1, 2] {
            for &min_effect in &[3.0, 6.0] {
                for &(min_effect_relative, min_effect_peak_factor) in &floors {
                    for &cooldown in &[2 * HOUR, 6 * HOUR, 24 * HOUR] {
                        for &rebaseline_after in &[0, 2 * HOUR] {
                            for &likelihood in &[0.0, 0.05, 0.02, 0.01, 0.003] {
                                for (likelihood_alone, routine_factor) in alones
                                    .iter()
                                    .copied()
                                    .flat_map(|a| routines.iter().map(move |&r| (a, r)))
                                {
                                    out.push(DecisionSettings {
                                        multiplier,
                                        sustained,
                                        min_effect,
                                        min_effect_relative,
                                        min_effect_peak_factor,
                                        direction: Side::Both,
                                        calibrate: false,
                                        clear_after: HOUR / 2,
                                        cooldown,
                                        rebaseline_after,
                                        likelihood,
                                        likelihood_alone,
                                        routine_factor,
                                    });
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    out
}

pub(crate) fn describe(c: &Candidate) -> String {
    let s = &c.decision;
    format!(
        "trend {} m {} N {} effect {} relative {} peak {} calib {} clear {} cooldown {} rebaseline {} likelihood {} alone {} routine {}",
        c.trend.as_str(),
        s.multiplier,
        s.sustained,
        s.min_effect,
        s.min_effect_relative,
        s.min_effect_peak_factor,
        s.calibrate,
        s.clear_after,
        s.cooldown,
        s.rebaseline_after,
        s.likelihood,
        s.likelihood_alone,
        s.routine_factor
    )
}

/// A knob of the grid: its name and how to read it off a candidate.
pub(crate) type Knob<'a> = (&'a str, &'a dyn Fn(&Candidate) -> f64);
