//! The run as Prometheus text exposition (`metrics.prom`, and the body of each Pushgateway
//! group). Gauges, and a summary for recorded latencies; labels are bounded (`suite`, `test`, `outcome`, `operation`,
//! `quantile`) — no run id, timestamp or commit on per-test series, so pushing every run keeps
//! the number of series flat. `promtool check metrics` accepts the output.

use std::fmt::Write as _;

use super::{RunInfo, suite_of};
use crate::outcome::TestReport;

/// Every outcome label, for `reliability_tests{outcome}` (zeros included, so a count that
/// drops to zero is seen as zero, not as a missing series).
const OUTCOMES: &[&str] =
    &["passed", "failed", "error", "timed_out", "crashed", "skipped", "xfailed", "xpassed", "flaky", "not_run"];

/// Appends a label value, escaped.
fn escape_into(out: &mut String, value: &str) {
    if !value.bytes().any(|b| matches!(b, b'\\' | b'"' | b'\n')) {
        out.push_str(value);
        return;
    }
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// Appends a sample value as Prometheus expects.
fn number_into(out: &mut String, v: f64) {
    if v.is_nan() {
        out.push_str("NaN");
    } else if v.is_infinite() {
        out.push_str(if v > 0.0 { "+Inf" } else { "-Inf" });
    } else if v.fract() == 0.0 && v.abs() < 9.0e15 && (v != 0.0 || v.is_sign_positive()) {
        // Whole numbers (counts, bytes) as integers: what `{v}` prints for them, faster.
        let _ = write!(out, "{}", v as i64);
    } else {
        let _ = write!(out, "{v}");
    }
}

/// A family as first added: its name, type and help.
struct Head {
    name: String,
    kind: &'static str,
    help: String,
    /// Which emitters add to it: the per-suite one, the per-test one (a value a test records
    /// may share a name with a run-level family).
    from_suites: bool,
    from_tests: bool,
}

/// Where the emitters' samples go. The text is written family by family — every family's
/// samples must be contiguous — without holding any family in memory: one pass finds the
/// families in the order first added, then one pass per family writes its samples (10,000
/// tests make some 70,000 samples, 4.7 MB, which the last version built in memory first).
struct Sink<'a> {
    /// `None` while finding the families; the family being written otherwise.
    writing: Option<&'a str>,
    /// Samples of the family being written since the last flush.
    text: String,
    out: Option<&'a mut dyn std::io::Write>,
    error: Option<std::io::Error>,
    heads: Vec<Head>,
    index: std::collections::HashMap<String, usize>,
    /// The last few names looked up, by address and length: nearly every name is a literal,
    /// so most lookups end here, with a comparison instead of a hash of the name.
    recent: Vec<(usize, usize, usize)>,
    /// Which emitter runs now (for `Head::from_*`).
    tests: bool,
}

