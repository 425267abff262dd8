//! Overheads of the runner, all measured in this one run (ratios, not absolute times, are the
//! result: this machine is noisy and shared):
//!
//! 1. Per-test cost on 1,000 trivial tests: thread isolation, process isolation (the default),
//!    and cargo-nextest running the same tests (one process per test, as nextest always does).
//!    The start-up cost (a run that selects nothing) is subtracted before dividing.
//! 2. The metrics layer on 10,000 trivial tests in thread isolation, 15 runs of each
//!    configuration, interleaved, fastest compared, against the bare harness (no allocator,
//!    `--no-metrics`): metrics on without the counting allocator, and metrics on with it
//!    installed (`global_allocator!`, as every user's binary has it). Target: at most 1.05
//!    for what users get, the allocator included.
//!
//! 3. The whole process on 10,000 trivial tests in thread isolation with every report on,
//!    with and without a default timeout, beside bare libtest-mimic (`many-bare`) and std
//!    libtest (the same 10,000 test functions, compiled here with `rustc --test`),
//!    best of 5 medians of 3 runs each. Target: at most 0.1 s either way. And the peak RSS of
//!    each, exact: this program re-runs itself as the measured process's parent, which reads
//!    `getrusage(RUSAGE_CHILDREN)` once that process is gone. Target: at most 2x bare. The
//!    same suite linked with packed relative relocations (`many-suite-relr`) is measured too:
//!    what the README's advice to large suites saves. So are one test on the harness
//!    (`one-suite`) and one on bare libtest-mimic: the fixed costs, which leave the part of each
//!    peak that grows with the tests.
//!
//! Run from the workspace root:
//! `cargo build --release -p harness-selftest --bins && target/release/overhead-bench`

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const TESTS: f64 = 1000.0;
/// The libtest filter selecting exactly 1,000 of the 10,000 tests.
const THOUSAND: &str = "a0::";
const REPEATS: usize = 3;

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn time(label: &str, mut cmd: impl FnMut() -> Command) -> Result<Duration, String> {
    let mut samples = Vec::new();
    for _ in 0..REPEATS {
        let mut command = cmd();
        command.stdout(Stdio::null()).stderr(Stdio::null());
        let started = Instant::now();
        let status = command.status().map_err(|e| format!("{label}: failed to start: {e}"))?;
        let elapsed = started.elapsed();
        if !status.success() {
            return Err(format!("{label}: exited with {status}"));
        }
        samples.push(elapsed);
    }
    Ok(median(samples))
}

fn sibling(name: &str) -> Result<PathBuf, String> {
    let exe = std::env::current_exe().map_err(|e| format!("failed to find this executable: {e}"))?;
    let path = exe.parent().unwrap_or(Path::new(".")).join(name);
    if path.is_file() { Ok(path) } else { Err(format!("{} not found: build with --bins first", path.display())) }
}

/// `--peak-rss-of PROGRAM ARGS...`: runs PROGRAM as this process's only child and prints its
/// peak RSS in bytes (the kernel keeps the largest waited-for child's).
fn peak_rss_of(program: &std::ffi::OsStr, args: &[std::ffi::OsString]) -> Result<(), String> {
    let status = Command::new(program)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map_err(|e| format!("{}: failed to start: {e}", program.to_string_lossy()))?;
    if !status.success() {
        return Err(format!("{}: exited with {status}", program.to_string_lossy()));
    }
    let usage = nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_CHILDREN)
        .map_err(|e| format!("getrusage: {e}"))?;
    println!("{}", usage.max_rss() * 1024);
    Ok(())
}

/// The peak RSS of the process `cmd` makes, in bytes (see [`peak_rss_of`]).
fn peak_rss(label: &str, cmd: &Command) -> Result<u64, String> {
    let exe = std::env::current_exe().map_err(|e| format!("failed to find this executable: {e}"))?;
    let mut measure = Command::new(exe);
    measure.arg("--peak-rss-of").arg(cmd.get_program()).args(cmd.get_args());
    for (key, value) in cmd.get_envs() {
        match value {
            Some(value) => measure.env(key, value),
            None => measure.env_remove(key),
        };
    }
    let out = measure.output().map_err(|e| format!("{label}: failed to start: {e}"))?;
    if !out.status.success() {
        return Err(format!("{label}: {}", String::from_utf8_lossy(&out.stderr).trim()));
    }
    String::from_utf8_lossy(&out.stdout).trim().parse().map_err(|e| format!("{label}: peak RSS unreadable: {e}"))
}

