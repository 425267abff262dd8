//! The inputs the benchmarks share, built the same way in every tier so that a criterion
//! figure and an instruction count describe the same work.

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use prost::Message;
use reliability_harness::outcome::{Attempt, Outcome, Phases, TestReport};
use reliability_harness::report::RunInfo;

/// Spans in one export batch (the SDK's default `max_export_batch_size`).
pub const BATCH_SPANS: usize = 512;

fn attr(key: &str, value: String) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(any_value::Value::StringValue(value)) }),
        ..KeyValue::default()
    }
}

/// Export request number `batch`: [`BATCH_SPANS`] spans of ~1 KB (nine 75-byte attributes),
/// traces of eight spans, ids unique across batches.
pub fn request(batch: usize) -> ExportTraceServiceRequest {
    let spans = (0..BATCH_SPANS)
        .map(|i| {
            let n = (batch * BATCH_SPANS + i) as u64;
            let mut trace_id = [0u8; 16];
            trace_id[..8].copy_from_slice(&(batch as u64).to_be_bytes());
            trace_id[8..].copy_from_slice(&((i / 8) as u64).to_be_bytes());
            Span {
                trace_id: trace_id.to_vec(),
                span_id: (n + 1).to_be_bytes().to_vec(),
                parent_span_id: if i % 8 == 0 { Vec::new() } else { n.to_be_bytes().to_vec() },
                name: format!("chat gpt-4o {i}"),
                kind: 3,
                start_time_unix_nano: 1_700_000_000_000_000_000 + i as u64,
                end_time_unix_nano: 1_700_000_000_000_500_000 + i as u64,
                attributes: (0..9)
                    .map(|k| attr(&format!("gen_ai.attribute.{k}"), format!("{k:02}-{}", "x".repeat(70))))
                    .collect(),
                ..Span::default()
            }
        })
        .collect();
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource { attributes: vec![attr("service.name", "bench".into())], ..Resource::default() }),
            scope_spans: vec![ScopeSpans { spans, ..ScopeSpans::default() }],
            ..ResourceSpans::default()
        }],
    }
}

/// [`request`] encoded as protobuf: the body of one OTLP/HTTP export.
pub fn body(batch: usize) -> Vec<u8> {
    request(batch).encode_to_vec()
}

/// Ten attributes of the kinds instrumented code sets (strings, integers, a float, a bool).
pub fn ten_attributes() -> Vec<opentelemetry::KeyValue> {
    use opentelemetry::KeyValue as Kv;
    vec![
        Kv::new("gen_ai.system", "openai"),
        Kv::new("gen_ai.request.model", "gpt-4o"),
        Kv::new("gen_ai.operation.name", "chat"),
        Kv::new("gen_ai.request.max_tokens", 1024_i64),
        Kv::new("gen_ai.request.temperature", 0.2_f64),
        Kv::new("gen_ai.usage.input_tokens", 311_i64),
        Kv::new("gen_ai.usage.output_tokens", 97_i64),
        Kv::new("gen_ai.response.finish_reasons", "stop"),
        Kv::new("server.address", "127.0.0.1"),
        Kv::new("stream", false),
    ]
}

/// The reports of a run of `tests` tests over 10 suites, for exposition rendering: every
/// outcome kind appears, every test has a duration and CPU figures.
pub fn reports(tests: usize) -> (RunInfo, Vec<TestReport>) {
    let run = RunInfo {
        binary: "bench".into(),
        host: "bench-host".into(),
        started_at: "2026-11-23T00:00:00Z".into(),
        version: "0.1.0".into(),
        duration_seconds: 12.5,
        ..RunInfo::default()
    };
    let reports = (0..tests)
        .map(|i| {
            let outcome = match i % 10 {
                0 => Outcome::Failed { message: "assertion failed".into() },
                1 => Outcome::Skipped { reason: "not on this platform".into() },
                _ => Outcome::Passed,
            };
            let mut attempt = Attempt::bare(outcome.clone());
            attempt.phases = Phases {
                setup: std::time::Duration::from_micros(i as u64 % 100),
                call: std::time::Duration::from_millis(1 + i as u64 % 50),
                teardown: std::time::Duration::from_micros(7),
            };
            TestReport {
                name: format!("suite_{}::test_{i}", i % 10).into(),
                markers: if i % 3 == 0 { vec!["slow".into()] } else { Vec::new() },
                outcome,
                attempts: vec![attempt],
                output: String::new(),
                output_bytes: 0,
                isolation: "process".into(),
            }
        })
        .collect();
    (run, reports)
}

/// A `-m` expression of the size people write, and the markers of the tests it is asked of.
pub const MARK_EXPRESSION: &str = "(e2e or smoke) and not (slow or chaos) and not flaky_network";

/// Marker sets to evaluate [`MARK_EXPRESSION`] against.
pub fn marker_sets() -> Vec<Vec<&'static str>> {
    vec![
        vec!["e2e"],
        vec!["smoke", "slow"],
        vec![],
        vec!["e2e", "chaos"],
        vec!["smoke", "flaky_network"],
        vec!["unit", "fast", "db"],
    ]
}

/// Evaluates `expr` against each of `sets`; the number that match.
pub fn count_matches(expr: &reliability_harness::select::expr::Expr, sets: &[Vec<&str>]) -> usize {
    sets.iter().filter(|set| expr.eval(&mut |marker| set.contains(&marker))).count()
}
