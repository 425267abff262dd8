//! `junit.xml` through quick-junit: one `<testsuite>` per suite; retries as `rerunFailure`
//! (still failing) or `flakyFailure` (passed in the end), as cargo-nextest writes them;
//! markers, outcome and key figures as properties; captured output as `system-out`.

use std::time::Duration;

use quick_junit::{NonSuccessKind, Property, Report, TestCase, TestCaseStatus, TestRerun, TestSuite};

use super::{RunInfo, suite_of, suites};
use crate::outcome::{Attempt, Outcome, TestReport};

fn kind(outcome: &Outcome) -> NonSuccessKind {
    match outcome {
        Outcome::Error { .. } => NonSuccessKind::Error,
        _ => NonSuccessKind::Failure,
    }
}

fn rerun(attempt: &Attempt) -> TestRerun {
    let mut rerun = TestRerun::new(kind(&attempt.outcome));
    rerun.set_message(attempt.outcome.describe()).set_type(attempt.outcome.label()).set_time(attempt.phases.total());
    rerun
}

fn properties(report: &TestReport) -> Vec<Property> {
    let mut props = vec![
        Property::new("outcome", report.outcome.label()),
        Property::new("markers", report.markers.join(",")),
        Property::new("attempts", report.attempts.len().to_string()),
        Property::new("isolation", report.isolation.as_str()),
    ];
    let Some(m) = report.attempts.last().map(|a| &a.measurements) else { return props };
    props.push(Property::new("cpu_seconds", format!("{:.6}", m.cpu_seconds.total())));
    let optional = [
        ("allocated_bytes", m.allocated_bytes.map(|b| b.total() as i64)),
        ("heap_growth_bytes", m.heap_growth_bytes),
        ("peak_heap_bytes", m.peak_heap_bytes.map(|b| b as i64)),
        ("peak_rss_bytes", m.peak_rss_bytes.map(|b| b as i64)),
    ];
    for (name, value) in optional {
        if let Some(value) = value {
            props.push(Property::new(name, value.to_string()));
        }
    }
    for (name, value) in &m.figures.values {
        props.push(Property::new(name.as_str(), value.to_string()));
    }
    for (op, per_second) in &m.figures.throughput {
        props.push(Property::new(format!("throughput_per_second.{op}"), per_second.to_string()));
    }
    for (op, l) in &m.figures.latency {
        props.push(Property::new(format!("latency_p50_seconds.{op}"), l.p50.to_string()));
        props.push(Property::new(format!("latency_p99_seconds.{op}"), l.p99.to_string()));
    }
    props
}

fn test_case(report: &TestReport) -> TestCase {
    let (earlier, last) = match report.attempts.split_last() {
        Some((last, earlier)) => (earlier, Some(last)),
        None => (&[][..], None),
    };
    let status = match &report.outcome {
        Outcome::Skipped { reason } | Outcome::NotRun { reason } => {
            let mut status = TestCaseStatus::skipped();
            status.set_message(reason.as_str());
            status
        }
        Outcome::Flaky { .. } => TestCaseStatus::Success { flaky_runs: earlier.iter().map(rerun).collect() },
        outcome if outcome.is_failure(false) => {
            let mut status = TestCaseStatus::non_success(kind(outcome));
            status.set_message(outcome.describe()).set_type(outcome.label()).add_reruns(earlier.iter().map(rerun));
            if !report.output.is_empty() {
                status.set_description(report.output.as_str());
            }
            status
        }
        _ => TestCaseStatus::success(),
    };
    let name = report.name.split_once("::").map_or(report.name.as_str(), |(_, rest)| rest);
    let mut case = TestCase::new(name, status);
    case.set_classname(suite_of(&report.name))
        .set_time(last.map_or(Duration::ZERO, |a| a.phases.total()))
        .add_properties(properties(report));
    if !report.output.is_empty() {
        case.set_system_out_lossy(report.output.as_bytes());
    }
    case
}

/// Renders `junit.xml`.
pub fn render(run: &RunInfo, reports: &[TestReport]) -> Result<String, String> {
    let mut report = Report::new(if run.binary.is_empty() { "reliability" } else { &run.binary });
    report.set_time(Duration::from_secs_f64(run.duration_seconds));
    for suite in suites(reports) {
        let mut ts = TestSuite::new(if suite.is_empty() { "(root)" } else { suite });
        ts.add_test_cases(reports.iter().filter(|r| suite_of(&r.name) == suite).map(test_case));
        report.add_test_suite(ts);
    }
    report.to_string().map_err(|e| format!("failed to encode junit.xml: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(name: &str, outcome: Outcome, attempts: Vec<Outcome>) -> TestReport {
        TestReport {
            name: name.into(),
            markers: vec!["e2e".into()],
            outcome,
            attempts: attempts.into_iter().map(Attempt::bare).collect(),
            output: "some output".into(),
            output_bytes: 11,
            isolation: "process".into(),
        }
    }

    #[test]
    fn reruns_flaky_skips_and_properties() {
        let failed = || Outcome::Failed { message: "boom".into() };
        let reports = vec![
            report("delivery::flaky", Outcome::Flaky { attempts: 2 }, vec![failed(), Outcome::Passed]),
            report("delivery::broken", failed(), vec![failed(), failed()]),
            report("api::skipped", Outcome::Skipped { reason: "opt-in marker e2e".into() }, vec![]),
            report(
                "api::error",
                Outcome::Error { message: "fixture".into() },
                vec![Outcome::Error { message: "fixture".into() }],
            ),
        ];
        let xml = render(&RunInfo::default(), &reports).unwrap();
        assert!(xml.contains("<testsuite name=\"delivery\" tests=\"2\""), "{xml}");
        assert!(xml.contains("<flakyFailure time=\"0.000\" message=\"boom\" type=\"failed\">"), "{xml}");
        assert!(xml.contains("<rerunFailure time=\"0.000\" message=\"boom\" type=\"failed\">"), "{xml}");
        assert!(xml.contains("<failure message=\"boom\" type=\"failed\">some output</failure>"), "{xml}");
        assert!(xml.contains("<skipped message=\"opt-in marker e2e\"/>"), "{xml}");
        assert!(xml.contains("<error message=\"error: fixture\" type=\"error\""), "{xml}");
        assert!(xml.contains("<property name=\"markers\" value=\"e2e\"/>"), "{xml}");
        assert!(xml.contains("classname=\"delivery\""), "{xml}");
    }
}
