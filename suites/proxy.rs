//! The `ChaosProxy` fixture: the testbed's chaos proxy (Toxiproxy's API) between the client
//! pipeline and the target, per test, for faults on the wire.

use std::sync::{Mutex, PoisonError};

use reliability_harness::{BoxError, Fixture, Setup};
use testbed::proxy::{ApiError, ConnectionRecord, ProxyConfig, ProxyServer, ProxySpec, Toxic};

use crate::fixtures::{Target, off_runtime};

/// The proxy's name on its server.
const NAME: &str = "otlp";

/// A chaos proxy in front of the target's OTLP endpoint. Point the pipeline at
/// [`ChaosProxy::traces_url`] (`tracer.reconfigure(|c| c.endpoint = proxy.traces_url.clone())`)
/// and add toxics; the proxy's ledger accounts for every connection. Its API is served on
/// loopback ([`ChaosProxy::api_url`]) for Toxiproxy clients. Only `http://` targets: a TLS
/// target's certificate would not match the proxy's address.
#[derive(Debug)]
pub struct ChaosProxy {
    /// The target's traces endpoint through the proxy.
    pub traces_url: String,
    /// Where the proxy forwards (`host:port` of the target's endpoint).
    pub upstream: String,
    server: Mutex<Option<ProxyServer>>,
}

/// `http://host:port/path` → (`host:port`, `/path`); port 80 when none is given.
fn split_http(url: &str) -> Result<(String, String), String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("the chaos proxy needs an http:// target endpoint, not {url:?}"))?;
    let (authority, path) = rest.find('/').map_or((rest, "/"), |at| rest.split_at(at));
    let authority = match authority.rsplit_once(':') {
        Some((_, port)) if port.parse::<u16>().is_ok() => authority.to_owned(),
        _ => format!("{authority}:80"),
    };
    Ok((authority, path.to_owned()))
}

fn api(e: ApiError) -> String {
    format!("chaos proxy: {e}")
}

impl Fixture for ChaosProxy {
    async fn setup(cx: &mut Setup<'_>) -> Result<Self, BoxError> {
        let target = cx.get::<Target>().await?;
        let (upstream, path) = split_http(&target.traces_url)?;
        let (server, listen) = off_runtime(|| -> Result<_, BoxError> {
            let server = ProxyServer::start(ProxyConfig::default())?;
            let proxy = server.create(ProxySpec::new(NAME, &upstream)).map_err(api)?;
            Ok((server, proxy.listen))
        })?;
        Ok(ChaosProxy { traces_url: format!("http://{listen}{path}"), upstream, server: Mutex::new(Some(server)) })
    }

    async fn teardown(&self) -> Result<(), BoxError> {
        let server = self.server.lock().unwrap_or_else(PoisonError::into_inner).take();
        if let Some(server) = server {
            off_runtime(|| server.shutdown());
        }
        Ok(())
    }
}

impl ChaosProxy {
    fn with<T>(&self, f: impl FnOnce(&ProxyServer) -> Result<T, ApiError>) -> Result<T, String> {
        let server = self.server.lock().unwrap_or_else(PoisonError::into_inner);
        f(server.as_ref().ok_or("the chaos proxy was torn down")?).map_err(api)
    }

    /// Adds a toxic.
    pub fn add_toxic(&self, toxic: Toxic) -> Result<(), String> {
        self.with(|s| s.add_toxic(NAME, toxic).map(drop))
    }

    /// Removes a toxic by name.
    pub fn remove_toxic(&self, name: &str) -> Result<(), String> {
        self.with(|s| s.remove_toxic(NAME, name))
    }

    /// `false`: a partition (connections refused, open ones ended); `true` ends it.
    pub fn set_enabled(&self, enabled: bool) -> Result<(), String> {
        self.with(|s| s.set_enabled(NAME, enabled).map(drop))
    }

    /// The ledger: every connection, oldest first.
    pub fn connections(&self) -> Result<Vec<ConnectionRecord>, String> {
        self.with(|s| s.connections(NAME).map(|(records, _)| records))
    }

    /// The API's URL, for Toxiproxy clients.
    pub fn api_url(&self) -> Result<String, String> {
        self.with(|s| Ok(s.api_url()))
    }
}

#[cfg(test)]
mod tests {
    use super::split_http;

    #[test]
    fn endpoints_split_into_upstream_and_path() {
        assert_eq!(split_http("http://127.0.0.1:4318/v1/traces"), Ok(("127.0.0.1:4318".into(), "/v1/traces".into())));
        assert_eq!(split_http("http://collector/v1/traces"), Ok(("collector:80".into(), "/v1/traces".into())));
        assert_eq!(split_http("http://[::1]:9/"), Ok(("[::1]:9".into(), "/".into())));
        assert!(split_http("https://example/v1/traces").is_err());
    }
}
