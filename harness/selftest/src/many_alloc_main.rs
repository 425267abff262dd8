//! The same 10,000 trivial tests as `many-suite`, with the counting allocator every user's test
//! binary installs (`global_allocator!`): the overhead bench measures the metrics layer with it.

include!("many.rs");

reliability_harness::global_allocator!();

fn main() -> std::process::ExitCode {
    reliability_harness::main()
}
