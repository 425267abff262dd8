//! The HTTP server: routing, auth, the ingest path with faults and exact accounting, the query
//! and admin API, the ledger, and `/metrics`. The side channels' handling is in `side_http.rs`
//! and the fault-plan endpoints in `faults_http.rs` (child modules: they share the state).
//!
//! Built on hyper directly (not a framework) because two faults need control a framework
//! hides: closing a connection without answering (the service returns an error and hyper
//! drops the connection) and reading a body slowly (frame by frame, paced).

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::Incoming;
use serde::Serialize;
use tokio::sync::watch;

use crate::backend::faults::{Action, ActivePlan, Decision, FaultPlan};
use crate::backend::ingest::{self, Encoding};
use crate::backend::side::{Channel, SideStore};
use crate::backend::store::{Limits, Store};
use crate::backend::telemetry::Telemetry;

#[path = "faults_http.rs"]
mod faults_http;
#[path = "side_http.rs"]
mod side_http;

/// The backend's settings. `Debug` shows whether a token is set, never the token.
#[derive(Clone)]
pub struct Config {
    /// Where to listen; loopback unless told otherwise.
    pub listen: SocketAddr,
    /// Largest request body, after decompression (413 above). OTLP recommends 64 MiB.
    pub max_request_bytes: u64,
    /// Storage limits (503 with `Retry-After` when full).
    pub limits: Limits,
    /// Take the project from this request header instead of `service.name`.
    pub project_header: Option<String>,
    /// Required on ingest and query when set: `Authorization: Bearer <token>` or
    /// `x-api-key: <token>`. Read from an environment variable by the caller; never logged.
    pub auth_token: Option<String>,
    /// Ledger entries kept (oldest dropped first, and counted).
    pub ledger_capacity: usize,
    /// The global fault plan at start-up.
    pub faults: Option<FaultPlan>,
    /// Allow a non-loopback `listen` without `auth_token` (see [`Config::check_exposure`]).
    pub allow_unauthenticated: bool,
    /// Connections served at once; more wait in the kernel's accept queue.
    pub max_connections: usize,
    /// How long a connection may take to send a request's headers, and how long it may sit
    /// idle between requests, before it is closed (slow or idle clients cannot pin a slot).
    pub header_timeout: Duration,
    /// How long a request body may take to arrive (408 past it).
    pub body_timeout: Duration,
    /// Ingest requests handled at once (fault latency included); more wait their turn inside
    /// the server. None: no limit. With a fixed latency it makes a target of known capacity
    /// (`max_concurrent_ingest / latency` requests/s), which the load tool's capacity search
    /// is measured against.
    pub max_concurrent_ingest: Option<usize>,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("listen", &self.listen)
            .field("max_request_bytes", &self.max_request_bytes)
            .field("limits", &self.limits)
            .field("project_header", &self.project_header)
            .field("auth_token", &self.auth_token.as_ref().map(|_| "<redacted>"))
            .field("ledger_capacity", &self.ledger_capacity)
            .field("faults", &self.faults)
            .field("allow_unauthenticated", &self.allow_unauthenticated)
            .field("max_connections", &self.max_connections)
            .field("header_timeout", &self.header_timeout)
            .field("body_timeout", &self.body_timeout)
            .field("max_concurrent_ingest", &self.max_concurrent_ingest)
            .finish()
    }
}

/// Listening beyond loopback with nothing to stop strangers from setting fault plans and
/// deleting projects.
#[derive(Debug, thiserror::Error)]
#[error(
    "refusing to listen on {0} without credentials: set a token (--auth-token-env) or say \
     --allow-unauthenticated (Config::allow_unauthenticated)"
)]
pub struct ExposedError(pub SocketAddr);

impl Config {
    /// A non-loopback `listen` needs `auth_token`, unless `allow_unauthenticated` says so.
    pub fn check_exposure(&self) -> Result<(), ExposedError> {
        match self.listen.ip().is_loopback() || self.auth_token.is_some() || self.allow_unauthenticated {
            true => Ok(()),
            false => Err(ExposedError(self.listen)),
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            max_request_bytes: 64 << 20,
            limits: Limits::default(),
            project_header: None,
            auth_token: None,
            ledger_capacity: 100_000,
            faults: None,
            allow_unauthenticated: false,
            max_connections: 4096,
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            max_concurrent_ingest: None,
        }
    }
}

