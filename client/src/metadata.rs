//! Bounded span metadata: the fix for the analysis's second critical problem (metadata kept per
//! span in a map that only a span's end cleared, so spans that never ended grew it without
//! bound).
//!
//! Entries are keyed by (trace id, span id) and hold string pairs. Three things remove one,
//! each counted: the span ends ([`SpanMetadata::end`], called by the pipeline's processor),
//! it is older than the TTL since it was last written or read (swept on every write and by
//! [`SpanMetadata::sweep`]), or the store is at its cap and a new entry needs room (the least
//! recently used goes). So `inserted = held + cleared + expired + evicted` at all times.
//!
//! Every method has an `_at(now)` form taking the time, so tests drive the clock themselves.

use std::collections::BTreeMap;
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use lru::LruCache;
use opentelemetry::trace::{SpanId, TraceId};
use serde::Serialize;

/// Limits of the store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MetadataLimits {
    /// Entries held at most (the analysis's default, 10,000).
    pub capacity: usize,
    /// An entry not written or read for this long is removed.
    pub ttl: Duration,
}

impl Default for MetadataLimits {
    fn default() -> Self {
        MetadataLimits { capacity: 10_000, ttl: Duration::from_secs(300) }
    }
}

/// Counts of the store; `inserted = held + cleared + expired + evicted`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct MetadataStats {
    /// Entries created (first write for a span).
    pub inserted: u64,
    /// Writes to an entry that existed.
    pub updated: u64,
    /// Entries removed because their span ended.
    pub cleared: u64,
    /// Entries removed by the TTL.
    pub expired: u64,
    /// Entries removed to make room under the cap (least recently used first).
    pub evicted: u64,
    /// Entries held now.
    pub held: u64,
    /// The most ever held at once.
    pub peak_held: u64,
}

#[derive(Debug)]
struct Entry {
    values: BTreeMap<String, String>,
    touched: Instant,
}

#[derive(Debug)]
struct Inner {
    cache: LruCache<(TraceId, SpanId), Entry>,
    ttl: Duration,
    stats: MetadataStats,
}

impl Inner {
    /// Removes, from the least recently used end, every entry past the TTL.
    fn expire(&mut self, now: Instant) {
        while let Some((_, entry)) = self.cache.peek_lru() {
            if now.saturating_duration_since(entry.touched) < self.ttl {
                break;
            }
            self.cache.pop_lru();
            self.stats.expired += 1;
        }
        self.stats.held = self.cache.len() as u64;
    }
}

/// The store. Cheap to share (`Arc`); every call holds a mutex for O(1) work (plus the
/// expired entries it removes).
#[derive(Debug)]
pub struct SpanMetadata {
    inner: Mutex<Inner>,
    /// Whether any entry was ever created: spans of an application that sets no metadata
    /// end without taking the lock.
    used: AtomicBool,
}

