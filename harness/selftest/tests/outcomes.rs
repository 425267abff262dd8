//! Runs the outcome suite (`src/outcomes.rs`) and asserts the exact outcome reported for each
//! test, that the run goes on past every crash, and the evidence fixtures leave behind.

#![expect(clippy::unwrap_used, reason = "test helpers: a panic is the failure report")]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_outcome-suite");

struct Run {
    code: i32,
    /// The run's (parent) process.
    pid: u32,
    stdout: String,
    state: PathBuf,
    out: PathBuf,
}

impl Run {
    /// name (without `outcomes::`) → outcome object from report.json.
    fn outcomes(&self) -> BTreeMap<String, Value> {
        let report: Value = serde_json::from_slice(&std::fs::read(self.out.join("report.json")).unwrap()).unwrap();
        assert_eq!(report["schema_version"], 1);
        report["tests"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| (t["name"].as_str().unwrap().trim_start_matches("outcomes::").to_string(), t.clone()))
            .collect()
    }

    fn lines(&self, file: &str) -> Vec<String> {
        std::fs::read_to_string(self.state.join(file)).unwrap_or_default().lines().map(String::from).collect()
    }
}

/// A fresh directory of a name no earlier run can have used (not one made from the pid:
/// pids are reused, and a stale `flaky-once-attempted` marker once made `flaky_once` pass).
fn fresh_dirs() -> (PathBuf, PathBuf) {
    let base = tempfile::Builder::new().prefix("outcomes-selftest-").tempdir().unwrap().keep();
    let (state, out) = (base.join("state"), base.join("out"));
    std::fs::create_dir_all(&state).unwrap();
    (state, out)
}

fn command(args: &[&str], state: &Path, out: &Path) -> Command {
    let mut cmd = Command::new(BIN);
    for (key, _) in std::env::vars() {
        if key.starts_with("RELIABILITY_") || key.starts_with("NEXTEST") {
            cmd.env_remove(key);
        }
    }
    cmd.args(args)
        .env("OUTCOME_STATE_DIR", state)
        .env("RELIABILITY_OUTPUT_DIR", out)
        .env("RELIABILITY_CONFIG", Path::new(env!("CARGO_MANIFEST_DIR")).join("reliability.toml"))
        .env("RUST_BACKTRACE", "0");
    cmd
}

fn run_in(args: &[&str], state: &Path, out: &Path) -> Run {
    let child = command(args, state, out).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let pid = child.id();
    let Output { status, stdout, .. } = child.wait_with_output().unwrap();
    Run {
        code: status.code().unwrap_or(-1),
        pid,
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        state: state.to_path_buf(),
        out: out.to_path_buf(),
    }
}

fn run(args: &[&str]) -> Run {
    let (state, out) = fresh_dirs();
    run_in(args, &state, &out)
}

/// (test, outcome kind, text the outcome's message must contain)
const EXPECTED: &[(&str, &str, &str)] = &[
    ("aborts", "crashed", "killed by signal 6 (SIGABRT): aborted"),
    ("async_fixture_and_test", "passed", ""),
    ("depot_through_a_client", "passed", ""),
    ("depot_two_fixtures_deep", "passed", ""),
    ("exceeds_memory", "crashed", "memory allocation failed (memory limit 64 MiB exceeded)"),
    ("fails_assert", "failed", "arithmetic is broken"),
    ("fixture_setup_fails", "error", "fixture Broken failed in setup: the database is on fire"),
    ("flaky_once", "flaky", ""),
    ("hangs", "timed_out", ""),
    ("hangs_once", "flaky", ""),
    ("overflows_stack", "crashed", "(SIGABRT): stack overflow"),
    ("panics_with_fixture", "failed", "test panicked: boom after setup"),
    ("passes", "passed", ""),
    ("prints_a_gigabyte", "passed", ""),
    ("returns_err", "failed", "the backend said 503"),
    ("segfaults", "crashed", "killed by signal 11 (SIGSEGV)"),
    ("skip_if_unix", "skipped", "not on unix"),
    ("skips_at_runtime", "skipped", "no staging credentials in this environment"),
    ("stall_process", "passed", ""),
    ("stuck_setup_first", "passed", ""),
    ("stuck_setup_second", "passed", ""),
    ("stuck_shared_setup", "passed", ""),
    ("stall_thread", "passed", ""),
    // Process isolation: the parent does not know the unregistered shared fixture.
    ("stray_shared_fixture_unregistered", "error", ""),
    ("suite_fixture_a", "passed", ""),
    ("suite_fixture_b", "passed", ""),
    ("teardown_fails", "error", "teardown of fixture BadTeardown failed: could not delete the project"),
    ("tmp_dir_is_fresh", "passed", ""),
    ("uses_service_a", "passed", ""),
    ("uses_service_b", "passed", ""),
    ("xfail_fails", "xfailed", "known bug #12"),
    ("xfail_passes", "xpassed", "known bug #13"),
    ("xfail_strict_passes", "xpassed", "must fail until #14 lands"),
];

