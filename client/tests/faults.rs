//! Faults inside the client, not on the wire: a serializing exporter that fails, a panicking
//! exporter, an export thread that dies, attribute values far over the limit and non-finite
//! numbers. The caller never sees them; every span is counted where it went; shutdown stays
//! bounded. And the pipeline's health can be scraped while it runs.

#[path = "../../testbed/tests/common/mod.rs"]
mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use opentelemetry::trace::{Span as _, Tracer as _};
use opentelemetry::{Array, KeyValue, Value};
use reliability_client::serve::MetricsServer;
use reliability_client::{ClientConfig, ExportGate, Pipeline};
use testbed::{Backend, Config};

fn pipeline(backend: &Backend, service: &str, change: impl FnOnce(&mut ClientConfig)) -> Pipeline {
    let mut config = ClientConfig {
        endpoint: backend.traces_url(),
        service_name: service.into(),
        scheduled_delay_ms: 50,
        max_export_batch_size: 10,
        ..ClientConfig::default()
    };
    change(&mut config);
    Pipeline::start(&config).expect("pipeline")
}

/// Ends `n` spans, each flushed as its own batch of 10 (force_flush after every 10).
fn end_in_batches(p: &Pipeline, n: usize) {
    let tracer = p.tracer("faults");
    for i in 0..n {
        tracer.start(format!("span {i}")).end();
        if i % 10 == 9 {
            let _ = p.force_flush();
        }
    }
}

#[test]
fn exporter_errors_and_panics_are_counted_and_the_export_thread_lives_on() {
    let backend = Backend::start(Config::default()).unwrap();
    let p = pipeline(&backend, "panics", |c| {
        c.scheduled_delay_ms = 3_600_000;
        c.hooks.export_errors = 2;
        c.hooks.export_panics = 3;
    });
    end_in_batches(&p, 100);
    let (a, _) = p.shutdown();
    assert!(a.shutdown_completed && a.is_balanced(), "{a:?}");
    // Batches of 10: 2 failed to serialize, 3 panicked, the other 5 arrived.
    assert_eq!((a.ended, a.failed, a.failed_panic, a.exported), (100, 50, 30, 50), "{a:?}");
    assert_eq!(common::stats(&backend.base_url(), "panics")["unique"].as_u64(), Some(50));
}

#[test]
fn a_dead_export_thread_leaves_every_span_counted_failed_and_shutdown_bounded() {
    let backend = Backend::start(Config::default()).unwrap();
    let p = pipeline(&backend, "dead", |c| {
        c.scheduled_delay_ms = 3_600_000;
        c.shutdown_timeout_ms = 5_000;
        c.hooks.crash_export_thread = true;
    });
    let tracer = p.tracer("faults");
    for i in 0..10 {
        tracer.start(format!("first {i}")).end();
    }
    let _ = p.force_flush();
    // The thread is gone once the flush came back (its batch's guard ran as it unwound).
    let mid = p.accounting();
    assert_eq!((mid.failed_panic, mid.failed_worker_gone, mid.queued), (10, 0, 0), "{mid:?}");
    for i in 0..500 {
        tracer.start(format!("after {i}")).end();
    }
    let started = Instant::now();
    let (a, _) = p.shutdown();
    assert!(started.elapsed() < Duration::from_secs(30), "shutdown took {:?}", started.elapsed());
    assert!(a.is_balanced(), "{a:?}");
    assert_eq!((a.ended, a.failed, a.failed_worker_gone, a.exported, a.queued), (510, 510, 500, 0, 0), "{a:?}");
}

#[test]
fn oversized_attributes_are_cut_and_counted_and_non_finite_numbers_pass() {
    let backend = Backend::start(Config::default()).unwrap();
    let p = pipeline(&backend, "huge", |c| c.max_attribute_bytes = 1024);
    let tracer = p.tracer("faults");
    let mut span = tracer.start("huge");
    span.set_attribute(KeyValue::new("prompt", "p".repeat(1 << 20)));
    span.set_attribute(KeyValue::new("embedding", Value::Array(Array::F64(vec![0.5; 100_000]))));
    span.set_attribute(KeyValue::new("score", f64::NAN));
    span.set_attribute(KeyValue::new("limit", f64::INFINITY));
    span.end();
    let (a, _) = p.shutdown();
    assert!(a.shutdown_completed && a.is_balanced(), "{a:?}");
    assert_eq!((a.exported, a.attributes_truncated, a.attributes_non_finite), (1, 2, 2), "{a:?}");
    let stats = common::stats(&backend.base_url(), "huge");
    assert_eq!(stats["unique"].as_u64(), Some(1), "{stats}");
    // The request carried the cut values: far less than the 1.8 MB given.
    let bytes = stats["bytes"].as_u64().unwrap_or(u64::MAX);
    assert!(bytes < 8_192, "{bytes} bytes received for a span cut to 1 KiB values: {stats}");
}

#[test]
fn health_is_scraped_while_the_pipeline_runs() {
    let backend = Backend::start(Config::default()).unwrap();
    let gate = ExportGate::closed();
    let p = Arc::new(pipeline(&backend, "scraped", |c| {
        c.max_queue_size = 100;
        c.max_export_batch_size = 100;
        c.hooks.export_gate = Some(gate.clone());
    }));
    let render = {
        let p = Arc::clone(&p);
        Arc::new(move || p.metrics())
    };
    let server = MetricsServer::start("127.0.0.1:0", render).unwrap();
    let tracer = p.tracer("faults");
    for i in 0..150 {
        tracer.start(format!("span {i}")).end();
    }
    let body = String::from_utf8_lossy(&common::get(&server.url(), &[]).body).into_owned();
    for line in [
        "reliability_client_spans_created_total 150",
        "reliability_client_queue_spans 100",
        "reliability_client_queue_utilisation_ratio 1",
        "reliability_client_spans_dropped_total{reason=\"queue_full\"} 50",
    ] {
        assert!(body.lines().any(|l| l == line), "no {line:?} in\n{body}");
    }
    assert_eq!(common::get(&format!("http://{}/other", server.addr()), &[]).status, 404);
    assert_eq!(server.scrapes(), 1);
    gate.open();
    drop(server);
    let p = Arc::try_unwrap(p).expect("the server let go of the pipeline");
    let (a, _) = p.shutdown();
    assert!(a.is_balanced() && a.exported == 100, "{a:?}");
    assert!(a.last_export_unix_ms > 0, "{a:?}");
}
