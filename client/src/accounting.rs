//! Where every span went, counted where it happens, and the pipeline's health as Prometheus
//! text. See the crate docs for the identity.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;

/// Upper bounds of the export-duration histogram, seconds.
pub(crate) const EXPORT_BUCKETS: [f64; 12] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0];

/// Every counter the processor, exporter and HTTP client wrappers keep.
#[derive(Debug)]
pub(crate) struct Counters {
    pub(crate) ended: AtomicU64,
    pub(crate) after_shutdown: AtomicU64,
    /// The SDK's own drop count, read from its shutdown log (0 while our queue bound is on).
    pub(crate) dropped_sdk: AtomicU64,
    /// Refused by the pipeline's own bound on the queue, counted as it happens.
    pub(crate) dropped_queue_full: AtomicU64,
    /// Forwarded to the SDK's queue and not yet handed to the exporter: the queue's length now.
    pub(crate) queued: AtomicU64,
    /// The bound on `queued` (the configured queue size).
    pub(crate) queue_capacity: u64,
    pub(crate) handed_to_exporter: AtomicU64,
    pub(crate) exported_ok: AtomicU64,
    /// Failed exports' spans, by why: an error answer or no answer ...
    pub(crate) failed_error: AtomicU64,
    /// ... the exporter panicked (caught; the export thread lives on) ...
    pub(crate) failed_panic: AtomicU64,
    /// ... or the export thread is gone, so they can never be exported.
    pub(crate) failed_worker_gone: AtomicU64,
    pub(crate) in_export: AtomicU64,
    pub(crate) rejected: AtomicU64,
    /// Attribute values cut to the length limit (strings) or to its worth of elements (arrays).
    pub(crate) attributes_truncated: AtomicU64,
    /// NaN or infinite double attributes seen (kept: OTLP carries them).
    pub(crate) attributes_non_finite: AtomicU64,
    /// Export requests sent again after a retryable failure.
    pub(crate) export_retries: AtomicU64,
    /// When the last export call returned, ms since the Unix epoch (0: none yet).
    pub(crate) last_export_unix_ms: AtomicU64,
    /// The export thread died (a panic our catch did not see).
    pub(crate) worker_gone: AtomicBool,
    pub(crate) shutting_down: AtomicBool,
    /// Set by a wrapper that counts what is ended after it began shutting down itself
    /// ([`crate::sdk::ReferenceSdk`]): the processor then leaves those spans to it.
    pub(crate) closed: AtomicBool,
    pub(crate) shutdown_completed: AtomicBool,
    /// Read by `on_end` while it counts and forwards a span; written by shutdown and by an
    /// export thread that dies, so that no span is counted on the wrong side of either.
    pub(crate) ending: RwLock<()>,
    /// Duration of each export call, microseconds (bounded: the first 100,000).
    pub(crate) export_micros: Mutex<Vec<u64>>,
    /// Every export call's duration (`reliability_client_export_duration_seconds`).
    pub(crate) export_duration: prometheus::Histogram,
}

impl Counters {
    pub(crate) fn new(queue_capacity: u64) -> Counters {
        Counters {
            ended: AtomicU64::new(0),
            after_shutdown: AtomicU64::new(0),
            dropped_sdk: AtomicU64::new(0),
            dropped_queue_full: AtomicU64::new(0),
            queued: AtomicU64::new(0),
            queue_capacity,
            handed_to_exporter: AtomicU64::new(0),
            exported_ok: AtomicU64::new(0),
            failed_error: AtomicU64::new(0),
            failed_panic: AtomicU64::new(0),
            failed_worker_gone: AtomicU64::new(0),
            in_export: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
            attributes_truncated: AtomicU64::new(0),
            attributes_non_finite: AtomicU64::new(0),
            export_retries: AtomicU64::new(0),
            last_export_unix_ms: AtomicU64::new(0),
            worker_gone: AtomicBool::new(false),
            shutting_down: AtomicBool::new(false),
            closed: AtomicBool::new(false),
            shutdown_completed: AtomicBool::new(false),
            ending: RwLock::new(()),
            export_micros: Mutex::new(Vec::new()),
            export_duration: prometheus::Histogram::with_opts(
                prometheus::HistogramOpts::new(
                    "reliability_client_export_duration_seconds",
                    "Duration of each export call.",
                )
                .buckets(EXPORT_BUCKETS.to_vec()),
            )
            .unwrap_or_else(|e| panic!("client metrics: {e}")),
        }
    }

    /// Records one export call's duration.
    pub(crate) fn observe_export(&self, took: Duration) {
        let micros = took.as_micros() as u64;
        self.export_duration.observe(took.as_secs_f64());
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
        self.last_export_unix_ms.store(now, Ordering::SeqCst);
        let mut all = self.export_micros.lock().unwrap_or_else(PoisonError::into_inner);
        if all.len() < 100_000 {
            all.push(micros);
        }
    }
}

