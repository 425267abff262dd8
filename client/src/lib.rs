//! The client pipeline under test: `opentelemetry_sdk`'s tracer provider with a
//! BatchSpanProcessor and the `opentelemetry-otlp` HTTP exporter, built from [`ClientConfig`],
//! with exact span accounting.
//!
//! Every term of the accounting is counted by its own observer, where it happens, so that the
//! identity below is a check that can fail (a span lost without a report breaks it):
//!
//! ```text
//! ended           spans whose on_end reached the processor before shutdown  (processor wrapper)
//! exported        spans in batches the backend answered 2xx, minus rejected  (exporter wrapper)
//! rejected        partial_success.rejected_spans of those answers            (HTTP client wrapper)
//! failed          spans in batches whose export returned an error            (exporter wrapper)
//! dropped         spans the SDK's queue refused (full)                       (the SDK's own count)
//! in_export       spans in an export call that had not returned              (exporter gauge)
//! queued          spans still in the SDK's queue when shutdown gave up       (remainder; see below)
//! after_shutdown  spans ended after shutdown began; not passed on            (processor wrapper)
//!
//! ended = exported + rejected + failed + dropped + in_export + queued
//! ```
//!
//! The SDK keeps its drop count private and reports it only in its own log at shutdown
//! (`BatchSpanProcessor.SpansDropped`, through `tracing`); the processor wrapper reads that
//! event with a dispatcher scoped to the shutdown call, which passes every other event on to
//! the application's subscriber. After a completed shutdown the SDK's queue is empty, so
//! `queued` is 0 and the identity checks every counter against the others. When shutdown
//! gives up (a backend that never answers), `queued` is what is left over and only the
//! exporter's side is checked; [`Accounting::shutdown_completed`] says which.
//!
//! Shutdown is bounded: if the exporter hangs, shutdown returns after its bound.

pub mod metadata;
pub mod retry;
pub mod sdk;
pub mod side;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError, RwLock};
use std::time::Duration;

use opentelemetry::Context;
use opentelemetry_http::{Bytes, HttpClient, HttpError, Request, Response};
use opentelemetry_otlp::{Compression, Protocol, WithExportConfig, WithHttpConfig};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{
    BatchConfigBuilder, BatchSpanProcessor, SdkTracerProvider, Span, SpanData, SpanExporter, SpanProcessor,
};
use prost::Message;
use serde::{Deserialize, Serialize};

/// How the pipeline is built. Defaults are the SDK's (batch 512, delay 5 s, export timeout
/// 30 s) but for the queue, 8,192 spans as the SDK reliability analysis recommends (the SDK's
/// own 2,048 overflows under a burst); then `reliability.toml [client]`, then the standard
/// `OTEL_*` environment variables ([`ClientConfig::with_env`]).
///
/// `Debug` shows the names of [`ClientConfig::headers`], never their values: they carry API
/// keys.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct ClientConfig {
    /// The traces endpoint, used as given (include `/v1/traces`).
    pub endpoint: String,
    /// `protobuf` (default) or `json`.
    pub protocol: WireProtocol,
    /// gzip request bodies.
    pub gzip: bool,
    /// Extra request headers (e.g. an API key, set from the environment by the caller).
    #[serde(skip)]
    pub headers: Vec<(String, String)>,
    /// BatchSpanProcessor queue size.
    pub max_queue_size: usize,
    /// Spans per export request.
    pub max_export_batch_size: usize,
    /// Delay between scheduled exports, milliseconds.
    pub scheduled_delay_ms: u64,
    /// Bound on one export (the HTTP client's timeout), milliseconds.
    pub export_timeout_ms: u64,
    /// Bound on shutdown, milliseconds.
    pub shutdown_timeout_ms: u64,
    /// Tries per export request, the first included: 1 (the default) is the SDK as shipped,
    /// which never retries; more retries 429, 502, 503, 504 and network errors with
    /// exponential backoff and full jitter, honouring `Retry-After`, within the export
    /// timeout ([`retry::RetryPolicy`]).
    pub export_max_attempts: u32,
    /// Span metadata entries held at most ([`metadata::SpanMetadata`]).
    pub metadata_capacity: usize,
    /// Span metadata not written or read for this long is removed, milliseconds.
    pub metadata_ttl_ms: u64,
    /// The resource's `service.name` (the backend's project).
    #[serde(skip)]
    pub service_name: String,
    /// Faults planted in the pipeline itself, for tests of the tests.
    #[serde(skip)]
    pub hooks: Hooks,
}

