//! Aggregation and output: the table, JSON records, and an SVG bar chart of ratios.

use std::fmt::Write as _;
use std::time::Duration;

/// All samples of one workload on one runtime.
pub(crate) struct Record {
    pub(crate) workload: String,
    pub(crate) runtime: String,
    pub(crate) samples: Vec<Duration>,
    /// Medians of the workload's own figures.
    pub(crate) extra: Vec<(&'static str, f64)>,
}

impl Record {
    fn sorted(&self) -> Vec<Duration> {
        let mut s = self.samples.clone();
        s.sort();
        s
    }
    pub(crate) fn median(&self) -> Duration {
        let s = self.sorted();
        s[s.len() / 2]
    }
    pub(crate) fn min(&self) -> Duration {
        self.sorted()[0]
    }
    pub(crate) fn max(&self) -> Duration {
        *self.sorted().last().unwrap()
    }
    /// The figure compared across runtimes: bytes per task for idle_memory, p99 lateness for
    /// the timer-lateness workloads, else the median time.
    pub(crate) fn score(&self) -> f64 {
        let extra = |name: &str| self.extra.iter().find(|(k, _)| *k == name).map(|(_, v)| *v);
        extra("bytes_per_task")
            .or_else(|| extra("p99_ns"))
            .unwrap_or(self.median().as_nanos() as f64)
    }
}

/// The tokio runtime that `runtime` is compared with.
pub(crate) fn baseline_of(runtime: &str) -> &'static str {
    if runtime.ends_with("-ct") {
        "tokio-ct"
    } else {
        "tokio-mt"
    }
}

pub(crate) fn ratio(records: &[Record], r: &Record) -> Option<f64> {
    let base = records
        .iter()
        .find(|b| b.workload == r.workload && b.runtime == baseline_of(&r.runtime))?;
    Some(r.score() / base.score())
}

fn fmt_dur(d: Duration) -> String {
    let ns = d.as_nanos() as f64;
    if ns >= 1e9 {
        format!("{:.2} s", ns / 1e9)
    } else if ns >= 1e6 {
        format!("{:.2} ms", ns / 1e6)
    } else {
        format!("{:.1} µs", ns / 1e3)
    }
}

pub(crate) fn table(records: &[Record]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "| workload | runtime | median | min | max | extra | ratio to tokio |\n|---|---|---:|---:|---:|---:|---:|"
    );
    for r in records {
        let extra = r
            .extra
            .iter()
            .map(|(k, v)| format!("{k} {v:.0}"))
            .collect::<Vec<_>>()
            .join(", ");
        let ratio = ratio(records, r)
            .map(|x| format!("{x:.2} ({})", baseline_of(&r.runtime)))
            .unwrap_or_else(|| "-".into());
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} |",
            r.workload,
            r.runtime,
            fmt_dur(r.median()),
            fmt_dur(r.min()),
            fmt_dur(r.max()),
            extra,
            ratio
        );
    }
    out
}

pub(crate) fn json(records: &[Record]) -> String {
    let mut out = String::from("[\n");
    for (i, r) in records.iter().enumerate() {
        let _ = write!(
            out,
            "  {{\"workload\": \"{}\", \"runtime\": \"{}\", \"median_ns\": {}, \"min_ns\": {}, \"max_ns\": {}, \"samples\": {}",
            r.workload,
            r.runtime,
            r.median().as_nanos(),
            r.min().as_nanos(),
            r.max().as_nanos(),
            r.samples.len()
        );
        for (k, v) in &r.extra {
            let _ = write!(out, ", \"{k}\": {v:.1}");
        }
        if let Some(x) = ratio(records, r) {
            let _ = write!(out, ", \"ratio_to_tokio\": {x:.4}");
        }
        out.push('}');
        out.push_str(if i + 1 < records.len() { ",\n" } else { "\n" });
    }
    out.push_str("]\n");
    out
}

/// Horizontal bars: each runtime's ratio to tokio per workload, with a line at 1.0.
pub(crate) fn svg(records: &[Record]) -> String {
    let bars: Vec<(&Record, f64)> = records
        .iter()
        .filter_map(|r| ratio(records, r).map(|x| (r, x)))
        .collect();
    let max = bars
        .iter()
        .map(|(_, x)| *x)
        .fold(1.0f64, f64::max)
        .min(10.0);
    let (left, width, row) = (260.0, 520.0, 18.0);
    let mut y = 40.0;
    let mut body = String::new();
    let mut last = "";
    for (r, x) in &bars {
        if r.workload != last {
            y += 10.0;
            let _ = writeln!(
                body,
                "<text x=\"8\" y=\"{y}\" font-weight=\"bold\">{}</text>",
                r.workload
            );
            y += row;
            last = &r.workload;
        }
        let w = (x.min(max) / max) * width;
        let color = if r.runtime.starts_with("tokio") {
            "#999"
        } else if r.runtime.starts_with("smol") {
            "#c90"
        } else {
            "#36c"
        };
        let _ = writeln!(
            body,
            "<text x=\"24\" y=\"{}\">{}</text><rect x=\"{left}\" y=\"{}\" width=\"{w:.1}\" height=\"{}\" fill=\"{color}\"/><text x=\"{:.1}\" y=\"{}\">{x:.2}</text>",
            y + 12.0,
            r.runtime,
            y,
            row - 4.0,
            left + w + 4.0,
            y + 12.0
        );
        y += row;
    }
    let one = left + width / max;
    format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{}\" font-family=\"sans-serif\" font-size=\"12\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"8\" y=\"20\" font-size=\"14\">Median (idle_memory: bytes per task; timer lateness: p99) relative to tokio; lower is better</text>\n\
         {body}<line x1=\"{one:.1}\" y1=\"30\" x2=\"{one:.1}\" y2=\"{y}\" stroke=\"black\" stroke-dasharray=\"4\"/>\n</svg>\n",
        left + width + 80.0,
        y + 10.0
    )
}
