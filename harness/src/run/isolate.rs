//! Process isolation: one child process per test attempt.
//!
//! The parent re-runs its own executable as `<exe> NAME --exact` with `RELIABILITY_CHILD` set
//! to a result file. The child (see [`child_main`]) runs that one test in-process — fixtures,
//! body, teardown of every scope — writes its [`Attempt`] as JSON and exits 0. Its stdout and
//! stderr go to one pipe the parent reads within fixed bounds ([`crate::run::capture`]), so
//! their interleaving is kept and a hang still leaves partial output. The parent owns the clock: past the timeout it kills the child's process group.
//! A child that leaves no result died: the cause (signal, exit code) is named, with a hint
//! for stack overflows and allocation failures.
//!
//! Children run in their own process group, so a terminal's Ctrl-C reaches only the parent,
//! which then kills them and still writes its summary.

use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::config::Config;
use crate::fixture::Shared;
use crate::measure::sampler::Sampler;
use crate::outcome::{Attempt, Outcome, Phases};
use crate::registry::TestCase;
use crate::run::capture::{Capture, Captured, Stream};
use crate::run::execute::{Teardown, execute};
use crate::run::share::{self, SHARE_SOCKET_ENV};

/// Set in a child: where to write its result.
pub(crate) const CHILD_ENV: &str = "RELIABILITY_CHILD";
/// Set in a child: its memory limit in MiB.
pub(crate) const MEMORY_ENV: &str = "RELIABILITY_MEMORY_LIMIT_MB";
/// Set in a child (`--heap-profile`, `dhat-heap` builds): where to write its dhat profile.
pub(crate) const HEAP_PROFILE_ENV: &str = "RELIABILITY_HEAP_PROFILE_DIR";
/// Set in a child: the metrics layer is off (`--no-metrics`).
pub(crate) const NO_METRICS_ENV: &str = "RELIABILITY_NO_METRICS";

/// What the parent needs to start one child.
#[derive(Debug)]
pub(crate) struct ChildSpec<'a> {
    pub(crate) test: &'a TestCase,
    pub(crate) timeout: Option<Duration>,
    pub(crate) nocapture: bool,
    /// The parent's socket for shared session fixtures.
    pub(crate) share_socket: Option<&'a Path>,
    /// The configuration file the parent used, so the child reads the same one.
    pub(crate) config: Option<&'a Path>,
    /// Where result and output files go.
    pub(crate) scratch: &'a Path,
    /// `--heap-profile`: the directory for dhat profiles.
    pub(crate) heap_profile: Option<&'a Path>,
    pub(crate) interrupted: &'a AtomicBool,
    /// The attempt's `TRACEPARENT` when the run is traced: spans the test makes nest under it.
    pub(crate) traceparent: Option<String>,
}

/// The result of one child: the attempt and its captured output.
#[derive(Debug)]
pub(crate) struct ChildRun {
    pub(crate) attempt: Attempt,
    pub(crate) output: Captured,
}

