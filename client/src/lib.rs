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
//! failed          spans in batches whose export returned an error or whose   (exporter wrapper)
//!                 exporter panicked, or left to an export thread that died
//! dropped         spans refused by the full queue, as it happens             (processor wrapper)
//!                 plus the SDK's own count, read at shutdown (0: see below)
//! in_export       spans in an export call that had not returned              (exporter gauge)
//! queued          spans forwarded to the SDK's queue, not yet handed on      (processor + exporter)
//! after_shutdown  spans ended after shutdown began; not passed on            (processor wrapper)
//!
//! ended = exported + rejected + failed + dropped + in_export + queued
//! ```
//!
//! The SDK drops spans silently when its queue is full and keeps the count private until
//! shutdown (its own log, `BatchSpanProcessor.SpansDropped`) — the analysis's third critical
//! problem. So the processor wrapper bounds the queue itself: a span that would make `queued`
//! exceed `max_queue_size` is dropped and counted at once (logged once), so the SDK's own
//! queue, as large, never overflows. Health is visible while the pipeline runs
//! ([`Pipeline::metrics`], [`serve`]): queue length and utilisation, drops and failures by
//! reason, export durations, the last export's age. The SDK's shutdown log is still read
//! (a dispatcher scoped to the shutdown call, passing every other event on), so a drop the
//! SDK made anyway is counted. After a completed shutdown `queued` must be 0.
//!
//! A panicking exporter is caught: its batch is counted failed and the export thread lives on.
//! If the export thread dies anyway, what it held is counted failed and so is every span after.
//! Shutdown is bounded: if the exporter hangs, shutdown returns after its bound.

mod accounting;
mod capture;
mod exporter;
pub mod metadata;
mod processor;
pub mod retry;
pub mod sdk;
pub mod serve;
pub mod side;

pub use accounting::{Accounting, render_metrics};

use std::sync::atomic::Ordering;
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::Duration;