impl std::fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let headers: Vec<String> = self.headers.iter().map(|(name, _)| format!("{name}: <redacted>")).collect();
        f.debug_struct("ClientConfig")
            .field("endpoint", &self.endpoint)
            .field("protocol", &self.protocol)
            .field("gzip", &self.gzip)
            .field("headers", &headers)
            .field("max_queue_size", &self.max_queue_size)
            .field("max_export_batch_size", &self.max_export_batch_size)
            .field("scheduled_delay_ms", &self.scheduled_delay_ms)
            .field("export_timeout_ms", &self.export_timeout_ms)
            .field("shutdown_timeout_ms", &self.shutdown_timeout_ms)
            .field("export_max_attempts", &self.export_max_attempts)
            .field("metadata_capacity", &self.metadata_capacity)
            .field("metadata_ttl_ms", &self.metadata_ttl_ms)
            .field("service_name", &self.service_name)
            .field("hooks", &self.hooks)
            .finish()
    }
}

/// Faults planted in the pipeline, so that tests can hold the exporter still or prove that
/// the accounting catches a span lost without a report. All off by default.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Hooks {
    /// The exporter silently loses this many spans (the first ones it is handed): nothing
    /// counts them, so the accounting identity must fail.
    pub lose_spans: u64,
    /// Every export waits until this gate is opened.
    pub export_gate: Option<ExportGate>,
}

/// A gate that export calls wait at until it is opened (see [`Hooks::export_gate`]).
#[derive(Clone, Debug, Default)]
pub struct ExportGate(Arc<(Mutex<bool>, Condvar)>);

impl PartialEq for ExportGate {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl ExportGate {
    /// A closed gate.
    pub fn closed() -> ExportGate {
        ExportGate::default()
    }

    /// Lets every waiting and future export through.
    pub fn open(&self) {
        let (open, changed) = &*self.0;
        *open.lock().unwrap_or_else(PoisonError::into_inner) = true;
        changed.notify_all();
    }

    pub(crate) fn wait(&self) {
        let (open, changed) = &*self.0;
        let mut guard = open.lock().unwrap_or_else(PoisonError::into_inner);
        while !*guard {
            guard = changed.wait(guard).unwrap_or_else(PoisonError::into_inner);
        }
    }
}

/// The OTLP/HTTP encoding.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum WireProtocol {
    /// `application/x-protobuf`.
    #[default]
    Protobuf,
    /// `application/json`.
    Json,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            endpoint: "http://127.0.0.1:4318/v1/traces".into(),
            protocol: WireProtocol::Protobuf,
            gzip: false,
            headers: Vec::new(),
            max_queue_size: 8192,
            max_export_batch_size: 512,
            scheduled_delay_ms: 5000,
            export_timeout_ms: 30_000,
            shutdown_timeout_ms: 10_000,
            export_max_attempts: 1,
            metadata_capacity: 10_000,
            metadata_ttl_ms: 300_000,
            service_name: "unknown_service".into(),
            hooks: Hooks::default(),
        }
    }
}

/// A bad client setting.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// An environment variable does not parse.
    #[error("environment variable {var}={value:?}: expected {expected}")]
    Env {
        /// The variable.
        var: &'static str,
        /// Its value.
        value: String,
        /// What would be valid.
        expected: &'static str,
    },
    /// The exporter could not be built.
    #[error("failed to build the OTLP exporter for {endpoint}: {reason}")]
    Build {
        /// The endpoint.
        endpoint: String,
        /// Why.
        reason: String,
    },
}

