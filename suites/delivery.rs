//! End-to-end delivery: spans made by the OpenTelemetry Rust pipeline arrive, complete and
//! intact, at the target (the embedded testbed backend unless `[target]` says otherwise).
//!
//! Every test ends with `Tracer::finish`: the client's accounting must balance, the target's
//! unique count must equal what the client exported, and the delivery ratio must meet the
//! thresholds; `spans_generated`, `spans_delivered`, `spans_duplicated`, `delivery_ratio` and
//! export latencies are recorded for the reports and the Pushgateway.

use std::time::{Duration, Instant};

use opentelemetry::trace::{Span as _, TraceContextExt, Tracer as _};
use opentelemetry::{Array, Context, KeyValue, StringValue, Value};
use opentelemetry_proto::tonic::common::v1::any_value::Value as V;
use opentelemetry_proto::tonic::trace::v1::Span as ProtoSpan;
use reliability_harness as rh;
use reliability_suites::{Shortfall, Tracer};

/// Ends `n` spans, each with the test marker.
fn spans(tracer: &Tracer, n: u64) {
    let t = tracer.tracer();
    for i in 0..n {
        t.span_builder(format!("span {i}")).with_attributes([tracer.marker()]).start(&t).end();
    }
}

/// The spans of this test, as the target returns them.
fn fetched(tracer: &Tracer) -> Result<Vec<ProtoSpan>, String> {
    let page = tracer.target().traces(&tracer.project().name, &tracer.project().marker)?;
    let mut out = Vec::new();
    for trace in page["traces"].as_array().into_iter().flatten() {
        for span in trace["spans"].as_array().into_iter().flatten() {
            out.push(serde_json::from_value(span.clone()).map_err(|e| format!("span JSON: {e}"))?);
        }
    }
    Ok(out)
}

fn attribute<'a>(span: &'a ProtoSpan, key: &str) -> Option<&'a V> {
    span.attributes.iter().find(|kv| kv.key == key).and_then(|kv| kv.value.as_ref()?.value.as_ref())
}

#[rh::test(e2e)]
fn baseline_100_spans(tracer: &Tracer, metrics: &rh::Metrics) -> Result<(), String> {
    spans(tracer, 100);
    tracer.finish(100, metrics)?;
    Ok(())
}

#[rh::test(e2e)]
fn paced_1k_spans_at_100_per_second(tracer: &Tracer, metrics: &rh::Metrics) -> Result<(), String> {
    tracer.reconfigure(|c| c.scheduled_delay_ms = 500)?;
    let t = tracer.tracer();
    let started = Instant::now();
    for i in 0..1000u64 {
        t.span_builder(format!("paced {i}")).with_attributes([tracer.marker()]).start(&t).end();
        let due = started + Duration::from_millis(10 * (i + 1));
        std::thread::sleep(due.saturating_duration_since(Instant::now()));
    }
    metrics.record_throughput("generate", 1000, started.elapsed());
    tracer.finish(1000, metrics)?;
    Ok(())
}

/// 10 threads ending 500 spans each as fast as they can: a 5,000-span burst. The SDK's default
/// queue (2,048) drops most of it (see the next test), so this one sizes the queue for it.
#[rh::test(e2e)]
fn ten_threads_of_500_spans(tracer: &Tracer, metrics: &rh::Metrics) -> Result<(), String> {
    tracer.reconfigure(|c| c.max_queue_size = c.max_queue_size.max(8192))?;
    burst_from_10_threads(tracer);
    tracer.finish(5000, metrics)?;
    Ok(())
}

