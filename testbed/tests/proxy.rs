//! The chaos proxy: Toxiproxy's API (status codes and bodies), every toxic measured on real
//! loopback sockets, the per-connection ledger, seeded replay, and bad input.
//!
//! Timing: a toxic that delays is checked from below only (a delay is never shorter than the
//! toxic says), except bandwidth, whose upper bound is the cap itself; how close to the toxic
//! the proxy gets on a quiet machine is a figure of the `proxy` bench.

#![expect(clippy::unwrap_used, reason = "tests: a panic is the failure report")]

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use testbed::proxy::{ConnectionRecord, Ending, Kind, ProxyConfig, ProxyServer, ProxySpec, Stream, Toxic};

/// An echo server: every connection gets back what it sends, until it closes.
fn echo() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut stream = stream;
                let mut buf = [0u8; 16384];
                while let Ok(n) = stream.read(&mut buf) {
                    if n == 0 || stream.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            });
        }
    });
    addr
}

/// A server that writes `payload` to each connection at once, then closes it.
fn source(payload: Vec<u8>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            let _ = stream.write_all(&payload);
        }
    });
    addr
}

/// A server that reads each connection to its end and reports the bytes it got.
fn sink() -> (SocketAddr, mpsc::Receiver<Vec<u8>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            let tx = tx.clone();
            std::thread::spawn(move || {
                let mut got = Vec::new();
                let _ = stream.read_to_end(&mut got);
                let _ = tx.send(got);
            });
        }
    });
    (addr, rx)
}

fn server() -> ProxyServer {
    ProxyServer::start(ProxyConfig::default()).unwrap()
}

fn proxy_to(server: &ProxyServer, name: &str, upstream: SocketAddr) -> SocketAddr {
    server.create(ProxySpec::new(name, &upstream.to_string())).unwrap().addr().unwrap()
}

fn connect(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    stream.set_nodelay(true).unwrap();
    stream
}

/// The ledger once every connection has ended (bounded wait: the ending is the proxy's, after
/// the sockets close).
fn settled(server: &ProxyServer, name: &str, connections: usize) -> Vec<ConnectionRecord> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (records, _) = server.connections(name).unwrap();
        if records.len() >= connections && records.iter().all(|r| r.closed_ms.is_some()) {
            for r in &records {
                for d in [&r.upstream, &r.downstream] {
                    assert_eq!(d.received, d.forwarded + d.discarded, "every byte accounted: {r:?}");
                }
            }
            return records;
        }
        assert!(Instant::now() < deadline, "connections did not end: {records:?}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn round_trip(stream: &mut TcpStream, size: usize) -> Duration {
    let out = vec![7u8; size];
    let started = Instant::now();
    stream.write_all(&out).unwrap();
    let mut back = vec![0u8; size];
    stream.read_exact(&mut back).unwrap();
    assert_eq!(back, out);
    started.elapsed()
}

#[test]
fn latency_adds_at_least_its_amount_minus_jitter_to_each_round_trip() {
    let server = server();
    let addr = proxy_to(&server, "echo", echo());
    server.add_toxic("echo", Toxic::new(Kind::Latency { latency: 120, jitter: 20 }, Stream::Downstream)).unwrap();
    let mut stream = connect(addr);
    for _ in 0..5 {
        let rtt = round_trip(&mut stream, 1000);
        assert!(rtt >= Duration::from_millis(100), "a round trip took {rtt:?}, under latency - jitter");
    }
    // Upstream latency adds to downstream latency.
    server.add_toxic("echo", Toxic::new(Kind::Latency { latency: 80, jitter: 0 }, Stream::Upstream)).unwrap();
    let rtt = round_trip(&mut stream, 1000);
    assert!(rtt >= Duration::from_millis(180), "{rtt:?}");
    drop(stream);
    let records = settled(&server, "echo", 1);
    assert_eq!(records[0].toxics, ["latency_downstream", "latency_upstream"]);
    assert_eq!(records[0].upstream.forwarded, 6000);
    assert_eq!(records[0].downstream.forwarded, 6000);
}