/// One ingest request, as the ledger keeps it.
#[derive(Clone, Debug, Serialize)]
pub struct LedgerEntry {
    /// Order of arrival, from 0.
    pub seq: u64,
    /// `traces`, `evaluations` or `tags`.
    pub endpoint: &'static str,
    /// Arrival, Unix milliseconds.
    pub arrival_unix_ms: u64,
    /// Body bytes as received.
    pub bytes: u64,
    /// Bytes after decompression.
    pub decoded_bytes: u64,
    /// `protobuf`, `json`, or none when the content type was refused.
    pub encoding: Option<&'static str>,
    /// Whether the body was gzip-compressed.
    pub gzip: bool,
    /// Spans in the request (0 when it could not be decoded).
    pub spans: u64,
    /// Items in a side-channel request (evaluations, or trace-tag pairs); 0 for trace ingest.
    pub items: u64,
    /// The project (of the first resource, or the header).
    pub project: Option<String>,
    /// Status answered; none when the connection was closed without an answer.
    pub status: Option<u16>,
    /// The fault applied, if any (`status_503`, `hang`, `close`, ...).
    pub fault: Option<String>,
    /// Why spans were refused, if they were.
    pub rejected_reason: Option<String>,
    /// Time from arrival to answer (or close), milliseconds.
    pub handling_ms: f64,
}

#[derive(Debug)]
struct Ledger {
    entries: VecDeque<LedgerEntry>,
    capacity: usize,
    next_seq: u64,
    dropped: u64,
}

struct Plans {
    global: Option<(ActivePlan, Instant)>,
    projects: HashMap<String, (ActivePlan, Instant)>,
    side: HashMap<Channel, (ActivePlan, Instant)>,
}

impl std::fmt::Debug for Plans {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plans").field("projects", &self.projects.len()).finish_non_exhaustive()
    }
}

/// Shared by the connection tasks.
#[derive(Debug)]
pub(crate) struct State {
    ingest_slots: Option<Arc<tokio::sync::Semaphore>>,
    config: Config,
    store: Mutex<Store>,
    side: Mutex<SideStore>,
    ledger: Mutex<Ledger>,
    plans: Mutex<Plans>,
    telemetry: Telemetry,
    shutdown: watch::Receiver<bool>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Returned by the service to make hyper drop the connection without an answer.
#[derive(Debug)]
pub(crate) struct CloseConnection;

impl std::fmt::Display for CloseConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection closed by fault injection")
    }
}

impl std::error::Error for CloseConnection {}

type Answer = Result<Response<Full<Bytes>>, CloseConnection>;

fn respond(status: u16, content_type: &str, body: Vec<u8>) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if let Ok(value) = header::HeaderValue::from_str(content_type) {
        response.headers_mut().insert(header::CONTENT_TYPE, value);
    }
    response
}

fn json<T: Serialize>(status: u16, value: &T) -> Response<Full<Bytes>> {
    respond(status, "application/json", serde_json::to_vec(value).unwrap_or_default())
}

/// Adds `Retry-After` (seconds, or an HTTP date that many seconds ahead) when asked for.
fn with_retry_after(
    mut response: Response<Full<Bytes>>,
    seconds: Option<u64>,
    http_date: bool,
) -> Response<Full<Bytes>> {
    if let Some(secs) = seconds {
        let value = match http_date {
            true => httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(secs)),
            false => secs.to_string(),
        };
        if let Ok(value) = header::HeaderValue::from_str(&value) {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
    }
    response
}

fn json_error(status: u16, message: &str) -> Response<Full<Bytes>> {
    json(status, &serde_json::json!({ "error": message }))
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_millis() as u64
}

/// Compares a presented token with the real one in time that does not depend on where they
/// differ (only on their lengths), so response times do not leak the token byte by byte.
fn same_secret(presented: &str, token: &str) -> bool {
    use subtle::ConstantTimeEq as _;
    presented.as_bytes().ct_eq(token.as_bytes()).into()
}

/// A path segment, `%xx`-decoded (`+` stays a plus, as in any path); invalid UTF-8 becomes
/// U+FFFD.
fn path_segment(s: &str) -> String {
    percent_encoding::percent_decode_str(s).decode_utf8_lossy().into_owned()
}

