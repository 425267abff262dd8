//! Scheduling: when a test may start, where it runs, how often it is tried, and what its
//! final outcome is.
//!
//! The run's worker pool (`pool`, `--test-threads` workers) calls [`RunCtx::run_test`] once
//! per test; a test whose timed attempt overran is carried on by [`RunCtx::resume_test`].
//! On top of it: [`Slots`], a first-come-first-served weighted semaphore sized to the pool,
//! gives `serial` tests (and `slow` ones, by default) every slot, so load and latency tests
//! have the machine alone, and lets a test claim `threads = N` slots; `--maxfail` and
//! interrupts turn tests that have not started into *not run*; retries make *flaky* outcomes.
//!
//! Each final [`TestReport`] is appended to one vector the reporters read (`RunCtx::events`);
//! nothing else is shared between workers but atomics and the fixture stores.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::Duration;

use libtest_mimic::{Completion, Failed};

use crate::config::options::RunOptions;
use crate::fixture::Shared;
use crate::outcome::{Attempt, Outcome, Phases, TestReport};
use crate::registry::{Isolation, TestCase};
use crate::run::capture::Captured;
use crate::run::execute::{Teardown, execute};
use crate::run::isolate::{ChildSpec, run_child};
use crate::run::watchdog::Watch;

/// What a test tells libtest.
pub(crate) type Reply = Result<Completion, Failed>;

/// A test between two attempts: what its thread hands the watchdog before a timed attempt,
/// so that the test can be carried on elsewhere if the attempt never returns.
#[derive(Debug)]
pub(crate) struct Resume {
    /// The test's place in the pool's jobs.
    pub(crate) job: usize,
    /// The attempts made so far.
    attempts: Vec<Attempt>,
    /// The slots the test holds.
    weight: u32,
    /// When the watched attempt started (traced runs).
    started: Option<std::time::SystemTime>,
    /// The watched attempt's timeout.
    limit: Duration,
}

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
    /// Threads blocked in `acquire`: without any, nobody needs waking (a wake is a syscall).
    waiting: u32,
}

/// Held slots; released on drop.
#[derive(Debug)]
pub(crate) struct SlotGuard<'a> {
    slots: &'a Slots,
    pub(crate) held: u32,
}

impl Slots {
    pub(crate) fn new(capacity: u32) -> Slots {
        let capacity = capacity.max(1);
        Slots {
            capacity,
            state: Mutex::new(SlotState { free: capacity, next_ticket: 0, serving: 0, waiting: 0 }),
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
            state.waiting += 1;
            state = self.changed.wait(state).unwrap_or_else(PoisonError::into_inner);
            state.waiting -= 1;
        }
        state.free -= n;
        state.serving += 1;
        if state.waiting > 0 {
            self.changed.notify_all();
        }
        SlotGuard { slots: self, held: n }
    }

    /// Takes over `n` slots held by a guard that will never be dropped (its thread was
    /// abandoned at a timeout): no wait, no count change.
    pub(crate) fn adopt(&self, n: u32) -> SlotGuard<'_> {
        SlotGuard { slots: self, held: n }
    }
}