const PROCESS_ONLY: &[&str] = &["aborts", "segfaults", "overflows_stack", "exceeds_memory"];

/// `overrides`: (test, outcome kind) where this mode differs from [`EXPECTED`].
fn check_outcomes(run: &Run, skip: &[&str], overrides: &[(&str, &str)]) {
    let outcomes = run.outcomes();
    let expected: Vec<_> = EXPECTED
        .iter()
        .filter(|(name, ..)| !skip.contains(name))
        .map(|&(name, kind, text)| match overrides.iter().find(|(n, _)| *n == name) {
            Some(&(_, kind)) => (name, kind, ""),
            None => (name, kind, text),
        })
        .collect();
    assert_eq!(outcomes.len(), expected.len(), "every test is reported, the run went on past each crash");
    for (name, kind, text) in &expected {
        let report = &outcomes[*name];
        let outcome = &report["outcome"];
        assert_eq!(outcome["kind"], *kind, "{name}: {outcome}");
        assert!(outcome.to_string().contains(text), "{name}: {outcome} should mention {text:?}");
    }
    assert_eq!(outcomes["flaky_once"]["attempts"].as_array().unwrap().len(), 2);
    assert_eq!(outcomes["flaky_once"]["outcome"]["attempts"], 2);
    assert_eq!(outcomes["xfail_passes"]["outcome"]["strict"], false);
    assert_eq!(outcomes["xfail_strict_passes"]["outcome"]["strict"], true);
    assert!((1.0..1.5).contains(&outcomes["hangs"]["outcome"]["after"].as_f64().unwrap()));
    // The hung first attempt timed out; its retry, run anew, passed.
    let tries: Vec<&Value> = outcomes["hangs_once"]["attempts"].as_array().unwrap().iter().collect();
    let kinds: Vec<&str> = tries.iter().map(|a| a["outcome"]["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["timed_out", "passed"]);
    assert_eq!(run.lines("hangs-once").len(), 2, "both attempts started");
}

fn check_fixture_evidence(run: &Run) {
    // Teardown ran after a failed sibling setup and after a panic; the failed fixture got none.
    assert_eq!(run.lines("teardown-Recorded"), ["outcomes::fixture_setup_fails", "outcomes::panics_with_fixture"]);
    assert!(run.lines("teardown-Broken").is_empty());
    assert!(run.lines("body-ran").is_empty(), "a test whose fixture failed must not run");
    // The shared session fixtures: one setup, by the run's own process, and one teardown for
    // the run; every test saw that one value, whether it took the fixture directly (Service)
    // or reached it through one or two other fixtures (Depot).
    for (fixture, used) in [("service", 2), ("depot", 2)] {
        let setup = run.lines(&format!("{fixture}-setup"));
        assert_eq!(setup, [format!("{fixture}-of-{}", run.pid)], "{fixture} is set up once, by the parent");
        assert_eq!(run.lines(&format!("{fixture}-used")), vec![setup[0].clone(); used]);
        assert_eq!(run.lines(&format!("{fixture}-teardown")), setup);
    }
    // The per-test temporary directory is gone after the test.
    let tmp = run.lines("tmp-dirs");
    assert_eq!(tmp.len(), 1);
    assert!(!Path::new(&tmp[0]).exists());
}

#[test]
fn process_isolation_reports_every_outcome_and_goes_on() {
    let run = run(&["--test-threads", "2"]);
    assert_eq!(run.code, 101, "{}", run.stdout);
    check_outcomes(&run, &[], &[]);
    check_fixture_evidence(&run);
    // The unregistered shared fixture was set up nowhere: not by the parent (it does not know
    // it) and not privately by the child.
    assert!(run.lines("stray-setup").is_empty());
    // A test's process-mode suite fixture is set up and torn down in its own process.
    assert_eq!(run.lines("suite-setup").len(), 2);
    assert_eq!(run.lines("suite-teardown").len(), 2);
    // The hung test's process was killed.
    let pid = &run.lines("hangs-pid")[0];
    assert!(!Path::new(&format!("/proc/{pid}")).exists(), "the timed-out child {pid} is still alive");
    // Output is shown for failing tests only, with what they printed before failing.
    assert!(
        run.stdout.contains("---- output of outcomes::fails_assert ----\nprinted before the failure"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("---- output of outcomes::hangs ----\nabout to hang"), "{}", run.stdout);
    assert!(!run.stdout.contains("output of a passing test is not shown"));
    assert!(run.stdout.contains("test result: FAILED. 19 passed; 12 failed; 2 ignored;"), "{}", run.stdout);
    let last = run.stdout.lines().last().unwrap();
    assert!(
        last.starts_with("==== 15 passed, 9 failed, 3 errors, 2 flaky, 2 skipped, 1 xfailed, 1 xpassed in "),
        "{last}"
    );
}

#[test]
fn thread_isolation_reports_the_same_outcomes() {
    let filter = "not aborts and not segfaults and not overflows_stack and not exceeds_memory";
    let run = run(&["--isolation", "thread", "-k", filter]);
    assert_eq!(run.code, 101, "{}", run.stdout);
    // One process owns every fixture: the unregistered shared one is simply set up here.
    check_outcomes(&run, PROCESS_ONLY, &[("stray_shared_fixture_unregistered", "passed")]);
    check_fixture_evidence(&run);
    assert_eq!(run.lines("stray-setup"), [run.pid.to_string()]);
    // One process: the suite fixture is set up once and torn down after the suite's last test.
    assert_eq!(run.lines("suite-setup").len(), 1);
    assert_eq!(run.lines("suite-teardown").len(), 1);
    // The hung attempt's thread still sleeps: the retry ran on the worker that took over.
    let threads = run.lines("hangs-once");
    assert_ne!(threads[0], threads[1], "the retry ran on the abandoned thread");
}

#[test]
fn exitfirst_stops_scheduling_and_reports_the_rest_as_not_run() {
    let run = run(&["-x", "--test-threads", "1"]);
    assert_eq!(run.code, 101);
    let outcomes = run.outcomes();
    assert_eq!(outcomes["aborts"]["outcome"]["kind"], "crashed");
    let not_run: Vec<&String> =
        outcomes.iter().filter(|(_, t)| t["outcome"]["kind"] == "not_run").map(|(name, _)| name).collect();
    assert_eq!(not_run.len(), EXPECTED.len() - 1, "{outcomes:?}");
    assert!(
        outcomes["passes"]["outcome"]["reason"].as_str().unwrap().contains("stopped after 1 failure(s) (--maxfail)")
    );
    assert!(run.stdout.contains(&format!("{} not run", EXPECTED.len() - 1)), "{}", run.stdout);
}

#[test]
fn last_failed_and_failed_first_use_the_previous_run() {
    let (state, out) = fresh_dirs();
    let first = run_in(&["--isolation", "thread", "-k", "returns_err or passes or fails_assert"], &state, &out);
    assert_eq!(first.code, 101);
    let lf = run_in(&["--lf", "--isolation", "thread"], &state, &out);
    let names: Vec<String> = lf.outcomes().into_keys().collect();
    // `-k passes` also matched xfail_strict_passes, a strict xpass: a failure.
    assert_eq!(names, ["fails_assert", "returns_err", "xfail_strict_passes"], "{}", lf.stdout);
    assert!(lf.stdout.contains("run the last failures only: 3 test(s) (--lf)"), "{}", lf.stdout);

    let ff =
        run_in(&["--ff", "--isolation", "thread", "--test-threads", "1", "-k", "passes or returns_err"], &state, &out);
    let report: Value = serde_json::from_slice(&std::fs::read(out.join("report.json")).unwrap()).unwrap();
    let order: Vec<&str> = report["tests"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert_eq!(
        order,
        ["outcomes::returns_err", "outcomes::xfail_strict_passes", "outcomes::passes", "outcomes::xfail_passes"],
        "{}",
        ff.stdout
    );
}

#[test]
fn durations_lists_the_slowest_phases() {
    let run = run(&["--durations", "2", "-k", "hangs and not once or passes"]);
    let lines: Vec<&str> = run.stdout.lines().collect();
    let at = lines.iter().position(|l| *l == "slowest 2 durations").expect("durations header");
    assert!(lines[at + 1].ends_with("call     outcomes::hangs"), "{}", lines[at + 1]);
    // The hang is killed at its 1 s timeout: at least that long, however busy the machine.
    let seconds: f64 = lines[at + 1].split('s').next().unwrap().trim().parse().unwrap();
    assert!(seconds >= 1.0, "{}", lines[at + 1]);
}

#[test]
fn sigterm_kills_children_and_still_writes_the_report() {
    let (state, out) = fresh_dirs();
    let mut child = stalling(&["-k", "stall_process"], &state, &out);
    started(&state, &["stall_process-pid"]);
    let status = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status().unwrap();
    assert!(status.success());
    assert_eq!(exit_within_a_minute(&mut child), Some(130));
    let run = Run { code: 130, pid: child.id(), stdout: String::new(), state, out };
    let outcomes = run.outcomes();
    assert_eq!(outcomes["stall_process"]["outcome"]["kind"], "not_run");
    assert_eq!(outcomes["stall_process"]["outcome"]["reason"], "run interrupted; the test was killed");
    let pid = &run.lines("stall_process-pid")[0];
    assert!(gone_within_a_minute(pid), "child {pid} survived the interrupt");
}

/// A test that prints 1 GiB: the parent keeps 64 KiB from each end in memory and at most
/// 8 MiB plus the tail on disk, so neither its peak RSS nor the disk it writes to grows with
/// the output; and it counts every byte it was sent.
#[test]
fn a_gigabyte_of_output_is_kept_bounded() {
    let (state, out) = fresh_dirs();
    let output = command(&["-k", "prints_a_gigabyte"], &state, &out)
        .env("OUTCOME_GIGABYTE", "1")
        .stdout(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(101));
    let report: Value = serde_json::from_slice(&std::fs::read(out.join("report.json")).unwrap()).unwrap();
    let peak = report["run"]["peak_rss_bytes"].as_f64().unwrap();
    assert!(peak < 128.0 * 1024.0 * 1024.0, "the parent's peak RSS is {peak} bytes");
    let test = &report["tests"][0];
    assert_eq!(test["outcome"]["kind"], "failed");
    let kept = test["output"].as_str().unwrap();
    assert!(kept.len() < 3 * 64 * 1024, "{} bytes of output in report.json", kept.len());
    assert!(kept.starts_with("first line\n"), "the head is kept");
    // The tail: the last printed line, then the panic message on stderr.
    let (_, after_last) = kept.rsplit_once("last line\n").expect("the tail is kept");
    let printed: u64 = std::fs::read_to_string(state.join("gigabyte-printed")).unwrap().trim().parse().unwrap();
    assert!(printed > 1 << 30);
    assert_eq!(test["output_bytes"].as_u64().unwrap(), printed + after_last.len() as u64, "every byte is counted");
    let whole = out.join("children/outcomes__prints_a_gigabyte.output");
    let on_disk = std::fs::read(&whole).unwrap();
    assert!(on_disk.len() < (8 << 20) + 2 * 64 * 1024, "{} bytes of output on disk", on_disk.len());
    assert!(on_disk.starts_with(b"first line\n") && on_disk.ends_with(after_last.as_bytes()));
    let junit = std::fs::metadata(out.join("junit.xml")).unwrap().len();
    assert!(junit < 1024 * 1024, "junit.xml is {junit} bytes");
}

/// Runs `args` with `OUTCOME_STUCK_SETUP=1`; the run must end by itself (liveness bound 120 s).
fn run_with_stuck_setups(args: &[&str]) -> Run {
    let (state, out) = fresh_dirs();
    let mut child = command(args, &state, &out)
        .env("OUTCOME_STUCK_SETUP", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let code = exit_within_a_minute(&mut child).unwrap_or(-1);
    Run { code, pid: child.id(), stdout: String::new(), state, out }
}

/// Thread isolation: a session fixture's setup outlives its test's timeout. The next test
/// needing it errors at once instead of waiting on a lock the abandoned thread holds, and the
/// run ends with its reports.
#[test]
fn a_stuck_session_setup_in_thread_isolation_still_ends_the_run() {
    let run = run_with_stuck_setups(&["--isolation", "thread", "--test-threads", "1", "-k", "stuck_setup"]);
    assert_eq!(run.code, 101);
    let outcomes = run.outcomes();
    assert_eq!(outcomes["stuck_setup_first"]["outcome"]["kind"], "timed_out");
    assert_eq!(outcomes["stuck_setup_second"]["outcome"]["kind"], "error");
}

/// Process isolation: the parent's setup of a shared fixture never returns. The child's
/// request is bounded (by --timeout here) and the run ends with its reports.
#[test]
fn a_stuck_shared_setup_in_the_parent_still_ends_the_run() {
    let run = run_with_stuck_setups(&["--timeout", "2", "-k", "stuck_shared_setup"]);
    assert_eq!(run.code, 101);
    let kind = run.outcomes()["stuck_shared_setup"]["outcome"]["kind"].as_str().unwrap().to_string();
    // Whichever bound fires first: the parent's answer (an error) or the test's timeout.
    assert!(kind == "error" || kind == "timed_out", "{kind}");
}

/// Starts a run of `args` in which the stall tests stall (`OUTCOME_STALL=1`).
fn stalling(args: &[&str], state: &Path, out: &Path) -> std::process::Child {
    command(args, state, out).env("OUTCOME_STALL", "1").stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap()
}

/// Whether `pid` is still a running process (a zombie waiting for a reaper is not).
fn alive(pid: &str) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state is the first field after the parenthesised command name.
        Ok(stat) => stat.rsplit(')').next().and_then(|rest| rest.split_whitespace().next()) != Some("Z"),
        Err(_) => false,
    }
}

/// Polls `done` until it holds; false past the liveness bound (far above anything the
/// harness itself waits for, so only a real hang reaches it).
fn within_a_minute(mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done() {
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    true
}

/// Waits until `pid` is gone.
fn gone_within_a_minute(pid: &str) -> bool {
    within_a_minute(|| !alive(pid))
}

/// Waits until the stalling tests named in `files` (`<test>-pid`) have started.
fn started(state: &Path, files: &[&str]) {
    assert!(within_a_minute(|| files.iter().all(|f| state.join(f).exists())), "{files:?} never started");
}

/// Waits for `child` to exit; its exit code. Kills it and fails past the bound.
fn exit_within_a_minute(child: &mut std::process::Child) -> Option<i32> {
    let mut status = None;
    if !within_a_minute(|| {
        status = child.try_wait().unwrap();
        status.is_some()
    }) {
        let _ = child.kill();
        panic!("the run did not exit: a wait is unbounded");
    }
    status.and_then(|s| s.code())
}

/// SIGKILL runs no code of the parent's: the children die anyway, because each asked the
/// kernel for SIGKILL on its parent's death.
#[test]
fn a_killed_parent_leaves_no_test_process_behind() {
    let (state, out) = fresh_dirs();
    let mut parent = stalling(&["-k", "stall_process"], &state, &out);
    started(&state, &["stall_process-pid"]);
    let pid = Run { code: 0, pid: 0, stdout: String::new(), state, out }.lines("stall_process-pid")[0].clone();
    assert!(alive(&pid));
    parent.kill().unwrap();
    parent.wait().unwrap();
    assert!(gone_within_a_minute(&pid), "test process {pid} survived its parent's SIGKILL");
}

/// A run stuck in a thread-isolated test ignores the first Ctrl-C's stop (the thread cannot be
/// killed); the second ends it at once, exit 130, and no test process outlives it.
#[test]
fn a_second_interrupt_ends_a_run_stuck_in_a_thread_test() {
    let (state, out) = fresh_dirs();
    let mut parent = stalling(&["-k", "stall_", "--test-threads", "2"], &state, &out);
    started(&state, &["stall_process-pid", "stall_thread-pid"]);
    let run = Run { code: 0, pid: parent.id(), stdout: String::new(), state, out };
    let child = run.lines("stall_process-pid")[0].clone();
    let pid = run.pid.to_string();
    assert!(Command::new("kill").args(["-INT", &pid]).status().unwrap().success());
    // The first interrupt kills the process-isolated test. Only then the second: two signals
    // sent back to back may merge into one.
    assert!(gone_within_a_minute(&child), "the first interrupt did not stop test process {child}");
    assert!(parent.try_wait().unwrap().is_none(), "the thread-isolated stall keeps the run going");
    assert!(Command::new("kill").args(["-INT", &pid]).status().unwrap().success());
    assert_eq!(exit_within_a_minute(&mut parent), Some(130));
}

/// cargo-nextest runs each test as `<bin> NAME --exact`: a memory limit is still enforced (in a
/// child), a timeout still ends the test, and both fail the process.
#[test]
fn exact_mode_enforces_memory_limits_and_timeouts() {
    for (name, expected) in [
        (
            "outcomes::exceeds_memory",
            "crashed: killed by signal 6 (SIGABRT): memory allocation failed (memory limit 64 MiB exceeded)",
        ),
        ("outcomes::hangs", "timed out after 1.0s"),
        ("outcomes::segfaults", ""),
    ] {
        let (state, out) = fresh_dirs();
        let output = command(&[name, "--exact", "--nocapture"], &state, &out).env("NEXTEST", "1").output().unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        if name == "outcomes::segfaults" {
            // In-process, a segfault takes the whole process down: nextest sees the signal.
            assert_eq!(std::os::unix::process::ExitStatusExt::signal(&output.status), Some(11));
            continue;
        }
        assert_eq!(output.status.code(), Some(101), "{name}: {stdout}");
        assert!(stdout.contains(expected), "{name}: {stdout}");
    }
}
