//! The backend: OTLP/HTTP ingest, the store, the query API and HTTP-level fault injection.

pub mod faults;
pub mod ingest;
mod server;
pub mod side;
pub mod store;
mod telemetry;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

pub use server::{Config, ExposedError, LedgerEntry};

/// Starting the backend failed.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The address could not be bound.
    #[error("failed to listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The runtime could not start.
    #[error("failed to start the backend's runtime: {0}")]
    Runtime(#[source] std::io::Error),
    /// The start-up fault plan is invalid.
    #[error(transparent)]
    Faults(#[from] faults::PlanError),
    /// A non-loopback address without credentials.
    #[error(transparent)]
    Exposed(#[from] server::ExposedError),
}

/// A running backend, on a thread of its own with its own tokio runtime (so that synchronous
/// tests and fixtures can own one). Stops on [`Backend::shutdown`] or drop.
#[derive(Debug)]
pub struct Backend {
    addr: SocketAddr,
    shutdown: Option<tokio::sync::watch::Sender<bool>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Backend {
    /// Binds `config.listen` and starts serving.
    pub fn start(config: Config) -> Result<Backend, StartError> {
        if let Some(plan) = &config.faults {
            plan.validate()?;
        }
        config.check_exposure()?;
        let listener = std::net::TcpListener::bind(config.listen)
            .map_err(|source| StartError::Bind { addr: config.listen, source })?;
        let addr = listener.local_addr().map_err(|source| StartError::Bind { addr: config.listen, source })?;
        listener.set_nonblocking(true).map_err(|source| StartError::Bind { addr, source })?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("testbed")
            .enable_all()
            .build()
            .map_err(StartError::Runtime)?;
        let (tx, rx) = tokio::sync::watch::channel(false);
        let state = Arc::new(server::State::new(config, rx));
        let thread = std::thread::Builder::new()
            .name("testbed-server".into())
            .spawn(move || {
                runtime.block_on(async move {
                    match tokio::net::TcpListener::from_std(listener) {
                        Ok(listener) => server::serve(listener, state).await,
                        Err(e) => eprintln!("testbed: failed to adopt the listener: {e}"),
                    }
                });
                // Hanging requests end with the runtime.
                runtime.shutdown_timeout(Duration::from_secs(1));
            })
            .map_err(StartError::Runtime)?;
        Ok(Backend { addr, shutdown: Some(tx), thread: Some(thread) })
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The base URL, e.g. `http://127.0.0.1:4318`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The OTLP/HTTP traces endpoint (`<base>/v1/traces`).
    pub fn traces_url(&self) -> String {
        format!("{}/v1/traces", self.base_url())
    }

    /// The query API base (`<base>/api/v1`).
    pub fn query_url(&self) -> String {
        format!("{}/api/v1", self.base_url())
    }

    /// Stops serving and waits for the server thread.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(true);
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.stop();
    }
}