#[test]
fn bandwidth_caps_throughput() {
    let payload: Vec<u8> = (0..300_000u32).map(|i| i as u8).collect();
    let server = server();
    let addr = proxy_to(&server, "src", source(payload.clone()));
    server.add_toxic("src", Toxic::new(Kind::Bandwidth { rate: 100 }, Stream::Downstream)).unwrap();
    let started = Instant::now();
    let mut stream = connect(addr);
    let mut got = Vec::new();
    stream.read_to_end(&mut got).unwrap();
    let elapsed = started.elapsed().as_secs_f64();
    assert_eq!(got, payload);
    let kb_per_s = got.len() as f64 / 1000.0 / elapsed;
    // The cap is a ceiling the proxy keeps whatever the machine does (one 10 ms piece may lead).
    assert!(kb_per_s <= 110.0, "{kb_per_s:.1} KB/s through a 100 KB/s cap");
    // From below only a broken pacer (a unit off by 10×) is caught here; the bench reports
    // how close to the cap it gets.
    assert!(kb_per_s >= 50.0, "{kb_per_s:.1} KB/s through a 100 KB/s cap");
    let records = settled(&server, "src", 1);
    assert!(records[0].downstream.largest_write <= 1000, "{:?}", records[0].downstream);
}

#[test]
fn timeout_drops_data_then_closes() {
    let (upstream, got) = sink();
    let server = server();
    let addr = proxy_to(&server, "t", upstream);
    server.add_toxic("t", Toxic::new(Kind::Timeout { timeout: 300 }, Stream::Upstream)).unwrap();
    let started = Instant::now();
    let mut stream = connect(addr);
    stream.write_all(&[1u8; 1000]).unwrap();
    let mut buf = [0u8; 16];
    let n = stream.read(&mut buf).unwrap_or(0);
    assert_eq!(n, 0, "the proxy closed the client");
    assert!(started.elapsed() >= Duration::from_millis(300), "{:?}", started.elapsed());
    assert_eq!(got.recv_timeout(Duration::from_secs(30)).unwrap().len(), 0, "nothing passed a timeout toxic");
    let records = settled(&server, "t", 1);
    assert_eq!(records[0].ending, Some(Ending::Timeout));
    assert_eq!(records[0].upstream.received, 1000);
    assert_eq!(records[0].upstream.forwarded, 0);
    assert_eq!(records[0].upstream.discarded, 1000);
}

#[test]
fn timeout_zero_stalls_until_removed() {
    let server = server();
    let addr = proxy_to(&server, "t0", echo());
    server.add_toxic("t0", Toxic::new(Kind::Timeout { timeout: 0 }, Stream::Upstream).named("stall")).unwrap();
    let mut stream = connect(addr);
    stream.write_all(&[1u8; 100]).unwrap();
    // Wait until the proxy has the bytes: they must have been dropped, not passed.
    let deadline = Instant::now() + Duration::from_secs(30);
    let record = loop {
        let (records, _) = server.connections("t0").unwrap();
        if let Some(r) = records.first().filter(|r| r.upstream.received == 100 && r.upstream.discarded == 100) {
            break r.clone();
        }
        assert!(Instant::now() < deadline, "{records:?}");
        std::thread::sleep(Duration::from_millis(10));
    };
    assert_eq!(record.upstream.forwarded, 0);
    assert_eq!(record.ending, None, "still open while stalled");
    server.remove_toxic("t0", "stall").unwrap();
    // The connection survived the stall and carries data again.
    round_trip(&mut stream, 50);
    drop(stream);
    let records = settled(&server, "t0", 1);
    assert_eq!(records[0].upstream.forwarded, 50);
    assert_eq!(records[0].upstream.discarded, 100);
}

#[test]
fn reset_peer_resets_the_connection() {
    let server = server();
    let addr = proxy_to(&server, "r", echo());
    server.add_toxic("r", Toxic::new(Kind::ResetPeer { timeout: 50 }, Stream::Downstream)).unwrap();
    let mut stream = connect(addr);
    stream.write_all(b"hello").unwrap();
    let mut buf = [0u8; 16];
    let error = match stream.read(&mut buf) {
        Err(e) => e,
        Ok(0) => panic!("closed with FIN, not reset"),
        Ok(n) => panic!("{n} bytes passed a reset_peer toxic"),
    };
    assert_eq!(error.kind(), ErrorKind::ConnectionReset, "{error}");
    let records = settled(&server, "r", 1);
    assert_eq!(records[0].ending, Some(Ending::ResetPeer));
    assert_eq!(records[0].downstream.forwarded, 0);
    assert_eq!(records[0].downstream.discarded, 5);
}