use opentelemetry_otlp::{Compression, Protocol, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{BatchConfigBuilder, BatchSpanProcessor, SdkTracerProvider};
use serde::{Deserialize, Serialize};

use accounting::Counters;
use exporter::{CountingExporter, CountingHttpClient};
use processor::CountingProcessor;

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
    /// Bound on one export, its retries included, milliseconds (`OTEL_EXPORTER_OTLP_TIMEOUT`).
    pub export_timeout_ms: u64,
    /// Bound on each try of an export (the HTTP client's timeout), milliseconds; 0 (the
    /// default) is the export's bound, so a hung try leaves no time to retry — the SDK as
    /// shipped. Shorter, a stalled connection is given up and the export retried on another.
    pub export_attempt_timeout_ms: u64,
    /// Bound on shutdown, milliseconds.
    pub shutdown_timeout_ms: u64,
    /// Tries per export request, the first included: 1 (the default) is the SDK as shipped,
    /// which never retries; more retries 429, 502, 503, 504 and network errors with
    /// exponential backoff and full jitter, honouring `Retry-After`, within the export
    /// timeout ([`retry::RetryPolicy`]).
    pub export_max_attempts: u32,
    /// Longest attribute value, bytes: longer strings are cut (at a character boundary) and
    /// arrays to the elements that fit, each counted. 0 (the default) is no limit, the SDK as
    /// shipped, so the delivery suites measure it as it is; the SDK suites' reference client
    /// sets 64 KiB. The OpenTelemetry specification's attribute value length limit, extended
    /// to arrays.
    pub max_attribute_bytes: usize,
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
            .field("export_attempt_timeout_ms", &self.export_attempt_timeout_ms)
            .field("max_attribute_bytes", &self.max_attribute_bytes)
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
    /// The first this many exports fail as a serializing exporter's would, sending nothing.
    pub export_errors: u64,
    /// The next this many exports panic inside the exporter (caught: counted failed).
    pub export_panics: u64,
    /// The first export panics where nothing catches it: the export thread dies.
    pub crash_export_thread: bool,
    /// The fix for silent drops switched off: no bound of the pipeline's own in front of the
    /// SDK's queue, which drops silently and says how many only at shutdown (the analysed
    /// SDK). The suites must catch this.
    pub sdk_queue_only: bool,
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
            export_attempt_timeout_ms: 0,
            max_attribute_bytes: 0,
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
    /// (`k=v,k2=v2`), `OTEL_EXPORTER_OTLP_TIMEOUT` (ms), `OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT`
    /// or `OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT` (bytes).
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
        if let Some(v) =
            get("OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT").or_else(|| get("OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT"))
        {
            self.max_attribute_bytes = number(v)? as usize;
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
        let counters = Arc::new(Counters::new(config.max_queue_size as u64));
        let build_error = |reason: String| ClientError::Build { endpoint: config.endpoint.clone(), reason };
        let attempt = match config.export_attempt_timeout_ms {
            0 => config.export_timeout_ms,
            ms => ms.min(config.export_timeout_ms),
        };
        let http = reqwest::blocking::Client::builder()
            .timeout(Duration::from_millis(attempt))
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
        let exporter = CountingExporter::new(exporter, Arc::clone(&counters), config.hooks.clone());
        let processor = BatchSpanProcessor::builder(exporter).with_batch_config(batch).build();
        let metadata = Arc::new(metadata::SpanMetadata::new(metadata::MetadataLimits {
            capacity: config.metadata_capacity,
            ttl: Duration::from_millis(config.metadata_ttl_ms),
        }));
        let processor = CountingProcessor {
            inner: processor,
            counters: Arc::clone(&counters),
            metadata: Arc::clone(&metadata),
            bound_queue: !config.hooks.sdk_queue_only,
            max_attribute_bytes: config.max_attribute_bytes,
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

    /// From now on the caller counts every span ended as ended after shutdown, and the
    /// processor leaves them alone: the SDK skips ending a span once its provider is shut
    /// down, so only the caller sees them all.
    pub(crate) fn close(&self) {
        let _closing = self.counters.ending.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        self.counters.closed.store(true, Ordering::SeqCst);
    }

    /// The counters, shared (read after shutdown too).
    pub(crate) fn counters(&self) -> Arc<Counters> {
        Arc::clone(&self.counters)
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

    /// The pipeline's health as Prometheus text, via the `prometheus` crate: the accounting
    /// ([`render_metrics`]) and the export-duration histogram.
    pub fn metrics(&self) -> String {
        let registry = prometheus::Registry::new();
        self.register_metrics(&registry);
        accounting::encode(&registry)
    }

    /// Adds the pipeline's health to `registry` (see [`Pipeline::metrics`]).
    pub fn register_metrics(&self, registry: &prometheus::Registry) {
        accounting::register_counters(registry, &self.counters);
    }
}

fn latencies(counters: &Counters) -> Vec<Duration> {
    counters.export_micros.lock().map(|m| m.iter().map(|us| Duration::from_micros(*us)).collect()).unwrap_or_default()
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
        let c = Counters::new(0);
        c.ended.store(100, Ordering::SeqCst);
        c.dropped_queue_full.store(10, Ordering::SeqCst);
        c.handed_to_exporter.store(90, Ordering::SeqCst);
        c.exported_ok.store(80, Ordering::SeqCst);
        c.failed_error.store(10, Ordering::SeqCst);
        c.rejected.store(3, Ordering::SeqCst);
        c.shutdown_completed.store(true, Ordering::SeqCst);
        let a = Accounting::from(&c);
        assert_eq!((a.exported, a.rejected, a.failed, a.dropped, a.in_export, a.queued), (77, 3, 10, 10, 0, 0));
        assert!(a.is_balanced());
        assert!(render_metrics(&a).contains("testbed_client_spans_total{outcome=\"dropped\"} 10"));
        // One more span ended than any observer saw: nothing hides it.
        c.ended.store(101, Ordering::SeqCst);
        assert_eq!(Accounting::from(&c).unaccounted(), 1);
        // It is in the queue: balanced while running ...
        c.queued.store(1, Ordering::SeqCst);
        c.shutdown_completed.store(false, Ordering::SeqCst);
        assert!(Accounting::from(&c).is_balanced());
        // ... but a shutdown that completed must have emptied the queue.
        c.shutdown_completed.store(true, Ordering::SeqCst);
        let a = Accounting::from(&c);
        assert_eq!(a.unaccounted(), 0);
        assert!(!a.is_balanced(), "a span left queued after a completed shutdown was lost");
        // The SDK's own drops (known at shutdown) were forwarded into its queue: not queued.
        c.dropped_sdk.store(1, Ordering::SeqCst);
        let a = Accounting::from(&c);
        assert_eq!((a.queued, a.dropped, a.dropped_sdk, a.unaccounted()), (0, 11, 1, 0));
        assert!(a.is_balanced());
    }
}
