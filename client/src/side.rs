//! The side channels of an LLM tracing SDK, built so they never block the caller: the fix for
//! the analysis's first critical problem (evaluation and tag calls that held the caller for
//! up to 30 s while the API was slow).
//!
//! - [`SideChannels::evaluate`] puts an evaluation in a bounded queue (default 1,000) that a
//!   background worker sends in batches. A full queue refuses the *new* evaluation (tail drop,
//!   as the OpenTelemetry batch processor does with spans) and counts it; the caller never
//!   waits.
//! - [`SideChannels::tag`] adds tags to a per-trace, de-duplicated buffer (bounded, default
//!   10,000 tags; beyond it new tags are dropped and counted), flushed as one batch request
//!   every interval or when it holds `tag_flush_size` tags.
//! - Both send with retries ([`crate::retry`]): exponential backoff with full jitter, for 429,
//!   502, 503, 504 and network errors only, `Retry-After` honoured, attempts and total time
//!   bounded. A batch that still fails is counted failed with its status, and logged once per
//!   endpoint and status.
//!
//! Every item is counted where it happens, so these identities are checks that can fail:
//!
//! ```text
//! evaluations: offered  = enqueued + dropped + refused   enqueued = sent + failed + in_flight + unsent
//! tags:        offered  = buffered + deduplicated + dropped
//!              buffered = flushed + failed + in_flight + unsent
//! ```
//!
//! `unsent` is the remainder: 0 after a shutdown that completed (queue and buffer drained);
//! when shutdown gave up at its bound, what was left.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::{Value, json};

use crate::ExportGate;
use crate::retry::{self, Jitter, Outcome, RetryPolicy};

/// Settings of the side channels.
#[derive(Clone, Debug)]
pub struct SideConfig {
    /// The API's base, e.g. `http://127.0.0.1:4318/api/v1` (`/evaluations` and `/tags` are
    /// appended).
    pub base_url: String,
    /// Sent with every request (API keys): never logged.
    pub headers: Vec<(String, String)>,
    /// Evaluations waiting to be sent, at most.
    pub evaluation_queue: usize,
    /// Evaluations per request, at most.
    pub evaluation_batch: usize,
    /// The tag buffer is flushed at least this often.
    pub tag_flush_interval: Duration,
    /// ... and as soon as it holds this many tags.
    pub tag_flush_size: usize,
    /// Tags buffered, at most; more are dropped and counted.
    pub tag_buffer_max: usize,
    /// One request's bound.
    pub request_timeout: Duration,
    /// Retries of a failed request.
    pub retry: RetryPolicy,
    /// Shutdown sends what is left within this bound, then gives up.
    pub shutdown_timeout: Duration,
    /// An evaluation nested deeper than this (objects and arrays) is refused and counted:
    /// serializing or dropping it would recurse that deep on the worker's stack.
    pub max_evaluation_depth: usize,
    /// An evaluation larger than this (strings, keys and 8 bytes a scalar) is refused and
    /// counted.
    pub max_evaluation_bytes: usize,
    /// Faults for tests.
    pub hooks: SideHooks,
}

impl Default for SideConfig {
    fn default() -> Self {
        SideConfig {
            base_url: "http://127.0.0.1:4318/api/v1".into(),
            headers: Vec::new(),
            evaluation_queue: 1_000,
            evaluation_batch: 100,
            tag_flush_interval: Duration::from_secs(1),
            tag_flush_size: 500,
            tag_buffer_max: 10_000,
            request_timeout: Duration::from_secs(10),
            retry: RetryPolicy::default(),
            shutdown_timeout: Duration::from_secs(5),
            max_evaluation_depth: 64,
            max_evaluation_bytes: 1 << 20,
            hooks: SideHooks::default(),
        }
    }
}

/// Faults planted for tests. All off by default.
#[derive(Clone, Debug, Default)]
pub struct SideHooks {
    /// The workers wait at this gate before each request (a worker that is stuck or gone).
    pub worker_gate: Option<ExportGate>,
    /// The fix switched off: `evaluate` and `tag` send on the caller's thread and wait for the
    /// answer, as the analysed SDK did. The suites must catch this.
    pub synchronous: bool,
    /// The first this many batches (evaluations or tags) panic while being sent: a crashing
    /// worker. Caught: the batch is counted failed and the worker goes on.
    pub panic_batches: u64,
}

