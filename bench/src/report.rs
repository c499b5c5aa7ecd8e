//! The figures of one run, as text, as JSON and as an HdrHistogram percentile plot (SVG).

use std::{collections::BTreeMap, fmt::Write as _, path::Path};

use anyhow::Context as _;
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::load::{Mode, Plan};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Latency {
    pub mean: f64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p99_9: f64,
    pub max: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    /// What ran, e.g. `reserve production 16 clients`.
    pub label: String,
    /// `closed` or `open`.
    pub mode: String,
    pub clients: Option<usize>,
    pub target_rate: Option<f64>,
    pub measured_secs: f64,
    pub warmup_secs: f64,
    /// Operations intended inside the measured window.
    pub requests: u64,
    pub ok: u64,
    pub errors: u64,
    /// Successful operations per second over the measured window.
    pub throughput: f64,
    /// Milliseconds; for an open-loop run, from each request's intended send time.
    pub latency_ms: Latency,
    /// Each outcome (HTTP status, error kind) and how many.
    pub outcomes: BTreeMap<String, u64>,
    /// (quantile, milliseconds) points of the percentile curve, for plots.
    pub curve: Vec<(f64, f64)>,
    pub finished_at: String,
}

fn ms(micros: u64) -> f64 {
    micros as f64 / 1000.0
}

impl Report {
    pub fn new(
        plan: &Plan,
        measured_secs: f64,
        histogram: &Histogram<u64>,
        outcomes: BTreeMap<String, (bool, u64)>,
    ) -> Self {
        let ok: u64 = outcomes
            .values()
            .filter(|(ok, _)| *ok)
            .map(|(_, n)| n)
            .sum();
        let requests: u64 = outcomes.values().map(|(_, n)| n).sum();
        let (mode, clients, target_rate) = match plan.mode {
            Mode::Closed { clients } => ("closed", Some(clients), None),
            Mode::Open { rate, .. } => ("open", None, Some(rate)),
        };
        let q = |q: f64| ms(histogram.value_at_quantile(q));
        let curve = if histogram.is_empty() {
            Vec::new()
        } else {
            histogram
                .iter_quantiles(4)
                .map(|v| (v.quantile_iterated_to(), ms(v.value_iterated_to())))
                .collect()
        };
        Self {
            label: plan.label.clone(),
            mode: mode.to_owned(),
            clients,
            target_rate,
            measured_secs,
            warmup_secs: plan.warmup.as_secs_f64(),
            requests,
            ok,
            errors: requests - ok,
            throughput: ok as f64 / measured_secs,
            latency_ms: Latency {
                mean: histogram.mean() / 1000.0,
                p50: q(0.5),
                p90: q(0.9),
                p99: q(0.99),
                p99_9: q(0.999),
                max: ms(histogram.max()),
            },
            outcomes: outcomes.into_iter().map(|(k, (_, n))| (k, n)).collect(),
            curve,
            finished_at: chrono::Utc::now().to_rfc3339(),
        }
    }

    pub fn print(&self) {
        let l = &self.latency_ms;
        let load = match (self.clients, self.target_rate) {
            (Some(c), _) => format!("closed loop, {c} clients"),
            (_, Some(r)) => format!("open loop, {r:.0}/s intended"),
            _ => String::new(),
        };
        println!(
            "{} ({load}, {:.1} s measured)",
            self.label, self.measured_secs
        );
        println!(
            "  throughput {:.1}/s   ok {}   errors {}",
            self.throughput, self.ok, self.errors
        );
        println!(
            "  latency ms  p50 {:.2}  p90 {:.2}  p99 {:.2}  p99.9 {:.2}  max {:.2}  (mean {:.2})",
            l.p50, l.p90, l.p99, l.p99_9, l.max, l.mean
        );
        let outcomes: Vec<String> = self
            .outcomes
            .iter()
            .map(|(k, n)| format!("{k}: {n}"))
            .collect();
        println!("  outcomes    {}", outcomes.join(", "));
    }

    pub fn write_json(&self, path: &Path) -> anyhow::Result<()> {
        std::fs::write(path, serde_json::to_vec_pretty(self)?)
            .with_context(|| format!("writing {}", path.display()))
    }

    pub fn read_json(path: &Path) -> anyhow::Result<Self> {
        let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        serde_json::from_slice(&bytes).with_context(|| format!("parsing {}", path.display()))
    }
}

