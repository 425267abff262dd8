//! A published Toxiproxy client we did not write — npm's `toxiproxy-node-client` — drives the
//! chaos proxy unchanged (`tests/toxiproxy-node/drive.js`), and what it did is checked from
//! both sides: the answers the client got, and the bytes that reached the upstreams.
//!
//! Needs Node.js and `npm ci --prefix testbed/tests/toxiproxy-node` (ci/test.sh does both);
//! without them the test fails and says so, never skips.

#![expect(clippy::unwrap_used, reason = "tests: a panic is the failure report")]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::Command;
use std::sync::mpsc;
use std::time::Duration;

use serde_json::{Value, json};
use testbed::proxy::{ProxyConfig, ProxyServer};

fn echo() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            std::thread::spawn(move || {
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

fn sink() -> (SocketAddr, mpsc::Receiver<usize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            let mut got = Vec::new();
            let _ = stream.read_to_end(&mut got);
            let _ = tx.send(got.len());
        }
    });
    (addr, rx)
}

#[test]
fn toxiproxy_node_client_drives_the_proxy_unchanged() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/toxiproxy-node");
    assert!(
        dir.join("node_modules/toxiproxy-node-client/package.json").is_file(),
        "the npm client is not installed: run `npm ci --prefix {}` (ci/test.sh does)",
        dir.display()
    );
    let server = ProxyServer::start(ProxyConfig::default()).unwrap();
    let (sink, sunk) = sink();
    let output = Command::new("node")
        .arg(dir.join("drive.js"))
        .args([server.api_url(), echo().to_string(), sink.to_string()])
        .output()
        .unwrap_or_else(|e| panic!("node could not run ({e}); ci/test.sh installs nodejs"));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "drive.js failed: {stderr}");
    let seen: Value = serde_json::from_slice(&output.stdout).unwrap();

    assert_eq!(seen["version"], testbed::proxy::VERSION);
    assert_eq!(seen["created"]["name"], "node_echo");
    assert_eq!(seen["created"]["enabled"], true);
    assert_ne!(seen["created"]["listen"], "127.0.0.1:0", "the bound port comes back");
    assert_eq!(seen["duplicate_status"], 409);
    assert_eq!(
        seen["toxic"],
        json!({"name": "lat", "type": "latency", "stream": "downstream", "toxicity": 1,
               "attributes": {"latency": 150, "jitter": 0}})
    );
    assert!(seen["rtt_with_latency_ms"].as_f64().unwrap() >= 150.0, "{seen}");
    assert_eq!(seen["updated_attributes"], json!({"latency": 150, "jitter": 10}));
    assert!(seen["rtt_after_remove_ms"].as_f64().is_some());
    assert_eq!(seen["unknown_type_status"], 400);
    assert_eq!(seen["missing_toxic_status"], 404);
    assert_eq!(seen["disabled_enabled"], false);
    assert_eq!(seen["refused_when_disabled"], true);
    assert_eq!(seen["names"], json!(["node_echo", "node_sink"]));
    assert_eq!(seen["enabled_after_reset"], true);
    assert!(seen["rtt_after_reset_ms"].as_f64().is_some());
    assert_eq!(seen["removed_status"], 404);

    // The limit_data toxic the client set let exactly 5 of its 100 bytes through.
    assert_eq!(sunk.recv_timeout(Duration::from_secs(30)).unwrap(), 5);
    let (records, _) = server.connections("node_sink").unwrap();
    assert_eq!(records.len(), 1);
    assert_eq!((records[0].upstream.forwarded, records[0].upstream.received), (5, 100));
    // The reset the client asked for removed that toxic.
    assert!(server.proxy("node_sink").unwrap().toxics.is_empty());
    // The client deleted node_echo: gone from the library's view too.
    assert_eq!(server.connections("node_echo").unwrap_err().status, 404);
}