/// The side channels' counts; see the module docs for the identities.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct SideHealth {
    /// Evaluations offered to `evaluate`.
    pub evaluations_offered: u64,
    /// Taken into the queue.
    pub evaluations_enqueued: u64,
    /// Refused by the full queue (or after shutdown).
    pub evaluations_dropped: u64,
    /// Refused as too deep or too large ([`SideConfig::max_evaluation_depth`], `_bytes`).
    pub evaluations_refused: u64,
    /// In batches the API accepted (2xx).
    pub evaluations_sent: u64,
    /// In batches that failed for good.
    pub evaluations_failed: u64,
    /// Taken by the worker, not yet answered.
    pub evaluations_in_flight: u64,
    /// Left over (the remainder; 0 after a completed shutdown).
    pub evaluations_unsent: u64,
    /// Tags offered to `tag`.
    pub tags_offered: u64,
    /// New tags taken into the buffer.
    pub tags_buffered: u64,
    /// Tags the buffer already held for that trace.
    pub tags_deduplicated: u64,
    /// Refused by the full buffer.
    pub tags_dropped: u64,
    /// In batches the API accepted.
    pub tags_flushed: u64,
    /// In batches that failed for good.
    pub tags_failed: u64,
    /// Being sent.
    pub tags_in_flight: u64,
    /// Left over (the remainder).
    pub tags_unsent: u64,
    /// Requests sent again after a retryable failure.
    pub retries: u64,
    /// Batches whose sending panicked (caught; counted failed).
    pub worker_panics: u64,
    /// Answers other than 2xx and network errors, by `endpoint status` (`network` for none).
    pub api_errors: BTreeMap<String, u64>,
    /// Log lines written about them: one per endpoint and status, however many there were.
    pub logged: u64,
    /// Shutdown sent everything within its bound.
    pub shutdown_completed: bool,
}

impl SideHealth {
    /// Whether every evaluation and tag is accounted for: each offered one taken, dropped or
    /// refused (tags: or a duplicate); after a completed shutdown, each taken one sent or
    /// failed, none left in flight or unsent.
    pub fn is_balanced(&self) -> bool {
        let offered = self.evaluations_offered
            == self.evaluations_enqueued + self.evaluations_dropped + self.evaluations_refused
            && self.tags_offered == self.tags_buffered + self.tags_deduplicated + self.tags_dropped;
        let done = !self.shutdown_completed
            || (self.evaluations_in_flight + self.evaluations_unsent + self.tags_in_flight + self.tags_unsent == 0
                && self.evaluations_enqueued == self.evaluations_sent + self.evaluations_failed
                && self.tags_buffered == self.tags_flushed + self.tags_failed);
        offered && done
    }
}

#[derive(Debug, Default)]
struct Counters {
    evaluations_offered: AtomicU64,
    evaluations_enqueued: AtomicU64,
    evaluations_dropped: AtomicU64,
    evaluations_refused: AtomicU64,
    evaluations_sent: AtomicU64,
    evaluations_failed: AtomicU64,
    evaluations_in_flight: AtomicU64,
    tags_offered: AtomicU64,
    tags_buffered: AtomicU64,
    tags_deduplicated: AtomicU64,
    tags_dropped: AtomicU64,
    tags_flushed: AtomicU64,
    tags_failed: AtomicU64,
    tags_in_flight: AtomicU64,
    retries: AtomicU64,
    worker_panics: AtomicU64,
    panics_left: AtomicU64,
    api_errors: Mutex<BTreeMap<String, u64>>,
    logged: AtomicU64,
    shutdown_completed: AtomicBool,
}

#[derive(Debug, Default)]
struct TagBuffer {
    traces: HashMap<String, BTreeSet<String>>,
    held: usize,
    closing: bool,
}

