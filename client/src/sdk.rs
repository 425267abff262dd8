//! The narrow interface the SDK reliability suites hold a tracing client to, and this crate's
//! reference client behind it. Another Rust client is held to the same suites by
//! implementing [`SdkUnderTest`] (and [`SdkSpan`]) and filling [`SdkHealth`] from its own
//! counters.

use serde::Serialize;
use serde_json::Value;

use crate::metadata::MetadataStats;
use crate::side::{SideChannels, SideConfig, SideHealth};
use crate::{Accounting, ClientConfig, ClientError, Pipeline};

/// Where everything the client was given went: spans, side-channel items and metadata.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct SdkHealth {
    /// The spans ([`Accounting`]'s identity).
    pub spans: Accounting,
    /// The evaluations and tags ([`SideHealth`]'s identities).
    pub side: SideHealth,
    /// The span metadata ([`MetadataStats`]'s identity).
    pub metadata: MetadataStats,
}

/// An attribute value the suites set: the kinds an LLM application sends (prompts, scores,
/// embeddings, lists of documents), including the pathological ones (NaN, huge arrays).
#[derive(Clone, Debug, PartialEq)]
pub enum AttrValue {
    /// A string.
    Str(String),
    /// A double (NaN and infinities included).
    F64(f64),
    /// An array of doubles.
    F64s(Vec<f64>),
    /// An array of strings.
    Strs(Vec<String>),
}

impl From<&str> for AttrValue {
    fn from(s: &str) -> AttrValue {
        AttrValue::Str(s.to_string())
    }
}

impl From<String> for AttrValue {
    fn from(s: String) -> AttrValue {
        AttrValue::Str(s)
    }
}

impl From<f64> for AttrValue {
    fn from(x: f64) -> AttrValue {
        AttrValue::F64(x)
    }
}

impl From<AttrValue> for opentelemetry::Value {
    fn from(v: AttrValue) -> opentelemetry::Value {
        use opentelemetry::{Array, StringValue, Value};
        match v {
            AttrValue::Str(s) => Value::String(s.into()),
            AttrValue::F64(x) => Value::F64(x),
            AttrValue::F64s(v) => Value::Array(Array::F64(v)),
            AttrValue::Strs(v) => Value::Array(Array::String(v.into_iter().map(StringValue::from).collect())),
        }
    }
}

/// A span the caller holds.
pub trait SdkSpan: Send {
    /// Its trace id, hex.
    fn trace_id(&self) -> String;
    /// Sets an attribute (the value is moved, not copied).
    fn set_attribute(&mut self, key: &str, value: AttrValue);
    /// Sets out-of-band metadata (bounded by the client; cleared when the span ends).
    fn set_metadata(&mut self, key: &str, value: &str);
    /// Ends it.
    fn end(self: Box<Self>);
}

/// What the suites ask of a client. Every call must return without waiting for the network.
pub trait SdkUnderTest: Send + Sync {
    /// Starts a span.
    fn span(&self, name: &str) -> Box<dyn SdkSpan>;
    /// Sends an evaluation (a JSON object with a string `id` and `trace_id`); false when it
    /// was dropped (and counted).
    fn evaluate(&self, evaluation: Value) -> bool;
    /// Tags a trace; how many tags were new and taken.
    fn tag(&self, trace_id: &str, tags: &[&str]) -> usize;
    /// The counts now.
    fn health(&self) -> SdkHealth;
    /// Sends what is left and stops, within the client's bound; the final counts.
    fn shutdown(&self) -> SdkHealth;
    /// The client's health as Prometheus text now.
    fn metrics(&self) -> String;
    /// Where the client serves [`SdkUnderTest::metrics`] for scraping, if it does.
    fn metrics_url(&self) -> Option<String>;
}

/// Upper bounds of the caller-overhead histogram, seconds: 1 µs to 10 ms.
const CALLER_BUCKETS: [f64; 11] = [1e-6, 2.5e-6, 5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 1e-2];

/// This crate's client: the pipeline ([`Pipeline`]) with its bounded metadata, and the side
/// channels ([`SideChannels`]).
#[derive(Debug)]
pub struct ReferenceSdk {
    pipeline: std::sync::Mutex<Option<Pipeline>>,
    tracer: opentelemetry_sdk::trace::SdkTracer,
    metadata: std::sync::Arc<crate::metadata::SpanMetadata>,
    side: SideChannels,
    /// The pipeline's counters, read live before and after shutdown (spans ended after it
    /// are still counted, as after_shutdown).
    counters: std::sync::Arc<crate::accounting::Counters>,
    /// Set (under the write lock) when shutdown begins; spans end under the read lock.
    closing: std::sync::Arc<std::sync::RwLock<bool>>,
    /// What each call cost its caller (`reliability_client_caller_overhead_seconds{call}`).
    overhead: prometheus::HistogramVec,
    server: std::sync::Mutex<Option<crate::serve::MetricsServer>>,
}

