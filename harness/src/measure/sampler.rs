//! Samples a child process's RSS and CPU% every 250 ms (from the parent, so the sampling
//! allocates nothing in the process it measures). Kept only for tests longer than a second.

use std::time::{Duration, Instant};

use sysinfo::{Pid, ProcessRefreshKind, ProcessesToUpdate, System};

use super::ResourceSample;

/// The sampling interval.
pub(crate) const INTERVAL: Duration = Duration::from_millis(250);
/// Tests shorter than this keep no series.
pub(crate) const MIN_DURATION: Duration = Duration::from_secs(1);

/// The sampler of one child.
pub(crate) struct Sampler {
    system: Option<System>,
    pid: Pid,
    started: Instant,
    next: Instant,
    pub(crate) samples: Vec<ResourceSample>,
}

impl std::fmt::Debug for Sampler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sampler").field("pid", &self.pid).field("samples", &self.samples.len()).finish()
    }
}

impl Sampler {
    pub(crate) fn new(pid: u32) -> Sampler {
        let now = Instant::now();
        let system = if super::enabled() { System::new().ok() } else { None };
        Sampler { system, pid: Pid::from_u32(pid), started: now, next: now + INTERVAL, samples: Vec::new() }
    }

    /// How long until the next sample is due.
    pub(crate) fn due_in(&self) -> Duration {
        self.next.saturating_duration_since(Instant::now())
    }

    /// Takes a sample if one is due.
    pub(crate) fn tick(&mut self) {
        let Some(system) = self.system.as_mut() else { return };
        let now = Instant::now();
        if now < self.next {
            return;
        }
        self.next = now + INTERVAL;
        let kind = ProcessRefreshKind::nothing().with_cpu().with_memory();
        system.refresh_processes_specifics(ProcessesToUpdate::Some(&[self.pid]), true, kind);
        if let Some(process) = system.process(self.pid) {
            self.samples.push(ResourceSample {
                t: (now - self.started).as_secs_f64(),
                rss_bytes: process.memory(),
                cpu_percent: process.cpu_usage(),
            });
        }
    }

    /// The series, if the test ran long enough to keep one.
    pub(crate) fn finish(self, elapsed: Duration) -> Vec<ResourceSample> {
        if elapsed >= MIN_DURATION { self.samples } else { Vec::new() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The rule, on given durations (the selftest cannot know how long a child took on a busy
    /// machine): a series only for tests that ran at least a second.
    #[test]
    fn short_tests_keep_no_series() {
        let sampled = || {
            let mut sampler = Sampler::new(std::process::id());
            sampler.samples.push(ResourceSample { t: 0.0, rss_bytes: 1, cpu_percent: 0.0 });
            sampler
        };
        assert!(sampled().finish(MIN_DURATION - Duration::from_millis(1)).is_empty());
        assert_eq!(sampled().finish(MIN_DURATION).len(), 1);
    }
}