#[derive(Debug)]
struct Shared {
    config: SideConfig,
    counters: Counters,
    tags: Mutex<TagBuffer>,
    tags_ready: Condvar,
    /// Set when shutdown gave up: workers stop retrying and sending.
    abandon: AtomicBool,
    http: Mutex<Option<reqwest::blocking::Client>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The side channels: cheap to call from any thread.
#[derive(Debug)]
pub struct SideChannels {
    shared: Arc<Shared>,
    evaluations: Mutex<Option<SyncSender<Value>>>,
    workers: Mutex<Vec<std::thread::JoinHandle<()>>>,
}

impl SideChannels {
    /// Starts the two background workers.
    pub fn start(config: SideConfig) -> SideChannels {
        let (tx, rx) = mpsc::sync_channel(config.evaluation_queue.max(1));
        let panic_batches = config.hooks.panic_batches;
        // The blocking HTTP client owns a runtime: built on a thread of its own (see lib.rs).
        let timeout = config.request_timeout;
        let http = std::thread::spawn(move || reqwest::blocking::Client::builder().timeout(timeout).build().ok())
            .join()
            .ok()
            .flatten();
        let shared = Arc::new(Shared {
            config,
            counters: Counters { panics_left: AtomicU64::new(panic_batches), ..Counters::default() },
            tags: Mutex::new(TagBuffer::default()),
            tags_ready: Condvar::new(),
            abandon: AtomicBool::new(false),
            http: Mutex::new(http),
        });
        let (a, b) = (Arc::clone(&shared), Arc::clone(&shared));
        let workers = vec![
            std::thread::Builder::new().name("side-evaluations".into()).spawn(move || evaluation_worker(&a, &rx)),
            std::thread::Builder::new().name("side-tags".into()).spawn(move || tag_worker(&b)),
        ];
        SideChannels {
            shared,
            evaluations: Mutex::new(Some(tx)),
            workers: Mutex::new(workers.into_iter().filter_map(Result::ok).collect()),
        }
    }

    /// Queues an evaluation; returns whether it was taken (false: the queue was full, or the
    /// channels are shut down, and it was counted dropped). Never waits for the network.
    pub fn evaluate(&self, evaluation: Value) -> bool {
        let c = &self.shared.counters;
        c.evaluations_offered.fetch_add(1, Ordering::Relaxed);
        let config = &self.shared.config;
        if !within_limits(&evaluation, config.max_evaluation_depth, config.max_evaluation_bytes) {
            c.evaluations_refused.fetch_add(1, Ordering::Relaxed);
            drop_flat(evaluation);
            return false;
        }
        if self.shared.config.hooks.synchronous {
            c.evaluations_enqueued.fetch_add(1, Ordering::Relaxed);
            c.evaluations_in_flight.fetch_add(1, Ordering::Relaxed);
            send_evaluations(&self.shared, vec![evaluation]);
            return true;
        }
        let sender = lock(&self.evaluations).clone();
        match sender.map(|tx| tx.try_send(evaluation)) {
            Some(Ok(())) => {
                c.evaluations_enqueued.fetch_add(1, Ordering::Relaxed);
                true
            }
            Some(Err(TrySendError::Full(_) | TrySendError::Disconnected(_))) | None => {
                c.evaluations_dropped.fetch_add(1, Ordering::Relaxed);
                false
            }
        }
    }

    /// Adds tags to a trace's buffer; returns how many were new and taken. Never waits for the
    /// network.
    pub fn tag(&self, trace_id: &str, tags: &[&str]) -> usize {
        let shared = &self.shared;
        let c = &shared.counters;
        c.tags_offered.fetch_add(tags.len() as u64, Ordering::Relaxed);
        let mut taken = 0;
        let flush = {
            let mut buffer = lock(&shared.tags);
            let max = shared.config.tag_buffer_max;
            for tag in tags {
                let known = buffer.traces.get(trace_id).is_some_and(|set| set.contains(*tag));
                if known {
                    c.tags_deduplicated.fetch_add(1, Ordering::Relaxed);
                } else if buffer.held >= max || buffer.closing {
                    c.tags_dropped.fetch_add(1, Ordering::Relaxed);
                } else {
                    buffer.traces.entry(trace_id.to_string()).or_default().insert((*tag).to_string());
                    buffer.held += 1;
                    taken += 1;
                }
            }
            c.tags_buffered.fetch_add(taken as u64, Ordering::Relaxed);
            buffer.held >= shared.config.tag_flush_size
        };
        if shared.config.hooks.synchronous {
            flush_tags(shared);
        } else if flush {
            shared.tags_ready.notify_one();
        }
        taken
    }