impl Sink<'_> {
    fn add(&mut self, name: &str, help: &str, labels: &[(&str, &str)], value: f64) {
        self.add_typed(name, "gauge", "", help, labels, value);
    }

    /// Adds a sample to family `name`; `suffix` names summary parts (`_sum`, `_count`).
    fn add_typed(
        &mut self,
        name: &str,
        kind: &'static str,
        suffix: &str,
        help: &str,
        labels: &[(&str, &str)],
        value: f64,
    ) {
        match self.writing {
            None => self.discover(name, kind, help),
            Some(family) if family == name => self.sample(name, suffix, labels, value),
            Some(_) => {}
        }
    }

    /// A value the test recorded, in family `reliability_<name>`: its name is only built
    /// when the family is found, not on every pass.
    fn add_value(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        match self.writing {
            None => {
                let (family, help) = (format!("reliability_{name}"), format!("Value {name} recorded by the test."));
                self.discover(&family, "gauge", &help);
            }
            Some(family) if family.strip_prefix("reliability_") == Some(name) => {
                self.sample(family, "", labels, value);
            }
            Some(_) => {}
        }
    }

    fn discover(&mut self, name: &str, kind: &'static str, help: &str) {
        let key = (name.as_ptr() as usize, name.len());
        // The address may since hold another name of the same length (a freed `format!`):
        // the name is compared too, which is still cheaper than hashing it.
        let hit = self.recent.iter().find(|(at, len, i)| (*at, *len) == key && self.heads[*i].name == name);
        let i = match hit {
            Some((_, _, i)) => *i,
            None => {
                let i = match self.index.get(name) {
                    Some(i) => *i,
                    None => {
                        self.index.insert(name.to_string(), self.heads.len());
                        self.heads.push(Head {
                            name: name.to_string(),
                            kind,
                            help: help.to_string(),
                            from_suites: false,
                            from_tests: false,
                        });
                        self.heads.len() - 1
                    }
                };
                if self.recent.len() == 16 {
                    self.recent.remove(0);
                }
                self.recent.push((key.0, key.1, i));
                i
            }
        };
        let head = &mut self.heads[i];
        head.from_suites |= !self.tests;
        head.from_tests |= self.tests;
    }

    fn sample(&mut self, name: &str, suffix: &str, labels: &[(&str, &str)], value: f64) {
        let out = &mut self.text;
        out.push_str(name);
        out.push_str(suffix);
        out.push('{');
        for (j, (k, v)) in labels.iter().enumerate() {
            if j > 0 {
                out.push(',');
            }
            out.push_str(k);
            out.push_str("=\"");
            escape_into(out, v);
            out.push('"');
        }
        out.push_str("} ");
        number_into(out, value);
        out.push('\n');
        if self.text.len() >= 64 * 1024 {
            self.flush();
        }
    }

    fn flush(&mut self) {
        if let (Some(out), None) = (self.out.as_deref_mut(), &self.error) {
            self.error = out.write_all(self.text.as_bytes()).err();
        }
        self.text.clear();
    }
}

/// Renders the series of the given suites (all when `only` is `None`).
pub fn render(run: &RunInfo, reports: &[TestReport], only: Option<&str>) -> String {
    let mut out = Vec::new();
    // Writing into a Vec cannot fail, and every piece written is a str.
    let _ = write(&mut out, run, reports, only);
    String::from_utf8(out).unwrap_or_default()
}

/// Writes the series of the given suites (all when `only` is `None`) to `out`.
pub fn write(
    out: &mut dyn std::io::Write,
    run: &RunInfo,
    reports: &[TestReport],
    only: Option<&str>,
) -> std::io::Result<()> {
    let selected: Vec<&TestReport> =
        reports.iter().filter(|r| only.is_none_or(|suite| suite_of(&r.name) == suite)).collect();
    let mut suites: Vec<&str> = selected.iter().map(|r| suite_of(&r.name)).collect();
    suites.dedup();
    suites.sort_unstable();
    suites.dedup();

    let mut by_outcome: std::collections::HashMap<(&str, &str), usize> = std::collections::HashMap::new();
    for r in &selected {
        *by_outcome.entry((suite_of(&r.name), r.outcome.label())).or_default() += 1;
    }
    let mut sink = Sink {
        writing: None,
        text: String::new(),
        out: None,
        error: None,
        heads: Vec::new(),
        index: std::collections::HashMap::new(),
        recent: Vec::new(),
        tests: false,
    };
    emit_suites(&mut sink, run, &suites, &by_outcome);
    sink.tests = true;
    emit_tests(&mut sink, &selected);
    let heads = std::mem::take(&mut sink.heads);
    let mut sink = Sink { out: Some(out), text: String::with_capacity(80 * 1024), ..sink };
    for head in &heads {
        sink.text.push_str("# HELP ");
        sink.text.push_str(&head.name);
        sink.text.push(' ');
        sink.text.push_str(&head.help);
        sink.text.push_str("\n# TYPE ");
        sink.text.push_str(&head.name);
        sink.text.push(' ');
        sink.text.push_str(head.kind);
        sink.text.push('\n');
        sink.writing = Some(&head.name);
        if head.from_suites {
            emit_suites(&mut sink, run, &suites, &by_outcome);
        }
        if head.from_tests {
            emit_tests(&mut sink, &selected);
        }
    }
    sink.flush();
    match sink.error {
        Some(error) => Err(error),
        None => Ok(()),
    }
}

