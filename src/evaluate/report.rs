//! Evaluation outputs: scored CSVs, the text report, `evaluation.json` and PNGs.

use std::{
    fmt::Write as _,
    io::Write as _,
    path::{Path, PathBuf},
};

use plotters::style::{RGBColor, BLUE, GREEN, RED};
use serde::Serialize;

use super::{EvalOptions, EvaluateError, Evaluation, Metrics, ScoredSeries};
use crate::{
    config::Settings,
    dataset::format_ts,
    evaluate::metrics::{EventMetrics, PointMetrics},
    plots::{self, Line, Overview},
};

fn io_err(path: &Path) -> impl Fn(std::io::Error) -> EvaluateError + '_ {
    move |source| EvaluateError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Writes one scored CSV: every row of the series; rows of the learning
/// period have empty forecast fields, `phase=learn` and are never flagged.
/// `alert` is the alert state, `alert_onset` and `alert_resolved` its
/// events; `lower_threshold`/`upper_threshold` the band the decision path
/// judged against (moved by an accepted level shift, calibrated, scaled).
pub fn write_scored_csv(path: &Path, s: &ScoredSeries) -> Result<(), EvaluateError> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io_err(dir))?;
    }
    let f = std::fs::File::create(path).map_err(io_err(path))?;
    let mut w = std::io::BufWriter::new(f);
    let has_labels = s.labels.is_some();
    let mut header =
        "timestamp,value,yhat,yhat_lower,yhat_upper,lower_threshold,upper_threshold,score,is_anomaly,severity,alert,alert_onset,alert_resolved,phase"
            .to_string();
    if has_labels {
        header.push_str(",label");
    }
    writeln!(w, "{header}").map_err(io_err(path))?;
    for i in 0..s.timestamps.len() {
        let mut line = format!("{},{}", format_ts(s.timestamps[i]), s.values[i]);
        if i < s.first_scored && i < s.learn_forecast.len() {
            // In-sample fit: shown for reference, never flagged.
            let f = &s.learn_forecast;
            let _ = write!(
                line,
                ",{:.6},{:.6},{:.6},,,{:.4},false,,false,false,false,learn",
                f.yhat[i],
                f.lower[i],
                f.upper[i],
                crate::detect::Detector::new(1.0)
                    .check(s.values[i], f.yhat[i], f.lower[i], f.upper[i])
                    .score
            );
        } else if i < s.first_scored {
            line.push_str(",,,,,,,false,,false,false,false,learn");
        } else {
            let k = i - s.first_scored;
            let v = &s.verdicts[k];
            let d = &v.detection;
            let _ = write!(
                line,
                ",{:.6},{:.6},{:.6},{:.6},{:.6},{:.4},{},{},{},{},{},score",
                s.forecast.yhat[k],
                s.forecast.lower[k],
                s.forecast.upper[k],
                d.lower_threshold,
                d.upper_threshold,
                d.score,
                d.is_anomaly,
                d.severity.as_str(),
                v.alert,
                v.onset,
                v.resolved
            );
        }
        if let Some(l) = &s.labels {
            line.push_str(if l[i] { ",1" } else { ",0" });
        }
        writeln!(w, "{line}").map_err(io_err(path))?;
    }
    w.flush().map_err(io_err(path))
}

/// A series' metrics without curve points (for the JSON file).
#[derive(Debug, Serialize)]
struct MetricsSummary<'a> {
    series: &'a str,
    points: usize,
    point: PointMetrics,
    roc_auc: f64,
    pr_auc: f64,
    event: Option<EventMetrics>,
    flag_event: Option<EventMetrics>,
    nab: Option<super::NabScores>,
    flag_nab: Option<super::NabScores>,
    sweep: &'a [super::SweepPoint],
}

impl<'a> From<&'a Metrics> for MetricsSummary<'a> {
    fn from(m: &'a Metrics) -> Self {
        MetricsSummary {
            series: &m.series,
            points: m.points,
            point: m.point,
            roc_auc: m.roc.area,
            pr_auc: m.pr.area,
            event: m.event,
            flag_event: m.flag_event,
            nab: m.nab,
            flag_nab: m.flag_nab,
            sweep: &m.sweep,
        }
    }
}