    /// The counts now.
    pub fn health(&self) -> SideHealth {
        health(&self.shared.counters)
    }

    /// Sends what is queued and buffered, within `shutdown_timeout`; then stops the workers
    /// (abandoning what is left if the bound passed). Calls after this are counted dropped.
    pub fn shutdown(&self) -> SideHealth {
        let shared = &self.shared;
        drop(lock(&self.evaluations).take());
        lock(&shared.tags).closing = true;
        shared.tags_ready.notify_all();
        let workers: Vec<_> = lock(&self.workers).drain(..).collect();
        let (done_tx, done_rx) = mpsc::channel();
        std::thread::spawn(move || {
            for worker in workers {
                let _ = worker.join();
            }
            let _ = done_tx.send(());
        });
        let completed = done_rx.recv_timeout(shared.config.shutdown_timeout).is_ok();
        if !completed {
            shared.abandon.store(true, Ordering::SeqCst);
        }
        // The blocking client owns a runtime: never dropped on the caller's thread, which may
        // be inside an async context. Workers still sending hold clones of their own.
        let http = lock(&shared.http).take();
        let _ = std::thread::spawn(move || drop(http)).join();
        shared.counters.shutdown_completed.store(completed, Ordering::SeqCst);
        health(&shared.counters)
    }

    /// The health counts as Prometheus text (`reliability_client_side_*`), via the prometheus
    /// crate.
    pub fn metrics(&self) -> String {
        render_metrics(&self.health())
    }
}

impl Drop for SideChannels {
    fn drop(&mut self) {
        if !lock(&self.workers).is_empty() {
            self.shutdown();
        }
    }
}

fn health(c: &Counters) -> SideHealth {
    let load = |a: &AtomicU64| a.load(Ordering::SeqCst);
    let (enqueued, sent, failed, in_flight) = (
        load(&c.evaluations_enqueued),
        load(&c.evaluations_sent),
        load(&c.evaluations_failed),
        load(&c.evaluations_in_flight),
    );
    let (buffered, flushed, tags_failed, tags_in_flight) =
        (load(&c.tags_buffered), load(&c.tags_flushed), load(&c.tags_failed), load(&c.tags_in_flight));
    SideHealth {
        evaluations_offered: load(&c.evaluations_offered),
        evaluations_enqueued: enqueued,
        evaluations_dropped: load(&c.evaluations_dropped),
        evaluations_refused: load(&c.evaluations_refused),
        evaluations_sent: sent,
        evaluations_failed: failed,
        evaluations_in_flight: in_flight,
        evaluations_unsent: enqueued.saturating_sub(sent + failed + in_flight),
        tags_offered: load(&c.tags_offered),
        tags_buffered: buffered,
        tags_deduplicated: load(&c.tags_deduplicated),
        tags_dropped: load(&c.tags_dropped),
        tags_flushed: flushed,
        tags_failed,
        tags_in_flight,
        tags_unsent: buffered.saturating_sub(flushed + tags_failed + tags_in_flight),
        retries: load(&c.retries),
        worker_panics: load(&c.worker_panics),
        api_errors: lock(&c.api_errors).clone(),
        logged: load(&c.logged),
        shutdown_completed: c.shutdown_completed.load(Ordering::SeqCst),
    }
}

/// Whether `value` nests at most `depth` deep and weighs at most `bytes` (strings and keys
/// by length, scalars 8 bytes). Walks with a stack of its own, and stops at the first limit
/// passed, so a pathological value costs the caller no deep recursion and little time.
fn within_limits(value: &Value, depth: usize, bytes: usize) -> bool {
    let mut stack = vec![(value, 1usize)];
    let mut weight = 0usize;
    while let Some((v, d)) = stack.pop() {
        if d > depth {
            return false;
        }
        weight += match v {
            Value::String(s) => s.len(),
            Value::Array(items) => {
                stack.extend(items.iter().map(|i| (i, d + 1)));
                8
            }
            Value::Object(map) => {
                stack.extend(map.iter().map(|(k, i)| {
                    weight += k.len();
                    (i, d + 1)
                }));
                8
            }
            _ => 8,
        };
        if weight > bytes {
            return false;
        }
    }
    true
}

/// Drops a value without recursing: serde_json's own drop recurses as deep as the value nests.
fn drop_flat(value: Value) {
    let mut stack = vec![value];
    while let Some(v) = stack.pop() {
        match v {
            Value::Array(items) => stack.extend(items),
            Value::Object(map) => stack.extend(map.into_iter().map(|(_, v)| v)),
            _ => {}
        }
    }
}

fn evaluation_worker(shared: &Shared, rx: &Receiver<Value>) {
    let batch_max = shared.config.evaluation_batch.max(1);
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while batch.len() < batch_max {
            match rx.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
        shared.counters.evaluations_in_flight.fetch_add(batch.len() as u64, Ordering::SeqCst);
        if let Some(gate) = &shared.config.hooks.worker_gate {
            gate.wait();
        }
        if shared.abandon.load(Ordering::SeqCst) {
            return;
        }
        send_evaluations(shared, batch);
    }
}

/// Sends `body`; a panic while sending (a planted one, or a bug) is caught and counted, and
/// the batch counts as failed: the worker lives on.
fn send_caught(shared: &Shared, endpoint: &str, body: impl FnOnce() -> Value) -> bool {
    let c = &shared.counters;
    let sent = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        if c.panics_left.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok() {
            panic!("planted fault: the {endpoint} worker panics");
        }
        send_with_retries(shared, endpoint, &body())
    }));
    sent.unwrap_or_else(|_| {
        c.worker_panics.fetch_add(1, Ordering::SeqCst);
        false
    })
}