/// The per-suite series: run facts and the outcome counts.
fn emit_suites(
    f: &mut Sink<'_>,
    run: &RunInfo,
    suites: &[&str],
    by_outcome: &std::collections::HashMap<(&str, &str), usize>,
) {
    for suite in suites {
        let commit = run.commit.as_deref().unwrap_or("");
        let branch = run.branch.as_deref().unwrap_or("");
        let workflow = run.workflow.as_deref().unwrap_or("");
        f.add(
            "reliability_run_info",
            "Facts about the last run of the suite; always 1.",
            &[
                ("suite", suite),
                ("commit", commit),
                ("branch", branch),
                ("workflow", workflow),
                ("version", &run.version),
            ],
            1.0,
        );
        f.add(
            "reliability_run_timestamp_seconds",
            "Start of the last run, Unix time.",
            &[("suite", suite)],
            run.started_unix,
        );
        f.add(
            "reliability_run_duration_seconds",
            "Wall time of the last run.",
            &[("suite", suite)],
            run.duration_seconds,
        );
        for outcome in OUTCOMES {
            let n = by_outcome.get(&(*suite, *outcome)).copied().unwrap_or(0);
            f.add(
                "reliability_tests",
                "Tests of the suite by outcome in the last run.",
                &[("suite", suite), ("outcome", outcome)],
                n as f64,
            );
        }
    }
}

