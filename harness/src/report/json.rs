//! `report.json`: the complete record of a run, versioned.
//!
//! Schema (version 1; fields are only ever added within a version):
//!
//! ```text
//! {
//!   "schema_version": 1,
//!   "run":   RunInfo: binary, commit, branch, workflow, host, started_at, started_unix,
//!            duration_seconds, version, interrupted, peak_rss_bytes (of the run's process),
//!            partition (the shard, e.g. "hash:1/3", or null),
//!   "counts": { "<outcome>": n, ... },
//!   "tests": [ {
//!       "name", "suite", "markers": [..], "isolation": "process" | "thread",
//!       "outcome": { "kind": passed|failed|error|timed_out|crashed|skipped|xfailed|xpassed|flaky|not_run, ... },
//!       "attempts": [ {
//!           "outcome": {..},
//!           "phases": { "setup", "call", "teardown" }            (seconds)
//!           "measurements": {
//!               "cpu_seconds": { "setup", "call", "teardown" },
//!               "allocated_bytes" / "allocated_blocks": { "setup", "call", "teardown" } | null,
//!               "heap_growth_bytes", "peak_heap_bytes", "peak_rss_bytes": number | null,
//!               "shared": bool,                   (process-wide figures shared with other tests)
//!               "series": [ { "t", "rss_bytes", "cpu_percent" } ],   (tests > 1 s, process mode)
//!               "figures": { "latency": { op: { count, mean, p50, p90, p95, p99, max } },
//!                            "throughput": { op: per_second }, "values": { name: number } } } } ],
//!       "output": captured output of the last attempt: whole up to 128 KiB, else its first and
//!                 last 64 KiB around a marker naming the file that keeps all of it } ]
//! }
//! ```

use std::collections::BTreeMap;
use std::io::Write;

use serde::Serialize;

use super::{RunInfo, suite_of};
use crate::outcome::TestReport;

/// The schema version written.
pub const SCHEMA_VERSION: u32 = 1;

/// A test as report.json (and report.html's data) carry it: its suite, then its record.
pub(crate) struct Test<'a> {
    pub(crate) suite: &'a str,
    pub(crate) report: &'a TestReport,
}

/// `suite`, then the record's fields as `TestReport` serializes them. Written out rather than
/// `#[serde(flatten)]`, which sends every field through serde's slower map path; a test holds
/// the output to `TestReport`'s own, byte for byte.
impl Serialize for Test<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct as _;
        let report = self.report;
        let mut test = serializer.serialize_struct("Test", 8)?;
        test.serialize_field("suite", self.suite)?;
        test.serialize_field("name", &report.name)?;
        test.serialize_field("markers", &report.markers)?;
        test.serialize_field("outcome", &report.outcome)?;
        test.serialize_field("attempts", &report.attempts)?;
        test.serialize_field("output", &report.output)?;
        test.serialize_field("output_bytes", &report.output_bytes)?;
        test.serialize_field("isolation", &report.isolation)?;
        test.end()
    }
}

/// Counts by outcome label.
pub fn counts(reports: &[TestReport]) -> BTreeMap<&'static str, u64> {
    let mut counts = BTreeMap::new();
    for report in reports {
        *counts.entry(report.outcome.label()).or_default() += 1;
    }
    counts
}

/// Renders `report.json`.
pub fn render(run: &RunInfo, reports: &[TestReport]) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(reports.len() * 600 + 1024);
    write(&mut out, None, run, reports).map_err(|e| format!("failed to encode report.json: {e}"))?;
    Ok(out)
}