/// With the default queue the same burst overflows: the SDK drops spans silently (one log
/// line). Its own drop count, the exporter's count and the target's count must still place
/// every one of the 5,000 spans, and the only check that fails is the delivery ratio.
#[rh::test(e2e)]
fn default_queue_drops_a_burst_and_every_span_is_accounted(
    tracer: &Tracer,
    metrics: &rh::Metrics,
) -> Result<(), String> {
    tracer.reconfigure(|c| c.max_queue_size = 2048)?;
    burst_from_10_threads(tracer);
    let d = tracer.measure(5000, metrics)?;
    let a = &d.accounting;
    let checks = [
        ("the SDK dropped spans", a.dropped > 0),
        ("exported + dropped = 5,000", a.exported + a.dropped == 5000),
        ("nothing rejected, failed or left behind", a.rejected + a.failed + a.in_export + a.queued == 0),
        ("the accounting balances", a.is_balanced() && a.shutdown_completed),
        ("the target holds exactly what was exported", d.delivered == a.exported),
        ("the ratio is the only shortfall", matches!(d.shortfalls()[..], [Shortfall::BelowThreshold { .. }])),
    ];
    match checks.iter().filter(|(_, ok)| !ok).map(|(what, _)| *what).collect::<Vec<_>>() {
        failed if failed.is_empty() => Ok(()),
        failed => Err(format!("not true: {}; figures {d:?}; shortfalls {:?}", failed.join(", "), d.shortfalls())),
    }
}

/// The embedded target is started once per run, by the run's process, and every test process
/// adopts it — tests reach it only through `Tracer` and `Project`.
#[rh::test(e2e)]
fn the_target_is_shared_by_the_run(tracer: &Tracer) -> Result<(), String> {
    let connected_by = tracer.target().connected_by;
    // In process isolation this test runs in a child of the run; otherwise in the run itself.
    let run = match std::env::var_os("RELIABILITY_CHILD") {
        Some(_) => std::os::unix::process::parent_id(),
        None => std::process::id(),
    };
    match connected_by == run {
        true => Ok(()),
        false => Err(format!("the target was connected by process {connected_by}, not by the run ({run})")),
    }
}

fn burst_from_10_threads(tracer: &Tracer) {
    std::thread::scope(|scope| {
        for thread in 0..10 {
            let t = tracer.tracer();
            let marker = tracer.marker();
            scope.spawn(move || {
                for i in 0..500 {
                    t.span_builder(format!("thread {thread} span {i}"))
                        .with_attributes([marker.clone()])
                        .start(&t)
                        .end();
                }
            });
        }
    });
}

