//! Chaos on the wire: spans sent through the chaos proxy while it adds latency, partitions the
//! network for 10 seconds, and resets connections in bursts. Every span is accounted for:
//! each phase's spans are placed exactly (exported, or failed when the fault hit), the target
//! holds exactly what the client exported, and the proxy's ledger shows the faults happened.
//!
//! Marked `chaos` (opt-in: `--include chaos`); CI runs it.

use std::time::{Duration, Instant};

use opentelemetry::KeyValue;
use opentelemetry::trace::{Span as _, Tracer as _};
use reliability_client::Accounting;
use reliability_harness as rh;
use reliability_suites::{ChaosProxy, Shortfall, Tracer};
use testbed::proxy::{Ending, Kind, Stream, Toxic};

/// Ends `n` spans tagged with the phase, then flushes; returns whether the export succeeded.
fn flushed(tracer: &Tracer, phase: &'static str, n: u64) -> bool {
    let t = tracer.tracer();
    for i in 0..n {
        let mut span = t.span_builder(format!("{phase} {i}")).with_attributes([tracer.marker()]).start(&t);
        span.set_attribute(KeyValue::new("chaos.phase", phase));
        span.end();
    }
    tracer.force_flush().is_ok()
}

/// The change in (exported, failed) since `before`, checking nothing else moved.
fn moved(before: Accounting, after: Accounting) -> Result<(u64, u64), String> {
    let other = (after.rejected, after.dropped) != (before.rejected, before.dropped);
    if other || after.in_export != 0 {
        return Err(format!("unexpected drops or rejections: before {before:?}, after {after:?}"));
    }
    Ok((after.exported - before.exported, after.failed - before.failed))
}

#[rh::test(chaos, timeout = 180)]
fn spans_through_latency_a_partition_and_reset_bursts_are_all_accounted(
    tracer: &Tracer,
    proxy: &ChaosProxy,
    metrics: &rh::Metrics,
) -> Result<(), String> {
    // The test flushes; the batch timer must not export on its own between phases.
    tracer.reconfigure(|c| {
        c.endpoint = proxy.traces_url.clone();
        c.scheduled_delay_ms = 3_600_000;
        c.max_queue_size = 4096;
    })?;
    let mut generated = 0;

    // 1. Latency both ways (with jitter): slower, nothing lost.
    proxy.add_toxic(Toxic::new(Kind::Latency { latency: 50, jitter: 10 }, Stream::Downstream))?;
    proxy.add_toxic(Toxic::new(Kind::Latency { latency: 20, jitter: 0 }, Stream::Upstream))?;
    let before = tracer.accounting();
    for _ in 0..3 {
        if !flushed(tracer, "latency", 200) {
            return Err("an export through the latency toxics failed".into());
        }
        generated += 200;
    }
    assert_eq!(moved(before, tracer.accounting())?, (600, 0), "latency: all 600 exported");

    // 2. A 10-second partition: every export in it fails; none reaches the target.
    let before = tracer.accounting();
    proxy.set_enabled(false)?;
    let started = Instant::now();
    let mut partitioned = 0;
    while started.elapsed() < Duration::from_secs(10) {
        if flushed(tracer, "partition", 100) {
            return Err("an export got through a partition".into());
        }
        partitioned += 100;
        std::thread::sleep(Duration::from_millis(500));
    }
    proxy.set_enabled(true)?;
    generated += partitioned;
    assert_eq!(moved(before, tracer.accounting())?, (0, partitioned), "partition: all {partitioned} failed");
    metrics.set("partition_spans_failed", partitioned as f64);

    // 3. Reset bursts: while reset_peer is on, every connection is reset on its first request
    //    bytes (none passes); between bursts, everything goes through.
    let reset = Toxic::new(Kind::ResetPeer { timeout: 0 }, Stream::Upstream).named("burst");
    for _ in 0..3 {
        let before = tracer.accounting();
        proxy.add_toxic(reset.clone())?;
        let ok = flushed(tracer, "reset", 100);
        proxy.remove_toxic("burst")?;
        generated += 100;
        assert!(!ok, "an export got through reset_peer");
        assert_eq!(moved(before, tracer.accounting())?, (0, 100), "burst: all 100 failed");
        let before = tracer.accounting();
        assert!(flushed(tracer, "between", 100), "the export between bursts failed");
        generated += 100;
        assert_eq!(moved(before, tracer.accounting())?, (100, 0), "between bursts: all 100 exported");
    }

    // The proxy's ledger: the bursts reset connections, each dropping the request that hit
    // it (a kept-alive connection may have carried whole requests before), and every byte
    // of every ended connection is either forwarded or discarded. (On an open one the
    // identity can lag: `forwarded` is counted after a write returns, and the client may
    // read the bytes first.)
    let ledger = proxy.connections()?;
    let ended = |why: Ending| ledger.iter().filter(|c| c.ending == Some(why)).count();
    assert!(ended(Ending::ResetPeer) >= 3, "one reset per burst at least: {ledger:?}");
    for c in &ledger {
        if c.ending == Some(Ending::ResetPeer) {
            assert!(c.upstream.discarded > 0, "a reset dropped no request bytes: {c:?}");
        }
        for d in [&c.upstream, &c.downstream] {
            if c.closed_ms.is_some() {
                assert_eq!(d.received, d.forwarded + d.discarded, "bytes unaccounted: {c:?}");
            } else {
                assert!(d.forwarded + d.discarded <= d.received, "bytes counted twice: {c:?}");
            }
        }
    }
    metrics.set("proxy_connections", ledger.len() as f64);
    metrics.set("proxy_connections_reset", ended(Ending::ResetPeer) as f64);

    // Shutdown and the target: every check holds except the ratio, which the failed exports
    // lower by exactly the spans the faults hit.
    let delivery = tracer.measure(generated, metrics)?;
    let failed = partitioned + 300;
    assert_eq!(delivery.accounting.exported, generated - failed);
    assert_eq!(delivery.accounting.failed, failed);
    let shortfalls: Vec<Shortfall> =
        delivery.shortfalls().into_iter().filter(|s| !matches!(s, Shortfall::BelowThreshold { .. })).collect();
    if !shortfalls.is_empty() {
        return Err(format!("delivery through the proxy fell short: {shortfalls:?}; {delivery:?}"));
    }
    assert_eq!(delivery.delivered, generated - failed, "the target holds exactly what was exported");
    Ok(())
}
