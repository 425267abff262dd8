//! The plan: which tests run, in what order, in which shard, and the libtest trials that
//! print them (each trial waits for its test's result from the pool).

use std::path::Path;
use std::sync::Arc;

use libtest_mimic::{Arguments, Trial};

use super::Invocation;
use crate::config::options::RunOptions;
use crate::config::{Config, SelectionSettings};
use crate::error::Error;
use crate::outcome::{Outcome, TestReport};
use crate::registry::{Isolation, TestCase};
use crate::report::lastfailed::LastFailed;
use crate::report::summary::Summary;
use crate::run::pool::Pool;
use crate::run::schedule::RunCtx;
use crate::select::Decision;

/// The run's order: every test with what the selection decided for it, after `--lf`/`--ff`
/// and `--partition` (`--collect-only` prints the collection here).
pub(super) fn order(
    tests: &[TestCase],
    inv: &Invocation<'_>,
    output_dir: &Path,
    summary: &mut Summary,
) -> Vec<(usize, Decision)> {
    let decisions: Vec<Decision> = tests.iter().map(|t| inv.selection.decide(t, &inv.config.markers)).collect();
    if inv.cli.collect_only {
        print_collection(tests, &decisions);
    }
    let order = apply_last_failed(tests, decisions, &inv.options, output_dir, summary);
    apply_partition(tests, order, &inv.options, &inv.libtest, output_dir, summary)
}

/// What libtest is handed: a trial per test it lists (deselected tests are not), the pool's
/// jobs (indices into the tests, in libtest's order) and the reports of gated tests.
pub(super) struct Planned {
    pub(super) jobs: Vec<usize>,
    pub(super) trials: Vec<Trial>,
    pub(super) gated: Vec<TestReport>,
}

/// The trials of `order`; an error when a selection left nothing to run.
pub(super) fn trials(
    order: &[(usize, Decision)],
    tests: &Arc<Vec<TestCase>>,
    pool: &Arc<Pool>,
    ctx: &RunCtx,
    inv: &Invocation<'_>,
    summary: &mut Summary,
) -> Result<Planned, Error> {
    let libtest = &inv.libtest;
    let mut planned = Planned { jobs: Vec::new(), trials: Vec::new(), gated: Vec::new() };
    for (i, decision) in order {
        let test = &tests[*i];
        let trial = match decision {
            Decision::Run => trial(test, pool, planned.jobs.len()).with_ignored_flag(ctx.in_process && libtest.ignored),
            Decision::Gated { missing } => {
                let trial = trial(test, pool, planned.jobs.len()).with_ignored_flag(true);
                if !libtest.is_filtered_out(&trial) && libtest.is_ignored(&trial) {
                    planned.gated.push(TestReport {
                        name: test.name.into(),
                        markers: test.markers.iter().map(|m| m.to_string()).collect(),
                        outcome: Outcome::Skipped { reason: Decision::gate_reason(missing) },
                        attempts: Vec::new(),
                        output: String::new(),
                        output_bytes: 0,
                        isolation: ctx.isolation_of(test).label().into(),
                    });
                }
                trial
            }
            Decision::Deselected { .. } => {
                summary.deselected += 1;
                continue;
            }
        };
        let runs = !libtest.is_filtered_out(&trial) && !libtest.is_ignored(&trial);
        if runs {
            planned.jobs.push(*i);
        }
        if runs && ctx.isolation_of(test) == Isolation::Thread {
            *ctx.suite_remaining
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .entry(test.suite().to_string())
                .or_default() += 1;
        }
        planned.trials.push(trial);
    }
    let would_run = planned.trials.iter().filter(|t| !libtest.is_ignored(t)).count();
    if !ctx.in_process && inv.selection.is_active() && would_run == 0 && !libtest.list {
        return Err(Error::NothingSelected(format!(
            "{} left none of the {} tests to run ({} deselected, {} gated by opt-in markers)",
            describe_selection(&inv.settings),
            tests.len(),
            summary.deselected,
            planned.trials.len()
        )));
    }
    Ok(planned)
}

/// `test`'s trial: its runner waits for job `job` of the pool (never called unless it runs).
fn trial(test: &TestCase, pool: &Arc<Pool>, job: usize) -> Trial {
    let pool = Arc::clone(pool);
    Trial::ignorable_test(test.name, move || pool.wait(job))
}

