//! Ingest throughput, in one run: spans/s for protobuf batches of 512 spans (~1 KB each) sent
//! over loopback to the backend, next to the decode-only limit (prost decoding the same bodies
//! in-process, one thread), as a ratio; and heap bytes per stored span (counting allocator).
//! Target: ingest ≥ 0.5 × decode-only.
//!
//! Run: `cargo bench -p reliability-benches --bench ingest`

use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;
use reliability_benches::inputs::{BATCH_SPANS as SPANS_PER_BATCH, body};

reliability_harness::global_allocator!();

const BATCHES: usize = 200;
const CLIENTS: usize = 2;

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
