//! A fixture suite with known markers, used only by the harness's own tests.
//!
//! Every test records its name (one line, appended) in the file named by `FIXTURE_RUN_LOG`,
//! so the tests in `tests/` can assert exactly which bodies ran — not just what libtest
//! printed. The expected sets live in `tests/selection.rs`; keep the two in step.

include!("fixtures.rs");

fn main() -> std::process::ExitCode {
    rh::main()
}
