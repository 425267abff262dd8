//! Scheduling: when a test may start, where it runs, how often it is tried, and what its
//! final outcome is.
//!
//! libtest-mimic's worker pool (`--test-threads`) calls [`RunCtx::run_test`] once per test.
//! On top of it: [`Slots`], a first-come-first-served weighted semaphore sized to the pool,
//! gives `serial` tests (and `slow` ones, by default) every slot, so load and latency tests
//! have the machine alone, and lets a test claim `threads = N` slots; `--maxfail` and
//! interrupts turn tests that have not started into *not run*; retries make *flaky* outcomes.
//!
//! Each final [`TestReport`] is sent down one channel to the reporters; nothing else is
//! shared between workers but atomics and the fixture stores.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::Duration;

use libtest_mimic::{Completion, Failed};

use crate::config::options::RunOptions;
use crate::fixture::Shared;
use crate::outcome::{Attempt, Outcome, TestReport};
use crate::registry::{Isolation, TestCase};
use crate::run::capture::Captured;
use crate::run::execute::{Teardown, execute_with_timeout};
use crate::run::isolate::{ChildSpec, run_child};

/// A FIFO weighted semaphore: requests are served strictly in arrival order, so a serial
/// test waiting for every slot is not starved by small ones arriving after it.
#[derive(Debug)]
pub(crate) struct Slots {
    pub(crate) capacity: u32,
    state: Mutex<SlotState>,
    changed: Condvar,
}

#[derive(Debug)]
struct SlotState {
    free: u32,
    next_ticket: u64,
    serving: u64,
}

/// Held slots; released on drop.
#[derive(Debug)]
pub(crate) struct SlotGuard<'a> {
    slots: &'a Slots,
    held: u32,
}

impl Slots {
    pub(crate) fn new(capacity: u32) -> Slots {
        let capacity = capacity.max(1);
        Slots {
            capacity,
            state: Mutex::new(SlotState { free: capacity, next_ticket: 0, serving: 0 }),
            changed: Condvar::new(),
        }
    }

    /// Waits for `n` slots (at most the capacity, at least one).
    pub(crate) fn acquire(&self, n: u32) -> SlotGuard<'_> {
        let n = n.clamp(1, self.capacity);
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let ticket = state.next_ticket;
        state.next_ticket += 1;
        while !(state.serving == ticket && state.free >= n) {
            state = self.changed.wait(state).unwrap_or_else(PoisonError::into_inner);
        }
        state.free -= n;
        state.serving += 1;
        self.changed.notify_all();
        SlotGuard { slots: self, held: n }
    }
}

impl Drop for SlotGuard<'_> {
    fn drop(&mut self) {
        let mut state = self.slots.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.free += self.held;
        self.slots.changed.notify_all();
    }
}

/// Everything the workers share for one run.
#[derive(Debug)]
pub(crate) struct RunCtx {
    pub(crate) options: RunOptions,
    /// Started for one test by `--exact`: run it here, whatever its own isolation setting —
    /// unless it has a memory limit, which only a child process can enforce.
    pub(crate) in_process: bool,
    pub(crate) nocapture: bool,
    pub(crate) shared: Arc<Shared>,
    pub(crate) slots: Slots,
    pub(crate) failures: AtomicU32,
    pub(crate) interrupted: Arc<AtomicBool>,
    /// Thread-isolated tests still to finish, per suite: the last one tears the suite down.
    pub(crate) suite_remaining: Mutex<HashMap<String, usize>>,
    /// Where children ask for shared session fixtures (process isolation).
    pub(crate) share_socket: Option<PathBuf>,
    pub(crate) config_path: Option<PathBuf>,
    pub(crate) scratch: PathBuf,
    pub(crate) heap_profile_dir: Option<PathBuf>,
    pub(crate) events: Sender<TestReport>,
    /// The run's trace ids and attempt times, when the run is traced.
    pub(crate) trace: Option<Arc<crate::measure::trace::RunTrace>>,
    /// What runs now, when a progress line is drawn.
    pub(crate) live: Option<Arc<crate::run::live::Live>>,
}