/// Writes `report.json` to `json` and, when given, `report.html` to `html`, serializing each
/// test once for both (the page carries the same records; see `html`).
///
/// The document is compact JSON with one test per line: the same object `serde_json` would
/// write (keys in schema order), at half the size of pretty-printing (10,000 trivial tests:
/// 5.1 MB, was 10.4) and less work, and still readable line by line (`grep`, diffs).
pub(crate) fn write(
    json: &mut dyn Write,
    mut html: Option<&mut dyn Write>,
    run: &RunInfo,
    reports: &[TestReport],
) -> std::io::Result<()> {
    let run_json = serde_json::to_vec(run)?;
    write!(json, "{{\"schema_version\":{SCHEMA_VERSION},\n\"run\":")?;
    json.write_all(&run_json)?;
    json.write_all(b",\n\"counts\":")?;
    serde_json::to_writer(&mut *json, &counts(reports))?;
    json.write_all(b",\n\"tests\":[")?;
    if let Some(html) = html.as_deref_mut() {
        super::html::write_head(html, run)?;
        html.write_all(b"{\"run\":")?;
        super::html::write_data(html, &run_json)?;
        html.write_all(b",\"tests\":[")?;
    }
    let mut record = Vec::with_capacity(2048);
    for (i, report) in reports.iter().enumerate() {
        record.clear();
        serde_json::to_writer(&mut record, &Test { suite: suite_of(&report.name), report })?;
        json.write_all(if i == 0 { b"\n" } else { b",\n" })?;
        json.write_all(&record)?;
        if let Some(html) = html.as_deref_mut() {
            if i > 0 {
                html.write_all(b",")?;
            }
            super::html::write_data(html, &record)?;
        }
    }
    json.write_all(b"\n]}\n")?;
    if let Some(html) = html {
        html.write_all(b"]}")?;
        super::html::write_tail(html)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outcome::{Attempt, Outcome};

    /// The streamed document is the one `serde_json` writes for the schema's struct, value for
    /// value, and has a line per test.
    #[test]
    fn the_streamed_document_is_the_schemas() {
        #[derive(Serialize)]
        struct Document<'a> {
            schema_version: u32,
            run: &'a RunInfo,
            counts: BTreeMap<&'static str, u64>,
            tests: Vec<Test<'a>>,
        }
        let mut failed = Attempt::bare(Outcome::Failed { message: "</script> \"quoted\"\n".into() });
        failed.measurements.figures.values.insert("spans".into(), 3.5);
        let reports: Vec<TestReport> = ["a::one", "b::two", "three"]
            .iter()
            .map(|name| TestReport {
                name: (*name).into(),
                markers: vec!["e2e".into()],
                outcome: Outcome::Flaky { attempts: 2 },
                attempts: vec![failed.clone(), Attempt::bare(Outcome::Passed)],
                output: "out <put>".into(),
                output_bytes: 9,
                isolation: "thread".into(),
            })
            .collect();
        let run = RunInfo { binary: "suite".into(), partition: Some("hash:1/2".into()), ..RunInfo::default() };
        let ours = render(&run, &reports).unwrap_or_default();
        let theirs = serde_json::to_vec(&Document {
            schema_version: SCHEMA_VERSION,
            run: &run,
            counts: counts(&reports),
            tests: reports.iter().map(|report| Test { suite: suite_of(&report.name), report }).collect(),
        })
        .unwrap_or_default();
        let parse = |b: &[u8]| serde_json::from_slice::<serde_json::Value>(b).unwrap_or_default();
        assert_eq!(parse(&ours), parse(&theirs));
        // `Test` is `suite` and then exactly what `TestReport` serializes, byte for byte.
        for report in &reports {
            let record = serde_json::to_string(report).unwrap_or_default();
            let test = serde_json::to_string(&Test { suite: suite_of(&report.name), report }).unwrap_or_default();
            let suite = serde_json::to_string(suite_of(&report.name)).unwrap_or_default();
            assert_eq!(test, format!("{{\"suite\":{suite},{}", &record[1..]));
        }
        let text = String::from_utf8(ours).unwrap_or_default();
        let keys: Vec<usize> =
            ["\"schema_version\"", "\"run\"", "\"counts\"", "\"tests\""].iter().filter_map(|k| text.find(k)).collect();
        assert!(keys.len() == 4 && keys.windows(2).all(|w| w[0] < w[1]), "keys in schema order: {keys:?}");
        assert_eq!(text.lines().filter(|l| l.starts_with("{\"suite\":")).count(), 3, "a line per test");
    }
}
