//! Span overhead as users of the client pipeline see it: every span start+end timed on its
//! own into an HDR histogram, through the pipeline (BatchSpanProcessor + OTLP/HTTP exporter
//! to the embedded backend) and through a no-op tracer, with 0 and 10 attributes. Prints
//! p50, p99 and max, and the pipeline's p99 as a ratio of the no-op's (both include the same
//! clock-read cost). Target: p99 < 5 µs per span through the pipeline.
//!
//! The queue is emptied (untimed) every 2,048 spans, so no span is dropped; the run fails if
//! one was.
//!
//! Run: `cargo run --release -p reliability-benches --bin span-figures [SPANS]` (default 200,000)

use std::time::Instant;

use hdrhistogram::Histogram;
use opentelemetry::trace::{Span as _, Tracer};
use reliability_benches::inputs::ten_attributes;
use reliability_client::{ClientConfig, Pipeline};

const ROUND: u64 = 2048;

fn measure(
    tracer: &impl Tracer,
    attributes: &[opentelemetry::KeyValue],
    spans: u64,
    flush: &dyn Fn(),
) -> Histogram<u64> {
    let mut histogram = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3).expect("histogram bounds");
    for i in 0..spans {
        let started = Instant::now();
        let mut span = tracer.span_builder("chat gpt-4o").with_attributes(attributes.to_vec()).start(tracer);
        span.end();
        histogram.saturating_record(started.elapsed().as_nanos() as u64);
        drop(span);
        if (i + 1) % ROUND == 0 {
            flush();
        }
    }
    histogram
}

fn main() -> Result<(), String> {
    let spans: u64 = match std::env::args().nth(1) {
        Some(arg) => arg.parse().map_err(|_| format!("SPANS must be a count, not {arg:?}"))?,
        None => 200_000,
    };
    let backend = testbed::Backend::start(testbed::Config::default()).map_err(|e| e.to_string())?;
    let config = ClientConfig {
        endpoint: backend.traces_url(),
        max_queue_size: 2 * ROUND as usize,
        scheduled_delay_ms: 60_000,
        service_name: "span-figures".into(),
        ..ClientConfig::default()
    };
    let pipeline = Pipeline::start(&config).map_err(|e| e.to_string())?;
    let tracer = pipeline.tracer("span-figures");
    let noop = opentelemetry::trace::noop::NoopTracer::new();
    let flush = || pipeline.force_flush().expect("flush between rounds");
    println!("span start+end, {spans} spans each (ns; an HDR histogram of every call)");
    println!("{:<22} {:>8} {:>8} {:>10}", "", "p50", "p99", "max");
    let mut p99 = Vec::new();
    for (label, attributes) in [("0 attributes", Vec::new()), ("10 attributes", ten_attributes())] {
        // Warm both paths first (allocator, the exporter's connection).
        measure(&noop, &attributes, ROUND, &|| ());
        measure(&tracer, &attributes, ROUND, &flush);
        let base = measure(&noop, &attributes, spans, &|| ());
        let real = measure(&tracer, &attributes, spans, &flush);
        for (name, h) in [("no-op", &base), ("pipeline", &real)] {
            println!(
                "{:<22} {:>8} {:>8} {:>10}",
                format!("{name}, {label}"),
                h.value_at_quantile(0.5),
                h.value_at_quantile(0.99),
                h.max()
            );
        }
        p99.push((label, real.value_at_quantile(0.99), base.value_at_quantile(0.99)));
    }
    let (accounting, _) = pipeline.shutdown();
    backend.shutdown();
    for (label, real, base) in &p99 {
        println!(
            "pipeline p99 / no-op p99, {label}: {:.1}x; pipeline p99 {} ns (target < 5000 ns: {})",
            *real as f64 / (*base).max(1) as f64,
            real,
            if *real < 5000 { "met" } else { "NOT met" }
        );
    }
    let expected = 2 * (spans + ROUND);
    println!("accounting: {accounting:?}");
    if accounting.dropped != 0 || accounting.ended != expected || accounting.unaccounted() != 0 {
        return Err(format!(
            "spans went missing: ended {} of {expected}, dropped {}",
            accounting.ended, accounting.dropped
        ));
    }
    Ok(())
}
