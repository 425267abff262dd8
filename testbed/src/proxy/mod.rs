//! The chaos proxy: a TCP proxy with Toxiproxy's HTTP API, for faults on the wire between a
//! client and its target — latency, bandwidth caps, stalls, resets, slow closes, sliced writes,
//! data limits, and partitions (`enabled: false`).
//!
//! Toxiproxy's clients drive it unchanged (`GET /version`, `POST /reset`, `/proxies`,
//! `/populate`, `/proxies/{name}`, `/proxies/{name}/toxics[/{toxic}]`, the same JSON, status
//! codes and `{"error", "status"}` bodies). Beyond Toxiproxy:
//!
//! - **a seed**: whether a toxic of toxicity < 1 applies to a connection is one draw keyed by
//!   (seed, proxy name, connection index, toxic name), and jitter and slice sizes come from a
//!   PRNG seeded the same way, so a run replays exactly;
//! - **a ledger per connection** (`GET /proxies/{name}/connections`): bytes each way —
//!   received, forwarded and discarded, each counted where it happens — the writes made, the
//!   toxics that acted, and how the connection ended;
//! - stricter input: unknown fields, negative attributes and toxicities outside 0..1 are 400s.
//!
//! ```no_run
//! use testbed::proxy::{Kind, ProxyServer, ProxySpec, Stream, Toxic};
//! let server = ProxyServer::start(Default::default()).unwrap();
//! let proxy = server.create(ProxySpec::new("otlp", "127.0.0.1:4318")).unwrap();
//! server.add_toxic("otlp", Toxic::new(Kind::Latency { latency: 100, jitter: 10 }, Stream::Downstream)).unwrap();
//! println!("send to {}", proxy.listen);
//! ```

mod api;
mod collection;
mod link;
mod splice;
mod toxic;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

pub use link::{ConnectionRecord, DirectionRecord, Ending};
pub use toxic::{Kind, Stream, TYPES, Toxic};

/// The version `GET /version` reports.
pub const VERSION: &str = concat!("testbed-proxy-", env!("CARGO_PKG_VERSION"));

/// An API error: the status and message Toxiproxy would answer.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message} (HTTP {status})")]
pub struct ApiError {
    /// The HTTP status.
    pub status: u16,
    /// The message, as in `{"error": ..., "status": ...}`.
    pub message: String,
}

impl ApiError {
    pub(crate) fn new(status: u16, message: &str) -> ApiError {
        ApiError { status, message: message.to_owned() }
    }
}

/// A proxy to create: Toxiproxy's `{name, listen, upstream, enabled}`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProxySpec {
    /// Unique name.
    pub name: String,
    /// Where to listen; `127.0.0.1:0` picks a free loopback port (the default).
    pub listen: String,
    /// Where to forward, `host:port`.
    pub upstream: String,
    /// Whether it accepts connections (default true).
    pub enabled: bool,
}

impl ProxySpec {
    /// An enabled proxy on a free loopback port.
    pub fn new(name: &str, upstream: &str) -> ProxySpec {
        ProxySpec { name: name.to_owned(), listen: "127.0.0.1:0".into(), upstream: upstream.to_owned(), enabled: true }
    }

    /// Reads a spec from Toxiproxy's JSON (create and populate).
    pub fn from_json(body: &Value) -> Result<ProxySpec, ApiError> {
        ProxySpec::from_json_with(body, None)
    }

