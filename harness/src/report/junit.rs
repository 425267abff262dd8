//! `junit.xml`: one `<testsuite>` per suite; retries as `rerunFailure` (still failing) or
//! `flakyFailure` (passed in the end), as cargo-nextest writes them; markers, outcome and key
//! figures as properties; captured output as `system-out`.
//!
//! The document is quick-junit's, byte for byte — its tests hold this writer to
//! [`quick_junit::Report`]'s own output ([`reference`]) — but written straight into one
//! string: quick-junit builds every name and value as a sanitized `XmlString` first (an ANSI
//! strip and an allocation each), which for 10,000 tests took longer than running them. Strings
//! that need sanitizing (control characters, escapes, anything not plain ASCII) still go
//! through `quick_junit::XmlString`, so the two agree on them too.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::time::Duration;

use super::{RunInfo, suite_of, suites};
use crate::outcome::{Attempt, Outcome, TestReport};

/// `s` as quick-junit's `XmlString` keeps it: ANSI escapes and XML-invalid control
/// characters removed. Plain printable ASCII (and newlines) is kept as it is.
fn clean(s: &str) -> Cow<'_, str> {
    if s.bytes().all(|b| (0x20..=0x7e).contains(&b) || b == b'\n') {
        Cow::Borrowed(s)
    } else {
        Cow::Owned(quick_junit::XmlString::new(s).into_string())
    }
}

/// An XML writer indenting as quick-xml's `Writer::new_with_indent(_, b' ', 4)` does.
struct Xml {
    out: String,
    level: usize,
    line_break: bool,
}

impl Xml {
    fn escape(&mut self, value: &str) {
        if !value.bytes().any(|b| matches!(b, b'<' | b'>' | b'&' | b'\'' | b'"')) {
            self.out.push_str(value);
            return;
        }
        for c in value.chars() {
            match c {
                '<' => self.out.push_str("&lt;"),
                '>' => self.out.push_str("&gt;"),
                '&' => self.out.push_str("&amp;"),
                '\'' => self.out.push_str("&apos;"),
                '"' => self.out.push_str("&quot;"),
                c => self.out.push(c),
            }
        }
    }

    fn indent(&mut self) {
        if self.line_break {
            self.out.push('\n');
            for _ in 0..self.level {
                self.out.push_str("    ");
            }
        }
    }

    fn tag(&mut self, name: &str, attributes: &[(&str, &str)], end: &str) {
        self.indent();
        self.out.push('<');
        self.out.push_str(name);
        for (key, value) in attributes {
            self.out.push(' ');
            self.out.push_str(key);
            self.out.push_str("=\"");
            self.escape(value);
            self.out.push('"');
        }
        self.out.push_str(end);
        self.line_break = true;
    }

    fn open(&mut self, name: &str, attributes: &[(&str, &str)]) {
        self.tag(name, attributes, ">");
        self.level += 1;
    }

    fn empty(&mut self, name: &str, attributes: &[(&str, &str)]) {
        self.tag(name, attributes, "/>");
    }

    fn close(&mut self, name: &str) {
        self.level = self.level.saturating_sub(1);
        self.indent();
        self.out.push_str("</");
        self.out.push_str(name);
        self.out.push('>');
        self.line_break = true;
    }

    fn text(&mut self, text: &str) {
        self.escape(text);
        self.line_break = false;
    }
}

fn seconds(d: Duration) -> String {
    format!("{:.3}", d.as_secs_f64())
}

/// What a test case's status is in JUnit's terms.
enum Status<'a> {
    Success,
    Flaky(&'a [Attempt]),
    Skipped(&'a str),
    /// Failure or error, its reruns, and the output as its description.
    NonSuccess {
        error: bool,
        reruns: &'a [Attempt],
    },
}

fn status(report: &TestReport) -> Status<'_> {
    let earlier = report.attempts.split_last().map_or(&[][..], |(_, earlier)| earlier);
    match &report.outcome {
        Outcome::Skipped { reason } | Outcome::NotRun { reason } => Status::Skipped(reason),
        Outcome::Flaky { .. } => Status::Flaky(earlier),
        outcome if outcome.is_failure(false) => {
            Status::NonSuccess { error: matches!(outcome, Outcome::Error { .. }), reruns: earlier }
        }
        _ => Status::Success,
    }
}

fn is_error(outcome: &Outcome) -> bool {
    matches!(outcome, Outcome::Error { .. })
}

