//! One watchdog for every deadline of a run.
//!
//! A timed attempt runs inline on its worker thread. Before it starts, the worker hands the
//! state it would need afterwards (`S`) to its [`Watch`] and sets a deadline; when the attempt
//! returns, the worker takes the state back. If the deadline passes first, the watchdog takes
//! the state instead and hands it to `on_expired`, which carries the test on elsewhere; the
//! worker, if its attempt ever returns, finds the state gone and knows it was abandoned.
//! Whoever takes the state first wins: a mutex decides, so there is no window in which both
//! or neither think they own the test.
//!
//! Costs per timed attempt: two uncontended locks and a clock read — no thread, no wake-up.
//! The watchdog is woken only when a deadline comes earlier than the one it sleeps towards.

use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Condvar, Mutex, PoisonError, Weak};
use std::time::{Duration, Instant};

/// `planned` while the watchdog scans: a worker setting a deadline then must wake it.
const SCANNING: u64 = 0;
/// `planned` when no deadline is set.
const NOTHING: u64 = u64::MAX;

/// What the watchdog calls with the state of an attempt that ran past its deadline.
pub(crate) type OnExpired<S> = Box<dyn Fn(S) + Send + Sync>;

/// The watchdog: a thread that sleeps until the earliest deadline of its watches.
pub(crate) struct Watchdog<S> {
    base: Instant,
    watches: Mutex<Vec<Weak<Watch<S>>>>,
    /// The deadline the watchdog sleeps towards (nanoseconds since `base`).
    planned: AtomicU64,
    stopped: Mutex<bool>,
    wake: Condvar,
    on_expired: OnExpired<S>,
}

impl<S> std::fmt::Debug for Watchdog<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watchdog").field("planned", &self.planned.load(SeqCst)).finish_non_exhaustive()
    }
}

/// One worker's handle: the deadline of its current attempt and the state it handed over.
pub(crate) struct Watch<S> {
    dog: Arc<Watchdog<S>>,
    /// Nanoseconds since the watchdog's base; 0 when no attempt is watched.
    deadline: AtomicU64,
    state: Mutex<Option<S>>,
}

impl<S> std::fmt::Debug for Watch<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watch").field("deadline", &self.deadline.load(SeqCst)).finish_non_exhaustive()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl<S: Send + 'static> Watchdog<S> {
    /// Starts the watchdog's thread.
    pub(crate) fn start(on_expired: OnExpired<S>) -> std::io::Result<(Arc<Watchdog<S>>, std::thread::JoinHandle<()>)> {
        let dog = Arc::new(Watchdog {
            base: Instant::now(),
            watches: Mutex::new(Vec::new()),
            planned: AtomicU64::new(NOTHING),
            stopped: Mutex::new(false),
            wake: Condvar::new(),
            on_expired,
        });
        let thread = std::thread::Builder::new().name("reliability-watchdog".into()).spawn({
            let dog = Arc::clone(&dog);
            move || dog.run()
        })?;
        Ok((dog, thread))
    }

    /// A new worker's watch.
    pub(crate) fn watch(self: &Arc<Self>) -> Arc<Watch<S>> {
        let watch = Arc::new(Watch { dog: Arc::clone(self), deadline: AtomicU64::new(0), state: Mutex::new(None) });
        lock(&self.watches).push(Arc::downgrade(&watch));
        watch
    }

    /// Stops the thread (it finishes any hand-over it is making first).
    pub(crate) fn stop(&self) {
        *lock(&self.stopped) = true;
        self.wake.notify_all();
    }

    fn run(&self) {
        let mut stopped = lock(&self.stopped);
        loop {
            if *stopped {
                return;
            }
            self.planned.store(SCANNING, SeqCst);
            let now = self.now();
            let mut earliest = NOTHING;
            let mut expired = Vec::new();
            lock(&self.watches).retain(|watch| {
                let Some(watch) = watch.upgrade() else { return false };
                let deadline = watch.deadline.load(SeqCst);
                if deadline == 0 {
                    return true;
                }
                if deadline > now {
                    earliest = earliest.min(deadline);
                } else if let Some(state) = lock(&watch.state).take() {
                    watch.deadline.store(0, SeqCst);
                    expired.push(state);
                }
                true
            });
            self.planned.store(earliest, SeqCst);
            if !expired.is_empty() {
                // Not under the lock: a worker setting a deadline meanwhile must not wait on us.
                drop(stopped);
                for state in expired {
                    (self.on_expired)(state);
                }
                stopped = lock(&self.stopped);
                continue;
            }
            stopped = match earliest {
                NOTHING => self.wake.wait(stopped).unwrap_or_else(PoisonError::into_inner),
                at => {
                    let wait = Duration::from_nanos(at - now);
                    self.wake.wait_timeout(stopped, wait).unwrap_or_else(PoisonError::into_inner).0
                }
            };
        }
    }
}