    /// Reads a spec, taking missing fields from `current` (an update) or from Toxiproxy's
    /// defaults (a create: `name` and `upstream` required, `enabled` true).
    pub(crate) fn from_json_with(
        body: &Value,
        current: Option<(&str, &str, &str, bool)>,
    ) -> Result<ProxySpec, ApiError> {
        let bad = |m: &str| ApiError::new(400, &format!("bad request body: {m}"));
        let object = body.as_object().ok_or_else(|| bad("a proxy must be a JSON object"))?;
        const KNOWN: [&str; 5] = ["name", "listen", "upstream", "enabled", "toxics"];
        if let Some(key) = object.keys().find(|k| !KNOWN.contains(&k.as_str())) {
            return Err(bad(&format!("unknown proxy field {key:?} (valid: name, listen, upstream, enabled)")));
        }
        let text = |key: &str| -> Result<Option<String>, ApiError> {
            match object.get(key) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) if s.is_empty() => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.clone())),
                Some(_) => Err(bad(&format!("{key} must be a string"))),
            }
        };
        let enabled = match object.get("enabled") {
            None | Some(Value::Null) => current.is_none_or(|c| c.3),
            Some(Value::Bool(b)) => *b,
            Some(_) => return Err(bad("enabled must be true or false")),
        };
        let missing = |field: &str| ApiError::new(400, &format!("missing required field: {field}"));
        let (name, listen, upstream) = match current {
            Some((name, listen, upstream, _)) => (
                name.to_owned(),
                text("listen")?.unwrap_or_else(|| listen.to_owned()),
                text("upstream")?.unwrap_or_else(|| upstream.to_owned()),
            ),
            None => (
                text("name")?.ok_or_else(|| missing("name"))?,
                text("listen")?.unwrap_or_else(|| "127.0.0.1:0".into()),
                text("upstream")?.ok_or_else(|| missing("upstream"))?,
            ),
        };
        for (field, value) in [("listen", &listen), ("upstream", &upstream)] {
            let port = value.rsplit_once(':').map(|(_, p)| p.parse::<u16>());
            if !matches!(port, Some(Ok(_))) {
                return Err(bad(&format!("{field} must be host:port, got {value:?}")));
            }
        }
        Ok(ProxySpec { name, listen, upstream, enabled })
    }
}

/// A proxy as the API shows it.
#[derive(Clone, Debug, PartialEq)]
pub struct ProxyInfo {
    /// Its name.
    pub name: String,
    /// The address it listens on (the bound one: port 0 is replaced by the port picked).
    pub listen: String,
    /// Where it forwards.
    pub upstream: String,
    /// Whether it accepts connections.
    pub enabled: bool,
    /// Its toxics, in the order they were added.
    pub toxics: Vec<Toxic>,
}

impl ProxyInfo {
    fn from_json(value: &Value) -> ProxyInfo {
        let s = |k: &str| value.get(k).and_then(Value::as_str).unwrap_or_default().to_owned();
        ProxyInfo {
            name: s("name"),
            listen: s("listen"),
            upstream: s("upstream"),
            enabled: value.get("enabled").and_then(Value::as_bool).unwrap_or(false),
            toxics: value
                .get("toxics")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(|t| Toxic::from_json(t).ok()).collect())
                .unwrap_or_default(),
        }
    }

    /// The listen address, parsed.
    pub fn addr(&self) -> Option<SocketAddr> {
        self.listen.parse().ok()
    }
}

/// The server's settings.
#[derive(Clone, Debug)]
pub struct ProxyConfig {
    /// Where the API listens (Toxiproxy's port is 8474; the library default picks a free
    /// loopback port).
    pub api_listen: SocketAddr,
    /// The seed of every probabilistic choice.
    pub seed: u64,
    /// Connection records each proxy keeps (oldest dropped first, and counted).
    pub ledger_capacity: usize,
}

impl Default for ProxyConfig {
    fn default() -> Self {
        ProxyConfig { api_listen: SocketAddr::from(([127, 0, 0, 1], 0)), seed: 0, ledger_capacity: 10_000 }
    }
}

/// Starting the server failed.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The API address could not be bound.
    #[error("failed to listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The runtime could not start.
    #[error("failed to start the proxy's runtime: {0}")]
    Runtime(#[source] std::io::Error),
}

/// A running proxy server — the API and every proxy — on a tokio runtime of its own, so that
/// synchronous tests and fixtures can own one. The library methods are the API's operations
/// without HTTP; call them from outside any async runtime. Stops on
/// [`ProxyServer::shutdown`] or drop, ending every connection.
#[derive(Debug)]
pub struct ProxyServer {
    addr: SocketAddr,
    collection: Arc<collection::Collection>,
    runtime: Option<tokio::runtime::Runtime>,
    shutdown: tokio::sync::watch::Sender<bool>,
}

