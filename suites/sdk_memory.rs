//! SDK reliability, suite 4 — memory leaks (`e2e`, process isolation so the heap figures are
//! the test's own): metadata of spans that never end is evicted after the TTL, 20,000 spans
//! keep it within the cap, and 10,000 evaluations with no worker keep the queue bounded with
//! exact drop counts. Each asserts on the live heap the harness's counting allocator reports,
//! besides the client's own counts.

use std::time::Duration;

use reliability_client::ExportGate;
use reliability_harness as rh;
use reliability_suites::sdk::{self, Sdk, check, live_heap};
use serde_json::json;

const VALUE: usize = 4096;

/// 500 spans that never end, each with 2 × 4 KB of metadata; after the TTL the next write
/// finds them expired, and the heap they held is given back.
fn hung_span_metadata_is_released(client: Sdk<'_>, ttl: Duration, metrics: &rh::Metrics) -> Result<(), String> {
    let value = "m".repeat(VALUE);
    let mut hung = Vec::new();
    let before = live_heap()?;
    for i in 0..500 {
        let mut span = client.span(&format!("agent-step-{i}"));
        span.set_metadata("prompt", &value);
        span.set_metadata("completion", &value);
        hung.push(span);
    }
    let held = live_heap()?.saturating_sub(before);
    let m = client.health().metadata;
    check(m.held == 500 && m.inserted == 500, || format!("{m:?}"))?;
    // At least the TTL passes (a sleep is never shorter than asked).
    std::thread::sleep(ttl);
    let mut probe = client.span("probe");
    probe.set_metadata("k", "v");
    let after = live_heap()?.saturating_sub(before);
    let m = client.health().metadata;
    metrics.set("metadata_expired", m.expired as f64);
    metrics.set("metadata_heap_held_bytes", held as f64);
    metrics.set("metadata_heap_after_ttl_bytes", after as f64);
    check(m.expired == 500 && m.held == 1, || format!("after the TTL: {m:?}"))?;
    // 4 MB of values were held; at least 3 MB of heap must be back.
    let released = held.saturating_sub(after);
    check(released >= 3_000_000, || format!("{held} heap bytes held, only {released} released after the TTL"))?;
    probe.end();
    hung.into_iter().for_each(|span| span.end());
    Ok(())
}

#[rh::test(e2e, isolation = "process")]
fn spans_that_never_end_lose_their_metadata_after_the_ttl(metrics: &rh::Metrics) -> Result<(), String> {
    let backend = sdk::backend()?;
    let ttl = Duration::from_millis(300);
    let client = sdk::reference(&backend, |c, _| c.metadata_ttl_ms = ttl.as_millis() as u64)?;
    hung_span_metadata_is_released(&*client, ttl, metrics)?;
    let h = sdk::finish(&*client, metrics);
    check(h.spans.ended == 501 && h.spans.is_balanced(), || format!("{:#?}", h.spans))
}

/// The check can fail: metadata kept until a span ends, as in the analysed SDK (no TTL to
/// speak of), is still held after the test's TTL and the check says so.
#[rh::test(e2e, isolation = "process")]
fn metadata_without_a_ttl_is_caught(metrics: &rh::Metrics) -> Result<(), String> {
    let backend = sdk::backend()?;
    let client = sdk::reference(&backend, |c, _| c.metadata_ttl_ms = 24 * 3600 * 1000)?;
    let caught = hung_span_metadata_is_released(&*client, Duration::from_millis(300), metrics).is_err();
    sdk::finish(&*client, metrics);
    check(caught, || "metadata that never expires passed the TTL check".into())
}

/// 20,000 spans started in a burst and held, each with 8 KB of metadata: the store holds at
/// most its cap (10,000), and the second 10,000 spans do not grow the heap by their metadata.
#[rh::test(e2e, isolation = "process")]
fn twenty_thousand_rapid_spans_keep_metadata_within_the_cap(metrics: &rh::Metrics) -> Result<(), String> {
    let backend = sdk::backend()?;
    let client = sdk::reference(&backend, |_, _| {})?;
    let value = "v".repeat(2 * VALUE);
    let mut open = Vec::with_capacity(20_000);
    let mut at_cap = 0;
    for i in 0..20_000 {
        if i == 10_000 {
            at_cap = live_heap()?;
        }
        let mut span = client.span("retrieval");
        span.set_metadata("context", &value);
        open.push(span);
    }
    let grown = live_heap()?.saturating_sub(at_cap);
    let m = client.health().metadata;
    metrics.set("metadata_peak_held", m.peak_held as f64);
    metrics.set("heap_growth_second_10k_bytes", grown as f64);
    check(m.peak_held == 10_000 && m.held == 10_000 && m.evicted == 10_000, || format!("{m:?}"))?;
    // Unbounded, the second 10,000 would add 80 MB of metadata; the spans alone are far less.
    check(grown < 40_000_000, || format!("the second 10,000 spans grew the heap by {grown} bytes"))?;
    open.into_iter().for_each(|span| span.end());
    let h = sdk::finish(&*client, metrics);
    check(h.metadata.held == 0 && h.spans.ended == 20_000, || format!("{h:#?}"))
}

/// 10,000 evaluations while the worker never runs: the queue holds its 1,000 (plus the one
/// batch the worker took), every other evaluation is counted dropped — and freed: offering the
/// last 8,000 does not grow the heap.
#[rh::test(e2e, isolation = "process")]
fn ten_thousand_evaluations_with_no_worker_stay_bounded(metrics: &rh::Metrics) -> Result<(), String> {
    let backend = sdk::backend()?;
    let gate = ExportGate::closed();
    let client = sdk::reference(&backend, |_, side| side.hooks.worker_gate = Some(gate.clone()))?;
    let output = "o".repeat(2048);
    let mut taken = 0u64;
    let mut after_2k = 0;
    for i in 0..10_000 {
        if i == 2_000 {
            after_2k = live_heap()?;
        }
        let evaluation = json!({ "id": format!("e{i}"), "trace_id": "t", "output": output });
        taken += u64::from(client.evaluate(evaluation));
    }
    let grown = live_heap()?.saturating_sub(after_2k);
    let h = client.health().side;
    metrics.set("evaluations_dropped", h.evaluations_dropped as f64);
    metrics.set("heap_growth_last_8k_bytes", grown as f64);
    check((1_000..=1_100).contains(&taken), || format!("{taken} evaluations taken by a queue of 1,000"))?;
    check(h.evaluations_enqueued == taken && h.evaluations_dropped == 10_000 - taken, || format!("{h:#?}"))?;
    // Kept, the 8,000 would be over 16 MB.
    check(grown < 1_000_000, || format!("offering 8,000 evaluations to a full queue grew the heap by {grown} bytes"))?;
    gate.open();
    let h = sdk::finish(&*client, metrics).side;
    let stored = sdk::side_stats(&backend, "evaluations")?["accepted"].as_u64();
    check(stored == Some(taken) && h.evaluations_sent == taken, || format!("stored {stored:?}, {h:#?}"))
}