#[rh::test(e2e)]
fn attributes_are_preserved_byte_for_byte(tracer: &Tracer, metrics: &rh::Metrics) -> Result<(), String> {
    let ten_kb: String = "0123456789abcdef".repeat(640);
    let nested = r#"{"a":[1,2,{"b":"ç"}],"c":null}"#;
    let strings = [
        ("unicode", "héllo wörld ✓"),
        ("emoji", "🚀👩‍🚀🏳️‍🌈"),
        ("rtl", "שלום עולם مرحبا"),
        ("empty", ""),
        ("nested_json", nested),
    ];
    let t = tracer.tracer();
    let mut attrs: Vec<KeyValue> =
        strings.iter().map(|(k, v)| KeyValue::new(format!("s.{k}"), v.to_string())).collect();
    attrs.extend([
        tracer.marker(),
        KeyValue::new("s.10kb", ten_kb.clone()),
        KeyValue::new("i.max", i64::MAX),
        KeyValue::new("i.min", i64::MIN),
        KeyValue::new("i.zero", 0i64),
        KeyValue::new("f.pi", std::f64::consts::PI),
        KeyValue::new("f.neg", -0.5f64),
        KeyValue::new("b.true", true),
        KeyValue::new("b.false", false),
        KeyValue::new("a.str", Value::Array(Array::String(vec![StringValue::from("x"), StringValue::from("🚀")]))),
        KeyValue::new("a.int", Value::Array(Array::I64(vec![i64::MIN, -1, i64::MAX]))),
        KeyValue::new("a.float", Value::Array(Array::F64(vec![1.5, -2.25]))),
        KeyValue::new("a.bool", Value::Array(Array::Bool(vec![false, true]))),
    ]);
    t.span_builder("attributes").with_attributes(attrs).start(&t).end();
    tracer.finish(1, metrics)?;
    let spans = fetched(tracer)?;
    let span = spans.first().ok_or("the span did not arrive")?;
    let text = |k: &str| match attribute(span, k) {
        Some(V::StringValue(s)) => Ok(s.clone()),
        other => Err(format!("{k}: {other:?}")),
    };
    for (k, v) in strings {
        let got = text(&format!("s.{k}"))?;
        if got.as_bytes() != v.as_bytes() {
            return Err(format!("s.{k}: sent {v:?}, got {got:?}"));
        }
    }
    if text("s.10kb")? != ten_kb {
        return Err("the 10 KB string changed".into());
    }
    let expect = |k: &str, want: V| match attribute(span, k) {
        Some(got) if *got == want => Ok(()),
        other => Err(format!("{k}: want {want:?}, got {other:?}")),
    };
    expect("i.max", V::IntValue(i64::MAX))?;
    expect("i.min", V::IntValue(i64::MIN))?;
    expect("i.zero", V::IntValue(0))?;
    expect("f.pi", V::DoubleValue(std::f64::consts::PI))?;
    expect("f.neg", V::DoubleValue(-0.5))?;
    expect("b.true", V::BoolValue(true))?;
    expect("b.false", V::BoolValue(false))?;
    let array = |k: &str| match attribute(span, k) {
        Some(V::ArrayValue(a)) => Ok(a.values.iter().map(|v| v.value.clone()).collect::<Vec<_>>()),
        other => Err(format!("{k}: {other:?}")),
    };
    if array("a.int")? != [Some(V::IntValue(i64::MIN)), Some(V::IntValue(-1)), Some(V::IntValue(i64::MAX))] {
        return Err(format!("a.int: {:?}", array("a.int")?));
    }
    if array("a.str")? != [Some(V::StringValue("x".into())), Some(V::StringValue("🚀".into()))] {
        return Err(format!("a.str: {:?}", array("a.str")?));
    }
    if array("a.float")? != [Some(V::DoubleValue(1.5)), Some(V::DoubleValue(-2.25))] {
        return Err(format!("a.float: {:?}", array("a.float")?));
    }
    if array("a.bool")? != [Some(V::BoolValue(false)), Some(V::BoolValue(true))] {
        return Err(format!("a.bool: {:?}", array("a.bool")?));
    }
    Ok(())
}

#[rh::test(e2e)]
fn trace_trees_keep_12_levels_of_parent_links(tracer: &Tracer, metrics: &rh::Metrics) -> Result<(), String> {
    let t = tracer.tracer();
    let mut cx = Context::new();
    let mut contexts = Vec::new();
    for depth in 0..12 {
        let span =
            t.span_builder(format!("level {depth}")).with_attributes([tracer.marker()]).start_with_context(&t, &cx);
        cx = cx.with_span(span);
        contexts.push(cx.clone());
    }
    for cx in contexts.iter().rev() {
        cx.span().end();
    }
    drop(contexts);
    drop(cx);
    tracer.finish(12, metrics)?;
    let spans = fetched(tracer)?;
    let by_name = |n: String| spans.iter().find(|s| s.name == n).ok_or(format!("{n} did not arrive"));
    if !by_name("level 0".into())?.parent_span_id.is_empty() {
        return Err("the root has a parent".into());
    }
    for depth in 1..12 {
        let (child, parent) = (by_name(format!("level {depth}"))?, by_name(format!("level {}", depth - 1))?);
        if child.parent_span_id != parent.span_id || child.trace_id != parent.trace_id {
            return Err(format!("level {depth} is not a child of level {}", depth - 1));
        }
    }
    Ok(())
}