/// `--partition KIND:M/N` keeps this shard of the tests that would otherwise be handed to
/// libtest (selected or gated, and through libtest's name filter), and deselects the rest.
fn apply_partition(
    tests: &[TestCase],
    mut order: Vec<(usize, Decision)>,
    options: &RunOptions,
    libtest: &Arguments,
    output_dir: &Path,
    summary: &mut Summary,
) -> Vec<(usize, Decision)> {
    let Some(partition) = options.partition else { return order };
    let candidates: Vec<usize> = order
        .iter()
        .enumerate()
        .filter(|(_, (i, d))| {
            !matches!(d, Decision::Deselected { .. })
                && !libtest.is_filtered_out(&Trial::test(tests[*i].name, || Ok(())))
        })
        .map(|(at, _)| at)
        .collect();
    let names: Vec<&str> = candidates.iter().map(|at| tests[order[*at].0].name).collect();
    let durations = match partition.kind {
        crate::select::partition::Kind::Duration => crate::report::durations::Durations::load(output_dir).seconds,
        _ => Default::default(),
    };
    let keep = partition.keep(&names, &durations);
    for (at, keep) in candidates.iter().zip(&keep) {
        if !keep {
            order[*at].1 = Decision::Deselected { reason: format!("in another shard (--partition {partition})") };
        }
    }
    let kept = keep.iter().filter(|k| **k).count();
    summary.notes.push(format!("shard {partition}: {kept} of {} tests", names.len()));
    order
}

/// `--lf` keeps only last run's failures (all tests if there were none); `--ff` puts them first.
fn apply_last_failed(
    tests: &[TestCase],
    decisions: Vec<Decision>,
    options: &RunOptions,
    output_dir: &Path,
    summary: &mut Summary,
) -> Vec<(usize, Decision)> {
    let mut order: Vec<(usize, Decision)> = decisions.into_iter().enumerate().collect();
    if !options.last_failed && !options.failed_first {
        return order;
    }
    let cache = LastFailed::load(output_dir);
    let failed = |i: usize| cache.failed.contains(tests[i].name);
    let any_failed = order.iter().any(|(i, d)| failed(*i) && !matches!(d, Decision::Deselected { .. }));
    if options.last_failed && any_failed {
        for (i, decision) in &mut order {
            if !failed(*i) && !matches!(decision, Decision::Deselected { .. }) {
                *decision = Decision::Deselected { reason: "passed in the last run (--lf)".into() };
            }
        }
        summary.notes.push(format!("run the last failures only: {} test(s) (--lf)", cache.failed.len()));
    } else if options.last_failed {
        summary.notes.push("no previously failed tests: running all (--lf)".into());
    }
    if options.failed_first {
        order.sort_by_key(|(i, _)| !failed(*i));
    }
    order
}

fn describe_selection(settings: &SelectionSettings) -> String {
    let mut parts = Vec::new();
    if let Some(m) = &settings.markexpr {
        parts.push(format!("-m {:?} (from {})", m.value, m.origin));
    }
    if let Some(k) = &settings.keyword {
        parts.push(format!("-k {:?} (from {})", k.value, k.origin));
    }
    for (flag, list) in [("--include", &settings.include), ("--exclude", &settings.exclude)] {
        if let Some(first) = list.first() {
            let values: Vec<&str> = list.iter().map(|s| s.value.as_str()).collect();
            parts.push(format!("{flag} {} (from {})", values.join(","), first.origin));
        }
    }
    parts.join(" and ")
}

pub(super) fn print_markers(config: &Config, tests: &[TestCase]) {
    for (name, marker) in config.markers.iter() {
        let count = tests.iter().filter(|t| t.has_marker(name)).count();
        let opt_in = if marker.opt_in { ", opt-in" } else { "" };
        println!("@{name}: {} ({count} tests{opt_in})", marker.description);
    }
}

fn print_collection(tests: &[TestCase], decisions: &[Decision]) {
    let mut deselected = Vec::new();
    let mut selected = 0;
    for (test, decision) in tests.iter().zip(decisions) {
        let markers = if test.markers.is_empty() { String::new() } else { format!(" [{}]", test.markers.join(", ")) };
        match decision {
            Decision::Run => {
                selected += 1;
                println!("{}{markers}", test.name);
            }
            Decision::Gated { missing } => {
                selected += 1;
                println!("{}{markers} (ignored: {})", test.name, Decision::gate_reason(missing));
            }
            Decision::Deselected { reason } => deselected.push(format!("{}{markers} ({reason})", test.name)),
        }
    }
    println!("\n{selected} selected, {} deselected", deselected.len());
    for line in deselected {
        println!("  deselected: {line}");
    }
}
