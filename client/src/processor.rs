//! The span processor wrapper: counts spans reaching the pipeline, bounds the queue itself so
//! that a drop is counted the moment it happens (the SDK only says how many at shutdown),
//! limits attribute values, and reads the SDK's own drop count at shutdown.

use std::sync::atomic::Ordering;
use std::sync::{Arc, PoisonError};
use std::time::Duration;

use opentelemetry::{Array, Context, KeyValue, StringValue, Value};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{Span, SpanData, SpanProcessor};

use crate::accounting::Counters;
use crate::metadata;

/// Counts spans reaching the processor, bounds the queue, limits attributes, and reads the
/// SDK's drop count at shutdown.
#[derive(Debug)]
pub(crate) struct CountingProcessor<P> {
    pub(crate) inner: P,
    pub(crate) counters: Arc<Counters>,
    /// Cleared of a span's entry when the span ends.
    pub(crate) metadata: Arc<metadata::SpanMetadata>,
    /// The pipeline's own bound on the queue (off: the SDK's queue alone, which drops
    /// silently until shutdown — the analysed SDK).
    pub(crate) bound_queue: bool,
    /// Longest attribute value, bytes (0: no limit).
    pub(crate) max_attribute_bytes: usize,
}

impl<P: SpanProcessor> SpanProcessor for CountingProcessor<P> {
    fn on_start(&self, span: &mut Span, cx: &Context) {
        self.inner.on_start(span, cx);
    }