fn rerun(xml: &mut Xml, attempt: &Attempt, flaky: bool) {
    let tag = match (flaky, is_error(&attempt.outcome)) {
        (true, false) => "flakyFailure",
        (true, true) => "flakyError",
        (false, false) => "rerunFailure",
        (false, true) => "rerunError",
    };
    let message = attempt.outcome.describe();
    let message = clean(&message);
    let time = seconds(attempt.phases.total());
    xml.open(tag, &[("time", &time), ("message", &message), ("type", attempt.outcome.label())]);
    xml.close(tag);
}

/// The test's properties, in order: outcome, markers, attempts, isolation, then its last
/// attempt's CPU, allocation, heap and RSS figures and recorded values.
fn properties(xml: &mut Xml, report: &TestReport) {
    fn property(xml: &mut Xml, name: &str, value: &str) {
        let (name, value) = (clean(name), clean(value));
        xml.empty("property", &[("name", &name), ("value", &value)]);
    }
    fn number(xml: &mut Xml, value: &mut String, name: &str, n: &dyn std::fmt::Display) {
        value.clear();
        let _ = write!(value, "{n}");
        property(xml, name, value);
    }
    // One buffer for every value built here (no allocation per property).
    let mut value = String::new();
    property(xml, "outcome", report.outcome.label());
    for (i, marker) in report.markers.iter().enumerate() {
        if i > 0 {
            value.push(',');
        }
        value.push_str(marker);
    }
    property(xml, "markers", &value);
    number(xml, &mut value, "attempts", &report.attempts.len());
    property(xml, "isolation", &report.isolation);
    let Some(m) = report.attempts.last().map(|a| &a.measurements) else { return };
    value.clear();
    let _ = write!(value, "{:.6}", m.cpu_seconds.total());
    property(xml, "cpu_seconds", &value);
    let optional = [
        ("allocated_bytes", m.allocated_bytes.map(|b| b.total() as i64)),
        ("heap_growth_bytes", m.heap_growth_bytes),
        ("peak_heap_bytes", m.peak_heap_bytes.map(|b| b as i64)),
        ("peak_rss_bytes", m.peak_rss_bytes.map(|b| b as i64)),
    ];
    for (name, n) in optional {
        if let Some(n) = n {
            number(xml, &mut value, name, &n);
        }
    }
    for (name, n) in &m.figures.values {
        number(xml, &mut value, name, n);
    }
    for (op, per_second) in &m.figures.throughput {
        number(xml, &mut value, &format!("throughput_per_second.{op}"), per_second);
    }
    for (op, l) in &m.figures.latency {
        number(xml, &mut value, &format!("latency_p50_seconds.{op}"), &l.p50);
        number(xml, &mut value, &format!("latency_p99_seconds.{op}"), &l.p99);
    }
}

fn test_case(xml: &mut Xml, report: &TestReport) {
    let suite = suite_of(&report.name);
    // The name after its suite (a root test, with no suite, keeps its whole name).
    let name = if suite.is_empty() && !report.name.starts_with("::") {
        &*report.name
    } else {
        &report.name[suite.len() + 2..]
    };
    let (name, classname) = (clean(name), clean(suite));
    let time = seconds(report.attempts.last().map_or(Duration::ZERO, |a| a.phases.total()));
    xml.open("testcase", &[("name", &name), ("classname", &classname), ("time", &time)]);
    xml.open("properties", &[]);
    properties(xml, report);
    xml.close("properties");
    let output = (!report.output.is_empty()).then(|| clean(&report.output));
    match status(report) {
        Status::Success => {}
        Status::Flaky(runs) => runs.iter().for_each(|a| rerun(xml, a, true)),
        Status::Skipped(reason) => xml.empty("skipped", &[("message", &clean(reason))]),
        Status::NonSuccess { error, reruns } => {
            let tag = if error { "error" } else { "failure" };
            let message = report.outcome.describe();
            let message = clean(&message);
            let attributes = [("message", &*message), ("type", report.outcome.label())];
            match &output {
                Some(description) => {
                    xml.open(tag, &attributes);
                    xml.text(description);
                    xml.close(tag);
                }
                None => xml.empty(tag, &attributes),
            }
            reruns.iter().for_each(|a| rerun(xml, a, false));
        }
    }
    if let Some(output) = &output {
        xml.open("system-out", &[]);
        xml.text(output);
        xml.close("system-out");
    }
    xml.close("testcase");
}

/// Renders `junit.xml`.
pub fn render(run: &RunInfo, reports: &[TestReport]) -> Result<String, String> {
    let mut out = Vec::with_capacity(reports.len() * 640 + 1024);
    write(&mut out, run, reports).map_err(|e| format!("failed to write junit.xml: {e}"))?;
    String::from_utf8(out).map_err(|e| format!("junit.xml is not UTF-8: {e}"))
}

