//! `report.md`: a run's analysis in one page — what was offered and achieved, where every span
//! went, responses by status, latency, scenarios, thresholds, resources and recommendations —
//! rendered from `summary.json`'s figures (pure).

use std::fmt::Write as _;

use crate::exec::Summary;

fn row(cells: &[String]) -> String {
    format!("| {} |\n", cells.join(" | "))
}

/// One part of the report: a title, a table (maybe empty) and lines of text under it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Section {
    /// Its title, also its anchor in `report.html` (lower-cased, spaces to dashes).
    pub title: &'static str,
    /// The table's head (no table when empty).
    pub head: Vec<&'static str>,
    /// The table's rows, plain text.
    pub rows: Vec<Vec<String>>,
    /// Lines under the table, plain text.
    pub lines: Vec<String>,
}

/// A status's name as `summary.json` spells it.
pub(crate) fn status_name(status: &crate::run::Status) -> String {
    serde_json::to_value(status).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
}

/// The run in one sentence.
pub fn intro(s: &Summary) -> String {
    format!(
        "Pipeline {} against {}, seed {}, {:.1} s{}{}.",
        s.pipeline,
        s.target,
        s.seed,
        s.elapsed_s,
        if s.segment.count > 1 { format!(", segment {}/{}", s.segment.index, s.segment.count) } else { String::new() },
        if s.interrupted { ", interrupted (Ctrl-C)" } else { "" }
    )
}

/// The report's parts, shared by `report.md` and `report.html`.
pub fn sections(s: &Summary) -> Vec<Section> {
    let it = &s.iterations;
    let ok = it.by_status.get(&crate::run::Status::Ok).map_or(0, |t| t.iterations);
    let sp = &s.spans;
    let l = &s.latency_ms;
    let mut out = vec![
        Section {
            title: "Iterations",
            head: vec!["offered", "started", "missed", "ended 2xx", "ended otherwise"],
            rows: vec![vec![
                it.offered.to_string(),
                it.started.to_string(),
                it.missed.to_string(),
                ok.to_string(),
                (it.by_status.values().map(|t| t.iterations).sum::<u64>() - ok).to_string(),
            ]],
            lines: Vec::new(),
        },
        Section {
            title: "Spans",
            head: vec!["generated", "accepted", "rejected", "dropped", "failed", "unfinished", "the target counted"],
            rows: vec![vec![
                sp.generated.to_string(),
                sp.accepted.to_string(),
                sp.rejected.to_string(),
                sp.dropped.values().sum::<u64>().to_string(),
                sp.failed.values().sum::<u64>().to_string(),
                sp.unfinished.to_string(),
                sp.target_accepted.map_or("-".into(), |n| n.to_string()),
            ]],
            lines: Vec::new(),
        },
        Section {
            title: "Responses by status",
            head: vec!["status", "iterations", "spans"],
            rows: it
                .by_status
                .iter()
                .map(|(status, t)| vec![status_name(status), t.iterations.to_string(), t.spans.to_string()])
                .collect(),
            lines: Vec::new(),
        },
        Section {
            title: "Latency from due time (ms)",
            head: vec!["p50", "p90", "p95", "p99", "max"],
            rows: vec![[l.p50, l.p90, l.p95, l.p99, l.max].iter().map(|v| format!("{v:.2}")).collect()],
            lines: Vec::new(),
        },
        Section {
            title: "Scenarios",
            head: vec!["scenario", "weight", "iterations", "spans", "bytes", "p50 ms", "p99 ms", "errors"],
            rows: s
                .scenarios
                .iter()
                .map(|c| {
                    let ok = c.by_status.get(&crate::run::Status::Ok).map_or(0, |t| t.iterations);
                    vec![
                        c.name.clone(),
                        format!("{}", c.weight),
                        c.iterations.to_string(),
                        c.spans.to_string(),
                        c.bytes.to_string(),
                        format!("{:.2}", c.latency_ms.p50),
                        format!("{:.2}", c.latency_ms.p99),
                        (c.iterations - ok).to_string(),
                    ]
                })
                .collect(),
            lines: Vec::new(),
        },
    ];
    if !s.thresholds.is_empty() {
        out.push(Section {
            title: "Thresholds",
            head: vec!["threshold", "value", "verdict"],
            rows: s
                .thresholds
                .iter()
                .map(|v| {
                    let verdict = if v.passed { "held" } else { "BREACHED" };
                    vec![v.threshold.expr.clone(), format!("{:.4}", v.value), verdict.into()]
                })
                .collect(),
            lines: Vec::new(),
        });
    }
    let r = &s.resources;
    let mut lines = vec![format!(
        "Generator: peak {:.2} of {:.0} cores. Target: {}.",
        r.generator_peak_cpu_cores,
        r.generator_cores_available,
        match (r.target_peak_cpu_cores, r.target_peak_rss_bytes) {
            (Some(c), Some(b)) => format!("peak {c:.2} cores, {:.1} MB resident", b as f64 / 1e6),
            _ => "not watched".into(),
        }
    )];
    lines.extend(
        r.alerts
            .iter()
            .map(|a| format!("{} {} at {:.1} s: {:.0}% of its limit", a.resource, a.level, a.t, a.fraction * 100.0)),
    );
    out.push(Section { title: "Resources", lines, ..Section::default() });
    let mut lines: Vec<String> = s.recommendations.iter().map(|a| format!("{}: {}", a.code, a.text)).collect();
    if lines.is_empty() {
        lines.push("None: nothing dropped, refused or throttled, and the generator kept up.".into());
    }
    out.push(Section { title: "Recommendations", lines, ..Section::default() });
    out
}

/// The report of one run.
pub fn markdown(s: &Summary) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "# Load run: {}\n\n{}\n", s.plan, intro(s));
    for section in sections(s) {
        let _ = writeln!(out, "## {}\n", section.title);
        if !section.head.is_empty() {
            out.push_str(&row(&section.head.iter().map(|h| (*h).to_owned()).collect::<Vec<_>>()));
            out.push_str(&row(&section.head.iter().map(|_| "---".to_owned()).collect::<Vec<_>>()));
            for r in &section.rows {
                out.push_str(&row(r));
            }
            out.push('\n');
        }
        for line in &section.lines {
            let _ = writeln!(out, "- {line}");
        }
        if !section.lines.is_empty() {
            out.push('\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The spans table's row carries the summary's figures, in its columns' order.
    #[test]
    fn tables_carry_the_figures() {
        let s = crate::advice::tests_support::summary();
        let md = markdown(&s);
        let lines: Vec<&str> = md.lines().collect();
        let at = lines.iter().position(|l| *l == "## Spans").unwrap_or_else(|| panic!("{md}"));
        let cells: Vec<&str> = lines[at + 4].trim_matches('|').split('|').map(str::trim).collect();
        assert_eq!(cells, ["10000", "10000", "0", "0", "0", "0", "-"]);
        let at = lines.iter().position(|l| *l == "## Iterations").unwrap_or_else(|| panic!("{md}"));
        let cells: Vec<&str> = lines[at + 4].trim_matches('|').split('|').map(str::trim).collect();
        assert_eq!(cells, ["1000", "1000", "0", "1000", "0"]);
    }
}
