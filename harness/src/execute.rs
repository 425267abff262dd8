//! Executing one attempt of one test in this thread: `skip_if`, fixture setup, the body,
//! teardown, and what the result means given `xfail`.
//!
//! Whether that thread is a libtest worker (thread isolation), a helper thread watched for a
//! timeout, or the main thread of a child process (process isolation) is decided elsewhere
//! (`schedule`, `isolate`); this module only turns a test into an [`Attempt`].

use std::any::Any;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Once};
use std::time::Duration;

use crate::figures::Metrics;
use crate::fixture::{Fixture, Setup, Shared, runtime};
use crate::measure::{self, Snapshot, heap};
use crate::outcome::{Attempt, Outcome, Phases};
use crate::registry::TestCase;

/// The panic payload of [`skip`].
#[derive(Debug)]
struct SkipSignal(String);

/// Skips the running test (or the fixture being set up) with a reason, like `pytest.skip()`.
pub fn skip(reason: impl Into<String>) -> ! {
    std::panic::panic_any(SkipSignal(reason.into()))
}

/// Installs (once) a panic hook that keeps [`skip`] quiet and leaves other panics to the
/// previous hook.
pub(crate) fn install_panic_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !info.payload().is::<SkipSignal>() {
                previous(info);
            }
        }));
    });
}

/// The message of a panic payload.
pub(crate) fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(SkipSignal(reason)) = payload.downcast_ref::<SkipSignal>() {
        format!("skipped: {reason}")
    } else {
        "(a non-string panic payload)".to_string()
    }
}

fn skip_reason(payload: &(dyn Any + Send)) -> Option<String> {
    payload.downcast_ref::<SkipSignal>().map(|SkipSignal(reason)| reason.clone())
}

/// Returned by [`TestCall`] methods when the test cannot go on (a fixture failed or skipped).
#[derive(Debug)]
pub struct Interrupted(());

/// What the body's wrapper (written by the attribute macro) talks to: it requests fixtures,
/// then runs the body through [`TestCall::call`], which times and judges it.
#[derive(Debug)]
pub struct TestCall<'a> {
    setup: Setup<'a>,
    /// Phase boundaries: before setup, after setup, after the body.
    marks: [Option<Snapshot>; 3],
    /// The test takes fixtures; without any, setup is empty and its boundary is the start.
    fixtures: bool,
    outcome: Option<Outcome>,
}

impl<'a> TestCall<'a> {
    fn new(shared: &'a Shared, suite: &str, start: Snapshot, fixtures: bool) -> TestCall<'a> {
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
    pub fn call(&mut self, body: impl FnOnce() -> Result<(), String>) -> Result<(), Interrupted> {
        // Other tests may set up session and suite fixtures while this one runs.
        self.setup.release();
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

/// Which shared scopes to tear down after this attempt.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Teardown {
    /// The suite's fixtures (its last test in this process).
    pub(crate) suite: bool,
    /// The session's fixtures (a child process, after its only test).
    pub(crate) session: bool,
}

/// Runs one attempt of `test` in this thread.
pub(crate) fn execute(test: &TestCase, shared: &Shared, teardown: Teardown) -> Attempt {
    install_panic_hook();
    let _current = crate::CurrentTest::enter(test.name.clone());
    if let Some(skip_if) = test.settings.skip_if {
        if (skip_if.condition)() {
            return Attempt::bare(Outcome::Skipped { reason: skip_if.reason.to_string() });
        }
    }
    let fixtures = !test.shares.is_empty();
    if fixtures {
        // The fixture runtime's threads are the harness's allocations, not the test's.
        let _ = runtime();
    }
    heap::reset_peak();
    let start = Snapshot::take();
    let mut call = TestCall::new(shared, test.suite(), start, fixtures);
    let _ = (test.run)(&mut call);
    call.setup.release();
    // Setup failed or skipped: the body never ran, so its phase is empty.
    let after_setup = call.marks[1].unwrap_or_else(Snapshot::take);
    let after_call = call.marks[2].unwrap_or(after_setup);
    let figures = call.setup.test.get::<Metrics>().map(|m| m.figures()).unwrap_or_default();
    let mut errors = call.setup.test.teardown_all();
    // No fixtures, nothing torn down: the teardown boundary is the end of the body.
    let after_teardown = if fixtures { Snapshot::take() } else { after_call };
    let peak_heap = if measure::enabled() { heap::peak() } else { None };
    let mut measurements = measure::between([start, after_setup, after_call, after_teardown], peak_heap);
    measurements.figures = figures;
    if teardown.suite {
        if let Some(mut store) = shared.lock_suites().remove(test.suite()) {
            errors.extend(store.teardown_all());
        }
    }
    if teardown.session {
        errors.extend(shared.lock_session().teardown_all());
    }
    let phases = Phases {
        setup: after_setup.at - start.at,
        call: after_call.at - after_setup.at,
        teardown: after_teardown.at - after_call.at,
    };
    let outcome = call.outcome.unwrap_or_else(|| Outcome::Error { message: "the test body was never called".into() });
    let outcome = apply_xfail(outcome, test);
    Attempt { outcome: with_teardown_errors(outcome, errors), phases, measurements }
}

/// `xfail`: a failure of the body is expected; a pass is `xpassed`.
fn apply_xfail(outcome: Outcome, test: &TestCase) -> Outcome {
    let Some(xfail) = test.settings.xfail else { return outcome };
    let reason = xfail.reason.to_string();
    match outcome {
        Outcome::Failed { .. } => Outcome::XFailed { reason },
        Outcome::Passed => Outcome::XPassed { reason, strict: xfail.strict },
        other => other,
    }
}

/// A failing teardown is an error of the test, never swallowed.
fn with_teardown_errors(outcome: Outcome, errors: Vec<String>) -> Outcome {
    if errors.is_empty() {
        return outcome;
    }
    let errors = errors.join("; ");
    match outcome {
        Outcome::Failed { message } => Outcome::Failed { message: format!("{message}\nand then: {errors}") },
        Outcome::Error { message } => Outcome::Error { message: format!("{message}; then: {errors}") },
        _ => Outcome::Error { message: errors },
    }
}

/// Runs an attempt on a helper thread and gives up after `timeout` (thread isolation): the
/// run goes on and the abandoned thread is left to finish or hang on its own.
pub(crate) fn execute_with_timeout(
    test: &TestCase,
    shared: &Arc<Shared>,
    teardown: Teardown,
    timeout: Option<Duration>,
) -> Attempt {
    let Some(timeout) = timeout else { return execute(test, shared, teardown) };
    let (tx, rx) = std::sync::mpsc::channel();
    let (test_owned, shared_owned) = (test.clone(), Arc::clone(shared));
    let spawned = std::thread::Builder::new().name(test.name.clone()).spawn(move || {
        let _ = tx.send(execute(&test_owned, &shared_owned, teardown));
    });
    if let Err(err) = spawned {
        return Attempt::bare(Outcome::Error { message: format!("failed to start a thread for the test: {err}") });
    }
    match rx.recv_timeout(timeout) {
        Ok(attempt) => attempt,
        Err(_) => Attempt {
            phases: Phases { call: timeout, ..Phases::default() },
            ..Attempt::bare(Outcome::TimedOut { after: timeout })
        },
    }
}
