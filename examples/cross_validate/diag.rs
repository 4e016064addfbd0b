//! Diagnostics of the chosen setting (`DIAG=1`, `DUMP=NAME:HOUR`).

use cpu_anomaly::forecast::FutureTrend;

use crate::{
    grid::Candidate,
    series::{verdicts, Dev},
};

/// `DIAG=1`: every alert onset of the chosen setting, per series: inside a
/// window (`IN`) or not (`FP`, hours from the nearest window), `@` hours
/// from the series' start, its residual
/// and forecast; and the windows no onset fell in.
pub(crate) fn diagnose(devs: &[Dev], c: &Candidate, interval_width: f64) {
    for d in devs {
        let v = verdicts(d, c, interval_width);
        let mut line = String::new();
        for (j, x) in v.iter().enumerate() {
            if !x.onset {
                continue;
            }
            let t = d.series.timestamps[d.first + j];
            let inside = d.windows.iter().any(|&(a, b)| a <= t && t <= b);
            let rel = d
                .windows
                .iter()
                .map(|&(a, b)| {
                    if t < a {
                        (t - a) as f64 / 3600.0
                    } else if t > b {
                        (t - b) as f64 / 3600.0
                    } else {
                        0.0
                    }
                })
                .min_by(|a, b| a.abs().total_cmp(&b.abs()))
                .unwrap_or(f64::NAN);
            let res = d.series.values[d.first + j] - x.yhat;
            line.push_str(&format!(
                " {}{:+.1}h@{:.0}h(r{:+.1},y{:.1})",
                if inside { "IN" } else { "FP" },
                rel,
                (t - d.series.timestamps[0]) as f64 / 3600.0,
                res,
                x.yhat
            ));
        }
        let missed: Vec<String> = d
            .windows
            .iter()
            .filter(|&&(a, b)| {
                !v.iter()
                    .enumerate()
                    .any(|(j, x)| x.onset && (a..=b).contains(&d.series.timestamps[d.first + j]))
            })
            .map(|&(a, _)| format!("{:.0}h", (a - d.series.timestamps[0]) as f64 / 3600.0))
            .collect();
        println!("{:>50}:{line}  missed {:?}", d.name, missed);
    }
}

/// `DUMP=NAME:HOUR`: sample by sample, ten hours either side of HOUR (from
/// the series' start), what the chosen setting's decision path saw.
pub(crate) fn dump(devs: &[Dev], c: &Candidate, interval_width: f64, spec: &str) {
    let (name, hour) = spec.split_once(':').expect("DUMP=NAME:HOUR");
    let hour: f64 = hour.parse().expect("DUMP=NAME:HOUR");
    let d = devs
        .iter()
        .find(|d| d.name.contains(name))
        .expect("DUMP: no such series");
    let (forecast, refits) = &d.forecasts[usize::from(c.trend == FutureTrend::Flat)];
    let mut dec = cpu_anomaly::detect::Decider::new(c.decision);
    let mut next = refits.iter().copied().peekable();
    for (j, &v) in d.series.values[d.first..].iter().enumerate() {
        while next.peek().is_some_and(|&r| r <= j) {
            dec.refitted();
            next.next();
        }
        let t = d.series.timestamps[d.first + j];
        let x = dec.update(
            t,
            v,
            forecast.yhat[j],
            forecast.lower[j],
            forecast.upper[j],
            interval_width,
        );
        let h = (t - d.series.timestamps[0]) as f64 / 3600.0;
        if (h - hour).abs() < 10.0 {
            let inw = d.windows.iter().any(|&(a, b)| a <= t && t <= b);
            println!("{h:7.2} {} v {v:7.2} yhat {:7.2} lo {:7.2} up {:7.2} score {:5.2} flag {} tail {:.4} alert {} onset {}", if inw {"W"} else {" "}, x.yhat, forecast.lower[j], forecast.upper[j], x.detection.score, u8::from(x.detection.is_anomaly), dec.tail(), u8::from(x.alert), u8::from(x.onset));
        }
    }
}
