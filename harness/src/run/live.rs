//! What is running now, for the live progress line: tests started and not yet finished, with
//! when they started, and how many are done. Kept only when progress is drawn.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// The run as it goes.
#[derive(Debug, Default)]
pub struct Live {
    done: AtomicUsize,
    running: Mutex<HashMap<String, Instant>>,
}

impl Live {
    /// A test started.
    pub fn start(&self, test: &str) {
        self.running.lock().unwrap_or_else(std::sync::PoisonError::into_inner).insert(test.to_owned(), Instant::now());
    }

    /// A test finished.
    pub fn finish(&self, test: &str) {
        self.running.lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(test);
        self.done.fetch_add(1, Ordering::Relaxed);
    }

    /// Tests done.
    pub fn done(&self) -> usize {
        self.done.load(Ordering::Relaxed)
    }

    /// Tests running, longest first, with how long they have run.
    pub fn running(&self) -> Vec<(String, Duration)> {
        let running = self.running.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut out: Vec<(String, Duration)> = running.iter().map(|(n, t)| (n.clone(), t.elapsed())).collect();
        out.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        out
    }
}
