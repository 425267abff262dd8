//! The load tool's generator, measured: the `raw` pipeline offering 100,000 spans/s (1,000
//! iterations/s of 100 spans) for 5 s to the embedded testbed — what it achieves, and that no
//! span is unaccounted (generated = accepted + rejected + dropped + failed + unfinished, and
//! the target's own count equals accepted) — with the `sdk` pipeline's figure at the same
//! offered rate beside it. Target: raw ≥ 100,000 spans/s.
//!
//! Run: `cargo bench -p reliability-benches --bench load`

use std::sync::atomic::AtomicBool;

use reliability_load::exec::{Summary, execute};
use reliability_load::plan::Plan;

fn run(pipeline: &str) -> Summary {
    let yaml = format!(
        "name: bench-{pipeline}\npipeline: {pipeline}\nspans-per-iteration: 100\nworkload:\n  executor: constant-arrival-rate\n  rate: 1000\n  duration: 5s\n  max-in-flight: 64\n"
    );
    let plan = Plan::from_yaml(&yaml, "<bench>").unwrap_or_else(|e| panic!("{e}"));
    let out = std::env::temp_dir().join(format!("load-bench-{}", std::process::id()));
    let summary = execute(
        &plan,
        &format!("bench-{pipeline}"),
        &out,
        &std::sync::Arc::new(AtomicBool::new(false)),
        Default::default(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let _ = std::fs::remove_dir_all(&out);
    summary
}

fn report(s: &Summary) -> f64 {
    let sp = &s.spans;
    let placed =
        sp.accepted + sp.rejected + sp.dropped.values().sum::<u64>() + sp.failed.values().sum::<u64>() + sp.unfinished;
    let unaccounted = sp.generated as i64 - placed as i64;
    // Over the schedule's 5 s: sustained means everything offered was started and accepted.
    let rate = sp.accepted as f64 / 5.0;
    println!(
        "  {:<4} offered {:>7} spans/s  achieved {:>9.0} spans/s  missed {:>4} of {} iterations  p99 {:>7.2} ms  \
         unaccounted {unaccounted}  target counted {}",
        s.pipeline,
        100_000,
        rate,
        s.iterations.missed,
        s.iterations.offered,
        s.latency_ms.p99,
        sp.target_accepted.map_or("-".to_owned(), |n| format!("{n} of {} accepted", sp.accepted)),
    );
    assert_eq!(unaccounted, 0, "every span placed");
    assert_eq!(sp.target_accepted, Some(sp.accepted), "the target counted what was accepted");
    rate
}

fn main() {
    println!("load generator benchmark: 1,000 iterations/s x 100 spans for 5 s, embedded testbed");
    let raw = report(&run("raw"));
    let sdk = report(&run("sdk"));
    println!(
        "  raw sustained {raw:.0} spans/s of 100000 offered (target: >= 99% of it, {}); sdk / raw = {:.2}",
        if raw >= 99_000.0 { "met" } else { "NOT met" },
        sdk / raw
    );
}
