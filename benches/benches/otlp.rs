//! OTLP protobuf encode and decode of one 512-span batch, and the backend's ingest of that
//! batch: decode, split by project, dedup and store (into a fresh store each time, untimed).
//!
//! Run: `cargo bench -p reliability-benches --bench otlp`

use std::hint::black_box;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;
use reliability_benches::inputs::{BATCH_SPANS, body, request};
use testbed::ingest::Encoding;

fn otlp(c: &mut Criterion) {
    let request = request(0);
    let body = body(0);
    let mut group = c.benchmark_group("otlp");
    group.throughput(Throughput::Elements(BATCH_SPANS as u64));
    group.bench_function("encode_512", |b| b.iter(|| black_box(&request).encode_to_vec()));
    group.bench_function("decode_512", |b| {
        b.iter(|| ExportTraceServiceRequest::decode(black_box(body.as_slice())).expect("decode"));
    });
    group.bench_function("ingest_512", |b| {
        b.iter_batched(
            || testbed::store::Store::new(testbed::Limits::default()),
            |mut store| {
                let request = testbed::ingest::decode(black_box(&body), Encoding::Protobuf).expect("decode");
                let stored = store.store(testbed::ingest::batches(request, None));
                assert_eq!(stored.accepted, BATCH_SPANS as u64);
                store
            },
            BatchSize::SmallInput,
        );
    });
    group.finish();
}

criterion_group!(benches, otlp);
criterion_main!(benches);
