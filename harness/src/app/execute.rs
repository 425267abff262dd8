//! The execution: the services a run starts before its tests (heap profiler, shared-fixture
//! server, trace, progress) and stops after them, and the run itself — the pool's workers run
//! the tests while libtest-mimic prints them, in order, on this thread.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU32};
use std::sync::{Arc, Mutex};

use libtest_mimic::{Arguments, Conclusion, FormatSetting};

use super::Invocation;
use super::plan::Planned;
use crate::error::Error;
use crate::fixture::Shared;
use crate::measure::heap;
use crate::outcome::TestReport;
use crate::publish::trace::TraceTarget;
use crate::registry::{Isolation, TestCase};
use crate::run::pool::Pool;
use crate::run::schedule::{RunCtx, Slots};
use crate::run::share::ShareServer;
use crate::select::Decision;

/// What [`start`] started that the run's end stops (or, for the trace target, uses).
pub(super) struct Services {
    profiler: Option<heap::Profiler>,
    share_server: Option<ShareServer>,
    /// Where the run's trace goes, when it is traced.
    pub(super) trace_target: Option<TraceTarget>,
}

impl Services {
    /// Stops the shared-fixture server, tears the session fixtures down (bounded) and ends the
    /// heap profile; returns the teardown's errors.
    pub(super) fn stop(&mut self, ctx: &RunCtx) -> Vec<String> {
        drop(self.share_server.take());
        // Taken out of the store first: the teardown holds no lock a stuck thread could want.
        let mut session = std::mem::take(&mut *ctx.shared.lock_session());
        let errors = session.teardown_within(Some(ctx.options.fixture_bound()));
        drop(self.profiler.take());
        errors
    }
}

/// Starts what the run needs before its first test, and the run's context.
pub(super) fn start(
    tests: &[TestCase],
    order: &[(usize, Decision)],
    in_process: bool,
    inv: &Invocation<'_>,
    output_dir: &Path,
) -> Result<(Arc<RunCtx>, Services), Error> {
    let (options, libtest, env) = (&inv.options, &inv.libtest, inv.env);
    let isolation = |i: &usize| tests[*i].settings.isolation.unwrap_or(options.isolation);
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
    let in_this_process = in_process || order.iter().any(|(i, _)| isolation(i) == Isolation::Thread);
    let profile_here = (options.heap_profile && in_process).then(|| dhat_dir.join("run.json"));
    if options.heap_profile {
        std::fs::create_dir_all(&dhat_dir)
            .map_err(|e| Error::Runtime(format!("failed to create {}: {e}", dhat_dir.display())))?;
    }
    let profiler = if in_this_process && !libtest.list { heap::start(profile_here) } else { None };
    let shared = Arc::new(Shared::new(inv.config.clone()));
    // Children ask this process for shared session fixtures; not needed when none runs.
    let any_child = !in_process && !libtest.list && order.iter().any(|(i, _)| isolation(i) == Isolation::Process);
    let share_server = match any_child {
        true => Some(
            ShareServer::start(Arc::clone(&shared), tests, options.fixture_bound())
                .map_err(|e| Error::Runtime(format!("failed to open the socket for shared fixtures: {e}")))?,
        ),
        false => None,
    };
    // One trace per run, sent by the run's own process (not by a child or a one-test process).
    let trace_target = match in_process || libtest.list {
        true => None,
        false => TraceTarget::resolve(env, inv.config.tracing_endpoint.as_deref()),
    };
    let trace =
        trace_target.as_ref().map(|_| Arc::new(crate::measure::trace::RunTrace::start(env("TRACEPARENT").as_deref())));
    let ctx = Arc::new(RunCtx {
        slots: Slots::new(
            libtest.test_threads.or_else(|| std::thread::available_parallelism().ok().map(Into::into)).unwrap_or(1)
                as u32,
        ),
        options: options.clone(),
        in_process,
        nocapture: libtest.nocapture,
        shared,
        failures: AtomicU32::new(0),
        interrupted: Arc::new(AtomicBool::new(false)),
        suite_remaining: Mutex::new(HashMap::new()),
        share_socket: share_server.as_ref().map(ShareServer::socket),
        config_path: inv.config.path.clone(),
        scratch: output_dir.join("children"),
        heap_profile_dir: options.heap_profile.then_some(dhat_dir),
        events: Mutex::new(Vec::new()),
        trace,
        live: progress_wanted(in_process, libtest, env).then(|| Arc::new(crate::run::live::Live::default())),
    });
    Ok((ctx, Services { profiler, share_server, trace_target }))
}

