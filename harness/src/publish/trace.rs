//! Sending a traced run (`measure::trace`) to an OTLP/HTTP endpoint as one trace: a root span
//! for the run and, under it, a span per test attempt — name, suite, markers, outcome, attempt,
//! isolation, phase times, CPU and heap figures; error status on a failed attempt. OTLP/JSON
//! over HTTP (the protocol's own JSON mapping: hex ids, nanosecond times as strings), in
//! batches of 1,000 spans, every request under one deadline.
//!
//! Configured by `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` (the traces URL), else
//! `OTEL_EXPORTER_OTLP_ENDPOINT` or `[tracing] endpoint` (a base URL; `/v1/traces` is added);
//! `OTEL_EXPORTER_OTLP_HEADERS` (`k=v,k2=v2`, values never printed); `OTEL_SERVICE_NAME`
//! (default `reliability`); `OTEL_SDK_DISABLED=true` turns it off.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use crate::measure::trace::RunTrace;
use crate::outcome::TestReport;
use crate::report::{RunInfo, suite_of};

/// Where and how to send the run's trace.
#[derive(Clone, PartialEq, Eq)]
pub struct TraceTarget {
    /// The OTLP/HTTP traces URL.
    pub url: String,
    /// Extra request headers (may be secrets: never printed).
    pub headers: Vec<(String, String)>,
    /// `service.name` of the spans.
    pub service: String,
}

impl std::fmt::Debug for TraceTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.headers.iter().map(|(k, _)| k.as_str()).collect();
        f.debug_struct("TraceTarget")
            .field("url", &self.url)
            .field("headers", &names)
            .field("service", &self.service)
            .finish()
    }
}

impl TraceTarget {
    /// From the environment, or `base` (`[tracing] endpoint`); `None` when tracing is off.
    pub fn resolve(env: &dyn Fn(&str) -> Option<String>, base: Option<&str>) -> Option<TraceTarget> {
        let set = |k: &str| env(k).filter(|v| !v.trim().is_empty());
        if set("OTEL_SDK_DISABLED").is_some_and(|v| v.trim().eq_ignore_ascii_case("true")) {
            return None;
        }
        let url = match set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") {
            Some(url) => url.trim().to_owned(),
            None => {
                let base = set("OTEL_EXPORTER_OTLP_ENDPOINT").or_else(|| base.map(str::to_owned))?;
                format!("{}/v1/traces", base.trim().trim_end_matches('/'))
            }
        };
        let headers = set("OTEL_EXPORTER_OTLP_HEADERS")
            .map(|h| {
                h.split(',')
                    .filter_map(|pair| pair.split_once('='))
                    .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
                    .filter(|(k, _)| !k.is_empty())
                    .collect()
            })
            .unwrap_or_default();
        let service = set("OTEL_SERVICE_NAME").unwrap_or_else(|| "reliability".into());
        Some(TraceTarget { url, headers, service })
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn nanos(t: SystemTime) -> String {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos()).to_string()
}

fn attr(key: &str, value: Value) -> Value {
    let typed = match value {
        Value::Bool(b) => json!({ "boolValue": b }),
        Value::Number(n) if n.is_i64() || n.is_u64() => json!({ "intValue": n.to_string() }),
        Value::Number(n) => json!({ "doubleValue": n.as_f64().unwrap_or(0.0) }),
        Value::Array(items) => {
            let values: Vec<Value> =
                items.iter().map(|v| json!({ "stringValue": v.as_str().unwrap_or_default() })).collect();
            json!({ "arrayValue": { "values": values } })
        }
        other => json!({ "stringValue": other.as_str().map_or_else(|| other.to_string(), str::to_owned) }),
    };
    json!({ "key": key, "value": typed })
}

/// OTLP status codes: unset, ok, error.
const STATUS_OK: u8 = 1;
const STATUS_ERROR: u8 = 2;

