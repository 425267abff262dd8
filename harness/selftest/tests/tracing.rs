//! A run as one trace, received by the embedded testbed backend (a real OTLP/HTTP server): one
//! root span for the run and one span per test attempt under it, named for the test, with the
//! attempt's outcome and error status on failure; the child process of an attempt got that
//! attempt's span as `TRACEPARENT`; a caller's `TRACEPARENT` makes the run part of the caller's
//! trace; and nothing is sent when tracing is off.

#![expect(clippy::unwrap_used, reason = "tests: a panic is the failure report")]

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_outcome-suite");
const SELECTED: &str = "(passes or fails_assert or flaky_once) and not xfail";

/// Runs three outcome-suite tests (a pass, a failure, a test that passes on its retry).
fn suite(env: &[(&str, &str)]) -> (tempfile::TempDir, Value) {
    let dir = tempfile::tempdir().unwrap();
    let (state, out) = (dir.path().join("state"), dir.path().join("out"));
    std::fs::create_dir_all(&state).unwrap();
    let mut cmd = Command::new(BIN);
    for (key, _) in std::env::vars() {
        if key.starts_with("RELIABILITY_")
            || key.starts_with("NEXTEST")
            || key.starts_with("OTEL_")
            || key == "TRACEPARENT"
        {
            cmd.env_remove(key);
        }
    }
    cmd.args(["-k", SELECTED])
        .env("OUTCOME_STATE_DIR", &state)
        .env("RELIABILITY_OUTPUT_DIR", &out)
        .env("RELIABILITY_CONFIG", Path::new(env!("CARGO_MANIFEST_DIR")).join("reliability.toml"))
        .envs(env.iter().copied());
    let output = cmd.output().unwrap();
    assert_eq!(output.status.code(), Some(101), "one test fails: {}", String::from_utf8_lossy(&output.stderr));
    let report: Value = serde_json::from_slice(&std::fs::read(out.join("report.json")).unwrap()).unwrap();
    (dir, report)
}

fn traces(backend: &testbed::Backend, service: &str) -> Vec<Value> {
    let url = format!("{}/projects/{service}/traces?limit=100", backend.query_url());
    let response = reqwest::blocking::get(url).unwrap();
    if response.status() == 404 {
        return Vec::new();
    }
    let page: Value = serde_json::from_slice(&response.bytes().unwrap()).unwrap();
    page["traces"].as_array().unwrap().clone()
}

fn attribute<'a>(span: &'a Value, key: &str) -> &'a Value {
    let attrs = span["attributes"].as_array().unwrap();
    let kv = attrs.iter().find(|a| a["key"] == key).unwrap_or_else(|| panic!("no {key} in {span}"));
    let value = &kv["value"];
    value.as_object().unwrap().values().next().unwrap()
}

#[test]
fn a_traced_run_is_one_trace_with_a_span_per_attempt() {
    let backend = testbed::Backend::start(testbed::Config::default()).unwrap();
    let (dir, report) =
        suite(&[("OTEL_EXPORTER_OTLP_ENDPOINT", &backend.base_url()), ("OTEL_SERVICE_NAME", "selftest-trace")]);
    let traces = traces(&backend, "selftest-trace");
    assert_eq!(traces.len(), 1, "one trace per run: {traces:?}");
    let spans = traces[0]["spans"].as_array().unwrap();
    let roots: Vec<&Value> = spans.iter().filter(|s| s["name"].as_str().unwrap().starts_with("test run ")).collect();
    assert_eq!(roots.len(), 1);
    let root = roots[0];
    assert_eq!(root["parentSpanId"].as_str().unwrap_or_default(), "", "no caller: the root has no parent");
    assert_eq!(root["status"]["code"], 2, "a test failed: the run's span is an error");

    // One span per attempt, under the root, with the attempt's outcome.
    let mut want: BTreeMap<(String, u64), String> = BTreeMap::new();
    for test in report["tests"].as_array().unwrap() {
        for (i, attempt) in test["attempts"].as_array().unwrap().iter().enumerate() {
            let name = test["name"].as_str().unwrap().to_owned();
            want.insert((name, i as u64 + 1), attempt["outcome"]["kind"].as_str().unwrap().to_owned());
        }
    }
    assert_eq!(want.len(), 4, "pass, failure, and the flaky test's two attempts: {want:?}");
    let mut got: BTreeMap<(String, u64), String> = BTreeMap::new();
    for span in spans.iter().filter(|s| *s != root) {
        assert_eq!(span["parentSpanId"], root["spanId"], "{span}");
        assert_eq!(attribute(span, "test.name"), &span["name"]);
        let outcome = attribute(span, "test.outcome").as_str().unwrap().to_owned();
        let error = outcome == "failed";
        assert_eq!(span["status"]["code"], if error { 2 } else { 1 }, "{span}");
        let attempt = attribute(span, "test.attempt").as_str().unwrap().parse().unwrap();
        got.insert((span["name"].as_str().unwrap().to_owned(), attempt), outcome);
    }
    assert_eq!(got, want);

    // The passing test's process got its own span as TRACEPARENT.
    let passes = spans.iter().find(|s| s["name"] == "outcomes::passes").unwrap();
    let seen = std::fs::read_to_string(dir.path().join("state/traceparent")).unwrap();
    let trace_id = traces[0]["trace_id"].as_str().unwrap();
    assert_eq!(seen.trim(), format!("00-{trace_id}-{}-01", passes["spanId"].as_str().unwrap()));
}

#[test]
fn a_callers_traceparent_adopts_the_run_and_no_endpoint_sends_nothing() {
    let backend = testbed::Backend::start(testbed::Config::default()).unwrap();
    let caller = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    let base = backend.base_url();
    suite(&[("OTEL_EXPORTER_OTLP_ENDPOINT", &base), ("OTEL_SERVICE_NAME", "adopted"), ("TRACEPARENT", caller)]);
    let traces = traces(&backend, "adopted");
    assert_eq!(traces.len(), 1);
    assert_eq!(traces[0]["trace_id"], "0af7651916cd43dd8448eb211c80319c");
    let spans = traces[0]["spans"].as_array().unwrap();
    let root = spans.iter().find(|s| s["name"].as_str().unwrap().starts_with("test run ")).unwrap();
    assert_eq!(root["parentSpanId"], "b7ad6b7169203331");

    // Tracing off: no endpoint, or disabled.
    let (_dir, _) = suite(&[("OTEL_SERVICE_NAME", "untraced")]);
    let (_dir2, _) = suite(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", &base),
        ("OTEL_SERVICE_NAME", "disabled"),
        ("OTEL_SDK_DISABLED", "true"),
    ]);
    let projects: Value = serde_json::from_slice(
        &reqwest::blocking::get(format!("{}/projects", backend.query_url())).unwrap().bytes().unwrap(),
    )
    .unwrap();
    let names = projects.to_string();
    assert!(names.contains("adopted") && !names.contains("untraced") && !names.contains("disabled"), "{projects}");
}
