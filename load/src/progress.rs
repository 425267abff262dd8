//! Live progress while a run goes: elapsed and time left, offered against achieved rate, p99
//! of the last interval, errors and missed iterations. On a terminal, one bar redrawn in place
//! (indicatif); otherwise — CI logs — a plain line every 5 seconds.
//!
//! Fed by a wrapper around each iteration (counted at its start and end), so the generator
//! itself is untouched; what was offered so far comes from the schedule.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use crate::run::{Outcome, Status};
use crate::schedule::Profile;

/// Counters the iteration wrapper updates.
#[derive(Debug)]
pub struct Live {
    started: AtomicU64,
    completed: AtomicU64,
    errors: AtomicU64,
    spans: AtomicU64,
    window: Mutex<Histogram<u64>>,
}

impl Default for Live {
    fn default() -> Self {
        Live {
            started: AtomicU64::new(0),
            completed: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            spans: AtomicU64::new(0),
            window: Mutex::new(crate::run::histogram()),
        }
    }
}

impl Live {
    /// Runs `iteration`, counting it.
    pub fn around(&self, iteration: impl FnOnce() -> Outcome) -> Outcome {
        self.started.fetch_add(1, Ordering::Relaxed);
        let began = Instant::now();
        let outcome = iteration();
        self.window
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .saturating_record(began.elapsed().as_micros().max(1) as u64);
        if outcome.status != Status::Ok {
            self.errors.fetch_add(1, Ordering::Relaxed);
        }
        self.spans.fetch_add(outcome.spans, Ordering::Relaxed);
        self.completed.fetch_add(1, Ordering::Relaxed);
        outcome
    }
}

/// Due times before `t` (the open model's offered so far).
fn offered_by(profile: Option<&Profile>, t: Duration) -> Option<u64> {
    profile.map(|p| p.due_before(t))
}

/// A progress reporter on its own thread until [`Reporter::finish`].
#[derive(Debug)]
pub struct Reporter {
    done: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Reporter {
    /// Starts reporting on `live` for a run of `total` (the open model's profile gives the
    /// offered count; the closed model has none).
    pub fn start(name: &str, live: Arc<Live>, profile: Option<Profile>, total: Duration) -> Reporter {
        let done = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&done);
        let name = name.to_owned();
        let thread = std::thread::Builder::new()
            .name("load-progress".into())
            .spawn(move || report(&name, &live, profile.as_ref(), total, &flag))
            .ok();
        Reporter { done, thread }
    }

    /// Stops reporting.
    pub fn finish(mut self) {
        self.done.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn report(name: &str, live: &Live, profile: Option<&Profile>, total: Duration, done: &AtomicBool) {
    let tty = std::io::stderr().is_terminal();
    let bar = tty.then(|| {
        let bar = indicatif::ProgressBar::new(total.as_secs().max(1));
        if let Ok(style) =
            indicatif::ProgressStyle::with_template("{prefix} [{elapsed_precise} / ETA {eta}] {wide_msg}")
        {
            bar.set_style(style);
        }
        bar.set_prefix(name.to_owned());
        bar
    });
    let every = if tty { Duration::from_secs(1) } else { Duration::from_secs(5) };
    let origin = Instant::now();
    let mut last = (Duration::ZERO, 0u64);
    let mut next = origin + every;
    // Bounded: until the run ends (`done`).
    while !done.load(Ordering::Acquire) {
        std::thread::sleep(Duration::from_millis(50));
        if Instant::now() < next {
            continue;
        }
        next += every;
        let t = origin.elapsed();
        let completed = live.completed.load(Ordering::Relaxed);
        let rate = (completed - last.1) as f64 / (t - last.0).as_secs_f64().max(1e-9);
        last = (t, completed);
        let p99 = {
            let mut w = live.window.lock().unwrap_or_else(PoisonError::into_inner);
            let p99 = w.value_at_quantile(0.99) as f64 / 1e3;
            w.reset();
            p99
        };
        let started = live.started.load(Ordering::Relaxed);
        let offered = offered_by(profile, t);
        let offered_rate = offered.map_or(String::new(), |o| format!("offered {:.0}/s, ", o as f64 / t.as_secs_f64()));
        let missed = offered.map_or(String::new(), |o| format!(", missed {}", o.saturating_sub(started)));
        let message = format!(
            "{offered_rate}achieved {rate:.0}/s, p99 {p99:.1} ms, {} errors{missed}, {} spans",
            live.errors.load(Ordering::Relaxed),
            live.spans.load(Ordering::Relaxed)
        );
        match &bar {
            Some(bar) => {
                bar.set_position(t.as_secs().min(total.as_secs()));
                bar.set_message(message);
            }
            None => println!("  [{:>6.1} s / {:.0} s] {message}", t.as_secs_f64(), total.as_secs_f64()),
        }
    }
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wrapper_counts_what_it_wraps() {
        let live = Live::default();
        for i in 0..10u64 {
            live.around(|| Outcome {
                status: if i % 3 == 0 { Status::Timeout } else { Status::Ok },
                spans: 2,
                rejected: 0,
                bytes: 0,
                scenario: 0,
            });
        }
        assert_eq!(live.started.load(Ordering::Relaxed), 10);
        assert_eq!(live.completed.load(Ordering::Relaxed), 10);
        assert_eq!(live.errors.load(Ordering::Relaxed), 4);
        assert_eq!(live.spans.load(Ordering::Relaxed), 20);
        let p = Profile::constant(100.0, Duration::from_secs(1)).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(offered_by(Some(&p), Duration::from_millis(500)), Some(50));
    }
}