/// The query's `key=value` pairs, decoded as a form (`%xx`, `+`) by `form_urlencoded`: bytes
/// that do not decode to UTF-8 become U+FFFD, never a panic.
fn query_pairs(query: Option<&str>) -> Vec<(String, String)> {
    form_urlencoded::parse(query.unwrap_or("").as_bytes()).map(|(k, v)| (k.into_owned(), v.into_owned())).collect()
}

impl State {
    pub(crate) fn new(config: Config, shutdown: watch::Receiver<bool>) -> State {
        let global = config.faults.clone().map(|plan| (ActivePlan::new(plan), Instant::now()));
        State {
            ingest_slots: config.max_concurrent_ingest.map(|n| Arc::new(tokio::sync::Semaphore::new(n.max(1)))),
            store: Mutex::new(Store::new(config.limits)),
            side: Mutex::new(SideStore::default()),
            ledger: Mutex::new(Ledger {
                entries: VecDeque::new(),
                capacity: config.ledger_capacity.max(1),
                next_seq: 0,
                dropped: 0,
            }),
            plans: Mutex::new(Plans { global, projects: HashMap::new(), side: HashMap::new() }),
            telemetry: Telemetry::new(),
            config,
            shutdown,
        }
    }

    fn authorized(&self, request: &Request<Incoming>) -> bool {
        let Some(token) = &self.config.auth_token else { return true };
        let headers = request.headers();
        let bearer = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .is_some_and(|t| same_secret(t, token));
        let api_key = headers.get("x-api-key").and_then(|v| v.to_str().ok()).is_some_and(|t| same_secret(t, token));
        bearer || api_key
    }

    fn record(&self, mut entry: LedgerEntry, started: Instant) {
        entry.handling_ms = started.elapsed().as_secs_f64() * 1e3;
        match Channel::from_label(entry.endpoint) {
            None => self.telemetry.request(entry.status, started.elapsed()),
            Some(channel) => self.telemetry.side_request(channel, entry.status),
        }
        let mut ledger = lock(&self.ledger);
        entry.seq = ledger.next_seq;
        ledger.next_seq += 1;
        if ledger.entries.len() == ledger.capacity {
            ledger.entries.pop_front();
            ledger.dropped += 1;
        }
        ledger.entries.push_back(entry);
    }

    /// The first decision: the global plan, or the header-named project's plan.
    fn decide_at_arrival(&self, header_project: Option<&str>) -> Decision {
        let mut plans = lock(&self.plans);
        if let Some((plan, set)) = header_project.and_then(|p| plans.projects.get_mut(p)) {
            return plan.decide(set.elapsed());
        }
        match plans.global.as_mut() {
            Some((plan, set)) => plan.decide(set.elapsed()),
            None => Decision { delay: Duration::ZERO, action: None },
        }
    }

    /// The second decision, once the body names the project (no project header).
    fn decide_for_project(&self, project: &str) -> Option<Decision> {
        let mut plans = lock(&self.plans);
        plans.projects.get_mut(project).map(|(plan, set)| plan.decide(set.elapsed()))
    }
}

