//! The run: registry → selection → schedule/execute (the run's worker pool, printed through
//! libtest-mimic) → reports, and the exit code.
//!
//! This is the only module that touches the process (argv, environment, signals, stdout);
//! each stage it calls is tested on its own. Three ways in:
//! - a child (`RELIABILITY_CHILD` set): run one test in-process, write its result, exit;
//! - `--exact NAME` (cargo-nextest, IDEs): run that test in this process, whatever selects;
//! - otherwise: select, then run every test on the run's worker pool (`run::pool`), with
//!   libtest-mimic printing each result in order on this thread.

use std::collections::HashMap;
use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime};

use clap::Parser as _;
use libtest_mimic::{Arguments, Conclusion, FormatSetting, Trial};

use crate::config::cli::Cli;
use crate::config::options::RunOptions;
use crate::config::{Config, SelectionSettings};
use crate::error::{EXIT_INTERRUPTED, EXIT_OK, EXIT_PUSH_FAILED, EXIT_TESTS_FAILED, Error};
use crate::fixture::Shared;
use crate::measure::heap;
use crate::outcome::Outcome;
use crate::outcome::TestReport;
use crate::publish::{Group, Spool};
use crate::registry::{self, Isolation, TestCase};
use crate::report::RunInfo;
use crate::report::lastfailed::LastFailed;
use crate::report::summary::Summary;
use crate::run::pool::Pool;
use crate::run::schedule::{RunCtx, Slots};
use crate::run::share::ShareServer;
use crate::select::{Decision, Selection};

/// Runs the tests of this binary with the process's arguments and environment.
///
/// Call it from the `main` of a `harness = false` test target:
///
/// ```ignore
/// fn main() -> std::process::ExitCode {
///     reliability_harness::main()
/// }
/// ```
pub fn main() -> ExitCode {
    let args: Vec<OsString> = std::env::args_os().collect();
    // One test by exact name (a child, nextest, an IDE): no need to collect them all.
    let found = Cli::exact_name(&args).and_then(|name| registry::find(&name));
    let tests = match found {
        Some(test) => vec![test],
        None => match registry::collect() {
            Ok(tests) => tests,
            Err(err) => return fail(&err.into()),
        },
    };
    match run(tests, args, &|key| std::env::var(key).ok()) {
        Ok(code) => ExitCode::from(code),
        Err(err) => fail(&err),
    }
}

fn fail(err: &Error) -> ExitCode {
    eprintln!("error: {err}");
    ExitCode::from(err.exit_code())
}