fn scratch_files(dir: &Path) -> (PathBuf, PathBuf) {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    // Several runs may share the directory: the parent's pid keeps their files apart.
    let n = format!("{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
    (dir.join(format!("{n}.result.json")), dir.join(format!("{n}.output")))
}

fn failed_to(what: &str, err: impl std::fmt::Display) -> ChildRun {
    ChildRun {
        attempt: Attempt::bare(Outcome::Error { message: format!("{what}: {err}") }),
        output: Captured::default(),
    }
}

fn kill_group(pid: u32) {
    if let Ok(pid) = i32::try_from(pid) {
        // The group may already be gone; nothing to do then.
        let _ = nix::sys::signal::killpg(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
    }
}

/// Makes the child die with this process, however it ends (even SIGKILL, which runs no code
/// of ours): the child asks the kernel for SIGKILL when its parent dies, between fork and
/// exec. The kernel ties that to the thread that forked; `run_child` blocks on the child, so
/// that thread outlives it.
fn die_with_parent(cmd: &mut Command) {
    let parent = nix::unistd::getpid();
    // SAFETY: the closure runs in the forked child before exec and makes only two
    // async-signal-safe system calls (prctl, getppid); its errors are raw OS errors, so it
    // touches no lock and allocates nothing.
    #[expect(unsafe_code, reason = "pre_exec is the only way to run code between fork and exec")]
    unsafe {
        cmd.pre_exec(move || {
            nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL).map_err(std::io::Error::from)?;
            // The parent died before the request took effect: do not start the test at all.
            if nix::unistd::getppid() != parent {
                return Err(std::io::Error::from(nix::errno::Errno::ESRCH));
            }
            Ok(())
        });
    }
}

/// The command that runs `spec.test` alone in a child, writing its result to `result_path`.
fn child_command(spec: &ChildSpec<'_>, result_path: &Path) -> Result<Command, Box<ChildRun>> {
    let exe = std::env::current_exe().map_err(|err| Box::new(failed_to("failed to find the test executable", err)))?;
    let mut cmd = Command::new(exe);
    cmd.arg(spec.test.name)
        .arg("--exact")
        .env(CHILD_ENV, result_path)
        .env_remove(MEMORY_ENV)
        .stdin(Stdio::null())
        .process_group(0);
    die_with_parent(&mut cmd);
    match spec.share_socket {
        Some(socket) => cmd.env(SHARE_SOCKET_ENV, socket),
        None => cmd.env_remove(SHARE_SOCKET_ENV),
    };
    if let Some(config) = spec.config {
        cmd.env("RELIABILITY_CONFIG", config);
    }
    if let Some(limit) = spec.test.settings.memory_limit_mb {
        cmd.env(MEMORY_ENV, limit.to_string());
    }
    match spec.heap_profile {
        Some(dir) => cmd.env(HEAP_PROFILE_ENV, dir),
        None => cmd.env_remove(HEAP_PROFILE_ENV),
    };
    if !crate::measure::enabled() {
        cmd.env(NO_METRICS_ENV, "1");
    }
    if let Some(traceparent) = &spec.traceparent {
        cmd.env("TRACEPARENT", traceparent);
    }
    Ok(cmd)
}

/// A pipe as two files: (read end, write end). Close-on-exec, so a child started beside this
/// one (tests run in parallel) cannot hold its write end open; the child's own copies, made
/// by dup2 onto its stdout and stderr, stay open.
fn pipe() -> std::io::Result<(std::fs::File, std::fs::File)> {
    let (read, write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(std::io::Error::from)?;
    Ok((read.into(), write.into()))
}

/// Points the child's stdout and stderr at pipes and returns their read ends: one pipe for
/// both when captured (their interleaving is kept), one each with `--nocapture`, echoed to the
/// parent's own stdout and stderr.
fn pipe_output(cmd: &mut Command, nocapture: bool) -> std::io::Result<Vec<Stream>> {
    if nocapture {
        let (out_r, out_w) = pipe()?;
        let (err_r, err_w) = pipe()?;
        cmd.stdout(out_w).stderr(err_w);
        return Ok(vec![
            (Box::new(out_r), Some(Box::new(std::io::stdout()))),
            (Box::new(err_r), Some(Box::new(std::io::stderr()))),
        ]);
    }
    let (reader, writer) = pipe()?;
    cmd.stdout(writer.try_clone()?).stderr(writer);
    Ok(vec![(Box::new(reader), None)])
}

/// Runs one attempt of `spec.test` in a child process.
pub(crate) fn run_child(spec: &ChildSpec<'_>) -> ChildRun {
    let (result_path, output_path) = scratch_files(spec.scratch);
    let mut cmd = match child_command(spec, &result_path) {
        Ok(cmd) => cmd,
        Err(failed) => return *failed,
    };
    let streams = match pipe_output(&mut cmd, spec.nocapture) {
        Ok(streams) => streams,
        Err(err) => return failed_to("failed to make a pipe for the test's output", err),
    };
    let capture = match Capture::start(streams, (!spec.nocapture).then_some(output_path.as_path())) {
        Ok(capture) => capture,
        Err(err) => return failed_to("failed to capture the test's output", err),
    };
    let started = Instant::now();
    let spawned = cmd.spawn();
    // The command holds the pipes' write ends: only the child may keep them open.
    drop(cmd);
    let child = match spawned {
        Ok(child) => child,
        Err(err) => {
            capture.finish(spec.scratch, spec.test.name);
            return failed_to("failed to start the test process", err);
        }
    };
    let pid = child.id();
    let group = i32::try_from(pid).unwrap_or(0);
    crate::run::signals::child_started(group);
    let (ended, status, series) = supervise(spec, child, started);
    let elapsed = started.elapsed();
    // The test may have left its own children behind in the group.
    kill_group(pid);
    crate::run::signals::child_ended(group);
    let captured = capture.finish(spec.scratch, spec.test.name);

    let result = std::fs::read(&result_path).ok().and_then(|bytes| serde_json::from_slice::<Attempt>(&bytes).ok());
    let _ = std::fs::remove_file(&result_path);

    let died = |outcome| Attempt { phases: Phases { call: elapsed, ..Phases::default() }, ..Attempt::bare(outcome) };
    let mut attempt = match (ended, result, status) {
        (Some(outcome), _, _) => died(outcome),
        (None, Some(attempt), _) => attempt,
        (None, None, Ok(status)) => {
            died(Outcome::Crashed { cause: crash_cause(status, &captured.text, spec.test.settings.memory_limit_mb) })
        }
        (None, None, Err(err)) => failed_to("failed to wait for the test process", err).attempt,
    };
    attempt.measurements.series = series;
    // Streamed output is not repeated in the report; its tail still explained a crash.
    let output = if spec.nocapture { Captured { text: String::new(), ..captured } } else { captured };
    ChildRun { attempt, output }
}

/// Waits for the child, sampling it, and kills its group on a timeout or an interrupt.
/// Returns the outcome that ended it early (if one did), its exit status and the samples.
fn supervise(
    spec: &ChildSpec<'_>,
    mut child: std::process::Child,
    started: Instant,
) -> (Option<Outcome>, std::io::Result<ExitStatus>, Vec<crate::measure::ResourceSample>) {
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    let waiter = std::thread::spawn(move || {
        let _ = tx.send(child.wait());
    });
    let mut sampler = Sampler::new(pid);
    let mut ended: Option<Outcome> = None;
    let status = loop {
        sampler.tick();
        let tick = match (spec.timeout, ended.is_some()) {
            (Some(limit), false) => limit.saturating_sub(started.elapsed()).min(Duration::from_millis(50)),
            _ => Duration::from_millis(50),
        }
        .min(sampler.due_in().max(Duration::from_millis(1)));
        match rx.recv_timeout(tick) {
            Ok(status) => break status,
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                break Err(std::io::Error::other("lost track of the test process"));
            }
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
        }
        if ended.is_some() {
            continue;
        }
        if spec.interrupted.load(Ordering::SeqCst) {
            kill_group(pid);
            ended = Some(Outcome::NotRun { reason: "run interrupted; the test was killed".into() });
        } else if let Some(limit) = spec.timeout.filter(|limit| started.elapsed() >= *limit) {
            kill_group(pid);
            ended = Some(Outcome::TimedOut { after: limit });
        }
    };
    let _ = waiter.join();
    (ended, status, sampler.finish(started.elapsed()))
}

/// Names why a child died without a result.
pub(crate) fn crash_cause(status: ExitStatus, output: &str, memory_limit_mb: Option<u64>) -> String {
    let Some(signal) = status.signal() else {
        return match status.code() {
            Some(code) => format!("the test process exited with code {code} before reporting a result"),
            None => "the test process ended without a status".to_string(),
        };
    };
    let name = nix::sys::signal::Signal::try_from(signal).map(|s| s.as_str()).unwrap_or("unknown signal");
    let mut cause = format!("killed by signal {signal} ({name})");
    if output.contains("has overflowed its stack") {
        cause.push_str(": stack overflow");
    } else if output.contains("memory allocation of") {
        match memory_limit_mb {
            Some(limit) => cause.push_str(&format!(": memory allocation failed (memory limit {limit} MiB exceeded)")),
            None => cause.push_str(": memory allocation failed"),
        }
    } else if signal == nix::sys::signal::Signal::SIGKILL as i32 {
        cause.push_str(" (not sent by the harness: the kernel's OOM killer?)");
    } else if signal == nix::sys::signal::Signal::SIGABRT as i32 {
        cause.push_str(": aborted");
    }
    cause
}

/// The child side: runs the test named on the command line and writes the result.
pub(crate) fn child_main(test: &TestCase, config: &Config, result_path: &Path) -> Result<(), String> {
    if std::env::var_os(NO_METRICS_ENV).is_some() {
        crate::measure::set_enabled(false);
    }
    if let Some(limit) = std::env::var(MEMORY_ENV).ok().and_then(|v| v.parse::<u64>().ok()) {
        limit_memory(limit)?;
    }
    let provider = std::env::var_os(SHARE_SOCKET_ENV).map(|socket| share::provider(socket.into()));
    let shared = Shared::with_provider(config.clone(), provider);
    let profile = std::env::var_os(HEAP_PROFILE_ENV).map(|dir| {
        let slug: String = test.name.chars().map(|c| if c.is_alphanumeric() { c } else { '_' }).collect();
        std::path::PathBuf::from(dir).join(format!("{slug}.json"))
    });
    let profiler = crate::measure::heap::start(profile);
    let mut attempt = execute(test, &shared, Teardown { suite: true, session: true });
    // Stopping the profiler writes its file (with --heap-profile).
    drop(profiler);
    attempt.measurements.peak_rss_bytes = crate::measure::peak_rss_bytes();
    let json = serde_json::to_vec(&attempt).map_err(|e| format!("failed to encode the result: {e}"))?;
    std::fs::write(result_path, json).map_err(|e| format!("failed to write {}: {e}", result_path.display()))
}

/// Caps the address space at its current size plus `limit_mb`, so a test that allocates past
/// its limit fails its allocation (and aborts) instead of pushing the machine into swap or the
/// OOM killer.
fn limit_memory(limit_mb: u64) -> Result<(), String> {
    let statm =
        std::fs::read_to_string("/proc/self/statm").map_err(|e| format!("failed to read /proc/self/statm: {e}"))?;
    let pages: u64 = statm.split_whitespace().next().and_then(|v| v.parse().ok()).unwrap_or(0);
    let page = nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE).ok().flatten().unwrap_or(4096) as u64;
    let bytes = pages * page + limit_mb * 1024 * 1024;
    nix::sys::resource::setrlimit(nix::sys::resource::Resource::RLIMIT_AS, bytes, bytes)
        .map_err(|e| format!("failed to set a memory limit of {limit_mb} MiB: {e}"))
}
