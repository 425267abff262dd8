//! The counting global allocator: exact bytes and blocks allocated, live bytes and a
//! resettable peak, from a few relaxed atomics around the system allocator.
//!
//! Installed in a test binary with one line, `reliability_harness::global_allocator!();`.
//! With the `dhat-heap` feature that line installs `dhat::Alloc` instead (see `measure::heap`).

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};

static ALLOCATED_BYTES: AtomicU64 = AtomicU64::new(0);
static ALLOCATED_BLOCKS: AtomicU64 = AtomicU64::new(0);
static LIVE_BYTES: AtomicU64 = AtomicU64::new(0);
static PEAK_BYTES: AtomicU64 = AtomicU64::new(0);
static INSTALLED: AtomicBool = AtomicBool::new(false);

/// A global allocator that counts, around [`System`].
#[derive(Debug, Default, Clone, Copy)]
pub struct CountingAlloc;

impl CountingAlloc {
    fn on_alloc(size: usize) {
        let size = size as u64;
        ALLOCATED_BYTES.fetch_add(size, Relaxed);
        ALLOCATED_BLOCKS.fetch_add(1, Relaxed);
        let live = LIVE_BYTES.fetch_add(size, Relaxed) + size;
        // Most allocations do not raise the peak: a plain load spares the read-modify-write
        // that every thread would otherwise contend for.
        if live > PEAK_BYTES.load(Relaxed) {
            PEAK_BYTES.fetch_max(live, Relaxed);
        }
        if !INSTALLED.load(Relaxed) {
            INSTALLED.store(true, Relaxed);
        }
    }

    fn on_dealloc(size: usize) {
        LIVE_BYTES.fetch_sub(size as u64, Relaxed);
    }
}

// SAFETY: every method forwards to `System` with the caller's arguments unchanged and only
// updates counters; it upholds `GlobalAlloc`'s contract exactly as `System` does.
#[expect(unsafe_code, reason = "a global allocator is an unsafe trait impl")]
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded unchanged.
        let ptr = unsafe { System.alloc(layout) };
        if !ptr.is_null() {
            Self::on_alloc(layout.size());
        }
        ptr
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded unchanged.
        let ptr = unsafe { System.alloc_zeroed(layout) };
        if !ptr.is_null() {
            Self::on_alloc(layout.size());
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded unchanged.
        unsafe { System.dealloc(ptr, layout) };
        Self::on_dealloc(layout.size());
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded unchanged.
        let new = unsafe { System.realloc(ptr, layout, new_size) };
        if !new.is_null() {
            Self::on_dealloc(layout.size());
            Self::on_alloc(new_size);
        }
        new
    }
}

/// The counters at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AllocCounters {
    /// Bytes allocated since start (never decreases).
    pub allocated_bytes: u64,
    /// Allocations since start.
    pub allocated_blocks: u64,
    /// Bytes live now.
    pub live_bytes: u64,
}

/// The counters now, or `None` when the counting allocator is not the global allocator.
pub fn counters() -> Option<AllocCounters> {
    INSTALLED.load(Relaxed).then(|| AllocCounters {
        allocated_bytes: ALLOCATED_BYTES.load(Relaxed),
        allocated_blocks: ALLOCATED_BLOCKS.load(Relaxed),
        live_bytes: LIVE_BYTES.load(Relaxed),
    })
}

/// Starts a new peak window at the current live size.
pub fn reset_peak() {
    PEAK_BYTES.store(LIVE_BYTES.load(Relaxed), Relaxed);
}

/// The highest live size since the last [`reset_peak`].
pub fn peak() -> u64 {
    PEAK_BYTES.load(Relaxed)
}

/// Installs the harness's global allocator: the counting allocator, or `dhat::Alloc` when the
/// harness is built with the `dhat-heap` feature. One line at the top of the test binary.
#[cfg(not(feature = "dhat-heap"))]
#[macro_export]
macro_rules! global_allocator {
    () => {
        #[global_allocator]
        static RELIABILITY_GLOBAL_ALLOCATOR: $crate::measure::CountingAlloc = $crate::measure::CountingAlloc;
    };
}

/// Installs the harness's global allocator: the counting allocator, or `dhat::Alloc` when the
/// harness is built with the `dhat-heap` feature. One line at the top of the test binary.
#[cfg(feature = "dhat-heap")]
#[macro_export]
macro_rules! global_allocator {
    () => {
        #[global_allocator]
        static RELIABILITY_GLOBAL_ALLOCATOR: $crate::measure::dhat::Alloc = $crate::measure::dhat::Alloc;
    };
}