    fn on_end(&self, mut span: SpanData) {
        let c = &self.counters;
        // Held while the span is counted and forwarded; written once by shutdown and once if
        // the export thread dies, so no span is counted on the wrong side of either.
        let _ending = c.ending.read().unwrap_or_else(PoisonError::into_inner);
        if c.closed.load(Ordering::SeqCst) {
            // The wrapper counted it (the SDK may skip this call altogether once shut down).
            self.metadata.end(span.span_context.trace_id(), span.span_context.span_id());
            return;
        }
        if c.shutting_down.load(Ordering::SeqCst) {
            c.after_shutdown.fetch_add(1, Ordering::SeqCst);
            return;
        }
        c.ended.fetch_add(1, Ordering::SeqCst);
        self.metadata.end(span.span_context.trace_id(), span.span_context.span_id());
        if c.worker_gone.load(Ordering::SeqCst) {
            c.failed_worker_gone.fetch_add(1, Ordering::SeqCst);
            return;
        }
        self.limit_attributes(&mut span.attributes);
        let before = c.queued.fetch_add(1, Ordering::SeqCst);
        if self.bound_queue && before >= c.queue_capacity {
            c.queued.fetch_sub(1, Ordering::SeqCst);
            if c.dropped_queue_full.fetch_add(1, Ordering::SeqCst) == 0 {
                tracing::warn!(
                    target: "reliability_client",
                    capacity = c.queue_capacity,
                    "span queue full: spans are being dropped (each is counted in reliability_client_spans_dropped_total)"
                );
            }
            return;
        }
        self.inner.on_end(span);
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        {
            let _closed = self.counters.ending.write().unwrap_or_else(PoisonError::into_inner);
            self.counters.shutting_down.store(true, Ordering::SeqCst);
        }
        let capture = crate::capture::DropCountCapture::around_current(Arc::clone(&self.counters));
        tracing::dispatcher::with_default(&tracing::Dispatch::new(capture), || {
            self.inner.shutdown_with_timeout(timeout)
        })
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

impl<P> CountingProcessor<P> {
    /// Cuts string values longer than the limit (at a character boundary) and arrays to the
    /// elements that fit in it (8 bytes a number or bool); counts each value cut, and each
    /// NaN or infinite double (passed on: OTLP carries them).
    fn limit_attributes(&self, attributes: &mut [KeyValue]) {
        let max = self.max_attribute_bytes;
        for kv in attributes {
            let (cut, non_finite) = limit_value(&mut kv.value, max);
            if cut {
                self.counters.attributes_truncated.fetch_add(1, Ordering::Relaxed);
            }
            if non_finite > 0 {
                self.counters.attributes_non_finite.fetch_add(non_finite, Ordering::Relaxed);
            }
        }
    }
}

/// Limits one value to `max` bytes (0: no limit); whether it was cut, and how many
/// non-finite doubles it holds.
pub(crate) fn limit_value(value: &mut Value, max: usize) -> (bool, u64) {
    let non_finite = |v: &[f64]| v.iter().filter(|x| !x.is_finite()).count() as u64;
    let unlimited = max == 0;
    match value {
        Value::String(s) => {
            if unlimited || s.as_str().len() <= max {
                return (false, 0);
            }
            *s = StringValue::from(truncate(s.as_str(), max).to_string());
            (true, 0)
        }
        Value::F64(x) => (false, u64::from(!x.is_finite())),
        Value::Array(array) => {
            let elements = max / 8;
            let cut = match array {
                Array::Bool(v) => cut_to(v, elements, unlimited),
                Array::I64(v) => cut_to(v, elements, unlimited),
                Array::F64(v) => cut_to(v, elements, unlimited),
                Array::String(v) => !unlimited && cut_strings(v, max),
                _ => false,
            };
            let nan = if let Array::F64(v) = array { non_finite(v) } else { 0 };
            (cut, nan)
        }
        _ => (false, 0),
    }
}

fn cut_to<T>(v: &mut Vec<T>, elements: usize, unlimited: bool) -> bool {
    if unlimited || v.len() <= elements {
        return false;
    }
    v.truncate(elements);
    v.shrink_to_fit();
    true
}

/// Keeps the strings that fit in `max` bytes in all, the last one cut to what is left.
fn cut_strings(v: &mut Vec<StringValue>, max: usize) -> bool {
    let mut left = max;
    let mut keep = 0;
    let mut cut = false;
    for s in v.iter_mut() {
        if left == 0 {
            cut = true;
            break;
        }
        if s.as_str().len() > left {
            *s = StringValue::from(truncate(s.as_str(), left).to_string());
            cut = true;
            left = 0;
        } else {
            left -= s.as_str().len();
        }
        keep += 1;
    }
    if keep < v.len() {
        v.truncate(keep);
        v.shrink_to_fit();
        cut = true;
    }
    cut
}

/// The longest prefix of `s` of at most `max` bytes that ends at a character boundary.
fn truncate(s: &str, max: usize) -> &str {
    let mut end = max.min(s.len());
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_cut_to_the_limit_and_counted() {
        let mut s = Value::String("é".repeat(10).into());
        assert_eq!(limit_value(&mut s, 5), (true, 0));
        assert_eq!(s.as_str(), "éé", "cut at a character boundary, within 5 bytes");
        let mut short = Value::String("ok".into());
        assert_eq!(limit_value(&mut short, 5), (false, 0));
        let mut numbers = Value::Array(Array::I64((0..100).collect()));
        assert_eq!(limit_value(&mut numbers, 80), (true, 0));
        assert!(matches!(&numbers, Value::Array(Array::I64(v)) if v.len() == 10));
        let mut floats = Value::Array(Array::F64(vec![f64::NAN, 1.0, f64::INFINITY]));
        assert_eq!(limit_value(&mut floats, 80), (false, 2));
        assert_eq!(limit_value(&mut Value::F64(f64::NAN), 80), (false, 1));
        let mut strings = Value::Array(Array::String(vec!["abcd".into(), "efgh".into(), "ijkl".into()]));
        assert_eq!(limit_value(&mut strings, 6), (true, 0));
        assert!(
            matches!(&strings, Value::Array(Array::String(v)) if v.iter().map(|s| s.as_str()).collect::<Vec<_>>() == ["abcd", "ef"])
        );
        let mut unlimited = Value::String("x".repeat(1000).into());
        assert_eq!(limit_value(&mut unlimited, 0), (false, 0));
    }
}
