//! The reliability suites: `cargo test --test reliability -- --include e2e`.
//!
//! One module per suite. Tests register themselves with `#[rh::test(markers...)]`; the
//! harness selects, runs and reports them (see the README for selection flags).

mod chaos;
mod delivery;
mod load;
mod sdk_api;
mod sdk_chaos;
mod sdk_crash;
mod sdk_latency;
mod sdk_load;
mod sdk_memory;
mod smoke;

// The metrics layer's allocation figures come from this allocator (dhat's with the
// `dhat-heap` feature of reliability-harness).
reliability_harness::global_allocator!();

fn main() -> std::process::ExitCode {
    reliability_harness::main()
}
