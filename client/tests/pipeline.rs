//! The client pipeline's accounting against injected faults: every span ends up exported,
//! rejected (partial success), failed, dropped, in an export or still queued — each counted by
//! its own observer, so a span lost without a report breaks the identity — and shutdown stays
//! within its bound even when the backend hangs.

// The testbed tests' helpers (raw HTTP, stats), shared rather than copied.
#[path = "../../testbed/tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use opentelemetry::trace::{Span as _, Tracer as _};
use reliability_client::{ClientConfig, ExportGate, Pipeline, render_metrics};
use serde_json::json;
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

fn end_spans(pipeline: &Pipeline, n: usize) {
    let tracer = pipeline.tracer("pipeline-tests");
    for i in 0..n {
        tracer.start(format!("span {i}")).end();
    }
}

fn plan(base: &str, project: &str, action: serde_json::Value) {
    let answer = common::put_json(
        &format!("{base}/api/v1/projects/{project}/faults"),
        &json!({"rules": [{"when": {"always": true}, "action": action}]}),
    );
    assert_eq!(answer.status, 200);
}

#[test]
fn partial_success_is_counted_as_rejected_and_the_rest_as_exported() {
    let backend = Backend::start(Config::default()).unwrap();
    plan(&backend.base_url(), "partial", json!({"kind": "partial_success", "rejected": 2}));
    let p = pipeline(&backend, "partial", |_| {});
    end_spans(&p, 50);
    let (a, _) = p.shutdown();
    assert!(a.is_balanced() && a.shutdown_completed, "{a:?}");
    assert_eq!(a.ended, 50);
    // Batches are cut by size or by the delay, so how many were rejected depends on timing;
    // the client's counts must equal the backend's exactly.
    let stats = common::stats(&backend.base_url(), "partial");
    assert_eq!(stats["unique"].as_u64(), Some(a.exported), "{stats} vs {a:?}");
    assert_eq!(stats["rejected"]["partial_success"].as_u64(), Some(a.rejected), "{stats} vs {a:?}");
    assert!(a.rejected >= 2 && a.exported + a.rejected == 50, "{a:?}");
}

#[test]
fn failed_exports_are_counted_as_failed() {
    let backend = Backend::start(Config::default()).unwrap();
    plan(&backend.base_url(), "failing", json!({"kind": "status", "code": 500}));
    let p = pipeline(&backend, "failing", |_| {});
    end_spans(&p, 30);
    let (a, _) = p.shutdown();
    assert!(a.is_balanced(), "{a:?}");
    assert_eq!((a.failed, a.exported), (30, 0), "{a:?}");
}

#[test]
fn a_hanging_backend_cannot_hang_shutdown_past_its_bound() {
    let backend = Backend::start(Config::default()).unwrap();
    plan(&backend.base_url(), "hanging", json!({"kind": "hang", "ms": 60000}));
    let p = pipeline(&backend, "hanging", |c| {
        c.export_timeout_ms = 30_000;
        c.shutdown_timeout_ms = 1500;
    });
    end_spans(&p, 20);
    let started = Instant::now();
    let (a, _) = p.shutdown();
    // Waiting for the hang (60 s) or the export timeout (30 s) would take far longer.
    assert!(started.elapsed() < Duration::from_secs(25), "shutdown took {:?}", started.elapsed());
    assert!(!a.shutdown_completed, "{a:?}");
    // Nothing got through, failed or was dropped: every span is in the hung export or queued.
    assert_eq!((a.ended, a.exported, a.failed, a.dropped), (20, 0, 0, 0), "{a:?}");
    assert_eq!(a.in_export + a.queued, 20, "{a:?}");
}

/// The exporter waits at a closed gate, so nothing leaves the queue (64): of 1,000 spans
/// exactly 64 are taken and 936 dropped — counted as they happen, not at shutdown.
#[test]
fn a_full_queue_drops_and_each_drop_is_counted_as_it_happens() {
    let backend = Backend::start(Config::default()).unwrap();
    let gate = ExportGate::closed();
    let p = pipeline(&backend, "overflow", |c| {
        c.max_queue_size = 64;
        c.max_export_batch_size = 64;
        c.scheduled_delay_ms = 60_000;
        c.hooks.export_gate = Some(gate.clone());
    });
    end_spans(&p, 1000);
    let live = p.accounting();
    assert_eq!((live.ended, live.queued, live.dropped, live.dropped_sdk), (1000, 64, 936, 0), "{live:?}");
    assert!(live.is_balanced() && (live.queue_utilisation() - 1.0).abs() < 1e-9, "{live:?}");
    let text = p.metrics();
    assert!(text.contains("reliability_client_spans_dropped_total{reason=\"queue_full\"} 936"), "{text}");
    assert!(text.contains("reliability_client_queue_utilisation_ratio 1"), "{text}");
    gate.open();
    let (a, _) = p.shutdown();
    assert!(a.shutdown_completed && a.is_balanced(), "{a:?}");
    assert_eq!((a.exported, a.dropped, a.queued), (64, 936, 0), "{a:?}");
    assert_eq!(common::stats(&backend.base_url(), "overflow")["unique"].as_u64(), Some(a.exported), "{a:?}");
    assert!(render_metrics(&a).contains("testbed_client_spans_total{outcome=\"dropped\"} 936"));
}

/// The fix switched off (the SDK's queue alone): the same overflow loses spans while the
/// live count says none were dropped; only shutdown's log tells. What the suites must catch.
#[test]
fn the_sdk_queue_alone_drops_silently_until_shutdown() {
    let backend = Backend::start(Config::default()).unwrap();
    let gate = ExportGate::closed();
    let p = pipeline(&backend, "silent", |c| {
        c.max_queue_size = 64;
        c.max_export_batch_size = 64;
        c.scheduled_delay_ms = 60_000;
        c.hooks.export_gate = Some(gate.clone());
        c.hooks.sdk_queue_only = true;
    });
    end_spans(&p, 1000);
    let live = p.accounting();
    assert_eq!((live.ended, live.dropped), (1000, 0), "no drop is visible while running: {live:?}");
    gate.open();
    let (a, _) = p.shutdown();
    assert!(a.shutdown_completed && a.is_balanced(), "{a:?}");
    // The SDK's worker may hold one batch outside its queue of 64.
    assert!(a.dropped_sdk >= 1000 - 128 && a.dropped == a.dropped_sdk, "{a:?}");
    assert_eq!(a.exported + a.dropped, 1000, "{a:?}");
}

/// A planted miscount: the exporter loses 3 spans and tells nobody. Every other counter is
/// right, so only the identity can notice — and it must.
#[test]
fn a_span_lost_without_a_report_breaks_the_identity() {
    let backend = Backend::start(Config::default()).unwrap();
    let p = pipeline(&backend, "lossy", |c| c.hooks.lose_spans = 3);
    end_spans(&p, 50);
    let (a, _) = p.shutdown();
    assert!(a.shutdown_completed, "{a:?}");
    assert!(!a.is_balanced(), "{a:?}");
    assert_eq!(a.unaccounted(), 3, "{a:?}");
    assert_eq!((a.ended, a.exported, a.dropped, a.failed), (50, 47, 0, 0), "{a:?}");
    assert_eq!(common::stats(&backend.base_url(), "lossy")["unique"].as_u64(), Some(47));
}
