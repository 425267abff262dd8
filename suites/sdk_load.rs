//! SDK reliability, suite 2 — sustained load (`e2e, slow`; the soak opt-in behind `soak`):
//! 100,000 spans over a minute with a flat heap and the queue far from full; a 10,000-span
//! burst in one second that drains with no drop and gives its memory back; generation faster
//! than export, with every drop counted as it happens; 100 threads of 1,000 spans, every one
//! accounted. Besides, in `e2e`: the client's health can be scraped while it runs — the
//! analysis's "no visibility" problem — and a client without it is caught.
//!
//! Heap figures are the process's (process isolation), taken right after the backend's stored
//! spans are deleted, so that they are the client's. The backend's own counters
//! (`testbed_spans_accepted_total`) survive the deletes and say what arrived.

use std::sync::Barrier;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use reliability_client::ExportGate;
use reliability_client::sdk::AttrValue;
use reliability_harness as rh;
use reliability_suites::sdk::{self, Sdk, check, live_heap};
use serde_json::json;
use testbed::Backend;

const TICK: Duration = Duration::from_millis(100);

/// What a paced run saw.
struct Paced {
    ended: u64,
    /// Heap after each sample point (the backend's spans deleted first).
    heap: Vec<u64>,
    /// The fullest the span queue was at a tick.
    peak_utilisation: f64,
    seconds: f64,
}

/// One span as an LLM application ends it: attributes and 1 KB of metadata (cleared at its
/// end); every 100th also an evaluation and a tag.
fn one_span(client: Sdk<'_>, n: u64, metadata: &str) {
    let mut span = client.span("llm.chat");
    span.set_attribute("llm.model", "reference".into());
    span.set_attribute("llm.tokens", AttrValue::F64(n as f64));
    span.set_metadata("prompt", metadata);
    let trace = span.trace_id();
    span.end();
    if n.is_multiple_of(100) {
        client.evaluate(json!({ "id": format!("e{n}"), "trace_id": trace, "score": 1 }));
        client.tag(&trace, &["load", "sustained"]);
    }
}

/// Ends `total` spans evenly over `seconds` (in ticks of 100 ms; a late tick is caught up,
/// never skipped), sampling the client's heap `samples` times at even intervals.
fn paced(client: Sdk<'_>, backend: &Backend, total: u64, seconds: u64, samples: u64) -> Result<Paced, String> {
    let ticks = (seconds * 10).max(1);
    let every = (ticks / samples.max(1)).max(1);
    let metadata = "m".repeat(1024);
    let (mut ended, mut heap, mut peak) = (0u64, Vec::new(), 0f64);
    let started = Instant::now();
    for tick in 0..ticks {
        let target = (tick + 1) * total / ticks;
        while ended < target {
            one_span(client, ended, &metadata);
            ended += 1;
        }
        peak = peak.max(client.health().spans.queue_utilisation());
        if samples > 0 && (tick + 1) % every == 0 {
            sdk::delete_project(backend)?;
            heap.push(live_heap()?);
        }
        let next = started + TICK * (tick + 1) as u32;
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
    }
    Ok(Paced { ended, heap, peak_utilisation: peak, seconds: started.elapsed().as_secs_f64() })
}

/// Heap growth after the first tenth (warm-up) of a paced run: the largest later sample less
/// the first.
fn growth_after_warm_up(heap: &[u64]) -> i64 {
    let first = heap.first().copied().unwrap_or(0);
    heap.iter().skip(1).map(|h| *h as i64 - first as i64).max().unwrap_or(0)
}

/// A paced run checked: flat heap (at most `max_growth` bytes after warm-up), the queue never
/// near full, no drop, and the backend holding every span exported.
fn sustained(
    client: Sdk<'_>,
    backend: &Backend,
    total: u64,
    seconds: u64,
    max_growth: i64,
    metrics: &rh::Metrics,
) -> Result<(), String> {
    let run = paced(client, backend, total, seconds, 10)?;
    let growth = growth_after_warm_up(&run.heap);
    metrics.set("heap_growth_after_warm_up_bytes", growth as f64);
    metrics.set("queue_utilisation_peak", run.peak_utilisation);
    metrics.set("sdk_spans_per_second_offered", run.ended as f64 / run.seconds);
    let h = sdk::finish(client, metrics);
    let s = &h.spans;
    metrics.set("sdk_span_drop_rate_normal", s.dropped as f64 / s.ended.max(1) as f64);
    check(s.ended == total && run.ended == total && s.is_balanced(), || format!("{s:#?}"))?;
    check(s.dropped == 0 && s.failed == 0, || format!("{} dropped, {} failed under normal load", s.dropped, s.failed))?;
    check(run.peak_utilisation < 0.5, || {
        format!("the queue reached {:.0}% under normal load", run.peak_utilisation * 100.0)
    })?;
    let stored = sdk::accepted_by_backend(backend)?;
    check(stored == s.exported, || format!("the backend accepted {stored}, the client exported {}", s.exported))?;
    check(growth < max_growth, || format!("the heap grew by {growth} bytes after warm-up ({:?})", run.heap))
}

