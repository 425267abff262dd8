//! 1,000 trivial tests, for the overhead benchmark (`benches/overhead.rs`).

include!("many.rs");

fn main() -> std::process::ExitCode {
    reliability_harness::main()
}