impl Drop for SlotGuard<'_> {
    fn drop(&mut self) {
        let mut state = self.slots.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.free += self.held;
        if state.waiting > 0 {
            self.slots.changed.notify_all();
        }
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
    /// Every final report, in the order tests finished. A vector sized to the run before it
    /// starts, not a channel: a channel's blocks held all 10,000 reports of a big run until
    /// its end, and collecting them copied them all once more.
    pub(crate) events: Mutex<Vec<TestReport>>,
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

    /// A child process's attempt (process isolation; the child enforces the timeout).
    fn child_attempt(&self, test: &TestCase, timeout: Option<Duration>, number: u32) -> (Attempt, Captured) {
        let spec = ChildSpec {
            test,
            timeout,
            nocapture: self.nocapture,
            share_socket: self.share_socket.as_deref(),
            config: self.config_path.as_deref(),
            scratch: &self.scratch,
            heap_profile: self.heap_profile_dir.as_deref(),
            interrupted: &self.interrupted,
            traceparent: self.trace.as_ref().map(|t| t.traceparent(test.name, number)),
        };
        let run = run_child(&spec);
        (run.attempt, run.output)
    }

    /// Runs `test` (job `job` of the pool) with its retries and reports it. `None` when the
    /// watchdog took the test over at a timeout: this thread was abandoned and must stop.
    pub(crate) fn run_test(&self, job: usize, test: &TestCase, watch: Option<&Watch<Resume>>) -> Option<Reply> {
        let isolation = self.isolation_of(test);
        if let Some(live) = &self.live {
            live.start(test.name);
        }
        if let Some(reason) = self.stop_reason() {
            return Some(self.conclude(test, isolation, vec![not_run(reason)], Captured::default()));
        }
        let weight = if serial(test) { u32::MAX } else { test.settings.threads.unwrap_or(1) };
        let slots = self.slots.acquire(weight);
        // The run may have been stopped while this test waited for its slots.
        if let Some(reason) = self.stop_reason() {
            return Some(self.conclude(test, isolation, vec![not_run(reason)], Captured::default()));
        }
        // Sized for the attempts it may make: a first push would reserve four (1.3 KB held by
        // every report until the run ends, for the one attempt most tests make).
        let attempts = Vec::with_capacity(self.retries(test).saturating_add(1).min(16));
        let state = Resume { job, attempts, weight: slots.held, started: None, limit: Duration::ZERO };
        let (attempts, output) = self.attempts_from(test, isolation, state, slots, watch)?;
        Some(self.conclude(test, isolation, attempts, output))
    }

    /// Carries on a test whose attempt the watchdog gave up on (on a thread of its own): the
    /// attempt timed out; retries, if any are left, run here.
    pub(crate) fn resume_test(
        &self,
        test: &TestCase,
        mut state: Resume,
        watch: Option<&Watch<Resume>>,
    ) -> Option<Reply> {
        let isolation = self.isolation_of(test);
        self.timed_out(test, isolation, &mut state);
        // The abandoned thread keeps its slots' guard forever; this thread holds them now.
        let slots = self.slots.adopt(state.weight);
        let (attempts, output) = self.attempts_from(test, isolation, state, slots, watch)?;
        Some(self.conclude(test, isolation, attempts, output))
    }

    /// Reports a test whose attempt timed out without retrying it (no thread could carry it on).
    pub(crate) fn give_up(&self, test: &TestCase, mut state: Resume) -> Reply {
        let isolation = self.isolation_of(test);
        self.timed_out(test, isolation, &mut state);
        self.conclude(test, isolation, state.attempts, Captured::default())
    }

    /// Records the watched attempt as timed out.
    fn timed_out(&self, test: &TestCase, isolation: Isolation, state: &mut Resume) {
        // Its thread may be stuck in a fixture's setup: tests waiting for that fixture must
        // not wait for a thread nobody will ever join.
        self.shared.abandon(test.name);
        let number = state.attempts.len() as u32 + 1;
        if let (Some(trace), Some(started)) = (&self.trace, state.started) {
            trace.record(test.name, number, started, std::time::SystemTime::now());
        }
        let mut attempt = Attempt {
            phases: Phases { call: state.limit, ..Phases::default() },
            ..Attempt::bare(Outcome::TimedOut { after: state.limit })
        };
        attempt.measurements.shared = self.shares_process(test, isolation);
        state.attempts.push(attempt);
    }

    /// Thread isolation beside other tests: process-wide figures are not this test's alone.
    fn shares_process(&self, test: &TestCase, isolation: Isolation) -> bool {
        isolation == Isolation::Thread && !serial(test) && self.slots.capacity > 1
    }

    /// How often `test` may be retried.
    fn retries(&self, test: &TestCase) -> usize {
        test.settings.retries.unwrap_or(self.options.reruns) as usize
    }

    /// Attempts `test` until it needs no retry, from the attempts made so far.
    fn attempts_from(
        &self,
        test: &TestCase,
        isolation: Isolation,
        mut state: Resume,
        slots: SlotGuard<'_>,
        watch: Option<&Watch<Resume>>,
    ) -> Option<(Vec<Attempt>, Captured)> {
        let retries = self.retries(test);
        let timeout = test.settings.timeout.and_then(|s| Duration::try_from_secs_f64(s).ok()).or(self.options.timeout);
        let shared_process = self.shares_process(test, isolation);
        let mut output = Captured::default();
        loop {
            if let Some(last) = state.attempts.last() {
                let retry = last.outcome.is_retryable()
                    && state.attempts.len() <= retries
                    && !self.interrupted.load(Ordering::SeqCst);
                if !retry {
                    drop(slots);
                    return Some((state.attempts, output));
                }
                std::thread::sleep(self.options.reruns_delay);
            }
            let number = state.attempts.len() as u32 + 1;
            let started = self.trace.as_ref().map(|_| std::time::SystemTime::now());
            let run = || execute(test, &self.shared, Teardown::default());
            let (mut attempt, captured) = match (isolation, timeout, watch) {
                (Isolation::Thread, Some(limit), Some(watch)) => {
                    state.started = started;
                    state.limit = limit;
                    match watch.run(limit, state, run) {
                        Some((attempt, back)) => {
                            state = back;
                            (attempt, Captured::default())
                        }
                        None => {
                            // Abandoned: the thread that took over released nothing of ours
                            // and holds these slots now.
                            std::mem::forget(slots);
                            return None;
                        }
                    }
                }
                (Isolation::Thread, _, _) => (run(), Captured::default()),
                (Isolation::Process, _, _) => self.child_attempt(test, timeout, number),
            };
            if let (Some(trace), Some(started)) = (&self.trace, started) {
                trace.record(test.name, number, started, std::time::SystemTime::now());
            }
            attempt.measurements.shared = shared_process;
            state.attempts.push(attempt);
            output = captured;
        }
    }

    /// The test's final outcome from its attempts: reported down the event stream, and
    /// returned as what libtest prints.
    fn conclude(&self, test: &TestCase, isolation: Isolation, attempts: Vec<Attempt>, output: Captured) -> Reply {
        if let Some(live) = &self.live {
            live.finish(test.name);
        }
        let mut outcome = final_outcome(&attempts);
        if isolation == Isolation::Thread {
            outcome = self.finish_suite(test, outcome);
        }
        let failed = outcome.is_failure(self.options.flaky_fails);
        if failed {
            self.failures.fetch_add(1, Ordering::SeqCst);
        }
        let report = TestReport {
            name: test.name.into(),
            markers: test.markers.iter().map(|m| m.to_string()).collect(),
            outcome,
            attempts,
            output: output.text,
            output_bytes: output.bytes,
            isolation: isolation.label().into(),
        };
        let reply = match &report.outcome {
            _ if failed => Err(failure_message(&report).into()),
            Outcome::Skipped { reason } | Outcome::NotRun { reason } => Ok(Completion::ignored_with(reason)),
            _ => Ok(Completion::Completed),
        };
        self.events.lock().unwrap_or_else(|e| e.into_inner()).push(report);
        reply
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

/// Whether `test` runs with the machine to itself (`serial`; `slow` tests by default).
fn serial(test: &TestCase) -> bool {
    test.settings.serial.unwrap_or_else(|| test.has_marker("slow"))
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