/// Sends a batch whose items are counted in flight; moves them to sent or failed.
fn send_evaluations(shared: &Shared, batch: Vec<Value>) {
    let n = batch.len() as u64;
    let ok = send_caught(shared, "evaluations", || json!({ "evaluations": batch }));
    let c = &shared.counters;
    if ok { &c.evaluations_sent } else { &c.evaluations_failed }.fetch_add(n, Ordering::SeqCst);
    c.evaluations_in_flight.fetch_sub(n, Ordering::SeqCst);
}

fn tag_worker(shared: &Shared) {
    loop {
        let closing = {
            let buffer = lock(&shared.tags);
            let interval = shared.config.tag_flush_interval;
            let flush_size = shared.config.tag_flush_size;
            let (buffer, _) = shared
                .tags_ready
                .wait_timeout_while(buffer, interval, |b| !b.closing && b.held < flush_size)
                .unwrap_or_else(PoisonError::into_inner);
            buffer.closing
        };
        if let Some(gate) = &shared.config.hooks.worker_gate {
            gate.wait();
        }
        if shared.abandon.load(Ordering::SeqCst) {
            return;
        }
        flush_tags(shared);
        if closing && lock(&shared.tags).held == 0 {
            return;
        }
    }
}

/// Takes the buffer and sends it as one batch.
fn flush_tags(shared: &Shared) {
    let (traces, held) = {
        let mut buffer = lock(&shared.tags);
        let held = std::mem::take(&mut buffer.held) as u64;
        // Counted in flight while the lock is held, so no reader sees them nowhere.
        shared.counters.tags_in_flight.fetch_add(held, Ordering::SeqCst);
        (std::mem::take(&mut buffer.traces), held)
    };
    if held == 0 {
        return;
    }
    let mut items: Vec<Value> =
        traces.into_iter().map(|(trace, tags)| json!({ "trace_id": trace, "tags": tags })).collect();
    items.sort_by(|a, b| a["trace_id"].as_str().cmp(&b["trace_id"].as_str()));
    let ok = send_caught(shared, "tags", || json!({ "tags": items }));
    let c = &shared.counters;
    if ok { &c.tags_flushed } else { &c.tags_failed }.fetch_add(held, Ordering::SeqCst);
    c.tags_in_flight.fetch_sub(held, Ordering::SeqCst);
}

