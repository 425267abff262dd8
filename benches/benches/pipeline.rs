//! Span start+end through the client pipeline under test (`reliability_client::Pipeline`: the
//! SDK's BatchSpanProcessor and OTLP/HTTP exporter, exporting to the embedded backend on
//! loopback) next to a no-op tracer, with 0 and 10 attributes; and `on_end` enqueueing from 1,
//! 2 and 8 threads at once.
//!
//! The queue is emptied (`force_flush`, untimed) after every 2,048 spans, so no span is ever
//! dropped: a dropped span costs less than an enqueued one and would flatter the figure. Each
//! bench checks the pipeline's accounting afterwards and fails if a span was dropped. The
//! backend's copy of the spans is deleted (untimed) after every round too: criterion makes
//! millions of spans, and a full store would refuse exports and stall the flushes.
//!
//! Run: `cargo bench -p reliability-benches --bench pipeline`

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use opentelemetry::trace::Span as _;
use reliability_benches::inputs::ten_attributes;
use reliability_client::{ClientConfig, Pipeline};

/// Spans per timed round; the queue holds twice as many.
const ROUND: u64 = 2048;

fn pipeline(sink: &Sink) -> Pipeline {
    let config = ClientConfig {
        endpoint: sink.backend.traces_url(),
        max_queue_size: 2 * ROUND as usize,
        scheduled_delay_ms: 60_000,
        service_name: "bench".into(),
        ..ClientConfig::default()
    };
    Pipeline::start(&config).expect("start the pipeline")
}

fn one_span(tracer: &impl opentelemetry::trace::Tracer, attributes: &[opentelemetry::KeyValue]) {
    let mut span = tracer.span_builder("chat gpt-4o").with_attributes(attributes.to_vec()).start(tracer);
    span.end();
    black_box(&span);
}

/// Times `iters` spans made by `threads` threads at once, in rounds of [`ROUND`] spans with the
/// queue emptied between rounds. A round's time is its slowest thread's, from a common start.
/// The backend and a client to empty its store between rounds.
struct Sink {
    backend: testbed::Backend,
    http: reqwest::blocking::Client,
}

impl Sink {
    fn start() -> Sink {
        let backend = testbed::Backend::start(testbed::Config::default()).expect("start the backend");
        Sink { backend, http: reqwest::blocking::Client::new() }
    }

    /// Deletes what the backend stored of the bench's project.
    fn empty(&self) {
        let url = format!("{}/projects/bench", self.backend.query_url());
        let status = self.http.delete(url).send().expect("delete the stored spans").status().as_u16();
        assert!(status == 204 || status == 404, "deleting the stored spans answered {status}");
    }
}

fn timed_rounds(
    sink: &Sink,
    pipeline: &Pipeline,
    threads: u64,
    iters: u64,
    attributes: &[opentelemetry::KeyValue],
) -> Duration {
    let tracer = pipeline.tracer("bench");
    let mut total = Duration::ZERO;
    let mut left = iters;
    while left > 0 {
        let round = left.min(ROUND);
        let barrier = std::sync::Barrier::new(threads as usize);
        let slowest = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..threads)
                .map(|t| {
                    let (tracer, barrier) = (&tracer, &barrier);
                    let mine = round / threads + u64::from(t < round % threads);
                    scope.spawn(move || {
                        barrier.wait();
                        let started = Instant::now();
                        for _ in 0..mine {
                            one_span(tracer, attributes);
                        }
                        started.elapsed()
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().expect("a span thread")).max().unwrap_or_default()
        });
        total += slowest;
        pipeline.force_flush().expect("flush between rounds");
        sink.empty();
        left -= round;
    }
    total
}

fn assert_nothing_dropped(pipeline: &Pipeline) {
    let accounting = pipeline.accounting();
    assert_eq!(accounting.dropped, 0, "the bench dropped spans: {accounting:?}");
    assert_eq!(accounting.unaccounted(), 0, "{accounting:?}");
}

fn span_overhead(c: &mut Criterion) {
    let sink = Sink::start();
    let pipeline = pipeline(&sink);
    let noop = opentelemetry::trace::noop::NoopTracer::new();
    let mut group = c.benchmark_group("span");
    group.throughput(Throughput::Elements(1));
    for (label, attributes) in [("0_attrs", Vec::new()), ("10_attrs", ten_attributes())] {
        group.bench_function(format!("noop/{label}"), |b| b.iter(|| one_span(&noop, &attributes)));
        group.bench_function(format!("pipeline/{label}"), |b| {
            b.iter_custom(|iters| timed_rounds(&sink, &pipeline, 1, iters, &attributes));
        });
    }
    group.finish();
    assert_nothing_dropped(&pipeline);
    drop(pipeline);
    sink.backend.shutdown();
}

fn on_end_contention(c: &mut Criterion) {
    let sink = Sink::start();
    let pipeline = pipeline(&sink);
    let mut group = c.benchmark_group("on_end");
    group.throughput(Throughput::Elements(1));
    for threads in [1u64, 2, 8] {
        group.bench_function(format!("threads_{threads}"), |b| {
            b.iter_custom(|iters| timed_rounds(&sink, &pipeline, threads, iters, &[]));
        });
    }
    group.finish();
    assert_nothing_dropped(&pipeline);
    drop(pipeline);
    sink.backend.shutdown();
}

criterion_group!(benches, span_overhead, on_end_contention);
criterion_main!(benches);
