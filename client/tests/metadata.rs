//! Span metadata through the real pipeline: cleared when a span ends, expired after the TTL
//! for spans that never end, and never above its cap however many spans come.

#![expect(clippy::unwrap_used, reason = "test code: a panic is the failure report")]

use std::time::{Duration, Instant};

use opentelemetry::trace::{Span as _, Tracer as _};
use reliability_client::{ClientConfig, Pipeline};
use testbed::{Backend, Config};

fn pipeline(backend: &Backend, capacity: usize) -> Pipeline {
    let config = ClientConfig {
        endpoint: backend.traces_url(),
        service_name: "metadata".into(),
        scheduled_delay_ms: 50,
        metadata_capacity: capacity,
        metadata_ttl_ms: 60_000,
        ..ClientConfig::default()
    };
    Pipeline::start(&config).unwrap()
}

#[test]
fn ended_spans_clear_their_metadata_and_hung_ones_expire() {
    let backend = Backend::start(Config::default()).unwrap();
    let pipeline = pipeline(&backend, 10_000);
    let tracer = pipeline.tracer("metadata-tests");
    let store = pipeline.metadata();
    let mut hung = Vec::new();
    for i in 0..150 {
        let mut span = tracer.start(format!("s{i}"));
        let cx = span.span_context().clone();
        store.set(cx.trace_id(), cx.span_id(), "prompt_template", "t1");
        store.set(cx.trace_id(), cx.span_id(), "model", "m");
        if i < 100 {
            span.end();
        } else {
            hung.push(span);
        }
    }
    let s = store.stats();
    assert_eq!((s.inserted, s.updated, s.cleared, s.held), (150, 150, 100, 50));
    // The 50 that never end: gone once the TTL has passed, whatever else happens.
    store.sweep_at(Instant::now() + Duration::from_secs(61));
    let s = store.stats();
    assert_eq!((s.expired, s.held), (50, 0));
    assert_eq!(s.inserted, s.held + s.cleared + s.expired + s.evicted);
    drop(hung);
    let (accounting, _) = pipeline.shutdown();
    assert_eq!(accounting.ended, 150, "a hung span still ends (here when dropped) and is exported");
}

#[test]
fn twenty_thousand_spans_never_hold_more_than_the_cap() {
    let backend = Backend::start(Config::default()).unwrap();
    let pipeline = pipeline(&backend, 10_000);
    let tracer = pipeline.tracer("metadata-tests");
    let store = pipeline.metadata();
    let mut open = Vec::with_capacity(20_000);
    for i in 0..20_000 {
        let span = tracer.start(format!("s{i}"));
        let cx = span.span_context().clone();
        store.set(cx.trace_id(), cx.span_id(), "k", "v");
        open.push(span);
    }
    let s = store.stats();
    assert_eq!((s.inserted, s.held, s.peak_held, s.evicted), (20_000, 10_000, 10_000, 10_000));
    for mut span in open {
        span.end();
    }
    let s = store.stats();
    assert_eq!((s.cleared, s.held), (10_000, 0), "the newest 10,000 were held and cleared at their end");
    pipeline.shutdown();
}