/// Where every span went. Each figure is counted where it happens (see the crate docs).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Accounting {
    /// Spans ended before shutdown.
    pub ended: u64,
    /// Accepted by the backend (2xx, not rejected).
    pub exported: u64,
    /// Rejected by the backend through `partial_success`.
    pub rejected: u64,
    /// Never exported: in batches whose export failed (error status, timeout, connection,
    /// a panicking exporter), or left with an export thread that died.
    pub failed: u64,
    /// Of `failed`: the exporter panicked.
    pub failed_panic: u64,
    /// Of `failed`: the export thread was gone.
    pub failed_worker_gone: u64,
    /// Refused by a full queue: the pipeline's own bound (counted as it happens) plus the
    /// SDK's own count (known at shutdown; 0 unless the bound is switched off).
    pub dropped: u64,
    /// Of `dropped`: the SDK's own count.
    pub dropped_sdk: u64,
    /// In an export call that had not returned (when shutdown gave up: a hanging backend).
    pub in_export: u64,
    /// In the queue now: forwarded to the SDK, not yet handed to the exporter. Must be 0 after
    /// a completed shutdown.
    pub queued: u64,
    /// The queue's bound.
    pub queue_capacity: u64,
    /// Ended after shutdown began (counted by the processor, or by the reference client once
    /// it began shutting down: the SDK skips them silently); not exported.
    pub after_shutdown: u64,
    /// Shutdown finished within its bound: the queue was drained and every export returned.
    pub shutdown_completed: bool,
    /// Export requests sent again after a retryable failure (not spans: not in the identity).
    pub export_retries: u64,
    /// Attribute values truncated to the length limit (not spans: not in the identity).
    pub attributes_truncated: u64,
    /// NaN or infinite double attributes passed on (not in the identity).
    pub attributes_non_finite: u64,
    /// When the last export call returned, ms since the Unix epoch (0: none yet).
    pub last_export_unix_ms: u64,
}

impl Accounting {
    /// `ended = exported + rejected + failed + dropped + in_export + queued`, and nothing
    /// left queued after a completed shutdown.
    pub fn is_balanced(&self) -> bool {
        self.unaccounted() == 0 && !(self.shutdown_completed && self.queued > 0)
    }

    /// Spans ended but found in no other term (negative: counted twice).
    pub fn unaccounted(&self) -> i64 {
        let placed = self.exported + self.rejected + self.failed + self.dropped + self.in_export + self.queued;
        self.ended as i64 - placed as i64
    }

    /// How full the queue is, 0 to 1.
    pub fn queue_utilisation(&self) -> f64 {
        if self.queue_capacity == 0 { 0.0 } else { self.queued as f64 / self.queue_capacity as f64 }
    }

    /// Seconds since the last export returned, as of `now_unix_ms`; `None` before the first.
    pub fn last_export_age_seconds(&self, now_unix_ms: u64) -> Option<f64> {
        (self.last_export_unix_ms > 0).then(|| now_unix_ms.saturating_sub(self.last_export_unix_ms) as f64 / 1e3)
    }

    pub(crate) fn from(c: &Counters) -> Accounting {
        let load = |a: &AtomicU64| a.load(Ordering::SeqCst);
        let ok = load(&c.exported_ok);
        let rejected = load(&c.rejected).min(ok);
        let dropped_sdk = load(&c.dropped_sdk);
        let (failed_error, failed_panic, failed_worker_gone) =
            (load(&c.failed_error), load(&c.failed_panic), load(&c.failed_worker_gone));
        Accounting {
            ended: load(&c.ended),
            exported: ok - rejected,
            rejected,
            failed: failed_error + failed_panic + failed_worker_gone,
            failed_panic,
            failed_worker_gone,
            dropped: load(&c.dropped_queue_full) + dropped_sdk,
            dropped_sdk,
            in_export: load(&c.in_export),
            // Spans the SDK dropped were forwarded into its queue and never handed on.
            queued: load(&c.queued).saturating_sub(dropped_sdk),
            queue_capacity: c.queue_capacity,
            after_shutdown: load(&c.after_shutdown),
            shutdown_completed: c.shutdown_completed.load(Ordering::SeqCst),
            export_retries: load(&c.export_retries),
            attributes_truncated: load(&c.attributes_truncated),
            attributes_non_finite: load(&c.attributes_non_finite),
            last_export_unix_ms: load(&c.last_export_unix_ms),
        }
    }
}

/// Renders an accounting as Prometheus text, via the `prometheus` crate: the spans by outcome
/// (`testbed_client_spans_total{outcome}`) and the pipeline's health
/// (`reliability_client_*`: drops and failures by reason, queue length, capacity and
/// utilisation, last export age, attribute limits).
pub fn render_metrics(a: &Accounting) -> String {
    let registry = prometheus::Registry::new();
    register_accounting(&registry, a, now_unix_ms());
    encode(&registry)
}

