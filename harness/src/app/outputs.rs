//! The outputs: every report, the pushes, the trace, the summary printed, and the exit code —
//! for a run, and for `--merge` and `--push-pending`, which only write or push.

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::SystemTime;

use libtest_mimic::{Conclusion, FormatSetting};

use super::{Env, Invocation};
use crate::config::options::RunOptions;
use crate::error::{EXIT_INTERRUPTED, EXIT_OK, EXIT_PUSH_FAILED, EXIT_TESTS_FAILED, Error};
use crate::outcome::TestReport;
use crate::publish::trace::TraceTarget;
use crate::publish::{Group, Spool};
use crate::report::lastfailed::LastFailed;
use crate::report::summary::Summary;
use crate::report::{GitLookup, RunInfo};
use crate::run::schedule::RunCtx;

/// A run that has finished: what libtest concluded, every report, and what the summary and
/// the run's record need.
pub(super) struct Finished {
    pub(super) conclusion: Conclusion,
    pub(super) reports: Vec<TestReport>,
    pub(super) summary: Summary,
    /// The commit and branch, looked up while the tests ran (`None`: look up now).
    pub(super) git: Option<GitLookup>,
    pub(super) started_at: SystemTime,
}

/// Writes and publishes a whole run's outputs (not a one-test process's: see the README),
/// prints the summary and returns the exit code.
pub(super) fn conclude(
    finished: Finished,
    ctx: &RunCtx,
    inv: &Invocation<'_>,
    output_dir: &Path,
    trace_target: Option<&TraceTarget>,
) -> u8 {
    let Finished { conclusion, reports, mut summary, git, started_at } = finished;
    let (options, env) = (&ctx.options, inv.env);
    let interrupted = ctx.interrupted.load(Ordering::SeqCst);
    let mut push_failed = false;
    if !ctx.in_process {
        let git = git.unwrap_or_else(|| GitLookup::start(env));
        let mut run = RunInfo::collect_with(env, started_at, summary.elapsed, interrupted, git);
        run.partition = options.partition.map(|p| p.to_string());
        write_outputs(output_dir, &run, &reports, options, env, &mut summary);
        push_failed = publish(output_dir, &run, &reports, options, env, &mut summary);
        if let (Some(target), Some(trace)) = (trace_target, &ctx.trace) {
            send_trace(target, trace, &run, &reports, options.flaky_fails, &mut summary);
        }
    }
    let machine_output = matches!(inv.libtest.format, Some(FormatSetting::Json)) || inv.libtest.logfile.is_some();
    if !machine_output {
        print!("{}", summary.render(&reports, options.durations, options.flaky_fails));
    }
    for error in &summary.session_errors {
        eprintln!("error: {error}");
    }
    let code = exit_code(&conclusion, interrupted, !summary.session_errors.is_empty());
    if code == EXIT_OK && push_failed && options.require_push { EXIT_PUSH_FAILED } else { code }
}

/// `--push-pending`: delivers what earlier runs could not push.
pub(super) fn push_pending(options: &RunOptions, output_dir: &Path, env: Env<'_>) -> Result<u8, Error> {
    let Some(push) = &options.push else {
        return Err(Error::Unsupported(
            "--push-pending needs a Pushgateway: --pushgateway-url, PROMETHEUS_PUSHGATEWAY_URL or [pushgateway] url"
                .into(),
        ));
    };
    let spool = Spool::new(output_dir);
    let outcome = crate::publish::push_pending(push, &spool, env);
    println!("delivered {} pending push(es) to {}", outcome.delivered, push.shown_url());
    for error in &outcome.errors {
        eprintln!("warning: {error}");
    }
    Ok(if outcome.errors.is_empty() { EXIT_OK } else { EXIT_PUSH_FAILED })
}

/// `--merge`: the shards' reports joined and every report written again, as one run; pushed
/// when a Pushgateway is configured. The exit code is the merged run's.
pub(super) fn merge_shards(
    paths: &[PathBuf],
    mut options: RunOptions,
    output_dir: &Path,
    env: Env<'_>,
) -> Result<u8, Error> {
    use crate::report::merge;
    let shards = paths.iter().map(|p| merge::read(p)).collect::<Result<Vec<_>, _>>().map_err(Error::Unsupported)?;
    let (run, reports) = merge::merge(&shards).map_err(Error::Unsupported)?;
    // The merged run is a whole run: no shard label, and it records durations for the next split.
    options.partition = None;
    let mut summary =
        Summary { elapsed: std::time::Duration::from_secs_f64(run.duration_seconds), ..Summary::default() };
    summary.notes.push(format!("merged {} shards into {}", shards.len(), output_dir.display()));
    write_outputs(output_dir, &run, &reports, &options, env, &mut summary);
    let push_failed = publish(output_dir, &run, &reports, &options, env, &mut summary);
    print!("{}", summary.render(&reports, options.durations, options.flaky_fails));
    let failed = reports.iter().any(|r| r.outcome.is_failure(options.flaky_fails));
    Ok(if failed {
        EXIT_TESTS_FAILED
    } else if push_failed && options.require_push {
        EXIT_PUSH_FAILED
    } else {
        EXIT_OK
    })
}