/// The decision settings as the JSON report shows them.
#[derive(Debug, Serialize)]
struct Decision {
    min_effect: f64,
    min_effect_relative: f64,
    min_effect_peak_factor: f64,
    alert_direction: &'static str,
    band_calibration: bool,
    alert_clear_after: i64,
    alert_cooldown: i64,
    rebaseline_after: i64,
    alert_likelihood: f64,
    alert_likelihood_alone: f64,
    alert_routine_factor: f64,
}

#[derive(Debug, Serialize)]
struct JsonReport<'a> {
    protocol: &'a str,
    dataset: String,
    labels: Option<String>,
    threshold_multiplier: f64,
    sustained_samples: u32,
    decision: Decision,
    interval_width: f64,
    train_fraction: f64,
    retrain_every_seconds: Option<i64>,
    seed: u64,
    total: MetricsSummary<'a>,
    per_series: Vec<MetricsSummary<'a>>,
    total_roc_curve: &'a [(f64, f64)],
    total_pr_curve: &'a [(f64, f64)],
}

fn fmt_f(v: f64) -> String {
    if v.is_nan() {
        "   -  ".into()
    } else {
        format!("{v:.3}")
    }
}

/// The text table printed and saved as `evaluation_report.txt`.
pub fn render_table(e: &Evaluation, settings: &Settings, opts: &EvalOptions) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "cpu-anomaly evaluation ({} protocol)", e.protocol);
    let _ = writeln!(
        o,
        "dataset {} | threshold_multiplier {} | sustained_samples {} | interval_width {} | {}",
        opts.dataset.display(),
        settings.threshold_multiplier,
        settings.sustained_samples,
        settings.prophet.interval_width,
        if e.protocol == "labelled" {
            format!(
                "learn on first {:.0} %, retrain {}",
                100.0
                    * opts
                        .train_fraction
                        .unwrap_or(super::DEFAULT_LABELLED_TRAIN_FRACTION),
                match opts.retrain_every {
                    None => format!("every {} s", settings.retrain_interval.as_secs()),
                    Some(0) => "never".into(),
                    Some(s) => format!("every {s} s"),
                }
            )
        } else {
            format!(
                "fit on first {:.0} %, seed {}",
                100.0 * settings.train_ratio,
                opts.seed
            )
        }
    );
    let _ = writeln!(o);
    let windowed = e.total.event.is_some();
    let _ = write!(
        o,
        "{:<52} {:>6} {:>6} {:>6} {:>6} {:>6} {:>6}",
        "series", "points", "P", "R", "F1", "ROCAUC", "PRAUC"
    );
    if windowed {
        let _ = write!(
            o,
            " {:>4} {:>4} {:>4} {:>4} {:>6} {:>6} {:>6}",
            "win", "hit", "ev", "fp", "evP", "winR", "evF1"
        );
    }
    let _ = writeln!(o);
    for m in e.per_series.iter().chain(std::iter::once(&e.total)) {
        let _ = write!(
            o,
            "{:<52} {:>6} {:>6} {:>6} {:>6} {:>6} {:>6}",
            m.series,
            m.points,
            fmt_f(m.point.precision),
            fmt_f(m.point.recall),
            fmt_f(m.point.f1),
            fmt_f(m.roc.area),
            fmt_f(m.pr.area)
        );
        if let Some(ev) = m.event {
            let _ = write!(
                o,
                " {:>4} {:>4} {:>4} {:>4} {:>6} {:>6} {:>6}",
                ev.windows,
                ev.hit,
                ev.events,
                ev.fp_events,
                fmt_f(ev.precision),
                fmt_f(ev.recall),
                fmt_f(ev.f1)
            );
        }
        let _ = writeln!(o);
    }
    let t = &e.total.point;
    let _ = writeln!(o);
    let _ = writeln!(
        o,
        "Total confusion matrix: TP {} FP {} TN {} FN {} | specificity {:.4} FPR {:.4} FNR {:.4}",
        t.tp, t.fp, t.tn, t.fn_, t.specificity, t.fpr, t.fnr
    );
    let _ = writeln!(o, "Threshold sweep (totals):");
    let _ = write!(o, "  {:>6} {:>6} {:>6} {:>6}", "m", "P", "R", "F1");
    if windowed {
        let _ = write!(
            o,
            " {:>6} {:>6} {:>6} {:>5} {:>9}",
            "evP", "winR", "evF1", "ev", "flagEvF1"
        );
    }
    let _ = writeln!(o);
    for s in &e.total.sweep {
        let _ = write!(
            o,
            "  {:>6.2} {:>6} {:>6} {:>6}",
            s.multiplier,
            fmt_f(s.point.precision),
            fmt_f(s.point.recall),
            fmt_f(s.point.f1)
        );
        if let (Some(ev), Some(fe)) = (s.event, s.flag_event) {
            let _ = write!(
                o,
                " {:>6} {:>6} {:>6} {:>5} {:>9}",
                fmt_f(ev.precision),
                fmt_f(ev.recall),
                fmt_f(ev.f1),
                ev.events,
                fmt_f(fe.f1)
            );
        }
        let _ = writeln!(o);
    }
    if let (Some(n), Some(f)) = (e.total.nab, e.total.flag_nab) {
        let _ = writeln!(
            o,
            "NAB score, alert onsets: standard {:.1}, reward_low_FP {:.1}, reward_low_FN {:.1} \
             ({} windows detected, {} missed, {} onsets outside windows)",
            n.standard, n.reward_low_fp, n.reward_low_fn, n.counts.tp, n.counts.fn_, n.counts.fp
        );
        let _ = writeln!(
            o,
            "NAB score, raw flags:   standard {:.1}, reward_low_FP {:.1}, reward_low_FN {:.1} \
             ({} flagged samples outside windows)",
            f.standard, f.reward_low_fp, f.reward_low_fn, f.counts.fp
        );
    }
    if let (Some(ev), Some(fe)) = (e.total.event, e.total.flag_event) {
        let _ = writeln!(
            o,
            "Event-level, raw flags: F1 {:.3} (precision {:.3}, window recall {:.3})",
            fe.f1, fe.precision, fe.recall
        );
        let _ = writeln!(
            o,
            "Event-level F1 {:.3} (precision {:.3}, window recall {:.3})",
            ev.f1, ev.precision, ev.recall
        );
    } else {
        let _ = writeln!(
            o,
            "Point-level F1 {:.3} (precision {:.3}, recall {:.3})",
            t.f1, t.precision, t.recall
        );
    }
    o
}

