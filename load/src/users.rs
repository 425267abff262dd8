//! The closed model (Locust's users, k6's `constant-vus`): `users` virtual users, started at
//! `spawn-rate` per second, each looping — one iteration (a scenario drawn by weight: the
//! weighted tasks), then `think-time` — until the duration is over. The load follows the
//! target: a slow answer delays the user's next iteration. Latency runs from each iteration's
//! start, and nothing is missed (there is no schedule to miss).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::run::{Counts, Figures, Outcome, Second, Segment, Shared, histogram, second};

/// The closed model's settings.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Users {
    /// Virtual users.
    pub users: u64,
    /// Users started per second.
    pub spawn_rate: f64,
    /// How long, from the first user's start.
    pub duration: Duration,
    /// Pause after each iteration.
    pub think: Duration,
}

/// Sleeps until `until` (from `origin`) in slices, returning false when `stop` was set.
fn wait(origin: Instant, until: Duration, stop: &AtomicBool) -> bool {
    loop {
        if stop.load(Ordering::Acquire) {
            return false;
        }
        let now = origin.elapsed();
        if now >= until {
            return true;
        }
        std::thread::sleep((until - now).min(Duration::from_millis(20)));
    }
}

/// Runs the users; `iteration(i)` does iteration `i` (indices unique across users).
pub fn run<F>(
    u: &Users,
    scenarios: usize,
    spans_of: &(dyn Fn(u64) -> u64 + Sync),
    stop: &AtomicBool,
    segment: Segment,
    iteration: F,
) -> Figures
where
    F: Fn(u64) -> Outcome + Sync,
{
    let shared = Mutex::new(Shared::new(scenarios));
    let next = AtomicU64::new(0);
    let generated = AtomicU64::new(0);
    let started_per_second: Mutex<Vec<Second>> = Mutex::new(Vec::new());
    let origin = Instant::now();
    let iteration = &iteration;
    std::thread::scope(|scope| {
        for user in (0..u.users).filter(|u| segment.owns(*u)) {
            let (shared, next, generated, started_per_second) = (&shared, &next, &generated, &started_per_second);
            scope.spawn(move || {
                let spawn_at = Duration::from_secs_f64(user as f64 / u.spawn_rate.max(1e-9));
                if spawn_at >= u.duration || !wait(origin, spawn_at, stop) {
                    return;
                }
                loop {
                    let begun = origin.elapsed();
                    if begun >= u.duration || stop.load(Ordering::Acquire) {
                        return;
                    }
                    // Indices unique across segments: this segment's k-th iteration.
                    let i = next.fetch_add(1, Ordering::AcqRel) * segment.count + segment.index;
                    generated.fetch_add(spans_of(i), Ordering::AcqRel);
                    {
                        let mut per = started_per_second.lock().unwrap_or_else(PoisonError::into_inner);
                        let sec = second(&mut per, begun);
                        sec.offered += 1;
                        sec.started += 1;
                    }
                    let outcome = iteration(i);
                    shared.lock().unwrap_or_else(PoisonError::into_inner).record(&outcome, begun, origin.elapsed());
                    let rest = origin.elapsed() + u.think;
                    if !u.think.is_zero() && !wait(origin, rest.min(u.duration), stop) {
                        return;
                    }
                }
            });
        }
    });
    let started = next.load(Ordering::Acquire);
    let counts = Counts {
        offered: started,
        interrupted: stop.load(Ordering::Acquire),
        started,
        missed: 0,
        generated_spans: generated.load(Ordering::Acquire),
    };
    let per = started_per_second.into_inner().unwrap_or_else(PoisonError::into_inner);
    shared.into_inner().unwrap_or_else(PoisonError::into_inner).into_figures(counts, per, histogram(), origin.elapsed())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run::Status;

    /// Each user's iterations are serial: with 3 users and iterations that record their own
    /// overlap, no more than 3 ever run at once, and every iteration is counted once.
    #[test]
    fn users_loop_serially_and_every_iteration_counts() {
        let running = std::sync::atomic::AtomicUsize::new(0);
        let peak = std::sync::atomic::AtomicUsize::new(0);
        let users = Users {
            users: 3,
            spawn_rate: 1000.0,
            duration: Duration::from_millis(300),
            think: Duration::from_millis(1),
        };
        let f = run(&users, 2, &|_| 4, &AtomicBool::new(false), Segment::default(), |i| {
            let now = running.fetch_add(1, Ordering::AcqRel) + 1;
            peak.fetch_max(now, Ordering::AcqRel);
            std::thread::sleep(Duration::from_millis(2));
            running.fetch_sub(1, Ordering::AcqRel);
            Outcome { status: Status::Ok, spans: 4, rejected: 0, bytes: 10, scenario: (i % 2) as usize }
        });
        assert!(peak.load(Ordering::Acquire) <= 3);
        assert!(f.started > 0);
        assert_eq!((f.offered, f.missed), (f.started, 0));
        assert_eq!(f.completed(), f.started);
        assert_eq!(f.generated_spans, 4 * f.started);
        let per_second: u64 = f.seconds.iter().map(|s| s.started).sum();
        assert_eq!(per_second, f.started);
    }

    /// A stop ends every user; what they had started is counted.
    #[test]
    fn a_stop_ends_every_user() {
        let stop = AtomicBool::new(false);
        let users =
            Users { users: 4, spawn_rate: 2.0, duration: Duration::from_secs(3600), think: Duration::from_millis(5) };
        let f = run(&users, 1, &|_| 1, &stop, Segment::default(), |i| {
            if i >= 20 {
                stop.store(true, Ordering::Release);
            }
            Outcome { status: Status::Ok, spans: 1, rejected: 0, bytes: 1, scenario: 0 }
        });
        assert!(f.interrupted);
        assert!(f.started >= 21);
        assert_eq!(f.completed(), f.started);
    }
}
