//! SDK reliability, suite 3 — crash resistance (`e2e`): failures inside the client (an
//! exporter that cannot serialize, one that panics, a side-channel worker that panics, an
//! export thread that dies) never reach the caller; a 100 MB attribute is cut with a count
//! while the heap stays bounded; pathological data (NaN, huge arrays, deep or huge
//! evaluations) is handled and counted. Every span and item ends up counted where it went,
//! and the backend's own counts agree.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::{Duration, Instant};

use reliability_client::ExportGate;
use reliability_client::sdk::AttrValue;
use reliability_harness as rh;
use reliability_suites::sdk::{self, Sdk, check, live_heap};
use serde_json::json;

/// Runs the caller's side of a test; a panic out of the client is an error of the test, not
/// a crash of the harness's worker.
fn as_caller<T>(what: &str, f: impl FnOnce() -> T) -> Result<T, String> {
    catch_unwind(AssertUnwindSafe(f)).map_err(|_| format!("{what}: a failure inside the client reached the caller"))
}

fn evaluation(i: usize) -> serde_json::Value {
    json!({ "id": format!("eval-{i}"), "trace_id": "crash", "name": "relevance", "score": 0.5 })
}

/// Ends `spans` spans and offers `evaluations` evaluations from the caller's thread.
fn generate(client: Sdk<'_>, spans: usize, evaluations: usize) -> u64 {
    for i in 0..spans {
        let mut span = client.span("llm.chat");
        span.set_attribute("llm.step", AttrValue::F64(i as f64));
        span.end();
    }
    (0..evaluations).filter(|i| client.evaluate(evaluation(*i))).count() as u64
}

/// The first 2 export calls fail to serialize, the next 3 panic, and the side channels'
/// first 2 batches panic in the worker: the caller's 2,000 spans and 200 evaluations all
/// return normally, and each lost span or item is counted with its reason.
#[rh::test(e2e)]
fn injected_sdk_failures_never_reach_the_caller(metrics: &rh::Metrics) -> Result<(), String> {
    let backend = sdk::backend()?;
    let client = sdk::reference(&backend, |c, side| {
        c.max_export_batch_size = 100;
        c.hooks.export_errors = 2;
        c.hooks.export_panics = 3;
        side.evaluation_batch = 10;
        side.hooks.panic_batches = 2;
    })?;
    let taken = as_caller("ending spans and evaluating", || generate(&*client, 2_000, 200))?;
    let h = as_caller("shutdown", || sdk::finish(&*client, metrics))?;
    let s = &h.spans;
    let stored = sdk::span_stats(&backend)?["accepted"].as_u64().unwrap_or(0);
    metrics.set("spans_failed_serialize", (s.failed - s.failed_panic - s.failed_worker_gone) as f64);
    metrics.set("spans_failed_panic", s.failed_panic as f64);
    check(s.ended == 2_000 && s.is_balanced() && s.dropped == 0, || format!("{s:#?}"))?;
    // 5 batches of at most 100 failed: at least 1 span each, at most 500 in all.
    check(s.failed_panic >= 3 && s.failed - s.failed_panic >= 2 && s.failed <= 500, || format!("{s:#?}"))?;
    check(stored == s.exported && s.exported >= 1_500, || format!("the backend stored {stored}: {s:#?}"))?;
    let side = &h.side;
    let accepted = sdk::side_stats(&backend, "evaluations")?["accepted"].as_u64().unwrap_or(0);
    check(side.worker_panics == 2 && side.evaluations_enqueued == taken && taken == 200, || format!("{side:#?}"))?;
    check(side.evaluations_failed >= 2 && side.evaluations_failed <= 20, || format!("{side:#?}"))?;
    check(side.evaluations_sent == accepted && accepted + side.evaluations_failed == 200, || {
        format!("the backend stored {accepted}: {side:#?}")
    })
}