#[test]
fn slicer_splits_writes_into_the_sizes_asked() {
    let payload: Vec<u8> = (0..10_000u32).map(|i| (i * 7) as u8).collect();
    let server = server();
    let addr = proxy_to(&server, "s", source(payload.clone()));
    let slicer = Kind::Slicer { average_size: 100, size_variation: 20, delay: 200 };
    server.add_toxic("s", Toxic::new(slicer, Stream::Downstream)).unwrap();
    let mut stream = connect(addr);
    let mut got = Vec::new();
    stream.read_to_end(&mut got).unwrap();
    assert_eq!(got, payload, "sliced, not changed");
    let d = settled(&server, "s", 1)[0].downstream.clone();
    assert_eq!(d.forwarded, 10_000);
    assert!(d.largest_write <= 120, "{d:?}");
    // Every write is 80..=120 bytes but the last of each chunk read (the remainder).
    assert!(d.writes >= 10_000 / 120, "{d:?}");
    assert!(d.writes <= 10_000 / 80 + 10, "{d:?}");
}

#[test]
fn limit_data_closes_after_exactly_its_bytes() {
    let (upstream, got) = sink();
    let server = server();
    let addr = proxy_to(&server, "l", upstream);
    server.add_toxic("l", Toxic::new(Kind::LimitData { bytes: 1234 }, Stream::Upstream)).unwrap();
    let mut stream = connect(addr);
    // The proxy may close while we still write: a failed write is expected past the limit.
    for _ in 0..10 {
        if stream.write_all(&[9u8; 1000]).is_err() {
            break;
        }
    }
    let arrived = got.recv_timeout(Duration::from_secs(30)).unwrap();
    assert_eq!(arrived.len(), 1234);
    let records = settled(&server, "l", 1);
    assert_eq!(records[0].ending, Some(Ending::LimitData));
    assert_eq!(records[0].upstream.forwarded, 1234);
}

#[test]
fn slow_close_holds_the_close_back() {
    let server = server();
    let addr = proxy_to(&server, "sc", source(b"0123456789".to_vec()));
    server.add_toxic("sc", Toxic::new(Kind::SlowClose { delay: 400 }, Stream::Downstream)).unwrap();
    let started = Instant::now();
    let mut stream = connect(addr);
    let mut got = Vec::new();
    stream.read_to_end(&mut got).unwrap();
    assert_eq!(got, b"0123456789");
    assert!(started.elapsed() >= Duration::from_millis(400), "{:?}", started.elapsed());
    let records = settled(&server, "sc", 1);
    assert_eq!(records[0].ending, Some(Ending::UpstreamClosed));
}

#[test]
fn a_disabled_proxy_refuses_and_ends_open_connections() {
    let server = server();
    let addr = proxy_to(&server, "p", echo());
    let mut open = connect(addr);
    round_trip(&mut open, 10);
    server.set_enabled("p", false).unwrap();
    assert_eq!(TcpStream::connect(addr).unwrap_err().kind(), ErrorKind::ConnectionRefused);
    let mut buf = [0u8; 4];
    assert!(matches!(open.read(&mut buf), Ok(0) | Err(_)), "the open connection was ended");
    server.set_enabled("p", true).unwrap();
    round_trip(&mut connect(addr), 10);
    let records = settled(&server, "p", 2);
    assert_eq!(records[0].ending, Some(Ending::Disabled));
}

/// Toxicity is drawn once per (seed, proxy, connection, toxic): the same seed gives the same
/// connections, another seed others; and the share is near the toxicity.
#[test]
fn toxicity_replays_from_the_seed() {
    let upstream = echo();
    let affected = |seed: u64| -> Vec<u64> {
        let server = ProxyServer::start(ProxyConfig { seed, ..ProxyConfig::default() }).unwrap();
        let addr = proxy_to(&server, "dice", upstream);
        // A limit of 0 bytes closes at once: the connections it hit are plain to see.
        server
            .add_toxic("dice", Toxic::new(Kind::LimitData { bytes: 0 }, Stream::Upstream).with_toxicity(0.5))
            .unwrap();
        for _ in 0..60 {
            let mut s = connect(addr);
            let _ = s.write_all(b"x");
            let mut buf = [0u8; 1];
            let _ = s.read(&mut buf);
        }
        let records = settled(&server, "dice", 60);
        records.iter().filter(|r| r.toxics.iter().any(|t| t == "limit_data_upstream")).map(|r| r.id).collect()
    };
    let (a, b, c) = (affected(7), affected(7), affected(8));
    assert_eq!(a, b, "same seed, same connections");
    assert_ne!(a, c, "another seed, other connections");
    assert!((15..=45).contains(&a.len()), "{} of 60 at toxicity 0.5", a.len());
}

