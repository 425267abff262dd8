//! The interface between a registered test body and the runner: the wrapper the attribute
//! macro writes asks [`TestCall`] for fixtures, then hands it the body to run, time and judge.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use crate::fixture::{Fixture, Setup, Shared, runtime};
use crate::measure::Snapshot;
use crate::outcome::Outcome;
use crate::panic::{panic_message, skip_reason};

/// Returned by [`TestCall`] methods when the test cannot go on (a fixture failed or skipped).
#[derive(Debug)]
pub struct Interrupted(());

/// What the body's wrapper (written by the attribute macro) talks to: it requests fixtures,
/// then runs the body through [`TestCall::call`], which times and judges it.
#[derive(Debug)]
pub struct TestCall<'a> {
    pub(crate) setup: Setup<'a>,
    /// Phase boundaries: before setup, after setup, after the body.
    pub(crate) marks: [Option<Snapshot>; 3],
    /// The test takes fixtures; without any, setup is empty and its boundary is the start.
    fixtures: bool,
    pub(crate) outcome: Option<Outcome>,
}

impl<'a> TestCall<'a> {
    pub(crate) fn new(shared: &'a Shared, suite: &'a str, start: Snapshot, fixtures: bool) -> TestCall<'a> {
        TestCall { setup: Setup::new(shared, suite), marks: [Some(start), None, None], fixtures, outcome: None }
    }

    /// The fixture `T` for this test, set up now if needed.
    pub fn fixture<T: Fixture>(&mut self) -> Result<Arc<T>, Interrupted> {
        let setup = &mut self.setup;
        match std::panic::catch_unwind(AssertUnwindSafe(|| runtime().block_on(setup.get::<T>()))) {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(err)) => {
                let message = self.setup.failure.clone().unwrap_or_else(|| err.to_string());
                self.outcome = Some(Outcome::Error { message });
                Err(Interrupted(()))
            }
            Err(panic) => {
                self.outcome = Some(match skip_reason(&*panic) {
                    Some(reason) => Outcome::Skipped { reason },
                    None => Outcome::Error {
                        message: format!(
                            "fixture {} panicked in setup: {}",
                            crate::fixture::short_name::<T>(),
                            panic_message(&*panic)
                        ),
                    },
                });
                Err(Interrupted(()))
            }
        }
    }

    /// Runs the body (fixtures are all set up by now), catching panics and skips.
    ///
    /// Generic only in this thin shim: the work is in one non-generic function, so a binary
    /// of 10,000 tests holds one copy of it, not 10,000 (19 MB of code, paged in test by test).
    #[inline]
    pub fn call(&mut self, body: impl FnOnce() -> Result<(), String>) -> Result<(), Interrupted> {
        let mut body = Some(body);
        self.call_dyn(&mut || body.take().map_or(Ok(()), |body| body()))
    }

    /// [`TestCall::call`] for a body that captures nothing (a test without fixtures): the
    /// macro passes it as a plain `fn`, so each such test adds no generic code at all — the
    /// closure shim, vtable and `Option` dance of `call` were ~270 bytes per test.
    #[inline(never)]
    pub fn call_fn(&mut self, mut body: fn() -> Result<(), String>) -> Result<(), Interrupted> {
        self.call_dyn(&mut body)
    }

    #[inline(never)]
    fn call_dyn(&mut self, body: &mut dyn FnMut() -> Result<(), String>) -> Result<(), Interrupted> {
        self.marks[1] = if self.fixtures { Some(Snapshot::take()) } else { self.marks[0] };
        let result = std::panic::catch_unwind(AssertUnwindSafe(body));
        self.marks[2] = Some(Snapshot::take());
        self.outcome = Some(match result {
            Ok(Ok(())) => Outcome::Passed,
            Ok(Err(message)) => Outcome::Failed { message },
            Err(panic) => match skip_reason(&*panic) {
                Some(reason) => Outcome::Skipped { reason },
                None => Outcome::Failed { message: format!("test panicked: {}", panic_message(&*panic)) },
            },
        });
        Ok(())
    }
}