/// Serves one request.
pub(crate) async fn handle(state: Arc<State>, request: Request<Incoming>) -> Answer {
    let path = request.uri().path().to_string();
    let method = request.method().clone();
    if path == "/-/ready" {
        return Ok(respond(200, "text/plain", b"ready\n".to_vec()));
    }
    if !state.authorized(&request) {
        let endpoint = match path.as_str() {
            "/v1/traces" => Some("traces"),
            "/api/v1/evaluations" | "/api/v1/tags" if method == Method::POST => path.rsplit('/').next(),
            _ => None,
        };
        if let Some(endpoint) = endpoint.and_then(|e| ["traces", "evaluations", "tags"].into_iter().find(|k| *k == e)) {
            let started = Instant::now();
            let entry = LedgerEntry {
                endpoint,
                status: Some(401),
                rejected_reason: Some("unauthorized".into()),
                ..blank_entry()
            };
            state.record(entry, started);
        }
        return Ok(json_error(401, "missing or wrong credentials: send Authorization: Bearer <token> or x-api-key"));
    }
    match (&method, path.as_str()) {
        (&Method::POST, "/v1/traces") => {
            // Held for the whole request, fault latency included (None: no limit).
            let _slot = match state.ingest_slots.clone() {
                Some(slots) => slots.acquire_owned().await.ok(),
                None => None,
            };
            ingest_request(state, request).await
        }
        (&Method::GET, "/metrics") => {
            Ok(respond(200, "text/plain; version=0.0.4", state.telemetry.render(&lock(&state.store))))
        }
        (&Method::GET, "/api/v1/ledger") => Ok(ledger(&state, request.uri().query())),
        (&Method::POST, "/api/v1/evaluations") => side_http::receive(state, Channel::Evaluations, request).await,
        (&Method::POST, "/api/v1/tags") => side_http::receive(state, Channel::Tags, request).await,
        (&Method::GET, "/api/v1/evaluations" | "/api/v1/tags" | "/api/v1/side/stats") => {
            Ok(side_http::query(&state, &path, request.uri().query()))
        }
        (&Method::GET, "/api/v1/projects") => {
            let projects: Vec<_> = lock(&state.store)
                .projects()
                .into_iter()
                .map(|(name, spans)| serde_json::json!({ "name": name, "spans": spans }))
                .collect();
            Ok(json(200, &serde_json::json!({ "projects": projects })))
        }
        (_, "/api/v1/faults") => match query_pairs(request.uri().query()).into_iter().find(|(k, _)| k == "endpoint") {
            None => faults_http::trace(&state, &method, None, request).await,
            Some((_, e)) if e == "traces" => faults_http::trace(&state, &method, None, request).await,
            Some((_, e)) => match Channel::from_label(&e) {
                Some(channel) => faults_http::side(&state, &method, channel, request).await,
                None => Ok(json_error(400, &format!("unknown endpoint {e:?}: traces, evaluations or tags"))),
            },
        },
        (_, p) if p.starts_with("/api/v1/projects/") => project_route(state, &method, p, request).await,
        _ => Ok(json_error(404, &format!("no route for {method} {path}"))),
    }
}

fn blank_entry() -> LedgerEntry {
    LedgerEntry {
        seq: 0,
        endpoint: "traces",
        arrival_unix_ms: now_ms(),
        bytes: 0,
        decoded_bytes: 0,
        encoding: None,
        gzip: false,
        spans: 0,
        items: 0,
        project: None,
        status: None,
        fault: None,
        rejected_reason: None,
        handling_ms: 0.0,
    }
}

async fn project_route(state: Arc<State>, method: &Method, path: &str, request: Request<Incoming>) -> Answer {
    let rest = &path["/api/v1/projects/".len()..];
    let (project, tail) = match rest.split_once('/') {
        Some((p, t)) => (path_segment(p), t),
        None => (path_segment(rest), ""),
    };
    match (method, tail) {
        (&Method::GET, "traces") => {
            let mut filters = Vec::new();
            let (mut limit, mut offset) = (100usize, 0usize);
            for (k, v) in query_pairs(request.uri().query()) {
                if let Some(attr) = k.strip_prefix("attr.") {
                    filters.push((attr.to_string(), v));
                } else if k == "limit" {
                    limit = v.parse().unwrap_or(limit).min(10_000);
                } else if k == "offset" {
                    offset = v.parse().unwrap_or(0);
                }
            }
            match lock(&state.store).traces(&project, &filters, offset, limit) {
                Some(page) => Ok(json(200, &page)),
                None => Ok(json_error(404, &format!("no project {project:?}"))),
            }
        }
        (&Method::GET, "stats") => match lock(&state.store).stats(&project) {
            Some(stats) => {
                let mut value = serde_json::to_value(&stats).unwrap_or_default();
                value["unique"] = stats.unique().into();
                Ok(json(200, &value))
            }
            None => Ok(json_error(404, &format!("no project {project:?}"))),
        },
        (&Method::DELETE, "") => {
            if lock(&state.store).delete(&project) {
                Ok(respond(204, "application/json", Vec::new()))
            } else {
                Ok(json_error(404, &format!("no project {project:?}")))
            }
        }
        (_, "faults") => faults_http::trace(&state, method, Some(project), request).await,
        _ => Ok(json_error(404, &format!("no route for {method} {path}"))),
    }
}

