//! 10,000 trivial tests, for the overhead benchmarks (`benches/overhead.rs`).

include!("many.rs");

fn main() -> std::process::ExitCode {
    reliability_harness::main()
}
