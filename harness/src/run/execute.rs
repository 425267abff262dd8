//! Executing one attempt of one test in this thread: `skip_if`, fixture setup, the body,
//! teardown, and what the result means given `xfail`.
//!
//! Whether that thread is a worker of the run's pool (thread isolation, watched for a timeout
//! by the one watchdog) or the main thread of a child process (process isolation) is decided
//! elsewhere (`pool`, `schedule`, `isolate`); this module only turns a test into an [`Attempt`].

use crate::call::TestCall;
use crate::fixture::{Shared, runtime};
use crate::measure::figures::Metrics;
use crate::measure::{self, Snapshot, heap};
use crate::outcome::{Attempt, Outcome, Phases};
use crate::panic::install_panic_hook;
use crate::registry::TestCase;

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
    let _current = crate::fixture::CurrentTest::enter(test.name);
    if let Some(skip_if) = test.settings.skip_if
        && (skip_if.condition)()
    {
        return Attempt::bare(Outcome::Skipped { reason: skip_if.reason.to_string() });
    }
    let fixtures = !test.def.fixtures.is_empty();
    if fixtures {
        // The fixture runtime's threads are the harness's allocations, not the test's.
        let _ = runtime();
    }
    heap::reset_peak();
    let start = Snapshot::take();
    let mut call = TestCall::new(shared, test.suite(), start, fixtures);
    let _ = (test.def.run)(&mut call);
    // Setup failed or skipped: the body never ran, so its phase is empty.
    let after_setup = call.marks[1].unwrap_or_else(Snapshot::take);
    let after_call = call.marks[2].unwrap_or(after_setup);
    let figures = call.setup.test.get::<Metrics>().map(|m| m.figures()).unwrap_or_default();
    let mut errors = call.setup.test.teardown_all();
    // No fixtures, nothing torn down: the teardown boundary is the end of the body.
    let after_teardown = if fixtures { Snapshot::take() } else { after_call };
    let peak_heap = if measure::enabled() { heap::peak() } else { None };
    let mut measurements = measure::between([start, after_setup, after_call, after_teardown], peak_heap);
    measurements.figures = figures.into();
    if teardown.suite
        && let Some(mut store) = shared.lock_suites().remove(test.suite())
    {
        errors.extend(store.teardown_all());
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