pub(crate) fn now_unix_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

pub(crate) fn encode(registry: &prometheus::Registry) -> String {
    use prometheus::Encoder as _;
    let mut out = Vec::new();
    let _ = prometheus::TextEncoder::new().encode(&registry.gather(), &mut out);
    String::from_utf8_lossy(&out).into_owned()
}

fn counter_vec(registry: &prometheus::Registry, name: &str, help: &str, labels: &[&str]) -> prometheus::IntCounterVec {
    let v = prometheus::IntCounterVec::new(prometheus::Opts::new(name, help), labels)
        .unwrap_or_else(|e| panic!("client metrics {name}: {e}"));
    let _ = registry.register(Box::new(v.clone()));
    v
}

fn gauge(registry: &prometheus::Registry, name: &str, help: &str, value: f64) {
    let g = prometheus::Gauge::new(name, help).unwrap_or_else(|e| panic!("client metrics {name}: {e}"));
    let _ = registry.register(Box::new(g.clone()));
    g.set(value);
}

pub(crate) fn register_accounting(registry: &prometheus::Registry, a: &Accounting, now_unix_ms: u64) {
    let spans = counter_vec(
        registry,
        "testbed_client_spans_total",
        "Spans of the client pipeline by where they went.",
        &["outcome"],
    );
    for (outcome, n) in [
        ("ended", a.ended),
        ("exported", a.exported),
        ("rejected", a.rejected),
        ("failed", a.failed),
        ("dropped", a.dropped),
        ("in_export", a.in_export),
        ("queued", a.queued),
        ("after_shutdown", a.after_shutdown),
    ] {
        spans.with_label_values(&[outcome]).inc_by(n);
    }
    let created =
        counter_vec(registry, "reliability_client_spans_created_total", "Spans ended by the application.", &[]);
    created.with_label_values::<&str>(&[]).inc_by(a.ended);
    let exported = counter_vec(registry, "reliability_client_spans_exported_total", "Spans the backend accepted.", &[]);
    exported.with_label_values::<&str>(&[]).inc_by(a.exported);
    let dropped = counter_vec(
        registry,
        "reliability_client_spans_dropped_total",
        "Spans dropped before export, by reason.",
        &["reason"],
    );
    dropped.with_label_values(&["queue_full"]).inc_by(a.dropped - a.dropped_sdk);
    dropped.with_label_values(&["sdk_queue_full"]).inc_by(a.dropped_sdk);
    dropped.with_label_values(&["after_shutdown"]).inc_by(a.after_shutdown);
    let failed = counter_vec(
        registry,
        "reliability_client_spans_failed_total",
        "Spans whose export failed, by reason.",
        &["reason"],
    );
    failed.with_label_values(&["export_error"]).inc_by(a.failed - a.failed_panic - a.failed_worker_gone);
    failed.with_label_values(&["exporter_panic"]).inc_by(a.failed_panic);
    failed.with_label_values(&["worker_gone"]).inc_by(a.failed_worker_gone);
    failed.with_label_values(&["rejected"]).inc_by(a.rejected);
    let attributes = counter_vec(
        registry,
        "reliability_client_attributes_limited_total",
        "Attribute values cut to the length limit (truncated) or passed on non-finite (non_finite).",
        &["kind"],
    );
    attributes.with_label_values(&["truncated"]).inc_by(a.attributes_truncated);
    attributes.with_label_values(&["non_finite"]).inc_by(a.attributes_non_finite);
    let retries = counter_vec(registry, "reliability_client_export_retries_total", "Export requests sent again.", &[]);
    retries.with_label_values::<&str>(&[]).inc_by(a.export_retries);
    gauge(registry, "reliability_client_queue_spans", "Spans in the queue now.", a.queued as f64);
    gauge(registry, "reliability_client_queue_capacity_spans", "The queue's bound.", a.queue_capacity as f64);
    gauge(
        registry,
        "reliability_client_queue_utilisation_ratio",
        "Queue length over its bound.",
        a.queue_utilisation(),
    );
    if let Some(age) = a.last_export_age_seconds(now_unix_ms) {
        gauge(registry, "reliability_client_last_export_age_seconds", "Time since the last export returned.", age);
    }
}

/// Adds the export-duration histogram (`reliability_client_export_duration_seconds`).
/// The accounting as of now and the export-duration histogram, from the counters (before
/// and after shutdown alike).
pub(crate) fn register_counters(registry: &prometheus::Registry, c: &Counters) {
    register_accounting(registry, &Accounting::from(c), now_unix_ms());
    register_export_histogram(registry, c);
}

fn register_export_histogram(registry: &prometheus::Registry, c: &Counters) {
    let _ = registry.register(Box::new(c.export_duration.clone()));
}