/// The per-test series.
fn emit_tests(f: &mut Sink<'_>, selected: &[&TestReport]) {
    for report in selected {
        let (suite, test, outcome) = (suite_of(&report.name), &*report.name, report.outcome.label());
        let st: &[(&str, &str)] = &[("suite", suite), ("test", test)];
        f.add(
            "reliability_test_outcome",
            "The test's outcome in the last run; 1 for the outcome it had.",
            &[("suite", suite), ("test", test), ("outcome", outcome)],
            1.0,
        );
        let Some(last) = report.attempts.last() else { continue };
        let m = &last.measurements;
        f.add(
            "reliability_test_duration_seconds",
            "Wall time of the test's last attempt: setup, call and teardown.",
            &[("suite", suite), ("test", test), ("outcome", outcome)],
            last.phases.total().as_secs_f64(),
        );
        f.add(
            "reliability_test_cpu_seconds",
            "CPU time (user + system) of the test's last attempt.",
            st,
            m.cpu_seconds.total(),
        );
        if let Some(bytes) = m.allocated_bytes {
            f.add(
                "reliability_test_allocated_bytes",
                "Bytes allocated during the test's last attempt.",
                st,
                bytes.total() as f64,
            );
        }
        if let Some(growth) = m.heap_growth_bytes {
            f.add("reliability_test_heap_growth_bytes", "Live heap after the test minus before it.", st, growth as f64);
        }
        if let Some(peak) = m.peak_heap_bytes {
            f.add("reliability_test_peak_heap_bytes", "Highest live heap during the test.", st, peak as f64);
        }
        if let Some(rss) = m.peak_rss_bytes {
            f.add("reliability_test_peak_rss_bytes", "Peak resident set size of the test's process.", st, rss as f64);
        }
        for (operation, l) in &m.figures.latency {
            // A summary: quantiles (1 is the maximum), then _sum and _count.
            let help = "Latency recorded by the test (quantile 1 is the maximum).";
            let name = "reliability_latency_seconds";
            for (quantile, value) in [("0.5", l.p50), ("0.9", l.p90), ("0.95", l.p95), ("0.99", l.p99), ("1", l.max)] {
                let labels =
                    [("suite", suite), ("test", test), ("operation", operation.as_str()), ("quantile", quantile)];
                f.add_typed(name, "summary", "", help, &labels, value);
            }
            let labels = [("suite", suite), ("test", test), ("operation", operation.as_str())];
            f.add_typed(name, "summary", "_sum", help, &labels, l.mean * l.count as f64);
            f.add_typed(name, "summary", "_count", help, &labels, l.count as f64);
        }
        for (operation, per_second) in &m.figures.throughput {
            f.add(
                "reliability_throughput_per_second",
                "Throughput recorded by the test.",
                &[("suite", suite), ("test", test), ("operation", operation)],
                *per_second,
            );
        }
        for (name, value) in &m.figures.values {
            f.add_value(name, st, *value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outcome::{Attempt, Outcome};

    #[test]
    fn families_are_contiguous_with_help_and_escaped_labels() {
        let mut attempt = Attempt::bare(Outcome::Passed);
        attempt.measurements.figures.values.insert("spans_delivered".into(), 100.0);
        let reports = vec![
            TestReport {
                name: "delivery::a[\"q\"]".into(),
                markers: vec![],
                outcome: Outcome::Passed,
                attempts: vec![attempt.clone()],
                output: String::new(),
                output_bytes: 0,
                isolation: "process".into(),
            },
            TestReport {
                name: "api::b".into(),
                markers: vec![],
                outcome: Outcome::Failed { message: "x".into() },
                attempts: vec![attempt],
                output: String::new(),
                output_bytes: 0,
                isolation: "process".into(),
            },
        ];
        let run = RunInfo { version: "0.1.0".into(), ..RunInfo::default() };
        let text = render(&run, &reports, None);
        assert!(
            text.contains(
                "reliability_test_outcome{suite=\"delivery\",test=\"delivery::a[\\\"q\\\"]\",outcome=\"passed\"} 1\n"
            ),
            "{text}"
        );
        assert!(text.contains("reliability_tests{suite=\"api\",outcome=\"failed\"} 1\n"));
        assert!(text.contains("reliability_tests{suite=\"api\",outcome=\"passed\"} 0\n"));
        assert!(text.contains("# TYPE reliability_spans_delivered gauge\n"));
        // Each family's samples follow its HELP/TYPE lines without interruption.
        let mut seen = std::collections::HashSet::new();
        let mut current = String::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                current = rest.split(' ').next().unwrap().to_string();
                assert!(seen.insert(current.clone()), "family {current} appears twice");
            } else if !line.starts_with('#') {
                assert!(line.starts_with(&current), "{line} outside its family {current}");
            }
        }
        let only = render(&run, &reports, Some("api"));
        assert!(!only.contains("delivery"), "{only}");
    }

    /// A value named like a run-level family joins that family, after the suites' samples —
    /// where it was first added — and the family is still written once.
    #[test]
    fn a_value_named_like_a_run_family_joins_it() {
        let mut attempt = Attempt::bare(Outcome::Passed);
        attempt.measurements.figures.values.insert("tests".into(), 7.0);
        let report = TestReport {
            name: "s::t".into(),
            markers: vec![],
            outcome: Outcome::Passed,
            attempts: vec![attempt],
            output: String::new(),
            output_bytes: 0,
            isolation: "thread".into(),
        };
        let text = render(&RunInfo::default(), &[report], None);
        let family: Vec<&str> = text
            .lines()
            .skip_while(|l| *l != "# TYPE reliability_tests gauge")
            .skip(1)
            .take_while(|l| !l.starts_with('#'))
            .collect();
        assert_eq!(family.len(), OUTCOMES.len() + 1, "{text}");
        assert_eq!(family.last().copied(), Some("reliability_tests{suite=\"s\",test=\"s::t\"} 7"));
        assert_eq!(text.matches("# TYPE reliability_tests ").count(), 1);
    }

    /// A write that fails is reported, not swallowed.
    #[test]
    fn a_failed_write_is_an_error() {
        struct Full;
        impl std::io::Write for Full {
            fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
                Err(std::io::Error::other("disk full"))
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let report = TestReport {
            name: "s::t".into(),
            markers: vec![],
            outcome: Outcome::Passed,
            attempts: vec![Attempt::bare(Outcome::Passed)],
            output: String::new(),
            output_bytes: 0,
            isolation: "thread".into(),
        };
        assert!(write(&mut Full, &RunInfo::default(), &[report], None).is_err());
    }
}