impl ClientConfig {
    /// Applies the standard environment variables over `self`: `OTEL_BSP_MAX_QUEUE_SIZE`,
    /// `OTEL_BSP_MAX_EXPORT_BATCH_SIZE`, `OTEL_BSP_SCHEDULE_DELAY`, `OTEL_BSP_EXPORT_TIMEOUT`,
    /// `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` (as given) or `OTEL_EXPORTER_OTLP_ENDPOINT`
    /// (`/v1/traces` appended), `OTEL_EXPORTER_OTLP_PROTOCOL` (`http/protobuf`, `http/json`),
    /// `OTEL_EXPORTER_OTLP_COMPRESSION` (`gzip`, `none`), `OTEL_EXPORTER_OTLP_HEADERS`
    /// (`k=v,k2=v2`), `OTEL_EXPORTER_OTLP_TIMEOUT` (ms).
    pub fn with_env(mut self, env: &dyn Fn(&str) -> Option<String>) -> Result<ClientConfig, ClientError> {
        let get = |var: &'static str| env(var).filter(|v| !v.trim().is_empty()).map(|v| (var, v));
        let number = |(var, value): (&'static str, String)| {
            value.trim().parse::<u64>().map_err(|_| ClientError::Env { var, value, expected: "a whole number" })
        };
        if let Some(v) = get("OTEL_BSP_MAX_QUEUE_SIZE") {
            self.max_queue_size = number(v)? as usize;
        }
        if let Some(v) = get("OTEL_BSP_MAX_EXPORT_BATCH_SIZE") {
            self.max_export_batch_size = number(v)? as usize;
        }
        if let Some(v) = get("OTEL_BSP_SCHEDULE_DELAY") {
            self.scheduled_delay_ms = number(v)?;
        }
        if let Some(v) = get("OTEL_BSP_EXPORT_TIMEOUT").or_else(|| get("OTEL_EXPORTER_OTLP_TIMEOUT")) {
            self.export_timeout_ms = number(v)?;
        }
        if let Some((_, v)) = get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") {
            self.endpoint = v;
        } else if let Some((_, v)) = get("OTEL_EXPORTER_OTLP_ENDPOINT") {
            self.endpoint = format!("{}/v1/traces", v.trim_end_matches('/'));
        }
        if let Some((var, value)) = get("OTEL_EXPORTER_OTLP_PROTOCOL") {
            self.protocol = match value.trim() {
                "http/protobuf" => WireProtocol::Protobuf,
                "http/json" => WireProtocol::Json,
                _ => return Err(ClientError::Env { var, value, expected: "http/protobuf or http/json" }),
            };
        }
        if let Some((var, value)) = get("OTEL_EXPORTER_OTLP_COMPRESSION") {
            self.gzip = match value.trim() {
                "gzip" => true,
                "none" => false,
                _ => return Err(ClientError::Env { var, value, expected: "gzip or none" }),
            };
        }
        if let Some((var, value)) = get("OTEL_EXPORTER_OTLP_HEADERS") {
            for pair in value.split(',').filter(|p| !p.trim().is_empty()) {
                let Some((k, v)) = pair.split_once('=') else {
                    return Err(ClientError::Env {
                        var,
                        value: "(not shown: it may hold secrets)".into(),
                        expected: "k=v pairs separated by commas",
                    });
                };
                self.headers.push((k.trim().to_string(), v.trim().to_string()));
            }
        }
        Ok(self)
    }
}

#[derive(Debug, Default)]
struct Counters {
    ended: AtomicU64,
    after_shutdown: AtomicU64,
    /// The SDK's own drop count, read from its shutdown log.
    dropped: AtomicU64,
    handed_to_exporter: AtomicU64,
    exported_ok: AtomicU64,
    failed: AtomicU64,
    in_export: AtomicU64,
    rejected: AtomicU64,
    /// Export requests sent again after a retryable failure.
    export_retries: AtomicU64,
    shutting_down: AtomicBool,
    shutdown_completed: AtomicBool,
    /// Duration of each export call, microseconds (bounded: the first 100,000).
    export_micros: Mutex<Vec<u64>>,
}

