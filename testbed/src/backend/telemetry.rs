//! The backend's own metrics at `GET /metrics`: requests by status, spans received, stored,
//! duplicated and rejected by reason, bytes, and a handling-latency histogram.

use std::time::Duration;

use prometheus::{Encoder, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts, Registry, TextEncoder};

use crate::backend::store::Store;

/// The registry and its series.
#[derive(Debug)]
pub(crate) struct Telemetry {
    registry: Registry,
    requests: IntCounterVec,
    spans_received: IntCounter,
    spans_accepted: IntCounter,
    spans_duplicate: IntCounter,
    spans_rejected: IntCounterVec,
    bytes: IntCounter,
    latency: Histogram,
    stored_spans: IntGauge,
    stored_bytes: IntGauge,
    side_requests: IntCounterVec,
    side_items: IntCounterVec,
}

fn must<T>(result: prometheus::Result<T>) -> T {
    // Only fails for invalid names or duplicate registration: fixed at compile time here.
    result.unwrap_or_else(|e| panic!("testbed metrics: {e}"))
}

impl Telemetry {
    pub(crate) fn new() -> Telemetry {
        let registry = Registry::new();
        let counter = |name: &str, help: &str| {
            let c = must(IntCounter::new(name, help));
            must(registry.register(Box::new(c.clone())));
            c
        };
        let vec = |name: &str, help: &str, label: &str| {
            let c = must(IntCounterVec::new(Opts::new(name, help), &[label]));
            must(registry.register(Box::new(c.clone())));
            c
        };
        let gauge = |name: &str, help: &str| {
            let g = must(IntGauge::new(name, help));
            must(registry.register(Box::new(g.clone())));
            g
        };
        let latency = must(Histogram::with_opts(
            HistogramOpts::new("testbed_request_duration_seconds", "Time from arrival to answer of ingest requests.")
                .buckets(vec![0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0]),
        ));
        must(registry.register(Box::new(latency.clone())));
        let vec2 = |name: &str, help: &str, labels: &[&str]| {
            let c = must(IntCounterVec::new(Opts::new(name, help), labels));
            must(registry.register(Box::new(c.clone())));
            c
        };
        let side_requests = vec2(
            "testbed_side_requests_total",
            "Side-channel requests (evaluations, tags) by answered status (closed: no answer).",
            &["endpoint", "status"],
        );
        let side_items = vec2(
            "testbed_side_items_total",
            "Side-channel items by fate: received = accepted + duplicate + rejected.",
            &["endpoint", "fate"],
        );
        // Every fate of every channel from the start: a rate over a series that appears late
        // misses its first increase.
        for channel in crate::backend::side::Channel::ALL {
            for fate in ["received", "accepted", "duplicate", "rejected"] {
                side_items.with_label_values(&[channel.label(), fate]);
            }
        }
        Telemetry {
            side_requests,
            side_items,
            requests: vec(
                "testbed_requests_total",
                "Ingest requests by answered status (closed: no answer).",
                "status",
            ),
            spans_received: counter("testbed_spans_received_total", "Spans in decodable ingest requests."),
            spans_accepted: counter("testbed_spans_accepted_total", "Spans stored for the first time."),
            spans_duplicate: counter("testbed_spans_duplicate_total", "Spans received again (same trace and span id)."),
            spans_rejected: vec("testbed_spans_rejected_total", "Spans refused, by reason.", "reason"),
            bytes: counter("testbed_received_bytes_total", "Ingest request body bytes as received."),
            stored_spans: gauge("testbed_stored_spans", "Spans held now."),
            stored_bytes: gauge("testbed_stored_bytes", "Encoded bytes of the spans held now."),
            latency,
            registry,
        }
    }

    pub(crate) fn request(&self, status: Option<u16>, took: Duration) {
        let status = status.map_or_else(|| "closed".to_string(), |s| s.to_string());
        self.requests.with_label_values(&[status.as_str()]).inc();
        self.latency.observe(took.as_secs_f64());
    }

    pub(crate) fn side_request(&self, channel: crate::backend::side::Channel, status: Option<u16>) {
        let status = status.map_or_else(|| "closed".to_string(), |s| s.to_string());
        self.side_requests.with_label_values(&[channel.label(), status.as_str()]).inc();
    }

    pub(crate) fn side_items(&self, channel: crate::backend::side::Channel, fate: &str, n: u64) {
        self.side_items.with_label_values(&[channel.label(), fate]).inc_by(n);
    }

    pub(crate) fn received(&self, spans: u64) {
        self.spans_received.inc_by(spans);
    }

    pub(crate) fn stored(&self, accepted: u64, duplicates: u64) {
        self.spans_accepted.inc_by(accepted);
        self.spans_duplicate.inc_by(duplicates);
    }

    pub(crate) fn rejected(&self, reason: &str, spans: u64) {
        if spans > 0 {
            self.spans_rejected.with_label_values(&[reason]).inc_by(spans);
        }
    }

    pub(crate) fn bytes(&self, n: u64) {
        self.bytes.inc_by(n);
    }

    pub(crate) fn render(&self, store: &Store) -> Vec<u8> {
        let (spans, bytes) = store.totals();
        self.stored_spans.set(spans as i64);
        self.stored_bytes.set(bytes as i64);
        let mut out = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        out
    }
}