impl ReferenceSdk {
    /// Starts the pipeline and the side channels.
    pub fn start(client: &ClientConfig, side: SideConfig) -> Result<ReferenceSdk, ClientError> {
        let pipeline = Pipeline::start(client)?;
        let tracer = pipeline.tracer("reliability-sdk");
        let metadata = pipeline.metadata_handle();
        let counters = pipeline.counters();
        let overhead = prometheus::HistogramVec::new(
            prometheus::HistogramOpts::new(
                "reliability_client_caller_overhead_seconds",
                "What each SDK call cost the calling thread.",
            )
            .buckets(CALLER_BUCKETS.to_vec()),
            &["call"],
        )
        .map_err(|e| ClientError::Build { endpoint: client.endpoint.clone(), reason: e.to_string() })?;
        Ok(ReferenceSdk {
            pipeline: std::sync::Mutex::new(Some(pipeline)),
            tracer,
            metadata,
            side: SideChannels::start(side),
            counters,
            closing: std::sync::Arc::new(std::sync::RwLock::new(false)),
            overhead,
            server: std::sync::Mutex::new(None),
        })
    }

    /// Starts the reference client and serves its health at `listen` (e.g. `127.0.0.1:0`).
    pub fn start_serving(
        client: &ClientConfig,
        side: SideConfig,
        listen: &str,
    ) -> Result<std::sync::Arc<ReferenceSdk>, ClientError> {
        let sdk = std::sync::Arc::new(ReferenceSdk::start(client, side)?);
        let weak = std::sync::Arc::downgrade(&sdk);
        let render: crate::serve::Render =
            std::sync::Arc::new(move || weak.upgrade().map(|sdk| sdk.metrics()).unwrap_or_default());
        let server = crate::serve::MetricsServer::start(listen, render)
            .map_err(|e| ClientError::Build { endpoint: listen.to_string(), reason: e.to_string() })?;
        *sdk.server.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(server);
        Ok(sdk)
    }

    fn observe(&self, call: &str, started: std::time::Instant) {
        self.overhead.with_label_values(&[call]).observe(started.elapsed().as_secs_f64());
    }
}

struct ReferenceSpan {
    span: opentelemetry_sdk::trace::Span,
    metadata: std::sync::Arc<crate::metadata::SpanMetadata>,
    overhead: prometheus::Histogram,
    closing: std::sync::Arc<std::sync::RwLock<bool>>,
    counters: std::sync::Arc<crate::accounting::Counters>,
}

impl Drop for ReferenceSpan {
    /// Ends the span (explicitly or by being dropped). Before shutdown, with the read lock
    /// held, so the provider cannot be shut down under it and the processor counts it; from
    /// shutdown on, counted here as ended after shutdown — the SDK would skip it silently
    /// once the provider is down, and the processor leaves it alone until then.
    fn drop(&mut self) {
        use opentelemetry::trace::Span as _;
        let closing = self.closing.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        if *closing {
            self.counters.after_shutdown.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
        self.span.end();
    }
}

impl SdkSpan for ReferenceSpan {
    fn trace_id(&self) -> String {
        use opentelemetry::trace::Span as _;
        self.span.span_context().trace_id().to_string()
    }

    fn set_attribute(&mut self, key: &str, value: AttrValue) {
        use opentelemetry::trace::Span as _;
        self.span.set_attribute(opentelemetry::KeyValue::new(key.to_string(), opentelemetry::Value::from(value)));
    }

    fn set_metadata(&mut self, key: &str, value: &str) {
        use opentelemetry::trace::Span as _;
        let cx = self.span.span_context();
        self.metadata.set(cx.trace_id(), cx.span_id(), key, value);
    }

    fn end(self: Box<Self>) {
        let started = std::time::Instant::now();
        let overhead = self.overhead.clone();
        drop(self);
        overhead.observe(started.elapsed().as_secs_f64());
    }
}

impl SdkUnderTest for ReferenceSdk {
    fn span(&self, name: &str) -> Box<dyn SdkSpan> {
        use opentelemetry::trace::Tracer as _;
        let started = std::time::Instant::now();
        let span = self.tracer.start(name.to_string());
        self.observe("span_start", started);
        let overhead = self.overhead.with_label_values(&["span_end"]);
        Box::new(ReferenceSpan {
            span,
            metadata: self.metadata.clone(),
            overhead,
            closing: self.closing.clone(),
            counters: self.counters.clone(),
        })
    }

    fn evaluate(&self, evaluation: Value) -> bool {
        let started = std::time::Instant::now();
        let taken = self.side.evaluate(evaluation);
        self.observe("evaluate", started);
        taken
    }

    fn tag(&self, trace_id: &str, tags: &[&str]) -> usize {
        let started = std::time::Instant::now();
        let taken = self.side.tag(trace_id, tags);
        self.observe("tag", started);
        taken
    }

    fn metrics(&self) -> String {
        let registry = prometheus::Registry::new();
        crate::accounting::register_counters(&registry, &self.counters);
        let _ = registry.register(Box::new(self.overhead.clone()));
        crate::side::register_metrics(&registry, &self.side.health());
        crate::accounting::encode(&registry)
    }

    fn metrics_url(&self) -> Option<String> {
        self.server.lock().unwrap_or_else(std::sync::PoisonError::into_inner).as_ref().map(|s| s.url())
    }

    fn health(&self) -> SdkHealth {
        let spans = Accounting::from(&self.counters);
        SdkHealth { spans, side: self.side.health(), metadata: self.metadata.stats() }
    }

    fn shutdown(&self) -> SdkHealth {
        let pipeline = self.pipeline.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take();
        if let Some(pipeline) = pipeline {
            {
                let mut closing = self.closing.write().unwrap_or_else(std::sync::PoisonError::into_inner);
                *closing = true;
                pipeline.close();
            }
            pipeline.shutdown();
        }
        let side = self.side.shutdown();
        SdkHealth { spans: Accounting::from(&self.counters), side, metadata: self.metadata.stats() }
    }
}