fn ledger(state: &State, query: Option<&str>) -> Response<Full<Bytes>> {
    let pairs = query_pairs(query);
    let project = pairs.iter().find(|(k, _)| k == "project").map(|(_, v)| v.clone());
    let endpoint = pairs.iter().find(|(k, _)| k == "endpoint").map(|(_, v)| v.clone());
    let since: u64 = pairs.iter().find(|(k, _)| k == "since").and_then(|(_, v)| v.parse().ok()).unwrap_or(0);
    let ledger = lock(&state.ledger);
    let entries: Vec<&LedgerEntry> = ledger
        .entries
        .iter()
        .filter(|e| e.seq >= since && project.as_ref().is_none_or(|p| e.project.as_ref() == Some(p)))
        .filter(|e| endpoint.as_ref().is_none_or(|p| e.endpoint == p))
        .collect();
    json(200, &serde_json::json!({ "entries": entries, "dropped": ledger.dropped }))
}

/// Why a body could not be read.
enum BodyError {
    /// Past the size limit.
    TooLarge,
    /// The client went away.
    Gone,
    /// The client did not send it within the body timeout.
    Slow,
}

/// Reads the body at `bytes_per_second`, frame by frame.
async fn read_slowly(body: Incoming, limit: u64, bytes_per_second: u64) -> Result<Vec<u8>, BodyError> {
    let mut body = body;
    let mut out = Vec::new();
    let started = Instant::now();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|_| BodyError::Gone)?;
        if let Ok(data) = frame.into_data() {
            out.extend_from_slice(&data);
            if out.len() as u64 > limit {
                return Err(BodyError::TooLarge);
            }
            let due = Duration::from_secs_f64(out.len() as f64 / bytes_per_second as f64);
            if let Some(wait) = due.checked_sub(started.elapsed()) {
                tokio::time::sleep(wait).await;
            }
        }
    }
    Ok(out)
}