fn main() -> Result<(), String> {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if args.get(1).is_some_and(|a| a == "--peak-rss-of") {
        let Some(program) = args.get(2) else { return Err("--peak-rss-of needs a program".into()) };
        return peak_rss_of(program, &args[3..]);
    }
    let suite = sibling("many-suite")?;
    let suite_alloc = sibling("many-suite-alloc")?;
    let scratch = std::env::temp_dir().join(format!("overhead-bench-{}", std::process::id()));
    let threads = "2";
    // A command factory for one of the suite binaries with `args`.
    let binary = |path: &PathBuf, args: &'static [&'static str]| {
        let (path, scratch) = (path.clone(), scratch.clone());
        move || {
            let mut cmd = Command::new(&path);
            cmd.args(args).args(["--test-threads", threads]).env("RELIABILITY_OUTPUT_DIR", &scratch);
            cmd
        }
    };
    let harness = |args: &'static [&'static str]| binary(&suite, args);
    let startup = time("start-up (nothing selected)", harness(&["no_such_test"]))?;
    let thread = time("thread isolation", harness(&[THOUSAND, "--isolation", "thread"]))?;
    let process = time("process isolation", harness(&[THOUSAND, "--isolation", "process"]))?;

    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let nextest = |filter: &'static str| {
        let cargo = cargo.clone();
        move || {
            let mut cmd = Command::new(&cargo);
            cmd.args(["nextest", "run", "--release", "-p", "harness-selftest", "--test", "many_suite"])
                .args(["--test-threads", threads, "--no-fail-fast", "--no-tests", "pass"])
                .args(["-E", filter]);
            cmd
        }
    };
    // Builds the test target and warms cargo's caches; not timed.
    time("cargo nextest (warm-up)", nextest("none()"))?;
    let nextest_startup = time("cargo nextest (nothing selected)", nextest("none()"))?;
    let nextest_all = time("cargo nextest", nextest("test(/^a0::/)"))?;

    // The metrics layer: 10,000 tests, interleaved so drift hits every configuration alike. The
    // fastest run of each is compared: noise on a shared machine only ever adds time, so the
    // minimum is the best estimate of what each configuration costs.
    let with_alloc = |args: &'static [&'static str]| binary(&suite_alloc, args);
    let (mut bare, mut on, mut on_alloc) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..15 {
        bare.push(time("bare (no allocator, metrics off)", harness(&["--isolation", "thread", "--no-metrics"]))?);
        on.push(time("metrics on, no allocator", harness(&["--isolation", "thread"]))?);
        on_alloc.push(time("metrics on, counting allocator", with_alloc(&["--isolation", "thread"]))?);
    }
    let fastest = |runs: Vec<Duration>| runs.into_iter().min().unwrap_or_default();
    let (bare, on, on_alloc) = (fastest(bare), fastest(on), fastest(on_alloc));
    let whole = whole_process(
        [&suite_alloc, &sibling("many-suite-relr")?, &sibling("one-suite")?],
        &sibling("many-bare")?,
        &scratch,
        threads,
    )?;
    let _ = std::fs::remove_dir_all(&scratch);

    let per_test = |total: Duration, base: Duration| total.saturating_sub(base).as_secs_f64() / TESTS * 1e3;
    let (t, p, n) = (per_test(thread, startup), per_test(process, startup), per_test(nextest_all, nextest_startup));
    println!("overhead on {TESTS} trivial tests ({THOUSAND}*), --test-threads {threads}, median of {REPEATS} runs");
    println!("  {:<22} {:>9} {:>14}", "mode", "wall", "per test");
    println!("  {:<22} {:>8.3}s {:>14}", "start-up only", startup.as_secs_f64(), "(subtracted)");
    println!("  {:<22} {:>8.3}s {:>11.3} ms", "thread isolation", thread.as_secs_f64(), t);
    println!("  {:<22} {:>8.3}s {:>11.3} ms", "process isolation", process.as_secs_f64(), p);
    println!("  {:<22} {:>8.3}s {:>11.3} ms", "cargo nextest", nextest_all.as_secs_f64(), n);
    println!("ratios (per-test overhead):");
    println!("  process / thread  = {:.1}", p / t.max(1e-6));
    println!("  process / nextest = {:.2}", p / n.max(1e-6));
    let ratio = |run: Duration| run.as_secs_f64() / bare.as_secs_f64();
    println!("metrics layer on 10000 trivial tests, thread isolation, fastest of 15 interleaved runs each");
    println!("  bare: no allocator, --no-metrics   {:>8.3}s", bare.as_secs_f64());
    println!("  metrics on, no allocator           {:>8.3}s  ratio {:.3}", on.as_secs_f64(), ratio(on));
    let users = ratio(on_alloc);
    println!("  metrics on, counting allocator     {:>8.3}s  ratio {users:.3}", on_alloc.as_secs_f64());
    println!(
        "  what users get (allocator + metrics) / bare = {users:.3} (target <= 1.05: {})",
        match users <= 1.05 {
            true => "met",
            false => "NOT met",
        }
    );
    whole.print();
    Ok(())
}

