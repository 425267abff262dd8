//! Reads the SDK's drop count: it keeps the count private and reports it only in its own log
//! at shutdown (`BatchSpanProcessor.SpansDropped`, through `tracing`). A dispatcher scoped to
//! the shutdown call reads that event and passes every other event on to the application's.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use crate::accounting::Counters;

/// A `tracing` subscriber, scoped to the shutdown call, that reads the SDK's
/// `BatchSpanProcessor.SpansDropped` event and passes everything on to the dispatcher that was
/// in effect (the application's, or none).
pub(crate) struct DropCountCapture {
    inner: tracing::Dispatch,
    counters: Arc<Counters>,
}

const SDK_DROPS_EVENT: &str = "BatchSpanProcessor.SpansDropped";

impl DropCountCapture {
    pub(crate) fn around_current(counters: Arc<Counters>) -> DropCountCapture {
        DropCountCapture { inner: tracing::dispatcher::get_default(|d| d.clone()), counters }
    }

    fn is_drop_count(metadata: &tracing::Metadata<'_>) -> bool {
        metadata.is_event() && metadata.name() == SDK_DROPS_EVENT
    }
}

impl tracing::field::Visit for &DropCountCapture {
    fn record_u64(&mut self, field: &tracing::field::Field, value: u64) {
        if field.name() == "dropped_span_count" {
            self.counters.dropped_sdk.store(value, Ordering::SeqCst);
        }
    }

    fn record_i64(&mut self, field: &tracing::field::Field, value: i64) {
        self.record_u64(field, value.max(0) as u64);
    }

    fn record_debug(&mut self, _field: &tracing::field::Field, _value: &dyn std::fmt::Debug) {}
}

impl tracing::Subscriber for DropCountCapture {
    fn register_callsite(&self, metadata: &'static tracing::Metadata<'static>) -> tracing::subscriber::Interest {
        match Self::is_drop_count(metadata) {
            true => tracing::subscriber::Interest::always(),
            false => tracing::subscriber::Interest::sometimes(),
        }
    }

    fn max_level_hint(&self) -> Option<tracing::level_filters::LevelFilter> {
        // The level of the drop count event. The global filter is the most verbose of every
        // dispatcher's hint, so the events the inner dispatcher wants still get here.
        Some(tracing::level_filters::LevelFilter::WARN)
    }

    fn enabled(&self, metadata: &tracing::Metadata<'_>) -> bool {
        Self::is_drop_count(metadata) || self.inner.enabled(metadata)
    }

    fn new_span(&self, span: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        self.inner.new_span(span)
    }

    fn record(&self, span: &tracing::span::Id, values: &tracing::span::Record<'_>) {
        self.inner.record(span, values);
    }

    fn record_follows_from(&self, span: &tracing::span::Id, follows: &tracing::span::Id) {
        self.inner.record_follows_from(span, follows);
    }

    fn event(&self, event: &tracing::Event<'_>) {
        if Self::is_drop_count(event.metadata()) {
            let mut visitor = self;
            event.record(&mut visitor);
        }
        if self.inner.enabled(event.metadata()) {
            self.inner.event(event);
        }
    }

    fn enter(&self, span: &tracing::span::Id) {
        self.inner.enter(span);
    }

    fn exit(&self, span: &tracing::span::Id) {
        self.inner.exit(span);
    }

    fn clone_span(&self, id: &tracing::span::Id) -> tracing::span::Id {
        self.inner.clone_span(id)
    }

    fn try_close(&self, id: tracing::span::Id) -> bool {
        self.inner.try_close(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU64;

    /// Counts the events it sees; stands in for an application's subscriber.
    struct Counting(Arc<AtomicU64>);

    impl tracing::Subscriber for Counting {
        fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
            true
        }
        fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
            tracing::span::Id::from_u64(1)
        }
        fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
        fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
        fn event(&self, _: &tracing::Event<'_>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
        fn enter(&self, _: &tracing::span::Id) {}
        fn exit(&self, _: &tracing::span::Id) {}
    }

    #[test]
    fn the_sdk_drop_count_is_read_and_every_event_passed_on() {
        let seen = Arc::new(AtomicU64::new(0));
        let counters = Arc::new(Counters::new(0));
        let app = tracing::Dispatch::new(Counting(Arc::clone(&seen)));
        tracing::dispatcher::with_default(&app, || {
            let capture = DropCountCapture::around_current(Arc::clone(&counters));
            tracing::dispatcher::with_default(&tracing::Dispatch::new(capture), || {
                tracing::warn!(name: "BatchSpanProcessor.SpansDropped", dropped_span_count = 7usize, max_queue_size = 64usize);
                tracing::warn!(name: "Something.Else", value = 1u64);
            });
        });
        assert_eq!(counters.dropped_sdk.load(Ordering::SeqCst), 7);
        assert_eq!(seen.load(Ordering::SeqCst), 2, "the application's subscriber sees both events");
    }
}