#[test]
fn the_ledger_is_bounded_and_counts_what_it_dropped() {
    let server = ProxyServer::start(ProxyConfig { ledger_capacity: 5, ..ProxyConfig::default() }).unwrap();
    let addr = proxy_to(&server, "b", echo());
    for _ in 0..8 {
        round_trip(&mut connect(addr), 3);
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (records, dropped) = server.connections("b").unwrap();
        if records.iter().all(|r| r.closed_ms.is_some()) {
            assert_eq!((records.len(), dropped), (5, 3));
            assert_eq!(records.iter().map(|r| r.id).collect::<Vec<_>>(), [3, 4, 5, 6, 7]);
            break;
        }
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(10));
    }
}

// ---- the HTTP API, as Toxiproxy clients see it ----

fn call(method: &str, url: &str, body: Option<&str>) -> (u16, Value) {
    let client = reqwest::blocking::Client::builder().timeout(Duration::from_secs(30)).build().unwrap();
    let mut request = client.request(method.parse().unwrap(), url);
    if let Some(body) = body {
        request = request.header("content-type", "application/json").body(body.to_owned());
    }
    let response = request.send().unwrap();
    let status = response.status().as_u16();
    let text = response.text().unwrap();
    (status, if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap() })
}

#[test]
fn the_api_answers_as_toxiproxy_does() {
    let server = server();
    let api = server.api_url();
    let upstream = echo().to_string();
    let (s, v) = call("GET", &format!("{api}/version"), None);
    assert_eq!((s, v["version"].is_string()), (200, true));

    let create = json!({"name": "a", "listen": "127.0.0.1:0", "upstream": upstream}).to_string();
    let (s, a) = call("POST", &format!("{api}/proxies"), Some(&create));
    assert_eq!(s, 201);
    assert_eq!(a["enabled"], true);
    assert_eq!(a["toxics"], json!([]));
    assert_ne!(a["listen"], "127.0.0.1:0", "the bound port replaces port 0");
    let (s, e) = call("POST", &format!("{api}/proxies"), Some(&create));
    assert_eq!((s, e["status"].as_u64()), (409, Some(409)));
    // A listen address in use: Toxiproxy's 500 with the bind error.
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let clash = json!({"name": "b", "listen": taken.local_addr().unwrap().to_string(), "upstream": upstream});
    let (s, e) = call("POST", &format!("{api}/proxies"), Some(&clash.to_string()));
    assert_eq!((s, e["status"].as_u64()), (500, Some(500)));
    assert_eq!(call("GET", &format!("{api}/proxies/b"), None).0, 404, "a failed create leaves nothing");
    for bad in [
        "{not json",
        r#"{"name": "c"}"#,
        r#"{"upstream": "x:1"}"#,
        r#"{"name": "c", "upstream": "nowhere"}"#,
        r#"{"name": "c", "upstream": "x:1", "enabled": "yes"}"#,
        r#"[1]"#,
    ] {
        let (s, e) = call("POST", &format!("{api}/proxies"), Some(bad));
        assert_eq!((s, e["status"].as_u64()), (400, Some(400)), "{bad}");
    }

    let toxics = format!("{api}/proxies/a/toxics");
    let (s, t) = call("POST", &toxics, Some(r#"{"type": "latency", "attributes": {"latency": 10}}"#));
    assert_eq!((s, t["name"].as_str(), t["stream"].as_str()), (200, Some("latency_downstream"), Some("downstream")));
    assert_eq!(call("POST", &toxics, Some(r#"{"type": "latency"}"#)).0, 409);
    assert_eq!(call("POST", &toxics, Some(r#"{"type": "nonsense"}"#)).0, 400);
    assert_eq!(call("POST", &toxics, Some(r#"{"type": "latency", "stream": "sideways", "name": "x"}"#)).0, 400);
    assert_eq!(call("POST", &format!("{api}/proxies/zz/toxics"), Some(r#"{"type": "latency"}"#)).0, 404);
    let (s, t) = call("POST", &format!("{toxics}/latency_downstream"), Some(r#"{"attributes": {"jitter": 3}}"#));
    assert_eq!((s, t["attributes"].clone()), (200, json!({"latency": 10, "jitter": 3})));
    let (s, list) = call("GET", &toxics, None);
    assert_eq!((s, list.as_array().map(Vec::len)), (200, Some(1)));
    assert_eq!(call("GET", &format!("{toxics}/nope"), None).0, 404);

    let (s, all) = call("GET", &format!("{api}/proxies"), None);
    assert_eq!((s, all["a"]["toxics"].as_array().map(Vec::len)), (200, Some(1)));
    let (s, p) = call("POST", &format!("{api}/proxies/a"), Some(r#"{"enabled": false}"#));
    assert_eq!((s, p["enabled"].clone()), (200, json!(false)));
    assert_eq!(call("POST", &format!("{api}/reset"), None).0, 204);
    let (_, p) = call("GET", &format!("{api}/proxies/a"), None);
    assert_eq!((p["enabled"].clone(), p["toxics"].clone()), (json!(true), json!([])), "reset enables and clears");

    let populate = json!([
        {"name": "a", "listen": p["listen"], "upstream": upstream},
        {"name": "d", "listen": "127.0.0.1:0", "upstream": upstream, "enabled": false},
    ]);
    let (s, made) = call("POST", &format!("{api}/populate"), Some(&populate.to_string()));
    assert_eq!((s, made["proxies"].as_array().map(Vec::len)), (201, Some(2)));
    assert_eq!(made["proxies"][1]["enabled"], false);
    assert_eq!(call("POST", &format!("{api}/populate"), Some(r#"{"name": "x"}"#)).0, 400);

    assert_eq!(call("DELETE", &format!("{toxics}/latency_downstream"), None).0, 404, "reset removed it");
    assert_eq!(call("DELETE", &format!("{api}/proxies/d"), None).0, 204);
    assert_eq!(call("DELETE", &format!("{api}/proxies/d"), None).0, 404);
    let (s, ledger) = call("GET", &format!("{api}/proxies/a/connections"), None);
    assert_eq!((s, ledger["dropped"].as_u64()), (200, Some(0)));
    assert_eq!(call("PUT", &format!("{api}/proxies"), None).0, 405);
    assert_eq!(call("GET", &format!("{api}/elsewhere"), None).0, 404);
    // A browser may not drive it (a web page could otherwise reach a loopback API).
    let browser = reqwest::blocking::Client::builder().user_agent("Mozilla/5.0").build().unwrap();
    assert_eq!(browser.get(format!("{api}/proxies")).send().unwrap().status().as_u16(), 403);
}

/// Random bytes at the API and through a proxy: every API answer is a 2xx or 4xx with a JSON
/// error body, and the server still serves afterwards.
#[test]
fn random_input_never_breaks_it() {
    let server = server();
    let api = server.api_url();
    let addr = proxy_to(&server, "f", echo());
    server
        .add_toxic("f", Toxic::new(Kind::Slicer { average_size: 7, size_variation: 5, delay: 0 }, Stream::Upstream))
        .unwrap();
    let mut rng = common::Rng(0x5eed);
    let paths =
        ["/proxies", "/populate", "/proxies/f", "/proxies/f/toxics", "/proxies/f/toxics/slicer_upstream", "/reset"];
    for case in 0..300 {
        let path = paths[(rng.next() % paths.len() as u64) as usize];
        let len = (rng.next() % 200) as usize;
        let body: Vec<u8> = match case % 3 {
            0 => rng.bytes(len),
            1 => {
                // JSON-shaped: a toxic or proxy with random values.
                let fields = ["name", "type", "stream", "toxicity", "attributes", "listen", "upstream", "enabled"];
                let mut object = serde_json::Map::new();
                for _ in 0..(rng.next() % 4) {
                    let key = fields[(rng.next() % fields.len() as u64) as usize];
                    let value = match rng.next() % 5 {
                        0 => json!(rng.next() % 1000),
                        1 => json!(-1),
                        2 => json!("latency"),
                        3 => json!({"latency": rng.next() % 5, "rate": "x"}),
                        _ => Value::Null,
                    };
                    object.insert(key.to_owned(), value);
                }
                serde_json::to_vec(&object).unwrap()
            }
            _ => b"[{\"name\": 1}]".to_vec(),
        };
        let response = reqwest::blocking::Client::new().post(format!("{api}{path}")).body(body).send().unwrap();
        let status = response.status().as_u16();
        assert!(status < 500 || status == 500 && path == "/populate", "case {case}: {path} answered {status}");
        if status >= 400 {
            let e: Value = serde_json::from_slice(&response.bytes().unwrap()).unwrap();
            assert_eq!(e["status"].as_u64(), Some(u64::from(status)), "case {case}");
        }
    }
    // Random byte streams through the proxy come back intact.
    server.reset().unwrap();
    server
        .add_toxic("f", Toxic::new(Kind::Slicer { average_size: 7, size_variation: 5, delay: 0 }, Stream::Upstream))
        .unwrap();
    for _ in 0..20 {
        let len = (rng.next() % 5000) as usize + 1;
        let data = rng.bytes(len);
        let mut s = connect(addr);
        s.write_all(&data).unwrap();
        let mut back = vec![0u8; data.len()];
        s.read_exact(&mut back).unwrap();
        assert_eq!(back, data);
    }
    assert_eq!(call("GET", &format!("{api}/version"), None).0, 200);
}

#[test]
fn the_binary_prints_its_url_and_stops_on_ctrl_c() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    let dir = tempfile::tempdir().unwrap();
    let upstream = echo();
    let config = dir.path().join("proxies.json");
    std::fs::write(&config, json!([{"name": "e", "upstream": upstream.to_string()}]).to_string()).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_testbed"))
        .args(["proxy", "--listen", "127.0.0.1:0", "--config", config.to_str().unwrap()])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    let api = first.strip_prefix("testbed proxy API on ").unwrap().to_owned();
    let (s, p) = call("GET", &format!("{api}/proxies/e"), None);
    assert_eq!(s, 200);
    let addr: SocketAddr = p["listen"].as_str().unwrap().parse().unwrap();
    round_trip(&mut connect(addr), 100);
    assert!(Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap().success());
    assert!(child.wait().unwrap().success());
    assert!(lines.any(|l| l.unwrap() == "testbed proxy stopping"));

    // Bad input: exit 2 before anything listens.
    std::fs::write(&config, r#"[{"name": "e"}]"#).unwrap();
    for args in [
        vec!["proxy", "--listen", "0.0.0.0:0"],
        vec!["proxy", "--config", config.to_str().unwrap()],
        vec!["proxy", "--seed", "minus one"],
    ] {
        let output = Command::new(env!("CARGO_BIN_EXE_testbed")).args(&args).output().unwrap();
        assert_eq!(output.status.code(), Some(2), "{args:?}");
    }
}

/// With no toxic the proxy splices (zero-copy); a toxic added between exchanges takes over
/// (after the pipe is drained), and removing it leaves the toxic path in charge: every byte
/// arrives, in order, and the ledger counts them all.
#[test]
fn toxics_added_mid_connection_keep_every_byte_in_order() {
    let server = server();
    let addr = proxy_to(&server, "mid", echo());
    let mut stream = connect(addr);
    let exchange = |stream: &mut TcpStream, seed: u32| {
        let out: Vec<u8> = (0..1_000_000u32).map(|i| ((i ^ seed) % 251) as u8).collect();
        let writer = {
            let mut w = stream.try_clone().unwrap();
            let out = out.clone();
            std::thread::spawn(move || w.write_all(&out).unwrap())
        };
        let mut back = vec![0u8; out.len()];
        stream.read_exact(&mut back).unwrap();
        writer.join().unwrap();
        assert!(back == out, "exchange {seed}: bytes changed or reordered");
    };
    exchange(&mut stream, 1);
    let spliced = server.connections("mid").unwrap().0[0].downstream.writes;
    let slicer = Toxic::new(Kind::Slicer { average_size: 3000, size_variation: 1000, delay: 0 }, Stream::Downstream);
    server.add_toxic("mid", slicer).unwrap();
    exchange(&mut stream, 2);
    let sliced = server.connections("mid").unwrap().0[0].downstream.writes - spliced;
    assert!(sliced >= 1_000_000 / 4000, "{sliced} writes for 1 MB sliced at most 4000 bytes each");
    server.remove_toxic("mid", "slicer_downstream").unwrap();
    exchange(&mut stream, 3);
    drop(stream);
    let r = settled(&server, "mid", 1)[0].clone();
    for d in [&r.upstream, &r.downstream] {
        assert_eq!((d.received, d.forwarded, d.discarded), (3_000_000, 3_000_000, 0), "{r:?}");
    }
}