/// One span with a 100 MB prompt while its export is held: the value the caller gave is cut
/// to the client's 64 KiB limit as the span ends (counted), so what the queue holds is a few
/// dozen KB, not 100 MB; the span is then delivered cut.
fn a_huge_attribute_is_cut(client: Sdk<'_>, gate: &ExportGate, metrics: &rh::Metrics) -> Result<(), String> {
    const HUGE: usize = 100 << 20;
    let before = live_heap()?;
    let mut span = client.span("llm.chat");
    span.set_attribute("llm.prompt", AttrValue::Str("p".repeat(HUGE)));
    span.end();
    let held = live_heap()?.saturating_sub(before);
    metrics.set("heap_held_after_100mb_attribute_bytes", held as f64);
    let counted = client.health().spans.attributes_truncated;
    gate.open();
    check(counted == 1, || format!("{counted} attribute values counted cut, expected 1"))?;
    check(held < 4 << 20, || format!("a span with a 100 MB attribute left {held} heap bytes held in the queue"))
}

#[rh::test(e2e, isolation = "process")]
fn a_100_mb_attribute_is_cut_with_a_count_and_the_heap_stays_bounded(metrics: &rh::Metrics) -> Result<(), String> {
    let backend = sdk::backend()?;
    let gate = ExportGate::closed();
    let client = sdk::reference(&backend, |c, _| c.hooks.export_gate = Some(gate.clone()))?;
    a_huge_attribute_is_cut(&*client, &gate, metrics)?;
    let h = sdk::finish(&*client, metrics).spans;
    let stats = sdk::span_stats(&backend)?;
    check(h.exported == 1 && h.is_balanced() && stats["accepted"] == 1, || format!("{stats} {h:#?}"))?;
    let bytes = stats["bytes"].as_u64().unwrap_or(u64::MAX);
    check(bytes < 1 << 20, || format!("{bytes} bytes arrived for one span cut to 64 KiB"))
}

/// The check can fail: a client with no attribute limit (the SDK as shipped) holds the whole
/// 100 MB in its queue, and the check says so.
#[rh::test(e2e, isolation = "process")]
fn an_unlimited_attribute_is_caught(metrics: &rh::Metrics) -> Result<(), String> {
    let backend = sdk::backend()?;
    let gate = ExportGate::closed();
    let client = sdk::reference(&backend, |c, _| {
        c.max_attribute_bytes = 0;
        c.hooks.export_gate = Some(gate.clone());
    })?;
    let caught = a_huge_attribute_is_cut(&*client, &gate, metrics).is_err();
    gate.open();
    let h = sdk::finish(&*client, metrics).spans;
    check(caught, || "a 100 MB attribute kept whole passed the bounded-heap check".into())?;
    // The 100 MB request is over the backend's 64 MiB limit: refused, and counted so.
    check(h.exported == 0 && h.is_balanced(), || format!("{h:#?}"))
}

