//! # reliability-harness
//!
//! A pytest-style test framework for Rust on [libtest-mimic]: tests are plain functions with one
//! attribute carrying their markers; selection works like pytest (`--include e2e`,
//! `-m "e2e and not slow"`, `-k delivery`); `cargo test`, cargo-nextest and IDE run buttons keep
//! working because the runner is libtest-compatible.
//!
//! ```toml
//! # Cargo.toml
//! [[test]]
//! name = "reliability"
//! path = "suites/main.rs"
//! harness = false
//! ```
//!
//! ```ignore
//! // suites/main.rs
//! mod delivery;
//!
//! fn main() -> std::process::ExitCode {
//!     reliability_harness::main()
//! }
//!
//! // suites/delivery.rs
//! use reliability_harness as rh;
//!
//! #[rh::test(e2e)]
//! async fn baseline_100_spans() -> Result<(), String> {
//!     Ok(())
//! }
//!
//! #[rh::test(e2e, slow)]
//! #[case(10_000)]
//! #[case(id = "100k", 100_000, markers(chaos))]
//! fn ladder(spans: usize) {
//!     assert!(spans > 0);
//! }
//! ```
//!
//! The stages, each in its own folder, imported in one direction only (a stage never reaches
//! into a later one): [`config`] (`reliability.toml`, flags, environment) → [`fixture`] and
//! [`measure`] (what a test uses and how it is measured) → [`registry`] (what the attribute
//! registered) → [`select`] (markers, expressions; pure) → `run` (schedule, execute, isolate,
//! share) → [`report`] and [`publish`]. `app` is the composition root: it wires the stages to
//! libtest-mimic, argv, the environment and the exit code.
//!
//! ## Exit codes
//! 0 ok; 101 test failures (libtest's); 2 usage or configuration error; 5 nothing selected by
//! `-m`/`-k`/`--include`/`--exclude` (pytest's code). A plain libtest filter that matches
//! nothing still exits 0, so `cargo test <filter>` across a workspace keeps working.
//!
//! ## Known limitations
//! - Thread isolation (`--isolation thread`) runs tests on the run's worker threads in this
//!   process: an `abort()` or segfault there ends the binary, output is not captured, and a
//!   timed-out test's thread is abandoned, not killed (one watchdog gives it up at its deadline
//!   and a new worker carries the run on). Process isolation (the default) has none of these
//!   limits, at the price of a process start per test.
//! - libtest-mimic prints no reason next to a statically ignored test, so the reasons of tests
//!   gated by opt-in markers are printed after the run, grouped, as pytest's `SKIPPED [n]`.
//!
//! [libtest-mimic]: https://docs.rs/libtest-mimic

mod app;
mod call;
pub mod config;
pub mod error;
pub mod fixture;
mod io;
pub mod measure;
pub mod outcome;
mod panic;
pub mod publish;
pub mod registry;
pub mod report;
mod run;
pub mod select;

pub use app::{main, run};
pub use fixture::{BoxError, Fixture, RunConfig, Scope, Setup, TempDir, current_test};
pub use measure::figures::Metrics;
pub use panic::skip;
pub use reliability_harness_macros::test;

/// Support for the attribute macro's expansion. Not a public API.
#[doc(hidden)]
pub mod __private {
    pub use crate::call::{Interrupted, TestCall};
    pub use crate::fixture::SHARED_FIXTURES;
    pub use crate::fixture::{FixtureRef, Shared, SharedFixture};
    pub use crate::registry::TESTS;
    pub use crate::registry::{Isolation, Settings, SkipIf, TestDef, Xfail};
    pub use linkme;

    /// What a test function may return: `()` or `Result<(), E: Debug>` (like `main`).
    pub trait TestOutput {
        /// `Err` carries the failure message.
        fn into_result(self) -> Result<(), String>;
    }

    impl TestOutput for () {
        fn into_result(self) -> Result<(), String> {
            Ok(())
        }
    }

    impl<E: std::fmt::Debug> TestOutput for Result<(), E> {
        fn into_result(self) -> Result<(), String> {
            self.map_err(|e| format!("test returned an error: {e:?}"))
        }
    }

    /// Runs an `async` test body to completion on a fresh current-thread tokio runtime, so that
    /// tests do not share a reactor (one test's blocked runtime cannot stall another).
    pub fn block_on<F: std::future::Future>(future: F) -> F::Output {
        match tokio::runtime::Builder::new_current_thread().enable_all().build() {
            Ok(runtime) => runtime.block_on(future),
            Err(err) => panic!("failed to start a tokio runtime for the test: {err}"),
        }
    }
}