/// 100,000 spans over 60 s (1,667/s, with metadata, evaluations and tags).
#[rh::test(e2e, slow, isolation = "process", timeout = 300)]
fn a_hundred_thousand_spans_over_a_minute_keep_the_heap_flat(metrics: &rh::Metrics) -> Result<(), String> {
    let backend = sdk::backend()?;
    let client = sdk::reference(&backend, |_, _| {})?;
    // Leaked, 1 KB of metadata a span would be 100 MB; the client's steady state is far less.
    sustained(&*client, &backend, 100_000, 60, 8 << 20, metrics)
}

/// A long soak: 1,000 spans/s for `RELIABILITY_SOAK_SECONDS` (default 1,800), the same checks.
#[rh::test(soak, isolation = "process", timeout = 90_000)]
fn a_soak_keeps_the_heap_flat_and_drops_nothing(metrics: &rh::Metrics) -> Result<(), String> {
    let seconds = match std::env::var("RELIABILITY_SOAK_SECONDS") {
        Ok(v) => v.parse::<u64>().map_err(|_| format!("RELIABILITY_SOAK_SECONDS={v:?} is not a number of seconds"))?,
        Err(_) => 1_800,
    };
    check((10..=86_400).contains(&seconds), || format!("RELIABILITY_SOAK_SECONDS={seconds}: 10 to 86,400"))?;
    metrics.set("soak_seconds", seconds as f64);
    let backend = sdk::backend()?;
    let client = sdk::reference(&backend, |_, _| {})?;
    sustained(&*client, &backend, seconds * 1_000, seconds, 8 << 20, metrics)
}

/// 10,000 spans in one second (6× the normal rate, past the 8,192 queue if export stalled),
/// then idle: the queue drains with no drop, and the heap is back where it was before.
#[rh::test(e2e, slow, isolation = "process", timeout = 300)]
fn a_burst_of_ten_thousand_spans_drains_with_no_drop(metrics: &rh::Metrics) -> Result<(), String> {
    let backend = sdk::backend()?;
    let client = sdk::reference(&backend, |_, _| {})?;
    paced(&*client, &backend, 500, 1, 0)?;
    check(sdk::drained(&*client, Duration::from_secs(120)), || {
        format!("warm-up never drained: {:#?}", client.health())
    })?;
    sdk::delete_project(&backend)?;
    let baseline = live_heap()?;
    let burst = paced(&*client, &backend, 10_000, 1, 0)?;
    let peak = live_heap()?.saturating_sub(baseline);
    check(sdk::drained(&*client, Duration::from_secs(120)), || {
        format!("the burst never drained: {:#?}", client.health())
    })?;
    sdk::delete_project(&backend)?;
    let after = live_heap()? as i64 - baseline as i64;
    metrics.set("heap_at_burst_end_bytes", peak as f64);
    metrics.set("heap_after_drain_bytes", after as f64);
    metrics.set("queue_utilisation_peak", burst.peak_utilisation);
    let h = sdk::finish(&*client, metrics);
    let s = &h.spans;
    metrics.set("sdk_span_drop_rate_spike", s.dropped as f64 / 10_000.0);
    check(s.ended == 10_500 && s.dropped == 0 && s.is_balanced(), || format!("{s:#?}"))?;
    let stored = sdk::accepted_by_backend(&backend)?;
    check(stored == 10_500 && s.exported == 10_500, || format!("the backend accepted {stored}: {s:#?}"))?;
    check(after < 1 << 20, || format!("{after} heap bytes still held after the burst drained (at its end: {peak})"))
}