impl RunCtx {
    /// Where `test` runs.
    pub(crate) fn isolation_of(&self, test: &TestCase) -> Isolation {
        if self.in_process {
            // An address-space limit on this multi-threaded process would hit libtest's
            // threads (glibc reserves 64 MiB per thread arena) before the test.
            return match test.settings.memory_limit_mb {
                Some(_) => Isolation::Process,
                None => Isolation::Thread,
            };
        }
        test.settings.isolation.unwrap_or(self.options.isolation)
    }

    fn stop_reason(&self) -> Option<String> {
        if self.interrupted.load(Ordering::SeqCst) {
            return Some("run interrupted".into());
        }
        let maxfail = self.options.maxfail?;
        (self.failures.load(Ordering::SeqCst) >= maxfail)
            .then(|| format!("stopped after {maxfail} failure(s) (--maxfail)"))
    }

    fn attempt(
        &self,
        test: &TestCase,
        isolation: Isolation,
        timeout: Option<Duration>,
        number: u32,
    ) -> (Attempt, Captured) {
        match isolation {
            Isolation::Thread => {
                (execute_with_timeout(test, &self.shared, Teardown::default(), timeout), Captured::default())
            }
            Isolation::Process => {
                let spec = ChildSpec {
                    test,
                    timeout,
                    nocapture: self.nocapture,
                    share_socket: self.share_socket.as_deref(),
                    config: self.config_path.as_deref(),
                    scratch: &self.scratch,
                    heap_profile: self.heap_profile_dir.as_deref(),
                    interrupted: &self.interrupted,
                    traceparent: self.trace.as_ref().map(|t| t.traceparent(&test.name, number)),
                };
                let run = run_child(&spec);
                (run.attempt, run.output)
            }
        }
    }

    /// Runs `test` with its retries; reports it; tells libtest what happened.
    pub(crate) fn run_test(&self, test: &TestCase) -> Result<Completion, Failed> {
        let isolation = self.isolation_of(test);
        if let Some(live) = &self.live {
            live.start(&test.name);
        }
        let (attempts, output) = match self.stop_reason() {
            Some(reason) => (vec![not_run(reason)], Captured::default()),
            None => self.run_attempts(test, isolation),
        };
        if let Some(live) = &self.live {
            live.finish(&test.name);
        }
        let mut outcome = final_outcome(&attempts);
        if isolation == Isolation::Thread {
            outcome = self.finish_suite(test, outcome);
        }
        if outcome.is_failure(self.options.flaky_fails) {
            self.failures.fetch_add(1, Ordering::SeqCst);
        }
        let report = TestReport {
            name: test.name.clone(),
            markers: test.markers.iter().map(|m| m.to_string()).collect(),
            outcome: outcome.clone(),
            attempts,
            output: output.text,
            output_bytes: output.bytes,
            isolation: isolation.label().to_string(),
        };
        let message = failure_message(&report);
        let _ = self.events.send(report);
        match outcome {
            o if o.is_failure(self.options.flaky_fails) => Err(message.into()),
            Outcome::Skipped { reason } | Outcome::NotRun { reason } => Ok(Completion::ignored_with(reason)),
            _ => Ok(Completion::Completed),
        }
    }

    fn run_attempts(&self, test: &TestCase, isolation: Isolation) -> (Vec<Attempt>, Captured) {
        let serial = test.settings.serial.unwrap_or_else(|| test.has_marker("slow"));
        let weight = if serial { u32::MAX } else { test.settings.threads.unwrap_or(1) };
        let _slots = self.slots.acquire(weight);
        // The run may have been stopped while this test waited for its slots.
        if let Some(reason) = self.stop_reason() {
            return (vec![not_run(reason)], Captured::default());
        }
        let retries = test.settings.retries.unwrap_or(self.options.reruns);
        let timeout = test.settings.timeout.and_then(|s| Duration::try_from_secs_f64(s).ok()).or(self.options.timeout);
        // Thread isolation beside other tests: process-wide figures are not this test's alone.
        let shared_process = isolation == Isolation::Thread && !serial && self.slots.capacity > 1;
        let mut attempts = Vec::new();
        loop {
            let number = attempts.len() as u32 + 1;
            let started = self.trace.as_ref().map(|_| std::time::SystemTime::now());
            let (mut attempt, output) = self.attempt(test, isolation, timeout, number);
            if let (Some(trace), Some(started)) = (&self.trace, started) {
                trace.record(&test.name, number, started, std::time::SystemTime::now());
            }
            attempt.measurements.shared = shared_process;
            let retry = attempt.outcome.is_retryable()
                && attempts.len() < retries as usize
                && !self.interrupted.load(Ordering::SeqCst);
            attempts.push(attempt);
            if !retry {
                return (attempts, output);
            }
            std::thread::sleep(self.options.reruns_delay);
        }
    }

