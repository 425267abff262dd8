//! The proxies a server holds: create, update, delete, populate, reset, their toxics, their
//! listeners and their ledgers. Every operation of the HTTP API and of the library API is one
//! method here, so the two cannot drift apart.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use serde_json::{Map, Value, json};
use tokio::sync::watch;

use super::link::{self, Conn, ConnectionRecord, Ending, ToxicSet};
use super::toxic::Toxic;
use super::{ApiError, ProxySpec};

/// All proxies of one server.
#[derive(Debug)]
pub(crate) struct Collection {
    proxies: Mutex<BTreeMap<String, Arc<Proxy>>>,
    seed: u64,
    ledger_capacity: usize,
}

#[derive(Debug)]
struct Proxy {
    name: String,
    epoch: Instant,
    seed: u64,
    toxics: watch::Sender<ToxicSet>,
    inner: Mutex<Inner>,
    ledger: Mutex<Ledger>,
    ledger_capacity: usize,
    next_id: AtomicU64,
}

#[derive(Debug)]
struct Inner {
    listen: String,
    upstream: String,
    enabled: bool,
    listener: Option<tokio::task::JoinHandle<()>>,
}

#[derive(Debug, Default)]
struct Ledger {
    conns: VecDeque<Arc<Conn>>,
    dropped: u64,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Proxy {
    fn json(&self) -> Value {
        let inner = lock(&self.inner);
        let toxics: Vec<Value> = self.toxics.borrow().iter().map(Toxic::to_json).collect();
        json!({
            "name": self.name,
            "listen": inner.listen,
            "upstream": inner.upstream,
            "enabled": inner.enabled,
            "toxics": toxics,
        })
    }

    /// Binds and starts accepting. The bound address replaces `listen` (port 0 becomes the
    /// port picked), as in Toxiproxy.
    fn start(self: &Arc<Self>) -> Result<(), ApiError> {
        let mut inner = lock(&self.inner);
        if inner.listener.is_some() {
            return Ok(());
        }
        let listen = inner.listen.clone();
        let listener = std::net::TcpListener::bind(listen.as_str())
            .and_then(|l| l.set_nonblocking(true).map(|()| l))
            .and_then(tokio::net::TcpListener::from_std)
            .map_err(|e| ApiError::new(500, &format!("listen tcp {listen}: {e}")))?;
        if let Ok(addr) = listener.local_addr() {
            inner.listen = addr.to_string();
        }
        let proxy = Arc::clone(self);
        inner.listener = Some(tokio::spawn(async move { proxy.accept(listener).await }));
        inner.enabled = true;
        Ok(())
    }

    async fn accept(self: Arc<Self>, listener: tokio::net::TcpListener) {
        loop {
            let (stream, peer) = match listener.accept().await {
                Ok(accepted) => accepted,
                // Out of descriptors or a transient error: keep accepting.
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    continue;
                }
            };
            let id = self.next_id.fetch_add(1, Ordering::Relaxed);
            let conn = Conn::new(id, peer.to_string(), self.epoch, self.seed);
            {
                let mut ledger = lock(&self.ledger);
                ledger.conns.push_back(Arc::clone(&conn));
                if ledger.conns.len() > self.ledger_capacity {
                    ledger.conns.pop_front();
                    ledger.dropped += 1;
                }
            }
            let upstream = lock(&self.inner).upstream.clone();
            tokio::spawn(link::run(conn, stream, upstream, self.toxics.subscribe()));
        }
    }

    /// Stops accepting (the listening socket is closed when this returns: new connections are
    /// refused) and ends the open connections.
    async fn stop(&self, why: Ending) {
        let handle = {
            let mut inner = lock(&self.inner);
            inner.enabled = false;
            inner.listener.take()
        };
        if let Some(handle) = handle {
            handle.abort();
            let _ = handle.await;
        }
        for conn in lock(&self.ledger).conns.iter().filter(|c| c.is_open()) {
            conn.end(why);
        }
    }
}