async fn ingest_request(state: Arc<State>, request: Request<Incoming>) -> Answer {
    let started = Instant::now();
    let mut entry = blank_entry();
    let headers = request.headers();
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_string);
    let encoding = Encoding::from_content_type(header("content-type").as_deref());
    let content_encoding = header("content-encoding");
    let header_project = state.config.project_header.as_deref().and_then(header).filter(|p| !p.is_empty());
    entry.encoding = encoding.map(Encoding::label);
    entry.gzip = content_encoding.as_deref().is_some_and(|e| e.eq_ignore_ascii_case("gzip"));
    entry.project = header_project.clone();

    let fail = |state: &State, mut entry: LedgerEntry, status: u16, reason: &str, message: &str| {
        entry.status = Some(status);
        entry.rejected_reason = Some(reason.to_string());
        if let Some(project) = &entry.project {
            lock(&state.store).reject(project, reason, entry.spans);
        }
        state.telemetry.rejected(reason, entry.spans);
        state.record(entry, started);
        let (body, content_type) = ingest::error_body(encoding, status, message);
        Ok(respond(status, content_type, body))
    };
    let Some(encoding) = encoding else {
        return fail(
            &state,
            entry,
            415,
            "unsupported_media_type",
            "Content-Type must be application/x-protobuf or application/json",
        );
    };
    let limit = state.config.max_request_bytes;
    let too_large = ingest::DecodeError::TooLarge { limit, compressed: false };
    let declared: Option<u64> = header("content-length").and_then(|v| v.parse().ok());
    if declared.is_some_and(|n| n > limit) {
        return fail(&state, entry, too_large.status(), too_large.reason(), &too_large.to_string());
    }

    let mut decision = state.decide_at_arrival(header_project.as_deref());
    let read = async {
        match &decision.action {
            Some(Action::SlowRead { bytes_per_second }) => {
                read_slowly(request.into_body(), limit, *bytes_per_second).await
            }
            _ => match Limited::new(request.into_body(), limit as usize).collect().await {
                Ok(body) => Ok(body.to_bytes().to_vec()),
                Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => Err(BodyError::TooLarge),
                Err(_) => Err(BodyError::Gone),
            },
        }
    };
    let body = tokio::time::timeout(state.config.body_timeout, read).await.unwrap_or(Err(BodyError::Slow));
    let body = match body {
        Ok(body) => body,
        Err(BodyError::TooLarge) => {
            return fail(&state, entry, too_large.status(), too_large.reason(), &too_large.to_string());
        }
        // The client went away mid-body: nobody to answer.
        Err(BodyError::Gone) => return Err(CloseConnection),
        Err(BodyError::Slow) => {
            let message = format!("the body did not arrive within {:?}", state.config.body_timeout);
            return fail(&state, entry, 408, "body_timeout", &message);
        }
    };
    entry.bytes = body.len() as u64;
    state.telemetry.bytes(body.len() as u64);

    let decoded = match ingest::decompress(&body, content_encoding.as_deref(), limit) {
        Ok(decoded) => decoded,
        Err(e) => return fail(&state, entry, e.status(), e.reason(), &e.to_string()),
    };
    entry.decoded_bytes = decoded.len() as u64;
    let request = match ingest::decode(&decoded, encoding) {
        Ok(request) => request,
        Err(e) => return fail(&state, entry, e.status(), e.reason(), &e.to_string()),
    };
    let mut batches = ingest::batches(request, header_project.as_deref());
    let spans: u64 = batches.iter().map(|b| b.spans.len() as u64).sum();
    entry.spans = spans;
    if entry.project.is_none() {
        entry.project = batches.first().map(|b| b.project.clone());
    }
    if header_project.is_none()
        && decision.action.is_none()
        && let Some(project_decision) = entry.project.as_deref().and_then(|p| state.decide_for_project(p))
    {
        decision = project_decision;
    }
    state.telemetry.received(spans);
    lock(&state.store).receive(&batches, decoded.len() as u64);

    if !decision.delay.is_zero() {
        tokio::time::sleep(decision.delay).await;
    }
    let action = decision.action.filter(|a| !matches!(a, Action::SlowRead { .. }));
    entry.fault = action.as_ref().map(Action::label);

    // Faults that refuse the whole request store nothing and account every span.
    let reject_all = |state: &State, entry: &LedgerEntry, batches: &[crate::backend::store::Batch], reason: &str| {
        let mut store = lock(&state.store);
        for b in batches {
            store.reject(&b.project, reason, b.spans.len() as u64);
        }
        state.telemetry.rejected(reason, entry.spans);
    };
    match action {
        Some(Action::Status { code, retry_after_seconds, retry_after_http_date }) => {
            let reason = format!("status_{code}");
            reject_all(&state, &entry, &batches, &reason);
            entry.status = Some(code);
            entry.rejected_reason = Some(reason);
            state.record(entry, started);
            let (body, content_type) = ingest::error_body(Some(encoding), code, "fault injected by the testbed");
            return Ok(with_retry_after(respond(code, content_type, body), retry_after_seconds, retry_after_http_date));
        }
        Some(Action::Close) => {
            reject_all(&state, &entry, &batches, "close");
            entry.rejected_reason = Some("close".into());
            state.record(entry, started);
            return Err(CloseConnection);
        }
        Some(Action::Hang { ms }) => {
            reject_all(&state, &entry, &batches, "hang");
            entry.rejected_reason = Some("hang".into());
            return hang(state, entry, started, ms).await;
        }
        _ => {}
    }

    // Partial success: the last `rejected` spans of the request are refused.
    let (rejected, message) = match &action {
        Some(Action::PartialSuccess { rejected, message }) => ((*rejected).min(spans), message.clone()),
        _ => (0, String::new()),
    };
    if rejected > 0 {
        let mut to_drop = rejected;
        let mut store = lock(&state.store);
        for batch in batches.iter_mut().rev() {
            let n = to_drop.min(batch.spans.len() as u64);
            batch.spans.truncate(batch.spans.len() - n as usize);
            store.reject(&batch.project, "partial_success", n);
            to_drop -= n;
        }
        state.telemetry.rejected("partial_success", rejected);
        entry.rejected_reason = Some("partial_success".into());
    }
    {
        let mut store = lock(&state.store);
        if !store.fits(&batches) {
            for b in &batches {
                store.reject(&b.project, "storage_full", b.spans.len() as u64);
            }
            drop(store);
            let kept = spans - rejected;
            state.telemetry.rejected("storage_full", kept);
            entry.status = Some(503);
            entry.rejected_reason = Some("storage_full".into());
            state.record(entry, started);
            let (body, content_type) = ingest::error_body(Some(encoding), 503, "the testbed's storage is full");
            let mut response = respond(503, content_type, body);
            response.headers_mut().insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
            return Ok(response);
        }
        let stored = store.store(batches);
        drop(store);
        state.telemetry.stored(stored.accepted, stored.duplicates);
    }
    entry.status = Some(200);
    state.record(entry, started);
    Ok(respond(200, encoding.content_type(), ingest::response(encoding, rejected, &message)))
}

