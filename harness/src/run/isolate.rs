//! Process isolation: one child process per test attempt.
//!
//! The parent re-runs its own executable as `<exe> NAME --exact` with `RELIABILITY_CHILD` set
//! to a result file. The child (see [`child_main`]) runs that one test in-process — fixtures,
//! body, teardown of every scope — writes its [`Attempt`] as JSON and exits 0. Its stdout and
//! stderr go to one file, so their interleaving is kept and a hang still leaves partial
//! output. The parent owns the clock: past the timeout it kills the child's process group.
//! A child that leaves no result died: the cause (signal, exit code) is named, with a hint
//! for stack overflows and allocation failures.
//!
//! Children run in their own process group, so a terminal's Ctrl-C reaches only the parent,
//! which then kills them and still writes its summary.

use std::io::{Read, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::config::Config;
use crate::fixture::Shared;
use crate::measure::sampler::Sampler;
use crate::outcome::{Attempt, Outcome, Phases};
use crate::registry::TestCase;
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
}

/// The result of one child: the attempt and its captured output.
#[derive(Debug)]
pub(crate) struct ChildRun {
    pub(crate) attempt: Attempt,
    pub(crate) output: String,
}

fn scratch_files(dir: &Path) -> (PathBuf, PathBuf) {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    // Several runs may share the directory: the parent's pid keeps their files apart.
    let n = format!("{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
    (dir.join(format!("{n}.result.json")), dir.join(format!("{n}.output")))
}

fn failed_to(what: &str, err: impl std::fmt::Display) -> ChildRun {
    ChildRun { attempt: Attempt::bare(Outcome::Error { message: format!("{what}: {err}") }), output: String::new() }
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

/// Runs one attempt of `spec.test` in a child process.
pub(crate) fn run_child(spec: &ChildSpec<'_>) -> ChildRun {
    let (result_path, output_path) = scratch_files(spec.scratch);
    let exe = match std::env::current_exe() {
        Ok(exe) => exe,
        Err(err) => return failed_to("failed to find the test executable", err),
    };
    let mut cmd = Command::new(exe);
    cmd.arg(&spec.test.name)
        .arg("--exact")
        .env(CHILD_ENV, &result_path)
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
    if spec.nocapture {
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    } else {
        let file = match std::fs::File::create(&output_path) {
            Ok(file) => file,
            Err(err) => return failed_to(&format!("failed to create {}", output_path.display()), err),
        };
        match file.try_clone() {
            Ok(clone) => cmd.stdout(clone).stderr(file),
            Err(err) => return failed_to("failed to share the output file", err),
        };
    }
    let started = Instant::now();
    let mut child = match cmd.spawn() {
        Ok(child) => child,
        Err(err) => return failed_to("failed to start the test process", err),
    };
    let pid = child.id();
    let group = i32::try_from(pid).unwrap_or(0);
    crate::run::signals::child_started(group);
    // --nocapture: stream the child's output as it comes, keeping a tail to diagnose a crash.
    let tail = Arc::new(Mutex::new(Vec::new()));
    let tees: Vec<_> = [
        child.stdout.take().map(|out| tee(out, std::io::stdout(), Arc::clone(&tail))),
        child.stderr.take().map(|err| tee(err, std::io::stderr(), Arc::clone(&tail))),
    ]
    .into_iter()
    .flatten()
    .collect();
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
    let elapsed = started.elapsed();
    // The test may have left its own children behind in the group.
    kill_group(pid);
    crate::run::signals::child_ended(group);
    for tee in tees {
        let _ = tee.join();
    }

    // Streamed output is not repeated in the report; its tail still explains a crash.
    let (output, diagnosis) = if spec.nocapture {
        let tail = tail.lock().unwrap_or_else(PoisonError::into_inner);
        (String::new(), String::from_utf8_lossy(&tail).into_owned())
    } else {
        let output = read_bounded(&output_path, spec.scratch, &spec.test.name);
        (output.clone(), output)
    };
    let result = std::fs::read(&result_path).ok().and_then(|bytes| serde_json::from_slice::<Attempt>(&bytes).ok());
    let _ = std::fs::remove_file(&result_path);
    let _ = std::fs::remove_file(&output_path);

    let died = |outcome| Attempt { phases: Phases { call: elapsed, ..Phases::default() }, ..Attempt::bare(outcome) };
    let mut attempt = match (ended, result, status) {
        (Some(outcome), _, _) => died(outcome),
        (None, Some(attempt), _) => attempt,
        (None, None, Ok(status)) => {
            died(Outcome::Crashed { cause: crash_cause(status, &diagnosis, spec.test.settings.memory_limit_mb) })
        }
        (None, None, Err(err)) => failed_to("failed to wait for the test process", err).attempt,
    };
    attempt.measurements.series = sampler.finish(elapsed);
    ChildRun { attempt, output }
}

/// How much of a streamed child's output is kept to diagnose a crash.
const TAIL_BYTES: usize = 64 * 1024;

/// Copies `from` to `to` as it arrives, keeping the last [`TAIL_BYTES`] in `tail`.
fn tee(
    mut from: impl Read + Send + 'static,
    mut to: impl Write + Send + 'static,
    tail: Arc<Mutex<Vec<u8>>>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut buf = [0u8; 8192];
        while let Ok(n) = from.read(&mut buf) {
            if n == 0 {
                break;
            }
            let _ = to.write_all(&buf[..n]);
            let _ = to.flush();
            let mut tail = tail.lock().unwrap_or_else(PoisonError::into_inner);
            tail.extend_from_slice(&buf[..n]);
            let excess = tail.len().saturating_sub(TAIL_BYTES);
            tail.drain(..excess);
        }
    })
}

/// How much of a child's captured output is kept in memory and in the reports: this much from
/// the start and this much from the end.
pub(crate) const OUTPUT_KEPT: u64 = 64 * 1024;

/// A child's output, whole when it is at most 2 × [`OUTPUT_KEPT`]; otherwise its head and tail
/// around a marker that says how much was left out and where the whole file was kept
/// (`<scratch>/<test>.output`). Never reads more than it keeps.
fn read_bounded(path: &Path, scratch: &Path, test: &str) -> String {
    use std::io::{Seek, SeekFrom};
    let Ok(mut file) = std::fs::File::open(path) else { return String::new() };
    let size = file.metadata().map(|m| m.len()).unwrap_or(0);
    let whole = size <= 2 * OUTPUT_KEPT;
    let mut head = Vec::new();
    let _ = (&mut file).take(if whole { size } else { OUTPUT_KEPT }).read_to_end(&mut head);
    if whole {
        return String::from_utf8_lossy(&head).into_owned();
    }
    let mut tail = Vec::new();
    if file.seek(SeekFrom::End(-(OUTPUT_KEPT as i64))).is_ok() {
        let _ = file.take(OUTPUT_KEPT).read_to_end(&mut tail);
    }
    let slug: String = test.chars().map(|c| if c.is_alphanumeric() { c } else { '_' }).collect();
    let kept = scratch.join(format!("{slug}.output"));
    let place = match std::fs::rename(path, &kept) {
        Ok(()) => format!("the whole output is in {}", kept.display()),
        Err(_) => "the whole output could not be kept".to_string(),
    };
    format!(
        "{}\n[... {} bytes of output left out; {place} ...]\n{}",
        String::from_utf8_lossy(&head),
        size - head.len() as u64 - tail.len() as u64,
        String::from_utf8_lossy(&tail)
    )
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
