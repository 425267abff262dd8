//! The end-of-run summary, pytest style: grouped skip reasons, one line per failure, the
//! slowest phases (`--durations`), and `==== 3 passed, 1 failed, ... in 1.23s ====`.
//!
//! A reporter like the others: it reads the [`TestReport`]s of the run and knows nothing of
//! how they were produced.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use crate::outcome::{Outcome, TestReport};

/// What the summary needs beyond the reports.
#[derive(Debug, Default)]
pub struct Summary {
    /// Tests our selection removed.
    pub deselected: u64,
    /// Tests libtest's own filter removed.
    pub filtered_out: u64,
    /// Failed teardowns of session fixtures.
    pub session_errors: Vec<String>,
    /// Notes to print (cache warnings, `--lf` decisions).
    pub notes: Vec<String>,
    /// Wall time of the run.
    pub elapsed: Duration,
}

impl Summary {
    /// Counts by outcome, in display order, skipping zeros.
    pub fn counts(&self, reports: &[TestReport], flaky_fails: bool) -> Vec<(u64, &'static str)> {
        let mut counts: BTreeMap<&'static str, u64> = BTreeMap::new();
        for report in reports {
            // Failures of any kind count as failed (errors apart, as pytest does); the rest by
            // their own label.
            let key = match &report.outcome {
                Outcome::Error { .. } => "errors",
                o if o.is_failure(flaky_fails) => "failed",
                Outcome::NotRun { .. } => "not run",
                o => o.label(),
            };
            *counts.entry(key).or_default() += 1;
        }
        *counts.entry("deselected").or_default() += self.deselected + self.filtered_out;
        ["passed", "failed", "errors", "flaky", "skipped", "xfailed", "xpassed", "not run", "deselected"]
            .into_iter()
            .filter_map(|key| counts.get(key).filter(|n| **n > 0).map(|n| (*n, key)))
            .collect()
    }

    /// Renders the summary.
    pub fn render(&self, reports: &[TestReport], durations: Option<usize>, flaky_fails: bool) -> String {
        let mut out = String::new();
        if let Some(n) = durations {
            let mut phases: Vec<(Duration, &str, &str)> = reports
                .iter()
                .flat_map(|r| r.attempts.iter().map(move |a| (a, &*r.name)))
                .flat_map(|(a, name)| {
                    [
                        (a.phases.setup, "setup", name),
                        (a.phases.call, "call", name),
                        (a.phases.teardown, "teardown", name),
                    ]
                })
                .filter(|(d, ..)| !d.is_zero())
                .collect();
            phases.sort_by_key(|p| std::cmp::Reverse(p.0));
            let shown = if n == 0 { phases.len() } else { n.min(phases.len()) };
            let _ = writeln!(out, "slowest {shown} durations");
            for (duration, phase, name) in &phases[..shown] {
                let _ = writeln!(out, "{:.2}s {phase:<8} {name}", duration.as_secs_f64());
            }
        }
        let mut lines = Vec::new();
        let mut runtime_skips: BTreeMap<&str, usize> = BTreeMap::new();
        for report in reports {
            match &report.outcome {
                Outcome::Skipped { reason } => *runtime_skips.entry(reason).or_default() += 1,
                Outcome::Passed | Outcome::NotRun { .. } => {}
                other
                    if other.is_failure(flaky_fails)
                        || matches!(
                            other,
                            Outcome::XFailed { .. } | Outcome::Flaky { .. } | Outcome::XPassed { .. }
                        ) =>
                {
                    let tag = match other {
                        Outcome::Error { .. } => "ERROR",
                        Outcome::XFailed { .. } => "XFAIL",
                        Outcome::XPassed { .. } => "XPASS",
                        Outcome::Flaky { .. } => "FLAKY",
                        _ => "FAILED",
                    };
                    let first_line = other.describe().lines().next().unwrap_or_default().to_string();
                    lines.push(format!("{tag} {} - {first_line}", report.name));
                }
                _ => {}
            }
        }
        for (reason, n) in runtime_skips {
            lines.push(format!("SKIPPED [{n}] {reason}"));
        }
        if !lines.is_empty() {
            let _ = writeln!(out, "short test summary info");
            for line in lines {
                let _ = writeln!(out, "{line}");
            }
        }
        for note in &self.notes {
            let _ = writeln!(out, "{note}");
        }
        let parts: Vec<String> =
            self.counts(reports, flaky_fails).iter().map(|(n, what)| format!("{n} {what}")).collect();
        let body = if parts.is_empty() { "no tests ran".to_string() } else { parts.join(", ") };
        let _ = writeln!(out, "==== {body} in {:.2}s ====", self.elapsed.as_secs_f64());
        out
    }
}
