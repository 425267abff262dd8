//! 10,000 trivial tests on bare libtest-mimic (no harness): the baseline the overhead
//! benchmark's whole-process figure is measured against (`benches/src/bin/overhead-bench.rs`).
//! The same names as `many.rs` (`a0..a9::m0..m9::n0..n9::t0..t9`). `MANY_BARE_TESTS=N` builds
//! only the first N (the bench measures bare libtest-mimic's fixed cost with one).

fn main() -> std::process::ExitCode {
    let args = libtest_mimic::Arguments::from_args();
    let count = std::env::var("MANY_BARE_TESTS").ok().and_then(|n| n.parse().ok()).unwrap_or(10_000);
    let mut trials = Vec::with_capacity(count);
    for i in 0..count {
        let name = format!("a{}::m{}::n{}::t{}", i / 1000, i / 100 % 10, i / 10 % 10, i % 10);
        trials.push(libtest_mimic::Trial::test(name, || Ok(())));
    }
    libtest_mimic::run(&args, trials).exit_code()
}
