//! The `sdk` pipeline: each iteration's trace made through the OpenTelemetry SDK — the
//! testbed's client pipeline (BatchSpanProcessor and OTLP/HTTP exporter, `OTEL_BSP_*`
//! honoured, exact accounting) — to load-test the SDK path. An iteration ends when its spans
//! are ended (what the application pays); where they went is the pipeline's accounting,
//! taken after a bounded shutdown: what did not leave in time is counted, not waited for.

use std::time::{Duration, UNIX_EPOCH};

use opentelemetry::trace::{Span as _, TraceContextExt, Tracer as _};
use opentelemetry::{Context, KeyValue, Value};
use opentelemetry_proto::tonic::common::v1::any_value;
use reliability_client::{Accounting, ClientConfig, Pipeline, WireProtocol};

use crate::plan::Protocol;
use crate::raw::Sender;
use crate::run::{Outcome, Status};

/// The SDK pipeline and the sender whose traces it replays.
#[derive(Debug)]
pub struct SdkSender {
    pipeline: Pipeline,
    builder: Sender,
}

fn value(v: &Option<opentelemetry_proto::tonic::common::v1::AnyValue>) -> Value {
    match v.as_ref().and_then(|a| a.value.as_ref()) {
        Some(any_value::Value::StringValue(s)) => Value::from(s.clone()),
        Some(any_value::Value::IntValue(i)) => Value::from(*i),
        Some(any_value::Value::DoubleValue(d)) => Value::from(*d),
        Some(any_value::Value::BoolValue(b)) => Value::from(*b),
        _ => Value::from(""),
    }
}

impl SdkSender {
    /// Starts the pipeline for `url`; `env` supplies `OTEL_BSP_*` and friends.
    pub fn start(
        url: &str,
        protocol: Protocol,
        gzip: bool,
        headers: Vec<(String, String)>,
        service: &str,
        builder: Sender,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<SdkSender, String> {
        let config = ClientConfig {
            endpoint: url.to_owned(),
            protocol: match protocol {
                Protocol::Protobuf => WireProtocol::Protobuf,
                Protocol::Json => WireProtocol::Json,
            },
            gzip,
            headers,
            service_name: service.to_owned(),
            scheduled_delay_ms: 1000,
            export_timeout_ms: 10_000,
            shutdown_timeout_ms: 15_000,
            ..ClientConfig::default()
        }
        .with_env(env)
        .map_err(|e| e.to_string())?;
        let pipeline = Pipeline::start(&config).map_err(|e| e.to_string())?;
        Ok(SdkSender { pipeline, builder })
    }

    /// Makes iteration `i`'s trace through the SDK: every span started under its parent,
    /// with its attributes and times, and ended.
    pub fn iteration(&self, i: u64) -> Outcome {
        let (request, scenario) = self.builder.build(i);
        let tracer = self.pipeline.tracer("reliability-load");
        let mut contexts: Vec<(Vec<u8>, Context)> = Vec::new();
        let mut spans = 0;
        for proto in request.resource_spans.iter().flat_map(|r| &r.scope_spans).flat_map(|s| &s.spans) {
            let parent = contexts
                .iter()
                .find(|(id, _)| *id == proto.parent_span_id)
                .map_or_else(Context::new, |(_, cx)| cx.clone());
            let attributes: Vec<KeyValue> =
                proto.attributes.iter().map(|kv| KeyValue::new(kv.key.clone(), value(&kv.value))).collect();
            let mut span = tracer
                .span_builder(proto.name.clone())
                .with_attributes(attributes)
                .with_start_time(UNIX_EPOCH + Duration::from_nanos(proto.start_time_unix_nano))
                .start_with_context(&tracer, &parent);
            let cx = parent.with_remote_span_context(span.span_context().clone());
            contexts.push((proto.span_id.clone(), cx));
            span.end_with_timestamp(UNIX_EPOCH + Duration::from_nanos(proto.end_time_unix_nano));
            spans += 1;
        }
        Outcome { status: Status::Ok, spans, rejected: 0, bytes: 0, scenario }
    }

    /// Shuts the pipeline down (bounded) and returns its accounting.
    pub fn finish(self) -> Accounting {
        self.pipeline.shutdown().0
    }
}
