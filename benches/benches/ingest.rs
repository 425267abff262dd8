//! Ingest throughput, in one run: spans/s for protobuf batches of 512 spans (~1 KB each) sent
//! over loopback to the backend, next to the decode-only limit (prost decoding the same bodies
//! in-process, one thread), as a ratio; and heap bytes per stored span (counting allocator).
//! Target: ingest ≥ 0.5 × decode-only.
//!
//! Run: `cargo bench -p testbed --bench ingest`

use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use prost::Message;

reliability_harness::global_allocator!();

const SPANS_PER_BATCH: usize = 512;
const BATCHES: usize = 200;
const CLIENTS: usize = 2;

fn attr(key: &str, value: String) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(any_value::Value::StringValue(value)) }),
        ..KeyValue::default()
    }
}

fn body(batch: usize) -> Vec<u8> {
    let spans = (0..SPANS_PER_BATCH)
        .map(|i| {
            let mut trace_id = [0u8; 16];
            trace_id[..8].copy_from_slice(&(batch as u64).to_be_bytes());
            trace_id[8..].copy_from_slice(&((i / 8) as u64).to_be_bytes());
            Span {
                trace_id: trace_id.to_vec(),
                span_id: ((batch * SPANS_PER_BATCH + i) as u64 + 1).to_be_bytes().to_vec(),
                parent_span_id: if i % 8 == 0 {
                    Vec::new()
                } else {
                    ((batch * SPANS_PER_BATCH + i) as u64).to_be_bytes().to_vec()
                },
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
    .encode_to_vec()
}

fn main() {
    let bodies: Vec<Vec<u8>> = (0..BATCHES).map(body).collect();
    let total_spans = (BATCHES * SPANS_PER_BATCH) as f64;
    let bytes_per_span = bodies.iter().map(Vec::len).sum::<usize>() as f64 / total_spans;

    // Decode-only limit: the same bodies, prost in-process, one thread, best of 3.
    let mut decode_rate: f64 = 0.0;
    for _ in 0..3 {
        let started = Instant::now();
        for b in &bodies {
            std::hint::black_box(ExportTraceServiceRequest::decode(b.as_slice()).expect("decode"));
        }
        decode_rate = decode_rate.max(total_spans / started.elapsed().as_secs_f64());
    }

    // Ingest over loopback: a fresh backend, CLIENTS keep-alive connections, best of 3.
    let mut ingest_rate: f64 = 0.0;
    let mut per_span_heap = 0.0;
    for _ in 0..3 {
        let live_before = reliability_harness::measure::counters().map(|c| c.live_bytes);
        let backend = testbed::Backend::start(testbed::Config::default()).expect("start the backend");
        let url = backend.traces_url();
        let started = Instant::now();
        std::thread::scope(|scope| {
            for client in 0..CLIENTS {
                let (url, bodies) = (&url, &bodies);
                scope.spawn(move || {
                    let http = reqwest::blocking::Client::builder()
                        .timeout(Duration::from_secs(60))
                        .build()
                        .expect("an HTTP client");
                    for b in bodies.iter().skip(client).step_by(CLIENTS) {
                        let response = http
                            .post(url)
                            .header("content-type", "application/x-protobuf")
                            .body(b.clone())
                            .send()
                            .expect("post");
                        assert_eq!(response.status().as_u16(), 200);
                    }
                });
            }
        });
        ingest_rate = ingest_rate.max(total_spans / started.elapsed().as_secs_f64());
        if let (Some(before), Some(after)) =
            (live_before, reliability_harness::measure::counters().map(|c| c.live_bytes))
        {
            per_span_heap = (after as f64 - before as f64) / total_spans;
        }
        backend.shutdown();
    }
    let ratio = ingest_rate / decode_rate;
    println!(
        "ingest benchmark: {BATCHES} protobuf batches x {SPANS_PER_BATCH} spans, {bytes_per_span:.0} bytes/span encoded"
    );
    println!("  decode-only (prost, 1 thread)        {decode_rate:>12.0} spans/s");
    println!("  ingest over loopback ({CLIENTS} clients)     {ingest_rate:>12.0} spans/s");
    println!(
        "  ratio ingest / decode-only = {ratio:.2} (target >= 0.5: {})",
        if ratio >= 0.5 { "met" } else { "NOT met" }
    );
    println!("  heap per stored span (store, index, ledger) = {per_span_heap:.0} bytes");
}