/// POSTs `body` to `endpoint` under the retry policy; whether it was accepted.
fn send_with_retries(shared: &Shared, endpoint: &str, body: &Value) -> bool {
    let config = &shared.config;
    let url = format!("{}/{endpoint}", config.base_url.trim_end_matches('/'));
    let body = body.to_string();
    let first = Instant::now();
    let mut jitter = Jitter::from_clock();
    for attempt in 1.. {
        if shared.abandon.load(Ordering::SeqCst) {
            return false;
        }
        let outcome = post(shared, &url, &body);
        if outcome == Outcome::Success {
            return true;
        }
        let key = match &outcome {
            Outcome::Status { code, .. } => format!("{endpoint} {code}"),
            _ => format!("{endpoint} network"),
        };
        let first_of_kind = {
            let mut errors = lock(&shared.counters.api_errors);
            let n = errors.entry(key.clone()).or_default();
            *n += 1;
            *n == 1
        };
        if first_of_kind {
            shared.counters.logged.fetch_add(1, Ordering::SeqCst);
            tracing::warn!(target: "reliability_client::side", "side channel {key}: the first such answer (later ones are counted, not logged)");
        }
        match config.retry.next_wait(attempt, &outcome, first.elapsed(), jitter.unit()) {
            Some(wait) => {
                shared.counters.retries.fetch_add(1, Ordering::SeqCst);
                std::thread::sleep(wait);
            }
            None => return false,
        }
    }
    false
}

fn post(shared: &Shared, url: &str, body: &str) -> Outcome {
    let http = lock(&shared.http).clone();
    let Some(http) = http else { return Outcome::Network };
    let mut request = http.post(url).header("content-type", "application/json").body(body.to_string());
    for (name, value) in &shared.config.headers {
        request = request.header(name, value);
    }
    match request.send() {
        Ok(response) => {
            let retry_after = response.headers().get("retry-after").and_then(|v| v.to_str().ok());
            retry::outcome(Some(response.status().as_u16()), retry_after)
        }
        Err(_) => Outcome::Network,
    }
}

/// Renders the side channels' health as Prometheus text.
pub fn render_metrics(h: &SideHealth) -> String {
    let registry = prometheus::Registry::new();
    register_metrics(&registry, h);
    crate::accounting::encode(&registry)
}

/// Adds the side channels' health to `registry`.
pub(crate) fn register_metrics(registry: &prometheus::Registry, h: &SideHealth) {
    use prometheus::{IntCounterVec, IntGauge, Opts};
    let family = |name: &str, help: &str, labels: &[&str]| {
        let v = IntCounterVec::new(Opts::new(name, help), labels).unwrap_or_else(|e| panic!("side metrics: {e}"));
        let _ = registry.register(Box::new(v.clone()));
        v
    };
    let evaluations = family(
        "reliability_client_side_evaluations_total",
        "Evaluations by fate (offered = enqueued + dropped).",
        &["fate"],
    );
    for (fate, n) in [
        ("offered", h.evaluations_offered),
        ("enqueued", h.evaluations_enqueued),
        ("dropped", h.evaluations_dropped),
        ("refused", h.evaluations_refused),
        ("sent", h.evaluations_sent),
        ("failed", h.evaluations_failed),
    ] {
        evaluations.with_label_values(&[fate]).inc_by(n);
    }
    let tags = family("reliability_client_side_tags_total", "Tags by fate.", &["fate"]);
    for (fate, n) in [
        ("offered", h.tags_offered),
        ("buffered", h.tags_buffered),
        ("deduplicated", h.tags_deduplicated),
        ("dropped", h.tags_dropped),
        ("flushed", h.tags_flushed),
        ("failed", h.tags_failed),
    ] {
        tags.with_label_values(&[fate]).inc_by(n);
    }
    let errors = family(
        "reliability_client_side_api_errors_total",
        "Side-channel answers other than 2xx, by endpoint and status (network: none).",
        &["endpoint", "status"],
    );
    for (key, n) in &h.api_errors {
        let (endpoint, status) = key.split_once(' ').unwrap_or((key, ""));
        errors.with_label_values(&[endpoint, status]).inc_by(*n);
    }
    let retries = family("reliability_client_side_retries_total", "Requests sent again.", &[]);
    retries.with_label_values::<&str>(&[]).inc_by(h.retries);
    let panics = family("reliability_client_side_worker_panics_total", "Batches whose sending panicked.", &[]);
    panics.with_label_values::<&str>(&[]).inc_by(h.worker_panics);
    let queued = IntGauge::new("reliability_client_side_evaluations_queued", "Evaluations waiting in the queue.")
        .unwrap_or_else(|e| panic!("side metrics: {e}"));
    let _ = registry.register(Box::new(queued.clone()));
    queued.set(h.evaluations_unsent as i64);
}