/// Every span of the run: the root first, then one per attempt (pure).
pub fn spans(
    trace: &RunTrace,
    run: &RunInfo,
    reports: &[TestReport],
    ended: SystemTime,
    flaky_fails: bool,
) -> Vec<Value> {
    let root = hex(&trace.root);
    let trace_id = trace.trace_hex();
    let failures = reports.iter().filter(|r| r.outcome.is_failure(flaky_fails)).count();
    let mut root_span = json!({
        "traceId": trace_id,
        "spanId": root,
        "name": format!("test run {}", run.binary),
        "kind": 1,
        "startTimeUnixNano": nanos(trace.started),
        "endTimeUnixNano": nanos(ended),
        "attributes": [
            attr("test.run.binary", json!(run.binary)),
            attr("test.run.tests", json!(reports.len())),
            attr("test.run.failures", json!(failures)),
            attr("test.run.interrupted", json!(run.interrupted)),
            attr("vcs.ref.head.revision", json!(run.commit.clone().unwrap_or_default())),
            attr("vcs.ref.head.name", json!(run.branch.clone().unwrap_or_default())),
        ],
        "status": if failures > 0 {
            json!({ "code": STATUS_ERROR, "message": format!("{failures} test(s) failed") })
        } else {
            json!({ "code": STATUS_OK })
        },
    });
    if let Some(parent) = trace.parent {
        root_span["parentSpanId"] = json!(hex(&parent));
    }
    let mut out = vec![root_span];
    for report in reports {
        for (i, attempt) in report.attempts.iter().enumerate() {
            let number = i as u32 + 1;
            let Some((start, end)) = trace.times(&report.name, number) else { continue };
            let m = &attempt.measurements;
            let failed = attempt.outcome.is_failure(true);
            let mut attributes = vec![
                attr("test.name", json!(report.name)),
                attr("test.suite", json!(suite_of(&report.name))),
                attr("test.markers", json!(report.markers)),
                attr("test.outcome", json!(attempt.outcome.label())),
                attr("test.final_outcome", json!(report.outcome.label())),
                attr("test.attempt", json!(number)),
                attr("test.isolation", json!(report.isolation)),
                attr("test.phase.setup_seconds", json!(attempt.phases.setup.as_secs_f64())),
                attr("test.phase.call_seconds", json!(attempt.phases.call.as_secs_f64())),
                attr("test.phase.teardown_seconds", json!(attempt.phases.teardown.as_secs_f64())),
                attr("test.cpu_seconds", json!(m.cpu_seconds.setup + m.cpu_seconds.call + m.cpu_seconds.teardown)),
            ];
            for (key, value) in [
                ("test.peak_heap_bytes", m.peak_heap_bytes.map(|v| json!(v))),
                ("test.heap_growth_bytes", m.heap_growth_bytes.map(|v| json!(v))),
                ("test.peak_rss_bytes", m.peak_rss_bytes.map(|v| json!(v))),
            ] {
                if let Some(value) = value {
                    attributes.push(attr(key, value));
                }
            }
            out.push(json!({
                "traceId": trace_id,
                "spanId": hex(&trace.attempt_span(&report.name, number)),
                "parentSpanId": root,
                "name": report.name,
                "kind": 1,
                "startTimeUnixNano": nanos(start),
                "endTimeUnixNano": nanos(end),
                "attributes": attributes,
                "status": if failed {
                    json!({ "code": STATUS_ERROR, "message": attempt.outcome.label() })
                } else {
                    json!({ "code": STATUS_OK })
                },
            }));
        }
    }
    out
}

/// Sends the spans in batches within `timeout`; returns how many were accepted.
pub fn export(target: &TraceTarget, spans: Vec<Value>, timeout: Duration) -> Result<usize, String> {
    let deadline = Instant::now() + timeout;
    let client =
        reqwest::blocking::Client::builder().build().map_err(|e| format!("cannot build the HTTP client: {e}"))?;
    let mut sent = 0;
    for batch in spans.chunks(1000) {
        let body = json!({ "resourceSpans": [{
            "resource": { "attributes": [attr("service.name", json!(target.service))] },
            "scopeSpans": [{ "scope": { "name": "reliability-harness", "version": env!("CARGO_PKG_VERSION") }, "spans": batch }],
        }]});
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            return Err(format!("the trace export to {} ran out of time after {sent} spans", target.url));
        }
        let mut request = client.post(&target.url).timeout(remaining).header("Content-Type", "application/json");
        for (k, v) in &target.headers {
            request = request.header(k.as_str(), v.as_str());
        }
        let response = request
            .body(body.to_string())
            .send()
            .map_err(|e| format!("the trace export to {} failed: {}", target.url, e.without_url()))?;
        if !response.status().is_success() {
            return Err(format!("the trace export to {} got HTTP {}", target.url, response.status()));
        }
        sent += batch.len();
    }
    Ok(sent)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_endpoint_comes_from_the_standard_variables() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| (*v).to_owned())
        };
        let t = TraceTarget::resolve(&env(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://h:4318/")]), None);
        assert_eq!(t.map(|t| t.url), Some("http://h:4318/v1/traces".into()));
        let t = TraceTarget::resolve(
            &env(&[("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://h/x"), ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://o")]),
            None,
        );
        assert_eq!(t.map(|t| t.url), Some("http://h/x".into()));
        let t = TraceTarget::resolve(&env(&[("OTEL_EXPORTER_OTLP_HEADERS", "a=s3cret, b = 2")]), Some("http://file"));
        assert_eq!(t.clone().map(|t| t.headers), Some(vec![("a".into(), "s3cret".into()), ("b".into(), "2".into())]));
        assert!(!format!("{t:?}").contains("s3cret"), "header values are never printed: {t:?}");
        assert_eq!(TraceTarget::resolve(&env(&[]), None), None, "off without an endpoint");
        let off = env(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://h"), ("OTEL_SDK_DISABLED", "true")]);
        assert_eq!(TraceTarget::resolve(&off, None), None);
    }
}
