//! Instruction counts of the deterministic hot paths under Valgrind's Callgrind (gungraun):
//! the same work as the criterion benches, counted instead of timed, so the gate has a tier
//! that does not move with the machine's load. Setup (building the inputs) is not counted.
//!
//! The pipeline's span benches are left to criterion: they cross threads and a socket, whose
//! instruction counts depend on scheduling.
//!
//! Needs `valgrind` and `gungraun-runner` of the library's version (ci/test.sh installs both).
//! Run: `cargo bench -p reliability-benches --bench instructions`

use std::hint::black_box;
use std::time::Duration;

use gungraun::{library_benchmark, library_benchmark_group, main};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;
use reliability_benches::inputs::{MARK_EXPRESSION, body, count_matches, marker_sets, reports, request};
use reliability_harness::outcome::TestReport;
use reliability_harness::report::RunInfo;
use reliability_harness::select::expr::Expr;
use testbed::ingest::Encoding;

fn encode_input() -> ExportTraceServiceRequest {
    request(0)
}

fn body_input() -> Vec<u8> {
    body(0)
}

fn ingest_input() -> (Vec<u8>, testbed::store::Store) {
    (body(0), testbed::store::Store::new(testbed::Limits::default()))
}

fn markexpr_input() -> (Expr, Vec<Vec<&'static str>>) {
    (Expr::parse(MARK_EXPRESSION).expect("the expression parses"), marker_sets())
}

fn prom_input() -> (RunInfo, Vec<TestReport>) {
    reports(1000)
}

#[library_benchmark]
#[bench::batch(setup = encode_input)]
fn encode_512(request: ExportTraceServiceRequest) -> Vec<u8> {
    black_box(request.encode_to_vec())
}

#[library_benchmark]
#[bench::batch(setup = body_input)]
fn decode_512(body: Vec<u8>) -> ExportTraceServiceRequest {
    black_box(ExportTraceServiceRequest::decode(body.as_slice()).expect("decode"))
}

#[library_benchmark]
#[bench::batch(setup = ingest_input)]
fn ingest_512((body, mut store): (Vec<u8>, testbed::store::Store)) -> u64 {
    let request = testbed::ingest::decode(&body, Encoding::Protobuf).expect("decode");
    black_box(store.store(testbed::ingest::batches(request, None)).accepted)
}

#[library_benchmark]
#[bench::six_sets(setup = markexpr_input)]
fn markexpr_eval((expr, sets): (Expr, Vec<Vec<&'static str>>)) -> usize {
    black_box(count_matches(&expr, &sets))
}

#[library_benchmark]
#[bench::tests_1000(setup = prom_input)]
fn prom_render_1000((run, reports): (RunInfo, Vec<TestReport>)) -> String {
    black_box(reliability_harness::report::prom::render(&run, &reports, None))
}

#[library_benchmark]
#[bench::samples_1000(setup = reliability_harness::Metrics::default)]
fn hdr_record_1000(metrics: reliability_harness::Metrics) -> reliability_harness::Metrics {
    for i in 0..1000u64 {
        metrics.record_latency("export", black_box(Duration::from_micros(1 + i * 97 % 100_000)));
    }
    metrics
}

library_benchmark_group!(
    name = otlp;
    benchmarks = encode_512, decode_512, ingest_512
);

library_benchmark_group!(
    name = harness;
    benchmarks = markexpr_eval, prom_render_1000, hdr_record_1000
);

main!(library_benchmark_groups = otlp, harness);
