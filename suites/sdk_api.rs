//! SDK reliability, suite 1 — API failures (`e2e`): a slow API, a failing API, a tag API
//! that times out, intermittent network errors on export and 429 with Retry-After. The
//! caller is never held, nothing is lost that could be delivered, and what is lost is counted.
//! Each test has its own testbed backend (fault plans are per backend).

use std::time::{Duration, Instant};

use reliability_client::ExportGate;
use reliability_client::side::SideHooks;
use reliability_harness as rh;
use reliability_suites::sdk::{self, Sdk, check};
use serde_json::json;

fn evaluation(i: usize, trace: &str) -> serde_json::Value {
    json!({ "id": format!("eval-{i}"), "trace_id": trace, "name": "faithfulness", "score": 0.9 })
}

/// Evaluates `n` times while the API takes 10 s to answer and the client's worker has not
/// sent anything yet: the caller must be back before any answer came (none was counted sent).
fn evaluate_against_a_slow_api(client: Sdk<'_>, n: usize, metrics: &rh::Metrics) -> Result<(), String> {
    for i in 0..n {
        let started = Instant::now();
        let taken = client.evaluate(evaluation(i, "slow"));
        metrics.record_latency("evaluate_slow_api", started.elapsed());
        check(taken, || format!("evaluation {i} was dropped with an empty queue"))?;
    }
    let h = client.health().side;
    check(h.evaluations_sent == 0, || {
        format!(
            "the caller came back after the API answered ({} evaluations already sent): it waited",
            h.evaluations_sent
        )
    })
}

/// A slow API (10 s per answer): `evaluate` returns at once and the evaluation still arrives.
#[rh::test(e2e)]
fn a_slow_api_never_holds_the_caller(metrics: &rh::Metrics) -> Result<(), String> {
    let backend = sdk::backend()?;
    sdk::set_plan(&backend, "evaluations", &json!({ "latency_ms": 10_000 }))?;
    let gate = ExportGate::closed();
    let client = sdk::reference(&backend, |_, side| {
        side.hooks.worker_gate = Some(gate.clone());
        // Longer than the API's 10 s: the answer is awaited by the worker, not given up on.
        side.request_timeout = Duration::from_secs(60);
    })?;
    evaluate_against_a_slow_api(&*client, 100, metrics)?;
    gate.open();
    let h = sdk::finish(&*client, metrics);
    let accepted = sdk::side_stats(&backend, "evaluations")?["accepted"].as_u64();
    check(accepted == Some(100), || format!("the backend stored {accepted:?} of 100 evaluations"))?;
    check(h.side.evaluations_sent == 100 && h.side.retries == 0, || format!("{:#?}", h.side))?;
    metrics.set("evaluations_sent", h.side.evaluations_sent as f64);
    Ok(())
}

/// The check above can fail: with the fix switched off (evaluations sent on the caller's
/// thread, as the analysed SDK did), the caller waits the API's 10 s and the check says so.
#[rh::test(e2e)]
fn a_blocking_side_channel_is_caught(metrics: &rh::Metrics) -> Result<(), String> {
    let backend = sdk::backend()?;
    sdk::set_plan(&backend, "evaluations", &json!({ "latency_ms": 10_000 }))?;
    let hooks = SideHooks { synchronous: true, ..SideHooks::default() };
    let client = sdk::reference(&backend, |_, side| {
        side.hooks = hooks;
        side.request_timeout = Duration::from_secs(60);
    })?;
    let caught = evaluate_against_a_slow_api(&*client, 1, metrics).is_err();
    sdk::finish(&*client, metrics);
    check(caught, || "a side channel that blocks the caller passed the slow-API check".into())
}

/// The API answers 500: the caller is unaffected, nothing is retried, every evaluation is
/// counted failed, and one log line says so however many failed.
#[rh::test(e2e)]
fn a_failing_api_is_counted_not_felt(metrics: &rh::Metrics) -> Result<(), String> {
    let backend = sdk::backend()?;
    let always_500 = json!({ "rules": [{ "when": { "always": true }, "action": { "kind": "status", "code": 500 } }] });
    sdk::set_plan(&backend, "evaluations", &always_500)?;
    let client = sdk::reference(&backend, |_, side| side.evaluation_batch = 20)?;
    let taken = (0..200).filter(|i| client.evaluate(evaluation(*i, "fails"))).count() as u64;
    let h = sdk::finish(&*client, metrics).side;
    let answered_500 = sdk::ledger(&backend, "evaluations")?.iter().filter(|e| e["status"] == 500).count() as u64;
    check(taken == 200, || format!("{taken} of 200 evaluations were taken"))?;
    check(h.evaluations_failed == taken && h.evaluations_sent == 0, || format!("{h:#?}"))?;
    check(h.retries == 0, || format!("a 500 was retried {} times", h.retries))?;
    check(h.api_errors.get("evaluations 500") == Some(&answered_500), || {
        format!("the client counted {:?} 500s, the backend answered {answered_500}", h.api_errors)
    })?;
    check(answered_500 >= 10, || format!("only {answered_500} requests for 200 evaluations in batches of 20"))?;
    check(h.logged == 1, || format!("{} log lines for {answered_500} failures of one kind", h.logged))?;
    metrics.set("evaluations_failed", h.evaluations_failed as f64);
    Ok(())
}