/// The whole-process figures of section 3: wall time and peak RSS (bytes).
struct Whole {
    bare: Duration,
    std: Duration,
    ours: Duration,
    ours_timeout: Duration,
    /// Peak RSS of: bare, std, ours, ours with a timeout, ours linked with RELR, ours with one
    /// test, bare with one test.
    rss: [u64; 7],
}

impl Whole {
    fn print(&self) {
        let line = |label: &str, run: Duration, target: bool| {
            let verdict = match (target, run.as_secs_f64() <= 0.1) {
                (false, _) => "",
                (true, true) => "  (target <= 0.100 s: met)",
                (true, false) => "  (target <= 0.100 s: NOT met)",
            };
            let ratio = run.as_secs_f64() / self.bare.as_secs_f64().max(1e-9);
            println!("  {label:<40} {:>8.3}s {ratio:>7.1}x{verdict}", run.as_secs_f64());
        };
        println!(
            "whole process on 10000 trivial tests, thread isolation, every report on, best of 5 medians of 3 runs each"
        );
        line("bare libtest-mimic", self.bare, false);
        line("std libtest", self.std, false);
        line("reliability (counting allocator)", self.ours, true);
        line("reliability, default timeout 120 s", self.ours_timeout, true);
        println!("peak RSS of the same runs (one measured run each; the ratio is to bare libtest-mimic)");
        let labels = [
            "bare libtest-mimic",
            "std libtest",
            "reliability (counting allocator)",
            "reliability, default timeout 120 s",
            "reliability, packed relocations (RELR)",
            "reliability, one test (its fixed cost)",
            "bare libtest-mimic, one test",
        ];
        let bare = self.rss[0].max(1) as f64;
        let mib = |bytes: u64| bytes as f64 / (1024.0 * 1024.0);
        for (i, (label, rss)) in labels.iter().zip(self.rss).enumerate() {
            let ratio = rss as f64 / bare;
            let verdict = match ((2..=4).contains(&i), ratio <= 2.0) {
                (false, _) => "",
                (true, true) => "  (target <= 2x bare: met)",
                (true, false) => "  (target <= 2x bare: NOT met)",
            };
            println!("  {label:<40} {:>7.1} MiB {ratio:>6.1}x{verdict}", mib(rss));
        }
        let [bare_all, _, ours_all, _, _, ours_one, bare_one] = self.rss;
        let grows = |all: u64, one: u64| all.saturating_sub(one);
        let budget = (2 * bare_all).saturating_sub(ours_one);
        println!(
            "  grows with 9,999 more tests: reliability {:.1} MiB ({} bytes a test), bare {:.1} MiB ({} bytes a test); \
             2x bare leaves reliability {:.1} MiB ({} bytes a test) above its fixed cost",
            mib(grows(ours_all, ours_one)),
            grows(ours_all, ours_one) / 9_999,
            mib(grows(bare_all, bare_one)),
            grows(bare_all, bare_one) / 9_999,
            mib(budget),
            budget / 9_999,
        );
    }
}

