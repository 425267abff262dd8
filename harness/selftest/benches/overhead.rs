//! Per-test overhead of the runner on 1,000 trivial tests, all measured in this one run:
//! thread isolation, process isolation (the default), and cargo-nextest running the same
//! tests (one process per test, as nextest always does). Figures are medians of a few runs,
//! and the start-up cost of the binary (a run that selects nothing) is subtracted before
//! dividing by the number of tests. Ratios, not absolute times, are the result: this machine
//! is noisy and shared.
//!
//! Run from the workspace root:
//! `cargo build --release -p harness-selftest --bins && target/release/overhead-bench`

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const TESTS: f64 = 1000.0;
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

fn main() -> Result<(), String> {
    let suite = sibling("many-suite")?;
    let scratch = std::env::temp_dir().join(format!("overhead-bench-{}", std::process::id()));
    let threads = "2";
    let harness = |args: &'static [&'static str]| {
        let (suite, scratch) = (suite.clone(), scratch.clone());
        move || {
            let mut cmd = Command::new(&suite);
            cmd.args(args).args(["--test-threads", threads]).env("RELIABILITY_OUTPUT_DIR", &scratch);
            cmd
        }
    };
    let startup = time("start-up (nothing selected)", harness(&["no_such_test"]))?;
    let thread = time("thread isolation", harness(&["--isolation", "thread"]))?;
    let process = time("process isolation", harness(&["--isolation", "process"]))?;

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
    let nextest_all = time("cargo nextest", nextest("all()"))?;
    let _ = std::fs::remove_dir_all(&scratch);

    let per_test = |total: Duration, base: Duration| total.saturating_sub(base).as_secs_f64() / TESTS * 1e3;
    let (t, p, n) = (per_test(thread, startup), per_test(process, startup), per_test(nextest_all, nextest_startup));
    println!("overhead on {TESTS} trivial tests, --test-threads {threads}, median of {REPEATS} runs");
    println!("  {:<22} {:>9} {:>14}", "mode", "wall", "per test");
    println!("  {:<22} {:>8.3}s {:>14}", "start-up only", startup.as_secs_f64(), "(subtracted)");
    println!("  {:<22} {:>8.3}s {:>11.3} ms", "thread isolation", thread.as_secs_f64(), t);
    println!("  {:<22} {:>8.3}s {:>11.3} ms", "process isolation", process.as_secs_f64(), p);
    println!("  {:<22} {:>8.3}s {:>11.3} ms", "cargo nextest", nextest_all.as_secs_f64(), n);
    println!("ratios (per-test overhead):");
    println!("  process / thread  = {:.1}", p / t.max(1e-6));
    println!("  process / nextest = {:.2}", p / n.max(1e-6));
    Ok(())
}