/// The SDK keeps at most 128 attributes per span by default and counts the rest as dropped.
#[rh::test(e2e)]
fn attribute_counts_below_at_and_above_the_cap(tracer: &Tracer, metrics: &rh::Metrics) -> Result<(), String> {
    let t = tracer.tracer();
    let counts = [100usize, 128, 129, 200];
    for n in counts {
        // The marker is attribute 1 of n.
        let mut attrs = vec![tracer.marker()];
        attrs.extend((1..n).map(|i| KeyValue::new(format!("k{i:03}"), i as i64)));
        t.span_builder(format!("attrs {n}")).with_attributes(attrs).start(&t).end();
    }
    tracer.finish(counts.len() as u64, metrics)?;
    let spans = fetched(tracer)?;
    for n in counts {
        let span = spans.iter().find(|s| s.name == format!("attrs {n}")).ok_or(format!("attrs {n} did not arrive"))?;
        let (kept, dropped) = (span.attributes.len(), span.dropped_attributes_count as usize);
        if (kept, dropped) != (n.min(128), n.saturating_sub(128)) {
            return Err(format!("{n} attributes: kept {kept}, dropped {dropped}; the SDK's documented cap is 128"));
        }
    }
    Ok(())
}

#[rh::test(e2e)]
fn a_1mb_attribute_value_arrives_intact(tracer: &Tracer, metrics: &rh::Metrics) -> Result<(), String> {
    let big: String = (0..1_048_576u32).map(|i| char::from(b'a' + (i % 26) as u8)).collect();
    let t = tracer.tracer();
    t.span_builder("big").with_attributes([tracer.marker(), KeyValue::new("payload", big.clone())]).start(&t).end();
    tracer.finish(1, metrics)?;
    let spans = fetched(tracer)?;
    match spans.first().and_then(|s| attribute(s, "payload")) {
        Some(V::StringValue(s)) if *s == big => Ok(()),
        Some(V::StringValue(s)) => Err(format!("the 1 MB value arrived changed ({} bytes)", s.len())),
        other => Err(format!("the 1 MB value did not arrive: {:?}", other.map(|_| "another type"))),
    }
}

/// Ends `total` spans at about `per_second`, in steps of 1 ms.
fn paced(tracer: &Tracer, total: u64, per_second: u64) {
    let t = tracer.tracer();
    let started = Instant::now();
    for i in 0..total {
        t.span_builder("paced").with_attributes([tracer.marker()]).start(&t).end();
        if i % 100 == 99 {
            let due = started + Duration::from_secs_f64((i + 1) as f64 / per_second as f64);
            std::thread::sleep(due.saturating_duration_since(Instant::now()));
        }
    }
}

#[rh::test(e2e, slow, timeout = 300)]
fn sustained_10k_spans_over_30_seconds(tracer: &Tracer, metrics: &rh::Metrics) -> Result<(), String> {
    tracer.reconfigure(|c| c.scheduled_delay_ms = 1000)?;
    paced(tracer, 10_000, 333);
    tracer.finish(10_000, metrics)?;
    Ok(())
}

#[rh::test(e2e, slow, timeout = 300)]
fn burst_5k_then_5k_sustained(tracer: &Tracer, metrics: &rh::Metrics) -> Result<(), String> {
    // The burst must fit the queue: a BatchSpanProcessor drops what does not.
    tracer.reconfigure(|c| {
        c.max_queue_size = c.max_queue_size.max(8192);
        c.scheduled_delay_ms = 200;
    })?;
    spans(tracer, 5000);
    paced(tracer, 5000, 1000);
    tracer.finish(10_000, metrics)?;
    Ok(())
}

#[rh::test(e2e, slow, timeout = 600)]
#[case(50_000)]
#[case(100_000)]
fn ladder(spans_total: u64, tracer: &Tracer, metrics: &rh::Metrics) -> Result<(), String> {
    tracer.reconfigure(|c| {
        c.max_queue_size = c.max_queue_size.max(16_384);
        c.scheduled_delay_ms = 100;
    })?;
    let started = Instant::now();
    paced(tracer, spans_total, 20_000);
    metrics.record_throughput("generate", spans_total, started.elapsed());
    let delivery = tracer.finish(spans_total, metrics)?;
    metrics.record_throughput("deliver", delivery.delivered, started.elapsed());
    Ok(())
}