/// Runs `tests` with `args` (argv, including `argv[0]`) and `env`; returns the exit code.
pub fn run(tests: Vec<TestCase>, args: Vec<OsString>, env: &dyn Fn(&str) -> Option<String>) -> Result<u8, Error> {
    let started = Instant::now();
    let started_at = SystemTime::now();
    let cli = Cli::parse(args, env)?;
    if cli.help {
        println!("{}", Cli::help());
    }
    let libtest = match Arguments::try_parse_from(&cli.libtest_args) {
        Ok(args) => args,
        Err(err) if !err.use_stderr() => {
            // --help: clap renders libtest's part.
            print!("{err}");
            return Ok(EXIT_OK);
        }
        Err(err) => {
            let message = err.to_string();
            let message = message.strip_prefix("error: ").unwrap_or(&message);
            return Err(Error::Libtest(message.trim_end().to_string()));
        }
    };

    let manifest_dir = env("CARGO_MANIFEST_DIR").map(PathBuf::from);
    let compiled_in =
        tests.first().map(|t| std::path::Path::new(t.def.package_dir)).filter(|d| !d.as_os_str().is_empty());
    let config = Config::discover(cli.config.as_ref(), manifest_dir.as_deref(), compiled_in)?;
    for test in &tests {
        for marker in &test.markers {
            config.markers.check(marker, &format!("test `{}` ({})", test.name, test.location()))?;
        }
    }
    let settings = config.selection.clone().layered(cli.selection.clone());
    let selection = Selection::new(&settings, &config.markers)?;
    let options = RunOptions::resolve(&config.run.clone().layered(cli.run.clone()))?;
    let config = &config;
    crate::measure::set_enabled(options.metrics);

    // Only `--exact` needs the name lookup; main() usually handed over just that one test.
    let exact = libtest
        .filter
        .as_deref()
        .filter(|_| libtest.exact)
        .map(|name| (name, tests.iter().position(|t| t.name == name)));

    if let Some(result_path) = env(crate::run::isolate::CHILD_ENV) {
        let Some((_, Some(i))) = exact else {
            return Err(Error::ExactMissing(libtest.filter.clone().unwrap_or_default()));
        };
        return Ok(match crate::run::isolate::child_main(&tests[i], config, std::path::Path::new(&result_path)) {
            Ok(()) => EXIT_OK,
            Err(message) => {
                eprintln!("error: {message}");
                crate::error::EXIT_INTERNAL
            }
        });
    }

    if cli.list_markers {
        print_markers(config, &tests);
        return Ok(EXIT_OK);
    }

    let output_dir = crate::io::output_dir(env);
    if cli.push_pending {
        return push_pending(&options, &output_dir, env);
    }
    if !cli.merge.is_empty() {
        return merge_shards(&cli.merge, options, &output_dir, env);
    }
    // The commit and branch for the reports, looked up while the tests run.
    let git = (exact.is_none() && !libtest.list).then(|| crate::report::GitLookup::start(env));
    let mut summary = Summary::default();
    let (order, in_process): (Vec<(usize, Decision)>, bool) = match exact {
        // `--exact NAME` always runs NAME, gated or deselected, in this process: it is how
        // nextest and IDEs run one test, and a test they asked for must never pass unrun.
        Some((_, Some(i))) => (vec![(i, Decision::Run)], true),
        Some((name, None)) if env("NEXTEST").as_deref() == Some("1") => return Err(Error::ExactMissing(name.into())),
        _ => {
            let decisions: Vec<Decision> = tests.iter().map(|t| selection.decide(t, &config.markers)).collect();
            if cli.collect_only {
                print_collection(&tests, &decisions);
            }
            let order = apply_last_failed(&tests, decisions, &options, &output_dir, &mut summary);
            (apply_partition(&tests, order, &options, &libtest, &output_dir, &mut summary), false)
        }
    };

    let dhat_dir = output_dir.join("dhat");
    if options.heap_profile && !heap::PROFILES {
        return Err(Error::Unsupported(
            "--heap-profile needs the harness built with the dhat-heap feature \
             (e.g. cargo test --features reliability-harness/dhat-heap)"
                .into(),
        ));
    }
    // dhat allows one profiler per process: children run their own; tests running in this
    // process share one for the run.
    let in_this_process = in_process
        || order.iter().any(|(i, _)| tests[*i].settings.isolation.unwrap_or(options.isolation) == Isolation::Thread);
    let profile_here = (options.heap_profile && in_process).then(|| dhat_dir.join("run.json"));
    let heap_profile_dir = options.heap_profile.then(|| dhat_dir.clone());
    if options.heap_profile {
        std::fs::create_dir_all(&dhat_dir)
            .map_err(|e| Error::Runtime(format!("failed to create {}: {e}", dhat_dir.display())))?;
    }
    let profiler = if in_this_process && !libtest.list { heap::start(profile_here) } else { None };
    let shared = Arc::new(Shared::new(config.clone()));
    // Children ask this process for shared session fixtures; not needed when none runs.
    let any_child = !in_process
        && !libtest.list
        && order.iter().any(|(i, _)| tests[*i].settings.isolation.unwrap_or(options.isolation) == Isolation::Process);
    let share_server = match any_child {
        true => Some(
            ShareServer::start(Arc::clone(&shared), &tests, options.fixture_bound())
                .map_err(|e| Error::Runtime(format!("failed to open the socket for shared fixtures: {e}")))?,
        ),
        false => None,
    };
    // One trace per run, sent by the run's own process (not by a child or a one-test process).
    let trace_target = match in_process || libtest.list {
        true => None,
        false => crate::publish::trace::TraceTarget::resolve(env, config.tracing_endpoint.as_deref()),
    };
    let trace =
        trace_target.as_ref().map(|_| Arc::new(crate::measure::trace::RunTrace::start(env("TRACEPARENT").as_deref())));
    // Live progress: only for a whole run in the pretty format on a terminal (Progress::start
    // checks the terminal), never under nextest or when turned off.
    let progress_wanted = !in_process
        && !libtest.list
        && !libtest.quiet
        && matches!(libtest.format, None | Some(FormatSetting::Pretty))
        && libtest.logfile.is_none()
        && env("NEXTEST").as_deref() != Some("1")
        && env("RELIABILITY_PROGRESS").is_none_or(|v| !matches!(v.trim(), "off" | "0" | "false" | "no"));
    let live = progress_wanted.then(|| Arc::new(crate::run::live::Live::default()));
    let ctx = Arc::new(RunCtx {
        slots: Slots::new(
            libtest.test_threads.or_else(|| std::thread::available_parallelism().ok().map(Into::into)).unwrap_or(1)
                as u32,
        ),
        options,
        in_process,
        nocapture: libtest.nocapture,
        shared,
        failures: AtomicU32::new(0),
        interrupted: Arc::new(AtomicBool::new(false)),
        suite_remaining: Mutex::new(HashMap::new()),
        share_socket: share_server.as_ref().map(ShareServer::socket),
        config_path: config.path.clone(),
        scratch: output_dir.join("children"),
        heap_profile_dir,
        events: Mutex::new(Vec::new()),
        trace,
        live,
    });

    let tests = Arc::new(tests);
    let pool = Pool::new(Arc::clone(&ctx), Arc::clone(&tests));
    // The pool's jobs: the trials libtest will run, in its order (indices into `tests`).
    let mut jobs = Vec::new();
    let mut trials = Vec::new();
    let mut gated = Vec::new();
    for (i, decision) in &order {
        let test = &tests[*i];
        let trial = match decision {
            Decision::Run => trial(test, &pool, jobs.len()).with_ignored_flag(in_process && libtest.ignored),
            Decision::Gated { missing } => {
                let trial = trial(test, &pool, jobs.len()).with_ignored_flag(true);
                if !libtest.is_filtered_out(&trial) && libtest.is_ignored(&trial) {
                    gated.push(TestReport {
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
            jobs.push(*i);
        }
        if runs && ctx.isolation_of(test) == Isolation::Thread {
            *ctx.suite_remaining
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .entry(test.suite().to_string())
                .or_default() += 1;
        }
        trials.push(trial);
    }

    let would_run = trials.iter().filter(|t| !libtest.is_ignored(t)).count();
    if !in_process && selection.is_active() && would_run == 0 && !libtest.list {
        return Err(Error::NothingSelected(format!(
            "{} left none of the {} tests to run ({} deselected, {} gated by opt-in markers)",
            describe_selection(&settings),
            tests.len(),
            summary.deselected,
            trials.len()
        )));
    }
    if cli.collect_only {
        return Ok(EXIT_OK);
    }
    if !libtest.list {
        if !in_process {
            crate::run::signals::stop_on_interrupt(&ctx.interrupted);
        }
        if order.iter().any(|(i, _)| ctx.isolation_of(&tests[*i]) == Isolation::Process) {
            std::fs::create_dir_all(&ctx.scratch)
                .map_err(|e| Error::Runtime(format!("failed to create {}: {e}", ctx.scratch.display())))?;
        }
    }

    let progress = ctx.live.as_ref().and_then(|live| {
        let names: Vec<String> = trials
            .iter()
            .filter(|t| !libtest.is_filtered_out(t) && !libtest.is_ignored(t))
            .map(|t| t.name().to_owned())
            .collect();
        let durations = crate::report::durations::Durations::load(&output_dir).seconds;
        let from_start = env("RELIABILITY_PROGRESS").is_some_and(|v| v.trim() == "always");
        crate::report::progress::Progress::start(
            Arc::clone(live),
            names,
            durations,
            ctx.slots.capacity as usize,
            from_start,
        )
    });
    // The pool's workers run the tests; libtest, on this thread, prints them in order.
    if !libtest.list {
        ctx.events.lock().unwrap_or_else(|e| e.into_inner()).reserve_exact(jobs.len() + gated.len());
        pool.start(jobs, ctx.slots.capacity as usize);
    }
    let printing = Arguments { test_threads: Some(1), ..libtest.clone() };
    let conclusion = libtest_mimic::run(&printing, trials);
    pool.finish();
    // What only the run needed goes before the reports are written, where the heap peaks: the
    // pool's result slots, the order and the cases (0.4, 0.4 and 0.56 MB for 10,000 tests).
    drop((pool, order, tests));
    drop(progress);
    let mut reports = std::mem::take(&mut *ctx.events.lock().unwrap_or_else(|e| e.into_inner()));
    drop(share_server);
    // Taken out of the store first: the teardown holds no lock a stuck thread could want.
    let mut session = std::mem::take(&mut *ctx.shared.lock_session());
    let session_errors = session.teardown_within(Some(ctx.options.fixture_bound()));
    drop(profiler);
    if libtest.list {
        return Ok(EXIT_OK);
    }
    reports.extend(gated);

    let interrupted = ctx.interrupted.load(Ordering::SeqCst);
    summary.filtered_out = conclusion.num_filtered_out;
    summary.session_errors = session_errors;
    summary.elapsed = started.elapsed();
    let mut push_failed = false;
    if !in_process {
        let git = git.unwrap_or_else(|| crate::report::GitLookup::start(env));
        let mut run = RunInfo::collect_with(env, started_at, started.elapsed(), interrupted, git);
        run.partition = ctx.options.partition.map(|p| p.to_string());
        write_outputs(&output_dir, &run, &reports, &ctx.options, env, &mut summary);
        push_failed = publish(&output_dir, &run, &reports, &ctx.options, env, &mut summary);
        if let (Some(target), Some(trace)) = (&trace_target, &ctx.trace) {
            send_trace(target, trace, &run, &reports, ctx.options.flaky_fails, &mut summary);
        }
    }
    let machine_output = matches!(libtest.format, Some(FormatSetting::Json)) || libtest.logfile.is_some();
    if !machine_output {
        print!("{}", summary.render(&reports, ctx.options.durations, ctx.options.flaky_fails));
    }
    for error in &summary.session_errors {
        eprintln!("error: {error}");
    }
    let code = exit_code(&conclusion, interrupted, !summary.session_errors.is_empty());
    Ok(if code == EXIT_OK && push_failed && ctx.options.require_push { EXIT_PUSH_FAILED } else { code })
}

/// `--push-pending`: delivers what earlier runs could not push.
fn push_pending(
    options: &RunOptions,
    output_dir: &std::path::Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<u8, Error> {
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
fn merge_shards(
    paths: &[PathBuf],
    mut options: RunOptions,
    output_dir: &std::path::Path,
    env: &dyn Fn(&str) -> Option<String>,
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
    output_dir: &std::path::Path,
    run: &RunInfo,
    reports: &[TestReport],
    options: &RunOptions,
    env: &dyn Fn(&str) -> Option<String>,
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

/// `--partition KIND:M/N` keeps this shard of the tests that would otherwise be handed to
/// libtest (selected or gated, and through libtest's name filter), and deselects the rest.
fn apply_partition(
    tests: &[TestCase],
    mut order: Vec<(usize, Decision)>,
    options: &RunOptions,
    libtest: &Arguments,
    output_dir: &std::path::Path,
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
    output_dir: &std::path::Path,
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

/// Writes report.json, report.html, junit.xml (and `--junitxml`), metrics.prom, the last-failed
/// and durations caches and the GitHub step summary. A failed write is a warning: the other
/// files are still written.
fn write_outputs(
    dir: &std::path::Path,
    run: &RunInfo,
    reports: &[TestReport],
    options: &RunOptions,
    env: &dyn Fn(&str) -> Option<String>,
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

/// `test`'s trial: its runner waits for job `job` of the pool (never called unless it runs).
fn trial(test: &TestCase, pool: &Arc<Pool>, job: usize) -> Trial {
    let pool = Arc::clone(pool);
    Trial::ignorable_test(test.name, move || pool.wait(job))
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

fn print_markers(config: &Config, tests: &[TestCase]) {
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