/// NaN and infinite scores, an embedding of a million doubles (with NaNs), 100,000 retrieved
/// documents, a 2 MB string of three-byte characters, an evaluation nested 1,000 deep, one of
/// 2 MB and one with an array of 200,000 numbers: the spans are delivered with their values
/// cut (at character boundaries: the backend decodes them), the bad evaluations refused, and
/// each is counted.
#[rh::test(e2e)]
fn pathological_data_is_handled_and_counted(metrics: &rh::Metrics) -> Result<(), String> {
    let backend = sdk::backend()?;
    let client = sdk::reference(&backend, |_, _| {})?;
    as_caller("setting pathological attributes", || {
        let mut span = client.span("llm.embed");
        span.set_attribute("score", AttrValue::F64(f64::NAN));
        span.set_attribute("limit", AttrValue::F64(f64::INFINITY));
        let mut embedding = vec![0.5; 1_000_000];
        embedding[..10].fill(f64::NAN);
        span.set_attribute("embedding", AttrValue::F64s(embedding));
        span.set_attribute("documents", AttrValue::Strs(vec!["d".repeat(100); 100_000]));
        span.end();
        let mut span = client.span("llm.chat");
        span.set_attribute("completion", AttrValue::Str("€".repeat(700_000)));
        span.end();
    })?;
    let mut deep = json!("leaf");
    for _ in 0..1_000 {
        deep = json!({ "nested": deep });
    }
    let offered = [
        json!({ "id": "deep", "trace_id": "t", "output": deep }),
        json!({ "id": "huge", "trace_id": "t", "output": "x".repeat(2 << 20) }),
        json!({ "id": "wide", "trace_id": "t", "output": vec![0.5; 200_000] }),
        json!({ "id": "nan", "trace_id": "t", "score": f64::NAN }),
        evaluation(1),
    ];
    let taken = as_caller("offering pathological evaluations", || {
        offered.into_iter().map(|e| client.evaluate(e)).collect::<Vec<_>>()
    })?;
    let h = sdk::finish(&*client, metrics);
    let s = &h.spans;
    metrics.set("attributes_truncated", s.attributes_truncated as f64);
    metrics.set("attributes_non_finite", s.attributes_non_finite as f64);
    metrics.set("evaluations_refused", h.side.evaluations_refused as f64);
    check(taken == [false, false, false, true, true], || format!("taken: {taken:?}"))?;
    check(s.attributes_truncated == 3 && s.attributes_non_finite == 12, || format!("{s:#?}"))?;
    let stats = sdk::span_stats(&backend)?;
    check(s.exported == 2 && s.is_balanced() && stats["accepted"] == 2, || format!("{stats} {s:#?}"))?;
    let side = &h.side;
    let accepted = sdk::side_stats(&backend, "evaluations")?["accepted"].as_u64();
    check(side.evaluations_refused == 3 && side.evaluations_sent == 2 && accepted == Some(2), || {
        format!("the backend stored {accepted:?}: {side:#?}")
    })
}

/// The export thread dies on its first export (an uncaught panic): the caller goes on ending
/// spans and evaluating as before; every span is counted failed (the first batch as
/// panicked, later ones as the worker being gone); the side channels, a separate worker,
/// still deliver; shutdown comes back within its bound.
#[rh::test(e2e)]
fn a_crashed_export_worker_degrades_gracefully(metrics: &rh::Metrics) -> Result<(), String> {
    let backend = sdk::backend()?;
    let client = sdk::reference(&backend, |c, _| {
        c.shutdown_timeout_ms = 5_000;
        c.hooks.crash_export_thread = true;
    })?;
    as_caller("ending the first spans", || generate(&*client, 10, 0))?;
    // Wait for the crash to be noticed (bounded: the export runs every 100 ms).
    let deadline = Instant::now() + Duration::from_secs(60);
    while client.health().spans.failed_panic == 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let taken = as_caller("ending spans with a dead export thread", || {
        let started = Instant::now();
        let taken = generate(&*client, 1_000, 100);
        metrics.set("caller_seconds_with_a_dead_worker", started.elapsed().as_secs_f64());
        taken
    })?;
    let started = Instant::now();
    let h = as_caller("shutdown", || sdk::finish(&*client, metrics))?;
    let took = started.elapsed();
    metrics.set("shutdown_seconds_with_a_dead_worker", took.as_secs_f64());
    let s = &h.spans;
    check(s.failed_panic >= 1, || format!("the crash was never noticed: {s:#?}"))?;
    check(s.ended == 1_010 && s.exported == 0 && s.failed == 1_010 && s.is_balanced(), || format!("{s:#?}"))?;
    check(s.failed_worker_gone >= 1_000, || format!("{s:#?}"))?;
    // The bound is 5 s (+1 s to collect the result); far past it means a hang.
    check(took < Duration::from_secs(60), || format!("shutdown took {took:?} with a 5 s bound"))?;
    let accepted = sdk::side_stats(&backend, "evaluations")?["accepted"].as_u64();
    check(taken == 100 && h.side.evaluations_sent == 100 && accepted == Some(100), || {
        format!("the backend stored {accepted:?}: {:#?}", h.side)
    })?;
    let stored = sdk::span_stats(&backend)?["accepted"].as_u64().unwrap_or(0);
    check(stored == 0, || format!("the backend stored {stored} spans from a dead export thread"))
}