impl SpanMetadata {
    /// An empty store with these limits (a capacity of 0 is taken as 1).
    pub fn new(limits: MetadataLimits) -> SpanMetadata {
        let capacity = NonZeroUsize::new(limits.capacity).unwrap_or(NonZeroUsize::MIN);
        SpanMetadata {
            inner: Mutex::new(Inner {
                cache: LruCache::new(capacity),
                ttl: limits.ttl,
                stats: MetadataStats::default(),
            }),
            used: AtomicBool::new(false),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Sets `key` on a span's metadata.
    pub fn set(&self, trace: TraceId, span: SpanId, key: &str, value: &str) {
        self.set_at(trace, span, key, value, Instant::now());
    }

    /// [`SpanMetadata::set`] at `now`.
    pub fn set_at(&self, trace: TraceId, span: SpanId, key: &str, value: &str, now: Instant) {
        let mut inner = self.lock();
        inner.expire(now);
        if let Some(entry) = inner.cache.get_mut(&(trace, span)) {
            entry.values.insert(key.to_string(), value.to_string());
            entry.touched = now;
            inner.stats.updated += 1;
            return;
        }
        self.used.store(true, Ordering::Release);
        let values = BTreeMap::from([(key.to_string(), value.to_string())]);
        if inner.cache.push((trace, span), Entry { values, touched: now }).is_some() {
            // The key was new, so what came back is the least recently used, pushed out.
            inner.stats.evicted += 1;
        }
        inner.stats.inserted += 1;
        inner.stats.held = inner.cache.len() as u64;
        inner.stats.peak_held = inner.stats.peak_held.max(inner.stats.held);
    }

    /// A value of a span's metadata (a read keeps the entry alive).
    pub fn get(&self, trace: TraceId, span: SpanId, key: &str) -> Option<String> {
        self.get_at(trace, span, key, Instant::now())
    }

    /// [`SpanMetadata::get`] at `now`.
    pub fn get_at(&self, trace: TraceId, span: SpanId, key: &str, now: Instant) -> Option<String> {
        let mut inner = self.lock();
        inner.expire(now);
        let entry = inner.cache.get_mut(&(trace, span))?;
        entry.touched = now;
        entry.values.get(key).cloned()
    }

    /// The span ended: its metadata is removed and returned.
    pub fn end(&self, trace: TraceId, span: SpanId) -> Option<BTreeMap<String, String>> {
        if !self.used.load(Ordering::Acquire) {
            return None;
        }
        let mut inner = self.lock();
        let entry = inner.cache.pop(&(trace, span))?;
        inner.stats.cleared += 1;
        inner.stats.held = inner.cache.len() as u64;
        Some(entry.values)
    }

    /// Removes what the TTL says has expired.
    pub fn sweep(&self) {
        self.sweep_at(Instant::now());
    }

    /// [`SpanMetadata::sweep`] at `now`.
    pub fn sweep_at(&self, now: Instant) {
        self.lock().expire(now);
    }

    /// The counts now.
    pub fn stats(&self) -> MetadataStats {
        self.lock().stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(n: u64) -> (TraceId, SpanId) {
        (TraceId::from(u128::from(n) + 1), SpanId::from(n + 1))
    }

    fn balanced(s: &MetadataStats) -> bool {
        s.inserted == s.held + s.cleared + s.expired + s.evicted
    }

    #[test]
    fn hung_spans_expire_after_the_ttl_and_ended_ones_are_cleared() {
        let store = SpanMetadata::new(MetadataLimits { capacity: 100, ttl: Duration::from_secs(10) });
        let t0 = Instant::now();
        for n in 0..10 {
            let (trace, span) = ids(n);
            store.set_at(trace, span, "model", "m", t0);
        }
        let (trace, span) = ids(0);
        assert_eq!(store.end(trace, span).unwrap()["model"], "m");
        // Span 1 is read at t0 + 9 s, so it lives until t0 + 19 s; the others never end.
        let (t1, s1) = ids(1);
        assert_eq!(store.get_at(t1, s1, "model", t0 + Duration::from_secs(9)).as_deref(), Some("m"));
        store.sweep_at(t0 + Duration::from_secs(10));
        let s = store.stats();
        assert_eq!((s.inserted, s.cleared, s.expired, s.held), (10, 1, 8, 1));
        assert!(balanced(&s));
        store.sweep_at(t0 + Duration::from_secs(19));
        assert_eq!(store.stats().held, 0);
        assert_eq!(store.get_at(t1, s1, "model", t0 + Duration::from_secs(20)), None);
    }

    #[test]
    fn the_cap_holds_and_the_least_recently_used_go_first() {
        let store = SpanMetadata::new(MetadataLimits { capacity: 1_000, ttl: Duration::from_secs(3600) });
        let t0 = Instant::now();
        for n in 0..20_000 {
            let (trace, span) = ids(n);
            store.set_at(trace, span, "k", "v", t0);
            if n == 500 {
                // Span 0 is used again: it is no longer the least recently used.
                let (t, s) = ids(0);
                store.set_at(t, s, "k2", "v2", t0);
            }
        }
        let s = store.stats();
        assert_eq!((s.inserted, s.updated, s.held, s.peak_held, s.evicted), (20_000, 1, 1_000, 1_000, 19_000));
        assert!(balanced(&s));
        let (t, s0) = ids(0);
        assert_eq!(store.get_at(t, s0, "k2", t0), None, "evicted once 1,000 newer spans came");
        let (t, s) = ids(19_999);
        assert_eq!(store.get_at(t, s, "k", t0).as_deref(), Some("v"));
    }
}