impl<S> Watchdog<S> {
    fn now(&self) -> u64 {
        // +1: 0 means "no deadline".
        u64::try_from(self.base.elapsed().as_nanos()).unwrap_or(NOTHING - 1).saturating_add(1)
    }

    fn poke(&self) {
        let _stopped = lock(&self.stopped);
        self.wake.notify_one();
    }
}

impl<S> Watch<S> {
    /// Runs `body` here, watched: `Some` with its result and the state back when it returned in
    /// time, `None` when the watchdog took the state at the deadline (the caller was abandoned
    /// and must leave everything it shares alone).
    pub(crate) fn run<T>(&self, limit: Duration, state: S, body: impl FnOnce() -> T) -> Option<(T, S)> {
        *lock(&self.state) = Some(state);
        let dog = &self.dog;
        let deadline = dog.now().saturating_add(u64::try_from(limit.as_nanos()).unwrap_or(NOTHING)).min(NOTHING - 1);
        self.deadline.store(deadline, SeqCst);
        let planned = dog.planned.load(SeqCst);
        if planned == SCANNING || deadline < planned {
            dog.poke();
        }
        let out = body();
        let back = lock(&self.state).take();
        self.deadline.store(0, SeqCst);
        back.map(|state| (out, state))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    /// An attempt that returns in time gets its state back and nothing expires; one that does
    /// not return is handed to `on_expired` with its state, and learns of it when it returns.
    /// A watchdog that sends each expired state down a channel.
    fn reporting() -> (Arc<Watchdog<u32>>, std::thread::JoinHandle<()>, mpsc::Receiver<u32>) {
        let (tx, rx) = mpsc::channel::<u32>();
        let tx = Mutex::new(tx);
        let (dog, thread) = Watchdog::start(Box::new(move |state: u32| {
            let _ = lock(&tx).send(state);
        }))
        .expect("the watchdog starts");
        (dog, thread, rx)
    }

    #[test]
    fn the_first_to_take_the_state_owns_the_test() {
        let (dog, thread, expired_rx) = reporting();
        let watch = dog.watch();
        // In time: a generous limit, a body that returns at once.
        assert_eq!(watch.run(Duration::from_secs(3600), 1, || 10), Some((10, 1)));
        // Past the deadline: the body waits until the watchdog has handed the state over.
        let got = watch.run(Duration::from_millis(1), 2, || expired_rx.recv().expect("the state is handed over"));
        assert_eq!(got, None, "the worker learns that it was abandoned");
        // After that the watch works again for the next attempt.
        assert_eq!(watch.run(Duration::from_secs(3600), 3, || 30), Some((30, 3)));
        dog.stop();
        thread.join().expect("the watchdog stops");
        assert!(expired_rx.try_recv().is_err(), "only the attempt that overran expired");
    }

    /// Many watches, one short deadline among long ones: the short one wakes the watchdog
    /// although it sleeps towards a later deadline.
    #[test]
    fn an_earlier_deadline_wakes_the_watchdog() {
        let (dog, thread, rx) = reporting();
        let long = dog.watch();
        let short = dog.watch();
        std::thread::scope(|scope| {
            let (started_tx, started_rx) = mpsc::channel();
            let (release_tx, release_rx) = mpsc::channel::<()>();
            let long = &long;
            let handle = scope.spawn(move || {
                long.run(Duration::from_secs(3600), 7, || {
                    let _ = started_tx.send(());
                    let _ = release_rx.recv();
                })
            });
            started_rx.recv().expect("the long attempt started");
            // The watchdog now sleeps towards an hour from now; this deadline is 1 ms.
            let got = short.run(Duration::from_millis(1), 8, || rx.recv().expect("the short one expires"));
            assert_eq!(got, None);
            let _ = release_tx.send(());
            assert_eq!(handle.join().expect("joins"), Some(((), 7)), "the long attempt was left alone");
        });
        dog.stop();
        thread.join().expect("the watchdog stops");
    }
}