/// Sends the run's trace; the outcome is a note (a tracing backend never fails the run).
fn send_trace(
    target: &crate::publish::trace::TraceTarget,
    trace: &crate::measure::trace::RunTrace,
    run: &RunInfo,
    reports: &[TestReport],
    flaky_fails: bool,
    summary: &mut Summary,
) {
    let spans = crate::publish::trace::spans(trace, run, reports, SystemTime::now(), flaky_fails);
    match crate::publish::trace::export(target, spans, std::time::Duration::from_secs(10)) {
        Ok(n) => summary.notes.push(format!("sent trace {} ({n} spans) to {}", trace.trace_hex(), target.url)),
        Err(e) => summary.notes.push(format!("warning: {e}")),
    }
}

/// Pushes one group per suite; returns whether anything failed (it is spooled then).
fn publish(
    output_dir: &Path,
    run: &RunInfo,
    reports: &[TestReport],
    options: &RunOptions,
    env: Env<'_>,
    summary: &mut Summary,
) -> bool {
    let Some(push) = &options.push else { return false };
    // N shards push N groups per suite, never over each other.
    let mut labels = push.labels.clone();
    if let Some(partition) = options.partition {
        labels.push(("shard".into(), partition.label()));
    }
    let groups: Vec<Group> = crate::report::suites(reports)
        .into_iter()
        .map(|suite| Group {
            path: crate::publish::group_path(&push.job, suite, &labels),
            body: crate::report::prom::render(run, reports, Some(suite)),
        })
        .collect();
    let outcome = crate::publish::publish(push, groups, &Spool::new(output_dir), env);
    for error in &outcome.errors {
        summary.notes.push(format!("warning: {error}"));
    }
    if outcome.errors.is_empty() {
        summary.notes.push(format!("pushed {} group(s) to {}", outcome.delivered, push.shown_url()));
    }
    !outcome.errors.is_empty()
}

/// Writes report.json, report.html, junit.xml (and `--junitxml`), metrics.prom, the last-failed
/// and durations caches and the GitHub step summary. A failed write is a warning: the other
/// files are still written.
fn write_outputs(
    dir: &Path,
    run: &RunInfo,
    reports: &[TestReport],
    options: &RunOptions,
    env: Env<'_>,
    summary: &mut Summary,
) {
    use crate::io::{Staged, write_with};
    use crate::report::{json, junit, markdown, prom};
    // Each report is streamed to its file as it is rendered (never held whole); the writers
    // run at once, one thread each. report.json and report.html share one serialization.
    let mut results: Vec<Result<(), String>> = std::thread::scope(|scope| {
        let junit = scope.spawn(|| {
            let written = write_with(&dir.join("junit.xml"), |f| junit::write(f, run, reports));
            // `--junitxml PATH`: the same document, copied rather than rendered again.
            let copied = match (&options.junitxml, &written) {
                (Some(extra), Ok(())) => Some(crate::io::copy_file(&dir.join("junit.xml"), extra)),
                (Some(extra), Err(_)) => Some(write_with(extra, |f| junit::write(f, run, reports))),
                (None, _) => None,
            };
            std::iter::once(written).chain(copied).collect::<Vec<_>>()
        });
        let prom = scope.spawn(|| vec![write_with(&dir.join("metrics.prom"), |f| prom::write(f, run, reports, None))]);
        let caches = scope.spawn(|| {
            let mut results = Vec::new();
            let mut cache = LastFailed::load(dir);
            cache.update(reports, options.flaky_fails);
            results.push(cache.save(dir).map(drop));
            // Shards read the durations; only a whole run may change them (see report::durations).
            if options.partition.is_none() {
                let mut durations = crate::report::durations::Durations::load(dir);
                durations.update(reports);
                results.push(durations.save(dir).map(drop));
            }
            results
        });
        let both = (|| {
            let (mut json_file, mut html_file) =
                (Staged::create(&dir.join("report.json"))?, Staged::create(&dir.join("report.html"))?);
            json::write(&mut json_file, Some(&mut html_file), run, reports)
                .map_err(|e| format!("failed to write report.json and report.html: {e}"))?;
            json_file.commit()?;
            html_file.commit()
        })();
        let joined = |h: std::thread::ScopedJoinHandle<'_, Vec<Result<(), String>>>| {
            h.join().unwrap_or_else(|_| vec![Err("a report writer panicked".into())])
        };
        let mut results = vec![both];
        results.extend(joined(junit));
        results.extend(joined(prom));
        results.extend(joined(caches));
        results
    });
    if let Some(path) = env("GITHUB_STEP_SUMMARY").filter(|p| !p.is_empty()) {
        results.push(crate::io::append_file(std::path::Path::new(&path), markdown::render(run, reports).as_bytes()));
    }
    for result in results {
        if let Err(err) = result {
            summary.notes.push(format!("warning: {err}"));
        }
    }
}

fn exit_code(conclusion: &Conclusion, interrupted: bool, session_errors: bool) -> u8 {
    if interrupted {
        EXIT_INTERRUPTED
    } else if conclusion.has_failed() || session_errors {
        EXIT_TESTS_FAILED
    } else {
        EXIT_OK
    }
}