/// Writes a ledger entry when dropped, whether the request finished or was abandoned.
/// Holds a request unanswered until `ms` (default 60 s) pass or the server shuts down, then
/// closes the connection. hyper drops this future when the client gives up first: the guard
/// still records the request, with how long the client waited.
async fn hang(state: Arc<State>, entry: LedgerEntry, started: Instant, ms: Option<u64>) -> Answer {
    let _record = RecordOnDrop { state: Arc::clone(&state), entry: Some(entry), started };
    let mut shutdown = state.shutdown.clone();
    tokio::select! {
        _ = tokio::time::sleep(Duration::from_millis(ms.unwrap_or(60_000))) => {}
        _ = shutdown.changed() => {}
    }
    Err(CloseConnection)
}

struct RecordOnDrop {
    state: Arc<State>,
    entry: Option<LedgerEntry>,
    started: Instant,
}

impl Drop for RecordOnDrop {
    fn drop(&mut self) {
        if let Some(entry) = self.entry.take() {
            self.state.record(entry, self.started);
        }
    }
}

/// Runs the accept loop until `shutdown` turns true.
/// Accepts connections while fewer than `max_connections` are open; each connection must send
/// its request headers within `header_timeout` of becoming ready for a request (which also
/// closes connections idle that long between requests).
pub(crate) async fn serve(listener: tokio::net::TcpListener, state: Arc<State>) {
    let mut shutdown = state.shutdown.clone();
    let slots = Arc::new(tokio::sync::Semaphore::new(state.config.max_connections.max(1)));
    loop {
        let accepted = tokio::select! {
            slot = Arc::clone(&slots).acquire_owned() => match slot {
                Ok(slot) => tokio::select! {
                    accepted = listener.accept() => accepted.map(|(stream, _)| (stream, slot)),
                    _ = shutdown.changed() => return,
                },
                Err(_) => return,
            },
            _ = shutdown.changed() => return,
        };
        let (stream, slot) = match accepted {
            Ok(conn) => conn,
            // Out of descriptors or a transient error: keep serving the others.
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(5)).await;
                continue;
            }
        };
        let state = Arc::clone(&state);
        tokio::spawn(async move {
            let io = hyper_util::rt::TokioIo::new(stream);
            let header_timeout = state.config.header_timeout;
            let service = hyper::service::service_fn(move |request| handle(Arc::clone(&state), request));
            let _ = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(header_timeout)
                .serve_connection(io, service)
                .await;
            drop(slot);
        });
    }
}

#[cfg(test)]
mod exposure_tests {
    use super::*;

    #[test]
    fn only_loopback_may_listen_without_credentials() {
        let at = |listen: &str| Config { listen: listen.parse().unwrap(), ..Config::default() };
        assert!(at("127.0.0.1:0").check_exposure().is_ok());
        assert!(at("[::1]:0").check_exposure().is_ok());
        assert!(at("0.0.0.0:0").check_exposure().is_err());
        assert!(at("192.0.2.1:4318").check_exposure().is_err());
        assert!(Config { auth_token: Some("t".into()), ..at("0.0.0.0:0") }.check_exposure().is_ok());
        assert!(Config { allow_unauthenticated: true, ..at("0.0.0.0:0") }.check_exposure().is_ok());
        let shown = format!("{:?}", Config { auth_token: Some("s3cr3t-token".into()), ..at("0.0.0.0:0") });
        assert!(!shown.contains("s3cr3t-token"), "{shown}");
    }

    #[test]
    fn tokens_compare_equal_only_when_equal() {
        assert!(same_secret("abc", "abc"));
        assert!(!same_secret("abd", "abc"));
        assert!(!same_secret("ab", "abc"));
        assert!(!same_secret("", "abc"));
    }
}