/// Where every span went. Each figure is counted where it happens (see the module docs).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Accounting {
    /// Spans ended before shutdown.
    pub ended: u64,
    /// Accepted by the backend (2xx, not rejected).
    pub exported: u64,
    /// Rejected by the backend through `partial_success`.
    pub rejected: u64,
    /// In batches whose export failed (error status, timeout, connection).
    pub failed: u64,
    /// Refused by the SDK's full queue (the SDK's own count).
    pub dropped: u64,
    /// In an export call that had not returned when shutdown gave up (a hanging backend).
    pub in_export: u64,
    /// Still in the SDK's queue when shutdown gave up: the remainder, 0 after a completed
    /// shutdown.
    pub queued: u64,
    /// Ended after shutdown began; not exported.
    pub after_shutdown: u64,
    /// Shutdown finished within its bound: the queue was drained and every export returned.
    pub shutdown_completed: bool,
    /// Export requests sent again after a retryable failure (not spans: not in the identity).
    pub export_retries: u64,
}

impl Accounting {
    /// `ended = exported + rejected + failed + dropped + in_export + queued`.
    pub fn is_balanced(&self) -> bool {
        self.unaccounted() == 0
    }

    /// Spans ended but found in no other term (negative: counted twice).
    pub fn unaccounted(&self) -> i64 {
        let placed = self.exported + self.rejected + self.failed + self.dropped + self.in_export + self.queued;
        self.ended as i64 - placed as i64
    }

    fn from(c: &Counters) -> Accounting {
        let ended = c.ended.load(Ordering::SeqCst);
        let handed = c.handed_to_exporter.load(Ordering::SeqCst);
        let ok = c.exported_ok.load(Ordering::SeqCst);
        let rejected = c.rejected.load(Ordering::SeqCst).min(ok);
        let dropped = c.dropped.load(Ordering::SeqCst);
        let completed = c.shutdown_completed.load(Ordering::SeqCst);
        Accounting {
            ended,
            exported: ok - rejected,
            rejected,
            failed: c.failed.load(Ordering::SeqCst),
            dropped,
            in_export: c.in_export.load(Ordering::SeqCst),
            // Only when shutdown gave up is anything legitimately left in the queue.
            queued: if completed { 0 } else { ended.saturating_sub(dropped + handed) },
            after_shutdown: c.after_shutdown.load(Ordering::SeqCst),
            shutdown_completed: completed,
            export_retries: c.export_retries.load(Ordering::SeqCst),
        }
    }
}

/// Counts spans reaching the processor, and reads the SDK's drop count at shutdown.
#[derive(Debug)]
struct CountingProcessor<P> {
    inner: P,
    counters: Arc<Counters>,
    /// Cleared of a span's entry when the span ends.
    metadata: Arc<metadata::SpanMetadata>,
    /// Read by `on_end` while it counts and forwards a span, written once by shutdown: no span
    /// is counted as ended after the SDK has reported its drop count.
    ending: RwLock<()>,
}

impl<P: SpanProcessor> SpanProcessor for CountingProcessor<P> {
    fn on_start(&self, span: &mut Span, cx: &Context) {
        self.inner.on_start(span, cx);
    }

