//! SDK reliability, suite 5 — latency under stress (`e2e`): what a span, an evaluation and a
//! tag cost the caller with the span queue at 90%, during an API outage, and beside a thread
//! exporting at full speed. Each call is timed and recorded as a latency figure
//! (`caller_<call>_<condition>`: p50/p90/p95/p99/max in report.json and the Pushgateway); the
//! KPI of the analysis is 1 ms at p95, the project's target 50 µs at p99. The times are
//! figures, not assertions (the machines are shared); what the tests assert is that no call
//! was lost or held: every span and item is accounted for afterwards.

use std::time::Instant;

use reliability_client::ExportGate;
use reliability_client::Hooks;
use reliability_harness as rh;
use reliability_suites::sdk::{self, Sdk, check};
use serde_json::json;

const CALLS: usize = 2_000;

/// Times `CALLS` rounds of span + evaluate + tag on the caller's thread.
fn time_calls(client: Sdk<'_>, condition: &str, metrics: &rh::Metrics) -> u64 {
    let mut taken = 0;
    for i in 0..CALLS {
        let started = Instant::now();
        let mut span = client.span("llm.chat");
        span.set_attribute("llm.model", "reference".into());
        span.end();
        metrics.record_latency(&format!("caller_span_{condition}"), started.elapsed());
        let started = Instant::now();
        taken += u64::from(client.evaluate(json!({ "id": format!("{condition}-{i}"), "trace_id": "t", "score": 1 })));
        metrics.record_latency(&format!("caller_evaluate_{condition}"), started.elapsed());
        let started = Instant::now();
        client.tag(&format!("trace-{}", i % 100), &["stress", condition]);
        metrics.record_latency(&format!("caller_tag_{condition}"), started.elapsed());
    }
    taken
}

/// The span exporter held at a gate until the queue is 90% full, then timed calls.
#[rh::test(e2e)]
fn caller_overhead_with_the_queue_at_90_percent(metrics: &rh::Metrics) -> Result<(), String> {
    let backend = sdk::backend()?;
    let gate = ExportGate::closed();
    let client = sdk::reference(&backend, |c, _| {
        c.max_queue_size = 8192;
        c.max_export_batch_size = 512;
        c.hooks = Hooks { export_gate: Some(gate.clone()), ..Hooks::default() };
    })?;
    // 90% of the queue, plus the batch the exporter holds at the gate.
    let fill = 8192 * 9 / 10 + 512 - CALLS;
    for _ in 0..fill {
        client.span("fill").end();
    }
    let taken = time_calls(&*client, "queue_90", metrics);
    gate.open();
    let h = sdk::finish(&*client, metrics);
    check(h.spans.ended == (fill + CALLS) as u64 && h.spans.is_balanced(), || format!("{:#?}", h.spans))?;
    check(h.spans.dropped == 0, || format!("{} spans dropped below a full queue", h.spans.dropped))?;
    check(h.side.evaluations_sent == taken, || format!("{:#?}", h.side))
}

/// The API down for the whole test (503 on every endpoint): calls cost what they always do,
/// and every span and item is counted failed, none lost.
#[rh::test(e2e)]
fn caller_overhead_during_an_api_outage(metrics: &rh::Metrics) -> Result<(), String> {
    let backend = sdk::backend()?;
    let down = json!({ "rules": [{ "when": { "always": true }, "action": { "kind": "status", "code": 503 } }] });
    for endpoint in ["traces", "evaluations", "tags"] {
        sdk::set_plan(&backend, endpoint, &down)?;
    }
    let client = sdk::reference(&backend, |c, side| {
        c.export_max_attempts = 2;
        side.retry.max_attempts = 2;
    })?;
    let taken = time_calls(&*client, "api_outage", metrics);
    let h = sdk::finish(&*client, metrics);
    check(h.spans.ended == CALLS as u64 && h.spans.exported == 0 && h.spans.is_balanced(), || {
        format!("{:#?}", h.spans)
    })?;
    check(h.side.evaluations_failed == taken && h.side.evaluations_sent == 0, || format!("{:#?}", h.side))?;
    check(h.side.tags_flushed == 0 && h.side.tags_failed == h.side.tags_buffered, || format!("{:#?}", h.side))
}

/// A second thread ends 50,000 spans as fast as it can while the caller's calls are timed.
#[rh::test(e2e)]
fn caller_overhead_under_background_export_pressure(metrics: &rh::Metrics) -> Result<(), String> {
    let backend = sdk::backend()?;
    let client = sdk::reference(&backend, |c, _| c.max_queue_size = 65_536)?;
    let taken = std::thread::scope(|s| {
        let pressure = s.spawn(|| {
            for _ in 0..50_000 {
                client.span("background").end();
            }
        });
        let taken = time_calls(&*client, "export_pressure", metrics);
        let _ = pressure.join();
        taken
    });
    let h = sdk::finish(&*client, metrics);
    let stored = sdk::span_stats(&backend)?["accepted"].as_u64().unwrap_or(0);
    check(h.spans.ended == 52_000 && h.spans.is_balanced(), || format!("{:#?}", h.spans))?;
    check(stored == h.spans.exported, || {
        format!("the backend stored {stored}, the client exported {}", h.spans.exported)
    })?;
    check(h.side.evaluations_sent == taken, || format!("{:#?}", h.side))
}
