//! The exporter and HTTP client wrappers: count spans handed to the exporter and how each
//! export ended, catch a panicking exporter (its batch is counted failed and the export thread
//! lives on), notice an export thread that died anyway, time every export, read
//! `partial_success.rejected_spans` from each answer, and retry under the policy.

use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use opentelemetry_http::{Bytes, HttpClient, HttpError, Request, Response};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::trace::{SpanData, SpanExporter};
use prost::Message;

use crate::Hooks;
use crate::accounting::Counters;
use crate::retry;

/// Counts spans handed to the exporter and how their export ended.
#[derive(Debug)]
pub(crate) struct CountingExporter<E> {
    pub(crate) inner: E,
    pub(crate) counters: Arc<Counters>,
    pub(crate) hooks: Hooks,
    /// `hooks.lose_spans` still to lose.
    pub(crate) to_lose: AtomicU64,
    /// `hooks.export_errors` and `hooks.export_panics` still to plant.
    pub(crate) errors_left: AtomicU64,
    pub(crate) panics_left: AtomicU64,
    /// `hooks.crash_export_thread` not yet planted.
    pub(crate) crash_left: AtomicBool,
}

impl<E> CountingExporter<E> {
    pub(crate) fn new(inner: E, counters: Arc<Counters>, hooks: Hooks) -> Self {
        CountingExporter {
            inner,
            counters,
            to_lose: AtomicU64::new(hooks.lose_spans),
            errors_left: AtomicU64::new(hooks.export_errors),
            panics_left: AtomicU64::new(hooks.export_panics),
            crash_left: AtomicBool::new(hooks.crash_export_thread),
            hooks,
        }
    }
}

/// Takes one from a planted-fault budget; whether there was one.
fn take(left: &AtomicU64) -> bool {
    left.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok()
}

/// Runs a future, turning a panic while polling it into `Err`.
struct CatchUnwind<F>(Pin<Box<F>>);

impl<F: Future> Future for CatchUnwind<F> {
    type Output = Result<F::Output, ()>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let inner = &mut self.0;
        match catch_unwind(AssertUnwindSafe(|| inner.as_mut().poll(cx))) {
            Ok(Poll::Ready(value)) => Poll::Ready(Ok(value)),
            Ok(Poll::Pending) => Poll::Pending,
            Err(_) => Poll::Ready(Err(())),
        }
    }
}

/// Armed while a batch is in export: if the export thread unwinds past it (a panic nothing
/// caught), the thread is gone — its batch is counted failed (panic), everything still
/// queued failed (worker gone), and later spans are counted failed at once, not queued for a
/// thread that will never take them.
struct ExportThreadGuard<'a> {
    counters: &'a Counters,
    batch: u64,
}

impl Drop for ExportThreadGuard<'_> {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            return;
        }
        let c = self.counters;
        let _closed = c.ending.write().unwrap_or_else(PoisonError::into_inner);
        c.worker_gone.store(true, Ordering::SeqCst);
        c.failed_panic.fetch_add(self.batch, Ordering::SeqCst);
        c.in_export.fetch_sub(self.batch, Ordering::SeqCst);
        let queued = c.queued.swap(0, Ordering::SeqCst);
        c.failed_worker_gone.fetch_add(queued, Ordering::SeqCst);
    }
}

impl<E: SpanExporter> SpanExporter for CountingExporter<E> {
    async fn export(&self, mut batch: Vec<SpanData>) -> OTelSdkResult {
        let total = batch.len() as u64;
        // A planted fault: spans vanish before anything counts them.
        let lose = self.to_lose.load(Ordering::SeqCst).min(total);
        if lose > 0 {
            self.to_lose.fetch_sub(lose, Ordering::SeqCst);
            batch.drain(..lose as usize);
        }
        if let Some(gate) = &self.hooks.export_gate {
            gate.wait();
        }
        let c = &self.counters;
        let n = batch.len() as u64;
        c.queued.fetch_sub(total, Ordering::SeqCst);
        c.handed_to_exporter.fetch_add(n, Ordering::SeqCst);
        c.in_export.fetch_add(n, Ordering::SeqCst);
        let guard = ExportThreadGuard { counters: c, batch: n };
        if self.crash_left.swap(false, Ordering::SeqCst) {
            panic!("planted fault: the export thread dies");
        }
        let started = std::time::Instant::now();
        let result = if take(&self.errors_left) {
            Ok(Err(OTelSdkError::InternalFailure("planted fault: the exporter failed to serialize the batch".into())))
        } else {
            let planted_panic = take(&self.panics_left);
            CatchUnwind(Box::pin(async move {
                if planted_panic {
                    panic!("planted fault: the exporter panics");
                }
                self.inner.export(batch).await
            }))
            .await
        };
        c.observe_export(started.elapsed());
        let result = match result {
            Ok(Ok(())) => {
                c.exported_ok.fetch_add(n, Ordering::SeqCst);
                Ok(())
            }
            Ok(Err(e)) => {
                c.failed_error.fetch_add(n, Ordering::SeqCst);
                Err(e)
            }
            Err(()) => {
                c.failed_panic.fetch_add(n, Ordering::SeqCst);
                Err(OTelSdkError::InternalFailure("the exporter panicked (caught; the batch is counted failed)".into()))
            }
        };
        c.in_export.fetch_sub(n, Ordering::SeqCst);
        std::mem::forget(guard);
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
pub(crate) struct CountingHttpClient {
    pub(crate) inner: reqwest::blocking::Client,
    pub(crate) counters: Arc<Counters>,
    pub(crate) retry: retry::RetryPolicy,
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
