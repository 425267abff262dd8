//! A Markdown summary for `$GITHUB_STEP_SUMMARY`: counts, problems, the slowest tests.

use std::fmt::Write as _;

use super::{RunInfo, json::counts};
use crate::outcome::TestReport;

/// Renders the summary.
pub fn render(run: &RunInfo, reports: &[TestReport]) -> String {
    let mut out = String::new();
    let title = if run.binary.is_empty() { "reliability" } else { &run.binary };
    let _ = writeln!(out, "### {title}: {} tests in {:.1}s\n", reports.len(), run.duration_seconds);
    let _ = writeln!(out, "| outcome | tests |\n|---|---:|");
    for (outcome, n) in counts(reports) {
        let _ = writeln!(out, "| {outcome} | {n} |");
    }
    let problems: Vec<&TestReport> = reports.iter().filter(|r| r.outcome.is_failure(false)).collect();
    if !problems.is_empty() {
        let _ = writeln!(out, "\n**Failures**\n");
        for r in problems {
            let first = r.outcome.describe();
            let first = first.lines().next().unwrap_or_default().replace('|', "\\|");
            let _ = writeln!(out, "- `{}`: {} — {first}", r.name, r.outcome.label());
        }
    }
    let mut slow: Vec<(&str, f64)> =
        reports.iter().filter_map(|r| r.attempts.last().map(|a| (&*r.name, a.phases.total().as_secs_f64()))).collect();
    slow.sort_by(|a, b| b.1.total_cmp(&a.1));
    if !slow.is_empty() {
        let _ = writeln!(out, "\n| slowest | seconds |\n|---|---:|");
        for (name, secs) in slow.iter().take(5) {
            let _ = writeln!(out, "| `{name}` | {secs:.3} |");
        }
    }
    out
}
