//! The decoding path under bad input (seeded random and structured mutations: random bytes,
//! truncated protobuf, wrong JSON types, oversized declared lengths, gzip bombs): the answer is
//! always the right client error or a success, never a 5xx, never a crash. And 1,000
//! concurrent connections are all served.

#![expect(clippy::unwrap_used, reason = "test helpers: a panic is the failure report")]

mod common;

use common::Rng;

use std::io::Write;
use std::time::Duration;

use common::{JSON, PROTOBUF, post, protobuf, request};
use testbed::ingest::{self, Encoding};
use testbed::{Backend, Config};

/// In-process: the decoder never panics and classifies every input.
#[test]
fn decoding_random_and_mutated_input_never_panics() {
    let mut rng = Rng(0x5EED);
    let valid = protobuf(&request("fuzz", 1, 20));
    for round in 0..3000 {
        let input = match round % 4 {
            0 => {
                let n = (rng.next() % 600) as usize;
                rng.bytes(n)
            }
            1 => valid[..(rng.next() as usize % valid.len())].to_vec(),
            2 => {
                let mut v = valid.clone();
                for _ in 0..1 + rng.next() % 8 {
                    let i = rng.next() as usize % v.len();
                    v[i] = rng.next() as u8;
                }
                v
            }
            _ => {
                // A length-delimited field claiming a huge length.
                let mut v = vec![0x0a];
                let mut len = 1u64 << (20 + rng.next() % 40);
                while len >= 0x80 {
                    v.push((len as u8) | 0x80);
                    len >>= 7;
                }
                v.push(len as u8);
                v.extend(rng.bytes(16));
                v
            }
        };
        let outcome = std::panic::catch_unwind(|| {
            for encoding in [Encoding::Protobuf, Encoding::Json] {
                if let Ok(request) = ingest::decode(&input, encoding) {
                    ingest::batches(request, None);
                }
            }
            let _ = ingest::decompress(&input, Some("gzip"), 1 << 20);
        });
        assert!(outcome.is_ok(), "round {round} panicked on {input:?}");
    }
}

#[test]
fn bad_input_over_http_gets_the_right_status() {
    let config = Config { max_request_bytes: 1 << 20, ..Config::default() };
    let backend = Backend::start(config).unwrap();
    let url = backend.traces_url();
    let mut rng = Rng(42);
    let valid = protobuf(&request("http-fuzz", 1, 50));
    // Truncations of a valid request: success (a prefix may still parse) or 400, never 5xx.
    for cut in (0..valid.len()).step_by(7) {
        let answer = post(&url, &[PROTOBUF], &valid[..cut], None).unwrap();
        assert!(answer.status == 200 || answer.status == 400, "cut {cut}: {}", answer.status);
    }
    for _ in 0..200 {
        let n = (rng.next() % 2000) as usize;
        let answer = post(&url, &[PROTOBUF], &rng.bytes(n), None).unwrap();
        assert!(answer.status == 200 || answer.status == 400, "{}", answer.status);
    }
    // Wrong JSON types and shapes.
    for body in [
        r#"{"resourceSpans": 1}"#,
        r#"{"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": 5}]}]}]}"#,
        r#"{"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "zz"}]}]}]}"#,
        r#"{"resourceSpans": [{"scopeSpans": [{"spans": [{"startTimeUnixNano": "soon"}]}]}]}"#,
        r#"{"resourceSpans": [{"scopeSpans": [{"spans": [{"kind": "SERVER"}]}]}]}"#,
        "[1, 2, 3]",
        "{",
        "null",
    ] {
        let answer = post(&url, &[JSON], body.as_bytes(), None).unwrap();
        assert_eq!(answer.status, 400, "{body}");
        assert!(answer.json()["message"].as_str().unwrap().starts_with("malformed JSON"), "{body}");
    }
    // Declared length above the limit: refused before any body is read (raw socket: a client
    // library would insist on sending the body it declared).
    {
        use std::io::Read;
        let mut stream = std::net::TcpStream::connect(backend.addr()).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let head = "POST /v1/traces HTTP/1.1\r\nhost: x\r\ncontent-type: application/x-protobuf\r\ncontent-length: 99999999999\r\n\r\n";
        stream.write_all(head.as_bytes()).unwrap();
        let mut buf = [0u8; 12];
        stream.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"HTTP/1.1 413");
    }
    // A gzip bomb: 32 MiB of zeros in a few hundred KiB, refused at the 1 MiB limit.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..32 {
        gz.write_all(&zeros).unwrap();
    }
    let bomb = gz.finish().unwrap();
    assert!(bomb.len() < 1 << 20);
    let answer = post(&url, &[PROTOBUF, ("content-encoding", "gzip")], &bomb, Some(Duration::from_secs(30))).unwrap();
    assert_eq!(answer.status, 413);
    // Still serving, and nothing was stored from all that.
    assert_eq!(post(&url, &[PROTOBUF], &protobuf(&request("after", 9, 1)), None).unwrap().status, 200);
    let metrics = common::get(&format!("{}/metrics", backend.base_url()), &[]);
    let text = String::from_utf8_lossy(&metrics.body);
    assert!(!text.contains("testbed_requests_total{status=\"5"), "no 5xx: {text}");
}