/// While `threads` threads end spans faster than the (slowed) backend takes them: drops are
/// visible as they happen — counted before shutdown, with the queue held to its bound.
fn flood(client: Sdk<'_>, threads: u64, each: u64) -> Result<u64, String> {
    let ended = AtomicU64::new(0);
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                for _ in 0..each {
                    client.span("flood").end();
                    ended.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
    });
    let live = client.health().spans;
    check(live.dropped > 0, || format!("no drop counted while the queue overflowed: {live:#?}"))?;
    check(live.queued <= live.queue_capacity, || {
        format!("{} queued in a queue of {}", live.queued, live.queue_capacity)
    })?;
    Ok(ended.into_inner())
}

fn slow_backend() -> Result<Backend, String> {
    let backend = sdk::backend()?;
    sdk::set_plan(&backend, "traces", &json!({ "latency_ms": 200 }))?;
    Ok(backend)
}

/// 4 threads × 25,000 spans against a backend answering in 200 ms (at most ~2,500 spans/s
/// out): most are dropped, none silently. Each term counted where it happens: the threads
/// count what they ended, the client what it dropped, the backend what arrived.
#[rh::test(e2e, slow, timeout = 300)]
fn generation_faster_than_export_counts_every_drop(metrics: &rh::Metrics) -> Result<(), String> {
    let backend = slow_backend()?;
    let client = sdk::reference(&backend, |c, _| c.max_queue_size = 2_048)?;
    let ended = flood(&*client, 4, 25_000)?;
    let h = sdk::finish_overloaded(&*client, metrics);
    let s = &h.spans;
    let stored = sdk::accepted_by_backend(&backend)?;
    check(ended == 100_000 && s.ended == ended && s.is_balanced(), || format!("{ended} ended: {s:#?}"))?;
    check(s.failed == 0 && s.dropped_sdk == 0, || format!("{s:#?}"))?;
    check(stored == s.exported && s.dropped == ended - stored, || {
        format!("{ended} ended, the backend accepted {stored}, the client counted {} dropped", s.dropped)
    })
}

/// The check can fail: with the SDK's queue alone (the analysed SDK), spans are dropped but
/// nothing says so until shutdown, and the live check catches it.
#[rh::test(e2e, slow, timeout = 300)]
fn silent_drops_are_caught(metrics: &rh::Metrics) -> Result<(), String> {
    let backend = slow_backend()?;
    let client = sdk::reference(&backend, |c, _| {
        c.max_queue_size = 2_048;
        c.hooks.sdk_queue_only = true;
    })?;
    let caught = flood(&*client, 4, 25_000).is_err();
    let s = sdk::finish_overloaded(&*client, metrics).spans;
    check(caught, || "spans dropped silently by the SDK's queue passed the live drop check".into())?;
    // At shutdown the SDK's own count tells.
    check(s.dropped_sdk > 0 && s.dropped == s.dropped_sdk, || format!("{s:#?}"))
}

