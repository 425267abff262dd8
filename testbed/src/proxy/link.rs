//! One proxied connection: two directions, each a reader and a writer, and the ledger record
//! every byte is counted in.
//!
//! The reader takes bytes off the source as they come and hands them, stamped with their
//! arrival, to the writer; the writer applies the toxics in force for its direction and
//! writes. Splitting the two keeps latency pipelined (a chunk is delayed from its arrival, not
//! from the previous chunk's departure), as in Toxiproxy. Toxics are read from a watch channel
//! on every chunk, so adding or removing one acts on open connections.
//!
//! Each term of `received = forwarded + discarded` is counted where it happens: `received` by
//! the reader, `forwarded` after each successful write, `discarded` where data is dropped
//! (a timeout toxic, limit_data's excess, what was in flight when the connection was ended).
//! The identity holds once a connection has ended; while it is open, bytes in flight (and
//! bytes written but not yet counted — the peer may read them first) make it lag.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::{mpsc, watch};

use super::splice::{self, Fast};
use super::toxic::{Kind, Stream, Toxic};
use crate::rng::SplitMix64;

/// How a connection ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Ending {
    /// The client closed first.
    ClientClosed,
    /// The upstream closed first.
    UpstreamClosed,
    /// Reading from or writing to the client failed (e.g. it reset).
    ClientError,
    /// Reading from or writing to the upstream failed.
    UpstreamError,
    /// The upstream could not be reached; the client was closed.
    UpstreamUnreachable,
    /// A `timeout` toxic closed it.
    Timeout,
    /// A `reset_peer` toxic reset it.
    ResetPeer,
    /// A `limit_data` toxic closed it after its bytes.
    LimitData,
    /// The proxy was disabled (a partition) or its listen/upstream changed.
    Disabled,
    /// The proxy was deleted, reset by `populate`, or the server stopped.
    Removed,
}

/// Bytes one way through a connection.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct DirectionRecord {
    /// Read from the source.
    pub received: u64,
    /// Written to the destination.
    pub forwarded: u64,
    /// Dropped: by a timeout toxic, past a limit_data limit, or in flight when the connection
    /// was ended.
    pub discarded: u64,
    /// Writes to the destination.
    pub writes: u64,
    /// The largest single write, bytes.
    pub largest_write: u64,
    /// The smallest single write, bytes (0 when none).
    pub smallest_write: u64,
}

/// One connection, as `GET /proxies/{name}/connections` shows it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ConnectionRecord {
    /// Order of acceptance on this proxy, from 0 (the index toxicity draws are keyed by).
    pub id: u64,
    /// The client's address.
    pub client: String,
    /// Accepted, ms after the proxy was created.
    pub opened_ms: f64,
    /// Ended, ms after the proxy was created; none while open.
    pub closed_ms: Option<f64>,
    /// Client → upstream.
    pub upstream: DirectionRecord,
    /// Upstream → client.
    pub downstream: DirectionRecord,
    /// Toxics that applied to it (name, in the order they first acted).
    pub toxics: Vec<String>,
    /// How it ended; none while open.
    pub ending: Option<Ending>,
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) received: AtomicU64,
    forwarded: AtomicU64,
    pub(crate) discarded: AtomicU64,
    writes: AtomicU64,
    largest: AtomicU64,
    smallest: AtomicU64,
}

impl Counters {
    pub(crate) fn wrote(&self, n: u64) {
        self.forwarded.fetch_add(n, Ordering::Relaxed);
        self.writes.fetch_add(1, Ordering::Relaxed);
        self.largest.fetch_max(n, Ordering::Relaxed);
        let _ = self.smallest.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |s| match s {
            0 => Some(n),
            s => Some(s.min(n)),
        });
    }

    fn record(&self) -> DirectionRecord {
        DirectionRecord {
            received: self.received.load(Ordering::Relaxed),
            forwarded: self.forwarded.load(Ordering::Relaxed),
            discarded: self.discarded.load(Ordering::Relaxed),
            writes: self.writes.load(Ordering::Relaxed),
            largest_write: self.largest.load(Ordering::Relaxed),
            smallest_write: self.smallest.load(Ordering::Relaxed),
        }
    }
}