/// The attribute of a std libtest test, as text for the generated source: spelled in two parts
/// because this file has no tests of its own and `ci/untested-targets.py` reads the literal.
const TEST_ATTRIBUTE: &str = concat!("#", "[test]");

/// 10,000 std libtest test functions named as `many.rs` names its tests.
fn std_suite_source() -> String {
    let mut src = String::from("#![allow(unused)]\n");
    for a in 0..10 {
        src.push_str(&format!("mod a{a} {{\n"));
        for m in 0..10 {
            src.push_str(&format!("mod m{m} {{\n"));
            for n in 0..10 {
                src.push_str(&format!("mod n{n} {{\n"));
                for t in 0..10 {
                    src.push_str(&format!("{TEST_ATTRIBUTE} fn t{t}() {{}}\n"));
                }
                src.push_str("}\n");
            }
            src.push_str("}\n");
        }
        src.push_str("}\n");
    }
    src
}

/// `ours`: the 10,000-test suite, the same linked with RELR, and the one-test suite.
fn whole_process(ours: [&Path; 3], bare: &Path, scratch: &Path, threads: &str) -> Result<Whole, String> {
    let [ours, ours_relr, ours_one] = ours;
    std::fs::create_dir_all(scratch).map_err(|e| format!("{}: {e}", scratch.display()))?;
    let source = scratch.join("many_std.rs");
    std::fs::write(&source, std_suite_source()).map_err(|e| format!("{}: {e}", source.display()))?;
    let std_bin = scratch.join("many-std");
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let built = Command::new(&rustc)
        .args(["--edition", "2021", "--test", "-C", "opt-level=1", "-o"])
        .arg(&std_bin)
        .arg(&source)
        .status()
        .map_err(|e| format!("{rustc}: {e}"))?;
    if !built.success() {
        return Err(format!("{rustc} --test {}: {built}", source.display()));
    }
    let run = |path: &Path, args: &'static [&'static str]| {
        let (path, scratch) = (path.to_path_buf(), scratch.to_path_buf());
        move || {
            let mut cmd = Command::new(&path);
            cmd.args(args).args(["--test-threads", threads]).env("RELIABILITY_OUTPUT_DIR", &scratch);
            cmd.env_remove("RELIABILITY_TIMEOUT");
            cmd
        }
    };
    let (mut b, mut s, mut o, mut t) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for _ in 0..5 {
        b.push(time("bare libtest-mimic", run(bare, &["-q"]))?);
        s.push(time("std libtest", run(&std_bin, &["-q"]))?);
        o.push(time("reliability", run(ours, &["--isolation", "thread", "-q"]))?);
        t.push(time("reliability with a timeout", run(ours, &["--isolation", "thread", "-q", "--timeout", "120"]))?);
    }
    let fastest = |runs: Vec<Duration>| runs.into_iter().min().unwrap_or_default();
    let rss = [
        peak_rss("bare libtest-mimic", &run(bare, &["-q"])())?,
        peak_rss("std libtest", &run(&std_bin, &["-q"])())?,
        peak_rss("reliability", &run(ours, &["--isolation", "thread", "-q"])())?,
        peak_rss("reliability with a timeout", &run(ours, &["--isolation", "thread", "-q", "--timeout", "120"])())?,
        peak_rss("reliability, packed relocations", &run(ours_relr, &["--isolation", "thread", "-q"])())?,
        peak_rss("reliability, one test", &run(ours_one, &["--isolation", "thread", "-q"])())?,
        peak_rss("bare libtest-mimic, one test", run(bare, &["-q"])().env("MANY_BARE_TESTS", "1"))?,
    ];
    Ok(Whole { bare: fastest(b), std: fastest(s), ours: fastest(o), ours_timeout: fastest(t), rss })
}
