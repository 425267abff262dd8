//! The comparison itself, free of IO: figures in, one verdict per bench out.

use serde::Serialize;

use super::config::Tier;

/// What the gate says of one bench.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Slower beyond the threshold (and, for wall time, significant in most rounds).
    Regressed,
    /// Faster beyond the threshold (and significant).
    Improved,
    /// Neither.
    Unchanged,
    /// Only the candidate has it: nothing to compare with.
    New,
}

impl Verdict {
    /// As printed in the table.
    pub fn label(self) -> &'static str {
        match self {
            Verdict::Regressed => "REGRESSED",
            Verdict::Improved => "improved",
            Verdict::Unchanged => "ok",
            Verdict::New => "new",
        }
    }
}

/// Criterion's comparison of one round: the relative change of the mean time and its
/// confidence interval (fractions: 0.1 is 10% slower).
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Change {
    /// Point estimate.
    pub estimate: f64,
    /// Lower bound of the interval.
    pub low: f64,
    /// Upper bound.
    pub high: f64,
}

impl Change {
    fn regressed(&self, threshold: f64) -> bool {
        self.estimate > threshold && self.low > 0.0
    }

    fn improved(&self, threshold: f64) -> bool {
        self.estimate < -threshold && self.high < 0.0
    }
}

/// One bench, both sides, and the verdict.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Row {
    /// The tier.
    pub tier: Tier,
    /// `group/function[/value]` (criterion) or `group/function/id` (gungraun).
    pub bench: String,
    /// Base figure (ns per iteration, or instructions), if the base has the bench.
    pub base: Option<f64>,
    /// Candidate figure.
    pub candidate: f64,
    /// The change taken for the verdict (the median round's, for wall time).
    pub change: Option<f64>,
    /// Its confidence interval (wall time only).
    pub interval: Option<(f64, f64)>,
    /// Rounds that regressed, of rounds run (wall time only).
    pub rounds_regressed: Option<(usize, usize)>,
    /// The threshold applied.
    pub threshold: f64,
    /// The verdict.
    pub verdict: Verdict,
}

/// Wall time: base and candidate means (of the rounds) and each round's change. Regressed
/// when more than half the rounds regressed; improved likewise; the change shown is the
/// median round's.
pub fn wall(bench: &str, base: Option<f64>, candidate: f64, rounds: &[Change], threshold: f64) -> Row {
    let mut sorted = rounds.to_vec();
    sorted.sort_by(|a, b| a.estimate.total_cmp(&b.estimate));
    let median = sorted.get(sorted.len() / 2).copied();
    let regressed = rounds.iter().filter(|c| c.regressed(threshold)).count();
    let improved = rounds.iter().filter(|c| c.improved(threshold)).count();
    let verdict = match (base, median) {
        (None, _) | (_, None) => Verdict::New,
        _ if 2 * regressed > rounds.len() => Verdict::Regressed,
        _ if 2 * improved > rounds.len() => Verdict::Improved,
        _ => Verdict::Unchanged,
    };
    Row {
        tier: Tier::Wall,
        bench: bench.to_string(),
        base,
        candidate,
        change: median.map(|c| c.estimate),
        interval: median.map(|c| (c.low, c.high)),
        rounds_regressed: median.map(|_| (regressed, rounds.len())),
        threshold,
        verdict,
    }
}

/// Instruction counts: deterministic, so the change is the verdict.
pub fn instructions(bench: &str, base: Option<f64>, candidate: f64, threshold: f64) -> Row {
    let change = base.filter(|b| *b > 0.0).map(|b| candidate / b - 1.0);
    let verdict = match change {
        None => Verdict::New,
        Some(c) if c > threshold => Verdict::Regressed,
        Some(c) if c < -threshold => Verdict::Improved,
        Some(_) => Verdict::Unchanged,
    };
    Row {
        tier: Tier::Instructions,
        bench: bench.to_string(),
        base,
        candidate,
        change,
        interval: None,
        rounds_regressed: None,
        threshold,
        verdict,
    }
}

/// Whether the gate fails.
pub fn failed(rows: &[Row]) -> bool {
    rows.iter().any(|r| r.verdict == Verdict::Regressed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(estimate: f64, half_width: f64) -> Change {
        Change { estimate, low: estimate - half_width, high: estimate + half_width }
    }

    #[test]
    fn one_noisy_round_of_three_does_not_fail_the_gate() {
        let rounds = [change(0.27, 0.05), change(0.01, 0.03), change(-0.02, 0.03)];
        let row = wall("otlp/decode_512", Some(100.0), 101.0, &rounds, 0.10);
        assert_eq!(row.verdict, Verdict::Unchanged);
        assert_eq!(row.change, Some(0.01));
        assert_eq!(row.rounds_regressed, Some((1, 3)));
    }

    #[test]
    fn a_regression_in_most_rounds_fails_it() {
        let rounds = [change(0.21, 0.04), change(0.18, 0.05), change(0.05, 0.06)];
        let row = wall("b", Some(100.0), 120.0, &rounds, 0.10);
        assert_eq!(row.verdict, Verdict::Regressed);
        assert!(failed(&[row]));
    }

    #[test]
    fn a_slowdown_that_is_not_significant_passes() {
        // 15% slower on the point estimate, but the interval reaches below zero.
        let rounds = [change(0.15, 0.2), change(0.16, 0.2), change(0.14, 0.2)];
        assert_eq!(wall("b", Some(1.0), 1.15, &rounds, 0.10).verdict, Verdict::Unchanged);
        // Significant but under the threshold.
        let rounds = [change(0.05, 0.01); 3];
        assert_eq!(wall("b", Some(1.0), 1.05, &rounds, 0.10).verdict, Verdict::Unchanged);
    }

    #[test]
    fn improvements_and_new_benches() {
        let rounds = [change(-0.3, 0.05); 3];
        assert_eq!(wall("b", Some(1.0), 0.7, &rounds, 0.10).verdict, Verdict::Improved);
        assert_eq!(wall("b", None, 0.7, &[], 0.10).verdict, Verdict::New);
    }

    #[test]
    fn instruction_counts_compare_exactly() {
        assert_eq!(instructions("b", Some(1000.0), 1019.0, 0.02).verdict, Verdict::Unchanged);
        assert_eq!(instructions("b", Some(1000.0), 1021.0, 0.02).verdict, Verdict::Regressed);
        assert_eq!(instructions("b", Some(1000.0), 900.0, 0.02).verdict, Verdict::Improved);
        assert_eq!(instructions("b", None, 900.0, 0.02).verdict, Verdict::New);
        let row = instructions("b", Some(1000.0), 1250.0, 0.02);
        assert!((row.change.unwrap() - 0.25).abs() < 1e-12);
    }
}
