//! The run's worker pool: `--test-threads` workers run the selected tests inline, in
//! libtest's order, while libtest-mimic — on one thread — prints each result as it is ready.
//!
//! Why the harness owns its workers: a timed test should run inline (no thread and no
//! cross-thread hand-off per test) with one watchdog for every deadline, and a test that never
//! returns must not stop the run. libtest-mimic joins every worker it starts, so a hung test
//! on its pool would hang the run; on ours the watchdog gives the test up at its deadline and
//! starts a worker in its place that reports it timed out (and retries it, if it may) and goes
//! on with the queue, while the hung thread is left alone.
//!
//! libtest-mimic stays the interface: `--list`, filters, formats, the summary line and the
//! exit conclusion. Each trial's runner only waits for its result here. The waiting side is
//! woken in batches (every [`BATCH`] results, when the one it waits for took a while, or at
//! the latest after [`LATENCY`]), so 10,000 trivial tests cost a few hundred wake-ups, not
//! 10,000.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Condvar, Mutex, OnceLock, PoisonError, Weak};
use std::time::{Duration, Instant};

use crate::registry::TestCase;
use crate::run::schedule::{Reply, Resume, RunCtx};
use crate::run::watchdog::{Watch, Watchdog};

/// Results between two wake-ups of the printing thread.
const BATCH: usize = 64;
/// A result that took this long is printed at once, not batched.
const WORTH_WAKING: Duration = Duration::from_millis(1);
/// The printing thread looks again at least this often.
const LATENCY: Duration = Duration::from_millis(20);

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The pool of one run.
pub(crate) struct Pool {
    ctx: Arc<RunCtx>,
    tests: Arc<Vec<TestCase>>,
    /// Per job, the test it runs (an index into `tests`), in the order libtest asks.
    jobs: OnceLock<Vec<usize>>,
    results: OnceLock<Box<[Mutex<Option<Reply>>]>>,
    next: AtomicUsize,
    completed: AtomicUsize,
    /// The printing thread wants waking when `completed` reaches this.
    wake_at: AtomicUsize,
    /// The job the printing thread waits for.
    wanted: AtomicUsize,
    lock: Mutex<()>,
    ready: Condvar,
    dog: OnceLock<Arc<Watchdog<Resume>>>,
    threads: Mutex<Vec<std::thread::JoinHandle<()>>>,
    /// Worker threads started; none means the printing thread runs the jobs itself.
    workers: AtomicUsize,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("next", &self.next.load(SeqCst))
            .field("completed", &self.completed.load(SeqCst))
            .finish_non_exhaustive()
    }
}

impl Pool {
    /// A pool for `ctx`'s run over `tests`; nothing runs before [`Pool::start`].
    pub(crate) fn new(ctx: Arc<RunCtx>, tests: Arc<Vec<TestCase>>) -> Arc<Pool> {
        Arc::new(Pool {
            ctx,
            tests,
            jobs: OnceLock::new(),
            results: OnceLock::new(),
            next: AtomicUsize::new(0),
            completed: AtomicUsize::new(0),
            wake_at: AtomicUsize::new(usize::MAX),
            wanted: AtomicUsize::new(usize::MAX),
            lock: Mutex::new(()),
            ready: Condvar::new(),
            dog: OnceLock::new(),
            threads: Mutex::new(Vec::new()),
            workers: AtomicUsize::new(0),
        })
    }

    /// Starts `workers` threads over `jobs` (indices into the tests, in the order libtest will
    /// wait for them), and the watchdog when a thread-isolated test has a timeout.
    pub(crate) fn start(self: &Arc<Self>, jobs: Vec<usize>, workers: usize) {
        let watched = jobs.iter().any(|&i| {
            let test = &self.tests[i];
            self.ctx.isolation_of(test) == crate::registry::Isolation::Thread
                && (test.settings.timeout.is_some() || self.ctx.options.timeout.is_some())
        });
        let results = (0..jobs.len()).map(|_| Mutex::new(None)).collect();
        let workers = workers.clamp(1, jobs.len().max(1));
        let _ = self.results.set(results);
        let _ = self.jobs.set(jobs);
        if watched {
            let pool = Arc::downgrade(self);
            match Watchdog::start(Box::new(move |state| take_over(&pool, state))) {
                Ok((dog, thread)) => {
                    let _ = self.dog.set(dog);
                    lock(&self.threads).push(thread);
                }
                // Without a watchdog the timed tests still run; they just cannot be given up.
                Err(err) => eprintln!("warning: failed to start the timeout watchdog: {err}"),
            }
        }
        for _ in 0..workers {
            let pool = Arc::clone(self);
            let spawned = std::thread::Builder::new().name("reliability-worker".into()).spawn(move || pool.work(None));
            match spawned {
                Ok(thread) => {
                    self.workers.fetch_add(1, SeqCst);
                    lock(&self.threads).push(thread);
                }
                Err(err) => eprintln!("warning: failed to start a test thread: {err}"),
            }
        }
    }