impl ProxyServer {
    /// Binds the API address and starts serving.
    pub fn start(config: ProxyConfig) -> Result<ProxyServer, StartError> {
        let listener = std::net::TcpListener::bind(config.api_listen)
            .map_err(|source| StartError::Bind { addr: config.api_listen, source })?;
        let addr = listener.local_addr().map_err(|source| StartError::Bind { addr: config.api_listen, source })?;
        listener.set_nonblocking(true).map_err(|source| StartError::Bind { addr, source })?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("testbed-proxy")
            .enable_all()
            .build()
            .map_err(StartError::Runtime)?;
        let collection = Arc::new(collection::Collection::new(config.seed, config.ledger_capacity));
        let (tx, rx) = tokio::sync::watch::channel(false);
        let listener = {
            let _entered = runtime.enter();
            tokio::net::TcpListener::from_std(listener).map_err(|source| StartError::Bind { addr, source })?
        };
        runtime.spawn(api::serve(listener, Arc::clone(&collection), rx));
        Ok(ProxyServer { addr, collection, runtime: Some(runtime), shutdown: tx })
    }

    /// The API's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The API's base URL, e.g. `http://127.0.0.1:8474` (what Toxiproxy clients take).
    pub fn api_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn block_on<F: std::future::Future>(&self, f: F) -> F::Output {
        match &self.runtime {
            Some(rt) => rt.block_on(f),
            None => unreachable!("the runtime lives until drop"),
        }
    }

    /// Creates a proxy (`POST /proxies`).
    pub fn create(&self, spec: ProxySpec) -> Result<ProxyInfo, ApiError> {
        self.block_on(async { self.collection.create(spec) }).map(|v| ProxyInfo::from_json(&v))
    }

    /// A proxy (`GET /proxies/{name}`).
    pub fn proxy(&self, name: &str) -> Result<ProxyInfo, ApiError> {
        self.collection.show(name).map(|v| ProxyInfo::from_json(&v))
    }

    /// Enables or disables a proxy (disabled: connections refused, open ones ended — a
    /// partition).
    pub fn set_enabled(&self, name: &str, enabled: bool) -> Result<ProxyInfo, ApiError> {
        let body = serde_json::json!({ "enabled": enabled });
        self.block_on(self.collection.update(name, &body)).map(|v| ProxyInfo::from_json(&v))
    }

    /// Deletes a proxy.
    pub fn delete(&self, name: &str) -> Result<(), ApiError> {
        self.block_on(self.collection.delete(name))
    }

    /// Adds a toxic.
    pub fn add_toxic(&self, proxy: &str, toxic: Toxic) -> Result<Toxic, ApiError> {
        // Through the JSON reader, so the library accepts exactly what the API accepts.
        let toxic = Toxic::from_json(&toxic.to_json())?;
        self.collection.add_toxic(proxy, toxic)
    }

    /// Removes a toxic.
    pub fn remove_toxic(&self, proxy: &str, toxic: &str) -> Result<(), ApiError> {
        self.collection.remove_toxic(proxy, toxic)
    }

    /// Every proxy enabled, every toxic removed (`POST /reset`).
    pub fn reset(&self) -> Result<(), ApiError> {
        self.block_on(async { self.collection.reset() })
    }

    /// A proxy's ledger, oldest connection first, and how many records were dropped.
    pub fn connections(&self, proxy: &str) -> Result<(Vec<ConnectionRecord>, u64), ApiError> {
        self.collection.connections(proxy)
    }

    /// Stops the API and every proxy.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        let _ = self.shutdown.send(true);
        if let Some(rt) = self.runtime.take() {
            rt.block_on(self.collection.clear());
            rt.shutdown_timeout(Duration::from_secs(1));
        }
    }
}

impl Drop for ProxyServer {
    fn drop(&mut self) {
        self.stop();
    }
}