/// 100 threads, each ending 1,000 spans at once, into a queue big enough for all: every span
/// is exported and the backend holds each; how fast they got there is the throughput figure.
#[rh::test(e2e, slow, timeout = 300)]
fn a_hundred_threads_of_a_thousand_spans_are_all_accounted(metrics: &rh::Metrics) -> Result<(), String> {
    let backend = sdk::backend()?;
    let client = sdk::reference(&backend, |c, _| c.max_queue_size = 131_072)?;
    let ended = AtomicU64::new(0);
    let start = Barrier::new(100);
    let started = Instant::now();
    std::thread::scope(|s| {
        for t in 0..100 {
            let (client, ended, start) = (&client, &ended, &start);
            s.spawn(move || {
                start.wait();
                for i in 0..1_000 {
                    let mut span = client.span("worker");
                    span.set_attribute("thread", AttrValue::F64(f64::from(t)));
                    span.set_attribute("i", AttrValue::F64(f64::from(i)));
                    span.end();
                    ended.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
    });
    let all_drained = sdk::drained(&*client, Duration::from_secs(240));
    metrics.set("sdk_spans_per_second", 100_000.0 / started.elapsed().as_secs_f64());
    let h = sdk::finish(&*client, metrics);
    let s = &h.spans;
    let (ended, stored) = (ended.into_inner(), sdk::accepted_by_backend(&backend)?);
    check(all_drained, || format!("not drained within 240 s: {s:#?}"))?;
    check(ended == 100_000 && s.ended == ended && s.is_balanced(), || format!("{ended} ended: {s:#?}"))?;
    check(s.exported == ended && stored == ended && s.dropped == 0, || format!("the backend accepted {stored}: {s:#?}"))
}

/// While spans overflow a held queue and evaluations fail, a scraper of the client's health
/// endpoint sees it: the queue ≥ 90% full, drops counted by reason, API errors by status.
/// What the scrape said is checked against what later arrived.
fn health_is_scraped_while_it_runs(client: Sdk<'_>, gate: &ExportGate, backend: &Backend) -> Result<(), String> {
    for i in 0..2_000 {
        client.span(&format!("step-{i}")).end();
    }
    for i in 0..20 {
        client.evaluate(json!({ "id": format!("e{i}"), "trace_id": "t", "score": 1 }));
    }
    // The failing evaluations are sent by the worker: wait for their answers (bounded).
    let deadline = Instant::now() + Duration::from_secs(60);
    while client.health().side.evaluations_failed < 20 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let url = client.metrics_url().ok_or("the client serves no health endpoint to scrape")?;
    let scraped = sdk::samples(&sdk::get_text(&url)?);
    gate.open();
    let get = |series: &str| scraped.get(series).copied().unwrap_or(-1.0);
    let dropped = get("reliability_client_spans_dropped_total{reason=\"queue_full\"}");
    check(get("reliability_client_spans_created_total") == 2_000.0, || format!("{scraped:#?}"))?;
    check(get("reliability_client_queue_utilisation_ratio") >= 0.9 && dropped > 0.0, || format!("{scraped:#?}"))?;
    let answered_500 = sdk::ledger(backend, "evaluations")?.iter().filter(|e| e["status"] == 500).count() as f64;
    let api_errors = get("reliability_client_side_api_errors_total{endpoint=\"evaluations\",status=\"500\"}");
    check(answered_500 >= 1.0 && api_errors == answered_500, || {
        format!("the backend answered {answered_500} 500s; the scrape says {api_errors}: {scraped:#?}")
    })?;
    check(sdk::drained(client, Duration::from_secs(120)), || format!("never drained: {:#?}", client.health()))?;
    let stored = sdk::accepted_by_backend(backend)?;
    check(dropped == 2_000.0 - stored as f64, || {
        format!("the scrape said {dropped} dropped; {stored} of 2,000 arrived")
    })
}

fn visible_client(
    backend: &Backend,
    serve: bool,
    gate: &ExportGate,
) -> Result<std::sync::Arc<dyn reliability_client::sdk::SdkUnderTest>, String> {
    let change = |c: &mut reliability_client::ClientConfig, side: &mut reliability_client::side::SideConfig| {
        c.max_queue_size = 1_000;
        c.max_export_batch_size = 100;
        c.hooks.export_gate = Some(gate.clone());
        side.evaluation_batch = 5;
    };
    let always_500 = json!({ "rules": [{ "when": { "always": true }, "action": { "kind": "status", "code": 500 } }] });
    sdk::set_plan(backend, "evaluations", &always_500)?;
    if serve { sdk::reference_serving(backend, change) } else { sdk::reference(backend, change).map(Into::into) }
}

#[rh::test(e2e)]
fn the_clients_health_is_visible_to_a_scraper_while_it_runs(metrics: &rh::Metrics) -> Result<(), String> {
    let backend = sdk::backend()?;
    let gate = ExportGate::closed();
    let client = visible_client(&backend, true, &gate)?;
    health_is_scraped_while_it_runs(&*client, &gate, &backend)?;
    let h = sdk::finish_overloaded(&*client, metrics);
    check(h.spans.is_balanced() && h.side.evaluations_failed == 20, || format!("{h:#?}"))
}

/// The check can fail: a client that serves no health (the analysed SDK) is caught.
#[rh::test(e2e)]
fn a_client_with_no_health_endpoint_is_caught(metrics: &rh::Metrics) -> Result<(), String> {
    let backend = sdk::backend()?;
    let gate = ExportGate::closed();
    let client = visible_client(&backend, false, &gate)?;
    let caught = health_is_scraped_while_it_runs(&*client, &gate, &backend).is_err();
    gate.open();
    sdk::finish_overloaded(&*client, metrics);
    check(caught, || "a client with no health endpoint passed the visibility check".into())
}