    /// Thread isolation: the suite's last test tears the suite's fixtures down; a failure
    /// there is that test's error.
    fn finish_suite(&self, test: &TestCase, outcome: Outcome) -> Outcome {
        let last = {
            let mut remaining = self.suite_remaining.lock().unwrap_or_else(PoisonError::into_inner);
            match remaining.get_mut(test.suite()) {
                Some(n) => {
                    *n = n.saturating_sub(1);
                    *n == 0
                }
                None => false,
            }
        };
        if !last {
            return outcome;
        }
        let store = self.shared.lock_suites().remove(test.suite());
        let errors = store.map(|mut s| s.teardown_within(Some(self.options.fixture_bound()))).unwrap_or_default();
        if errors.is_empty() {
            return outcome;
        }
        let errors = errors.join("; ");
        match outcome {
            Outcome::Failed { message } => Outcome::Failed { message: format!("{message}\nand then: {errors}") },
            _ => Outcome::Error { message: errors },
        }
    }
}

fn not_run(reason: String) -> Attempt {
    Attempt::bare(Outcome::NotRun { reason })
}

/// The outcome after retries: a pass after failures is flaky.
pub(crate) fn final_outcome(attempts: &[Attempt]) -> Outcome {
    match attempts.last() {
        Some(last) if attempts.len() > 1 && last.outcome == Outcome::Passed => {
            Outcome::Flaky { attempts: attempts.len() as u32 }
        }
        Some(last) => last.outcome.clone(),
        None => Outcome::NotRun { reason: "no attempt was made".into() },
    }
}

fn failure_message(report: &TestReport) -> String {
    let mut message = report.outcome.describe();
    if report.attempts.len() > 1 {
        let tries: Vec<&str> = report.attempts.iter().map(|a| a.outcome.label()).collect();
        message.push_str(&format!("\nattempts: {}", tries.join(", ")));
    }
    if !report.output.is_empty() {
        message.push_str(&format!("\n---- output of {} ----\n{}", report.name, report.output.trim_end()));
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attempt(outcome: Outcome) -> Attempt {
        Attempt::bare(outcome)
    }

    #[test]
    fn retries_that_pass_are_flaky() {
        let failed = || attempt(Outcome::Failed { message: "x".into() });
        assert_eq!(final_outcome(&[failed(), attempt(Outcome::Passed)]), Outcome::Flaky { attempts: 2 });
        assert_eq!(final_outcome(&[attempt(Outcome::Passed)]), Outcome::Passed);
        assert_eq!(final_outcome(&[failed(), failed()]), Outcome::Failed { message: "x".into() });
    }

    #[test]
    fn slots_serve_in_order_and_serial_waits_for_all() {
        let slots = Arc::new(Slots::new(2));
        let order = Arc::new(Mutex::new(Vec::new()));
        let first = slots.acquire(1);
        let mut handles = Vec::new();
        for (name, weight) in [("serial", u32::MAX), ("small", 1)] {
            let (worker_slots, worker_order) = (Arc::clone(&slots), Arc::clone(&order));
            handles.push(std::thread::spawn(move || {
                let _g = worker_slots.acquire(weight);
                worker_order.lock().unwrap().push(name);
            }));
            // Make the arrival order deterministic.
            while slots.state.lock().unwrap().next_ticket < if name == "serial" { 2 } else { 3 } {
                std::thread::yield_now();
            }
        }
        // Both wait: serial (ticket 1) is being served but needs both slots, one is held;
        // small (ticket 2) may not pass it, though a slot is free.
        {
            let state = slots.state.lock().unwrap();
            assert_eq!((state.serving, state.free), (1, 1));
        }
        assert!(order.lock().unwrap().is_empty(), "serial must wait for the held slot, small must queue behind it");
        drop(first);
        for h in handles {
            h.join().unwrap();
        }
        assert_eq!(*order.lock().unwrap(), ["serial", "small"]);
    }
}
