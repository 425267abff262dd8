//! Load through the suites: the load tool's generator (`reliability-load`) run from tests
//! against the run's target, every span placed exactly and checked against the target's own
//! count, figures recorded for the reports and the Pushgateway. Marked `e2e, slow`.

use std::sync::atomic::AtomicBool;

use reliability_harness as rh;
use reliability_load::exec::{Summary, execute};
use reliability_load::plan::Plan;
use reliability_suites::{Project, Target};

/// Runs `workload` (a plan's `workload:` and what follows) against the target, spans in
/// `project`, and checks the accounting from three sides: the generator's span count, the
/// workers' outcomes, and the target's stats.
fn load(target: &Target, project: &Project, body: &str, metrics: &rh::Metrics) -> Result<Summary, String> {
    let yaml = format!(
        "name: suite\nservice: {}\ntarget:\n  endpoint: {}\npipeline: raw\n{body}",
        project.name, target.traces_url
    );
    let plan = Plan::from_yaml(&yaml, "<suite>").map_err(|e| e.to_string())?;
    let out = std::env::temp_dir().join(format!("suite-load-{}", project.name));
    let summary = execute(&plan, "suite", &out, &std::sync::Arc::new(AtomicBool::new(false)), Default::default())
        .map_err(|e| e.to_string())?;
    let _ = std::fs::remove_dir_all(&out);
    let (it, sp) = (&summary.iterations, &summary.spans);
    let placed =
        sp.accepted + sp.rejected + sp.dropped.values().sum::<u64>() + sp.failed.values().sum::<u64>() + sp.unfinished;
    if it.started + it.missed != it.offered || placed != sp.generated {
        return Err(format!("unaccounted: {it:?} {sp:?}"));
    }
    let ended: u64 = it.by_status.values().map(|t| t.iterations).sum();
    if ended != it.started {
        return Err(format!("{} iterations started, {ended} ended", it.started));
    }
    let stats = target.stats(&project.name)?.ok_or("the target has no stats for the project")?;
    let counted = stats["accepted"].as_u64().unwrap_or(0);
    if counted != sp.accepted {
        return Err(format!(
            "the target counted {counted} spans, the load tool was told {} were accepted",
            sp.accepted
        ));
    }
    metrics.set("load_iterations_offered", it.offered as f64);
    metrics.set("load_iterations_missed", it.missed as f64);
    metrics.set("load_spans_generated", sp.generated as f64);
    metrics.set("load_spans_accepted", sp.accepted as f64);
    metrics.set("load_latency_p50_ms", summary.latency_ms.p50);
    metrics.set("load_latency_p99_ms", summary.latency_ms.p99);
    metrics.set("load_bytes", summary.bytes as f64);
    Ok(summary)
}

/// The GenAI mix (40/30/20/10) for 30 s at 10 traces/s: every span placed, the target's
/// count equal to what it accepted.
#[rh::test(e2e, slow, timeout = 300)]
fn genai_mix_for_30_seconds_places_every_span(
    target: &Target,
    project: &Project,
    metrics: &rh::Metrics,
) -> Result<(), String> {
    let summary = load(
        target,
        project,
        "scenarios:\n  - {name: simple_query, weight: 40}\n  - {name: single_service_search, weight: 30}\n  - {name: delegated_booking, weight: 20}\n  - {name: multi_service_complex, weight: 10}\nworkload:\n  executor: constant-arrival-rate\n  rate: 10\n  duration: 30s\n  max-in-flight: 32\n",
        metrics,
    )?;
    assert_eq!(summary.iterations.offered, 300);
    assert_eq!(summary.scenarios.len(), 4);
    assert!(summary.spans.accepted > 0);
    Ok(())
}

/// A burst: 20/s with a 10× spike for 2 s; whatever the pool could not start is counted as
/// missed, and every started iteration's spans are placed.
#[rh::test(e2e, slow, timeout = 300)]
fn a_burst_is_placed_span_for_span(target: &Target, project: &Project, metrics: &rh::Metrics) -> Result<(), String> {
    let summary = load(
        target,
        project,
        "spans-per-iteration: 20\nworkload:\n  executor: burst\n  baseline: 20\n  duration: 10s\n  spikes: [{at: 4s, duration: 2s, rate: 200}]\n  max-in-flight: 16\n",
        metrics,
    )?;
    assert_eq!(summary.iterations.offered, 8 * 20 + 2 * 200);
    Ok(())
}