#[test]
fn a_thousand_concurrent_connections_are_served() {
    // Each connection needs a descriptor on both ends of loopback.
    let (_, hard) = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE).unwrap();
    nix::sys::resource::setrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE, hard.min(65_536), hard).unwrap();
    let backend = Backend::start(Config::default()).unwrap();
    let addr = backend.addr();
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let statuses: Vec<u16> = runtime.block_on(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        // Open all connections first, so they are concurrent, then send on each.
        let mut streams = Vec::new();
        for _ in 0..1000 {
            streams.push(tokio::net::TcpStream::connect(addr).await.unwrap());
        }
        let tasks: Vec<_> = streams
            .into_iter()
            .enumerate()
            .map(|(i, mut stream)| {
                tokio::spawn(async move {
                    // Two spans per request; traces repeat every 200 connections, span ids too.
                    let body = protobuf(&request("concurrent", (i % 200) as u8, 2));
                    let head = format!(
                        "POST /v1/traces HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/x-protobuf\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                        body.len()
                    );
                    stream.write_all(head.as_bytes()).await.unwrap();
                    stream.write_all(&body).await.unwrap();
                    let mut response = Vec::new();
                    stream.read_to_end(&mut response).await.unwrap();
                    let line = String::from_utf8_lossy(&response[..response.len().min(12)]).to_string();
                    line[9..12].parse::<u16>().unwrap()
                })
            })
            .collect();
        let mut statuses = Vec::new();
        for task in tasks {
            statuses.push(task.await.unwrap());
        }
        statuses
    });
    assert_eq!(statuses.len(), 1000);
    assert!(statuses.iter().all(|s| *s == 200), "{:?}", statuses.iter().filter(|s| **s != 200).collect::<Vec<_>>());
    let stats = common::stats(&backend.base_url(), "concurrent");
    assert_eq!(stats["requests"], 1000);
    assert_eq!(stats["received"], 2000);
    common::assert_accounted(&stats);
}

/// Raises this process's open-file limit to what `needed` connections (both ends) take.
fn allow_open_files(needed: u64) {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
    let want = (needed + 256).min(hard);
    if soft < want {
        setrlimit(Resource::RLIMIT_NOFILE, want, hard).unwrap();
    }
    assert!(want >= needed, "the hard limit on open files ({hard}) is below the {needed} this test needs");
}

/// Waits (liveness bound 60 s) until the server closes `stream`.
fn closed_by_server(stream: &mut std::net::TcpStream) -> bool {
    use std::io::Read;
    stream.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let mut buf = [0u8; 256];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return true,
            // An answer (408/400) before the close is fine; keep reading to the end.
            Ok(_) => continue,
            Err(e) => return e.kind() == std::io::ErrorKind::ConnectionReset,
        }
    }
}

/// 1,000 idle connections and 1,000 sending their headers a byte at a time hold 2,000 of the
/// server's slots; a normal request is still served. Then the header timeout closes every one.
#[test]
fn idle_and_slow_connections_do_not_block_a_normal_request() {
    allow_open_files(2 * 2_100);
    let config = Config { header_timeout: Duration::from_secs(2), ..Config::default() };
    let backend = Backend::start(config).unwrap();
    let addr = backend.base_url().trim_start_matches("http://").to_string();
    let mut held = Vec::new();
    for i in 0..2_000 {
        let mut stream = std::net::TcpStream::connect(&addr).unwrap();
        if i % 2 == 1 {
            stream.write_all(b"POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Le").unwrap();
        }
        held.push(stream);
    }
    let started = std::time::Instant::now();
    let answer = post(
        &backend.traces_url(),
        &[PROTOBUF],
        &protobuf(&request("beside-2000", 1, 5)),
        Some(Duration::from_secs(30)),
    )
    .unwrap();
    println!("a normal request beside 2,000 held connections: {:?}", started.elapsed());
    assert_eq!(answer.status, 200);
    let closed = held.iter_mut().map(closed_by_server).filter(|closed| *closed).count();
    assert_eq!(closed, 2_000, "the header timeout closes idle and slow connections");
}

/// With every slot taken by idle connections, a new request waits in the accept queue; the
/// header timeout frees the slots and it is served. (The cap holds: the idle ones are closed
/// by the server, not by the client.)
#[test]
fn a_full_server_frees_slots_held_by_idle_connections() {
    let config = Config { max_connections: 4, header_timeout: Duration::from_secs(1), ..Config::default() };
    let backend = Backend::start(config).unwrap();
    let addr = backend.base_url().trim_start_matches("http://").to_string();
    let mut idle: Vec<_> = (0..4).map(|_| std::net::TcpStream::connect(&addr).unwrap()).collect();
    let answer = post(
        &backend.traces_url(),
        &[PROTOBUF],
        &protobuf(&request("after-idle", 1, 3)),
        Some(Duration::from_secs(60)),
    )
    .unwrap();
    assert_eq!(answer.status, 200);
    assert!(idle.iter_mut().all(closed_by_server), "every idle connection was closed by the server");
}