/// The tag API times out twice: the tags wait in the buffer and arrive once it answers.
#[rh::test(e2e)]
fn tags_are_delivered_after_the_tag_api_recovers(metrics: &rh::Metrics) -> Result<(), String> {
    let backend = sdk::backend()?;
    let hang_twice = json!({ "rules": [{ "when": { "requests": { "from": 0, "to": 2 } }, "action": { "kind": "hang", "ms": 60_000 } }] });
    sdk::set_plan(&backend, "tags", &hang_twice)?;
    let client = sdk::reference(&backend, |_, side| {
        side.request_timeout = Duration::from_millis(500);
        side.tag_flush_interval = Duration::from_secs(3600);
    })?;
    let mut offered = 0;
    for trace in 0..20 {
        let trace = format!("trace-{trace}");
        for tags in [&["env:prod", "model:a"][..], &["model:a", "user:42"]] {
            client.tag(&trace, tags);
            offered += tags.len() as u64;
        }
    }
    let h = sdk::finish(&*client, metrics).side;
    check(h.tags_offered == offered && h.tags_buffered == 60 && h.tags_deduplicated == 20, || format!("{h:#?}"))?;
    check(h.tags_flushed == 60 && h.tags_failed == 0, || format!("{h:#?}"))?;
    let stored = sdk::side_stats(&backend, "tags")?["accepted"].as_u64();
    check(stored == Some(60), || format!("the backend stored {stored:?} of 60 tags"))?;
    let one = sdk::query(&backend, "tags?trace_id=trace-7")?;
    check(one["tags"] == json!(["env:prod", "model:a", "user:42"]), || format!("trace-7: {one}"))?;
    metrics.set("tags_flushed", h.tags_flushed as f64);
    Ok(())
}

/// The first 3 export requests have their connection closed unanswered: the export is retried
/// and every span arrives.
#[rh::test(e2e)]
fn intermittent_network_errors_on_export_lose_no_span(metrics: &rh::Metrics) -> Result<(), String> {
    let backend = sdk::backend()?;
    let close_three =
        json!({ "rules": [{ "when": { "requests": { "from": 0, "to": 3 } }, "action": { "kind": "close" } }] });
    sdk::set_plan(&backend, "traces", &close_three)?;
    let client = sdk::reference(&backend, |c, _| c.max_export_batch_size = 50)?;
    for i in 0..200 {
        let mut span = client.span(&format!("llm-call-{i}"));
        span.set_attribute("llm.model", "reference".into());
        span.end();
    }
    let h = sdk::finish(&*client, metrics).spans;
    let stats = sdk::span_stats(&backend)?;
    check(stats["accepted"] == 200, || format!("the backend stored {} of 200 spans", stats["accepted"]))?;
    check(h.exported == 200 && h.failed == 0 && h.is_balanced(), || format!("{h:#?}"))?;
    let closed = sdk::ledger(&backend, "traces")?.iter().filter(|e| e["fault"] == "close").count() as u64;
    check(closed == 3 && h.export_retries == 3, || format!("{closed} closed, {} retries", h.export_retries))?;
    metrics.set("export_retries", h.export_retries as f64);
    Ok(())
}

/// 429 with Retry-After: 2 on the first export: the client waits at least that long before
/// sending again (seen in the backend's arrival times), and nothing is lost.
#[rh::test(e2e)]
fn retry_after_on_export_is_waited_and_nothing_is_lost(metrics: &rh::Metrics) -> Result<(), String> {
    let backend = sdk::backend()?;
    let throttle = json!({ "rules": [{ "when": { "requests": { "from": 0, "to": 1 } },
        "action": { "kind": "status", "code": 429, "retry_after_seconds": 2 } }] });
    sdk::set_plan(&backend, "traces", &throttle)?;
    let client = sdk::reference(&backend, |c, _| c.max_export_batch_size = 512)?;
    for i in 0..100 {
        client.span(&format!("llm-call-{i}")).end();
    }
    let h = sdk::finish(&*client, metrics).spans;
    let entries = sdk::ledger(&backend, "traces")?;
    check(entries.first().is_some_and(|e| e["status"] == 429), || format!("first export: {:?}", entries.first()))?;
    let first = entries[0]["arrival_unix_ms"].as_u64().unwrap_or(0);
    let next = entries.get(1).and_then(|e| e["arrival_unix_ms"].as_u64()).unwrap_or(0);
    let waited = next.saturating_sub(first);
    metrics.set("retry_after_waited_seconds", waited as f64 / 1e3);
    check(waited >= 2000, || format!("the client came back after {waited} ms, before Retry-After's 2 s"))?;
    let stats = sdk::span_stats(&backend)?;
    check(stats["accepted"] == 100 && h.exported == 100 && h.is_balanced(), || format!("{stats} {h:#?}"))
}