fn overview(path: &Path, s: &ScoredSeries) -> Result<(), EvaluateError> {
    let lower: Vec<f64> = s.detections.iter().map(|d| d.lower_threshold).collect();
    let upper: Vec<f64> = s.detections.iter().map(|d| d.upper_threshold).collect();
    let flags: Vec<bool> = s.detections.iter().map(|d| d.is_anomaly).collect();
    plots::overview_plot(
        path,
        &format!("{}: detections vs labelled anomalies", s.name),
        s.unit.label(),
        &Overview {
            timestamps: &s.timestamps,
            values: &s.values,
            first_scored: s.first_scored,
            yhat: &s.forecast.yhat,
            lower: &lower,
            upper: &upper,
            flags: &flags,
            labels: s.labels.as_deref(),
        },
    )?;
    Ok(())
}

/// Writes every output and prints the table; returns the files written.
pub fn write_all(
    e: &Evaluation,
    settings: &Settings,
    opts: &EvalOptions,
    directory_run: bool,
) -> Result<Vec<PathBuf>, EvaluateError> {
    let out = &opts.output_dir;
    std::fs::create_dir_all(out).map_err(io_err(out))?;
    let mut files = Vec::new();
    for s in &e.series {
        let (csv, png) = if directory_run {
            let csv = out.join(&s.name);
            let png = csv.with_extension("overview.png");
            (csv, png)
        } else {
            (out.join("scored.csv"), out.join("detection_overview.png"))
        };
        write_scored_csv(&csv, s)?;
        files.push(csv);
        if !opts.no_plots {
            overview(&png, s)?;
            files.push(png);
        }
    }
    let table = render_table(e, settings, opts);
    print!("{table}");
    let report = out.join("evaluation_report.txt");
    std::fs::write(&report, &table).map_err(io_err(&report))?;
    files.push(report);
    let json = JsonReport {
        protocol: e.protocol,
        dataset: opts.dataset.display().to_string(),
        labels: opts.labels.as_ref().map(|p| p.display().to_string()),
        threshold_multiplier: settings.threshold_multiplier,
        sustained_samples: settings.sustained_samples,
        decision: Decision {
            min_effect: settings.decision.min_effect,
            min_effect_relative: settings.decision.min_effect_relative,
            min_effect_peak_factor: settings.decision.min_effect_peak_factor,
            alert_direction: settings.decision.direction.as_str(),
            band_calibration: settings.decision.calibrate,
            alert_clear_after: settings.decision.clear_after,
            alert_cooldown: settings.decision.cooldown,
            rebaseline_after: settings.decision.rebaseline_after,
            alert_likelihood: settings.decision.likelihood,
            alert_likelihood_alone: settings.decision.likelihood_alone,
            alert_routine_factor: settings.decision.routine_factor,
        },
        interval_width: settings.prophet.interval_width,
        train_fraction: if e.protocol == "labelled" {
            opts.train_fraction
                .unwrap_or(super::DEFAULT_LABELLED_TRAIN_FRACTION)
        } else {
            settings.train_ratio
        },
        retrain_every_seconds: match opts.retrain_every {
            None => Some(settings.retrain_interval.as_secs() as i64),
            Some(0) => None,
            s => s,
        },
        seed: opts.seed,
        total: MetricsSummary::from(&e.total),
        per_series: e.per_series.iter().map(MetricsSummary::from).collect(),
        total_roc_curve: &e.total.roc.points,
        total_pr_curve: &e.total.pr.points,
    };
    let jpath = out.join("evaluation.json");
    let text = serde_json::to_string_pretty(&json)
        .map_err(|e| io_err(&jpath)(std::io::Error::other(e)))?;
    std::fs::write(&jpath, text + "\n").map_err(io_err(&jpath))?;
    files.push(jpath);
    if !opts.no_plots {
        files.extend(summary_plots(e, out)?);
    }
    Ok(files)
}