/// The live state of one connection, shared by its tasks and the ledger.
#[derive(Debug)]
pub(crate) struct Conn {
    id: u64,
    client: String,
    opened: Instant,
    epoch: Instant,
    seed: u64,
    up: Counters,
    down: Counters,
    state: Mutex<ConnState>,
    kill: watch::Sender<Option<Ending>>,
}

#[derive(Debug, Default)]
struct ConnState {
    toxics: Vec<String>,
    ending: Option<Ending>,
    closed: Option<Instant>,
}

impl Conn {
    pub(crate) fn new(id: u64, client: String, epoch: Instant, seed: u64) -> Arc<Conn> {
        Arc::new(Conn {
            id,
            client,
            opened: Instant::now(),
            epoch,
            seed,
            up: Counters::default(),
            down: Counters::default(),
            state: Mutex::new(ConnState::default()),
            kill: watch::channel(None).0,
        })
    }

    /// Ends the connection from outside (disable, delete, reset of the server).
    pub(crate) fn end(&self, why: Ending) {
        self.set_ending(why);
        self.kill.send_replace(Some(why));
    }

    pub(crate) fn is_open(&self) -> bool {
        self.lock().closed.is_none()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ConnState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The first ending said wins.
    fn set_ending(&self, why: Ending) {
        let mut state = self.lock();
        if state.ending.is_none() {
            state.ending = Some(why);
        }
    }

    fn applied(&self, name: &str) {
        let mut state = self.lock();
        if !state.toxics.iter().any(|t| t == name) {
            state.toxics.push(name.to_owned());
        }
    }

    pub(crate) fn counters(&self, stream: Stream) -> &Counters {
        match stream {
            Stream::Upstream => &self.up,
            Stream::Downstream => &self.down,
        }
    }

    /// Whether a toxic of this toxicity applies to this connection: one draw per (connection,
    /// toxic name) from the proxy's seed, so a run replays exactly and raising the toxicity
    /// only adds connections.
    fn draws(&self, toxic: &Toxic) -> bool {
        if toxic.toxicity >= 1.0 {
            return true;
        }
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in toxic.name.bytes().chain(toxic.stream.as_str().bytes()) {
            h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
        let mut rng = SplitMix64(self.seed ^ h ^ self.id.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        rng.next_f64() < toxic.toxicity
    }

    pub(crate) fn record(&self) -> ConnectionRecord {
        let state = self.lock();
        let ms = |t: Instant| t.saturating_duration_since(self.epoch).as_secs_f64() * 1e3;
        ConnectionRecord {
            id: self.id,
            client: self.client.clone(),
            opened_ms: ms(self.opened),
            closed_ms: state.closed.map(ms),
            upstream: self.up.record(),
            downstream: self.down.record(),
            toxics: state.toxics.clone(),
            ending: state.ending,
        }
    }
}

/// The toxics of a proxy, in the order they were added, as every connection sees them.
pub(crate) type ToxicSet = Arc<Vec<Toxic>>;

/// Serves one accepted connection to its end.
pub(crate) async fn run(conn: Arc<Conn>, client: TcpStream, upstream: String, toxics: watch::Receiver<ToxicSet>) {
    let _ = client.set_nodelay(true);
    let mut kill = conn.kill.subscribe();
    let connect = async {
        match tokio::time::timeout(Duration::from_secs(10), TcpStream::connect(upstream.as_str())).await {
            Ok(Ok(s)) => Some(s),
            _ => None,
        }
    };
    let server = tokio::select! {
        s = connect => s,
        _ = kill.wait_for(Option::is_some) => None,
    };
    let Some(server) = server else {
        conn.set_ending(Ending::UpstreamUnreachable);
        conn.lock().closed = Some(Instant::now());
        return;
    };
    let _ = server.set_nodelay(true);
    let (client_r, client_w) = client.into_split();
    let (server_r, server_w) = server.into_split();
    let up = direction(&conn, Stream::Upstream, client_r, server_w, toxics.clone());
    let down = direction(&conn, Stream::Downstream, server_r, client_w, toxics);
    let ((client_r, server_w), (server_r, client_w)) = tokio::join!(up, down);
    // A reset ends with RST on both sockets: SO_LINGER 0, then close. The halves are put back
    // together first: a write half on its own sends a FIN when dropped.
    if conn.lock().ending == Some(Ending::ResetPeer) {
        for (r, w) in [(client_r, client_w), (server_r, server_w)] {
            if let Some(Ok(stream)) = w.map(|w| r.reunite(w)) {
                let _ = stream.set_zero_linger();
            }
        }
    }
    conn.lock().closed = Some(Instant::now());
}

struct Chunk {
    at: Instant,
    data: Bytes,
}

/// One direction: returns the source's read half and the destination's write half, for the
/// caller to close (or reset).
async fn direction(
    conn: &Arc<Conn>,
    stream: Stream,
    mut src: OwnedReadHalf,
    mut dst: OwnedWriteHalf,
    mut toxics: watch::Receiver<ToxicSet>,
) -> (OwnedReadHalf, Option<OwnedWriteHalf>) {
    let mut kill = conn.kill.subscribe();
    match splice::run(conn, stream, &src, &dst, &mut toxics, &mut kill).await {
        Fast::Toxic | Fast::Unavailable => {}
        Fast::Killed => return (src, Some(dst)),
        Fast::Failed(why) => {
            conn.end(why);
            return (src, Some(dst));
        }
        Fast::Eof => {
            conn.set_ending(match stream {
                Stream::Upstream => Ending::ClientClosed,
                Stream::Downstream => Ending::UpstreamClosed,
            });
            let _ = dst.shutdown().await;
            // As on the toxic path: the upstream's close ends the connection.
            if stream == Stream::Downstream {
                conn.end(Ending::UpstreamClosed);
            }
            return (src, Some(dst));
        }
    }
    let (tx, rx) = mpsc::channel::<Chunk>(32);
    let reader_conn = Arc::clone(conn);
    let reader = async move {
        read(&reader_conn, stream, &mut src, tx, &mut kill).await;
        src
    };
    let writer =
        Writer { conn: Arc::clone(conn), stream, dst: Some(dst), toxics, rng: None, since: Vec::new(), paced: None };
    tokio::join!(reader, writer.run(rx))
}

/// Reads the source until it closes, fails, or the connection is ended.
async fn read(
    conn: &Conn,
    stream: Stream,
    src: &mut OwnedReadHalf,
    tx: mpsc::Sender<Chunk>,
    kill: &mut watch::Receiver<Option<Ending>>,
) {
    let counters = conn.counters(stream);
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = tokio::select! {
            n = src.read(&mut buf) => n,
            _ = kill.wait_for(Option::is_some) => return,
        };
        match n {
            Ok(0) => {
                conn.set_ending(match stream {
                    Stream::Upstream => Ending::ClientClosed,
                    Stream::Downstream => Ending::UpstreamClosed,
                });
                return;
            }
            Ok(n) => {
                counters.received.fetch_add(n as u64, Ordering::Relaxed);
                let chunk = Chunk { at: Instant::now(), data: Bytes::copy_from_slice(&buf[..n]) };
                if let Err(unsent) = tx.send(chunk).await {
                    counters.discarded.fetch_add(unsent.0.data.len() as u64, Ordering::Relaxed);
                    return;
                }
            }
            Err(_) => {
                conn.end(match stream {
                    Stream::Upstream => Ending::ClientError,
                    Stream::Downstream => Ending::UpstreamError,
                });
                return;
            }
        }
    }
}

struct Writer {
    conn: Arc<Conn>,
    stream: Stream,
    dst: Option<OwnedWriteHalf>,
    toxics: watch::Receiver<ToxicSet>,
    rng: Option<SplitMix64>,
    /// When each toxic first took effect on this direction.
    since: Vec<(String, Instant)>,
    /// The bandwidth schedule: when the next byte may leave.
    paced: Option<Instant>,
}

enum Step {
    Go,
    Stop(Ending),
}

impl Writer {
    fn active(&mut self) -> Vec<Toxic> {
        let set = Arc::clone(&self.toxics.borrow_and_update());
        let now = Instant::now();
        self.since.retain(|(name, _)| set.iter().any(|t| &t.name == name));
        let mut active = Vec::new();
        for toxic in set.iter().filter(|t| t.stream == self.stream) {
            if self.conn.draws(toxic) {
                if !self.since.iter().any(|(n, _)| n == &toxic.name) {
                    self.since.push((toxic.name.clone(), now));
                    self.conn.applied(&toxic.name);
                }
                active.push(toxic.clone());
            }
        }
        active
    }

    fn since(&self, name: &str) -> Instant {
        self.since.iter().find(|(n, _)| n == name).map(|(_, t)| *t).unwrap_or_else(Instant::now)
    }

    fn rng(&mut self) -> &mut SplitMix64 {
        let seed = self.conn.seed
            ^ self.conn.id.rotate_left(17)
            ^ (self.stream as u64 + 1).wrapping_mul(0xA24B_AED4_963E_E407);
        self.rng.get_or_insert(SplitMix64(seed))
    }

    async fn run(mut self, mut rx: mpsc::Receiver<Chunk>) -> Option<OwnedWriteHalf> {
        let mut kill = self.conn.kill.subscribe();
        let stream = self.stream;
        let counters_discard = move |conn: &Conn, n: usize| {
            conn.counters(stream).discarded.fetch_add(n as u64, Ordering::Relaxed);
        };
        let ending = loop {
            let active = self.active();
            // A timeout toxic's deadline runs from when it took effect, data or not.
            let deadline = active.iter().find_map(|t| match t.kind {
                Kind::Timeout { timeout } if timeout > 0 => Some(self.since(&t.name) + Duration::from_millis(timeout)),
                _ => None,
            });
            let stalled = active.iter().any(|t| matches!(t.kind, Kind::Timeout { .. }));
            // Biased: a toxic set changed before a chunk was taken applies to that chunk (an
            // API call that returned before the bytes were sent must act on them).
            let chunk = tokio::select! {
                biased;
                _ = kill.wait_for(Option::is_some) => break None,
                changed = self.toxics.changed() => match changed {
                    Ok(()) => continue,
                    Err(_) => break Some(Ending::Removed),
                },
                _ = sleep_until_opt(deadline) => break Some(Ending::Timeout),
                chunk = rx.recv() => chunk,
            };
            let Some(chunk) = chunk else {
                // The source closed: slow_close holds the FIN back, then the half-close passes on.
                if let Some(delay) = active.iter().find_map(|t| match t.kind {
                    Kind::SlowClose { delay } => Some(delay),
                    _ => None,
                }) {
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_millis(delay)) => {}
                        _ = kill.wait_for(Option::is_some) => break None,
                    }
                }
                if let Some(dst) = self.dst.as_mut() {
                    let _ = dst.shutdown().await;
                }
                // The upstream is done: once its last bytes and FIN reached the client, the
                // connection ends (as in Toxiproxy). A client's close is only passed on: the
                // upstream may still answer a half-closed request.
                break match self.stream {
                    Stream::Downstream => Some(Ending::UpstreamClosed),
                    Stream::Upstream => None,
                };
            };
            if stalled {
                counters_discard(&self.conn, chunk.data.len());
                continue;
            }
            match self.deliver(&active, chunk, &mut kill).await {
                Step::Go => {}
                Step::Stop(why) => break Some(why),
            }
        };
        if let Some(why) = ending {
            self.conn.end(why);
        }
        // Whatever is still in flight is discarded, and counted.
        rx.close();
        while let Ok(chunk) = rx.try_recv() {
            counters_discard(&self.conn, chunk.data.len());
        }
        self.dst.take()
    }

