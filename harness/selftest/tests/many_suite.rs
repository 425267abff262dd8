//! The 10,000 trivial tests again as a test target, so the benchmark can run them under
//! cargo-nextest. `test = false`: not part of `cargo test`; built when named (`--test many_suite`).

include!("../src/many.rs");

fn main() -> std::process::ExitCode {
    reliability_harness::main()
}