impl Collection {
    pub(crate) fn new(seed: u64, ledger_capacity: usize) -> Collection {
        Collection { proxies: Mutex::new(BTreeMap::new()), seed, ledger_capacity: ledger_capacity.max(1) }
    }

    fn get(&self, name: &str) -> Result<Arc<Proxy>, ApiError> {
        lock(&self.proxies).get(name).cloned().ok_or_else(|| ApiError::new(404, "proxy not found"))
    }

    fn seed_for(&self, name: &str) -> u64 {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in name.bytes() {
            h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
        self.seed ^ h
    }

    /// `GET /proxies`: every proxy with its toxics, keyed by name.
    pub(crate) fn index(&self) -> Value {
        let proxies: Vec<Arc<Proxy>> = lock(&self.proxies).values().cloned().collect();
        Value::Object(proxies.iter().map(|p| (p.name.clone(), p.json())).collect::<Map<_, _>>())
    }

    /// `GET /proxies/{name}`.
    pub(crate) fn show(&self, name: &str) -> Result<Value, ApiError> {
        Ok(self.get(name)?.json())
    }

    /// `POST /proxies`: 409 when the name is taken, 500 when the address cannot be bound.
    pub(crate) fn create(&self, spec: ProxySpec) -> Result<Value, ApiError> {
        let mut proxies = lock(&self.proxies);
        if proxies.contains_key(&spec.name) {
            return Err(ApiError::new(409, "proxy already exists"));
        }
        let proxy = Arc::new(Proxy {
            seed: self.seed_for(&spec.name),
            name: spec.name.clone(),
            epoch: Instant::now(),
            toxics: watch::channel(Arc::new(Vec::new())).0,
            inner: Mutex::new(Inner {
                listen: spec.listen.clone(),
                upstream: spec.upstream.clone(),
                enabled: false,
                listener: None,
            }),
            ledger: Mutex::new(Ledger::default()),
            ledger_capacity: self.ledger_capacity,
            next_id: AtomicU64::new(0),
        });
        if spec.enabled {
            proxy.start()?;
        }
        proxies.insert(spec.name.clone(), Arc::clone(&proxy));
        drop(proxies);
        Ok(proxy.json())
    }

    /// `POST /proxies/{name}`: fields given replace the current ones; a new listen address or
    /// upstream restarts the proxy (its connections end), `enabled: false` is a partition.
    pub(crate) async fn update(&self, name: &str, body: &Value) -> Result<Value, ApiError> {
        let proxy = self.get(name)?;
        let (listen, upstream, enabled) = {
            let inner = lock(&proxy.inner);
            (inner.listen.clone(), inner.upstream.clone(), inner.enabled)
        };
        let spec = ProxySpec::from_json_with(body, Some((name, &listen, &upstream, enabled)))?;
        let moved = spec.listen != listen || spec.upstream != upstream;
        if moved || !spec.enabled {
            proxy.stop(Ending::Disabled).await;
        }
        {
            let mut inner = lock(&proxy.inner);
            inner.listen = spec.listen.clone();
            inner.upstream = spec.upstream.clone();
        }
        if spec.enabled {
            proxy.start()?;
        }
        Ok(proxy.json())
    }

    /// `DELETE /proxies/{name}`.
    pub(crate) async fn delete(&self, name: &str) -> Result<(), ApiError> {
        let proxy = lock(&self.proxies).remove(name).ok_or_else(|| ApiError::new(404, "proxy not found"))?;
        proxy.stop(Ending::Removed).await;
        Ok(())
    }

    /// `POST /populate`: creates the proxies listed, replacing any of the same name whose
    /// listen address or upstream differs. On an error, the proxies made so far are returned
    /// beside it, as Toxiproxy does.
    pub(crate) async fn populate(&self, specs: Vec<ProxySpec>) -> (Vec<Value>, Option<ApiError>) {
        let mut made = Vec::new();
        for spec in specs {
            let existing = lock(&self.proxies).get(&spec.name).cloned();
            if let Some(existing) = existing {
                let same = {
                    let inner = lock(&existing.inner);
                    inner.listen == spec.listen && inner.upstream == spec.upstream
                };
                if same {
                    made.push(existing.json());
                    continue;
                }
                let _ = self.delete(&spec.name).await;
            }
            match self.create(spec) {
                Ok(json) => made.push(json),
                Err(e) => return (made, Some(e)),
            }
        }
        (made, None)
    }

    /// `POST /reset`: every proxy enabled, every toxic removed.
    pub(crate) fn reset(&self) -> Result<(), ApiError> {
        let proxies: Vec<Arc<Proxy>> = lock(&self.proxies).values().cloned().collect();
        for proxy in proxies {
            proxy.toxics.send_replace(Arc::new(Vec::new()));
            proxy.start()?;
        }
        Ok(())
    }

    /// Ends every proxy (the server is stopping).
    pub(crate) async fn clear(&self) {
        let proxies: Vec<Arc<Proxy>> = std::mem::take(&mut *lock(&self.proxies)).into_values().collect();
        for proxy in proxies {
            proxy.stop(Ending::Removed).await;
        }
    }

    /// `GET /proxies/{name}/toxics`.
    pub(crate) fn toxics(&self, name: &str) -> Result<Vec<Toxic>, ApiError> {
        Ok(self.get(name)?.toxics.borrow().as_ref().clone())
    }

    /// `GET /proxies/{name}/toxics/{toxic}`.
    pub(crate) fn toxic(&self, name: &str, toxic: &str) -> Result<Toxic, ApiError> {
        let proxy = self.get(name)?;
        let found = proxy.toxics.borrow().iter().find(|t| t.name == toxic).cloned();
        found.ok_or_else(|| ApiError::new(404, "toxic not found"))
    }

    /// `POST /proxies/{name}/toxics`: 409 when the name is taken.
    pub(crate) fn add_toxic(&self, name: &str, toxic: Toxic) -> Result<Toxic, ApiError> {
        let proxy = self.get(name)?;
        let mut result = Ok(toxic.clone());
        proxy.toxics.send_if_modified(|set| {
            if set.iter().any(|t| t.name == toxic.name) {
                result = Err(ApiError::new(409, "toxic already exists"));
                return false;
            }
            Arc::make_mut(set).push(toxic.clone());
            true
        });
        result
    }

    /// `POST /proxies/{name}/toxics/{toxic}`.
    pub(crate) fn update_toxic(&self, name: &str, toxic: &str, body: &Value) -> Result<Toxic, ApiError> {
        let proxy = self.get(name)?;
        let mut result = Err(ApiError::new(404, "toxic not found"));
        proxy.toxics.send_if_modified(|set| {
            let Some(at) = set.iter().position(|t| t.name == toxic) else { return false };
            match set[at].updated(body) {
                Ok(updated) => {
                    Arc::make_mut(set)[at] = updated.clone();
                    result = Ok(updated);
                    true
                }
                Err(e) => {
                    result = Err(e);
                    false
                }
            }
        });
        result
    }

    /// `DELETE /proxies/{name}/toxics/{toxic}`.
    pub(crate) fn remove_toxic(&self, name: &str, toxic: &str) -> Result<(), ApiError> {
        let proxy = self.get(name)?;
        let mut found = false;
        proxy.toxics.send_if_modified(|set| {
            let before = set.len();
            Arc::make_mut(set).retain(|t| t.name != toxic);
            found = set.len() != before;
            found
        });
        if found { Ok(()) } else { Err(ApiError::new(404, "toxic not found")) }
    }

    /// `GET /proxies/{name}/connections`: the ledger, oldest first, and how many records were
    /// dropped to keep it bounded.
    pub(crate) fn connections(&self, name: &str) -> Result<(Vec<ConnectionRecord>, u64), ApiError> {
        let proxy = self.get(name)?;
        let ledger = lock(&proxy.ledger);
        Ok((ledger.conns.iter().map(|c| c.record()).collect(), ledger.dropped))
    }
}
