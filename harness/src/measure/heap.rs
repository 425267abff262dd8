//! The heap figures' source: the counting allocator, or dhat with the `dhat-heap` feature.
//!
//! dhat's statistics exist only while a `dhat::Profiler` runs (one per process), so with that
//! feature a child process runs one around its test — writing a profile under
//! `target/reliability/dhat/` when `--heap-profile` asks for it — and a thread-isolated run
//! runs one for the whole process.

use std::path::PathBuf;

use super::AllocCounters;

/// A running heap profiler (dhat mode); nothing otherwise. Dropping it stops the profiler
/// (and writes its file, with `--heap-profile`).
#[derive(Debug)]
pub(crate) struct Profiler {
    #[cfg(feature = "dhat-heap")]
    _inner: dhat::Profiler,
}

impl Drop for Profiler {
    fn drop(&mut self) {
        // Before the inner profiler stops: dhat's statistics panic without one.
        mark_running(false);
    }
}

/// Starts dhat's profiler (dhat mode), writing its profile to `file` when given.
#[cfg(feature = "dhat-heap")]
pub(crate) fn start(file: Option<PathBuf>) -> Option<Profiler> {
    let builder = dhat::Profiler::builder();
    let inner = match file {
        Some(file) => builder.file_name(file).build(),
        None => builder.testing().build(),
    };
    mark_running(true);
    Some(Profiler { _inner: inner })
}

/// Without `dhat-heap` there is no profiler to start.
#[cfg(not(feature = "dhat-heap"))]
pub(crate) fn start(_file: Option<PathBuf>) -> Option<Profiler> {
    None
}

/// Whether `--heap-profile` can work in this build.
pub(crate) const PROFILES: bool = cfg!(feature = "dhat-heap");

static PROFILER_RUNNING: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Notes whether a profiler runs (dhat's statistics panic otherwise).
fn mark_running(running: bool) {
    PROFILER_RUNNING.store(running, std::sync::atomic::Ordering::SeqCst);
}

/// The allocation counters now, from whichever source this build has.
#[cfg(not(feature = "dhat-heap"))]
pub(crate) fn counters() -> Option<AllocCounters> {
    super::alloc::counters()
}

/// The allocation counters now, from whichever source this build has.
#[cfg(feature = "dhat-heap")]
pub(crate) fn counters() -> Option<AllocCounters> {
    if !PROFILER_RUNNING.load(std::sync::atomic::Ordering::SeqCst) {
        return None;
    }
    let stats = dhat::HeapStats::get();
    Some(AllocCounters {
        allocated_bytes: stats.total_bytes,
        allocated_blocks: stats.total_blocks,
        live_bytes: stats.curr_bytes as u64,
    })
}

/// Starts a peak window (counting allocator; dhat's peak is process-wide and not resettable).
pub(crate) fn reset_peak() {
    #[cfg(not(feature = "dhat-heap"))]
    super::alloc::reset_peak();
}

/// The peak since [`reset_peak`]: the counting allocator's, or dhat's process-wide peak.
pub(crate) fn peak() -> Option<u64> {
    #[cfg(not(feature = "dhat-heap"))]
    {
        super::alloc::counters().map(|_| super::alloc::peak())
    }
    #[cfg(feature = "dhat-heap")]
    {
        PROFILER_RUNNING.load(std::sync::atomic::Ordering::SeqCst).then(|| dhat::HeapStats::get().max_bytes as u64)
    }
}