    /// The result of job `job`, once it is ready (the runner of its libtest trial).
    pub(crate) fn wait(&self, job: usize) -> Reply {
        let results = self.results.get().map(|r| &r[..]).unwrap_or_default();
        let Some(slot) = results.get(job) else { return Err("the harness has no such job".into()) };
        loop {
            if let Some(reply) = lock(slot).take() {
                return reply;
            }
            // No worker could be started: run the jobs up to this one here.
            if self.workers.load(SeqCst) == 0 {
                self.work_until(job);
                continue;
            }
            let guard = lock(&self.lock);
            self.wanted.store(job, SeqCst);
            let total = results.len();
            self.wake_at.store((self.completed.load(SeqCst) + BATCH).min(total), SeqCst);
            if let Some(reply) = lock(slot).take() {
                self.wake_at.store(usize::MAX, SeqCst);
                return reply;
            }
            drop(self.ready.wait_timeout(guard, LATENCY).unwrap_or_else(PoisonError::into_inner));
            self.wake_at.store(usize::MAX, SeqCst);
        }
    }

    /// Stops the watchdog and joins the workers that finished (a hung test's thread is left).
    pub(crate) fn finish(&self) {
        if let Some(dog) = self.dog.get() {
            dog.stop();
        }
        let threads = std::mem::take(&mut *lock(&self.threads));
        for thread in threads {
            if thread.is_finished() {
                let _ = thread.join();
            }
        }
    }

    fn jobs(&self) -> &[usize] {
        self.jobs.get().map(|j| &j[..]).unwrap_or_default()
    }

    /// A worker: first the test it takes over (if any), then jobs from the queue until none is
    /// left or its own test is taken over.
    fn work(self: Arc<Self>, resume: Option<Resume>) {
        let watch = self.dog.get().map(|dog| dog.watch());
        let watch = watch.as_deref();
        if let Some(state) = resume {
            let job = state.job;
            let test = &self.tests[self.jobs()[job]];
            let started = Instant::now();
            let reply = guarded(test, || self.ctx.resume_test(test, state, watch));
            match reply {
                Some(reply) => self.complete(job, reply, started),
                None => return,
            }
        }
        loop {
            let job = self.next.fetch_add(1, SeqCst);
            // Out of jobs, or taken over at a timeout: another thread carries the queue on.
            if job >= self.jobs().len() || !self.run_job(job, watch) {
                return;
            }
        }
    }

    /// Runs queued jobs on this thread until `job` has been taken (no worker thread).
    fn work_until(&self, job: usize) {
        while self.next.load(SeqCst) <= job {
            let next = self.next.fetch_add(1, SeqCst);
            if next >= self.jobs().len() {
                return;
            }
            self.run_job(next, None);
        }
    }

    /// Runs job `job` on this thread; `false` when the watchdog took it over (this thread was
    /// abandoned and must stop).
    fn run_job(&self, job: usize, watch: Option<&Watch<Resume>>) -> bool {
        let test = &self.tests[self.jobs()[job]];
        let started = Instant::now();
        match guarded(test, || self.ctx.run_test(job, test, watch)) {
            Some(reply) => {
                self.complete(job, reply, started);
                true
            }
            None => false,
        }
    }

    fn complete(&self, job: usize, reply: Reply, started: Instant) {
        let results = self.results.get().map(|r| &r[..]).unwrap_or_default();
        if let Some(slot) = results.get(job) {
            *lock(slot) = Some(reply);
        }
        let completed = self.completed.fetch_add(1, SeqCst) + 1;
        let wanted_now = self.wanted.load(SeqCst) == job && started.elapsed() >= WORTH_WAKING;
        if completed >= self.wake_at.load(SeqCst) || wanted_now {
            let _guard = lock(&self.lock);
            self.ready.notify_one();
        }
    }
}

/// Runs one test's scheduling, turning a panic of the harness itself into the test's failure
/// (a worker must never die with its job unanswered: the printing thread waits for it).
fn guarded(test: &TestCase, run: impl FnOnce() -> Option<Reply>) -> Option<Reply> {
    std::panic::catch_unwind(AssertUnwindSafe(run)).unwrap_or_else(|panic| {
        let message = crate::panic::panic_message(&*panic);
        Some(Err(format!("the harness panicked while running {}: {message}", test.name).into()))
    })
}

/// The watchdog gave up on an attempt: a new worker reports it timed out, retries it if it
/// may, and goes on with the queue in the abandoned worker's place.
fn take_over(pool: &Weak<Pool>, state: Resume) {
    let Some(pool) = pool.upgrade() else { return };
    let job = state.job;
    let worker = Arc::clone(&pool);
    let state = Arc::new(Mutex::new(Some(state)));
    let handed = Arc::clone(&state);
    let spawned = std::thread::Builder::new().name("reliability-worker".into()).spawn(move || {
        let state = lock(&handed).take();
        worker.work(state);
    });
    match spawned {
        Ok(thread) => lock(&pool.threads).push(thread),
        Err(err) => {
            // No thread to carry it on: report it timed out from here, without its retries.
            eprintln!("warning: failed to start a thread to go on after a timeout: {err}");
            let Some(state) = lock(&state).take() else { return };
            let test = &pool.tests[pool.jobs()[job]];
            let reply = pool.ctx.give_up(test, state);
            pool.complete(job, reply, Instant::now());
        }
    }
}
