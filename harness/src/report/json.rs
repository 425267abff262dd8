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

use serde::Serialize;

use super::{RunInfo, suite_of};
use crate::outcome::TestReport;

/// The schema version written.
pub const SCHEMA_VERSION: u32 = 1;

/// A test as report.json (and report.html's data) carry it: its suite, then its record.
#[derive(Serialize)]
pub(crate) struct Test<'a> {
    pub(crate) suite: &'a str,
    #[serde(flatten)]
    pub(crate) report: &'a TestReport,
}

#[derive(Serialize)]
struct Document<'a> {
    schema_version: u32,
    run: &'a RunInfo,
    counts: BTreeMap<&'static str, u64>,
    tests: Vec<Test<'a>>,
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
    let document = Document {
        schema_version: SCHEMA_VERSION,
        run,
        counts: counts(reports),
        tests: reports.iter().map(|report| Test { suite: suite_of(&report.name), report }).collect(),
    };
    serde_json::to_vec_pretty(&document).map_err(|e| format!("failed to encode report.json: {e}"))
}