/// Live progress: only for a whole run in the pretty format on a terminal (Progress::start
/// checks the terminal), never under nextest or when turned off.
fn progress_wanted(in_process: bool, libtest: &Arguments, env: super::Env<'_>) -> bool {
    !in_process
        && !libtest.list
        && !libtest.quiet
        && matches!(libtest.format, None | Some(FormatSetting::Pretty))
        && libtest.logfile.is_none()
        && env("NEXTEST").as_deref() != Some("1")
        && env("RELIABILITY_PROGRESS").is_none_or(|v| !matches!(v.trim(), "off" | "0" | "false" | "no"))
}

/// Before the first test: Ctrl-C and SIGTERM stop the run (a whole run only), and the
/// children's scratch directory exists when any test runs in a child.
pub(super) fn prepare(
    ctx: &RunCtx,
    tests: &[TestCase],
    order: &[(usize, Decision)],
    libtest: &Arguments,
) -> Result<(), Error> {
    if libtest.list {
        return Ok(());
    }
    if !ctx.in_process {
        crate::run::signals::stop_on_interrupt(&ctx.interrupted);
    }
    if order.iter().any(|(i, _)| ctx.isolation_of(&tests[*i]) == Isolation::Process) {
        std::fs::create_dir_all(&ctx.scratch)
            .map_err(|e| Error::Runtime(format!("failed to create {}: {e}", ctx.scratch.display())))?;
    }
    Ok(())
}

/// Runs the trials: the pool's workers run the planned jobs while libtest prints the trials on
/// this thread. Returns libtest's conclusion and every report — in the order the tests
/// finished, then the gated tests'. The pool goes with the run (its result slots: 0.4 MB for
/// 10,000 tests).
pub(super) fn run_trials(
    ctx: &Arc<RunCtx>,
    pool: Arc<Pool>,
    planned: Planned,
    inv: &Invocation<'_>,
    output_dir: &Path,
) -> (Conclusion, Vec<TestReport>) {
    let (libtest, Planned { jobs, trials, gated }) = (&inv.libtest, planned);
    let progress = ctx.live.as_ref().and_then(|live| {
        let names: Vec<String> = trials
            .iter()
            .filter(|t| !libtest.is_filtered_out(t) && !libtest.is_ignored(t))
            .map(|t| t.name().to_owned())
            .collect();
        let durations = crate::report::durations::Durations::load(output_dir).seconds;
        let from_start = (inv.env)("RELIABILITY_PROGRESS").is_some_and(|v| v.trim() == "always");
        crate::report::progress::Progress::start(
            Arc::clone(live),
            names,
            durations,
            ctx.slots.capacity as usize,
            from_start,
        )
    });
    if !libtest.list {
        ctx.events.lock().unwrap_or_else(|e| e.into_inner()).reserve_exact(jobs.len() + gated.len());
        pool.start(jobs, ctx.slots.capacity as usize);
    }
    let printing = Arguments { test_threads: Some(1), ..libtest.clone() };
    let conclusion = libtest_mimic::run(&printing, trials);
    pool.finish();
    drop(pool);
    drop(progress);
    let mut reports = std::mem::take(&mut *ctx.events.lock().unwrap_or_else(|e| e.into_inner()));
    reports.extend(gated);
    (conclusion, reports)
}
