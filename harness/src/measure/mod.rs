//! The metrics layer around every test: wall time, CPU time, allocation, peak RSS and a
//! resource time series, per phase (setup, call, teardown) where that makes sense.
//!
//! Sources, and why:
//! - CPU: `clock_gettime(CLOCK_PROCESS_CPUTIME_ID)`, the same user+system time of all threads
//!   that `getrusage(RUSAGE_SELF)` gives, with nanosecond resolution and a cheaper call (this
//!   runs four times per test, also for trivial ones). In process isolation the process *is* the
//!   test; in thread isolation with more than one test thread the figure is marked `shared`.
//! - Allocation: the counting allocator ([`CountingAlloc`]) or, with the `dhat-heap` feature,
//!   dhat's heap statistics. Heap growth is live bytes after the test's own fixtures are torn
//!   down minus live bytes before its setup.
//! - Peak RSS: `VmHWM` of the child process (process isolation only: a whole-process peak says
//!   nothing about one test among many).
//! - Resource series: the parent samples a child's RSS and CPU% with `sysinfo` every 250 ms, so
//!   the sampling allocates nothing in the process being measured.
//!
//! Everything here is a measurement; what tests record themselves lives in `figures`.

mod alloc;
pub mod figures;
pub(crate) mod heap;
pub(crate) mod sampler;
pub mod trace;

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

pub use alloc::{AllocCounters, CountingAlloc, counters, peak, reset_peak};
#[cfg(feature = "dhat-heap")]
pub use dhat;

use crate::measure::figures::SparseFigures;

/// Whether the metrics layer is on (`--no-metrics` turns it off, for overhead benchmarks).
static ENABLED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(true);

/// Turns the metrics layer on or off for this process.
pub(crate) fn set_enabled(on: bool) {
    ENABLED.store(on, std::sync::atomic::Ordering::Relaxed);
}

pub(crate) fn enabled() -> bool {
    ENABLED.load(std::sync::atomic::Ordering::Relaxed)
}

/// CPU time (user + system, all threads) of this process so far.
pub fn process_cpu_time() -> Duration {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_PROCESS_CPUTIME_ID).map(Duration::from).unwrap_or_default()
}

/// One phase boundary.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Snapshot {
    pub(crate) at: Instant,
    cpu: Duration,
    heap: Option<AllocCounters>,
}

impl Snapshot {
    pub(crate) fn take() -> Snapshot {
        if !enabled() {
            return Snapshot { at: Instant::now(), cpu: Duration::ZERO, heap: None };
        }
        Snapshot { at: Instant::now(), cpu: process_cpu_time(), heap: heap::counters() }
    }
}

/// A figure for each phase.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Phased<T> {
    /// Fixture setup.
    pub setup: T,
    /// The body.
    pub call: T,
    /// Test-scoped fixture teardown.
    pub teardown: T,
}

impl<T: Copy + std::ops::Add<Output = T>> Phased<T> {
    /// The sum over the phases.
    pub fn total(&self) -> T {
        self.setup + self.call + self.teardown
    }
}

/// One sample of the resource series.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct ResourceSample {
    /// Seconds since the test started.
    pub t: f64,
    /// Resident set size.
    pub rss_bytes: u64,
    /// CPU use since the previous sample, in percent of one core.
    pub cpu_percent: f32,
}

/// What the metrics layer measured for one attempt.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Measurements {
    /// CPU seconds (user + system) per phase.
    pub cpu_seconds: Phased<f64>,
    /// Bytes allocated per phase (`None` without a counting allocator).
    pub allocated_bytes: Option<Phased<u64>>,
    /// Allocations per phase.
    pub allocated_blocks: Option<Phased<u64>>,
    /// Live bytes after the test's teardown minus before its setup.
    pub heap_growth_bytes: Option<i64>,
    /// Highest live heap during the test.
    pub peak_heap_bytes: Option<u64>,
    /// Peak resident set size of the test's process (process isolation).
    pub peak_rss_bytes: Option<u64>,
    /// Process-wide figures were shared with concurrently running tests (thread isolation with
    /// more than one test thread): CPU, allocation and heap figures are not this test's alone.
    pub shared: bool,
    /// RSS and CPU% every 250 ms, for tests that ran longer than a second.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub series: Vec<ResourceSample>,
    /// Latencies, throughputs and values the test recorded.
    #[serde(default)]
    pub figures: SparseFigures,
}

/// Builds measurements from the four phase boundaries: before setup, after setup, after the
/// body, after test-scoped teardown.
pub(crate) fn between(marks: [Snapshot; 4], peak_heap: Option<u64>) -> Measurements {
    let [a, b, c, d] = marks;
    let secs = |x: &Snapshot, y: &Snapshot| y.cpu.saturating_sub(x.cpu).as_secs_f64();
    let mut m = Measurements {
        cpu_seconds: Phased { setup: secs(&a, &b), call: secs(&b, &c), teardown: secs(&c, &d) },
        ..Measurements::default()
    };
    if let (Some(ha), Some(hb), Some(hc), Some(hd)) = (a.heap, b.heap, c.heap, d.heap) {
        let bytes = |x: AllocCounters, y: AllocCounters| y.allocated_bytes.saturating_sub(x.allocated_bytes);
        let blocks = |x: AllocCounters, y: AllocCounters| y.allocated_blocks.saturating_sub(x.allocated_blocks);
        m.allocated_bytes = Some(Phased { setup: bytes(ha, hb), call: bytes(hb, hc), teardown: bytes(hc, hd) });
        m.allocated_blocks = Some(Phased { setup: blocks(ha, hb), call: blocks(hb, hc), teardown: blocks(hc, hd) });
        m.heap_growth_bytes = Some(hd.live_bytes as i64 - ha.live_bytes as i64);
        m.peak_heap_bytes = peak_heap;
    }
    m
}

/// Peak resident set size of this process (`VmHWM`), if the kernel reports it.
pub fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn thread_cpu_time() -> Duration {
        Duration::from(
            nix::time::clock_gettime(nix::time::ClockId::CLOCK_THREAD_CPUTIME_ID).expect("the thread CPU clock"),
        )
    }

    /// The process CPU clock counts at least the CPU this thread burned. The loop runs on the
    /// thread's CPU clock, not the wall clock: on a shared machine a wall-clock window gets an
    /// unknown share of a core. (That it does not advance with sleep is shown per test, in a
    /// process of its own, by the selftest's `fidelity::sleeps_300ms`; here other test threads
    /// of this binary may be busy.)
    #[test]
    fn process_cpu_time_counts_the_work_of_this_thread() {
        let (process_start, thread_start) = (process_cpu_time(), thread_cpu_time());
        let mut x = 0u64;
        while thread_cpu_time() - thread_start < Duration::from_millis(30) {
            for _ in 0..1000 {
                x = std::hint::black_box(x.wrapping_add(1));
            }
        }
        let burned = thread_cpu_time() - thread_start;
        let counted = process_cpu_time() - process_start;
        assert!(burned >= Duration::from_millis(30), "{burned:?}");
        assert!(counted >= burned, "process {counted:?} < this thread's {burned:?}");
    }

    #[test]
    fn peak_rss_is_read() {
        assert!(peak_rss_bytes().is_some_and(|b| b > 1024 * 1024));
    }
}
