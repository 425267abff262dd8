//! The fixture suite again, as a `harness = false` test target, so that CI can run it under
//! real cargo-nextest (`ci/test.sh`). `cargo test` runs its default selection, which passes.

include!("../src/fixtures.rs");

fn main() -> std::process::ExitCode {
    rh::main()
}
