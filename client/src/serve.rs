//! A Prometheus scrape endpoint for a running client: `GET /metrics` answers the text a
//! closure renders at that moment, so a scrape sees the pipeline's health while it runs (the
//! analysis's fourth critical problem: no visibility into SDK health).
//!
//! Hand-written on `std::net` rather than on hyper: a client library should not bring an
//! async runtime into its host application for one endpoint, and this serves one path, one
//! request per connection, to a scraper. It binds where it is told (loopback in every test),
//! reads at most 8 KiB of a request within 2 s, and stops when dropped.

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

/// Renders the exposition text.
pub type Render = Arc<dyn Fn() -> String + Send + Sync>;

/// A running scrape endpoint.
pub struct MetricsServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    scrapes: Arc<AtomicU64>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for MetricsServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetricsServer").field("addr", &self.addr).finish()
    }
}

impl MetricsServer {
    /// Binds `addr` (e.g. `127.0.0.1:0` for a port the system picks) and serves `render`.
    pub fn start(addr: &str, render: Render) -> std::io::Result<MetricsServer> {
        let listener = TcpListener::bind(addr)?;
        let addr = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let scrapes = Arc::new(AtomicU64::new(0));
        let (stop2, scrapes2) = (Arc::clone(&stop), Arc::clone(&scrapes));
        let thread = std::thread::Builder::new().name("client-metrics".into()).spawn(move || {
            for stream in listener.incoming() {
                if stop2.load(Ordering::SeqCst) {
                    return;
                }
                if let Ok(stream) = stream
                    && answer(stream, &render)
                {
                    scrapes2.fetch_add(1, Ordering::SeqCst);
                }
            }
        })?;
        Ok(MetricsServer { addr, stop, scrapes, thread: Some(thread) })
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://addr/metrics`.
    pub fn url(&self) -> String {
        format!("http://{}/metrics", self.addr)
    }

    /// Scrapes answered so far.
    pub fn scrapes(&self) -> u64 {
        self.scrapes.load(Ordering::SeqCst)
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the accept loop, which then sees the flag.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Answers one request; whether it was a scrape of `/metrics`.
fn answer(mut stream: TcpStream, render: &Render) -> bool {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let _ = stream.set_write_timeout(Some(Duration::from_secs(2)));
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 8192 {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    let line = head.split(|b| *b == b'\n').next().unwrap_or_default();
    let line = String::from_utf8_lossy(line);
    let mut words = line.split_whitespace();
    let (method, path) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
    let scrape = method == "GET" && (path == "/metrics" || path.starts_with("/metrics?"));
    let (status, body) = if scrape { ("200 OK", render()) } else { ("404 Not Found", "only /metrics\n".into()) };
    let response = format!(
        "HTTP/1.1 {status}\r\ncontent-type: text/plain; version=0.0.4; charset=utf-8\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(response.as_bytes());
    scrape
}