/// The highest quantile plotted: 99.999% (x = 10^5).
const MAX_NINES: f64 = 5.0;
const COLOURS: [&str; 8] = [
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf",
];

/// Latency against percentile, the percentile axis in "nines" (log10 of 1/(1-p)), as
/// HdrHistogram's plotter draws it: the tail gets as much room as the median.
pub fn svg(title: &str, reports: &[Report]) -> String {
    let (w, h) = (900.0_f64, 520.0_f64);
    let (left, right, top, bottom) = (70.0, 230.0, 40.0, 50.0);
    let (pw, ph) = (w - left - right, h - top - bottom);
    let nines = |q: f64| (1.0 / (1.0 - q).max(1e-9)).log10().min(MAX_NINES);
    let y_max = nice_ceiling(
        reports
            .iter()
            .flat_map(|r| r.curve.iter().map(|(_, v)| *v))
            .fold(0.0, f64::max),
    );
    let x = |n: f64| left + pw * n / MAX_NINES;
    let y = |v: f64| top + ph * (1.0 - v / y_max);
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="sans-serif" font-size="12">"#
    );
    let _ = write!(s, r#"<rect width="{w}" height="{h}" fill="white"/>"#);
    let _ = write!(
        s,
        r#"<text x="{}" y="22" font-size="15" text-anchor="middle">{}</text>"#,
        left + pw / 2.0,
        escape(title)
    );
    for (i, label) in ["0%", "90%", "99%", "99.9%", "99.99%", "99.999%"]
        .iter()
        .enumerate()
    {
        let gx = x(i as f64);
        let _ = write!(
            s,
            r##"<line x1="{gx:.1}" y1="{top}" x2="{gx:.1}" y2="{:.1}" stroke="#ddd"/><text x="{gx:.1}" y="{:.1}" text-anchor="middle">{label}</text>"##,
            top + ph,
            top + ph + 18.0
        );
    }
    for i in 0..=5 {
        let v = y_max * f64::from(i) / 5.0;
        let gy = y(v);
        let _ = write!(
            s,
            r##"<line x1="{left}" y1="{gy:.1}" x2="{:.1}" y2="{gy:.1}" stroke="#ddd"/><text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"##,
            left + pw,
            left - 6.0,
            gy + 4.0,
            trim(v)
        );
    }
    let _ = write!(
        s,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">percentile</text><text transform="translate(18 {:.1}) rotate(-90)" text-anchor="middle">latency (ms)</text>"#,
        left + pw / 2.0,
        h - 10.0,
        top + ph / 2.0
    );
    for (i, report) in reports.iter().enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        let points: Vec<String> = report
            .curve
            .iter()
            .filter(|(q, _)| *q < 1.0 || report.curve.len() == 1)
            .map(|(q, v)| format!("{:.1},{:.1}", x(nines(*q)), y(*v)))
            .chain(
                // The maximum at the right edge, as the plotter does: it is the 100th percentile.
                Some(format!(
                    "{:.1},{:.1}",
                    x(MAX_NINES),
                    y(report.latency_ms.max)
                )),
            )
            .collect();
        let _ = write!(
            s,
            r#"<polyline fill="none" stroke="{colour}" stroke-width="2" points="{}"/>"#,
            points.join(" ")
        );
        let ly = top + 10.0 + 34.0 * i as f64;
        let _ = write!(
            s,
            r##"<rect x="{:.1}" y="{:.1}" width="14" height="4" fill="{colour}"/><text x="{:.1}" y="{:.1}">{}</text><text x="{:.1}" y="{:.1}" fill="#555">{:.0}/s, p99 {} ms</text>"##,
            left + pw + 14.0,
            ly - 4.0,
            left + pw + 34.0,
            ly,
            escape(&report.label),
            left + pw + 34.0,
            ly + 15.0,
            report.throughput,
            trim(report.latency_ms.p99)
        );
    }
    s.push_str("</svg>\n");
    s
}

fn nice_ceiling(v: f64) -> f64 {
    if v <= 0.0 {
        return 1.0;
    }
    let magnitude = 10f64.powf(v.log10().floor());
    [1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|m| m * magnitude)
        .find(|c| *c >= v)
        .unwrap_or(10.0 * magnitude)
}

fn trim(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}
