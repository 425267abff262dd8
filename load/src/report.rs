//! `report.md`: a run's analysis in one page — what was offered and achieved, where every span
//! went, responses by status, latency, scenarios, thresholds, resources and recommendations —
//! rendered from `summary.json`'s figures (pure).

use std::fmt::Write as _;

use crate::exec::Summary;

fn row(cells: &[String]) -> String {
    format!("| {} |\n", cells.join(" | "))
}

fn table(out: &mut String, head: &[&str], rows: &[Vec<String>]) {
    out.push_str(&row(&head.iter().map(|h| (*h).to_owned()).collect::<Vec<_>>()));
    out.push_str(&row(&head.iter().map(|_| "---".to_owned()).collect::<Vec<_>>()));
    for r in rows {
        out.push_str(&row(r));
    }
    out.push('\n');
}

/// The report of one run.
pub fn markdown(s: &Summary) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "# Load run: {}\n", s.plan);
    let _ = writeln!(
        out,
        "Pipeline `{}` against `{}`, seed {}, {:.1} s{}{}.\n",
        s.pipeline,
        s.target,
        s.seed,
        s.elapsed_s,
        if s.segment.count > 1 { format!(", segment {}/{}", s.segment.index, s.segment.count) } else { String::new() },
        if s.interrupted { ", **interrupted** (Ctrl-C)" } else { "" }
    );
    let it = &s.iterations;
    let ok = it.by_status.get(&crate::run::Status::Ok).map_or(0, |t| t.iterations);
    out.push_str("## Iterations\n\n");
    table(
        &mut out,
        &["offered", "started", "missed", "ended 2xx", "ended otherwise"],
        &[vec![
            it.offered.to_string(),
            it.started.to_string(),
            it.missed.to_string(),
            ok.to_string(),
            (it.by_status.values().map(|t| t.iterations).sum::<u64>() - ok).to_string(),
        ]],
    );
    let sp = &s.spans;
    out.push_str("## Spans\n\n");
    table(
        &mut out,
        &["generated", "accepted", "rejected", "dropped", "failed", "unfinished", "the target counted"],
        &[vec![
            sp.generated.to_string(),
            sp.accepted.to_string(),
            sp.rejected.to_string(),
            sp.dropped.values().sum::<u64>().to_string(),
            sp.failed.values().sum::<u64>().to_string(),
            sp.unfinished.to_string(),
            sp.target_accepted.map_or("-".into(), |n| n.to_string()),
        ]],
    );
    out.push_str("## Responses by status\n\n");
    let statuses: Vec<Vec<String>> = it
        .by_status
        .iter()
        .map(|(status, t)| {
            let name =
                serde_json::to_value(status).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default();
            vec![name, t.iterations.to_string(), t.spans.to_string()]
        })
        .collect();
    table(&mut out, &["status", "iterations", "spans"], &statuses);
    out.push_str("## Latency from due time (ms)\n\n");
    let l = &s.latency_ms;
    table(
        &mut out,
        &["p50", "p90", "p95", "p99", "max"],
        &[[l.p50, l.p90, l.p95, l.p99, l.max].iter().map(|v| format!("{v:.2}")).collect()],
    );
    out.push_str("## Scenarios\n\n");
    let scenarios: Vec<Vec<String>> = s
        .scenarios
        .iter()
        .map(|c| {
            vec![
                c.name.clone(),
                format!("{}", c.weight),
                c.iterations.to_string(),
                c.spans.to_string(),
                c.bytes.to_string(),
                format!("{:.2}", c.latency_ms.p99),
            ]
        })
        .collect();
    table(&mut out, &["scenario", "weight", "iterations", "spans", "bytes", "p99 ms"], &scenarios);
    if !s.thresholds.is_empty() {
        out.push_str("## Thresholds\n\n");
        let rows: Vec<Vec<String>> = s
            .thresholds
            .iter()
            .map(|v| {
                vec![
                    format!("`{}`", v.threshold.expr),
                    format!("{:.4}", v.value),
                    if v.passed { "held" } else { "**breached**" }.into(),
                ]
            })
            .collect();
        table(&mut out, &["threshold", "value", "verdict"], &rows);
    }
    let r = &s.resources;
    out.push_str("## Resources\n\n");
    let _ = writeln!(
        out,
        "Generator: peak {:.2} of {:.0} cores. Target: {}.\n",
        r.generator_peak_cpu_cores,
        r.generator_cores_available,
        match (r.target_peak_cpu_cores, r.target_peak_rss_bytes) {
            (Some(c), Some(b)) => format!("peak {c:.2} cores, {:.1} MB resident", b as f64 / 1e6),
            _ => "not watched".into(),
        }
    );
    for a in &r.alerts {
        let _ = writeln!(out, "- {} {} at {:.1} s: {:.0}% of its limit", a.resource, a.level, a.t, a.fraction * 100.0);
    }
    out.push_str("\n## Recommendations\n\n");
    if s.recommendations.is_empty() {
        out.push_str("None: nothing dropped, refused or throttled, and the generator kept up.\n");
    }
    for a in &s.recommendations {
        let _ = writeln!(out, "- **{}**: {}", a.code, a.text);
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