fn summary_plots(e: &Evaluation, out: &Path) -> Result<Vec<PathBuf>, EvaluateError> {
    let t = &e.total;
    let cm = out.join("confusion_matrix.png");
    plots::confusion_plot(
        &cm,
        "Confusion matrix (all scored points)",
        t.point.tp,
        t.point.fp,
        t.point.tn,
        t.point.fn_,
    )?;
    let roc = out.join("roc_curve.png");
    plots::lines_plot(
        &roc,
        &format!("ROC curve (AUC {})", fmt_f(t.roc.area)),
        ("false positive rate", "true positive rate"),
        (0.0, 1.0),
        (0.0, 1.0),
        &[Line {
            name: "detector score".into(),
            points: t.roc.points.clone(),
            color: BLUE,
        }],
        true,
    )?;
    let pr = out.join("precision_recall_curve.png");
    plots::lines_plot(
        &pr,
        &format!("Precision-recall curve (AP {})", fmt_f(t.pr.area)),
        ("recall", "precision"),
        (0.0, 1.0),
        (0.0, 1.02),
        &[Line {
            name: "detector score".into(),
            points: t.pr.points.clone(),
            color: BLUE,
        }],
        false,
    )?;
    let xs: Vec<f64> = t.sweep.iter().map(|s| s.multiplier).collect();
    let line = |name: &str, f: &dyn Fn(&super::SweepPoint) -> f64, color: RGBColor| Line {
        name: name.into(),
        points: xs.iter().copied().zip(t.sweep.iter().map(f)).collect(),
        color,
    };
    let mut lines = vec![
        line("point precision", &|s| s.point.precision, BLUE),
        line("point recall", &|s| s.point.recall, GREEN),
        line("point F1", &|s| s.point.f1, RED),
    ];
    if t.event.is_some() {
        let purple = RGBColor(128, 0, 160);
        lines.push(line(
            "event F1",
            &|s| s.event.map(|e| e.f1).unwrap_or(0.0),
            purple,
        ));
    }
    let th = out.join("threshold_analysis.png");
    plots::lines_plot(
        &th,
        "Metrics vs threshold_multiplier",
        ("threshold_multiplier", "metric"),
        (xs[0], xs[xs.len() - 1]),
        (0.0, 1.02),
        &lines,
        false,
    )?;
    Ok(vec![cm, roc, pr, th])
}
