//! The capacity search against a target of known capacity: the testbed answering every
//! request after a fixed 20 ms (a fault plan) and handling at most 4 ingest requests at once
//! (more wait their turn inside it), so at most 4 / 0.020 = 200 requests/s. The search (start 25/s, ×2, bisect to 5%) must land
//! within ±15% of 200.
//!
//! Run: `cargo bench -p reliability-benches --bench capacity`

use std::sync::atomic::AtomicBool;

use reliability_load::exec::capacity;
use reliability_load::plan::Plan;

fn main() {
    let faults: testbed::FaultPlan = serde_json::from_str(r#"{"latency_ms": 20}"#).expect("a fault plan");
    let config = testbed::Config { faults: Some(faults), max_concurrent_ingest: Some(4), ..testbed::Config::default() };
    let backend = testbed::Backend::start(config).expect("start the testbed");
    let yaml = format!(
        "name: known-capacity\ntarget:\n  endpoint: {}\nspans-per-iteration: 5\nworkload:\n  executor: constant-arrival-rate\n  rate: 1\n  duration: 1s\n  max-in-flight: 64\ncapacity:\n  start-rate: 25\n  factor: 2\n  tolerance: 0.05\n  step-seconds: 4\n  slo-p99-ms: 250\n  min-achieved-ratio: 0.99\n  max-error-rate: 0.01\n",
        backend.traces_url()
    );
    let plan = Plan::from_yaml(&yaml, "<bench>").unwrap_or_else(|e| panic!("{e}"));
    let out = std::env::temp_dir().join(format!("capacity-bench-{}", std::process::id()));
    let report = capacity(&plan, "known-capacity", &out, &AtomicBool::new(false)).unwrap_or_else(|e| panic!("{e}"));
    let _ = std::fs::remove_dir_all(&out);
    backend.shutdown();
    println!("capacity search against a target of known capacity (4 at once x 20 ms = 200 requests/s)");
    for s in &report.steps {
        println!(
            "  {:>7.1}/s  achieved {:.3}  p99 {:>8.1} ms  {}",
            s.step.rate,
            s.step.achieved_ratio,
            s.step.p99_ms,
            s.broke.as_deref().unwrap_or("held")
        );
    }
    let ratio = report.sustainable_iterations_per_second / 200.0;
    println!(
        "  found {:.1}/s = {ratio:.3} of the computed 200/s (target within ±15%: {})",
        report.sustainable_iterations_per_second,
        if (0.85..=1.15).contains(&ratio) { "met" } else { "NOT met" }
    );
}
