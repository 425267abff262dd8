//! One trivial test with the counting allocator: the harness's fixed cost. The overhead bench
//! runs it with every report on beside `many-suite-alloc`, so the part of the 10,000-test peak
//! RSS that grows with the tests is a figure measured in the same run, not an estimate.

#[reliability_harness::test]
fn t0() {}

reliability_harness::global_allocator!();

fn main() -> std::process::ExitCode {
    reliability_harness::main()
}