    /// Applies the toxics to one chunk and writes it.
    async fn deliver(&mut self, active: &[Toxic], chunk: Chunk, kill: &mut watch::Receiver<Option<Ending>>) -> Step {
        let conn = Arc::clone(&self.conn);
        let counters = conn.counters(self.stream);
        let mut data = chunk.data;
        for toxic in active {
            match toxic.kind {
                Kind::ResetPeer { timeout } => {
                    counters.discarded.fetch_add(data.len() as u64, Ordering::Relaxed);
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_millis(timeout)) => {}
                        _ = kill.wait_for(Option::is_some) => {}
                    }
                    return Step::Stop(Ending::ResetPeer);
                }
                Kind::Latency { latency, jitter } => {
                    let mut delay = latency as i64;
                    if jitter > 0 {
                        let spread = (self.rng().next() % (2 * jitter + 1)) as i64 - jitter as i64;
                        delay = (delay + spread).max(0);
                    }
                    let due = chunk.at + Duration::from_millis(delay as u64);
                    tokio::select! {
                        _ = tokio::time::sleep_until(due.into()) => {}
                        _ = kill.wait_for(Option::is_some) => {
                            counters.discarded.fetch_add(data.len() as u64, Ordering::Relaxed);
                            return Step::Stop(Ending::Removed);
                        }
                    }
                }
                _ => {}
            }
        }
        let mut limit_hit = false;
        if let Some(bytes) = active.iter().find_map(|t| match t.kind {
            Kind::LimitData { bytes } => Some(bytes),
            _ => None,
        }) {
            let left = bytes.saturating_sub(counters.forwarded.load(Ordering::Relaxed));
            if data.len() as u64 >= left {
                let excess = data.split_off(left as usize);
                counters.discarded.fetch_add(excess.len() as u64, Ordering::Relaxed);
                limit_hit = true;
            }
        }
        let slicer = active.iter().find_map(|t| match t.kind {
            Kind::Slicer { average_size, size_variation, delay } => Some((average_size, size_variation, delay)),
            _ => None,
        });
        let rate = active.iter().find_map(|t| match t.kind {
            Kind::Bandwidth { rate } if rate > 0 => Some(rate),
            _ => None,
        });
        if let Step::Stop(why) = self.write_pieces(data, slicer, rate, kill).await {
            return Step::Stop(why);
        }
        if limit_hit { Step::Stop(Ending::LimitData) } else { Step::Go }
    }

    /// Writes one chunk, sliced and paced as the slicer and bandwidth toxics say.
    async fn write_pieces(
        &mut self,
        mut data: Bytes,
        slicer: Option<(u64, u64, u64)>,
        rate: Option<u64>,
        kill: &mut watch::Receiver<Option<Ending>>,
    ) -> Step {
        let conn = Arc::clone(&self.conn);
        let counters = conn.counters(self.stream);
        while !data.is_empty() {
            let mut size = data.len();
            if let Some((average, variation, _)) = slicer {
                let low = average.saturating_sub(variation).max(1);
                let high = average + variation;
                size = size.min((low + self.rng().next() % (high - low + 1)) as usize);
            }
            if let Some(rate) = rate {
                // At most 10 ms worth per write, so the pace is smooth.
                size = size.min((rate * 10).max(1) as usize);
            }
            let piece = data.split_to(size);
            let Some(dst) = self.dst.as_mut() else { break };
            let started = Instant::now();
            let written = tokio::select! {
                w = dst.write_all(&piece) => w,
                _ = kill.wait_for(Option::is_some) => {
                    counters.discarded.fetch_add((piece.len() + data.len()) as u64, Ordering::Relaxed);
                    return Step::Stop(Ending::Removed);
                }
            };
            if written.is_err() {
                counters.discarded.fetch_add((piece.len() + data.len()) as u64, Ordering::Relaxed);
                return Step::Stop(match self.stream {
                    Stream::Upstream => Ending::UpstreamError,
                    Stream::Downstream => Ending::ClientError,
                });
            }
            counters.wrote(piece.len() as u64);
            let mut due = None;
            if let Some((_, _, delay)) = slicer {
                due = Some(started + Duration::from_micros(delay));
            }
            if let Some(rate) = rate {
                // rate KB/s = rate bytes per ms. The pace runs on a schedule, so one late
                // wake-up is made up by the next ones instead of lowering the rate; after a
                // pause of more than 50 ms the schedule starts afresh (no burst credit).
                let base = match self.paced {
                    Some(t) if started.saturating_duration_since(t) < Duration::from_millis(50) => t,
                    _ => started,
                };
                let next = base + Duration::from_nanos(piece.len() as u64 * 1_000_000 / rate);
                self.paced = Some(next);
                due = Some(due.map_or(next, |d: Instant| d.max(next)));
            }
            if let Some(due) = due {
                tokio::select! {
                    _ = tokio::time::sleep_until(due.into()) => {}
                    _ = kill.wait_for(Option::is_some) => {
                        counters.discarded.fetch_add(data.len() as u64, Ordering::Relaxed);
                        return Step::Stop(Ending::Removed);
                    }
                }
            }
        }
        Step::Go
    }
}

async fn sleep_until_opt(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}
