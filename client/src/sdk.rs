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

/// A span the caller holds.
pub trait SdkSpan: Send {
    /// Its trace id, hex.
    fn trace_id(&self) -> String;
    /// Sets a string attribute.
    fn set_attribute(&mut self, key: &str, value: String);
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
}

/// This crate's client: the pipeline ([`Pipeline`]) with its bounded metadata, and the side
/// channels ([`SideChannels`]).
#[derive(Debug)]
pub struct ReferenceSdk {
    pipeline: std::sync::Mutex<Option<Pipeline>>,
    tracer: opentelemetry_sdk::trace::SdkTracer,
    metadata: std::sync::Arc<crate::metadata::SpanMetadata>,
    side: SideChannels,
    last: std::sync::Mutex<Option<Accounting>>,
}

impl ReferenceSdk {
    /// Starts the pipeline and the side channels.
    pub fn start(client: &ClientConfig, side: SideConfig) -> Result<ReferenceSdk, ClientError> {
        let pipeline = Pipeline::start(client)?;
        let tracer = pipeline.tracer("reliability-sdk");
        let metadata = pipeline.metadata_handle();
        Ok(ReferenceSdk {
            pipeline: std::sync::Mutex::new(Some(pipeline)),
            tracer,
            metadata,
            side: SideChannels::start(side),
            last: std::sync::Mutex::new(None),
        })
    }
}

struct ReferenceSpan {
    span: opentelemetry_sdk::trace::Span,
    metadata: std::sync::Arc<crate::metadata::SpanMetadata>,
}

impl SdkSpan for ReferenceSpan {
    fn trace_id(&self) -> String {
        use opentelemetry::trace::Span as _;
        self.span.span_context().trace_id().to_string()
    }

    fn set_attribute(&mut self, key: &str, value: String) {
        use opentelemetry::trace::Span as _;
        self.span.set_attribute(opentelemetry::KeyValue::new(key.to_string(), value));
    }

    fn set_metadata(&mut self, key: &str, value: &str) {
        use opentelemetry::trace::Span as _;
        let cx = self.span.span_context();
        self.metadata.set(cx.trace_id(), cx.span_id(), key, value);
    }

    fn end(mut self: Box<Self>) {
        use opentelemetry::trace::Span as _;
        self.span.end();
    }
}

impl SdkUnderTest for ReferenceSdk {
    fn span(&self, name: &str) -> Box<dyn SdkSpan> {
        use opentelemetry::trace::Tracer as _;
        Box::new(ReferenceSpan { span: self.tracer.start(name.to_string()), metadata: self.metadata.clone() })
    }

    fn evaluate(&self, evaluation: Value) -> bool {
        self.side.evaluate(evaluation)
    }

    fn tag(&self, trace_id: &str, tags: &[&str]) -> usize {
        self.side.tag(trace_id, tags)
    }

    fn health(&self) -> SdkHealth {
        let pipeline = self.pipeline.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let spans = match pipeline.as_ref() {
            Some(p) => p.accounting(),
            None => self.last.lock().map(|l| l.unwrap_or_default()).unwrap_or_default(),
        };
        SdkHealth { spans, side: self.side.health(), metadata: self.metadata.stats() }
    }

    fn shutdown(&self) -> SdkHealth {
        let pipeline = self.pipeline.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take();
        if let Some(pipeline) = pipeline {
            let (accounting, _) = pipeline.shutdown();
            *self.last.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(accounting);
        }
        let side = self.side.shutdown();
        let spans = self.last.lock().map(|l| l.unwrap_or_default()).unwrap_or_default();
        SdkHealth { spans, side, metadata: self.metadata.stats() }
    }
}