    fn on_end(&self, span: SpanData) {
        let _ending = self.ending.read().unwrap_or_else(PoisonError::into_inner);
        if self.counters.shutting_down.load(Ordering::SeqCst) {
            self.counters.after_shutdown.fetch_add(1, Ordering::SeqCst);
            return;
        }
        self.counters.ended.fetch_add(1, Ordering::SeqCst);
        self.metadata.end(span.span_context.trace_id(), span.span_context.span_id());
        self.inner.on_end(span);
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        {
            let _closed = self.ending.write().unwrap_or_else(PoisonError::into_inner);
            self.counters.shutting_down.store(true, Ordering::SeqCst);
        }
        let capture = DropCountCapture::around_current(Arc::clone(&self.counters));
        tracing::dispatcher::with_default(&tracing::Dispatch::new(capture), || {
            self.inner.shutdown_with_timeout(timeout)
        })
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

/// A `tracing` subscriber, scoped to the shutdown call, that reads the SDK's
/// `BatchSpanProcessor.SpansDropped` event and passes everything on to the dispatcher that was
/// in effect (the application's, or none).
struct DropCountCapture {
    inner: tracing::Dispatch,
    counters: Arc<Counters>,
}

const SDK_DROPS_EVENT: &str = "BatchSpanProcessor.SpansDropped";

impl DropCountCapture {
    fn around_current(counters: Arc<Counters>) -> DropCountCapture {
        DropCountCapture { inner: tracing::dispatcher::get_default(|d| d.clone()), counters }
    }

    fn is_drop_count(metadata: &tracing::Metadata<'_>) -> bool {
        metadata.is_event() && metadata.name() == SDK_DROPS_EVENT
    }
}

impl tracing::field::Visit for &DropCountCapture {
    fn record_u64(&mut self, field: &tracing::field::Field, value: u64) {
        if field.name() == "dropped_span_count" {
            self.counters.dropped.store(value, Ordering::SeqCst);
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

/// Counts spans handed to the exporter and how their export ended.
#[derive(Debug)]
struct CountingExporter<E> {
    inner: E,
    counters: Arc<Counters>,
    hooks: Hooks,
    /// `hooks.lose_spans` still to lose.
    to_lose: AtomicU64,
}

impl<E: SpanExporter> SpanExporter for CountingExporter<E> {
    async fn export(&self, mut batch: Vec<SpanData>) -> OTelSdkResult {
        // A planted fault: spans vanish before anything counts them.
        let lose = self.to_lose.load(Ordering::SeqCst).min(batch.len() as u64);
        if lose > 0 {
            self.to_lose.fetch_sub(lose, Ordering::SeqCst);
            batch.drain(..lose as usize);
        }
        if let Some(gate) = &self.hooks.export_gate {
            gate.wait();
        }
        let n = batch.len() as u64;
        self.counters.handed_to_exporter.fetch_add(n, Ordering::SeqCst);
        self.counters.in_export.fetch_add(n, Ordering::SeqCst);
        let started = std::time::Instant::now();
        let result = self.inner.export(batch).await;
        if let Ok(mut micros) = self.counters.export_micros.lock()
            && micros.len() < 100_000
        {
            micros.push(started.elapsed().as_micros() as u64);
        }
        match &result {
            Ok(()) => self.counters.exported_ok.fetch_add(n, Ordering::SeqCst),
            Err(_) => self.counters.failed.fetch_add(n, Ordering::SeqCst),
        };
        self.counters.in_export.fetch_sub(n, Ordering::SeqCst);
        result
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

impl CountingHttpClient {
    /// Sends, and sends again under the retry policy (one try when it allows one).
    async fn send_with_retries(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        let (parts, body) = request.into_parts();
        let first = std::time::Instant::now();
        let mut jitter = retry::Jitter::from_clock();
        let mut attempt = 1;
        loop {
            let mut again =
                Request::builder().method(parts.method.clone()).uri(parts.uri.clone()).version(parts.version);
            if let Some(headers) = again.headers_mut() {
                headers.extend(parts.headers.iter().map(|(k, v)| (k.clone(), v.clone())));
            }
            let request = again.body(body.clone())?;
            let result = self.inner.send_bytes(request).await;
            let outcome = match &result {
                Ok(r) => retry::outcome(
                    Some(r.status().as_u16()),
                    r.headers().get("retry-after").and_then(|v| v.to_str().ok()),
                ),
                Err(_) => retry::Outcome::Network,
            };
            match self.retry.next_wait(attempt, &outcome, first.elapsed(), jitter.unit()) {
                Some(wait) => {
                    self.counters.export_retries.fetch_add(1, Ordering::SeqCst);
                    // The batch processor runs exports on a thread of its own.
                    std::thread::sleep(wait);
                    attempt += 1;
                }
                None => return result,
            }
        }
    }
}

/// Reads `partial_success.rejected_spans` from each successful answer.
#[derive(Debug)]
struct CountingHttpClient {
    inner: reqwest::blocking::Client,
    counters: Arc<Counters>,
    retry: retry::RetryPolicy,
}

#[async_trait::async_trait]
impl HttpClient for CountingHttpClient {
    async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        let response = self.send_with_retries(request).await?;
        if response.status().is_success() && !response.body().is_empty() {
            let json = response
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.starts_with("application/json"));
            let decoded = if json {
                serde_json::from_slice::<ExportTraceServiceResponse>(response.body()).ok()
            } else {
                ExportTraceServiceResponse::decode(response.body().as_ref()).ok()
            };
            if let Some(rejected) = decoded.and_then(|r| r.partial_success).map(|p| p.rejected_spans.max(0) as u64) {
                self.counters.rejected.fetch_add(rejected, Ordering::SeqCst);
            }
        }
        Ok(response)
    }
}

/// A running pipeline.
#[derive(Debug)]
pub struct Pipeline {
    provider: SdkTracerProvider,
    counters: Arc<Counters>,
    metadata: Arc<metadata::SpanMetadata>,
    shutdown_timeout: Duration,
}

/// Runs `f` on a fresh OS thread: the blocking HTTP client must be neither built nor dropped
/// inside an async context (fixtures run on a tokio runtime).
fn off_runtime<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    match std::thread::spawn(f).join() {
        Ok(value) => value,
        Err(panic) => std::panic::resume_unwind(panic),
    }
}

impl Pipeline {
    /// Builds and starts the pipeline.
    pub fn start(config: &ClientConfig) -> Result<Pipeline, ClientError> {
        let config = config.clone();
        off_runtime(move || Pipeline::build(&config))
    }

    fn build(config: &ClientConfig) -> Result<Pipeline, ClientError> {
        let counters = Arc::new(Counters::default());
        let build_error = |reason: String| ClientError::Build { endpoint: config.endpoint.clone(), reason };
        let http = reqwest::blocking::Client::builder()
            .timeout(Duration::from_millis(config.export_timeout_ms))
            .build()
            .map_err(|e| build_error(e.to_string()))?;
        let protocol = match config.protocol {
            WireProtocol::Protobuf => Protocol::HttpBinary,
            WireProtocol::Json => Protocol::HttpJson,
        };
        let mut builder = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_http_client(CountingHttpClient {
                inner: http,
                counters: Arc::clone(&counters),
                retry: retry::RetryPolicy {
                    max_attempts: config.export_max_attempts.max(1),
                    total: Duration::from_millis(config.export_timeout_ms),
                    ..retry::RetryPolicy::default()
                },
            })
            .with_protocol(protocol)
            .with_endpoint(config.endpoint.clone())
            .with_timeout(Duration::from_millis(config.export_timeout_ms))
            .with_headers(config.headers.iter().cloned().collect());
        if config.gzip {
            builder = builder.with_compression(Compression::Gzip);
        }
        let exporter = builder.build().map_err(|e| build_error(e.to_string()))?;
        let batch = BatchConfigBuilder::default()
            .with_max_queue_size(config.max_queue_size)
            .with_max_export_batch_size(config.max_export_batch_size)
            .with_scheduled_delay(Duration::from_millis(config.scheduled_delay_ms))
            .build();
        let exporter = CountingExporter {
            inner: exporter,
            counters: Arc::clone(&counters),
            hooks: config.hooks.clone(),
            to_lose: AtomicU64::new(config.hooks.lose_spans),
        };
        let processor = BatchSpanProcessor::builder(exporter).with_batch_config(batch).build();
        let metadata = Arc::new(metadata::SpanMetadata::new(metadata::MetadataLimits {
            capacity: config.metadata_capacity,
            ttl: Duration::from_millis(config.metadata_ttl_ms),
        }));
        let processor = CountingProcessor {
            inner: processor,
            counters: Arc::clone(&counters),
            metadata: Arc::clone(&metadata),
            ending: RwLock::new(()),
        };
        let provider = SdkTracerProvider::builder()
            .with_span_processor(processor)
            .with_resource(Resource::builder().with_service_name(config.service_name.clone()).build())
            .build();
        Ok(Pipeline {
            provider,
            counters,
            metadata,
            shutdown_timeout: Duration::from_millis(config.shutdown_timeout_ms),
        })
    }

    /// A tracer of this pipeline.
    pub fn tracer(&self, name: &'static str) -> opentelemetry_sdk::trace::SdkTracer {
        use opentelemetry::trace::TracerProvider as _;
        self.provider.tracer(name)
    }

    /// Exports everything queued so far and waits for it (the SDK's `force_flush`): a
    /// benchmark empties the queue between timed rounds, so that no span is dropped.
    pub fn force_flush(&self) -> Result<(), String> {
        self.provider.force_flush().map_err(|e| e.to_string())
    }

    /// The span metadata store: bounded by [`ClientConfig::metadata_capacity`] and
    /// [`ClientConfig::metadata_ttl_ms`], and cleared of a span when it ends.
    pub fn metadata(&self) -> &metadata::SpanMetadata {
        &self.metadata
    }

    /// The metadata store, shared.
    pub fn metadata_handle(&self) -> Arc<metadata::SpanMetadata> {
        Arc::clone(&self.metadata)
    }

    /// Where every span went so far.
    pub fn accounting(&self) -> Accounting {
        Accounting::from(&self.counters)
    }

    /// How long each export call took so far.
    pub fn export_latencies(&self) -> Vec<Duration> {
        latencies(&self.counters)
    }

    /// Exports what is queued and stops, within the shutdown bound; then the accounting and
    /// the duration of every export call.
    pub fn shutdown(self) -> (Accounting, Vec<Duration>) {
        let (provider, timeout) = (self.provider, self.shutdown_timeout);
        let (tx, rx) = std::sync::mpsc::channel();
        // On its own thread: a hanging backend must not hang the caller past the bound.
        std::thread::spawn(move || {
            let result = provider.shutdown_with_timeout(timeout);
            drop(provider);
            let _ = tx.send(result.is_ok());
        });
        let completed = rx.recv_timeout(timeout + Duration::from_secs(1)).unwrap_or(false);
        self.counters.shutdown_completed.store(completed, Ordering::SeqCst);
        (Accounting::from(&self.counters), latencies(&self.counters))
    }

    /// The accounting as Prometheus text (`testbed_client_spans_total{outcome}`), via the
    /// `prometheus` crate.
    pub fn metrics(&self) -> String {
        render_metrics(&self.accounting())
    }
}

fn latencies(counters: &Counters) -> Vec<Duration> {
    counters.export_micros.lock().map(|m| m.iter().map(|us| Duration::from_micros(*us)).collect()).unwrap_or_default()
}

/// Renders an accounting as Prometheus text.
pub fn render_metrics(a: &Accounting) -> String {
    use prometheus::{Encoder, IntCounterVec, Opts, Registry, TextEncoder};
    let registry = Registry::new();
    let spans = IntCounterVec::new(
        Opts::new("testbed_client_spans_total", "Spans of the client pipeline by where they went."),
        &["outcome"],
    )
    .unwrap_or_else(|e| panic!("client metrics: {e}"));
    let _ = registry.register(Box::new(spans.clone()));
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
    let mut out = Vec::new();
    let _ = TextEncoder::new().encode(&registry.gather(), &mut out);
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn environment_overrides_the_file() {
        let env = |k: &str| match k {
            "OTEL_BSP_MAX_QUEUE_SIZE" => Some("100".to_string()),
            "OTEL_EXPORTER_OTLP_ENDPOINT" => Some("http://127.0.0.1:9/".to_string()),
            "OTEL_EXPORTER_OTLP_PROTOCOL" => Some("http/json".to_string()),
            "OTEL_EXPORTER_OTLP_COMPRESSION" => Some("gzip".to_string()),
            "OTEL_EXPORTER_OTLP_HEADERS" => Some("x-api-key=abc, x-b=c".to_string()),
            _ => None,
        };
        let c = ClientConfig::default().with_env(&env).unwrap();
        assert_eq!(c.max_queue_size, 100);
        assert_eq!(c.endpoint, "http://127.0.0.1:9/v1/traces");
        assert_eq!((c.protocol, c.gzip), (WireProtocol::Json, true));
        assert_eq!(c.headers, [("x-api-key".to_string(), "abc".to_string()), ("x-b".to_string(), "c".to_string())]);
        let bad = |k: &str| (k == "OTEL_BSP_SCHEDULE_DELAY").then(|| "soon".to_string());
        assert!(
            ClientConfig::default()
                .with_env(&bad)
                .unwrap_err()
                .to_string()
                .contains("OTEL_BSP_SCHEDULE_DELAY=\"soon\"")
        );
        let secret = |k: &str| (k == "OTEL_EXPORTER_OTLP_HEADERS").then(|| "token-without-equals".to_string());
        assert!(!ClientConfig::default().with_env(&secret).unwrap_err().to_string().contains("token-without"));
    }

    #[test]
    fn the_identity_holds_only_when_every_span_is_counted_somewhere() {
        let c = Counters::default();
        c.ended.store(100, Ordering::SeqCst);
        c.dropped.store(10, Ordering::SeqCst);
        c.handed_to_exporter.store(90, Ordering::SeqCst);
        c.exported_ok.store(80, Ordering::SeqCst);
        c.failed.store(10, Ordering::SeqCst);
        c.rejected.store(3, Ordering::SeqCst);
        c.shutdown_completed.store(true, Ordering::SeqCst);
        let a = Accounting::from(&c);
        assert_eq!((a.exported, a.rejected, a.failed, a.dropped, a.in_export, a.queued), (77, 3, 10, 10, 0, 0));
        assert!(a.is_balanced());
        assert!(render_metrics(&a).contains("testbed_client_spans_total{outcome=\"dropped\"} 10"));
        // One more span ended than any observer saw: after a completed shutdown nothing hides it.
        c.ended.store(101, Ordering::SeqCst);
        assert_eq!(Accounting::from(&c).unaccounted(), 1);
        // Shutdown gave up: what never reached the exporter is still queued.
        c.shutdown_completed.store(false, Ordering::SeqCst);
        c.in_export.store(5, Ordering::SeqCst);
        c.exported_ok.store(75, Ordering::SeqCst);
        let a = Accounting::from(&c);
        assert_eq!((a.queued, a.in_export, a.unaccounted()), (1, 5, 0));
    }

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
        let counters = Arc::new(Counters::default());
        let app = tracing::Dispatch::new(Counting(Arc::clone(&seen)));
        tracing::dispatcher::with_default(&app, || {
            let capture = DropCountCapture::around_current(Arc::clone(&counters));
            tracing::dispatcher::with_default(&tracing::Dispatch::new(capture), || {
                tracing::warn!(name: "BatchSpanProcessor.SpansDropped", dropped_span_count = 7usize, max_queue_size = 64usize);
                tracing::warn!(name: "Something.Else", value = 1u64);
            });
        });
        assert_eq!(counters.dropped.load(Ordering::SeqCst), 7);
        assert_eq!(seen.load(Ordering::SeqCst), 2, "the application's subscriber sees both events");
    }
}