/// Writes `junit.xml` to `out` as it is rendered (a few test cases at a time).
pub fn write(out: &mut dyn std::io::Write, run: &RunInfo, reports: &[TestReport]) -> std::io::Result<()> {
    let mut by_suite: std::collections::HashMap<&str, Vec<&TestReport>> = std::collections::HashMap::new();
    for report in reports {
        by_suite.entry(suite_of(&report.name)).or_default().push(report);
    }
    let count = |rs: &[&TestReport], f: fn(&Status<'_>) -> bool| rs.iter().filter(|r| f(&status(r))).count();
    let skipped = |s: &Status<'_>| matches!(s, Status::Skipped(_));
    let errors = |s: &Status<'_>| matches!(s, Status::NonSuccess { error: true, .. });
    let failures = |s: &Status<'_>| matches!(s, Status::NonSuccess { error: false, .. });
    let all: Vec<&TestReport> = reports.iter().collect();
    const CHUNK: usize = 64 * 1024;
    let mut xml = Xml { out: String::with_capacity(2 * CHUNK), level: 0, line_break: false };
    xml.out.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>");
    xml.line_break = true;
    let name = clean(if run.binary.is_empty() { "reliability" } else { &run.binary });
    let (tests, skip, fail, err) =
        (all.len().to_string(), count(&all, skipped), count(&all, failures), count(&all, errors));
    let time = seconds(Duration::try_from_secs_f64(run.duration_seconds).unwrap_or_default());
    let (skip, fail, err) = (skip.to_string(), fail.to_string(), err.to_string());
    xml.open(
        "testsuites",
        &[
            ("name", &name),
            ("tests", &tests),
            ("skipped", &skip),
            ("failures", &fail),
            ("errors", &err),
            ("time", &time),
        ],
    );
    for suite in suites(reports) {
        let cases = by_suite.get(suite).map_or(&[][..], Vec::as_slice);
        let name = clean(if suite.is_empty() { "(root)" } else { suite });
        let (tests, skip, err, fail) =
            (cases.len().to_string(), count(cases, skipped), count(cases, errors), count(cases, failures));
        let (skip, err, fail) = (skip.to_string(), err.to_string(), fail.to_string());
        let attributes =
            [("name", &*name), ("tests", &tests), ("skipped", &skip), ("errors", &err), ("failures", &fail)];
        if cases.is_empty() {
            xml.empty("testsuite", &attributes);
            continue;
        }
        xml.open("testsuite", &attributes);
        for case in cases {
            test_case(&mut xml, case);
            if xml.out.len() >= CHUNK {
                out.write_all(xml.out.as_bytes())?;
                xml.out.clear();
            }
        }
        xml.close("testsuite");
    }
    xml.close("testsuites");
    xml.out.push('\n');
    out.write_all(xml.out.as_bytes())
}

/// The properties as quick-junit's: the code this module had before it wrote XML itself.
#[cfg(test)]
fn reference_properties(report: &TestReport) -> Vec<quick_junit::Property> {
    use quick_junit::Property;
    let mut props = vec![
        Property::new("outcome", report.outcome.label()),
        Property::new("markers", report.markers.join(",")),
        Property::new("attempts", report.attempts.len().to_string()),
        Property::new("isolation", &*report.isolation),
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

/// The same document through quick-junit's own types and serializer: what [`render`] must
/// equal (the tests hold it to this).
#[cfg(test)]
fn reference(run: &RunInfo, reports: &[TestReport]) -> Result<String, String> {
    use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestRerun, TestSuite};
    fn kind(outcome: &Outcome) -> NonSuccessKind {
        if is_error(outcome) { NonSuccessKind::Error } else { NonSuccessKind::Failure }
    }
    fn rerun(attempt: &Attempt) -> TestRerun {
        let mut rerun = TestRerun::new(kind(&attempt.outcome));
        rerun
            .set_message(attempt.outcome.describe())
            .set_type(attempt.outcome.label())
            .set_time(attempt.phases.total());
        rerun
    }
    let case = |report: &TestReport| {
        let earlier = report.attempts.split_last().map_or(&[][..], |(_, earlier)| earlier);
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
        let name = report.name.split_once("::").map_or(&*report.name, |(_, rest)| rest);
        let mut case = TestCase::new(name, status);
        case.set_classname(suite_of(&report.name))
            .set_time(report.attempts.last().map_or(Duration::ZERO, |a| a.phases.total()))
            .add_properties(reference_properties(report));
        if !report.output.is_empty() {
            case.set_system_out_lossy(report.output.as_bytes());
        }
        case
    };
    let mut report = Report::new(if run.binary.is_empty() { "reliability" } else { &run.binary });
    report.set_time(Duration::from_secs_f64(run.duration_seconds));
    for suite in suites(reports) {
        let mut ts = TestSuite::new(if suite.is_empty() { "(root)" } else { suite });
        ts.add_test_cases(reports.iter().filter(|r| suite_of(&r.name) == suite).map(case));
        report.add_test_suite(ts);
    }
    report.to_string().map_err(|e| format!("failed to encode junit.xml: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(name: &str, outcome: Outcome, attempts: Vec<Outcome>) -> TestReport {
        TestReport {
            name: name.to_owned().into(),
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

    /// The writer's document is quick-junit's, byte for byte, on every kind of test case and
    /// on strings that need escaping or sanitizing.
    #[test]
    fn the_document_is_quick_junits() {
        use crate::measure::Phased;
        use crate::measure::figures::LatencySummary;
        let failed = || Outcome::Failed { message: "assert <a> & 'b' \"c\"".into() };
        let mut measured = Attempt::bare(Outcome::Passed);
        let m = &mut measured.measurements;
        m.cpu_seconds = Phased { setup: 0.001, call: 0.25, teardown: 0.0 };
        m.allocated_bytes = Some(Phased { setup: 1, call: 2_000, teardown: 3 });
        m.heap_growth_bytes = Some(-12);
        m.peak_heap_bytes = Some(4_096);
        m.peak_rss_bytes = Some(1 << 20);
        m.figures.values.insert("spans_delivered".into(), 100.0);
        m.figures.values.insert("ratio<&>".into(), 0.999_5);
        m.figures.throughput.insert("export".into(), 12_345.678);
        m.figures
            .latency
            .insert("send".into(), LatencySummary { count: 3, p50: 0.001, p99: 0.5, ..LatencySummary::default() });
        let with = |name: &str, outcome: Outcome, attempts: Vec<Attempt>, output: &str| TestReport {
            name: name.to_owned().into(),
            markers: vec!["e2e".into(), "slow".into()],
            outcome,
            attempts,
            output: output.into(),
            output_bytes: output.len() as u64,
            isolation: "thread".into(),
        };
        let bare = |o: Outcome| Attempt::bare(o);
        let reports = vec![
            with("delivery::measured", Outcome::Passed, vec![measured.clone()], ""),
            with(
                "delivery::flaky",
                Outcome::Flaky { attempts: 3 },
                vec![bare(failed()), bare(Outcome::Error { message: "fixture".into() }), bare(Outcome::Passed)],
                "retried",
            ),
            with(
                "delivery::broken",
                failed(),
                vec![bare(failed()), measured.clone(), bare(failed())],
                "\x1b[31mred\x1b[0m\ttab\r\nline <2> & \x01ctl",
            ),
            with("api::quiet_failure", failed(), vec![bare(failed())], ""),
            with(
                "api::error",
                Outcome::Error { message: "set-up: <x>".into() },
                vec![bare(Outcome::Error { message: "set-up".into() })],
                "",
            ),
            with("api::skipped", Outcome::Skipped { reason: "opt-in marker e2e & \"more\"".into() }, vec![], ""),
            with("api::not_run", Outcome::NotRun { reason: "--maxfail 1".into() }, vec![], ""),
            with(
                "api::timed_out",
                Outcome::TimedOut { after: Duration::from_millis(1_500) },
                vec![bare(Outcome::TimedOut { after: Duration::from_millis(1_500) })],
                "ünïcödé ✓",
            ),
            with("api::case[\"q<1>\"]", Outcome::Passed, vec![bare(Outcome::Passed)], ""),
            with("root_test", Outcome::Passed, vec![bare(Outcome::Passed)], ""),
        ];
        let doc = render(&RunInfo::default(), &reports).unwrap();
        for part in [
            "<flakyError ",
            "<rerunFailure ",
            "<skipped message=\"--maxfail 1\"/>",
            "redtab\nline &lt;2&gt; &amp; ctl",
            "ünïcödé ✓",
        ] {
            assert!(doc.contains(part), "{part:?} not in\n{doc}");
        }
        assert!(!doc.contains('\x1b') && !doc.contains('\x01') && !doc.contains('\t'), "{doc}");
        for run in
            [RunInfo::default(), RunInfo { binary: "suite-ü".into(), duration_seconds: 12.345_6, ..RunInfo::default() }]
        {
            assert_eq!(render(&run, &reports).unwrap(), reference(&run, &reports).unwrap());
            assert_eq!(render(&run, &reports[..1]).unwrap(), reference(&run, &reports[..1]).unwrap());
            assert_eq!(render(&run, &[]).unwrap(), reference(&run, &[]).unwrap());
        }
    }
}
